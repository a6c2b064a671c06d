#!/usr/bin/env bash
# Set up everything the tests need, then lint, type-check and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  # The MQTT tests start a real broker; Debian's mosquitto (apt does not start it).
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq mosquitto >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq mosquitto >/dev/null; fi
fi
# Buildah, Podman, a registry and debootstrap for the container tests (their fixtures build the
# local Python base image with scripts/build_base_image.sh)
if [ "$(id -u)" = 0 ]; then bash scripts/setup_containers.sh
else sudo bash scripts/setup_containers.sh; fi
bash scripts/setup.sh dev,torch
export FLWR_TELEMETRY_ENABLED=0
# Everything above is installed, so a test skipped for a missing tool is a failure here
# (tests/fixtures/tools.py, tests/conftest.py); -rs prints every skip's reason.
export FLOPS_REQUIRE_TOOLS=1
# Containers must resolve each other's names (netavark + aardvark-dns): fail now with the cause
# rather than after the container suites' timeouts.
bash scripts/build_base_image.sh
.venv/bin/flops preflight --image localhost/flops-python:3.11-bookworm
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/python -m pytest -q -rs --durations=15 "$@"
# README's first command, end to end, in a fresh environment (no Mosquitto, no dev packages)
bash scripts/ci_demo.sh
