#!/usr/bin/env bash
# Run every check the project has: formatting, lints, and the whole test
# suite (unit, property, golden-file, fuzz-regression, CLI and real-Incus
# tests), with the `failpoints` feature the kill tests need.
#
# It does not change the machine: the Incus tests use a daemon that is
# already running, or are skipped (ANKLUME_REQUIRE_INCUS=1 makes a missing
# daemon an error, as in CI). To install and start Incus first (apt
# sources, packages, incusd, the test image: scripts/incus-setup.sh, as
# root), ask for it with --setup or ANKLUME_SETUP=1.
#
# The real-Incus tests create and delete only objects named ankt-… (and the
# `inet anklume` nftables table while they run), and refuse to run on a host
# with anklume state of its own; see docs/apply.md ("The tests and the host").
# Usage: scripts/test.sh [--setup]
set -euo pipefail
cd "$(dirname "$0")/.."

setup="${ANKLUME_SETUP:-0}"
for arg in "$@"; do
  case "$arg" in
    --setup) setup=1 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test.sh: unknown argument '$arg' (usage: scripts/test.sh [--setup])" >&2; exit 2 ;;
  esac
done

# Snapshots are reviewed by people (`cargo insta review`), never written by CI.
export CI="${CI:-true}"
export INSTA_UPDATE=no

if [ "$setup" = 1 ]; then
  scripts/incus-setup.sh
fi

# The failpoints feature compiles the kill-at-record-N hook the rollback
# tests use; release builds never have it.
features=(--features failpoints)

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings
echo "==> cargo test ${features[*]}"
cargo test --workspace "${features[@]}"
matrix=$(ls -t target/tmp/isolation-matrix.txt 2>/dev/null | head -n 1 || true)
if [ -n "$matrix" ]; then
  echo "==> measured isolation matrix"
  cat "$matrix"
fi
echo "==> benches compile"
cargo bench --workspace --no-run -q
echo "==> all tests passed"
