#!/usr/bin/env bash
# Installs Arize Phoenix (a real OTLP trace backend, used by
# tests/integration/test_phoenix.py) into its own virtualenv, so that its
# many pins never constrain the exporter's .venv. About 850 MB, ~1 minute.
# Where: $PHOENIX_VENV, default .venv-phoenix in the project directory.
# Safe to run again: it does nothing when that venv already has this version.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${PHOENIX_VENV:-.venv-phoenix}
VERSION=${PHOENIX_VERSION:-20.26.1}
installed() {
    [ -x "$VENV/bin/phoenix" ] && [ "$("$VENV/bin/python" -c \
        "import importlib.metadata as m; print(m.version('arize-phoenix'))" 2>/dev/null)" = "$VERSION" ]
}
if installed; then
    exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "arize-phoenix==$VERSION" 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
installed && "$VENV/bin/python" -c "import phoenix" \
    || { echo "install-phoenix: the install did not complete" >&2; exit 1; }
