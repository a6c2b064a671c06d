#!/usr/bin/env bash
# Set up everything the tests need, then lint, type-check and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
# apt_install_missing EXECUTABLE PACKAGE...: install the packages unless EXECUTABLE is there
apt_install_missing() {
  local executable=$1; shift
  if ! command -v "$executable" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$executable" ]; then
    as_root apt-get update -qq && as_root apt-get install -y -qq "$@" >/dev/null
  fi
}
# The MQTT tests start a real broker; Debian's mosquitto (apt does not start it).
apt_install_missing mosquitto mosquitto
# A real browser renders the manager's /docs (Swagger UI) offline: Debian's headless chromium.
apt_install_missing chromium chromium
# Buildah, Podman, a registry and debootstrap for the container tests (their fixtures build the
# local Python base image with scripts/build_base_image.sh), and qemu-user-static with the
# arm64 binfmt handler: the multi-arch image and heterogeneous federation tests build and run
# arm64 images under emulation.
as_root env FLOPS_WITH_EMULATION=1 bash scripts/setup_containers.sh
bash scripts/setup.sh dev,torch
export FLWR_TELEMETRY_ENABLED=0
# The test image builders keep their layer cache in a volume between runs (tests/fixtures/
# podman.py); every build adds layers to it. When the disk runs low, drop it: the next builds
# start cold (the arm64 dependency layers take minutes under emulation) instead of failing.
graph_root=$(podman info --format '{{.Store.GraphRoot}}')
free_gb=$(df --output=avail -BG "$graph_root" | tail -1 | tr -dc 0-9)
if [ "$free_gb" -lt "${FLOPS_TEST_MIN_FREE_GB:-20}" ] \
    && podman volume exists flops-test-builder-storage; then
  echo "only ${free_gb} GB free under $graph_root: dropping the test builders' layer cache"
  # buildah inside the builder containers leaves its overlay directory bind-mounted on itself
  volume_dir=$(podman volume inspect --format '{{.Mountpoint}}' flops-test-builder-storage)
  findmnt -rn -o TARGET | grep -F "$volume_dir/" | sort -r | while read -r target; do
    as_root umount -l "$target"
  done
  podman volume rm --force flops-test-builder-storage >/dev/null \
    || echo "could not drop it; the tests run with the cache as it is"
fi
# Everything above is installed, so a test skipped for a missing tool is a failure here
# (tests/fixtures/tools.py, tests/conftest.py); -rs prints every skip's reason.
export FLOPS_REQUIRE_TOOLS=1
# Containers must resolve each other's names (netavark + aardvark-dns): fail now with the cause
# rather than after the container suites' timeouts.
bash scripts/build_base_image.sh
# The arm64 base (debootstrap under emulation, ~3.5 min) once per machine: it stays in local
# container storage between runs, like the amd64 one.
FLOPS_BASE_ARCH=arm64 bash scripts/build_base_image.sh localhost/flops-python:3.11-bookworm-arm64
.venv/bin/flops preflight --image localhost/flops-python:3.11-bookworm
.venv/bin/ruff check .
.venv/bin/mypy
# Two workers: the container suites on one, everything else on the other (tests/conftest.py)
.venv/bin/python -m pytest -q -rs --durations=40 -n 2 "$@"
# README's first command, end to end, in a fresh environment (no Mosquitto, no dev packages)
bash scripts/ci_demo.sh
