#!/usr/bin/env bash
# Page under load: GET /manage/audit with filters, wrk -t2 -c16 -d10s.
#
#   bench/page.sh [sqlite|postgres] [N]        (defaults: sqlite 1000000)
#
# Env: AUDITDESK_BIN (default target/release/auditdesk under the repo root; built if missing),
#      WRK_DURATION (default 10s), WRK_CONNS (16), WRK_THREADS (2), EXTRA_CASES=0 to skip extras,
#      PG_HOST/PG_PORT/PG_USER for PostgreSQL (default 127.0.0.1:5432 postgres, trust auth),
#      KEEP_DB=1 keeps the database (path printed) for EXPLAIN afterwards;
#      PG_VACUUM=1 runs VACUUM ANALYZE on events after a PostgreSQL import (no longer needed: the import does it).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

BACKEND="${1:-sqlite}"; N="${2:-1000000}"
case "$BACKEND" in sqlite|postgres) ;; *) die "backend must be sqlite or postgres" ;; esac
DUR="${WRK_DURATION:-10s}"; CONNS="${WRK_CONNS:-16}"; THREADS="${WRK_THREADS:-2}"
command -v wrk >/dev/null || die "wrk not installed"

resolve_bin
TMPDIR_BENCH="$(mktemp -d /tmp/auditdesk-page.XXXXXX)"
cleanup() { stop_server; drop_database; if [ -z "${KEEP_DB:-}" ]; then rm -rf "$TMPDIR_BENCH"; else log "kept $TMPDIR_BENCH"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM

EVENTS="$(events_file "$N")"
PICKS="$(python3 "$BENCH_DIR/pick_values.py" "$EVENTS")"
pick() { printf '%s' "$PICKS" | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
urlenc() { python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }

new_database "$BACKEND" "bench_page_${N}"
log "importing $N events into $BACKEND ($DB_URL)"
t0=$(date +%s.%N)
IMPORT_OUT="$("$BIN" --database-url "$DB_URL" import "$EVENTS" 2>&1 | tail -3)" || die "import failed: $IMPORT_OUT"
t1=$(date +%s.%N)
IMPORT_S=$(python3 -c "print(f'{$t1-$t0:.1f}')")
log "import: ${IMPORT_S}s: $IMPORT_OUT"
# The import leaves hundreds of MB of dirty pages for the kernel to write back; let it
# finish now rather than during the first cases.
sync
VACUUM_NOTE=""
if [ "$BACKEND" = postgres ] && [ -n "${PG_VACUUM:-}" ]; then
    # What autovacuum does eventually; without it the visibility map is empty after a bulk
    # import and the planner avoids index-only scans for the capped counts.
    log "PG_VACUUM=1: vacuum analyze events"
    psql -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$PG_DB_NAME" -c "vacuum analyze events" >/dev/null
    VACUUM_NOTE=" (then VACUUM ANALYZE events, PG_VACUUM=1)"
fi
if [ "$BACKEND" = sqlite ]; then
    DB_SIZE="$(du -m "$DB_URL" | cut -f1) MB (+wal $(du -m "$DB_URL-wal" 2>/dev/null | cut -f1 || echo 0) MB)"
else
    DB_SIZE="$(psql -At -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$PG_DB_NAME" -c "select pg_size_pretty(pg_database_size(current_database()))")"
fi

add_manager
READ_TOKEN="$("$BIN" --database-url "$DB_URL" token create --name bench-read --scope read 2>/dev/null)" || die "token create failed"
start_server
login
INDEX_NOTE=""
if [ "$BACKEND" = sqlite ]; then
    # The free-text index is written behind the log by the server (in $DB_URL.search):
    # the import does not build it. The cases are measured once it has caught up, and
    # the time it took is printed.
    log "waiting for the server to fill the free-text index"
    INDEX_S=$(python3 - "$DB_URL" <<'PYEOF'
import sqlite3, sys, time
url = sys.argv[1]; t0 = time.monotonic()
while time.monotonic() - t0 < 3600:
    db = sqlite3.connect(url, timeout=30)
    try:
        db.execute("attach database ? as search", (url + ".search",))
        through = db.execute("select coalesce(max(through_id), 0) from search.text_indexed").fetchone()[0]
        newest = db.execute("select coalesce(max(id), 0) from events").fetchone()[0]
    finally:
        db.close()
    if through >= newest:
        print(f"{time.monotonic() - t0:.1f}"); sys.exit(0)
    time.sleep(0.5)
print("not within 3600")
PYEOF
)
    INDEX_NOTE="free-text index filled by the server: ${INDEX_S} s after it started"
    log "$INDEX_NOTE"
fi

TOP_USER="$(pick top_user)"; TOP_TARGET="$(pick top_target)"; RARE="$(pick rare_target)"
FROM="$(pick from)"; TO="$(pick to)"

# Follow the "Older" link 20 times from the unfiltered page.
deep_url() {
    local url="/manage/audit" i
    for i in $(seq 1 20); do
        url="$(curl -s -H "Cookie: $COOKIE" "$BASE$url" | python3 -c '
import re, sys, html
m = re.search(r"<a href=\"([^\"]*)\" rel=\"next\">", sys.stdin.read())
print(html.unescape(m.group(1)) if m else "")')"
        [ -n "$url" ] || { echo ""; return; }
    done
    echo "$url"
}
DEEP="$(deep_url)"

CASES=(
  "no filter|/manage/audit|rows"
  "resource_type=workspace|/manage/audit?resource_type=workspace|rows"
  "action=write|/manage/audit?action=write|rows"
  "resource_target=<top: $TOP_TARGET>|/manage/audit?resource_target=$(urlenc "$TOP_TARGET")|rows"
  "user=<top: $TOP_USER>|/manage/audit?user=$(urlenc "$TOP_USER")|rows"
  "user=<top>&action=write|/manage/audit?user=$(urlenc "$TOP_USER")&action=write|rows"
  "resource_target=<rare, 1 event>|/manage/audit?resource_target=$(urlenc "$RARE")|rows"
  "from=$FROM&to=$TO|/manage/audit?from=$FROM&to=$TO|rows"
  "20 pages deep (cursor)|${DEEP:-MISSING}|rows"
)
if [ "${EXTRA_CASES:-1}" = 1 ]; then
  CASES+=(
    "(extra) status=failure|/manage/audit?status=failure|rows"
    "(extra) q=gpu_vendor (a diff field name)|/manage/audit?q=gpu_vendor|rows"
    "(extra) q=<rare target>|/manage/audit?q=$(urlenc "$RARE")|rows"
    "(extra) q=docs (in ~4.6% of events)|/manage/audit?q=docs|rows"
    "(extra) q=build (in ~6% of events)|/manage/audit?q=build|rows"
    "(extra) q=ttl (in ~0.7% of events)|/manage/audit?q=ttl|rows"
    "(extra) q=zq (two characters)|/manage/audit?q=zq|any"
    "(extra) q=gpu_vendor&action=write|/manage/audit?q=gpu_vendor&action=write|any"
    "(extra) search=action:create action:delete|/manage/audit?search=$(urlenc "action:create action:delete")|rows"
    "(extra) search=action:write -user:<top> gpu_vendor|/manage/audit?search=$(urlenc "action:write -user:$TOP_USER gpu_vendor")|rows"
    "(api) no filter|/api/v1/audit-logs|rows"
    "(api) action=write|/api/v1/audit-logs?action=write|rows"
    "(api) q=gpu_vendor|/api/v1/audit-logs?q=gpu_vendor|rows"
    "(extra) user=<top>&action=cordon (0 rows)|/manage/audit?user=$(urlenc "$TOP_USER")&action=cordon|any"
  )
fi

# Wait until the server is idle (queries left over from the previous case have finished).
wait_idle() {
    local i a b tck; tck=$(getconf CLK_TCK)
    for i in $(seq 1 120); do
        a=$(awk '{print $14+$15}' "/proc/$SERVER_PID/stat"); sleep 0.5
        b=$(awk '{print $14+$15}' "/proc/$SERVER_PID/stat")
        [ $((b - a)) -le $((tck / 20)) ] && return 0
    done
    log "server still busy after 60 s"
}

RESULTS="$TMPDIR_BENCH/results.tsv"; : > "$RESULTS"
for c in "${CASES[@]}"; do
    wait_idle
    IFS='|' read -r name path want <<<"$c"
    if [ "$path" = MISSING ]; then
        printf '%s\t%s\t-\t-\t-\t-\t-\t-\t%s\n' "$name" "-" "no Older link 20 pages deep" >> "$RESULTS"; continue
    fi
    url="$BASE$path"
    # The JSON API takes the read token; the page, the session cookie.
    case "$path" in
        /api/*) auth="Authorization: Bearer $READ_TOKEN"; row_mark='"resource_target":' ;;
        *) auth="Cookie: $COOKIE"; row_mark='<td class="time"' ;;
    esac
    read -r code ttotal size < <(curl -s -o "$TMPDIR_BENCH/page.html" -w '%{http_code} %{time_total} %{size_download}\n' -H "$auth" "$url")
    rows=$(grep -o "$row_mark" "$TMPDIR_BENCH/page.html" | wc -l || true)
    if [ "$code" != 200 ]; then
        log "case '$name' answered $code: not benchmarked"
        printf '%s\t%s\t-\t-\t-\t-\t%s\t%s\t%s\n' "$name" "$code" "$rows" "$(python3 -c "print(round($ttotal*1000,1))")" "HTTP $code: not benchmarked" >> "$RESULTS"; continue
    fi
    if [ "$want" = rows ] && [ "$rows" -eq 0 ]; then
        log "case '$name' has no rows: not benchmarked"
        printf '%s\t%s\t-\t-\t-\t-\t0\t-\t%s\n' "$name" "$code" "no rows: not benchmarked" >> "$RESULTS"; continue
    fi
    log "wrk: $name"
    wout="$TMPDIR_BENCH/wrk-$(echo "$name" | tr -c 'a-zA-Z0-9' _).txt"
    wrk -t"$THREADS" -c"$CONNS" -d"$DUR" --latency -H "$auth" "$url" > "$wout" 2>&1 || true
    python3 - "$name" "$code" "$rows" "$ttotal" "$wout" <<'PYEOF' >> "$RESULTS"
import re, sys
name, code, rows, ttotal = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
out = open(sys.argv[5]).read()
def ms(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)", s)
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v if u == "ms" else v * 1000 if u == "s" else v * 60000
rps = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
lat_max = ms(re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", out).group(1))
reqs = re.search(r"(\d+) requests in", out).group(1)
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
err = re.search(r"Socket errors: (.*)", out)
notes = []
if bad: notes.append(f"NON-2xx: {bad.group(1)}")
if err: notes.append("socket errors: " + err.group(1) + " (timeouts are wrk's 2 s limit)")
# wrk leaves requests that hit its 2 s timeout out of the latency figures
p50s, p99s = f"{p50:.1f}", f"{p99:.1f}"
if p50 == 0: p50s = p99s = ">2000 (all timed out)"
elif err and "timeout" in err.group(1) and not err.group(1).endswith("timeout 0"): p99s = ">2000 (timeouts)"
print(f"{name}\t{code}\t{float(rps):.0f}\t{p50s}\t{p99s}\t{reqs}\t{rows}\t{ttotal*1000:.1f}\t{'; '.join(notes)}")
PYEOF
done

# The server's memory after every case: resident now (anonymous: its own heap and
# caches; file: mapped pages of the database) and at its peak.
rss_mb() { awk -v k="$1:" '$1==k {printf "%.0f", $2/1024}' "/proc/$SERVER_PID/status"; }
SERVER_RSS="VmRSS $(rss_mb VmRSS) MB (anonymous $(rss_mb RssAnon) MB, file $(rss_mb RssFile) MB), peak VmHWM $(rss_mb VmHWM) MB"
SERVER_ERRS=$(grep -ci 'error\|panic' "$TMPDIR_BENCH/server.log" || true)
SERVER_ERR_KINDS=$(grep -i 'error\|panic' "$TMPDIR_BENCH/server.log" | sed -E 's/^[^ ]+ +//' | sort | uniq -c | sort -rn | head -5 || true)
echo
echo "== page.sh: backend=$BACKEND events=$N wrk -t$THREADS -c$CONNS -d$DUR (host: $(nproc) cores; load shared with other work) =="
echo "import: ${IMPORT_S} s   ($IMPORT_OUT)$VACUUM_NOTE"
echo "database size: $DB_SIZE"
[ -n "$INDEX_NOTE" ] && echo "$INDEX_NOTE"
echo "server memory after the cases: $SERVER_RSS"
echo "server log lines with error/panic: $SERVER_ERRS"
[ -n "$SERVER_ERR_KINDS" ] && printf '%s\n' "$SERVER_ERR_KINDS" | sed 's/^/    /' || true
python3 - "$RESULTS" <<'PYEOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
hdr = ["case", "HTTP", "req/s", "p50 ms", "p99 ms", "requests", "rows", "1st curl ms", "x unfiltered p50", "notes"]
base = None
for r in rows:
    if r[0] == "no filter" and r[3] != "-": base = float(r[3])
table = []
for r in rows:
    try: ratio = f"{float(r[3]) / base:.1f}" if base else "-"
    except ValueError: ratio = ">" + f"{2000 / base:.0f}" if base and r[3].startswith(">") else "-"
    table.append([r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], ratio, r[8]])
w = [max(len(str(x[i])) for x in table + [hdr]) for i in range(len(hdr))]
fmt = lambda x: " | ".join(str(v).ljust(w[i]) for i, v in enumerate(x))
print(fmt(hdr)); print("-+-".join("-" * n for n in w))
for t in table: print(fmt(t))
PYEOF
if [ -n "${KEEP_DB:-}" ]; then echo "database kept: $DB_URL"; fi
