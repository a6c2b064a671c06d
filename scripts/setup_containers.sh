#!/usr/bin/env bash
# Install and configure the container tools FLOps' image builder and Docker backend use:
# buildah, podman (Docker-compatible API), runc, fuse-overlayfs, docker-registry, debootstrap,
# tini. Idempotent: installs only what is missing, rewrites a configuration file only when its
# content differs (keeping the first original as <file>.flops-orig), and prints what it did.
#
# Usage: sudo bash scripts/setup_containers.sh          (root is required for apt and /etc)
#        FLOPS_WITH_EMULATION=1 bash scripts/setup_containers.sh   also installs qemu-user-static
#                                                                   and registers arm64 emulation
set -euo pipefail

CONF_DIR=${FLOPS_CONTAINERS_CONF_DIR:-/etc/containers}
# netavark + aardvark-dns: container networking with name resolution between containers, also
# for a container on two networks (the CNI dnsname plugin answers only for the first network).
PACKAGES=(buildah podman runc fuse-overlayfs docker-registry debootstrap tini uidmap
          containernetworking-plugins iptables netavark aardvark-dns)
[[ "${FLOPS_WITH_EMULATION:-0}" == "1" ]] && PACKAGES+=(qemu-user-static binfmt-support)

say() { printf 'setup_containers: %s\n' "$*"; }

if [[ $(id -u) -ne 0 ]]; then
    say "must run as root (apt-get and $CONF_DIR)" >&2
    exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
else
    say "packages already installed: ${PACKAGES[*]}"
fi

# write_if_changed FILE: replace FILE with stdin unless it already has exactly that content.
write_if_changed() {
    local target=$1 tmp
    tmp=$(mktemp)
    cat >"$tmp"
    if [[ -f "$target" ]] && cmp -s "$tmp" "$target"; then
        say "$target unchanged"
        rm -f "$tmp"
        return
    fi
    if [[ -f "$target" && ! -f "$target.flops-orig" ]]; then
        cp -p "$target" "$target.flops-orig"
    fi
    install -m 0644 "$tmp" "$target"
    rm -f "$tmp"
    say "wrote $target"
}

mkdir -p "$CONF_DIR"
# default_ulimits = []: otherwise runc fails with "error setting rlimit type 7" here.
# runc + cgroupfs: crun fails on this host's hybrid cgroups, and there is no systemd.
write_if_changed "$CONF_DIR/containers.conf" <<'EOF'
# Written by FLOps scripts/setup_containers.sh
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "netavark"
EOF

# overlay is far faster than vfs (vfs copies every layer).
write_if_changed "$CONF_DIR/storage.conf" <<'EOF'
# Written by FLOps scripts/setup_containers.sh
[storage]
driver = "overlay"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
EOF

# No short-name search (no Docker Hub here); the conventional local registry is plain HTTP.
# Tests use their own registries.conf (CONTAINERS_REGISTRIES_CONF) for registries on free ports.
write_if_changed "$CONF_DIR/registries.conf" <<'EOF'
# Written by FLOps scripts/setup_containers.sh
unqualified-search-registries = []

[[registry]]
location = "127.0.0.1:5005"
insecure = true

[[registry]]
location = "localhost:5005"
insecure = true
EOF

if [[ "${FLOPS_WITH_EMULATION:-0}" == "1" ]]; then
    if [[ ! -e /proc/sys/fs/binfmt_misc/register ]]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
        say "mounted binfmt_misc"
    fi
    if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
        cat /usr/lib/binfmt.d/qemu-aarch64.conf >/proc/sys/fs/binfmt_misc/register
        say "registered qemu-aarch64 emulation"
    else
        say "qemu-aarch64 emulation already registered"
    fi
fi

say "buildah $(buildah --version | awk '{print $3}'), podman $(podman --version | awk '{print $3}')"
say "done"
