#!/usr/bin/env bash
# Install, start and initialise Incus on Debian 12 for anklume's tests and
# demo, and import a small busybox test image. Idempotent: every step checks
# first, so it is safe on a machine that already has Incus installed,
# initialised or running. Needs root.
#
# Environment:
#   ANKLUME_TEST_IMAGE  alias of the busybox test image (default: anklume-busybox)
set -euo pipefail

image_alias="${ANKLUME_TEST_IMAGE:-anklume-busybox}"
log() { echo "==> $*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "incus-setup: run as root" >&2
  exit 1
fi

# 1. Packages. Incus 6.0 is in bookworm-backports: derive that apt source from
#    the machine's own Debian source (same mirror), never from a fixed host.
need_pkgs=()
command -v incusd >/dev/null 2>&1 || [ -x /usr/libexec/incus/incusd ] || need_pkgs+=(incus-base)
command -v incus >/dev/null 2>&1 || need_pkgs+=(incus-client)
command -v nft >/dev/null 2>&1 || need_pkgs+=(nftables)
command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || need_pkgs+=(dnsmasq-base)
[ -x /bin/busybox ] || need_pkgs+=(busybox-static)
command -v xz >/dev/null 2>&1 || need_pkgs+=(xz-utils)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
      log "adding bookworm-backports (derived from debian.sources)"
      awk -v RS= 'NR==1' /etc/apt/sources.list.d/debian.sources | grep -v '^#' \
        | sed 's/^Suites:.*/Suites: bookworm-backports/' > /etc/apt/sources.list.d/anklume-bpo.sources
    else
      log "adding bookworm-backports (derived from sources.list)"
      grep -E '^deb .* bookworm main' /etc/apt/sources.list | head -n 1 \
        | sed 's/ bookworm main/ bookworm-backports main/' > /etc/apt/sources.list.d/anklume-bpo.list
    fi
  fi
  log "installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq -t bookworm-backports "${need_pkgs[@]}" >/dev/null
fi

# 2. The daemon (no systemd needed).
# Kernel limits for many containers. Every container's systemd, udev,
# networkd and resolved take inotify instances, all counted against the one
# host uid the unprivileged containers map root to; Debian's default of 128
# runs out at about a dozen Debian containers (dnsmasq then fails with "Too
# many open files", containers boot without network). Raised to Incus's
# recommended production values, never lowered, and kept across reboots.
raise_sysctl() {
  local key=$1 want=$2 have
  have=$(sysctl -n "$key" 2>/dev/null || echo 0)
  if [ "$have" -lt "$want" ]; then
    log "raising $key from $have to $want"
    sysctl -q -w "$key=$want"
  fi
}
raise_sysctl fs.inotify.max_user_instances 1048576
raise_sysctl fs.inotify.max_user_watches 1048576
raise_sysctl vm.max_map_count 262144
if [ ! -f /etc/sysctl.d/60-anklume-incus.conf ]; then
  printf '%s\n' '# Written by anklume scripts/incus-setup.sh: limits for many Incus containers.' \
    'fs.inotify.max_user_instances = 1048576' 'fs.inotify.max_user_watches = 1048576' \
    'vm.max_map_count = 262144' > /etc/sysctl.d/60-anklume-incus.conf
fi

incusd_bin=/usr/libexec/incus/incusd
[ -x "$incusd_bin" ] || incusd_bin=$(command -v incusd)
if ! incus info >/dev/null 2>&1; then
  log "starting incusd"
  mkdir -p /var/log/incus
  INCUS_SKIP_INSTANCE_TYPES=true setsid "$incusd_bin" --group root \
    --logfile /var/log/incus/incusd.log >/var/log/incus/incusd.out 2>&1 < /dev/null &
  incus admin waitready --timeout 60
fi

# 3. Initialise: a dir storage pool and a root disk in the default profile.
if ! incus storage show default >/dev/null 2>&1; then
  log "initialising incus"
  incus admin init --preseed <<'PRESEED'
config:
  images.auto_update_interval: "0"
storage_pools:
- name: default
  driver: dir
profiles:
- name: default
  devices:
    root: {path: /, pool: default, type: disk}
PRESEED
fi

# 4. The busybox test image (about 1 MB; starts in ~150 ms).
if ! incus image alias list --format csv 2>/dev/null | cut -d, -f1 | grep -qx "$image_alias"; then
  log "importing the busybox test image as '$image_alias'"
  W=$(mktemp -d)
  trap 'rm -rf "$W"' EXIT
  mkdir -p "$W"/rootfs/{bin,sbin,etc,proc,sys,dev,tmp,root,run}
  cp /bin/busybox "$W/rootfs/bin/"
  for a in $("$W/rootfs/bin/busybox" --list); do
    [ "$a" = busybox ] || ln -sf busybox "$W/rootfs/bin/$a"
  done
  ln -sf ../bin/busybox "$W/rootfs/sbin/init"
  printf '::respawn:/bin/sleep 3600\n::shutdown:/bin/true\n' > "$W/rootfs/etc/inittab"
  echo 'root:x:0:0:root:/root:/bin/sh' > "$W/rootfs/etc/passwd"
  echo 'root:x:0:' > "$W/rootfs/etc/group"
  # A fixed creation date keeps the image (and its fingerprint) reproducible.
  printf 'architecture: %s\ncreation_date: 1700000000\nproperties:\n  description: anklume busybox test image\n  os: busybox\n  release: "1"\n' "$(uname -m)" > "$W/metadata.yaml"
  tar -C "$W" -cJf "$W/metadata.tar.xz" metadata.yaml
  tar -C "$W/rootfs" -cJf "$W/rootfs.tar.xz" .
  incus image import "$W/metadata.tar.xz" "$W/rootfs.tar.xz" --alias "$image_alias" >/dev/null
fi

log "incus ready: $(incus version 2>/dev/null | tr '\n' ' ')(test image: $image_alias)"
