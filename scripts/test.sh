#!/usr/bin/env bash
# The README's test command: install what the tests need, run the static
# checks (scripts/check), then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/check                   # ruff, ruff format --check, mypy --strict (pyproject.toml)
bash scripts/install-prometheus.sh   # Debian `prometheus` + promtool: tests/integration/test_prometheus.py
bash scripts/install-phoenix.sh      # Arize Phoenix in .venv-phoenix: tests/integration/test_phoenix.py
bash scripts/install-chromium.sh     # Debian `chromium`, headless: tests/integration/test_status_page.py
bash scripts/install-postgresql.sh   # Debian `postgresql`: a throwaway cluster per test run (testkit/postgres.py)
exec .venv/bin/python -m pytest "$@"
