#!/usr/bin/env bash
# Installs the PostgreSQL server from the Debian package `postgresql` (15 on
# bookworm). The tests never use the package's own cluster: each test run
# makes a throwaway one with initdb in a temporary directory and starts it on
# a free 127.0.0.1 port (testkit/postgres.py).
# Safe to run again: it does nothing when initdb and postgres are there.
set -euo pipefail
have_server() {
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null
}
if have_server; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-postgresql: run as root (or install sudo)" >&2; exit 1; }
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends: the server and its client tools, without sysstat and friends.
$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
# Debian's postinst may start its own cluster where systemd runs; nothing here depends on it.
have_server || { echo "install-postgresql: initdb/postgres not found after install" >&2; exit 1; }
