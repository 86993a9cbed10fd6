#!/usr/bin/env bash
# Headless Chromium and its driver (Debian's packages) for the web page test.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "chromium and chromium-driver are missing: sudo apt-get install -y chromium chromium-driver" >&2
  exit 1
fi
echo "installing chromium and chromium-driver (Debian packages)..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
