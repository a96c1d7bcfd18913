#!/usr/bin/env bash
# The main job on built-in examples, from a fresh Debian 12 machine:
# set Incus up if missing (as root), build anklume, check the example, write
# its Ansible tree, plan it, and apply the plan to Incus: three domains of
# four containers on the local busybox test image. Then provisioning: build
# the offline Debian image (scripts/image-debian.sh) and the Ansible venv
# (scripts/ansible-setup.sh), and apply examples/provision-demo.yml, whose
# three containers anklume provisions with its Ansible roles; a second apply
# shows that converged means no Ansible at all.
# Usage: scripts/demo.sh [INFRA] [OUT_DIR]
#   INFRA    infra.yml or infra/ directory (default: examples/incus-demo.yml)
#   OUT_DIR  where the Ansible trees and plans go (default: examples/out)
# ANKLUME_DEMO_PROVISION=0 skips the provisioning part.
set -euo pipefail
cd "$(dirname "$0")/.."
infra="${1:-examples/incus-demo.yml}"
out="${2:-examples/out}"
mkdir -p "$out"

if [ "$(id -u)" -eq 0 ]; then
  scripts/incus-setup.sh
else
  echo "note: not root, so Incus is not installed or started here (run scripts/incus-setup.sh as root)"
fi

echo "==> building anklume (release)"
cargo build --release -q
bin=target/release/anklume

echo "==> anklume check $infra"
"$bin" check "$infra"

echo "==> anklume sync $infra --base-dir $out"
"$bin" sync "$infra" --base-dir "$out" | tail -n 2

echo "==> anklume plan $infra > $out/plan.bin"
"$bin" plan "$infra" > "$out/plan.bin"
"$bin" show "$out/plan.bin" | head -n 4

echo "==> anklume apply $out/plan.bin --yes --no-provision (busybox has no Python for Ansible)"
"$bin" apply "$out/plan.bin" --yes --no-provision

echo "==> a second apply changes nothing"
"$bin" apply "$out/plan.bin" --yes --no-provision | tail -n 2

echo "==> anklume rollback --list (what can be undone)"
"$bin" rollback --list

if [ "${ANKLUME_DEMO_PROVISION:-1}" != 0 ]; then
  pv="$out/provision"
  mkdir -p "$pv"
  echo
  echo "==> provisioning: the offline Debian image and the pinned Ansible venv"
  scripts/image-debian.sh
  scripts/ansible-setup.sh
  echo "==> anklume sync + plan examples/provision-demo.yml (tree in $pv)"
  "$bin" sync examples/provision-demo.yml --base-dir "$pv" | tail -n 1
  "$bin" plan examples/provision-demo.yml --tree "$pv" > "$pv/plan.bin"
  echo "==> anklume apply $pv/plan.bin --yes (creates the containers, then runs the roles inside them)"
  "$bin" apply "$pv/plan.bin" --yes
  echo "==> a second apply: every instance records its provisioning fingerprint, so no Ansible runs"
  "$bin" apply "$pv/plan.bin" --yes | tail -n 2
  echo "==> what the roles did, seen from inside the containers"
  incus exec pv-work-dev --project pv-work -- sh -c 'printf "pv-work-dev: timezone %s, locale %s, nesting level %s\n" "$(cat /etc/timezone)" "$(cat /etc/default/locale)" "$(cat /etc/anklume/absolute_level)"'
  incus exec pv-work-ai --project pv-work -- sh -c 'printf "pv-work-ai: sanitizer config %s\n" "$(grep -m1 listen_port /etc/llm-sanitizer/config.yml | tr -s " ")"'
  incus exec pv-lab-fw --project pv-lab -- sh -c 'printf "pv-lab-fw: ip_forward %s, %s\n" "$(sysctl -n net.ipv4.ip_forward)" "$(nft list table inet anklume | grep -c "policy drop") chain(s) with policy drop"'
fi

echo
echo "Done. Look around: incus list --all-projects; $bin show $out/plan.bin"
echo "Undo the last apply: $bin rollback (add --force to delete the protected instances it created)"
