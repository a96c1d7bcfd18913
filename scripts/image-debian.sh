#!/usr/bin/env bash
# Build the Debian container image anklume provisions (`anklume-debian`)
# from the Debian apt mirror this machine uses, with nothing else from the
# network, and import it into Incus. Debian 13 (trixie) when the mirror
# serves it, else 12 (bookworm). See docs/images.md.
#
# Idempotent and cached: the packed image is kept under the cache dir, keyed
# by a digest of this script's inputs (this file, suite, mirror, package
# list, architecture); a run whose key is cached and whose image Incus
# already has under the alias does nothing (about a second). Needs root
# (mmdebstrap's root mode, the Incus socket).
#
# Usage: scripts/image-debian.sh [--force] [--suite SUITE]
#   --force        rebuild and re-import even when cached
#   --suite SUITE  trixie or bookworm (default: probe the mirror)
# Environment:
#   ANKLUME_IMAGE_ALIAS     alias in Incus (default: anklume-debian)
#   ANKLUME_IMAGE_CACHE     cache dir (default: ${XDG_CACHE_HOME:-/var/cache}/anklume/images)
#   ANKLUME_DEBIAN_MIRROR   Debian mirror (default: the host's apt source for Debian)
#   ANKLUME_DEBIAN_SUITE    as --suite
set -euo pipefail

alias_name="${ANKLUME_IMAGE_ALIAS:-anklume-debian}"
cache="${ANKLUME_IMAGE_CACHE:-${XDG_CACHE_HOME:-/var/cache}/anklume/images}"
suite="${ANKLUME_DEBIAN_SUITE:-}"
force=0
t0=$(date +%s.%N)

log() { echo "==> $*"; }
die() { echo "image-debian: $*" >&2; exit 1; }
elapsed() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    --suite) [ $# -ge 2 ] || die "--suite needs a value (trixie or bookworm)"; suite="$2"; shift ;;
    --suite=*) suite="${1#--suite=}" ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done
case "$suite" in
  ""|trixie|bookworm) ;;
  *) die "unsupported suite '$suite': use trixie or bookworm" ;;
esac
[ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap's root mode and the Incus socket need it)"

# The image's packages, sorted (they are part of the cache key):
# - systemd + systemd-sysv: systemd as PID 1;
# - udev: systemd-networkd waits for udev to initialise a link whenever /sys
#   is writable, which it is in an Incus container; without udev eth0 stays
#   "pending" and never asks for a lease (docs/images.md, "DHCP");
# - systemd-resolved + libnss-resolve: DNS from the DHCP lease (dnsmasq on
#   the bridge), /etc/resolv.conf pointing at the stub;
# - python3 + python3-apt: Ansible's modules, its apt module;
# - bash, ca-certificates, dbus, iproute2, procps: what roles and tests use.
packages=(bash ca-certificates dbus iproute2 libnss-resolve procps python3 python3-apt
  systemd systemd-resolved systemd-sysv udev)
mapfile -t packages < <(printf '%s\n' "${packages[@]}" | LC_ALL=C sort -u)

# The Debian mirror: the host's own apt source for Debian, so the build needs
# no other network.
host_mirror() {
  local f u
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    u=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }' "$f")
    [ -n "$u" ] && { echo "${u%/}"; return; }
  done
  u=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:.*\/debian\/?$/) { print $i; exit } }' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n 1)
  echo "${u%/}"
}
mirror="${ANKLUME_DEBIAN_MIRROR:-$(host_mirror)}"
mirror="${mirror:-http://deb.debian.org/debian}"
mirror="${mirror%/}"

served() { curl -fsSI --max-time 15 -o /dev/null "$1/dists/$2/Release" 2>/dev/null; }

# Build tools (Debian's own packages, from the host's apt sources).
need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v zstd >/dev/null || need+=(zstd)
command -v curl >/dev/null || need+=(curl)
command -v incus >/dev/null || die "no incus client: run scripts/incus-setup.sh first"
if [ ${#need[@]} -gt 0 ]; then
  log "installing build tools: ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; } \
    || die "could not install ${need[*]}"
fi
incus info >/dev/null 2>&1 || die "Incus is not reachable: run scripts/incus-setup.sh first"

# The fingerprint the alias points at, or nothing.
alias_target() {
  incus query "/1.0/images/aliases/$alias_name" 2>/dev/null \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target"])' 2>/dev/null || true
}
image_prop() { # FINGERPRINT PROPERTY
  incus query "/1.0/images/$1" 2>/dev/null \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["properties"].get(sys.argv[1], ""))' "$2" \
      2>/dev/null || true
}

if [ -z "$suite" ]; then
  if served "$mirror" trixie; then suite=trixie
  elif served "$mirror" bookworm; then suite=bookworm
  else
    # Offline: the suite of the image already imported, so that a converged
    # run still succeeds; a build would need the mirror anyway.
    suite=$(image_prop "$(alias_target)" release)
    case "$suite" in
      trixie|bookworm) log "the mirror $mirror does not answer; keeping the suite of '$alias_name' ($suite)" ;;
      *) die "the mirror $mirror serves neither trixie nor bookworm (set ANKLUME_DEBIAN_MIRROR)" ;;
    esac
  fi
fi
case "$suite" in trixie) version=13 ;; bookworm) version=12 ;; esac
arch=$(dpkg --print-architecture)
incus_arch=$(uname -m)

key=$( { sha256sum < "$0"; echo "$suite $mirror $arch"; printf '%s\n' "${packages[@]}"; } \
  | sha256sum | cut -c1-16)
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
tarball="$cache/debian-$suite-$arch-$key.tar.zst"
log "Debian $version ($suite, $arch) from $mirror; cache key $key"

current=$(alias_target)
if [ "$force" -eq 0 ] && [ -s "$tarball" ] && [ -s "$tarball.sha256" ]; then
  fp=$(cut -c1-64 "$tarball.sha256")
  if [ "$current" = "$fp" ]; then
    log "up to date: '$alias_name' is $(echo "$fp" | cut -c1-12), built from the same inputs ($(elapsed))"
    exit 0
  fi
fi
if [ "$force" -eq 0 ] && [ -n "$current" ] && [ "$(image_prop "$current" anklume.key)" = "$key" ]; then
  log "up to date: '$alias_name' is $(echo "$current" | cut -c1-12), built from the same inputs (not cached here) ($(elapsed))"
  exit 0
fi

build() {
  local w root sde security=() deb822 size
  w=$(mktemp -d "$cache/build.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$w'" EXIT
  root="$w/rootfs"
  mkdir "$root"
  # The image's date is the mirror's: the Date of the suite's Release file.
  sde=$(curl -fsS --max-time 30 "$mirror/dists/$suite/Release" 2>&1) \
    || die "cannot build: the mirror does not answer ($sde)"
  sde=$(date -u -d "$(echo "$sde" | sed -n 's/^Date: //p' | head -n 1)" +%s 2>/dev/null) \
    || die "could not read the Date of $mirror/dists/$suite/Release"
  export SOURCE_DATE_EPOCH="$sde"
  if served "$mirror-security" "$suite-security"; then
    security=("deb $mirror-security $suite-security main")
  fi
  log "building with mmdebstrap: ${packages[*]}"
  local tb
  tb=$(date +%s)
  # shellcheck disable=SC2016  # the hooks are run by mmdebstrap with "$1" = the root
  mmdebstrap --quiet --mode=root --format=directory --variant=apt \
    --include="$(IFS=,; echo "${packages[*]}")" \
    --customize-hook='chroot "$1" systemctl enable systemd-networkd.service systemd-resolved.service >/dev/null 2>&1' \
    "$suite" "$root" \
    "deb $mirror $suite main" "deb $mirror $suite-updates main" "${security[@]}" \
    || die "mmdebstrap failed"
  log "mmdebstrap took $(( $(date +%s) - tb )) s"

  # eth0 by DHCP (dnsmasq on the anklume bridge hands out the NIC's
  # ipv4.address reservation, keyed by MAC). The hostname is Incus's, from
  # the templates below, never the lease's.
  mkdir -p "$root/etc/systemd/network"
  cat > "$root/etc/systemd/network/eth0.network" <<'EOF'
# anklume-debian: eth0 by DHCP from the anklume bridge (docs/images.md).
[Match]
Name=eth0

[Network]
DHCP=ipv4
IPv6AcceptRA=no

[DHCPv4]
ClientIdentifier=mac
UseDomains=yes
UseHostname=no
EOF
  # apt sources as deb822, the form trixie's apt prefers.
  deb822="$root/etc/apt/sources.list.d/debian.sources"
  {
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$mirror" "$suite" "$suite"
    if [ ${#security[@]} -gt 0 ]; then
      printf '\nTypes: deb\nURIs: %s-security\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$mirror" "$suite"
    fi
  } > "$deb822"
  rm -f "$root/etc/apt/sources.list"
  # Per-instance identity: systemd makes a machine-id at first boot; the
  # hostname and hosts come from Incus's templates.
  : > "$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id"
  echo debian > "$root/etc/hostname"
  rm -f "$root/var/cache/ldconfig/aux-cache" "$root"/var/log/*.log "$root/var/log/apt/"*.log

  mkdir -p "$w/templates"
  echo '{{ container.name }}' > "$w/templates/hostname.tpl"
  cat > "$w/templates/hosts.tpl" <<'EOF'
127.0.0.1	localhost
127.0.1.1	{{ container.name }}

::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
EOF
  cat > "$w/metadata.yaml" <<EOF
architecture: $incus_arch
creation_date: $sde
properties:
  architecture: $arch
  description: anklume Debian $version ($suite) $arch ($(date -u -d "@$sde" +%Y%m%d))
  os: Debian
  release: $suite
  version: "$version"
  variant: anklume
  anklume.key: "$key"
templates:
  /etc/hostname:
    when: [create, copy]
    create_only: false
    template: hostname.tpl
    properties: {}
  /etc/hosts:
    when: [create, copy]
    create_only: false
    template: hosts.tpl
    properties: {}
EOF
  log "packing the unified image (rootfs/, metadata.yaml, templates/)"
  tar -C "$w" --sort=name --numeric-owner --xattrs --xattrs-include=security.capability \
    --mtime="@$sde" --clamp-mtime --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -c metadata.yaml templates rootfs \
    | zstd -q -T0 -12 > "$w/image.tar.zst"
  sha256sum "$w/image.tar.zst" | cut -c1-64 > "$w/image.sha256"
  size=$(du -sh "$root" | cut -f1)
  mv "$w/image.tar.zst" "$tarball"
  mv "$w/image.sha256" "$tarball.sha256"
  rm -rf "$w"
  trap - EXIT
  # Older builds of this cache are no longer wanted.
  find "$cache" -maxdepth 1 -name 'debian-*.tar.zst*' ! -name "$(basename "$tarball")*" -delete
  log "built $tarball ($(du -h "$tarball" | cut -f1) packed, $size unpacked)"
}

if [ "$force" -eq 1 ] || [ ! -s "$tarball" ] || [ ! -s "$tarball.sha256" ]; then
  build
else
  log "cached: $tarball"
fi
fp=$(cut -c1-64 "$tarball.sha256")

if [ "$current" = "$fp" ]; then
  log "'$alias_name' is already $(echo "$fp" | cut -c1-12) ($(elapsed))"
  exit 0
fi
if incus query "/1.0/images/$fp" >/dev/null 2>&1; then
  log "Incus already has image $(echo "$fp" | cut -c1-12)"
else
  log "importing into Incus"
  got=$(incus image import "$tarball" --project default 2>&1 | sed -n 's/.*fingerprint: *//p')
  [ "$got" = "$fp" ] || die "import gave fingerprint '$got', expected $fp"
fi
desc="anklume Debian $version ($suite)"
if [ -n "$current" ]; then
  # Retarget in one request: the alias never disappears in between.
  incus query -X PUT "/1.0/images/aliases/$alias_name?project=default" \
    --data "{\"target\": \"$fp\", \"description\": \"$desc\"}" >/dev/null
else
  incus image alias create "$alias_name" "$fp" --description "$desc" --project default
fi
log "'$alias_name' -> $(echo "$fp" | cut -c1-12)${current:+ (was $(echo "$current" | cut -c1-12))}"
# The image the alias left, when it was one of ours and nothing else names it.
if [ -n "$current" ] && [ "$current" != "$fp" ] \
  && [ "$(image_prop "$current" variant)" = anklume ] \
  && [ "$(incus query "/1.0/images/$current" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["aliases"] or []))')" = 0 ]; then
  incus image delete "$current" --project default && log "deleted the previous image $(echo "$current" | cut -c1-12)"
fi
log "done ($(elapsed))"
