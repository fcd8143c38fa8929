#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the tests, on 127.0.0.1 only, and print the URL to export.
#
#   eval "$(scripts/start_postgres.sh)"      # sets QA_SYSTEM_TEST_POSTGRES_URL
#   scripts/start_postgres.sh stop           # stops it
#
# Uses the PostgreSQL server binaries in $QA_PG_BIN when set (scripts/start_pgvector.sh sets it),
# else under /usr/lib/postgresql/*/bin (the newest version found); installs Debian's `postgresql`
# package when there are none (needs root and apt). $QA_PG_EXTENSIONS: extensions to create in
# the test database as the superuser (e.g. "vector"); $QA_PG_URL_VARIABLE: the variable the
# export line sets (default QA_SYSTEM_TEST_POSTGRES_URL); $QA_PG_CREATEDB=1 lets the user qa
# create databases (tests that need a database without an extension make one).
# The cluster lives in $QA_PG_DIR (default /tmp/qa_system_pg), listens on $QA_PG_PORT (default
# 55432), trusts local connections (a test server: never expose it) and holds the database
# qa_test owned by the user qa (password qa). The server runs as the `postgres` system user
# when started by root, since PostgreSQL refuses to run as root. Running it again is safe: a
# running server is left as it is. Only diagnostics go to stderr; stdout is the export line.
set -euo pipefail

PG_DIR="${QA_PG_DIR:-/tmp/qa_system_pg}"
PG_PORT="${QA_PG_PORT:-55432}"
PG_USER=qa
PG_PASSWORD=qa
PG_DB=qa_test
DATA="$PG_DIR/data"
LOG="$PG_DIR/server.log"

say() { echo "start_postgres: $*" >&2; }

find_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$dir" ] && [ -x "$dir/pg_ctl" ]; then
        echo "$dir"
    fi
}

URL_VARIABLE="${QA_PG_URL_VARIABLE:-QA_SYSTEM_TEST_POSTGRES_URL}"
BIN="${QA_PG_BIN:-$(find_bin)}"
if [ -n "${QA_PG_BIN:-}" ] && [ ! -x "$BIN/pg_ctl" ]; then
    say "no pg_ctl in QA_PG_BIN=$BIN"
    exit 1
fi
if [ -z "$BIN" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        say "no PostgreSQL server binaries under /usr/lib/postgresql and not root: install 'postgresql'"
        exit 1
    fi
    say "installing PostgreSQL (apt-get install postgresql)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    BIN=$(find_bin)
    [ -n "$BIN" ] || { say "installation did not provide pg_ctl"; exit 1; }
fi

# Run PostgreSQL's tools as an unprivileged user when we are root.
if [ "$(id -u)" -eq 0 ]; then
    RUN_AS=postgres
    id "$RUN_AS" >/dev/null 2>&1 || useradd --system --home-dir "$PG_DIR" --shell /usr/sbin/nologin "$RUN_AS"
    as_pg() { runuser -u "$RUN_AS" -- "$@"; }
else
    as_pg() { "$@"; }
fi

if [ "${1:-}" = "stop" ]; then
    if [ -f "$DATA/postmaster.pid" ]; then
        as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >&2
    else
        say "not running"
    fi
    exit 0
fi

mkdir -p "$PG_DIR"
if [ "$(id -u)" -eq 0 ]; then chown "$RUN_AS" "$PG_DIR"; fi
chmod 700 "$PG_DIR"

if [ ! -f "$DATA/PG_VERSION" ]; then
    say "creating a cluster in $DATA"
    as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >&2 \
        || as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --no-locale >&2
fi

if as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    say "already running on 127.0.0.1:$PG_PORT"
else
    say "starting on 127.0.0.1:$PG_PORT (log: $LOG)"
    as_pg "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
        -o "-h 127.0.0.1 -p $PG_PORT -k $PG_DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >&2
fi

psql_admin() { as_pg "$BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'")" != "1" ]; then
    psql_admin -c "CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD'" >&2
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != "1" ]; then
    psql_admin -c "CREATE DATABASE $PG_DB OWNER $PG_USER" >&2
fi

for extension in ${QA_PG_EXTENSIONS:-}; do
    as_pg "$BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$PG_DB" -v ON_ERROR_STOP=1 -qtA \
        -c "CREATE EXTENSION IF NOT EXISTS $extension" >&2
done
if [ "${QA_PG_CREATEDB:-0}" = 1 ]; then
    psql_admin -c "ALTER ROLE $PG_USER CREATEDB" >&2
fi

echo "export $URL_VARIABLE=postgresql+psycopg://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"
