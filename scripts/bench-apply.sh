#!/usr/bin/env bash
# Benchmark apply on 3 domains x 4 containers (examples/incus-demo.yml, busybox
# image): from scratch, converged re-apply, and dry-run, with request counts;
# then a change to 9 of the 12 instances (9 pre-apply snapshots + 9 updates)
# and its rollback (9 snapshot restores, configuration checked). Ends with the
# median of each measure.
# Needs a running Incus (scripts/incus-setup.sh) and root. Removes the demo
# domains before and after, and puts the host's `inet anklume` nftables table
# back as it found it (the applies load their own).
#
# To compare builds in the same session, give their binaries: the runs are
# interleaved (run 1 of each, then run 2 of each...), so a busy machine
# weighs on all of them alike.
# Usage: scripts/bench-apply.sh [RUNS] [BINARY...]
#   (no BINARY: builds and measures target/release/anklume)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
shift || true
bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
  cargo build --release -q
  bins=("$PWD/target/release/anklume")
fi
for b in "${bins[@]}"; do
  [ -x "$b" ] || { echo "bench-apply.sh: $b is not an executable" >&2; exit 2; }
done
work=$(mktemp -d)
# The host's table before the runs: put back at the end (or removed when
# there was none), also when a run fails.
had_table=0
if nft list table inet anklume > "$work/nft-before" 2>/dev/null; then had_table=1; fi
restore_table() {
  nft delete table inet anklume 2>/dev/null || true
  if [ "$had_table" = 1 ]; then nft -f "$work/nft-before"; fi
}
trap 'restore_table; rm -rf "$work"' EXIT
cp examples/incus-demo.yml "$work/infra.yml"
cd "$work"
sed 's/: {}$/: {description: "changed"}/' infra.yml > changed.yml

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
now() { date +%s%N; }
# Record one measure: label, binary index, milliseconds.
record() { echo "$1 $2 $3" >> "$work/times"; }

for r in $(seq 1 "$runs"); do
  for k in "${!bins[@]}"; do
    bin="${bins[$k]}"
    tag="run $r"
    [ ${#bins[@]} -gt 1 ] && tag="run $r [$k]"
    export ANKLUME_STATE_DIR="$work/state-$k"
    "$bin" plan infra.yml -o "plan-$k.bin"
    "$bin" plan changed.yml -o "changed-$k.bin"
    teardown
    s=$(now); out=$("$bin" apply "plan-$k.bin" --yes --format json); e=$(now)
    t=$(( (e - s) / 1000000 )); record scratch "$k" "$t"
    echo "$tag: from scratch   $t ms  ($(echo "$out" | summary))"
    s=$(now); out=$("$bin" apply "plan-$k.bin" --yes --format json); e=$(now)
    t=$(( (e - s) / 1000000 )); record converged "$k" "$t"
    echo "$tag: converged      $t ms  ($(echo "$out" | summary))"
    s=$(now); out=$("$bin" apply "plan-$k.bin" --dry-run --format json); e=$(now)
    t=$(( (e - s) / 1000000 )); record dry-run "$k" "$t"
    echo "$tag: dry-run        $t ms  ($(echo "$out" | summary))"
    s=$(now); out=$("$bin" apply "changed-$k.bin" --yes --format json); e=$(now)
    t=$(( (e - s) / 1000000 )); record change-9 "$k" "$t"
    echo "$tag: change 9       $t ms  ($(echo "$out" | summary); 9 snapshots)"
    s=$(now); "$bin" rollback --yes >/dev/null; e=$(now)
    t=$(( (e - s) / 1000000 )); record rollback "$k" "$t"
    echo "$tag: rollback       $t ms"
  done
done
teardown

echo "medians over $runs run(s):"
for m in scratch converged dry-run change-9 rollback; do
  for k in "${!bins[@]}"; do
    med=$(awk -v m="$m" -v k="$k" '$1 == m && $2 == k { print $3 }' "$work/times" | sort -n |
      awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print int((v[NR / 2] + v[NR / 2 + 1]) / 2) }')
    printf '  %-10s %s  %s ms\n' "$m" "${bins[$k]}" "$med"
  done
done
