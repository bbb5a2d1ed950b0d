#!/usr/bin/env bash
# Creates .venv and installs the exporter (editable) with what the tests need.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]' 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
.venv/bin/python -c "import exporter, opentelemetry.sdk, prometheus_client, httpx, apscheduler, yaml, psycopg, pytest" \
    || { echo "setup: the install did not complete" >&2; exit 1; }
