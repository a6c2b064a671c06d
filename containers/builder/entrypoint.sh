#!/bin/sh
# Pick buildah's storage driver, then run the command (python -m image_builder).
#   overlay: /var/lib/containers is a volume or bind mount (not overlayfs) and holds no vfs store
#   vfs:     otherwise (overlay on top of the container's overlay root does not mount)
# An explicit STORAGE_DRIVER wins.
set -eu
store=/var/lib/containers/storage
if [ -z "${STORAGE_DRIVER:-}" ]; then
    fstype=$(stat -f -c %T /var/lib/containers 2>/dev/null || echo unknown)
    if [ "$fstype" = overlayfs ] || [ -d "$store/vfs" ]; then
        STORAGE_DRIVER=vfs
    else
        STORAGE_DRIVER=overlay
    fi
    export STORAGE_DRIVER
fi
exec "$@"
