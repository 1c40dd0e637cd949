#!/usr/bin/env bash
# Export of the whole log through the web UI: time, TTFB, size, rows, server RSS.
#
#   bench/export.sh [N]          (default 1000000 events, SQLite)
#
# Env: AUDITDESK_BIN (default target/release/auditdesk under the repo root; built if missing),
#      FORMATS (default "csv ndjson").
# The server is restarted before each format so that VmHWM (peak RSS) belongs to that export.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

N="${1:-1000000}"; FORMATS="${FORMATS:-csv ndjson}"
resolve_bin
TMPDIR_BENCH="$(mktemp -d /tmp/auditdesk-export.XXXXXX)"
SAMPLER_PID=""
cleanup() { [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null; stop_server; rm -rf "$TMPDIR_BENCH"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

EVENTS="$(events_file "$N")"
new_database sqlite "bench_export_$N"
log "importing $N events"
t0=$(date +%s.%N)
IMPORT_OUT="$("$BIN" --database-url "$DB_URL" import "$EVENTS" 2>&1 | tail -1)" || die "import failed"
t1=$(date +%s.%N)
IMPORT_S=$(python3 -c "print(f'{$t1-$t0:.1f}')")
add_manager

kb() { awk -v k="$1:" '$1==k{print $2}' "/proc/$SERVER_PID/status"; }
RESULTS="$TMPDIR_BENCH/results.tsv"; : > "$RESULTS"
for fmt in $FORMATS; do
    stop_server; start_server; login
    base_rss=$(kb VmRSS); base_hwm=$(kb VmHWM)
    ( while kill -0 "$SERVER_PID" 2>/dev/null; do
          printf '%s %s\n' "$(date +%s.%N)" "$(awk '$1=="VmRSS:"{print $2}' /proc/$SERVER_PID/status 2>/dev/null)"
          sleep 0.2
      done ) > "$TMPDIR_BENCH/rss-$fmt.txt" &
    SAMPLER_PID=$!
    log "export format=$fmt"
    read -r code ttfb total size < <(curl -s -o "$TMPDIR_BENCH/export.$fmt" \
        -w '%{http_code} %{time_starttransfer} %{time_total} %{size_download}\n' \
        -H "Cookie: $COOKIE" "$BASE/manage/audit/export?format=$fmt")
    sleep 0.3; kill "$SAMPLER_PID" 2>/dev/null || true; wait "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=""
    hwm=$(kb VmHWM)
    lines=$(wc -l < "$TMPDIR_BENCH/export.$fmt")
    if [ "$fmt" = csv ]; then
        rows=$(python3 -c 'import csv,sys; r=csv.reader(open(sys.argv[1], newline="")); next(r, None); print(sum(1 for _ in r))' "$TMPDIR_BENCH/export.$fmt")
    else
        rows=$lines
    fi
    stored=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from events").fetchone()[0])' "$DB_URL")
    maxs=$(awk '{ if ($2>m) m=$2 } END { print m+0 }' "$TMPDIR_BENCH/rss-$fmt.txt")
    nsamp=$(wc -l < "$TMPDIR_BENCH/rss-$fmt.txt")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$fmt" "$code" "$total" "$ttfb" "$size" "$lines" "$rows:$stored" \
        "$base_rss" "$maxs" "$hwm/$base_hwm" "$nsamp" >> "$RESULTS"
    head -c 300 "$TMPDIR_BENCH/export.$fmt" > "$TMPDIR_BENCH/head-$fmt.txt"; rm -f "$TMPDIR_BENCH/export.$fmt"
done

echo
echo "== export.sh: SQLite, $N events (host: $(nproc) cores; load shared with other work) =="
echo "import: ${IMPORT_S} s   ($IMPORT_OUT)"
python3 - "$RESULTS" "$N" <<'PYEOF'
import sys
n = int(sys.argv[2])
hdr = ["format", "HTTP", "total s", "TTFB ms", "MB", "lines", "rows", "rows==stored", "RSS before MB", "max sampled RSS MB", "VmHWM after (before) MB", "samples"]
t = []
for l in open(sys.argv[1]):
    f, code, total, ttfb, size, lines, rows, base, mx, hwm, ns = l.split("\t")
    rows, stored = rows.split(":")
    t.append([f, code, f"{float(total):.2f}", f"{float(ttfb)*1000:.1f}", f"{int(size)/1e6:.1f}", lines, rows,
              f"yes ({stored})" if int(rows) == int(stored) else f"NO ({stored} stored)", f"{int(base)/1024:.1f}", f"{int(mx)/1024:.1f}", f"{int(hwm.split('/')[0])/1024:.1f} ({int(hwm.split('/')[1])/1024:.1f})", ns.strip()])
w = [max(len(str(x[i])) for x in t + [hdr]) for i in range(len(hdr))]
fmt = lambda x: " | ".join(str(v).ljust(w[i]) for i, v in enumerate(x))
print(fmt(hdr)); print("-+-".join("-" * k for k in w))
for r in t: print(fmt(r))
PYEOF
echo "(stored = events in the table after the export: the $N imported plus the app's own audit events, e.g. user add and each export)"
echo "first bytes of each export:"; for fmt in $FORMATS; do echo "  $fmt: $(head -c 160 "$TMPDIR_BENCH/head-$fmt.txt" | tr '\n' '|')"; done
