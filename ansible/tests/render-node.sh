#!/usr/bin/env bash
# Static test of the Node.js roles (lobechat, opencode_server, code_sandbox,
# openclaw_server, dev_agent_runner) and the shared helper ansible/tasks/nodejs.yml,
# on localhost only (no Incus, no network):
#   1. `ansible-playbook --syntax-check` of a play that includes each role
#      statically (site.yml loads them dynamically, so its syntax check
#      does not reach them);
#   2. ansible-lint (production profile) of the roles, the helper and the tests;
#   3. render-node.yml: each role's templates rendered for every branch the
#      spec names (GPU-free here: domain set/unset, network scan on/off, npm
#      prefix /usr vs /usr/local, .bashrc merge cases) and compared with the
#      expected text.
# Uses the pinned venv of scripts/ansible-setup.sh. Exit status: 0 when all passed.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
scripts/ansible-setup.sh >/dev/null
venv="${ANKLUME_ANSIBLE_VENV:-$HOME/.cache/anklume/ansible-venv}"
export PATH="$venv/bin:$PATH" ANSIBLE_CONFIG="$root/ansible/ansible.cfg"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export ANSIBLE_LOCAL_TEMP="$work/tmp" ANSIBLE_HOME="$work/home" ANKLUME_TREE="$work/tree"
mkdir -p "$work/tree/inventory"
printf 'all:\n  hosts:\n    localhost:\n      ansible_connection: local\n' >"$work/tree/inventory/local.yml"
t0=$(date +%s)
status=0

echo "== syntax-check of the roles (static import)"
cat >"$root/ansible/.render-node-syntax.yml" <<'YAML'
- name: Syntax
  hosts: all
  gather_facts: false
  roles: [lobechat, opencode_server, code_sandbox, openclaw_server, dev_agent_runner]
YAML
ansible-playbook --syntax-check -i "$work/tree/inventory" "$root/ansible/.render-node-syntax.yml" || status=1
rm -f "$root/ansible/.render-node-syntax.yml"

echo "== ansible-lint of the roles, the helper and the tests"
(cd ansible && ansible-lint --profile production --offline \
  roles/lobechat roles/opencode_server roles/code_sandbox roles/openclaw_server roles/dev_agent_runner \
  tasks/nodejs.yml tasks/nodejs_nodesource_repo.yml tests/render-node.yml) || status=1

echo "== templates rendered for each branch"
out="$work/render.log"
if ansible-playbook -i "$work/tree/inventory" "$root/ansible/tests/render-node.yml" >"$out" 2>&1; then
  grep -oE '"msg": ".*: as expected"|msg: .*: as expected' "$out" | sed 's/^/  /' || true
  grep -E '^localhost +: ok=' "$out"
else
  cat "$out"; status=1
fi

echo "wall time: $(($(date +%s) - t0)) s"
[ "$status" -eq 0 ] && echo "render-node: all passed" || echo "render-node: FAILED" >&2
exit "$status"
