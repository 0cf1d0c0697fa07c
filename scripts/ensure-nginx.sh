#!/usr/bin/env bash
# Makes sure nginx is installed, for the cluster test (tests/cluster/: two
# faasd nodes behind deploy/nginx.conf). Where it is missing and we are root
# on Debian or Ubuntu, installs Debian's `nginx` with apt-get without starting
# the system's own nginx (the tests start theirs on loopback). Elsewhere, says
# what to install and fails.
set -euo pipefail

log() { printf 'nginx: %s\n' "$*"; }

found() {
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]
}

if found; then
  log "$( (nginx -v || /usr/sbin/nginx -v) 2>&1 | head -n 1) is installed"
  exit 0
fi

if [ "$(id -u)" != 0 ] || ! grep -qsE '^ID(_LIKE)?=.*(debian|ubuntu)' /etc/os-release; then
  echo "nginx: not installed; install nginx (the 'nginx' package on Debian) and run this again" >&2
  exit 1
fi

log "installing nginx with apt-get (the system's nginx is not started)"
# policy-rc.d 101: the package's scripts leave the service stopped.
policy=/usr/sbin/policy-rc.d
had_policy=0
if [ -e "$policy" ]; then had_policy=1; cp -p "$policy" "$policy.faasd-saved"; fi
restore() {
  if [ "$had_policy" = 1 ]; then mv -f "$policy.faasd-saved" "$policy"; else rm -f "$policy"; fi
}
trap restore EXIT
printf '#!/bin/sh\nexit 101\n' >"$policy"
chmod 755 "$policy"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null

if ! found; then
  echo "nginx: apt-get installed nginx, but there is no nginx binary" >&2
  exit 1
fi
log "$(/usr/sbin/nginx -v 2>&1 | head -n 1) installed"
