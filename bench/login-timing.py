#!/usr/bin/env python3
"""Compares the answer time of a login for an unknown user with a wrong password
for an existing one (they should look the same to an attacker).

    bench/login-timing.py [AUDITDESK_BIN]

Starts the release binary on a fresh SQLite file in a temporary directory, makes four
users, then alternates 8 unknown-user and 8 wrong-password attempts (16 from one
address stays under the per-address throttle of 20) and prints median/min/max ms.
"""
import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlencode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
    "AUDITDESK_BIN", os.path.join(ROOT, "target/release/auditdesk"))
PORT = 18555


def attempt(user, password):
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
    c.request("GET", "/login")
    r = c.getresponse()
    body = r.read().decode()
    cookie = r.getheader("set-cookie").split(";")[0]
    token = re.search(r'name="csrf_token" value="([^"]+)"', body).group(1)
    data = urlencode({"username": user, "password": password, "csrf_token": token, "next": ""})
    start = time.perf_counter()
    c.request("POST", "/login", data,
              {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
    r = c.getresponse()
    r.read()
    return r.status, (time.perf_counter() - start) * 1000


def main():
    if not os.path.exists(BIN):
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "timing.db")
        for n in range(1, 5):
            subprocess.run([BIN, "--database-url", db, "user", "add", "--username", f"a{n}",
                            "--email", f"a{n}@example.com", "--role", "auditor",
                            "--password-stdin"], input=b"a long passphrase 1\n",
                           check=True, capture_output=True)
        server = subprocess.Popen([BIN, "--database-url", db, "serve", "--bind",
                                   f"127.0.0.1:{PORT}"], stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    http.client.HTTPConnection("127.0.0.1", PORT).request("GET", "/healthz")
                    break
                except OSError:
                    time.sleep(0.1)
            unknown, wrong = [], []
            for i in range(8):
                s1, t1 = attempt(f"ghost{i}", "wrong password x")
                s2, t2 = attempt(f"a{i % 4 + 1}", "wrong password x")
                assert s1 == s2 == 401, (s1, s2)
                unknown.append(t1)
                wrong.append(t2)
            for name, xs in (("unknown user", unknown), ("wrong password", wrong)):
                print(f"{name:15} 401  median {statistics.median(xs):6.1f} ms"
                      f"  min {min(xs):6.1f}  max {max(xs):6.1f}")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
