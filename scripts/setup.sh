#!/usr/bin/env bash
# Create a virtual environment with FLOps and what it needs (idempotent).
# Usage: scripts/setup.sh [EXTRAS]   EXTRAS: pip extras, e.g. "dev,torch" (default: none)
# The environment is .venv unless FLOPS_VENV names another directory.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python=${PYTHON:-python3}
venv=${FLOPS_VENV:-.venv}
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
fi
spec="."
[ -n "$extras" ] && spec=".[${extras}]"
"$venv/bin/pip" install --quiet -e "$spec"
