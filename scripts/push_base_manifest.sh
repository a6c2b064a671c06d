#!/usr/bin/env bash
# Push local per-architecture base images to a registry as ONE manifest list, so that
# `buildah bud --platform linux/amd64 --platform linux/arm64` (FLOps' image builder, also when it
# runs in a container) takes each platform's base from the same FLOPS_BASE_IMAGE reference.
#
# Usage: bash scripts/push_base_manifest.sh DEST [IMAGE...]
#        DEST     registry reference, e.g. 127.0.0.1:5005/flops/python:3.11-bookworm
#        IMAGE    local images, one per architecture (default: localhost/flops-python:3.11-bookworm
#                 and localhost/flops-python:3.11-bookworm-arm64, made by build_base_image.sh)
# Env:   FLOPS_REGISTRY_TLS_VERIFY  false for a plain-HTTP or self-signed registry (default true)
set -euo pipefail

DEST=${1:?usage: push_base_manifest.sh DEST [IMAGE...]}
shift
IMAGES=("$@")
if ((${#IMAGES[@]} == 0)); then
    IMAGES=(localhost/flops-python:3.11-bookworm localhost/flops-python:3.11-bookworm-arm64)
fi
TLS_VERIFY=${FLOPS_REGISTRY_TLS_VERIFY:-true}
say() { printf 'push_base_manifest: %s\n' "$*"; }

LIST="localhost/flops-base-list:$(date +%s)-$$"
buildah manifest create "$LIST" >/dev/null
trap 'buildah manifest rm "$LIST" >/dev/null 2>&1 || true' EXIT
for image in "${IMAGES[@]}"; do
    # containers-storage: the local image (no registry lookup); its config names its arch.
    buildah manifest add "$LIST" "containers-storage:$image" >/dev/null
    say "added $image ($(podman image inspect --format '{{.Os}}/{{.Architecture}}' "$image"))"
done
buildah manifest push --all --quiet "--tls-verify=$TLS_VERIFY" "$LIST" "docker://$DEST"
say "pushed ${#IMAGES[@]} platforms as $DEST"
