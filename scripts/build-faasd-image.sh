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
SUITE="${FAASD_BASE_SUITE:-bookworm}"
LOCAL_BASE="faasd/base-faasd:$SUITE"
# The local base's packages (libstdc++6: greenlet, which SQLAlchemy's asyncio needs).
BASE_PACKAGES="python3,python3-venv,libstdc++6,ca-certificates"
CA_IN_CONTEXT="$ROOT/build/docker-ca.crt"
export DOCKER_BUILDKIT=0

T0=$EPOCHREALTIME
now() { printf '%s' "$EPOCHREALTIME"; }
# log START MESSAGE: one line with the step's duration and the total so far.
log() {
    local start=$1
    shift
    awk -v s="$start" -v t0="$T0" -v n="$(now)" -v m="$*" \
        'BEGIN { printf "[%6.2fs] %-58s (%.2fs)\n", n - t0, m, n - s }'
}
die() {
    echo "build-faasd-image: $*" >&2
    exit 1
}

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
image_label() { # IMAGE LABEL -> value, empty when the image or label is absent
    docker image inspect -f "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
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
apt_sources() { # the files that describe this host's apt sources
    if [[ -n "${FAASD_APT_SOURCES:-}" ]]; then
        printf '%s\n' $FAASD_APT_SOURCES
        return
    fi
    if [[ -s /etc/apt/sources.list ]] && grep -qE '^[[:space:]]*deb' /etc/apt/sources.list; then
        echo /etc/apt/sources.list
    fi
    local f
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -s "$f" ]] && echo "$f"
    done
    return 0
}

make_local_base() { # a minimal Debian with Python and venv, imported as $LOCAL_BASE
    local t
    local -a sources
    command -v mmdebstrap >/dev/null || die "cannot pull $default_base and mmdebstrap is not installed (apt-get install mmdebstrap)"
    mapfile -t sources < <(apt_sources)
    ((${#sources[@]})) || die "no apt sources found on this host for mmdebstrap"
    t=$(now)
    if ! mmdebstrap --quiet --variant=essential --include="$BASE_PACKAGES" \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-exclude=/usr/share/lintian/*' \
        "$SUITE" "$WORK/base.tar" "${sources[@]}" >"$WORK/mmdebstrap.log" 2>&1; then
        cat "$WORK/mmdebstrap.log" >&2
        die "mmdebstrap failed for $LOCAL_BASE"
    fi
    log "$t" "mmdebstrap $SUITE + $BASE_PACKAGES"
    t=$(now)
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change "LABEL faasd.base=$SUITE:$BASE_PACKAGES" \
        "$WORK/base.tar" "$LOCAL_BASE" >/dev/null
    rm -f "$WORK/base.tar"
    log "$t" "docker import $LOCAL_BASE"
}

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
        make_local_base
    fi
fi

# ---- 4. the image
t=$(now)
if ! docker build --build-arg "BASE_IMAGE=$base" \
    --label "faasd.image.hash=$inputs" \
    --label "faasd.image.base=$base" \
    -t "$IMAGE" "$ROOT" >"$WORK/build.log" 2>&1; then
    cat "$WORK/build.log" >&2
    die "docker build of $IMAGE failed"
fi
size=$(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{ printf "%.0f MB", $1 / 1e6 }')
log "$t" "built $IMAGE on $base ($size)"
docker image prune -f --filter label=faasd.image.hash >/dev/null 2>&1 || true
log "$T0" "done"
