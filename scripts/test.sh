#!/usr/bin/env bash
# Set everything up, lint and type-check, then run the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -f scripts/browser.sh ]; then bash scripts/browser.sh; fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
# Lint and type-check before the (much longer) test run; settings in pyproject.toml.
if ! .venv/bin/ruff check --quiet .; then
  echo "error: ruff check failed (see above; '.venv/bin/ruff check --fix .' sorts imports)" >&2
  exit 1
fi
if ! .venv/bin/mypy --no-error-summary ecomforge; then
  echo "error: mypy ecomforge failed (see above)" >&2
  exit 1
fi
echo "lint: ruff and mypy clean"
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$code"
