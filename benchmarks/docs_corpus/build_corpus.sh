#!/usr/bin/env bash
# Assemble the "new user's first hour" corpus from documentation that ships on a Debian machine of
# this project's kind (npm's Markdown and HTML docs, pip's Sphinx/MyST docs, CMake's
# reStructuredText command reference and manuals), decompressed, into OUT (default
# /tmp/docs_corpus). Then: qa-system ingest OUT --store S; qa-system ask --questions <(cut ...)
# and score.py, as run.sh does.
set -euo pipefail
out="${1:-/tmp/docs_corpus}"
rm -rf "$out" && mkdir -p "$out"
cp -r /usr/lib/node_modules/npm/docs/content "$out/npm-md"
cp -r /usr/lib/node_modules/npm/docs/output "$out/npm-html"
cp -r /usr/share/doc/python3-pip/html "$out/pip-docs"
cp -r /usr/share/cmake-3.25/Help/command "$out/cmake-command"
cp -r /usr/share/cmake-3.25/Help/manual "$out/cmake-manual"
find "$out" -name '*.gz' -exec gunzip -f {} \;
echo "$out"
