#!/usr/bin/env bash
# Makes sure a headless-capable Chromium is on the PATH, for the dashboard's
# browser tests (tests/integration/test_dashboard.py). Where none is and we are
# root on Debian or Ubuntu, installs Debian's `chromium` with apt-get.
# Elsewhere, says what to install and fails.
set -euo pipefail

log() { printf 'browser: %s\n' "$*"; }

found() {
  command -v chromium >/dev/null 2>&1 && chromium --version >/dev/null 2>&1
}

if found; then
  log "$(chromium --version 2>/dev/null | head -n 1) is installed"
  exit 0
fi

if [ "$(id -u)" != 0 ] || ! grep -qsE '^ID(_LIKE)?=.*(debian|ubuntu)' /etc/os-release; then
  echo "browser: no 'chromium' on the PATH; install Chromium (the 'chromium' package on Debian) and run this again" >&2
  exit 1
fi

log "installing chromium with apt-get"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  chromium fonts-dejavu-core ca-certificates >/dev/null

if ! found; then
  echo "browser: apt-get installed chromium, but 'chromium --version' does not run" >&2
  exit 1
fi
log "$(chromium --version 2>/dev/null | head -n 1) installed"
