#!/usr/bin/env bash
# Set up .venv (CPU torch, the package and its test extras) if needed, lint (ruff, configured in
# pyproject.toml), then run the whole suite. Extra arguments go to pytest, e.g.
# `scripts/test.sh -m "not slow"` for the fast suite.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check torch==2.13.0 -e '.[test,postgres,service,eval,browser,ray]'
.venv/bin/ruff check --quiet . || { echo "lint failed: see above (.venv/bin/ruff check --fix . fixes some)" >&2; exit 1; }
exec .venv/bin/python -m pytest "$@"
