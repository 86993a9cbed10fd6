#!/usr/bin/env bash
# Make sure commands exist, installing Debian packages for the missing ones (as root).
#   scripts/need.sh COMMAND=PACKAGE [COMMAND=PACKAGE ...]
# `make run` needs redis-server; `make test` also needs headless Chromium and its driver.
set -euo pipefail
missing=()
for pair in "$@"; do
  command -v "${pair%%=*}" >/dev/null 2>&1 || missing+=("${pair#*=}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing: ${missing[*]}; install them (sudo apt-get install -y ${missing[*]})" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]} ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's redis-server package starts a system service on 6379; spamq starts its own.
if [[ " ${missing[*]} " == *" redis-server "* ]]; then
  (service redis-server stop || true) >/dev/null 2>&1
fi
