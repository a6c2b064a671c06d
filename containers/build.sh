#!/usr/bin/env bash
# Build one of FLOps' own service images from this source tree with buildah.
#
# Usage: bash containers/build.sh NAME [IMAGE]        (default IMAGE: localhost/flops/NAME:latest)
#   NAME image-builder: image-builder.Containerfile (the manager's FLOPS_BUILDER_IMAGE)
#        runtime, manager, tracking-server, inference-server, node: the stages of
#        services.Containerfile
#        offline-mongo, offline-mosquitto, offline-registry: stand-ins for the MongoDB,
#        Mosquitto and registry images on machines that cannot pull them
#        (containers/offline/; offline-mongo needs the runtime image first)
# Env:   FLOPS_BASE_IMAGE       base image (default localhost/flops-python:3.11-bookworm, made by
#                               scripts/build_base_image.sh)
#        FLOPS_RUNTIME_IMAGE    base of offline-mongo (default localhost/flops/runtime:latest)
#        FLOPS_PYTHON           interpreter whose installed versions become the image's
#                               constraints (default: python3); the image then pins what
#                               FLOps is tested with
#        FLOPS_EXTRA_CA_BUNDLE  CA bundle for pip during the build (default: the host's
#                               /etc/ssl/certs/ca-certificates.crt); mounted, not committed
set -euo pipefail

NAME=${1:?usage: build.sh image-builder|runtime|manager|tracking-server|inference-server|node [IMAGE]}
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(dirname "$HERE")
IMAGE=${2:-localhost/flops/$NAME:latest}
TARGET=()
case "$NAME" in
    image-builder) CONTAINERFILE=$HERE/image-builder.Containerfile ;;
    # the stages of services.Containerfile (one shared dependency layer)
    runtime|manager|tracking-server|inference-server|node)
        CONTAINERFILE=$HERE/services.Containerfile; TARGET=(--target "$NAME") ;;
    offline-mongo|offline-mosquitto|offline-registry)
        CONTAINERFILE=$HERE/offline/${NAME#offline-}.Containerfile ;;
    *) echo "build.sh: unknown image $NAME (known: image-builder, runtime, manager," \
            "tracking-server, inference-server, node, offline-mongo, offline-mosquitto," \
            "offline-registry)" >&2; exit 2 ;;
esac
BASE=${FLOPS_BASE_IMAGE:-localhost/flops-python:3.11-bookworm}
RUNTIME=${FLOPS_RUNTIME_IMAGE:-localhost/flops/runtime:latest}
PYTHON=${FLOPS_PYTHON:-python3}
CA=${FLOPS_EXTRA_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
say() { printf 'containers/build.sh: %s\n' "$*"; }

CTX=$(mktemp -d /var/tmp/flops-image-context.XXXXXX)
trap 'rm -rf "$CTX"' EXIT
start=$(date +%s)
# The runtime sources (what image_builder.runtime_layer.copy_runtime copies), the versions of
# the FLOps dependencies installed beside $PYTHON, and FLOps' own requirements.
"$PYTHON" - "$SRC" "$CTX" <<'PY'
import importlib.metadata as md
import shutil
import sys
import tomllib
from pathlib import Path

src, ctx = Path(sys.argv[1]), Path(sys.argv[2])
sys.path.insert(0, str(src))
from image_builder.runtime_layer import copy_runtime  # noqa: E402

copy_runtime(src, ctx / "src")
shutil.copytree(src / "containers" / "builder", ctx / "builder")
pyproject = tomllib.loads((src / "pyproject.toml").read_text())
project = pyproject["project"]
from packaging.requirements import Requirement  # noqa: E402

# The build tools as pyproject.toml's [build-system] asks (the builder image builds FLOps'
# runtime wheel with them, e.g. setuptools>=77 for the license field)
tools = {Requirement(r).name: Requirement(r) for r in pyproject["build-system"]["requires"]}
reqs = [*project["dependencies"], *(str(r) for r in tools.values())]
(ctx / "requirements.txt").write_text("\n".join(reqs) + "\n")
from image_builder.pins import runtime_pins  # noqa: E402

# The closure of FLOps' requirements as installed (the pins images get), plus the build tools
# where the version installed here satisfies [build-system] (an older one is not pinned).
pins = runtime_pins()
for tool, req in tools.items():
    try:
        version = md.version(tool)
    except md.PackageNotFoundError:
        continue
    if req.specifier.contains(version, prereleases=True):
        pins[tool] = version
(ctx / "constraints.txt").write_text("".join(f"{n}=={v}\n" for n, v in sorted(pins.items())))
PY
# docker format: OCI image configs cannot carry the HEALTHCHECK instructions
args=(bud --isolation chroot --layers --format docker -f "$CONTAINERFILE" "${TARGET[@]}"
      --build-arg "BASE_IMAGE=$BASE" --build-arg "RUNTIME_IMAGE=$RUNTIME" -t "$IMAGE")
if [[ -f "$CA" ]]; then
    args+=(-v "$CA:/run/flops/ca-bundle.pem:ro" --build-arg PIP_CERT=/run/flops/ca-bundle.pem)
fi
buildah "${args[@]}" "$CTX"
say "built $IMAGE in $(( $(date +%s) - start )) s"
