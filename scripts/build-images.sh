#!/usr/bin/env bash
# Builds the faasd runtime images faasd/runtime-nodejs:latest and
# faasd/runtime-python:latest from runtimes/<lang>.
#
# An image is rebuilt only when its label faasd.runtime.hash differs from the
# sha256 of the files in runtimes/<lang>. The base image is the Dockerfile's
# default BASE_IMAGE when it is present or can be pulled; otherwise a local
# Debian base faasd/base-<lang>:bookworm is made (once) with mmdebstrap from
# this host's own apt sources and `docker import`.
#
# Environment:
#   FORCE=1                 rebuild the runtime images even when current
#   FAASD_APT_SOURCES=...   space-separated apt sources files for mmdebstrap
#                           (default: the host's /etc/apt/sources.list{,.d/*})
#   FAASD_BASE_SUITE=...    Debian suite of the local base (default bookworm)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LANGS=(nodejs python)
export DOCKER_BUILDKIT=0
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib/images.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/images.sh"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/faasd-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

t=$(now)
if ! docker info >/dev/null 2>&1; then
    die "the Docker engine is not running or not reachable (docker info failed)"
fi
log "$t" "docker engine reachable"

# sha256 over the relative names and contents of every file in a folder.
folder_hash() {
    (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) |
        sha256sum | cut -d' ' -f1
}

default_base() { # LANG -> the Dockerfile's default BASE_IMAGE
    sed -n 's/^ARG BASE_IMAGE=\(.*\)$/\1/p' "$ROOT/runtimes/$1/Dockerfile" | head -n1
}

# ---- 1. which runtime images are out of date
declare -A HASH BASE
todo=()
for lang in "${LANGS[@]}"; do
    t=$(now)
    image="faasd/runtime-$lang:latest"
    HASH[$lang]=$(folder_hash "$ROOT/runtimes/$lang")
    current=$(image_label "$image" faasd.runtime.hash)
    if [[ "${FORCE:-0}" != 1 && "$current" == "${HASH[$lang]}" ]]; then
        log "$t" "$image is current (${HASH[$lang]:0:12})"
    else
        log "$t" "$image needs a build (${HASH[$lang]:0:12})"
        todo+=("$lang")
    fi
done
if ((${#todo[@]} == 0)); then
    log "$T0" "all runtime images are current"
    exit 0
fi

# ---- 2. a base image for each: the default one, else a local Debian base
declare -A PKG=([nodejs]=nodejs [python]=python3)
pids=()
for lang in "${todo[@]}"; do
    t=$(now)
    default=$(default_base "$lang")
    [[ -n "$default" ]] || die "runtimes/$lang/Dockerfile has no ARG BASE_IMAGE=..."
    if docker image inspect "$default" >/dev/null 2>&1; then
        BASE[$lang]=$default
        log "$t" "base $default is present"
        continue
    fi
    if timeout 120 docker pull -q "$default" >/dev/null 2>&1; then
        BASE[$lang]=$default
        log "$t" "pulled base $default"
        continue
    fi
    log "$t" "cannot pull $default; using a local Debian base"
    local_base="faasd/base-$lang:$SUITE"
    BASE[$lang]=$local_base
    if docker image inspect "$local_base" >/dev/null 2>&1; then
        log "$t" "base $local_base is present"
        continue
    fi
    # The two bases are made in parallel (each is mostly download and unpack).
    make_debian_base "${PKG[$lang]}" "$local_base" "$SUITE-${PKG[$lang]}" &
    pids+=($!)
done
for pid in "${pids[@]}"; do
    wait "$pid" || die "could not make a local base image"
done

# ---- 3. the runtime images
for lang in "${todo[@]}"; do
    build_image "faasd/runtime-$lang:latest" "$ROOT/runtimes/$lang" "${BASE[$lang]}" \
        faasd.runtime "${HASH[$lang]}"
done
docker image prune -f --filter label=faasd.runtime.hash >/dev/null 2>&1 || true
log "$T0" "done"
