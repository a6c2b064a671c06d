#!/usr/bin/env bash
# CI step: README's first command in a fresh virtual environment holding only FLOps (no dev
# extras), with the pure-Python broker instead of Mosquitto, in a throw-away data directory.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
trap 'FLOPS_VENV="$scratch/venv" "$scratch/venv/bin/flops" down --data-dir "$scratch/data" \
      >/dev/null 2>&1 || true; rm -rf "$scratch"' EXIT
FLOPS_VENV="$scratch/venv" FLOPS_BROKER=amqtt bash scripts/demo.sh --data-dir "$scratch/data" \
  --rounds 3 --timeout 900
