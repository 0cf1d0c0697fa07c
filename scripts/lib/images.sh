# shellcheck shell=bash
# Helpers shared by scripts/build-images.sh and scripts/build-faasd-image.sh
# (timing and logging, image labels, local Debian bases, docker build);
# sourced, never run. Sets T0 (the start time, for log) and SUITE.
#
# Environment:
#   FAASD_APT_SOURCES=...   space-separated apt sources files for mmdebstrap
#                           (default: the host's /etc/apt/sources.list{,.d/*})
#   FAASD_BASE_SUITE=...    Debian suite of the local base (default bookworm)

SUITE="${FAASD_BASE_SUITE:-bookworm}"

T0=$EPOCHREALTIME
now() { printf '%s' "$EPOCHREALTIME"; }
# log START MESSAGE: one line with the step's duration and the total so far.
log() {
    local start=$1
    shift
    awk -v s="$start" -v t0="$T0" -v n="$(now)" -v m="$*" \
        'BEGIN { printf "[%6.2fs] %-58s (%.2fs)\n", n - t0, m, n - s }'
}
# die MESSAGE: the message, prefixed with the calling script's name, and exit 1.
die() {
    echo "$(basename "$0" .sh): $*" >&2
    exit 1
}

image_label() { # IMAGE LABEL -> value, empty when the image or label is absent
    docker image inspect -f "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
}

apt_sources() { # the files that describe this host's apt sources
    if [[ -n "${FAASD_APT_SOURCES:-}" ]]; then
        # shellcheck disable=SC2086 # split (and glob) the list on purpose
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

# make_debian_base PACKAGES IMAGE [LABEL]: a minimal Debian $SUITE with
# PACKAGES (a comma list) from this host's apt sources, imported as IMAGE with
# the label faasd.base=LABEL (default $SUITE:PACKAGES). Works in a directory of
# its own (under $WORK when set), so several can run in parallel.
make_debian_base() {
    local packages=$1 image=$2 label=${3:-$SUITE:$1} dir t
    local -a sources
    mapfile -t sources < <(apt_sources)
    ((${#sources[@]})) || die "no apt sources found on this host for mmdebstrap"
    dir=$(mktemp -d "${WORK:-${TMPDIR:-/tmp}}/base.XXXXXX")
    t=$(now)
    if ! mmdebstrap --quiet --variant=essential --include="$packages" \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-exclude=/usr/share/lintian/*' \
        "$SUITE" "$dir/base.tar" "${sources[@]}" >"$dir/mmdebstrap.log" 2>&1; then
        cat "$dir/mmdebstrap.log" >&2
        rm -rf "$dir"
        die "mmdebstrap failed for $image"
    fi
    log "$t" "mmdebstrap $SUITE + $packages"
    t=$(now)
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change "LABEL faasd.base=$label" \
        "$dir/base.tar" "$image" >/dev/null
    rm -rf "$dir"
    log "$t" "docker import $image"
}

# ensure_debian_base PACKAGES IMAGE: IMAGE is here, with the label
# faasd.base=$SUITE:PACKAGES; made by make_debian_base when it is not.
ensure_debian_base() {
    local packages=$1 image=$2 t
    t=$(now)
    if [[ "$(image_label "$image" faasd.base)" == "$SUITE:$packages" ]]; then
        log "$t" "base $image is present"
        return 0
    fi
    command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed (apt-get install mmdebstrap); it makes $image"
    make_debian_base "$packages" "$image"
}

# build_image IMAGE CONTEXT BASE PREFIX HASH: docker build of CONTEXT as IMAGE
# on BASE, labelled PREFIX.hash=HASH and PREFIX.base=BASE; logs its size.
build_image() {
    local image=$1 context=$2 base=$3 prefix=$4 hash=$5 out size t
    t=$(now)
    out=$(mktemp "${WORK:-${TMPDIR:-/tmp}}/build.XXXXXX")
    if ! docker build --build-arg "BASE_IMAGE=$base" \
        --label "$prefix.hash=$hash" \
        --label "$prefix.base=$base" \
        -t "$image" "$context" >"$out" 2>&1; then
        cat "$out" >&2
        rm -f "$out"
        die "docker build of $image failed"
    fi
    rm -f "$out"
    size=$(docker image inspect -f '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }')
    log "$t" "built $image on $base ($size)"
}
