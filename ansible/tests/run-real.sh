#!/usr/bin/env bash
# Real test of site.yml and the roles base_system, admin_bootstrap,
# firewall_router and llm_sanitizer, in throwaway containers from the
# `anklume-debian` image, through the community.general.incus connection.
#
# Creates project `ankt-ans`, bridge `ankt-ansbr` (10.251.77.1/24, NAT: apt
# reaches the Debian mirror) and containers ankt-ans-{a,b,c,d}; writes a tree
# as `anklume sync` does (inventory names differ from Incus names, as under
# nesting); runs site.yml twice (the second must report changed=0 on every
# host); runs the checks of ../shared/spec/provisioning.md §2 with `incus exec`;
# deletes everything it created (KEEP=1 keeps it). Incus changes are made under
# /tmp/anklume-incus.lock. LOGS=<dir> keeps the two runs' Ansible output there.
# Exit status: 0 when everything passed.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
lock=/tmp/anklume-incus.lock
project=ankt-ans
bridge=ankt-ansbr
P=(--project "$project")
names=(ankt-ans-a ankt-ans-b ankt-ans-c ankt-ans-d)

incus image list -f csv -c l anklume-debian | grep -qx anklume-debian \
  || { echo "run-real.sh: no anklume-debian image in Incus" >&2; exit 2; }
scripts/ansible-setup.sh >/dev/null
venv="${ANKLUME_ANSIBLE_VENV:-$HOME/.cache/anklume/ansible-venv}"

teardown() {
  flock "$lock" bash -c '
    for n in '"${names[*]}"'; do incus delete -f "$n" --project '"$project"' >/dev/null 2>&1 || true; done
    incus project delete '"$project"' >/dev/null 2>&1 || true
    incus network delete '"$bridge"' >/dev/null 2>&1 || true'
}
work=$(mktemp -d)
cleanup() {
  if [ -n "${LOGS:-}" ]; then mkdir -p "$LOGS" && cp "$work"/run*.log "$LOGS"/ 2>/dev/null || true; fi
  rm -rf "$work"
  if [ "${KEEP:-0}" = 1 ]; then echo "KEEP=1: left project $project and bridge $bridge"; else teardown; fi
}
trap cleanup EXIT

# Leftovers of an interrupted run of this script (same names) go first.
teardown
flock "$lock" bash -euc '
  incus network create '"$bridge"' ipv4.address=10.251.77.1/24 ipv4.nat=true ipv6.address=none >/dev/null
  incus project create '"$project"' -c features.images=false -c features.profiles=true \
    -c features.networks=false -c features.storage.volumes=false >/dev/null
  pool=$(incus profile device get default root pool)
  incus profile device add default root disk path=/ pool="$pool" --project '"$project"' >/dev/null
  incus profile device add default eth0 nic network='"$bridge"' name=eth0 --project '"$project"' >/dev/null
  for n in '"${names[*]}"'; do incus launch anklume-debian "$n" --project '"$project"' >/dev/null 2>&1; done'
# The play must install python3 where it is missing.
for _ in $(seq 30); do incus exec "${P[@]}" ankt-ans-d -- systemctl is-system-running --wait >/dev/null 2>&1 && break || sleep 1; done
incus exec "${P[@]}" ankt-ans-d -- sh -c 'DEBIAN_FRONTEND=noninteractive apt-get remove -y -q python3 python3-minimal "python3.*-minimal" >/dev/null 2>&1; ! test -e /usr/bin/python3'

# The tree, as `anklume sync` writes it.
tree="$work/tree"
mkdir -p "$tree/inventory" "$tree/group_vars" "$tree/host_vars" "$tree/roles_custom/my_custom/tasks"
begin=$'---\n# === MANAGED BY infra.yml ===\n# Do not edit this section — it will be overwritten by `make sync`'
end=$'# === END MANAGED ===\n\n# Your custom variables below:'
w() { printf '%s\n%s\n%s\n%s' "$begin" "$2" "$end" "${3:+$3
}" >"$tree/$1"; }
w inventory/lab.yml $'all:\n  children:\n    lab:\n      hosts:\n        web:\n          ansible_host: 10.251.77.10\n        fw:\n          ansible_host: 10.251.77.11\n        bare:'
w inventory/anklume.yml $'all:\n  children:\n    anklume:\n      hosts:\n        admin:\n          ansible_host: 10.251.77.12'
w group_vars/all.yml 'project_name: ankt'
w group_vars/lab.yml $'domain_name: lab\ndomain_ai_provider: local\ndomain_ai_sanitize: true\nincus_project: '"$project"
w group_vars/anklume.yml $'domain_name: anklume\ndomain_ai_provider: local\ndomain_ai_sanitize: false\nincus_project: '"$project"
w host_vars/web.yml $'instance_name: ankt-ans-a\ninstance_roles:\n  - base_system\n  - llm_sanitizer\n  - my_custom\n  - llm_sanitizer' 'my_custom_message: hello from host_vars'
w host_vars/fw.yml $'instance_name: ankt-ans-b\ninstance_roles:\n  - base_system\n  - firewall_router' $'firewall_router_interfaces:\n  - {name: eth1, bridge: net-lab}\n  - {name: eth2, bridge: net-work}'
w host_vars/admin.yml $'instance_name: ankt-ans-c\ninstance_roles:\n  - base_system\n  - llm_sanitizer'
w host_vars/bare.yml 'instance_name: ankt-ans-d'
cat >"$tree/roles_custom/my_custom/tasks/main.yml" <<'EOF'
---
- name: My custom | Write a marker
  ansible.builtin.copy:
    dest: /etc/anklume-custom-role
    content: "{{ my_custom_message | default('unset') }}\n"
    mode: "0644"
EOF

export PATH="$venv/bin:$PATH" ANSIBLE_CONFIG="$root/ansible/ansible.cfg" ANKLUME_TREE="$tree"
export ANSIBLE_LOCAL_TEMP="$work/tmp" ANSIBLE_HOME="$work/home"
fail=0
for run in 1 2; do
  start=$(date +%s%N)
  rc=0
  flock "$lock" ansible-playbook "$root/ansible/site.yml" -i "$tree/inventory" -f 5 >"$work/run$run.log" 2>&1 || rc=$?
  tenths=$(( ($(date +%s%N) - start) / 100000000 ))
  echo "run $run: exit $rc, $((tenths / 10)).$((tenths % 10)) s"
  grep -E '^[^ ]+ +: ok=' "$work/run$run.log" | awk '{print "  " $1, $3, $4, $6}'
  if [ "$rc" -ne 0 ]; then cat "$work/run$run.log"; fail=1; fi
done
if grep -E '^[^ ]+ +: ok=.* changed=[1-9]' "$work/run2.log" >/dev/null; then
  echo "FAIL second run changed something:"; grep -B4 '^changed' "$work/run2.log"; fail=1
fi
grep -A5 'python3 when missing' "$work/run1.log" | grep -q 'changed: \[bare\]' \
  && echo "PASS pre-task installed python3 on bare" || { echo "FAIL pre-task did not install python3 on bare"; fail=1; }

x() { incus exec "${P[@]}" "$@"; }
ck() { local d="$1"; shift; if "$@" >/dev/null 2>&1; then echo "PASS $d"; else echo "FAIL $d"; fail=1; fi; }
inside() { local i="$1"; shift; x "$i" -- sh -c "$*"; }
for i in "${names[@]}"; do
  for p in curl wget ca-certificates gnupg lsb-release vim less htop net-tools iputils-ping bind9-dnsutils sudo locales systemd python3 tzdata; do
    ck "$i dpkg -s $p" x "$i" -- dpkg -s "$p"
  done
  ck "$i /etc/default/locale exact" inside "$i" "printf 'LANG=en_US.UTF-8\n' | cmp - /etc/default/locale"
  ck "$i /etc/timezone exact" inside "$i" "printf 'Europe/Paris\n' | cmp - /etc/timezone"
  ck "$i modes 0644" test "$(x "$i" -- stat -c %a /etc/timezone /etc/default/locale | tr '\n' ' ')" = "644 644 "
  ck "$i readlink /etc/localtime" test "$(x "$i" -- readlink /etc/localtime)" = /usr/share/zoneinfo/Europe/Paris
  ck "$i locale -a lists en_US.utf8" inside "$i" "locale -a | grep -qx en_US.utf8"
  ck "$i /proc/1/comm is systemd" test "$(x "$i" -- cat /proc/1/comm)" = systemd
done
c=ankt-ans-c
ck "admin tmpfiles entry 0644" test "$(x $c -- stat -c %a /etc/tmpfiles.d/incus-socket.conf)" = 644
ck "admin unit 0644" test "$(x $c -- stat -c %a /etc/systemd/system/incus-socket-dir.service)" = 644
ck "admin unit enabled" x $c -- systemctl is-enabled incus-socket-dir
ck "admin profile script 0644" test "$(x $c -- stat -c %a /etc/profile.d/anklume-update-check.sh)" = 644
ck "admin which git ansible" x $c -- which git ansible
ck "admin community.general listed" x $c -- ansible-galaxy collection list community.general
ck "admin login shell silent" test -z "$(x $c -- bash -lc true 2>&1)"
ck "admin_bootstrap not on web" x ankt-ans-a -- test ! -e /etc/systemd/system/incus-socket-dir.service
b=ankt-ans-b
ck "fw ip_forward is 1" test "$(x $b -- sysctl -n net.ipv4.ip_forward)" = 1
ck "fw dpkg -s nftables" x $b -- dpkg -s nftables
ck "fw include line once" test "$(x $b -- grep -c -xF 'include "/etc/nftables.d/*.nft"' /etc/nftables.conf)" = 1
ck "fw forward policy drop" inside $b "nft list chain inet anklume forward | grep -q 'policy drop'"
ck "fw input policy drop" inside $b "nft list chain inet anklume input | grep -q 'policy drop'"
ck "fw output policy accept" inside $b "nft list chain inet anklume output | grep -q 'policy accept'"
ck "fw deny eth1 to eth2, logged" inside $b "nft list chain inet anklume forward | grep -qF 'iifname \"eth1\" oifname \"eth2\" log prefix \"FW-DENY-LAB: \" drop'"
ck "fw nftables enabled" x $b -- systemctl is-enabled nftables
ck "fw outbound still works (apt-get update)" x $b -- apt-get -q update
a=ankt-ans-a
ck "sanitizer config parses, port 8089" x $a -- python3 -c 'import yaml; c = yaml.safe_load(open("/etc/llm-sanitizer/config.yml")); assert c["service"]["listen_port"] == 8089 and c["domain"]["ai_sanitize"] == "True"'
ck "sanitizer patterns parse and compile" x $a -- python3 -c 'import re, yaml; d = yaml.safe_load(open("/etc/llm-sanitizer/patterns.yml")); [re.compile(p["pattern"]) for l in d["categories"].values() for p in l]'
ck "sanitizer off (domain_ai_sanitize false): nothing on admin" x $c -- test ! -e /etc/llm-sanitizer -a ! -e /var/log/llm-sanitizer
ck "user role ran with the variable below the managed block" test "$(x $a -- cat /etc/anklume-custom-role)" = "hello from host_vars"

[ "$fail" -eq 0 ] && echo "run-real: all passed" || echo "run-real: FAILED" >&2
exit "$fail"
