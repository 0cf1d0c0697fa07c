#!/usr/bin/env bash
# Makes sure PostgreSQL's server binaries (initdb, pg_ctl, psql) are installed, for
# the tests that run the registry on a real PostgreSQL (tests/postgres.py starts
# a cluster of its own in a temporary directory, as the `postgres` user). Where
# none is and we are root on Debian or Ubuntu, installs Debian's `postgresql` with
# apt-get; the system's own cluster is not started. Elsewhere, says what to
# install and fails.
set -euo pipefail

log() { printf 'postgresql: %s\n' "$*"; }

found() {
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

version() {
  local newest=""
  for initdb in /usr/lib/postgresql/*/bin/initdb; do newest="$initdb"; done
  newest="${newest#/usr/lib/postgresql/}"
  echo "${newest%%/*}"
}

if found; then
  log "PostgreSQL $(version) is installed"
  exit 0
fi

if [ "$(id -u)" != 0 ] || ! grep -qsE '^ID(_LIKE)?=.*(debian|ubuntu)' /etc/os-release; then
  echo "postgresql: no /usr/lib/postgresql/*/bin/initdb; install PostgreSQL's server (the 'postgresql' package on Debian) and run this again" >&2
  exit 1
fi

log "installing postgresql with apt-get (its system cluster is not started)"
# policy-rc.d 101: the package's post-install step starts no service.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
fi
trap 'if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi' EXIT
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null

if ! found; then
  echo "postgresql: apt-get installed postgresql, but no /usr/lib/postgresql/*/bin/initdb is there" >&2
  exit 1
fi
if id postgres >/dev/null 2>&1; then :; else
  echo "postgresql: installed, but there is no 'postgres' system user to run the test clusters as" >&2
  exit 1
fi
log "PostgreSQL $(version) installed"
