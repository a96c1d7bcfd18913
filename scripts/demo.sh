#!/usr/bin/env bash
# Build anklume, check the built-in example and write its Ansible tree.
# Usage: scripts/demo.sh [INFRA] [OUT_DIR]
#   INFRA    infra.yml or infra/ directory (default: examples/infra.yml)
#   OUT_DIR  where the Ansible tree goes (default: examples/out)
set -euo pipefail
cd "$(dirname "$0")/.."
infra="${1:-examples/infra.yml}"
out="${2:-examples/out}"

echo "==> building anklume (release)"
cargo build --release -q
bin=target/release/anklume

echo "==> anklume check $infra"
"$bin" check "$infra"

echo "==> anklume sync $infra --base-dir $out"
"$bin" sync "$infra" --base-dir "$out"

echo "==> a second sync changes nothing"
"$bin" sync "$infra" --base-dir "$out" | tail -n 1

echo
echo "The tree is in $out/: inventory/, group_vars/, host_vars/."
echo "Try: $bin check $infra --format json, or edit $infra and sync again."
