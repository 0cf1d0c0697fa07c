#!/usr/bin/env bash
# Builds the faasd runtime images faasd/runtime-<lang>:latest from
# runtimes/<lang> and the builder images faasd/builder-<lang>:latest from
# runtimes/<lang>/builder, for <lang> nodejs and python (ruby: a runtime
# image only; its packages are given as ready deployment archives).
#
# An image is rebuilt only when its label faasd.runtime.hash (faasd.builder.hash)
# differs from the sha256 of the files in its folder (a runtime's folder
# without builder/). The base image of a runtime is the Dockerfile's default
# BASE_IMAGE when it is present or can be pulled; otherwise a local Debian base
# faasd/base-<lang>:bookworm is made (once) with mmdebstrap from this host's
# own apt sources and `docker import`. A builder is built on its runtime's
# base: the same default image, or faasd/base-builder-<lang>:bookworm, the
# local Debian base with the package manager (python3-pip, npm) added.
#
# It also builds the broker images faasd/broker-<name>:latest from
# brokers/<name> (redis: Debian's redis-server 7.0; nats: Debian's nats-server
# 2.9 with JetStream), which the message-queue trigger tests run
# (tests/integration/brokers.py). Each is rebuilt only when its label
# faasd.broker.hash differs from its folder's hash. Their Dockerfiles copy the
# server out of their base into an image FROM scratch; the base is the default
# one (debian:bookworm-slim, where apt-get installs the package) when present
# or pullable, else a local Debian base with the package already in it,
# faasd/base-broker-<name>:bookworm.
#
# Environment:
#   FORCE=1                 rebuild the runtime, builder and broker images even when current
#   FAASD_APT_SOURCES=...   space-separated apt sources files for mmdebstrap
#                           (default: the host's /etc/apt/sources.list{,.d/*})
#   FAASD_BASE_SUITE=...    Debian suite of the local base (default bookworm)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LANGS=(nodejs python ruby)
BUILDER_LANGS=(nodejs python) # the runtimes that have a builder/ folder
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

# folder_hash DIR [SUBDIR...]: sha256 over the relative names and contents of
# every file in DIR, except the SUBDIRs (relative to DIR) and Python bytecode.
folder_hash() {
    local dir=$1 sub
    shift
    local -a prune=(-name __pycache__ -o -name '*.pyc')
    for sub in "$@"; do prune+=(-o -path "./$sub"); done
    (cd "$dir" && find . \( "${prune[@]}" \) -prune -o -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) |
        sha256sum | cut -d' ' -f1
}

default_base() { # DIR -> the default BASE_IMAGE of DIR/Dockerfile
    sed -n 's/^ARG BASE_IMAGE=\(.*\)$/\1/p' "$1/Dockerfile" | head -n1
}

# base_present_or_pulled IMAGE: whether IMAGE is here, pulling it when it is not.
base_present_or_pulled() {
    local t
    t=$(now)
    if docker image inspect "$1" >/dev/null 2>&1; then
        log "$t" "base $1 is present"
        return 0
    fi
    if timeout 120 docker pull -q "$1" >/dev/null 2>&1; then
        log "$t" "pulled base $1"
        return 0
    fi
    log "$t" "cannot pull $1; using a local Debian base"
    return 1
}

# The local Debian bases' packages: the runtime's, and its builder's (the
# runtime's plus the package manager, and the CA certificates it fetches with
# when faasd gives it none).
declare -A PKG=([nodejs]=nodejs [python]=python3 [ruby]=ruby)
# shellcheck disable=SC2054 # comma lists, for mmdebstrap --include
declare -A BUILDER_PKG=([nodejs]=nodejs,npm,ca-certificates [python]=python3,python3-pip,ca-certificates)
built=0

# ---- 1. which runtime images are out of date (a builder's folder is not part of its runtime)
declare -A HASH BASE
todo=()
for lang in "${LANGS[@]}"; do
    t=$(now)
    image="faasd/runtime-$lang:latest"
    HASH[$lang]=$(folder_hash "$ROOT/runtimes/$lang" builder)
    current=$(image_label "$image" faasd.runtime.hash)
    if [[ "${FORCE:-0}" != 1 && "$current" == "${HASH[$lang]}" ]]; then
        log "$t" "$image is current (${HASH[$lang]:0:12})"
    else
        log "$t" "$image needs a build (${HASH[$lang]:0:12})"
        todo+=("$lang")
    fi
done

# ---- 2. a base image for each: the default one, else a local Debian base
pids=()
for lang in "${todo[@]}"; do
    default=$(default_base "$ROOT/runtimes/$lang")
    [[ -n "$default" ]] || die "runtimes/$lang/Dockerfile has no ARG BASE_IMAGE=..."
    if base_present_or_pulled "$default"; then
        BASE[$lang]=$default
        continue
    fi
    local_base="faasd/base-$lang:$SUITE"
    BASE[$lang]=$local_base
    t=$(now)
    if docker image inspect "$local_base" >/dev/null 2>&1; then
        log "$t" "base $local_base is present"
        continue
    fi
    # The bases are made in parallel (each is mostly download and unpack).
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
    built=1
done

# ---- 4. the builder images, on their runtime's base: the same default base
# (it has pip/npm), or the runtime's local Debian base with pip/npm added
# (faasd/base-builder-<lang>:$SUITE). A builder is rebuilt when its folder
# changes or its runtime moved to another base.
declare -A BHASH BBASE
btodo=()
for lang in "${BUILDER_LANGS[@]}"; do
    t=$(now)
    image="faasd/builder-$lang:latest"
    dir="$ROOT/runtimes/$lang/builder"
    BHASH[$lang]=$(folder_hash "$dir")
    runtime_base=$(image_label "faasd/runtime-$lang:latest" faasd.runtime.base)
    [[ -n "$runtime_base" ]] || die "faasd/runtime-$lang:latest has no label faasd.runtime.base: rebuild it with FORCE=1"
    if [[ "$runtime_base" == "$(default_base "$ROOT/runtimes/$lang")" ]]; then
        BBASE[$lang]=$runtime_base
    else
        BBASE[$lang]="faasd/base-builder-$lang:$SUITE"
    fi
    if [[ "${FORCE:-0}" != 1 && "$(image_label "$image" faasd.builder.hash)" == "${BHASH[$lang]}" &&
        "$(image_label "$image" faasd.builder.base)" == "${BBASE[$lang]}" ]]; then
        log "$t" "$image is current (${BHASH[$lang]:0:12})"
    else
        log "$t" "$image needs a build (${BHASH[$lang]:0:12} on ${BBASE[$lang]})"
        btodo+=("$lang")
    fi
done
pids=()
for lang in "${btodo[@]}"; do
    base=${BBASE[$lang]}
    if [[ "$base" != "faasd/base-builder-$lang:$SUITE" ]]; then
        base_present_or_pulled "$base" || die "the builder's base $base (its runtime's) is gone and cannot be pulled"
        continue
    fi
    t=$(now)
    if docker image inspect "$base" >/dev/null 2>&1; then
        log "$t" "base $base is present"
        continue
    fi
    make_debian_base "${BUILDER_PKG[$lang]}" "$base" "$SUITE-${BUILDER_PKG[$lang]}" &
    pids+=($!)
done
for pid in "${pids[@]}"; do
    wait "$pid" || die "could not make a local builder base image"
done
for lang in "${btodo[@]}"; do
    build_image "faasd/builder-$lang:latest" "$ROOT/runtimes/$lang/builder" "${BBASE[$lang]}" \
        faasd.builder "${BHASH[$lang]}"
    built=1
done

# ---- 5. the broker images (Redis, NATS), each on its Dockerfile's default
# base or on a local Debian base that has the package
BROKERS=(redis nats)
declare -A BROKER_PKG=([redis]=redis-server [nats]=nats-server) BROKER_HASH BROKER_BASE PULLABLE
brtodo=()
for name in "${BROKERS[@]}"; do
    t=$(now)
    image="faasd/broker-$name:latest"
    BROKER_HASH[$name]=$(folder_hash "$ROOT/brokers/$name")
    if [[ "${FORCE:-0}" != 1 && "$(image_label "$image" faasd.broker.hash)" == "${BROKER_HASH[$name]}" ]]; then
        log "$t" "$image is current (${BROKER_HASH[$name]:0:12})"
    else
        log "$t" "$image needs a build (${BROKER_HASH[$name]:0:12})"
        brtodo+=("$name")
    fi
done
pids=()
for name in "${brtodo[@]}"; do
    default=$(default_base "$ROOT/brokers/$name")
    [[ -n "$default" ]] || die "brokers/$name/Dockerfile has no ARG BASE_IMAGE=..."
    if [[ -z "${PULLABLE[$default]:-}" ]]; then # one pull attempt per base
        PULLABLE[$default]=0
        base_present_or_pulled "$default" && PULLABLE[$default]=1
    fi
    if [[ "${PULLABLE[$default]}" == 1 ]]; then
        BROKER_BASE[$name]=$default
        continue
    fi
    BROKER_BASE[$name]="faasd/base-broker-$name:$SUITE"
    ensure_debian_base "${BROKER_PKG[$name]}" "${BROKER_BASE[$name]}" &
    pids+=($!)
done
for pid in "${pids[@]}"; do
    wait "$pid" || die "could not make a local broker base image"
done
for name in "${brtodo[@]}"; do
    build_image "faasd/broker-$name:latest" "$ROOT/brokers/$name" "${BROKER_BASE[$name]}" \
        faasd.broker "${BROKER_HASH[$name]}"
    built=1
done

if ((built == 0)); then
    log "$T0" "all runtime, builder and broker images are current"
    exit 0
fi
docker image prune -f --filter label=faasd.runtime.hash >/dev/null 2>&1 || true
docker image prune -f --filter label=faasd.builder.hash >/dev/null 2>&1 || true
docker image prune -f --filter label=faasd.broker.hash >/dev/null 2>&1 || true
log "$T0" "done"
