#!/usr/bin/env bash
# Benchmark provisioning: 3 domains x 4 containers on the `anklume-debian`
# image, every machine with base_system; the four machines of the first
# domain also run a small user role (roles_custom/bench_note). Measures, with
# the anklume binary given (default: a release build of this checkout):
#   1. the first apply (plan + apply from nothing), split into infrastructure
#      (until the last non-provision node ended) and provisioning (the rest);
#   2. a converged re-apply (must start no Ansible process);
#   3. one role edited (bench_note): only its 4 users are provisioned again.
# Prints the numbers and the Ansible per-host counts; keeps the JSON events
# and the state directory (journals, Ansible logs) in $OUT (default: a
# temporary directory, removed). KEEP=1 leaves the domains in Incus.
#
# Needs root, a running Incus (scripts/incus-setup.sh), the image
# (scripts/image-debian.sh) and the Ansible venv (scripts/ansible-setup.sh).
# Creates and deletes only the domains ankb-a, ankb-b and ankb-c (projects,
# bridges net-ankb-*); the host's nftables are not touched (--no-nftables).
# Incus changes of the set-up and clean-up are made under
# /tmp/anklume-incus.lock. FORKS (default 8) is apply's --parallelism.
# Usage: scripts/bench-provision.sh [BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin="${1:-}"
if [ -z "$bin" ]; then
  cargo build --release -q
  bin="$root/target/release/anklume"
fi
forks="${FORKS:-8}"
incus image list -f csv -c l anklume-debian | grep -qx anklume-debian \
  || { echo "bench-provision.sh: no anklume-debian image (scripts/image-debian.sh)" >&2; exit 2; }
scripts/ansible-setup.sh >/dev/null
domains=(ankb-a ankb-b ankb-c)

teardown() {
  flock /tmp/anklume-incus.lock bash -c '
    for d in '"${domains[*]}"'; do
      if incus project show "$d" >/dev/null 2>&1; then
        for i in $(incus list --project "$d" -f csv -c n); do
          incus config set "$i" security.protection.delete=false --project "$d" >/dev/null 2>&1 || true
          incus delete -f "$i" --project "$d" >/dev/null 2>&1 || true
        done
        for p in $(incus profile list --project "$d" -f csv -c n | grep -vx default); do
          incus profile delete "$p" --project "$d" >/dev/null 2>&1 || true
        done
        incus project delete "$d" >/dev/null 2>&1 || true
      fi
      incus network delete "net-$d" >/dev/null 2>&1 || true
    done'
}
work=$(mktemp -d)
out="${OUT:-$work/out}"
mkdir -p "$out"
cleanup() {
  if [ "${KEEP:-0}" = 1 ]; then echo "KEEP=1: left the domains ankb-a, ankb-b, ankb-c"; else teardown; fi
  rm -rf "$work"
}
trap cleanup EXIT
teardown

cd "$work"
{
  printf 'project_name: bench\nglobal:\n  addressing: {zone_base: 140}\n  default_os_image: anklume-debian\ndomains:\n'
  for d in "${domains[@]}"; do
    printf '  %s:\n    machines:\n' "$d"
    for n in 1 2 3 4; do
      if [ "$d" = ankb-a ]; then
        printf '      %s-%s: {roles: [base_system, bench_note]}\n' "$d" "$n"
      else
        printf '      %s-%s: {roles: [base_system]}\n' "$d" "$n"
      fi
    done
  done
} > infra.yml
note_role() {
  mkdir -p roles_custom/bench_note/tasks
  printf -- '- name: Bench note | Write\n  ansible.builtin.copy:\n    dest: /etc/bench-note\n    content: "%s\\n"\n    mode: "0644"\n' "$1" \
    > roles_custom/bench_note/tasks/main.yml
}
note_role first
# The state (journals, Ansible logs) is kept with the events.
export ANKLUME_STATE_DIR="$out/state"

now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
# apply with JSON events, each line stamped with the time it arrived.
stamped_apply() {
  local name=$1
  "$bin" apply plan.bin --yes --no-nftables --format json --parallelism "$forks" \
    | while IFS= read -r line; do printf '%s %s\n' "$(now)" "$line"; done > "$out/$name.jsonl"
}
runs() { find "$ANKLUME_STATE_DIR/ansible" -name '*.log' 2>/dev/null | wc -l; }

"$bin" sync >/dev/null
t0=$(now)
"$bin" plan -o plan.bin
stamped_apply first || echo "   the apply reported failures (events and logs in $out)"
t1=$(now)
infra_end=$(grep '"event":"result"' "$out/first.jsonl" | grep -v '"id":"provision/' | tail -n 1 | cut -d' ' -f1)
echo "== first apply: $(ms "$t0" "$t1") ms (plan + apply)"
echo "   infrastructure: $(ms "$t0" "$infra_end") ms; provisioning: $(ms "$infra_end" "$t1") ms; Ansible runs: $(runs)"
grep -c '"event":"task"' "$out/first.jsonl" | sed 's/^/   task events: /'
cut -d' ' -f2- "$out/first.jsonl" | python3 -c '
import json, sys
res = {}
for l in sys.stdin:
    v = json.loads(l)
    if v.get("event") == "result" and v["node"]["id"].startswith("provision/"):
        res[v["node"]["result"]] = res.get(v["node"]["result"], 0) + 1
    if v.get("event") == "summary":
        print("   summary:", {k: v[k] for k in ("created", "updated", "unchanged", "failed", "skipped")})
print("   provision results:", res)'

before=$(runs)
t0=$(now)
"$bin" plan -o plan.bin
stamped_apply converged || echo "   the apply reported failures (events and logs in $out)"
t1=$(now)
echo "== converged re-apply: $(ms "$t0" "$t1") ms (plan + apply); new Ansible runs: $(( $(runs) - before ))"

note_role second
before=$(runs)
t0=$(now)
"$bin" plan -o plan.bin
stamped_apply one-role || echo "   the apply reported failures (events and logs in $out)"
t1=$(now)
n=$(grep '"event":"result"' "$out/one-role.jsonl" | grep '"id":"provision/' | grep -c '"result":"updated"' || true)
echo "== one role edited: $(ms "$t0" "$t1") ms (plan + apply); instances provisioned again: $n; new Ansible runs: $(( $(runs) - before ))"
