#!/usr/bin/env bash
# Streams: a backlog of N events delivered to a local webhook, then the time
# from an event's commit to its delivery on an idle server.
#
#   bench/stream.sh [sqlite|postgres] [N]        (defaults: sqlite 1000000)
#
# The receiver (python3, standard library) answers 200 and counts the NDJSON
# lines it is sent, and the time each event id arrived. Prints: the backlog's
# events/s (from the server's start to the last event received), repeats, and
# for LATENCY_EVENTS single events sent one at a time over the API (one a
# quarter second), the p50/p90/max of (received - acknowledged).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

BACKEND="${1:-sqlite}"; N="${2:-1000000}"; LATENCY_EVENTS="${LATENCY_EVENTS:-40}"
case "$BACKEND" in sqlite|postgres) ;; *) die "backend must be sqlite or postgres" ;; esac
resolve_bin
TMPDIR_BENCH="$(mktemp -d /tmp/auditdesk-stream.XXXXXX)"
RECEIVER_PID=""
cleanup() {
    stop_server
    [ -n "$RECEIVER_PID" ] && kill "$RECEIVER_PID" 2>/dev/null || true
    drop_database
    rm -rf "$TMPDIR_BENCH"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

EVENTS="$(events_file "$N")"
new_database "$BACKEND" "bench_stream_${N}"
log "importing $N events into $BACKEND"
"$BIN" --database-url "$DB_URL" import "$EVENTS" >/dev/null 2>&1 || die "import failed"

RPORT="$(free_port)"
python3 - "$RPORT" "$TMPDIR_BENCH/received" <<'PYEOF' &
import http.server, json, sys, threading, time
port, out = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()
seen = set(); state = {"lines": 0, "repeats": 0, "last": 0.0}
arrivals = open(out + ".arrivals", "w")
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        now = time.time()
        with lock:
            for line in body.splitlines():
                i = line.find(b'"id":"'); eid = line[i + 6:i + 42]
                if eid in seen: state["repeats"] += 1
                else: seen.add(eid)
                state["lines"] += 1
                arrivals.write(f"{eid.decode()} {now:.6f}\n")
            arrivals.flush()
            state["last"] = now
            with open(out, "w") as f: json.dump(state, f)
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PYEOF
RECEIVER_PID=$!

"$BIN" --database-url "$DB_URL" stream add --name bench --kind webhook --url "http://127.0.0.1:$RPORT/in" >/dev/null 2>&1 \
    || die "stream add failed"
TOTAL=$((N + 1))   # the events and the stream's own creation
T0=$(date +%s.%N)
start_server
log "delivering the backlog of $TOTAL events"
python3 - "$TMPDIR_BENCH/received" "$TOTAL" "$T0" <<'PYEOF'
import json, sys, time
path, total, t0 = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.time() + 3600
while time.time() < deadline:
    try: s = json.load(open(path))
    except Exception: s = {"lines": 0, "repeats": 0, "last": t0}
    if s["lines"] - s["repeats"] >= total:
        secs = s["last"] - t0
        print(f"backlog: {total} events delivered in {secs:.1f} s from the server's start: "
              f"{total / secs:,.0f} events/s; repeats {s['repeats']}")
        sys.exit(0)
    time.sleep(0.2)
sys.exit("backlog not delivered within an hour")
PYEOF

TOKEN="$("$BIN" --database-url "$DB_URL" token create --name bench-ingest --scope ingest 2>/dev/null)"
log "latency: $LATENCY_EVENTS single events over the API, one every 0.25 s"
python3 - "$BASE" "$TOKEN" "$TMPDIR_BENCH/received.arrivals" "$LATENCY_EVENTS" <<'PYEOF'
import json, sys, time, uuid, urllib.request
base, token, arrivals, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sent = {}
for i in range(n):
    eid = str(uuid.uuid4())
    ev = {"id": eid, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
          "user": {"username": "bench", "email": "bench@example.com"}, "action": "write",
          "resource_type": "workspace", "resource_id": f"lat-{i}", "resource_target": "latency",
          "ip": "127.0.0.1", "user_agent": "bench", "status_code": 200, "request_id": eid, "diff": {}}
    req = urllib.request.Request(base + "/api/v1/audit-logs", data=json.dumps(ev).encode(),
                                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
    sent[eid] = time.time()
    time.sleep(0.25)
deadline = time.time() + 30
got = {}
while time.time() < deadline and len(got) < n:
    for line in open(arrivals):
        eid, t = line.split()
        if eid in sent and eid not in got: got[eid] = float(t)
    time.sleep(0.2)
lat = sorted(got[e] - sent[e] for e in got)
if len(lat) < n: sys.exit(f"only {len(lat)} of {n} delivered within 30 s")
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
print(f"commit to delivery ({n} events, idle server): p50 {q(0.5):.0f} ms, p90 {q(0.9):.0f} ms, max {lat[-1]*1000:.0f} ms")
PYEOF
RSS=$(awk '/VmRSS/{print $2/1024 " MB"}' /proc/$SERVER_PID/status)
echo "server RSS after: $RSS"
