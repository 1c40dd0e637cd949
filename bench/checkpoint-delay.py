#!/usr/bin/env python3
"""How soon an event is in a signed checkpoint (issue 13: within two intervals).

    bench/checkpoint-delay.py [--interval 5] [--duration 60] [--threads 4]
                              [--batch-size 100] [--pause 0.05]

Starts `auditdesk serve` on a fresh SQLite file with --checkpoint-interval
INTERVAL, sends batches of generated events from --threads connections for
--duration seconds (each thread pausing --pause s between requests: a steady
load, not a flood), waits two more intervals, stops the server, and then reads
the database: for each event, the time from its receipt (received_at) to the
creation of the first checkpoint whose size covers its position. Prints the
delays (p50, p99, max) in seconds and in intervals, how many events took more
than two intervals, and what the server's own background check last found.

Python 3 standard library only. Env: AUDITDESK_BIN (default
target/release/auditdesk, built if missing).
"""
import argparse, datetime, http.client, os, shutil, sqlite3, subprocess, sys, tempfile
import threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ingest import events_file, free_port, log, pct, resolve_bin, wait_ready  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--interval", type=int, default=5)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--pause", type=float, default=0.05)
    a = ap.parse_args()

    binary = resolve_bin()
    tmp = tempfile.mkdtemp(prefix="auditdesk-ckpt.")
    url = os.path.join(tmp, "ckpt.db")
    try:
        def cli(*args):
            return subprocess.run([binary, "--database-url", url, *args], capture_output=True,
                                  text=True, check=True).stdout.strip()
        cli("migrate")
        token = cli("token", "create", "--name", "bench", "--scope", "ingest").splitlines()[-1].strip()
        port = free_port()
        server = subprocess.Popen([binary, "--database-url", url, "serve", "--bind", f"127.0.0.1:{port}",
                                   "--checkpoint-interval", str(a.interval)],
                                  stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "server.log"), "w"))
        wait_ready(port, 30)

        lines = []
        with open(events_file(1_000_000, 42), "rb") as f:
            for i, line in enumerate(f):
                if i >= 400_000: break
                lines.append(line.rstrip(b"\n"))
        bodies = [b"[" + b",".join(lines[i:i + a.batch_size]) + b"]"
                  for i in range(0, len(lines), a.batch_size)]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        lock, next_body, acked = threading.Lock(), [0], [0]
        deadline = time.monotonic() + a.duration

        def sender():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            while time.monotonic() < deadline:
                with lock:
                    if next_body[0] >= len(bodies): break
                    body = bodies[next_body[0]]; next_body[0] += 1
                conn.request("POST", "/api/v1/audit-logs", body=body, headers=headers)
                r = conn.getresponse(); r.read()
                if r.status == 201:
                    with lock: acked[0] += a.batch_size
                time.sleep(a.pause)
        log(f"sending for {a.duration:.0f} s from {a.threads} threads, interval {a.interval} s")
        threads = [threading.Thread(target=sender) for _ in range(a.threads)]
        for t in threads: t.start()
        for t in threads: t.join()
        log(f"{acked[0]} events acknowledged; waiting two intervals")
        time.sleep(2 * a.interval + 1)
        server.terminate(); server.wait(30)

        db = sqlite3.connect(url)
        checkpoints = db.execute("select size, created_at from checkpoints order by size").fetchall()
        parse = lambda s: datetime.datetime.fromisoformat(s)
        delays = []
        k = 0
        for position, received in db.execute(
                "select l.position, e.received_at from log_entries l join events e on e.id = l.event_id "
                "order by l.position"):
            while k < len(checkpoints) and checkpoints[k][0] <= position:
                k += 1
            if k == len(checkpoints):
                delays.append(float("inf")); continue
            delays.append((parse(checkpoints[k][1]) - parse(received)).total_seconds())
        check = db.execute("select verified_size, checked_at, problems from log_checks").fetchone()
        delays.sort()
        over = sum(1 for d in delays if d > 2 * a.interval)
        print(f"events {len(delays)}, checkpoints {len(checkpoints)}, interval {a.interval} s")
        for name, p in (("p50", 50), ("p99", 99), ("max", 100)):
            d = pct(delays, p) if p < 100 else delays[-1]
            print(f"{name} receipt -> covering checkpoint: {d:.2f} s ({d / a.interval:.2f} intervals)")
        print(f"events later than two intervals: {over}")
        print(f"server's check: verified {check[0]} of {len(delays)} positions at {check[1]}, "
              f"problems: {check[2] or 'none'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
