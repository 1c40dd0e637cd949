#!/usr/bin/env python3
"""Login timing: (1) the throttle costs a successful login nothing measurable; (2) a
login for an unknown user takes as long as a wrong password for an existing one (they
should look the same to an attacker).

    bench/login-timing.py [AUDITDESK_BIN] [--logins 30] [--rounds 3] [--bulk 50000]
                          [--same-account 99] [--pairs 20]

Starts the release binary on a fresh SQLite file in a temporary directory and makes the
users with `auditdesk user add`. The throttle (src/auth/login.rs, `policy`) counts failures
per (account, client address) (5 free), per address (20 free) and per account (ceiling
100), so every attempt here comes from its own loopback source address (127.0.x.y: the
client socket is bound to it; loopback answers on all of 127/8) and none is throttled.

Successful logins (GET /login for the csrf_token and the pre-login cookie, then POST
/login; the POST is timed; each attempt with fresh cookies, so no logout is needed), in
three conditions, interleaved in --rounds blocks so that the machine's drift hits all:
  (a) login_failures empty;
  (b) --bulk failures of other accounts from other addresses, within the last hour, plus
      --same-account (99: under the ceiling) failures of the account that logs in, each
      from another address: the throttle's per-pair and per-address counts look them up;
  (c) as (b) with 95 of the account's failures elsewhere, plus 4 for this very address
      put in before each attempt: the pair's count is non-zero, so the account's count is
      read too, and the success clears the pair (the whole non-throttled path).
The rows are written straight into the database with python's sqlite3, in the app's own
format: account lowercased, ip as text, time a naive UTC timestamp as diesel writes it
for SQLite ('%Y-%m-%d %H:%M:%S.%f').
Then unknown-user against wrong-password failures (--pairs of each, alternating).
Prints median/min/max ms per condition, the difference of medians and a bootstrap 95%
interval for it.
"""
import argparse
import html
import http.client
import os
import random
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASSWORD = "a long passphrase 1"
OK_USER = "bench-ok"          # the account whose successful logins are timed
TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
PORT = None


def source_addresses():
    """127.0.1.1, 127.0.1.2, ... (127.0.0.1, everyone's default, is skipped)."""
    for x in range(1, 255):
        for y in range(1, 255):
            yield f"127.0.{x}.{y}"


ADDRESSES = source_addresses()


def connect(src):
    return http.client.HTTPConnection("127.0.0.1", PORT, timeout=30, source_address=(src, 0))


def login_form(c):
    """GET /login on connection c: the form's token and the cookies it set."""
    c.request("GET", "/login")
    r = c.getresponse()
    body = r.read().decode()
    assert r.status == 200, f"GET /login answered {r.status}"
    cookies = [h.split(";", 1)[0].strip() for h in r.msg.get_all("Set-Cookie") or []]
    m = re.search(r'name="csrf_token" value="([^"]+)"', body)
    assert m, "no csrf_token on /login"
    return html.unescape(m.group(1)), "; ".join(cookies)


def attempt(user, password, src=None):
    """One login from source address src (a fresh one when None), with fresh cookies.
    Returns (status, ms of the POST, Set-Cookie names of the answer)."""
    src = src or next(ADDRESSES)
    c = connect(src)
    try:
        token, cookie = login_form(c)
        data = urlencode({"username": user, "password": password, "csrf_token": token, "next": ""})
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if cookie:
            headers["Cookie"] = cookie
        start = time.perf_counter()
        c.request("POST", "/login", data, headers)
        r = c.getresponse()
        r.read()
        ms = (time.perf_counter() - start) * 1000
        set_names = [h.split("=", 1)[0].strip() for h in r.msg.get_all("Set-Cookie") or []]
        return r.status, ms, set_names
    finally:
        c.close()


def success(src=None):
    status, ms, set_names = attempt(OK_USER, PASSWORD, src)
    assert status in (302, 303), f"successful login answered {status}"
    assert any("session" in n for n in set_names), f"no session cookie after login: {set_names}"
    return ms


class Failures:
    """The login_failures table, written directly."""

    def __init__(self, db, bulk, seed=7):
        self.c = sqlite3.connect(db, timeout=30, isolation_level=None)
        cols = [r[1] for r in self.c.execute("pragma table_info(login_failures)")]
        assert {"account", "ip", "time"} <= set(cols), f"login_failures columns: {cols}"
        rnd = random.Random(seed)
        # Other accounts (names as the app keys them: trimmed, lowercase) and other
        # addresses, each pair a few times; offsets in seconds before now.
        accounts = [f"user{k:05d}" for k in range(max(1, bulk // 25))]
        addrs = [f"10.{rnd.randrange(256)}.{rnd.randrange(256)}.{rnd.randrange(1, 255)}"
                 for _ in range(max(1, bulk // 10))]
        self.bulk = [(rnd.choice(accounts), rnd.choice(addrs), rnd.uniform(60, 3300)) for _ in range(bulk)]

    @staticmethod
    def ts(seconds_ago):
        return (datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)).strftime(TS_FORMAT)

    def count(self):
        return self.c.execute("select count(*) from login_failures").fetchone()[0]

    def empty(self):
        self.c.execute("delete from login_failures")

    def fill(self, same_account):
        """The bulk rows, and same_account failures of OK_USER from other addresses."""
        rows = [(a, ip, self.ts(s)) for a, ip, s in self.bulk]
        rows += [(OK_USER, f"10.99.{k // 250}.{k % 250 + 1}", self.ts(120 + k * 20)) for k in range(same_account)]
        self.c.execute("begin")
        self.c.execute("delete from login_failures")
        self.c.executemany("insert into login_failures (account, ip, time) values (?, ?, ?)", rows)
        self.c.execute("commit")

    def add_pair(self, ip, n):
        self.c.executemany("insert into login_failures (account, ip, time) values (?, ?, ?)",
                           [(OK_USER, ip, self.ts(30 + 10 * k)) for k in range(n)])

    def pair_count(self, ip):
        return self.c.execute("select count(*) from login_failures where account = ? and ip = ?",
                              (OK_USER, ip)).fetchone()[0]


def summary(xs):
    return f"median {statistics.median(xs):6.1f} ms  min {min(xs):6.1f}  max {max(xs):6.1f}  (n={len(xs)})"


def median_diff_ci(a, b, n=2000, seed=1):
    """Bootstrap 95% interval of median(b) - median(a)."""
    rnd = random.Random(seed)
    ds = sorted(statistics.median(rnd.choices(b, k=len(b))) - statistics.median(rnd.choices(a, k=len(a)))
                for _ in range(n))
    return ds[int(n * 0.025)], ds[int(n * 0.975)]


def main():
    global PORT
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bin", nargs="?", default=os.environ.get(
        "AUDITDESK_BIN", os.path.join(ROOT, "target/release/auditdesk")))
    ap.add_argument("--logins", type=int, default=30, help="successful logins per condition (default 30)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved blocks per condition (default 3)")
    ap.add_argument("--bulk", type=int, default=50000, help="other failures in (b) and (c) (default 50000)")
    ap.add_argument("--same-account", type=int, default=99,
                    help="the account's failures from other addresses in (b) (default 99, under the ceiling of 100)")
    ap.add_argument("--pairs", type=int, default=20, help="unknown-user / wrong-password pairs (default 20)")
    args = ap.parse_args()
    bin_ = args.bin if os.path.isabs(args.bin) else os.path.join(ROOT, args.bin)
    if not os.path.exists(bin_):
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)

    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "timing.db")
        users = [(OK_USER, "site_manager")] + [(f"a{n}", "auditor") for n in range(1, 5)]
        for name, role in users:
            subprocess.run([bin_, "--database-url", db, "user", "add", "--username", name,
                            "--email", f"{name}@example.com", "--role", role,
                            "--password-stdin"], input=(PASSWORD + "\n").encode(),
                           check=True, capture_output=True)
        s = socket.socket(); s.bind(("127.0.0.1", 0)); PORT = s.getsockname()[1]; s.close()
        log = open(os.path.join(tmp, "server.log"), "w")
        server = subprocess.Popen([bin_, "--database-url", db, "serve", "--bind", f"127.0.0.1:{PORT}"],
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            for _ in range(300):
                try:
                    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=2)
                    c.request("GET", "/readyz")
                    if c.getresponse().status == 200:
                        break
                except OSError:
                    pass
                if server.poll() is not None:
                    sys.exit("server exited:\n" + open(os.path.join(tmp, "server.log")).read()[-2000:])
                time.sleep(0.1)
            else:
                sys.exit("server not ready after 30 s")

            fail = Failures(db, args.bulk)
            same_c = min(args.same_account, 95)
            print(f"successful logins of {OK_USER!r}, POST /login timed, {args.logins} per condition in "
                  f"{args.rounds} interleaved rounds, each from its own 127.0.x.y:")
            for _ in range(3):  # warm up (not counted)
                success()
            times = {"a": [], "b": [], "c": []}
            per_round = [args.logins // args.rounds + (1 if r < args.logins % args.rounds else 0)
                         for r in range(args.rounds)]
            fill_s = []
            for rnd_i, k in enumerate(per_round):
                order = ["a", "b", "c"][rnd_i % 3:] + ["a", "b", "c"][:rnd_i % 3]
                for cond in order:
                    if cond == "a":
                        fail.empty()
                        assert fail.count() == 0
                    else:
                        t = time.perf_counter()
                        fail.fill(args.same_account if cond == "b" else same_c)
                        fill_s.append(time.perf_counter() - t)
                    for _ in range(k):
                        if cond == "c":
                            src = next(ADDRESSES)
                            fail.add_pair(src, 4)
                            times[cond].append(success(src))
                            assert fail.pair_count(src) == 0, "the success did not clear the pair's failures"
                        else:
                            times[cond].append(success())
            rows_b = args.bulk + args.same_account
            labels = {
                "a": "(a) login_failures empty",
                "b": f"(b) {rows_b:,} failures ({args.same_account} of this account elsewhere)",
                "c": f"(c) {args.bulk + same_c:,} + 4 of this account from this address",
            }
            width = max(len(v) for v in labels.values())
            for cond in "abc":
                print(f"  {labels[cond]:{width}}  {summary(times[cond])}")
            print(f"  (filling the table directly: {statistics.median(fill_s):.2f} s per fill)")
            ma = statistics.median(times["a"])
            verdicts = []
            for cond in "bc":
                d = statistics.median(times[cond]) - ma
                lo, hi = median_diff_ci(times["a"], times[cond])
                measurable = lo > 0 or hi < 0
                verdicts.append(not (measurable and d > 0))
                print(f"  median {cond} - a: {d:+6.1f} ms   bootstrap 95% interval [{lo:+.1f}, {hi:+.1f}] ms"
                      f"   -> {'MEASURABLE' if measurable else 'not measurable'}"
                      f" ({d / ma * 100:+.1f}% of the median)")
            print(f"target: the throttle costs a successful login nothing measurable: "
                  f"{'yes' if all(verdicts) else 'NO'}")

            # Unknown user against wrong password, each from its own address.
            print(f"\nfailed logins, {args.pairs} of each, alternating, each from its own 127.0.x.y:")
            unknown, wrong = [], []
            for i in range(args.pairs):
                s1, t1, _ = attempt(f"ghost{i}", "wrong password x")
                s2, t2, _ = attempt(f"a{i % 4 + 1}", "wrong password x")
                assert s1 == s2 == 401, (s1, s2)
                unknown.append(t1)
                wrong.append(t2)
            for name, xs in (("unknown user", unknown), ("wrong password", wrong)):
                print(f"  {name:15} 401  {summary(xs)}")
            d = statistics.median(wrong) - statistics.median(unknown)
            lo, hi = median_diff_ci(unknown, wrong)
            print(f"  median wrong - unknown: {d:+.1f} ms   bootstrap 95% interval [{lo:+.1f}, {hi:+.1f}] ms")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
