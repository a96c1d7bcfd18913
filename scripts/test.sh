#!/usr/bin/env bash
# Run every check the project has: formatting, lints, and the whole test
# suite (unit, property, golden-file, fuzz-regression, CLI and real-Incus
# tests). The Incus tests need a running daemon: run scripts/incus-setup.sh
# first (as root), or they are skipped (ANKLUME_REQUIRE_INCUS=1 makes a
# missing daemon an error, as in CI).
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Snapshots are reviewed by people (`cargo insta review`), never written by CI.
export CI="${CI:-true}"
export INSTA_UPDATE=no

if [ "$(id -u)" -eq 0 ] && [ "${ANKLUME_SKIP_INCUS_SETUP:-0}" != 1 ]; then
  scripts/incus-setup.sh
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> cargo test"
cargo test --workspace
matrix=$(ls -t target/tmp/isolation-matrix.txt 2>/dev/null | head -n 1 || true)
if [ -n "$matrix" ]; then
  echo "==> measured isolation matrix"
  cat "$matrix"
fi
echo "==> benches compile"
cargo bench --workspace --no-run -q
echo "==> all tests passed"
