#!/usr/bin/env bash
# Make sure a redis-server binary is on this machine (Debian's package), for `make run`/`make test`.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "redis-server is missing: install it (sudo apt-get install -y redis-server) or set SPAMQ_REDIS_URL" >&2
  exit 1
fi
echo "installing redis-server (Debian package)..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends redis-server >/dev/null
# The package starts a system service on 6379; spamq starts its own servers.
(service redis-server stop || true) >/dev/null 2>&1
command -v redis-server
