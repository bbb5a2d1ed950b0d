#!/usr/bin/env bash
# The README's test command: install what the tests need, then run them all.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/install-prometheus.sh   # Debian `prometheus` + promtool: tests/integration/test_prometheus.py
bash scripts/install-phoenix.sh      # Arize Phoenix in .venv-phoenix: tests/integration/test_phoenix.py
exec .venv/bin/python -m pytest "$@"
