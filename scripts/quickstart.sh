#!/usr/bin/env bash
# Set everything up, then run the offline quickstart recipe and say where the images are.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/ecomforge run recipes/quickstart.yaml "$@"
