#!/usr/bin/env bash
# Set up FLOps (a virtual environment, .venv unless FLOPS_VENV says otherwise) and run the main
# job on this machine with no orchestrator: `flops demo` starts the embedded stack (MQTT broker,
# MLflow server, manager with the local backend), submits examples/digits_sklearn through the
# REST API, shows each round, registers the model, serves it and asks it for predictions.
# Only Python 3.11+ and git are needed (without Mosquitto, a pure-Python broker is installed).
# Arguments go to `flops demo` (e.g. --rounds 3 --data-dir DIR). Stop it all with `flops down`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export FLWR_TELEMETRY_ENABLED=0
exec "${FLOPS_VENV:-.venv}/bin/flops" demo "$@"
