#!/usr/bin/env bash
# Benchmark apply on 3 domains x 4 containers (examples/incus-demo.yml, busybox
# image): from scratch, converged re-apply, and dry-run, with request counts;
# then a change to 9 of the 12 instances (9 pre-apply snapshots + 9 updates)
# and its rollback (9 snapshot restores, configuration checked).
# Needs a running Incus (scripts/incus-setup.sh) and root. Removes the demo
# domains before and after.
# Usage: scripts/bench-apply.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
cargo build --release -q
bin=$PWD/target/release/anklume
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp examples/incus-demo.yml "$work/infra.yml"
cd "$work"
export ANKLUME_STATE_DIR="$work/state"
"$bin" plan infra.yml -o plan.bin
sed 's/: {}$/: {description: "changed"}/' infra.yml > changed.yml
"$bin" plan changed.yml -o changed.bin

teardown() {
  for d in demo-admin demo-work demo-lab; do
    for i in $(incus list --project "$d" -f csv -c n 2>/dev/null); do
      incus config set "$i" security.protection.delete=false --project "$d" >/dev/null 2>&1 || true
      incus delete -f "$i" --project "$d" >/dev/null 2>&1 || true
    done
    incus project delete "$d" >/dev/null 2>&1 || true
    incus network delete "net-$d" >/dev/null 2>&1 || true
  done
}

summary() { grep '"event":"summary"' | sed 's/.*"requests":\([0-9]*\).*"writes":\([0-9]*\).*/\1 requests, \2 writes/'; }

for r in $(seq 1 "$runs"); do
  teardown
  s=$(date +%s%N); out=$("$bin" apply plan.bin --yes --format json); e=$(date +%s%N)
  echo "run $r: from scratch   $(( (e - s) / 1000000 )) ms  ($(echo "$out" | summary))"
  s=$(date +%s%N); out=$("$bin" apply plan.bin --yes --format json); e=$(date +%s%N)
  echo "run $r: converged      $(( (e - s) / 1000000 )) ms  ($(echo "$out" | summary))"
  s=$(date +%s%N); out=$("$bin" apply plan.bin --dry-run --format json); e=$(date +%s%N)
  echo "run $r: dry-run        $(( (e - s) / 1000000 )) ms  ($(echo "$out" | summary))"
  s=$(date +%s%N); out=$("$bin" apply changed.bin --yes --format json); e=$(date +%s%N)
  echo "run $r: change 9       $(( (e - s) / 1000000 )) ms  ($(echo "$out" | summary); 9 snapshots)"
  s=$(date +%s%N); "$bin" rollback --yes >/dev/null; e=$(date +%s%N)
  echo "run $r: rollback       $(( (e - s) / 1000000 )) ms"
done
teardown
