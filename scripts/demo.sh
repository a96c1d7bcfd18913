#!/usr/bin/env bash
# The main job on a built-in example, from a fresh Debian 12 machine:
# set Incus up if missing (as root), build anklume, check the example, write
# its Ansible tree, plan it, and apply the plan to Incus: three domains of
# four containers on the local busybox test image.
# Usage: scripts/demo.sh [INFRA] [OUT_DIR]
#   INFRA    infra.yml or infra/ directory (default: examples/incus-demo.yml)
#   OUT_DIR  where the Ansible tree and plan.bin go (default: examples/out)
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

echo "==> anklume apply $out/plan.bin --yes"
"$bin" apply "$out/plan.bin" --yes

echo "==> a second apply changes nothing"
"$bin" apply "$out/plan.bin" --yes | tail -n 2

echo "==> anklume rollback --list (what can be undone)"
"$bin" rollback --list

echo
echo "Done. Look around: incus list --all-projects; $bin show $out/plan.bin"
echo "Undo the last apply: $bin rollback (add --force to delete the protected instances it created)"
