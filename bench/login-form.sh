#!/usr/bin/env bash
# The login form under load from visitors without cookies: how fast, and does it write?
#
#   bench/login-form.sh
#
# A fresh SQLite database with one site manager (so /login is the normal login form, not a
# redirect to /setup), the server started, then `wrk -t2 -c16 -d10s --latency` on GET /login
# with no cookies (wrk sends none: every request is a new visitor, given a new pre-login
# cookie) and the same on GET /healthz for comparison. Before and after: every table's row
# count and content digest (python sqlite3, read-only, over sqlite_master's tables) and the
# sizes of the .db, -wal and -shm files. An idle check before the load tells apart writes
# of the server's own background work.
#
# Env: AUDITDESK_BIN (default target/release/auditdesk under the repo root; built if missing),
#      WRK_DURATION (10s), WRK_CONNS (16), WRK_THREADS (2), KEEP_DB=1 keeps the temp dir.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

DUR="${WRK_DURATION:-10s}"; CONNS="${WRK_CONNS:-16}"; THREADS="${WRK_THREADS:-2}"
command -v wrk >/dev/null || die "wrk not installed"

resolve_bin
TMPDIR_BENCH="$(mktemp -d /tmp/auditdesk-login-form.XXXXXX)"
cleanup() { stop_server; if [ -z "${KEEP_DB:-}" ]; then rm -rf "$TMPDIR_BENCH"; else log "kept $TMPDIR_BENCH"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM

new_database sqlite bench_login_form
add_manager
start_server

# The page must be the login form itself, with its token and the pre-login cookie.
code="$(curl -s -o "$TMPDIR_BENCH/login.html" -D "$TMPDIR_BENCH/login.headers" -w '%{http_code}' "$BASE/login")"
[ "$code" = 200 ] || die "GET /login answered $code"
grep -q 'name="csrf_token"' "$TMPDIR_BENCH/login.html" || die "GET /login has no csrf_token field"
PRE_COOKIE="$(grep -i '^set-cookie:' "$TMPDIR_BENCH/login.headers" | sed -E 's/^[Ss]et-[Cc]ookie: *([^=;]*)=.*/\1/' | tr -d '\r' | paste -sd, - || true)"
[ -n "$PRE_COOKIE" ] || log "note: GET /login without cookies set no cookie"

# snapshot FILE: per-table row count and digest, and the file sizes, as JSON.
snapshot() {
    python3 - "$DB_URL" > "$1" <<'PYEOF'
import hashlib, json, os, sqlite3, sys
db = sys.argv[1]
c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
tables = {}
for (name,) in c.execute("select name from sqlite_master where type = 'table' order by name"):
    q = '"' + name.replace('"', '""') + '"'
    try:
        n = c.execute(f"select count(*) from {q}").fetchone()[0]
    except sqlite3.Error as e:
        tables[name] = {"rows": None, "digest": f"unreadable: {e}"}; continue
    digest = None
    if n <= 200000:
        try:
            h = hashlib.sha256()
            for line in sorted(repr(r) for r in c.execute(f"select * from {q}")):
                h.update(line.encode("utf-8", "surrogatepass")); h.update(b"\n")
            digest = h.hexdigest()[:16]
        except sqlite3.Error as e:
            digest = f"unreadable: {e}"
    tables[name] = {"rows": n, "digest": digest}
c.close()
size = lambda p: os.path.getsize(p) if os.path.exists(p) else 0
print(json.dumps({"tables": tables, "db": size(db), "wal": size(db + "-wal"), "shm": size(db + "-shm")}))
PYEOF
}

# wrk_run NAME PATH: wrk on BASE/PATH with no cookie, output in TMPDIR_BENCH/wrk-NAME.txt
wrk_run() {
    log "wrk -t$THREADS -c$CONNS -d$DUR --latency $BASE$2"
    wrk -t"$THREADS" -c"$CONNS" -d"$DUR" --latency "$BASE$2" > "$TMPDIR_BENCH/wrk-$1.txt" 2>&1 || true
}

sleep 1
snapshot "$TMPDIR_BENCH/idle0.json"
sleep 2
snapshot "$TMPDIR_BENCH/before.json"
wrk_run login /login
snapshot "$TMPDIR_BENCH/after-login.json"
wrk_run healthz /healthz
snapshot "$TMPDIR_BENCH/after.json"

echo
echo "== login-form.sh: GET /login without cookies, wrk -t$THREADS -c$CONNS -d$DUR (host: $(nproc) cores; load shared with other work) =="
echo "pre-login cookie set by GET /login: ${PRE_COOKIE:-none}"
python3 - "$TMPDIR_BENCH" <<'PYEOF'
import json, os, re, sys
tmp = sys.argv[1]
load = lambda n: json.load(open(os.path.join(tmp, n)))

def ms(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)", s)
    v, unit = float(m.group(1)), m.group(2)
    return {"us": v / 1000, "ms": v, "s": v * 1000, "m": v * 60000}[unit]

def wrk(name):
    out = open(os.path.join(tmp, f"wrk-{name}.txt")).read()
    try:
        r = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
             "p50": ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
             "p99": ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
             "reqs": int(re.search(r"(\d+) requests in", out).group(1))}
    except AttributeError:
        print(f"could not read wrk's output for {name}:\n{out}"); return None
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    err = re.search(r"Socket errors: (.*)", out)
    r["bad"] = int(bad.group(1)) if bad else 0
    r["err"] = err.group(1) if err else "none"
    return r

rows = [("GET /login (no cookie)", wrk("login")), ("GET /healthz", wrk("healthz"))]
hdr = ["route", "req/s", "p50 ms", "p99 ms", "requests", "non-2xx/3xx", "socket errors"]
table = [[n, f"{r['rps']:,.0f}", f"{r['p50']:.2f}", f"{r['p99']:.2f}", f"{r['reqs']:,}", str(r["bad"]), r["err"]]
         for n, r in rows if r]
w = [max(len(str(x[i])) for x in table + [hdr]) for i in range(len(hdr))]
fmt = lambda x: " | ".join(str(v).ljust(w[i]) for i, v in enumerate(x))
print(fmt(hdr)); print("-+-".join("-" * k for k in w))
for t in table: print(fmt(t))

idle0, before, after_login, after = load("idle0.json"), load("before.json"), load("after-login.json"), load("after.json")
def changed(a, b):
    names = sorted(set(a["tables"]) | set(b["tables"]))
    return [n for n in names if a["tables"].get(n) != b["tables"].get(n)]
print()
print("database before -> after the /login run (rows; * = content changed):")
names = sorted(set(before["tables"]) | set(after_login["tables"]))
for n in names:
    a, b = before["tables"].get(n, {}), after_login["tables"].get(n, {})
    mark = " *" if a != b else ""
    print(f"  {n:32} {str(a.get('rows', '-')):>8} -> {str(b.get('rows', '-')):>8}{mark}")
for k in ("db", "wal", "shm"):
    print(f"  {'file ' + ('.db' if k == 'db' else '-' + k):32} {before[k]:>8} -> {after_login[k]:>8} bytes" + (" *" if before[k] != after_login[k] else ""))
idle_changes = changed(idle0, before)
login_changes = changed(before, after_login)
health_changes = changed(after_login, after)
files_same = all(before[k] == after_login[k] for k in ("db", "wal"))
if idle_changes:
    print(f"NOTE: tables changed while the server sat idle before the run (background work): {', '.join(idle_changes)}")
print(f"tables changed by the /login run: {', '.join(login_changes) or 'none'}; .db + -wal size "
      + ("unchanged" if files_same else f"{before['db'] + before['wal']:,} -> {after_login['db'] + after_login['wal']:,} bytes"))
print(f"tables changed by the /healthz run: {', '.join(health_changes) or 'none'}")

lr = rows[0][1]
print("\ntargets:")
print(f"  at least 20,000 req/s on /login: {'yes' if lr and lr['rps'] >= 20000 else 'NO'}  ({lr['rps']:,.0f} req/s)" if lr else "  at least 20,000 req/s on /login: ? (no wrk figures)")
print(f"  /login all 2xx: {'yes' if lr and lr['bad'] == 0 else 'NO'}")
print(f"  database unchanged by /login (every table's rows and content, .db + -wal size): {'yes' if not login_changes and files_same else 'NO'}")
PYEOF
SERVER_ERRS=$(grep -ci 'error\|panic' "$TMPDIR_BENCH/server.log" || true)
echo "server log lines with error/panic: $SERVER_ERRS"
