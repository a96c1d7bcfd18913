#!/usr/bin/env bash
# Static checks of anklume's Ansible content (ansible/): `ansible-playbook
# --syntax-check` of site.yml against a sample tree, a check that the tree's
# group_vars/host_vars load, then ansible-lint
# (production profile). Uses the pinned venv of scripts/ansible-setup.sh,
# which it installs or refreshes first (a no-op when up to date).
# Exit status: 0 when both pass, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scripts/ansible-setup.sh >/dev/null
venv="${ANKLUME_ANSIBLE_VENV:-$HOME/.cache/anklume/ansible-venv}"
export PATH="$venv/bin:$PATH"
export ANSIBLE_CONFIG="$root/ansible/ansible.cfg"
# Keep Ansible's and ansible-lint's caches out of the user's home and the repo.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export ANSIBLE_LOCAL_TEMP="$work/tmp" ANSIBLE_HOME="$work/home"

# A tree as `anklume sync` writes it: one domain, one host.
tree="$work/tree"
mkdir -p "$tree/inventory" "$tree/group_vars" "$tree/host_vars"
cat >"$tree/inventory/demo.yml" <<'YAML'
all:
  children:
    demo:
      hosts:
        demo-a:
          ansible_host: 10.100.0.1
YAML
printf 'incus_project: demo\n' >"$tree/group_vars/demo.yml"
printf 'instance_name: demo-a\ninstance_roles:\n  - base_system\n' >"$tree/host_vars/demo-a.yml"
export ANKLUME_TREE="$tree"

status=0
echo "== ansible-playbook --syntax-check ansible/site.yml"
ansible-playbook --syntax-check -i "$tree/inventory" ansible/site.yml || status=1
echo "== group_vars/host_vars beside inventory/ load (vars_plugins/anklume_tree.py)"
if ansible-inventory -i "$tree/inventory" --host demo-a | python3 -c '
import json, sys
v = json.load(sys.stdin)
assert v.get("incus_project") == "demo" and v.get("instance_name") == "demo-a", v'; then
  echo "loaded"
else
  echo "group_vars/host_vars of the tree were not loaded" >&2; status=1
fi
echo "== ansible-lint ansible/"
(cd ansible && ansible-lint --profile production --offline .) || status=1
[ "$status" -eq 0 ] && echo "ansible-check: OK" || echo "ansible-check: FAILED" >&2
exit "$status"
