#!/usr/bin/env bash
# Install Debian's chromium for the real-browser web UI test (playwright drives it; it cannot download its own).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium)
