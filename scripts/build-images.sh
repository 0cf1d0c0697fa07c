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
SUITE="${FAASD_BASE_SUITE:-bookworm}"
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
    echo "build-images: $*" >&2
    exit 1
}

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

image_label() { # IMAGE LABEL -> value, empty when the image or label is absent
    docker image inspect -f "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
}

default_base() { # LANG -> the Dockerfile's default BASE_IMAGE
    sed -n 's/^ARG BASE_IMAGE=\(.*\)$/\1/p' "$ROOT/runtimes/$1/Dockerfile" | head -n1
}

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

# make_base LANG PACKAGE IMAGE: a minimal Debian with PACKAGE, imported as IMAGE.
make_base() {
    local lang=$1 pkg=$2 image=$3 t
    local -a sources
    mapfile -t sources < <(apt_sources)
    ((${#sources[@]})) || die "no apt sources found on this host for mmdebstrap"
    t=$(now)
    if ! mmdebstrap --quiet --variant=essential --include="$pkg" \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-exclude=/usr/share/lintian/*' \
        "$SUITE" "$WORK/base-$lang.tar" "${sources[@]}" >"$WORK/mmdebstrap-$lang.log" 2>&1; then
        cat "$WORK/mmdebstrap-$lang.log" >&2
        die "mmdebstrap failed for $image"
    fi
    log "$t" "mmdebstrap $SUITE + $pkg"
    t=$(now)
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change "LABEL faasd.base=$SUITE-$pkg" \
        "$WORK/base-$lang.tar" "$image" >/dev/null
    rm -f "$WORK/base-$lang.tar"
    log "$t" "docker import $image"
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
    make_base "$lang" "${PKG[$lang]}" "$local_base" &
    pids+=($!)
done
for pid in "${pids[@]}"; do
    wait "$pid" || die "could not make a local base image"
done

# ---- 3. the runtime images
for lang in "${todo[@]}"; do
    t=$(now)
    image="faasd/runtime-$lang:latest"
    if ! docker build --build-arg "BASE_IMAGE=${BASE[$lang]}" \
        --label "faasd.runtime.hash=${HASH[$lang]}" \
        --label "faasd.runtime.base=${BASE[$lang]}" \
        -t "$image" "$ROOT/runtimes/$lang" >"$WORK/build-$lang.log" 2>&1; then
        cat "$WORK/build-$lang.log" >&2
        die "docker build of $image failed"
    fi
    size=$(docker image inspect -f '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }')
    log "$t" "built $image on ${BASE[$lang]} ($size)"
done
docker image prune -f --filter label=faasd.runtime.hash >/dev/null 2>&1 || true
log "$T0" "done"
