#!/usr/bin/env bash
# Build a local Debian bookworm Python base image with debootstrap and import it with podman.
# Used where no base image can be pulled (tests, CI). Idempotent: does nothing when the image
# already exists in local container storage.
#
# Usage: bash scripts/build_base_image.sh [IMAGE]      (default localhost/flops-python:3.11-bookworm)
# Env:   FLOPS_DEBIAN_MIRROR  mirror URL (default: the one in /etc/apt/sources.list.d/, else
#                             http://deb.debian.org/debian)
#        FLOPS_BASE_ARCH      debootstrap --arch (default: the host's); needs emulation if foreign
#                             (scripts/setup_containers.sh with FLOPS_WITH_EMULATION=1)
# Takes ~70 s on 2 cores (debootstrap ~60 s, import ~8 s; arm64 under emulation ~3.5 min);
# the image is ~130 MB.
set -euo pipefail

IMAGE=${1:-localhost/flops-python:3.11-bookworm}
ARCH=${FLOPS_BASE_ARCH:-$(dpkg --print-architecture)}
say() { printf 'build_base_image: %s\n' "$*"; }

if podman image exists "$IMAGE"; then
    say "$IMAGE already exists, nothing to do"
    exit 0
fi

MIRROR=${FLOPS_DEBIAN_MIRROR:-}
if [[ -z "$MIRROR" ]]; then
    MIRROR=$(grep -rhoE '^URIs:\s*\S+/debian/?$' /etc/apt/sources.list.d/ 2>/dev/null \
             | awk '{print $2}' | head -n1 || true)
fi
MIRROR=${MIRROR:-http://deb.debian.org/debian}

WORK=$(mktemp -d /var/tmp/flops-base.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
ROOTFS=$WORK/rootfs

start=$(date +%s)
say "debootstrap bookworm ($ARCH) from $MIRROR"
# python3-venv: the image builder makes a venv; passwd: useradd for the non-root user;
# tini: PID 1 that forwards SIGTERM to the Python process.
debootstrap --variant=minbase --arch="$ARCH" \
    --include=python3,python3-venv,ca-certificates,passwd,tini \
    bookworm "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
        tail -n 30 "$WORK/debootstrap.log" >&2
        exit 1
    }
# Slim it: no apt lists, caches, docs, man/info pages or message translations (~35 MB; the
# C.UTF-8 locale itself lives in /usr/lib/locale and stays) in the base.
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
       "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* \
       "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/locale/* "$ROOTFS"/usr/share/lintian/*
# --arch: the image config names the rootfs' architecture (buildah --platform picks by it).
tar -C "$ROOTFS" -c . | podman import --quiet --arch "$ARCH" \
    --change 'CMD ["python3"]' \
    --change 'ENV LANG=C.UTF-8' \
    - "$IMAGE" >/dev/null
say "built $IMAGE in $(( $(date +%s) - start )) s"
