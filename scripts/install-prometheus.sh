#!/usr/bin/env bash
# Installs Prometheus and promtool from the Debian package `prometheus`
# (2.42 on bookworm). The package starts no service here; the integration
# tests start their own Prometheus on a free 127.0.0.1 port.
# Safe to run again: it does nothing when promtool and prometheus are there.
set -euo pipefail
if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-prometheus: run as root (or install sudo)" >&2; exit 1; }
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends: the package recommends prometheus-node-exporter and friends, which we do not need.
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# Debian's postinst may start the service where systemd runs; nothing here depends on it.
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 \
    || { echo "install-prometheus: prometheus/promtool not found after install" >&2; exit 1; }
