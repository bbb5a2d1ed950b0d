#!/usr/bin/env bash
# The README's demo command: install, then run the exporter against the built-in simulator.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/agent-activity-exporter demo "$@"
