#!/usr/bin/env bash
# Time from `pip install` of faasd's wheel to the quick start's first answer,
# on a machine that has Docker but none of faasd's images (run it on a bare
# machine: ../shared/fresh-machine 'bash bench/install_time.sh').
#
# Not timed, the user's prerequisites: a Docker engine (scripts/ensure-docker.sh
# installs docker.io and mmdebstrap on Debian and starts dockerd), python3-venv,
# and the wheel itself (built here from the checkout, as PyPI would serve it).
# Timed, what a user does: a venv, `pip install faasd-*.whl`, `faasd` (which
# builds its runtime images: from the official bases where a registry answers,
# else from local Debian bases made with mmdebstrap), `faas deploy hello.js
# --env nodejs`, and curl until `Hello, world!`. Prints one line per step and
# the total; everything it starts is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$(mktemp -d /tmp/faasd-install.XXXXXX)
PORT=${PORT:-18080}
FAASD_PID=""
cleanup() {
    [[ -n "$FAASD_PID" ]] && kill "$FAASD_PID" 2>/dev/null && wait "$FAASD_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

# ---- prerequisites (not timed)
FAASD_STATE_DIR="$WORK/engine" bash scripts/ensure-docker.sh >/dev/null
if ! python3 -m venv "$WORK/probe" >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi
python3 -m venv "$WORK/build-venv"
"$WORK/build-venv/bin/pip" wheel -q --no-deps -w "$WORK/dist" "$ROOT"
WHEEL=$(ls "$WORK"/dist/faasd-*.whl)
echo "wheel: $(basename "$WHEEL"), $(($(stat -c %s "$WHEEL") / 1024)) KiB"
echo "faasd images on the engine before: $(docker images -q 'faasd/runtime-*' | wc -l)"

# ---- what the user does (timed)
T0=$EPOCHREALTIME
step() { awk -v s="$T0" -v n="$EPOCHREALTIME" -v m="$1" 'BEGIN { printf "[%7.1fs] %s\n", n - s, m }'; }
mkdir -p "$WORK/home" && cd "$WORK/home"
python3 -m venv venv
venv/bin/pip install -q "$WHEEL"
step "pip install done"
FAASD_STATE_DIR="$WORK/home/state" venv/bin/faasd --port "$PORT" >"$WORK/faasd.log" 2>&1 &
FAASD_PID=$!
until curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null; do sleep 0.1; done
step "faasd answers /healthz"
cat >hello.js <<'EOF'
module.exports = async function (context) {
    return { status: 200, body: "Hello, world!\n" };
};
EOF
FAAS_URL="http://127.0.0.1:$PORT" FAASD_STATE_DIR="$WORK/home/state" venv/bin/faas deploy hello.js --env nodejs >/dev/null
step "faas deploy hello.js done"
early=0
for _ in $(seq 6000); do # at most 10 minutes
    code=$(curl -s -o "$WORK/body" -w '%{http_code}' "http://127.0.0.1:$PORT/hello")
    [[ "$code" == 200 ]] && break
    early=$((early + 1))
    sleep 0.1
done
[[ "$(cat "$WORK/body")" == "Hello, world!" ]] || { cat "$WORK/faasd.log"; exit 1; }
step "first answer: Hello, world! (after $early answers 503 while the images were built)"
echo "faasd's image steps:"
grep -E 'faasd.images: (pulled|cannot pull|made|built)' "$WORK/faasd.log" | sed 's/^.*faasd.images: /  /'
