#!/usr/bin/env bash
# Makes sure a Docker engine answers. Where none does and we are root on
# Debian or Ubuntu, installs docker.io and docker-compose (for the compose
# test; and mmdebstrap, which builds the runtime images' base when no
# registry can be reached) and starts dockerd in
# the background, logging to the state dir. Elsewhere, says what to install.
set -euo pipefail

STATE_DIR=${FAASD_STATE_DIR:-./.faasd}
log() { printf 'engine: %s\n' "$*"; }

if docker info >/dev/null 2>&1; then
  log "Docker engine answers"
  exit 0
fi

if [ "$(id -u)" != 0 ] || ! grep -qsE '^ID(_LIKE)?=.*(debian|ubuntu)' /etc/os-release; then
  echo "engine: no Docker engine answers; install Docker Engine (docker.io on Debian/Ubuntu) and start it, then run this again" >&2
  exit 1
fi

if ! command -v dockerd >/dev/null || ! command -v mmdebstrap >/dev/null || ! command -v docker >/dev/null \
  || ! command -v docker-compose >/dev/null || ! command -v iptables >/dev/null || ! command -v ip >/dev/null; then
  log "installing docker.io, docker-compose, mmdebstrap, iptables and iproute2 with apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    docker.io docker-compose mmdebstrap ca-certificates iptables iproute2 >/dev/null
fi

# A package install may have started the service already (systemd hosts).
if ! docker info >/dev/null 2>&1; then
  mkdir -p "$STATE_DIR"
  log "starting dockerd in the background (log: $STATE_DIR/dockerd.log)"
  setsid nohup dockerd >"$STATE_DIR/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 120); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
fi

if ! docker info >/dev/null 2>&1; then
  echo "engine: dockerd did not come up within 60 s; see $STATE_DIR/dockerd.log" >&2
  tail -n 20 "$STATE_DIR/dockerd.log" >&2 || true
  exit 1
fi
log "Docker engine answers ($(docker version --format '{{.Server.Version}}'))"
