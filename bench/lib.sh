# Shared helpers for the bench/*.sh scripts (sourced, not run).
# Bash + curl + python3 (standard library) only.

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$BENCH_DIR/.." && pwd)"
GEN="${AUDITDESK_GEN:-$REPO_ROOT/../shared/bench/gen_events.py}"
[ -f "$GEN" ] || GEN=/work/shared/bench/gen_events.py
BENCH_PASSWORD='correct horse battery staple bench'

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Resolve $AUDITDESK_BIN (default target/release/auditdesk under the repo root);
# build it with `cargo build --release` only if it is missing.
resolve_bin() {
    BIN="${AUDITDESK_BIN:-target/release/auditdesk}"
    case "$BIN" in /*) ;; *) BIN="$REPO_ROOT/$BIN" ;; esac
    if [ ! -x "$BIN" ]; then
        log "$BIN missing: cargo build --release in $REPO_ROOT"
        (cd "$REPO_ROOT" && cargo build --release) || die "build failed"
        [ -x "$BIN" ] || die "$BIN still missing after build"
    fi
    export BIN
}

# events_file N [SEED] -> prints the path of a cached NDJSON file in /tmp.
events_file() {
    local n="$1" seed="${2:-42}" f="/tmp/events-$1.ndjson"
    [ "$seed" = 42 ] || f="/tmp/events-$1-seed$seed.ndjson"
    if [ ! -s "$f" ]; then
        log "generating $n events (seed $seed) -> $f"
        python3 "$GEN" --events "$n" --seed "$seed" > "$f.tmp" && mv "$f.tmp" "$f" || die "generator failed"
    fi
    echo "$f"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# new_database BACKEND NAME -> sets DB_URL (fresh database). PG_ADMIN_URL overrides the server.
PG_HOST="${PG_HOST:-127.0.0.1}"; PG_PORT="${PG_PORT:-5432}"; PG_USER="${PG_USER:-postgres}"
new_database() {
    local backend="$1" name="$2"
    if [ "$backend" = postgres ]; then
        psql -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -c "drop database if exists $name" \
            -c "create database $name" >/dev/null || die "cannot create database $name"
        DB_URL="postgres://$PG_USER@$PG_HOST:$PG_PORT/$name"
        PG_DB_NAME="$name"
    else
        DB_URL="$TMPDIR_BENCH/$name.db"
        PG_DB_NAME=""
    fi
    export DB_URL
}
drop_database() {
    if [ -n "${PG_DB_NAME:-}" ] && [ -z "${KEEP_DB:-}" ]; then
        psql -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -c "drop database if exists $PG_DB_NAME" >/dev/null 2>&1 || true
    fi
}

# start_server -> sets PORT, SERVER_PID, BASE; waits for /readyz.
start_server() {
    PORT="$(free_port)"; BASE="http://127.0.0.1:$PORT"
    "$BIN" --database-url "$DB_URL" serve --bind "127.0.0.1:$PORT" > "$TMPDIR_BENCH/server.log" 2>&1 &
    SERVER_PID=$!
    local i
    for i in $(seq 1 600); do
        if curl -fs -o /dev/null "$BASE/readyz"; then return 0; fi
        kill -0 "$SERVER_PID" 2>/dev/null || { tail -20 "$TMPDIR_BENCH/server.log" >&2; die "server exited"; }
        sleep 0.1
    done
    die "server not ready after 60 s"
}
stop_server() {
    if [ -n "${SERVER_PID:-}" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}

# add_manager -> creates site manager "benchadmin" with $BENCH_PASSWORD.
add_manager() {
    echo "$BENCH_PASSWORD" | "$BIN" --database-url "$DB_URL" user add --username benchadmin \
        --email benchadmin@example.com --role site_manager --password-stdin >/dev/null \
        || die "user add failed"
}

# login -> sets COOKIE_JAR and COOKIE ("auditdesk_session=...").
login() {
    COOKIE_JAR="$TMPDIR_BENCH/cookies.txt"; rm -f "$COOKIE_JAR"
    local form csrf code
    form="$(curl -s -c "$COOKIE_JAR" -b "$COOKIE_JAR" "$BASE/login")"
    csrf="$(printf '%s' "$form" | python3 -c 'import re,sys,html; m=re.search(r"name=\"csrf_token\" value=\"([^\"]*)\"", sys.stdin.read()); print(html.unescape(m.group(1)) if m else "")')"
    [ -n "$csrf" ] || die "no csrf_token on /login"
    code="$(curl -s -o "$TMPDIR_BENCH/login.html" -w '%{http_code}' -c "$COOKIE_JAR" -b "$COOKIE_JAR" \
        --data-urlencode "username=benchadmin" --data-urlencode "password=$BENCH_PASSWORD" \
        --data-urlencode "csrf_token=$csrf" --data-urlencode "next=/manage/audit" "$BASE/login")"
    [ "$code" = 303 ] || [ "$code" = 302 ] || die "login answered $code"
    COOKIE="$(awk '$6=="auditdesk_session"{print $6"="$7}' "$COOKIE_JAR" | tail -1)"
    [ -n "$COOKIE" ] || die "no auditdesk_session cookie after login"
    code="$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $COOKIE" "$BASE/manage/audit")"
    [ "$code" = 200 ] || die "/manage/audit with the session cookie answered $code"
    export COOKIE
}
