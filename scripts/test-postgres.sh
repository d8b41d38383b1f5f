#!/usr/bin/env bash
# Start or stop a throwaway PostgreSQL server for the test suite, on 127.0.0.1.
#   eval "$(scripts/test-postgres.sh start)"   # exports CHATBOT_TEST_POSTGRES_URL
#   scripts/test-postgres.sh stop
# Installs Debian's postgresql package when no server binaries are found (needs root).
# The data directory lives under ${CHATBOT_PG_DIR:-/tmp/chatbot-test-pg}; port ${CHATBOT_PG_PORT:-54329}.
set -euo pipefail

PGDIR="${CHATBOT_PG_DIR:-/tmp/chatbot-test-pg}"
PORT="${CHATBOT_PG_PORT:-54329}"
DB=chatbot_test

find_bin() {
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v pg_ctl)")"
        return
    fi
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -z "$dir" ]; then
        echo "test-postgres: installing PostgreSQL from Debian's packages" >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
        dir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
    fi
    echo "$dir"
}

# PostgreSQL refuses to run as root: use the postgres account when we are root.
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        chown -R postgres "$PGDIR"
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start() {
    local bin
    bin="$(find_bin)"
    # A server of ours already answering is shared, not wiped: several test runs may use it.
    if [ -f "$PGDIR/data/postmaster.pid" ] && "$bin/pg_isready" -q -h 127.0.0.1 -p "$PORT" 2>/dev/null; then
        echo "export CHATBOT_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:$PORT/$DB"
        return
    fi
    stop_quietly "$bin"
    rm -rf "$PGDIR"
    mkdir -p "$PGDIR"
    as_owner "$bin/initdb" -D "$PGDIR/data" -U postgres --auth=trust -E UTF8 >"$PGDIR/initdb.log" 2>&1 ||
        { cat "$PGDIR/initdb.log" >&2; exit 1; }
    as_owner "$bin/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w -t 60 \
        -o "-p $PORT -k $PGDIR -c listen_addresses=127.0.0.1 -c fsync=off" start >&2 ||
        { cat "$PGDIR/server.log" >&2; exit 1; }
    as_owner "$bin/createdb" -h 127.0.0.1 -p "$PORT" -U postgres "$DB"
    echo "export CHATBOT_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:$PORT/$DB"
}

stop_quietly() {
    local bin="$1"
    if [ -f "$PGDIR/data/postmaster.pid" ]; then
        as_owner "$bin/pg_ctl" -D "$PGDIR/data" -m fast -w stop >&2 || true
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop_quietly "$(find_bin)"; rm -rf "$PGDIR" ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
