#!/usr/bin/env python3
"""Ingest throughput of POST /api/v1/audit-logs (Python 3 standard library only).

    bench/ingest.py [sqlite|postgres] [--batch-events 1000000] [--threads 8]
                    [--batch-size 1000] [--duration 30] [--singles-clients 64]
                    [--singles-duration 30] [--stream]

Phase 1: batches of --batch-size events (pre-serialized JSON arrays: the client
does no JSON encoding while timed) from --threads keep-alive connections, until
--batch-events are sent or --duration seconds pass.
Phase 2: --singles-clients threads, each sending one event per request for
--singles-duration seconds; then the stored count is compared with the 201s.

--stream: a webhook stream to a local receiver (a python3 process of its own)
is added first; the report says how far behind the log it was at the end of
each phase and when it caught up.

Env: AUDITDESK_BIN (default target/release/auditdesk under the repo root; built
with `cargo build --release` if missing), PG_HOST/PG_PORT/PG_USER (PostgreSQL,
default 127.0.0.1:5432 postgres, trust auth).
"""
import argparse, atexit, collections, http.client, json, os, shutil, signal, socket
import sqlite3, subprocess, sys, tempfile, threading, time, uuid

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
GEN = os.path.join(REPO_ROOT, "..", "shared", "bench", "gen_events.py")
if not os.path.exists(GEN):
    GEN = "/work/shared/bench/gen_events.py"
PG = dict(host=os.environ.get("PG_HOST", "127.0.0.1"), port=os.environ.get("PG_PORT", "5432"),
          user=os.environ.get("PG_USER", "postgres"))


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def resolve_bin():
    b = os.environ.get("AUDITDESK_BIN", "target/release/auditdesk")
    if not os.path.isabs(b):
        b = os.path.join(REPO_ROOT, b)
    if not os.access(b, os.X_OK):
        log(f"{b} missing: cargo build --release")
        subprocess.run(["cargo", "build", "--release"], cwd=REPO_ROOT, check=True)
    return b


def events_file(n, seed):
    path = f"/tmp/events-{n}.ndjson" if seed == 42 else f"/tmp/events-{n}-seed{seed}.ndjson"
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        log(f"generating {n} events seed {seed} -> {path}")
        with open(path + ".tmp", "w") as f:
            subprocess.run([sys.executable, GEN, "--events", str(n), "--seed", str(seed)], stdout=f, check=True)
        os.rename(path + ".tmp", path)
    return path


def psql(db, sql):
    return subprocess.run(["psql", "-q", "-At", "-h", PG["host"], "-p", PG["port"], "-U", PG["user"], "-d", db,
                           "-c", sql], check=True, capture_output=True, text=True).stdout.strip()


# A webhook receiver that answers 200 to every POST (for --stream).
RECEIVER = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def wait_ready(port, seconds=60):
    """Waits until the server on `port` answers /readyz 200; exits if it never does."""
    for _ in range(int(seconds * 10)):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2); c.request("GET", "/readyz")
            if c.getresponse().status == 200: return
        except OSError: pass
        time.sleep(0.1)
    sys.exit("server not ready")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid):
    """CPU seconds of each of the server's threads, summed by thread name."""
    out = collections.Counter()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                head, rest = f.read().rsplit(")", 1)
        except OSError:
            continue  # the thread ended
        parts = rest.split()
        out[head.split("(", 1)[1]] += (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    return out


def pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    return sorted_vals[min(len(sorted_vals) - 1, int(p / 100 * len(sorted_vals)))]


def table(hdr, rows):
    w = [max(len(str(r[i])) for r in rows + [hdr]) for i in range(len(hdr))]
    fmt = lambda r: " | ".join(str(v).ljust(w[i]) for i, v in enumerate(r))
    print(fmt(hdr)); print("-+-".join("-" * k for k in w))
    for r in rows: print(fmt(r))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("backend", nargs="?", default="sqlite", choices=["sqlite", "postgres"])
    ap.add_argument("--batch-events", type=int, default=1_000_000)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--duration", type=float, default=30)
    ap.add_argument("--singles-clients", type=int, default=64)
    ap.add_argument("--singles-duration", type=float, default=30)
    ap.add_argument("--stream", action="store_true", help="forward every event to a local webhook")
    a = ap.parse_args()

    binary = resolve_bin()
    tmp = tempfile.mkdtemp(prefix="auditdesk-ingest.")
    state = {"server": None, "pgdb": None, "receiver": None}

    def cleanup():
        if state["receiver"] and state["receiver"].poll() is None:
            state["receiver"].kill()
        srv = state["server"]
        if srv and srv.poll() is None:
            srv.terminate()
            try: srv.wait(10)
            except subprocess.TimeoutExpired: srv.kill()
        if state["pgdb"]:
            try: psql("postgres", f"drop database if exists {state['pgdb']}")
            except Exception as e: log(f"drop database failed: {e}")
        shutil.rmtree(tmp, ignore_errors=True)
    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))

    if a.backend == "postgres":
        name = "bench_ingest"
        psql("postgres", f"drop database if exists {name}")
        psql("postgres", f"create database {name}")
        state["pgdb"] = name
        url = f"postgres://{PG['user']}@{PG['host']}:{PG['port']}/{name}"
    else:
        url = os.path.join(tmp, "ingest.db")

    def cli(*args, stdin=None):
        return subprocess.run([binary, "--database-url", url, *args], input=stdin, capture_output=True,
                              text=True, check=True).stdout.strip()

    cli("migrate")
    ingest_token = cli("token", "create", "--name", "bench-ingest", "--scope", "ingest").splitlines()[-1].strip()
    if a.stream:
        rport = free_port()
        state["receiver"] = subprocess.Popen([sys.executable, "-c", RECEIVER, str(rport)])
        cli("stream", "add", "--name", "bench", "--kind", "webhook", "--url", f"http://127.0.0.1:{rport}/in")
    def stream_behind():
        """With --stream: how many log positions the stream has yet to deliver."""
        if not a.stream:
            return None
        sql = "select (select next_position from log_state) - (select next_position from streams where name = 'bench')"
        if a.backend == "postgres":
            return int(psql(state["pgdb"], sql))
        db = sqlite3.connect(url, timeout=30)
        try: return db.execute(sql).fetchone()[0]
        finally: db.close()
    def count_events():
        if a.backend == "postgres":
            return int(psql(state["pgdb"], "select count(*) from events"))
        db = sqlite3.connect(url, timeout=30)
        try: return db.execute("select count(*) from events").fetchone()[0]
        finally: db.close()
    baseline = count_events()  # the app's own audit events (e.g. the token creation)
    def index_lag():
        """SQLite: how many events the free-text index (written behind the log, in
        `<database>.search`) does not hold yet; None on PostgreSQL."""
        if a.backend == "postgres" or not os.path.exists(url + ".search"):
            return None
        db = sqlite3.connect(url, timeout=30)
        try:
            db.execute("attach database ? as search", (url + ".search",))
            through = db.execute("select coalesce(max(through_id), 0) from search.text_indexed").fetchone()[0]
            return db.execute("select coalesce(max(id), 0) from events").fetchone()[0] - through
        finally: db.close()
    port = free_port()
    srv_log = open(os.path.join(tmp, "server.log"), "w")
    state["server"] = subprocess.Popen([binary, "--database-url", url, "serve", "--bind", f"127.0.0.1:{port}"],
                                       stdout=srv_log, stderr=subprocess.STDOUT)
    pid = state["server"].pid
    wait_ready(port)

    headers = {"Authorization": f"Bearer {ingest_token}", "Content-Type": "application/json"}

    # ---------- phase 1: batches ----------
    src = events_file(1_000_000, 42)
    bodies = []
    with open(src, "rb") as f:
        batch = []
        for i, line in enumerate(f):
            if i >= a.batch_events: break
            batch.append(line.rstrip(b"\n"))
            if len(batch) == a.batch_size:
                bodies.append((len(batch), b"[" + b",".join(batch) + b"]")); batch = []
        if batch: bodies.append((len(batch), b"[" + b",".join(batch) + b"]"))
    log(f"phase 1: {len(bodies)} batches of {a.batch_size}, {a.threads} threads, {sum(len(b) for _, b in bodies)/1e6:.0f} MB")

    lock = threading.Lock()
    queue = collections.deque(bodies)
    p1 = collections.Counter(); p1_lat = []; p1_acked = [0]
    deadline = [0.0]

    def batch_worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while time.monotonic() < deadline[0]:
            with lock:
                if not queue: break
                n, body = queue.popleft()
            t = time.monotonic()
            try:
                conn.request("POST", "/api/v1/audit-logs", body=body, headers=headers)
                r = conn.getresponse(); data = r.read(); status = r.status
            except (OSError, http.client.HTTPException) as e:
                status = f"error {type(e).__name__}"; data = b""
                conn.close(); conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            dt = time.monotonic() - t
            with lock:
                p1[status] += 1; p1_lat.append(dt)
                if status == 201:
                    p1_acked[0] += len(json.loads(data)["ids"])
        conn.close()

    c0, s0, t0 = time.process_time(), cpu_seconds(pid), time.monotonic()
    threads0 = thread_cpu_seconds(pid)
    deadline[0] = t0 + a.duration
    ths = [threading.Thread(target=batch_worker) for _ in range(a.threads)]
    for t in ths: t.start()
    for t in ths: t.join()
    wall1 = time.monotonic() - t0
    client_cpu1, server_cpu1 = time.process_time() - c0, cpu_seconds(pid) - s0
    threads1 = thread_cpu_seconds(pid)
    threads1.subtract(threads0)
    p1_lat.sort()
    lag1 = index_lag()
    behind1 = stream_behind()

    # ---------- phase 2: singles ----------
    templates = []
    with open(events_file(20_000, 7), "rb") as f:
        for line in f:
            templates.append(line.rstrip(b"\n"))
    p2 = collections.Counter(); p2_lat = []
    stop_at = [0.0]

    def single_worker(k):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        i = k; local = collections.Counter(); lat = []
        while time.monotonic() < stop_at[0]:
            tpl = templates[i % len(templates)]; i += a.singles_clients
            body = b'{"id":"' + str(uuid.uuid4()).encode() + tpl[43:]  # replace the 36-char id
            t = time.monotonic()
            try:
                conn.request("POST", "/api/v1/audit-logs", body=body, headers=headers)
                r = conn.getresponse(); r.read(); status = r.status
            except (OSError, http.client.HTTPException) as e:
                status = f"error {type(e).__name__}"
                conn.close(); conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            lat.append(time.monotonic() - t); local[status] += 1
        conn.close()
        with lock:
            p2.update(local); p2_lat.extend(lat)

    assert templates[0][:7] == b'{"id":"' and templates[0][43:44] == b'"', "unexpected event layout"
    log(f"phase 2: {a.singles_clients} clients x single events for {a.singles_duration:.0f} s")
    c0, s0, t0 = time.process_time(), cpu_seconds(pid), time.monotonic()
    stop_at[0] = t0 + a.singles_duration
    ths = [threading.Thread(target=single_worker, args=(k,)) for k in range(a.singles_clients)]
    for t in ths: t.start()
    for t in ths: t.join()
    wall2 = time.monotonic() - t0
    client_cpu2, server_cpu2 = time.process_time() - c0, cpu_seconds(pid) - s0
    p2_lat.sort()

    stored = count_events() - baseline
    behind2, t_end = stream_behind(), time.monotonic()
    stream_caught_up = None
    while behind2 is not None and time.monotonic() - t_end < 600:
        if stream_behind() <= 0:
            stream_caught_up = time.monotonic() - t_end
            break
        time.sleep(0.1)
    lag2, t_end = index_lag(), time.monotonic()
    caught_up = None
    while lag2 is not None and time.monotonic() - t_end < 600:
        if index_lag() <= 0:
            caught_up = time.monotonic() - t_end
            break
        time.sleep(0.2)
    srv_log.flush()
    errs = sum(1 for l in open(os.path.join(tmp, "server.log"), errors="replace") if "ERROR" in l or "panic" in l)

    p1_ok = p1.get(201, 0); p2_ok = p2.get(201, 0)
    print()
    print(f"== ingest.py: backend={a.backend} (host: {os.cpu_count()} cores; load shared with other work; client is Python in the same host) ==")
    table(["phase", "clients", "wall s", "requests", "201", "non-201", "events acked", "events/s",
           "req p50 ms", "req p99 ms", "client CPU %", "server CPU %"],
          [["batches of %d" % a.batch_size, a.threads, f"{wall1:.1f}", sum(p1.values()), p1_ok,
            sum(v for k, v in p1.items() if k != 201), p1_acked[0], f"{p1_acked[0]/wall1:,.0f}",
            f"{pct(p1_lat,50)*1000:.0f}", f"{pct(p1_lat,99)*1000:.0f}",
            f"{100*client_cpu1/wall1:.0f}", f"{100*server_cpu1/wall1:.0f}"],
           ["single events", a.singles_clients, f"{wall2:.1f}", sum(p2.values()), p2_ok,
            sum(v for k, v in p2.items() if k != 201), p2_ok, f"{p2_ok/wall2:,.0f}",
            f"{pct(p2_lat,50)*1000:.1f}", f"{pct(p2_lat,99)*1000:.1f}",
            f"{100*client_cpu2/wall2:.0f}", f"{100*server_cpu2/wall2:.0f}"]])
    print(f"phase 1 statuses: {dict(p1)}; batches left unsent: {len(queue)}")
    busiest = ", ".join(f"{name} {sec:.1f} s" for name, sec in threads1.most_common(4) if sec > 0)
    print(f"phase 1 server CPU by thread: {busiest}")
    if threads1["event-writer"] > 0 and p1_acked[0]:
        print(f"phase 1 event-writer thread: {1e6 * threads1['event-writer'] / p1_acked[0]:.1f} µs CPU per event "
              f"(busy {100 * threads1['event-writer'] / wall1:.0f}% of the wall time)")
    print(f"phase 2 statuses: {dict(p2)}")
    expected = p1_acked[0] + p2_ok
    print(f"events stored by the benchmark (table count minus {baseline} present before): {stored:,}; 201-acknowledged events: {expected:,} -> "
          f"{'stored == acknowledged' if stored == expected else 'MISMATCH (stored - acked = %d)' % (stored - expected)}")
    if lag2 is not None:
        done = f"caught up {caught_up:.1f} s later" if caught_up is not None else "NOT caught up within 600 s"
        print(f"free-text index (written behind the log): {lag1:,} events behind at the end of phase 1, "
              f"{lag2:,} at the end of phase 2, {done}")
    if behind2 is not None:
        done = f"caught up {stream_caught_up:.1f} s later" if stream_caught_up is not None else "NOT caught up within 600 s"
        print(f"webhook stream: {behind1:,} log positions behind at the end of phase 1, {behind2:,} at the end of phase 2, {done}")
    print(f"server log lines with ERROR/panic: {errs}")
    print("(CPU % is of one core; 200% = both cores. Client CPU near 100% means the single-threaded Python client is the limit.)")


if __name__ == "__main__":
    main()
