#!/usr/bin/env bash
# Set up FLOps in .venv and run the main job on this machine (no orchestrator needed):
# federated training of examples/digits_sklearn with 3 learners and 5 rounds, tracked in MLflow.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export FLWR_TELEMETRY_ENABLED=0
exec .venv/bin/flops train-local examples/digits_sklearn --learners 3 --rounds 5 "$@"
