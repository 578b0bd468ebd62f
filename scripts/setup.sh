#!/usr/bin/env bash
# Create .venv in the repo root and install ecomforge with every first-party plugin (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
stamp="$VENV/.ecomforge-installed"
want=$(cat constraints.txt pyproject.toml plugins/*/pyproject.toml scripts/setup.sh 2>/dev/null | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setting up $VENV (first time: a few minutes)..." >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
# torch first, pinned, so no plugin pulls another build of it.
"${PIP[@]}" -c constraints.txt torch torchvision
pkgs=(-e ".[test,web,ray]")
for dir in plugins/*/; do
  [ -f "$dir/pyproject.toml" ] && pkgs+=(-e "$dir")
done
[ -f docs/example-plugin/pyproject.toml ] && pkgs+=(-e docs/example-plugin)
"${PIP[@]}" -c constraints.txt "${pkgs[@]}"
echo "$want" > "$stamp"
echo "ready: $VENV/bin/ecomforge" >&2
