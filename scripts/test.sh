#!/usr/bin/env bash
# Run every check the project has: formatting, lints, and the whole test
# suite (unit, property, golden-file and fuzz-regression tests).
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Snapshots are reviewed by people (`cargo insta review`), never written by CI.
export CI="${CI:-true}"
export INSTA_UPDATE=no

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> cargo test"
cargo test --workspace
echo "==> benches compile"
cargo bench --workspace --no-run -q
echo "==> all tests passed"
