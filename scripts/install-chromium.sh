#!/usr/bin/env bash
# Installs Chromium from the Debian package `chromium`: the status page test
# (tests/integration/test_status_page.py) loads /status in it headless and
# the README's screenshot is taken with it. No browser driver is needed: the
# test reads the rendered DOM with --dump-dom.
# Safe to run again: it does nothing when chromium is there.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-chromium: run as root (or install sudo)" >&2; exit 1; }
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends: the recommended extras (drivers, sandbox helpers) are not needed headless.
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium >/dev/null 2>&1 || { echo "install-chromium: chromium not found after install" >&2; exit 1; }
