#!/usr/bin/env bash
# Builds the faasd image (faasd/faasd:latest, the repo's Dockerfile) that
# docker-compose.yml runs.
#
# The image is rebuilt only when its label faasd.image.hash differs from the
# sha256 of what goes into it (the Dockerfile, the package's sources, the CA
# bundle and the base's name). The base image is the Dockerfile's default
# BASE_IMAGE when it is present or can be pulled; otherwise a local Debian base
# faasd/base-faasd:bookworm is made (once) with mmdebstrap from this host's own
# apt sources and `docker import`, as scripts/build-images.sh does for the
# runtime images.
#
# pip inside the build trusts the host's CA bundle (copied into the build
# context as build/docker-ca.crt, which git ignores): where a proxy intercepts
# TLS, its CA is there. A plain `docker compose build` works without it.
#
# Environment:
#   FORCE=1                 rebuild even when current
#   FAASD_IMAGE=...         image to build (default faasd/faasd:latest)
#   FAASD_BUILD_CA=...      CA bundle for pip in the build (default: the host's
#                           /etc/ssl/certs/ca-certificates.crt; "none" for none)
#   FAASD_APT_SOURCES=...   space-separated apt sources files for mmdebstrap
#                           (default: the host's /etc/apt/sources.list{,.d/*})
#   FAASD_BASE_SUITE=...    Debian suite of the local base (default bookworm)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${FAASD_IMAGE:-faasd/faasd:latest}"
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib/images.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/images.sh"
LOCAL_BASE="faasd/base-faasd:$SUITE"
# The local base's packages (libstdc++6: greenlet, which SQLAlchemy's asyncio needs;
# iptables: the host firewall around the functions' network).
BASE_PACKAGES="python3,python3-venv,libstdc++6,ca-certificates,iptables"
CA_IN_CONTEXT="$ROOT/build/docker-ca.crt"
export DOCKER_BUILDKIT=0

WORK="$(mktemp -d "${TMPDIR:-/tmp}/faasd-image.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

t=$(now)
docker info >/dev/null 2>&1 || die "the Docker engine is not running or not reachable (docker info failed)"
log "$t" "docker engine reachable"

# ---- 1. the CA bundle pip trusts inside the build
ca_source="${FAASD_BUILD_CA:-/etc/ssl/certs/ca-certificates.crt}"
mkdir -p "$ROOT/build"
if [[ "$ca_source" != none && -s "$ca_source" ]]; then
    cmp -s "$ca_source" "$CA_IN_CONTEXT" 2>/dev/null || cp "$ca_source" "$CA_IN_CONTEXT"
else
    rm -f "$CA_IN_CONTEXT"
fi

# ---- 2. is the image current?
default_base=$(sed -n 's/^ARG BASE_IMAGE=\(.*\)$/\1/p' "$ROOT/Dockerfile" | head -n1)
[[ -n "$default_base" ]] || die "Dockerfile has no ARG BASE_IMAGE=..."

# sha256 over the names and contents of what the build copies, and the CA bundle.
inputs_hash() {
    (
        cd "$ROOT"
        {
            printf '%s\0' Dockerfile .dockerignore pyproject.toml README.md
            find faasd cli migrations -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0
            [[ -f build/docker-ca.crt ]] && printf '%s\0' build/docker-ca.crt
        } | LC_ALL=C sort -z | xargs -0 sha256sum
    ) | sha256sum | cut -d' ' -f1
}

t=$(now)
inputs=$(inputs_hash)
current=$(image_label "$IMAGE" faasd.image.hash)
current_base=$(image_label "$IMAGE" faasd.image.base)
# An image built on the default base, or on the local base where the default
# one is still missing, is current when its inputs are.
if [[ "${FORCE:-0}" != 1 && -n "$current" && "$current" == "$inputs" ]] &&
    { [[ "$current_base" == "$default_base" ]] || ! docker image inspect "$default_base" >/dev/null 2>&1; }; then
    log "$t" "$IMAGE is current (${inputs:0:12})"
    exit 0
fi
log "$t" "$IMAGE needs a build (${inputs:0:12})"

# ---- 3. the base: the default one, else a local Debian base
t=$(now)
if docker image inspect "$default_base" >/dev/null 2>&1; then
    base=$default_base
    log "$t" "base $default_base is present"
elif timeout 120 docker pull -q "$default_base" >/dev/null 2>&1; then
    base=$default_base
    log "$t" "pulled base $default_base"
else
    log "$t" "cannot pull $default_base; using a local Debian base"
    base=$LOCAL_BASE
    if [[ "$(image_label "$LOCAL_BASE" faasd.base)" == "$SUITE:$BASE_PACKAGES" ]]; then
        log "$t" "base $LOCAL_BASE is present"
    else
        command -v mmdebstrap >/dev/null || die "cannot pull $default_base and mmdebstrap is not installed (apt-get install mmdebstrap)"
        make_debian_base "$BASE_PACKAGES" "$LOCAL_BASE"
    fi
fi

# ---- 4. the image
build_image "$IMAGE" "$ROOT" "$base" faasd.image "$inputs"
docker image prune -f --filter label=faasd.image.hash >/dev/null 2>&1 || true
log "$T0" "done"
