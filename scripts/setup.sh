#!/usr/bin/env bash
# Create .venv with FLOps and what it needs (idempotent). Usage: scripts/setup.sh [EXTRAS]
#   EXTRAS: pip extras to install, e.g. "dev,torch" (default: none)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
fi
spec="."
[ -n "$extras" ] && spec=".[${extras}]"
.venv/bin/pip install --quiet -e "$spec"
