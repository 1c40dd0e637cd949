#!/usr/bin/env bash
# Many full exports at once, with the page under load beside them: are exports cut off,
# does the page stay fast, does the server's memory stay bounded and come back down?
#
#   bench/export-load.sh [N]          (default 160000 events, SQLite)
#
# Imports N events, starts the server, logs in a site manager, then at the same time:
#   - EXPORT_CLIENTS (40) python threads each GET /manage/audit/export?format=csv with the
#     session cookie; a 429 or 503 is retried after its Retry-After (capped at 10 s; 1 s when
#     absent) until a 200 whose whole body is read; each client gives up 10 minutes after the
#     start. Bodies are spooled to files in the temp dir and their CSV rows counted (csv
#     module) once every export has finished, so no body is held in memory.
#   - wrk -t2 -c16 -d$WRK_DURATION --latency on /manage/audit with the cookie;
#   - the server's VmRSS from /proc/PID/status every 0.2 s, until 15 s after the last export.
# An export is cut off when its transfer failed (connection error, chunked body not
# terminated, Content-Length not reached), when its body does not end with a line break,
# or when it has fewer CSV rows than `select count(*) from events` before the start (every
# complete export has at least those, plus the `export` events recorded before it started).
#
# Env: AUDITDESK_BIN (default target/release/auditdesk under the repo root; built if missing),
#      EXPORT_CLIENTS (40), WRK_DURATION (60s: should cover the exports), WRK_CONNS (16),
#      WRK_THREADS (2), KEEP_DB=1 keeps the temp dir (database and server log).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

N="${1:-160000}"
CLIENTS="${EXPORT_CLIENTS:-40}"
DUR="${WRK_DURATION:-60s}"; CONNS="${WRK_CONNS:-16}"; THREADS="${WRK_THREADS:-2}"
command -v wrk >/dev/null || die "wrk not installed"

resolve_bin
TMPDIR_BENCH="$(mktemp -d /tmp/auditdesk-export-load.XXXXXX)"
cleanup() { stop_server; if [ -z "${KEEP_DB:-}" ]; then rm -rf "$TMPDIR_BENCH"; else rm -f "$TMPDIR_BENCH"/export-*.csv; log "kept $TMPDIR_BENCH"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM

EVENTS="$(events_file "$N")"
new_database sqlite "bench_export_load_$N"
log "importing $N events"
t0=$(date +%s.%N)
IMPORT_OUT="$("$BIN" --database-url "$DB_URL" import "$EVENTS" 2>&1 | tail -1)" || die "import failed: $IMPORT_OUT"
t1=$(date +%s.%N)
IMPORT_S=$(python3 -c "print(f'{$t1-$t0:.1f}')")
sync
add_manager
start_server
login
log "server pid $SERVER_PID at $BASE; $CLIENTS exports + wrk -d$DUR on the page"

echo
echo "== export-load.sh: SQLite, $N events, $CLIENTS concurrent CSV exports + wrk -t$THREADS -c$CONNS -d$DUR on /manage/audit (host: $(nproc) cores; load shared with other work) =="
echo "import: ${IMPORT_S} s   ($IMPORT_OUT)"
python3 - "$BASE" "$COOKIE" "$SERVER_PID" "$DB_URL" "$N" "$CLIENTS" "$DUR" "$THREADS" "$CONNS" "$TMPDIR_BENCH" <<'PYEOF'
import csv, http.client, os, re, sqlite3, statistics, subprocess, sys, threading, time
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

base, cookie, pid, db, n, clients, dur, wthreads, wconns, tmp = sys.argv[1:11]
pid, n, clients = int(pid), int(n), int(clients)
sys.stdout.reconfigure(line_buffering=True)
u = urlsplit(base); HOST, PORT = u.hostname, u.port
EXPORT = "/manage/audit/export?format=csv"
GIVE_UP_S = 600          # each client stops trying 10 minutes after the start
RETRY_CAP_S = 10         # longest Retry-After honoured
SOCK_TIMEOUT_S = 120     # one stalled read (no byte for this long) ends the transfer
AFTER_S = 15             # RSS sampling after the last export finished

# ---- before: what a complete export must hold ------------------------------------
with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as c:
    count_before = c.execute("select count(*) from events").fetchone()[0]
    oldest = c.execute("select event_uuid from events order by time, id limit 1").fetchone()
    oldest = oldest[0] if oldest else None

def rss_kb(key="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None

# ---- (c) the sampler --------------------------------------------------------------
samples = []                      # (seconds since T0, VmRSS kB)
sample_until = [None]             # set (seconds since T0) once the last export has finished
def sampler():
    while sample_until[0] is None or time.monotonic() - T0 <= sample_until[0]:
        v = rss_kb()
        if v is None:
            samples.append((time.monotonic() - T0, None)); break
        samples.append((time.monotonic() - T0, v))
        time.sleep(0.2)

# ---- (a) the export clients -------------------------------------------------------
def retry_after_seconds(value):
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None

results = [None] * clients
def client(i):
    rec = {"i": i, "refusals": [], "outcome": None, "error": "", "path": os.path.join(tmp, f"export-{i}.csv"),
           "bytes": 0, "clean": False, "start": time.monotonic() - T0}
    results[i] = rec
    deadline = T0 + GIVE_UP_S
    while True:
        if time.monotonic() >= deadline:
            rec["outcome"] = "gave up"; rec["error"] = "10 minutes without a complete export"; break
        conn = http.client.HTTPConnection(HOST, PORT, timeout=SOCK_TIMEOUT_S)
        t_req = time.monotonic()
        try:
            conn.request("GET", EXPORT, headers={"Cookie": cookie})
            r = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            rec["outcome"] = "no answer"; rec["error"] = f"{type(e).__name__}: {e}"; break
        if r.status in (429, 503):
            ra = r.getheader("Retry-After")
            try: r.read()
            except (OSError, http.client.HTTPException): pass
            conn.close()
            rec["refusals"].append((r.status, ra, time.monotonic() - T0))
            wait = retry_after_seconds(ra)
            wait = 1.0 if wait is None else min(wait, RETRY_CAP_S)
            time.sleep(max(0.0, min(wait, deadline - time.monotonic())))
            continue
        if r.status != 200:
            try: r.read(4096)
            except (OSError, http.client.HTTPException): pass
            conn.close()
            rec["outcome"] = f"HTTP {r.status}"; break
        rec["outcome"] = "200"
        rec["ttfb"] = time.monotonic() - t_req
        last = b""
        try:
            with open(rec["path"], "wb") as f:
                while True:
                    if time.monotonic() >= deadline:
                        raise TimeoutError("10 minute limit reached mid-body")
                    try:
                        chunk = r.read(64 * 1024)
                    except http.client.IncompleteRead as e:
                        f.write(e.partial); rec["bytes"] += len(e.partial)
                        raise
                    if not chunk:
                        break
                    f.write(chunk); rec["bytes"] += len(chunk); last = chunk[-1:]
            # read(amt) on a Content-Length body returns b"" early instead of raising
            if r.length not in (None, 0):
                raise http.client.IncompleteRead(b"", r.length)
            rec["clean"] = last == b"\n"
            if not rec["clean"]:
                rec["error"] = f"body ends with {last!r}, not a line break"
        except (OSError, http.client.HTTPException, TimeoutError) as e:
            rec["error"] = f"{type(e).__name__}: {e}"
        finally:
            conn.close()
        rec["transfer_s"] = time.monotonic() - t_req
        break
    rec["end"] = time.monotonic() - T0

# ---- go ----------------------------------------------------------------------------
T0 = time.monotonic()
rss_before = rss_kb(); hwm_before = rss_kb("VmHWM")
sampler_t = threading.Thread(target=sampler, daemon=True); sampler_t.start()
wrk_out = os.path.join(tmp, "wrk.txt")
with open(wrk_out, "w") as wf:
    wrk = subprocess.Popen(["wrk", f"-t{wthreads}", f"-c{wconns}", f"-d{dur}", "--latency",
                            "-H", f"Cookie: {cookie}", base + "/manage/audit"],
                           stdout=wf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
wrk_start = time.monotonic() - T0
wrk_end = [None]
def wrk_waiter():
    try:
        wrk.wait(timeout=900)
    except subprocess.TimeoutExpired:
        wrk.kill(); wrk.wait()
    wrk_end[0] = time.monotonic() - T0
wrk_t = threading.Thread(target=wrk_waiter, daemon=True); wrk_t.start()
threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
last_end = max(r["end"] for r in results)
sample_until[0] = last_end + AFTER_S
print(f"[{time.strftime('%H:%M:%S')}] all {clients} export clients done after {last_end:.1f} s; "
      f"sampling RSS {AFTER_S} s more and counting rows", file=sys.stderr)

# ---- rows (while the sampler keeps going) ------------------------------------------
def count_rows(path):
    """CSV data rows (header excluded) and the id of the last row, with the csv module."""
    rows, last = 0, None
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        r = csv.reader(f)
        header = next(r, None)
        idcol = header.index("id") if header and "id" in header else 1
        try:
            for row in r:
                if row:
                    rows += 1; last = row
        except csv.Error as e:
            return rows, None, f"csv: {e}"
    return rows, (last[idcol] if last and len(last) > idcol else None), ""

for rec in results:
    if rec["outcome"] == "200" and os.path.exists(rec["path"]):
        rec["rows"], rec["last_id"], err = count_rows(rec["path"])
        if err: rec["clean"] = False; rec["error"] = (rec["error"] + "; " + err).strip("; ")
        os.remove(rec["path"])

sampler_t.join()
hwm_after = rss_kb("VmHWM")
wrk_t.join()
wrk_end = wrk_end[0]

# ---- summary -----------------------------------------------------------------------
ok = lambda b: "yes" if b else "NO"
mb = lambda kb: f"{kb / 1024:.1f} MB" if kb is not None else "?"
got200 = [r for r in results if r["outcome"] == "200"]
complete = [r for r in got200 if r["clean"] and r.get("rows", -1) >= count_before]
cut = [r for r in got200 if r not in complete]
failed = [r for r in results if r["outcome"] != "200"]
first = min(complete, key=lambda r: r["end"]) if complete else None
refusals = [x for r in results for x in r["refusals"]]
n429 = sum(1 for s, _, _ in refusals if s == 429); n503 = sum(1 for s, _, _ in refusals if s == 503)
no_ra = sum(1 for _, ra, _ in refusals if ra is None)
ra_vals = sorted({ra for _, ra, _ in refusals if ra is not None})

print(f"\nexports ({clients} clients, `select count(*) from events` before: {count_before:,}):")
print(f"  completed: {len(complete)} / {clients}    cut off: {len(cut)}    "
      f"no 200 at all: {len(failed)}" + (f" ({', '.join(sorted({r['outcome'] for r in failed}))})" if failed else ""))
if first:
    rows_c = [r["rows"] for r in complete]
    print(f"  rows of the first complete export (client {first['i']}, done at {first['end']:.1f} s): {first['rows']:,}"
          f" = count before + {first['rows'] - count_before}")
    print(f"  rows of complete exports: {min(rows_c):,} .. {max(rows_c):,} (vs the first: "
          f"{min(rows_c) - first['rows']:+d} .. {max(rows_c) - first['rows']:+d}; each export's own `export` "
          f"event and those recorded before it start make them differ)")
    if oldest:
        ends = sum(1 for r in complete if r.get("last_id") == oldest)
        print(f"  complete exports whose last row is the oldest stored event: {ends} / {len(complete)}")
for r in cut:
    rows = r.get("rows")
    vs = f"{rows:,} rows ({rows - count_before:+d} vs count before" + (f", {rows - first['rows']:+d} vs the first complete" if first else "") + ")" if rows is not None else "rows not counted"
    print(f"  CUT OFF: client {r['i']}: {r['bytes']:,} bytes, {vs}: {r['error'] or 'fewer rows than stored before the start'}")
for r in failed:
    print(f"  FAILED: client {r['i']}: {r['outcome']} {r['error']}")
print(f"  429 answers: {n429}    503 answers: {n503}    without Retry-After: {no_ra}"
      + (f"    Retry-After values: {', '.join(ra_vals[:10])}" if ra_vals else ""))
retried = [r for r in results if r["refusals"]]
if retried:
    print(f"  clients refused at least once: {len(retried)}; most refusals of one client: "
          f"{max(len(r['refusals']) for r in retried)}")
print(f"  total wall time (start to last export's last byte): {last_end:.2f} s")
def mmm(xs, f="{:.2f}"):
    return "-" if not xs else " / ".join(f.format(v) for v in (min(xs), statistics.median(xs), max(xs)))
done = [r for r in got200 if "transfer_s" in r]
print(f"  per export, s, min / median / max: start to last byte (waits included) {mmm([r['end'] - r['start'] for r in done])};"
      f" the 200's transfer {mmm([r['transfer_s'] for r in done])}; its first byte {mmm([r['ttfb'] for r in done], '{:.3f}')}")
if got200:
    print(f"  MB per export: {statistics.median([r['bytes'] for r in got200]) / 1e6:.1f} (median)")

out = open(wrk_out).read()
def ms(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)", s)
    v, unit = float(m.group(1)), m.group(2)
    return {"us": v / 1000, "ms": v, "s": v * 1000, "m": v * 60000}[unit]
print(f"\npage (wrk ran {wrk_start:.1f}..{wrk_end:.1f} s; exports ran 0..{last_end:.1f} s"
      + ("" if wrk_end >= last_end else "; NOTE: wrk ended before the exports did: raise WRK_DURATION") + "):")
p99 = None
try:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    err = re.search(r"Socket errors: (.*)", out)
    timeouts = int(re.search(r"timeout (\d+)", err.group(1)).group(1)) if err else 0
    print(f"  {rps:.0f} req/s   p50 {p50:.1f} ms   p99 {p99:.1f} ms   requests {reqs}   "
          f"non-2xx/3xx: {bad.group(1) if bad else 0}   socket errors: {err.group(1) if err else 'none'}")
    if timeouts:
        print(f"  ({timeouts} requests hit wrk's 2 s timeout and are not in the latency figures)")
        p99 = max(p99, 2000.0)
except (AttributeError, ValueError):
    print("  could not read wrk's output:"); print("    " + out.replace("\n", "\n    "))

vals = [(t, v) for t, v in samples if v is not None]
peak_t, peak = max(vals, key=lambda x: x[1]) if vals else (None, None)
at10 = next((v for t, v in vals if t >= last_end + 10), None)
under = next((t - last_end for t, v in vals if t >= last_end and v < 100 * 1024), None)
print(f"\nserver RSS (VmRSS every 0.2 s, {len(vals)} samples):")
print(f"  before {mb(rss_before)}   peak {mb(peak)}" + (f" at {peak_t:.1f} s" if peak_t is not None else "")
      + f"   10 s after the last export {mb(at10)}   VmHWM {mb(hwm_after)} (was {mb(hwm_before)})")
print("  first under 100 MB after the last export: " + (f"{under:.1f} s after" if under is not None else f"not within {AFTER_S} s"))
if samples and samples[-1][1] is None:
    print("  THE SERVER EXITED during the run")

print("\ntargets:")
print(f"  no export cut off (and every client completed): {ok(not cut and not failed)}  ({len(cut)} cut off, {len(failed)} without a 200)")
print(f"  page p99 under 500 ms: {ok(p99 is not None and p99 < 500)}  ({'?' if p99 is None else f'{p99:.1f} ms'})")
print(f"  RSS peak under 200 MB: {ok(peak is not None and peak < 200 * 1024)}  ({mb(peak)})")
print(f"  RSS back under 100 MB within 10 s after the last export: {ok(under is not None and under <= 10)}")
PYEOF
SERVER_ERRS=$(grep -ci 'error\|panic' "$TMPDIR_BENCH/server.log" || true)
echo "server log lines with error/panic: $SERVER_ERRS"
grep -i 'error\|panic' "$TMPDIR_BENCH/server.log" | sed -E 's/^[^ ]+ +//' | cut -c1-160 | sort | uniq -c | sort -rn | head -5 | sed 's/^/    /' || true
