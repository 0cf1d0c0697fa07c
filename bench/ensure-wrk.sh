#!/usr/bin/env bash
# Make sure `wrk` is on the PATH: installed with apt-get when missing on Debian as root.
# Elsewhere the suite falls back to its own bounded asyncio load generator.
set -euo pipefail
command -v wrk >/dev/null && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing wrk with apt-get" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
else
  echo "wrk is not installed (Debian: apt-get install wrk); using the suite's Python load generator" >&2
fi
