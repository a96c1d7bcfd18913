#!/usr/bin/env bash
# Stand-in test of the Node.js roles (../shared/spec/provisioning.md §2.6-2.9,
# 2.12 and §3): opencode_server, code_sandbox, dev_agent_runner,
# openclaw_server and lobechat, and the shared helper ansible/tasks/nodejs.yml,
# run for real through site.yml and the community.general.incus connection in
# throwaway containers from the `anklume-debian` image.
#
# Creates project `ankt-nod`, bridge `ankt-nodbr` (10.251.78.1/24, NAT: the
# Debian mirror and the npm registry are reachable, NodeSource and GitHub are
# not) and two containers:
#   ankt-nod-a  opencode_server, code_sandbox, dev_agent_runner. Stand-in: an
#               empty deb822 NodeSource guard (nodesource.sources) and Debian's
#               nodejs + npm; npm installs (opencode-ai, claude-code) are real.
#   ankt-nod-b  openclaw_server, lobechat. No guard: the helper finds NodeSource
#               unreachable and falls back to Debian's nodejs + npm. Stand-ins:
#               /usr/bin/openclaw (tests/standins-node/openclaw-stub, records its
#               arguments and writes openclaw.json) and a local git repository
#               as lobechat_repo_url whose `pnpm build` makes a small
#               .next/standalone/server.js; pnpm itself comes from npm.
# Runs the checks before the roles (they must fail: negative control), runs
# site.yml twice (the second must report changed=0 on both hosts), runs the
# §2 checks with `incus exec`, then a third run on ankt-nod-b after a new
# commit in the lobechat repository (the rebuilt server must be the one
# answering), and a fourth on ankt-nod-a with code_sandbox_aider=true, which
# must fail with the clear Python-version message (Debian 13 has Python 3.13,
# aider-chat needs < 3.13). Deletes everything it created (KEEP=1 keeps it).
# Incus changes are made under /tmp/anklume-incus.lock. LOGS=<dir> keeps the
# Ansible output there. Exit status: 0 when everything passed.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
lock=/tmp/anklume-incus.lock
project=ankt-nod
bridge=ankt-nodbr
P=(--project "$project")
names=(ankt-nod-a ankt-nod-b)
a=ankt-nod-a
b=ankt-nod-b
t0=$(date +%s)

incus image list -f csv -c l anklume-debian | grep -qx anklume-debian \
  || { echo "run-standins-node.sh: no anklume-debian image in Incus" >&2; exit 2; }
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
  incus network create '"$bridge"' ipv4.address=10.251.78.1/24 ipv4.nat=true ipv6.address=none >/dev/null
  incus project create '"$project"' -c features.images=false -c features.profiles=true \
    -c features.networks=false -c features.storage.volumes=false >/dev/null
  pool=$(incus profile device get default root pool)
  incus profile device add default root disk path=/ pool="$pool" --project '"$project"' >/dev/null
  incus profile device add default eth0 nic network='"$bridge"' name=eth0 --project '"$project"' >/dev/null
  for n in '"${names[*]}"'; do incus launch -q anklume-debian "$n" --project '"$project"' >/dev/null; done'

x() { incus exec "${P[@]}" "$@"; }
inside() { local i="$1"; shift; x "$i" -- sh -c "$*"; }
fail=0
ck() { local d="$1"; shift; if "$@" >/dev/null 2>&1; then echo "PASS $d"; else echo "FAIL $d"; fail=1; fi; }
# Negative control: the check must fail before the role ran.
nck() { local d="$1"; shift; if "$@" >/dev/null 2>&1; then echo "FAIL (control) passes before the role: $d"; fail=1; else echo "PASS (control) fails before the role: $d"; fi; }
listens() { inside "$1" "for i in \$(seq 60); do ss -Hltn 'sport = :$2' | grep -q . && exit 0; sleep 1; done; exit 1"; }

for n in "${names[@]}"; do
  # Seen once on this shared daemon: a freshly launched container found
  # stopped. Say so, with its log, and start it again.
  if [ "$(incus list "${P[@]}" -f csv -c s "^$n\$")" != RUNNING ]; then
    echo "note: $n not running after launch"; incus info "${P[@]}" --show-log "$n" | tail -5
    flock "$lock" incus start "${P[@]}" "$n"
  fi
  for _ in $(seq 60); do x "$n" -- systemctl is-system-running --wait >/dev/null 2>&1 && break || sleep 1; done
  # The network (DHCP) may come a moment after systemd says running.
  for _ in $(seq 30); do x "$n" -- getent hosts deb.debian.org >/dev/null 2>&1 && break || sleep 1; done
done

# This workplace reaches the npm registry through a TLS-intercepting egress
# whose CA the host trusts (/usr/local/share/ca-certificates/): the containers
# get the same CAs in their system store, and npm (and pnpm) are pointed at
# that store through /root/.npmrc, whichever npm the roles install.
for n in "${names[@]}"; do
  for crt in /usr/local/share/ca-certificates/*.crt; do
    [ -e "$crt" ] && incus file push "${P[@]}" --mode 0644 "$crt" "$n/usr/local/share/ca-certificates/" >/dev/null
  done
  inside "$n" 'update-ca-certificates >/dev/null 2>&1; echo cafile=/etc/ssl/certs/ca-certificates.crt >/root/.npmrc'
done

# Stand-ins.
standins="$root/ansible/tests/standins-node"
inside $a 'set -e; : >/etc/apt/sources.list.d/nodesource.sources
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm >/dev/null
  printf "# user line\nexport SSH_AUTH_SOCK=/old/one\nalias ll=\"ls -l\"\nexport SSH_AUTH_SOCK=/old/two\nexport OLLAMA_API_BASE=http://old:1\n" >>/root/.bashrc'
x $b -- mkdir -p /srv/lobe-standin
incus file push "${P[@]}" "$standins/openclaw-stub" "$b/usr/bin/openclaw" --mode 0755 >/dev/null
incus file push "${P[@]}" "$standins/lobe-package.json" "$b/srv/lobe-standin/package.json" >/dev/null
incus file push "${P[@]}" "$standins/lobe-server.js" "$b/srv/lobe-standin/server.js" >/dev/null
inside $b 'set -e; DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q git >/dev/null
  cd /srv/lobe-standin && sed -i s/BUILD_MARK/build-1/ server.js
  git init -q -b main . && git add -A && git -c user.name=t -c user.email=t@t commit -qm one'

# Negative controls.
nck "a command -v opencode" inside $a 'command -v opencode'
nck "a opencode port 4096 listens" inside $a "ss -Hltn 'sport = :4096' | grep -q ."
nck "a npm ls -g @anthropic-ai/claude-code" x $a -- npm ls -g @anthropic-ai/claude-code
nck "a settings.json exists" x $a -- test -e /root/.claude/settings.json
nck "a one SSH_AUTH_SOCK line in .bashrc" test "$(x $a -- grep -c '^export SSH_AUTH_SOCK=' /root/.bashrc)" = 1
nck "b openclaw.json holds the Ollama URL" inside $b 'grep -q http://10.100.3.1:11434 /root/.openclaw/openclaw.json'
nck "b openclaw-lab enabled" x $b -- systemctl is-enabled openclaw-lab
nck "b lobechat port 3210 listens" inside $b "ss -Hltn 'sport = :3210' | grep -q ."
nck "b npm present" x $b -- sh -c 'command -v npm'

# The tree, as `anklume sync` writes it.
tree="$work/tree"
mkdir -p "$tree/inventory" "$tree/group_vars" "$tree/host_vars"
begin=$'---\n# === MANAGED BY infra.yml ===\n# Do not edit this section — it will be overwritten by `make sync`'
end=$'# === END MANAGED ===\n\n# Your custom variables below:'
w() { printf '%s\n%s\n%s\n%s' "$begin" "$2" "$end" "${3:+$3
}" >"$tree/$1"; }
w inventory/lab.yml $'all:\n  children:\n    lab:\n      hosts:\n        dev:\n          ansible_host: 10.251.78.10\n        claw:\n          ansible_host: 10.251.78.11'
w group_vars/all.yml 'project_name: ankt'
w group_vars/lab.yml $'domain_name: lab\nincus_project: '"$project"
w host_vars/dev.yml $'instance_name: ankt-nod-a\ninstance_domain: lab\ninstance_roles:\n  - opencode_server\n  - code_sandbox\n  - dev_agent_runner' \
  '# Debian 13 has Python 3.13; aider-chat needs < 3.13 (checked by the fourth run).
code_sandbox_aider: false'
w host_vars/claw.yml $'instance_name: ankt-nod-b\ninstance_domain: lab\ninstance_roles:\n  - openclaw_server\n  - lobechat' \
  'lobechat_repo_url: file:///srv/lobe-standin'

export PATH="$venv/bin:$PATH" ANSIBLE_CONFIG="$root/ansible/ansible.cfg" ANKLUME_TREE="$tree"
export ANSIBLE_LOCAL_TEMP="$work/tmp" ANSIBLE_HOME="$work/home"
play() { # play <log name> <ansible-playbook args...>; prints the recap
  local log="$1" rc=0 start; shift
  start=$(date +%s)
  ansible-playbook "$root/ansible/site.yml" -i "$tree/inventory" -f 5 "$@" >"$work/$log.log" 2>&1 || rc=$?
  echo "$log: exit $rc, $(($(date +%s) - start)) s"
  grep -E '^[^ ]+ +: ok=' "$work/$log.log" | awk '{print "  " $1, $3, $4, $6}'
  return "$rc"
}
for run in 1 2; do
  if ! play "run$run"; then cat "$work/run$run.log"; fail=1; fi
  if [ "$run" = 1 ]; then
    # An edit to MEMORY.md must survive the rerun.
    inside $b 'echo "- kept across runs" >>/root/.openclaw/workspace/MEMORY.md'
  fi
done
if grep -E '^[^ ]+ +: ok=.* changed=[1-9]' "$work/run2.log" >/dev/null; then
  echo "FAIL second run changed something:"; grep -B4 '^changed' "$work/run2.log"; fail=1
else
  echo "PASS second run: changed=0 on both hosts"
fi

# nodejs helper.
ck "a guard nodesource.sources kept empty (NodeSource untouched)" x $a -- test -f /etc/apt/sources.list.d/nodesource.sources -a ! -s /etc/apt/sources.list.d/nodesource.sources
ck "a no NodeSource key or list written" x $a -- test ! -e /etc/apt/keyrings/nodesource.asc -a ! -e /etc/apt/sources.list.d/nodesource.list
ck "b fell back to Debian's node (warning in run 1)" sh -c "grep -A2 'Warn about the fallback to Debian' '$work/run1.log' | grep -q 'ok: \\[claw\\]'"
ck "a no fallback on the guarded host" sh -c "! grep -A2 'Warn about the fallback to Debian' '$work/run1.log' | grep -q 'ok: \\[dev\\]'"
ck "b no NodeSource repository written" x $b -- test ! -e /etc/apt/sources.list.d/nodesource.sources -a ! -e /etc/apt/sources.list.d/nodesource.list
ck "b npm prefix -g is /usr/local (Debian's npm)" test "$(x $b -- npm prefix -g)" = /usr/local

# opencode_server (§2.7).
ck "a command -v opencode" inside $a 'command -v opencode'
ck "a opencode runs" x $a -- /usr/local/bin/opencode --version
ck "a config.json parses, holds the URL and the model" x $a -- python3 -c '
import json; c = json.load(open("/root/.config/opencode/config.json"))
o = c["provider"]["ollama"]
assert c["$schema"] == "https://opencode.ai/config.json" and o["npm"] == "@ai-sdk/openai-compatible"
assert o["options"]["baseURL"] == "http://localhost:11434/v1" and o["models"] == {"qwen2.5-coder:32b": {"name": "qwen2.5-coder:32b"}}'
ck "a config.json mode 0644" test "$(x $a -- stat -c %a /root/.config/opencode/config.json)" = 644
ck "a unit has --port 4096" x $a -- grep -q -- '--port 4096' /etc/systemd/system/opencode.service
ck "a unit ExecStart under npm prefix -g" x $a -- grep -qx 'ExecStart=/usr/local/bin/opencode serve --port 4096 --hostname 0.0.0.0' /etc/systemd/system/opencode.service
ck "a opencode enabled" x $a -- systemctl is-enabled opencode
ck "a opencode port 4096 listens" listens $a 4096

# code_sandbox (§2.8).
ck "a npm ls -g @anthropic-ai/claude-code" x $a -- npm ls -g @anthropic-ai/claude-code
ck "a claude --version" x $a -- /usr/local/bin/claude --version
ck "a .bashrc: one SSH_AUTH_SOCK line, the new value" test "$(x $a -- grep '^export SSH_AUTH_SOCK=' /root/.bashrc)" = "export SSH_AUTH_SOCK=/tmp/ssh-agent.socket"
ck "a .bashrc: one OLLAMA_API_BASE line, the new value" test "$(x $a -- grep '^export OLLAMA_API_BASE=' /root/.bashrc)" = "export OLLAMA_API_BASE=http://10.100.4.10:11434"
ck "a .bashrc: other lines kept" inside $a 'grep -qx "# user line" /root/.bashrc && grep -qx "alias ll=\"ls -l\"" /root/.bashrc'
ck "a /root/projects exists" x $a -- test -d /root/projects
ck "a no Gemini CLI" inside $a '! npm ls -g @google/gemini-cli && ! command -v gemini'
ck "a no aider (disabled)" x $a -- test ! -e /usr/local/bin/aider

# dev_agent_runner (§2.12).
ck "a settings.json parses, defaultMode, teams, hook" x $a -- python3 -c '
import json; s = json.load(open("/root/.claude/settings.json"))
assert s["permissions"]["defaultMode"] == "bypassPermissions"
assert s["env"] == {"CLAUDE_CODE_EXPERIMENTAL_AGENT_TEAMS": "1"}
assert "Bash(git *)" in s["permissions"]["allow"] and "Bash(curl * | bash)" in s["permissions"]["deny"]
assert s["hooks"]["PostToolUse"][0]["hooks"][0]["command"] == "/usr/local/bin/agent-audit-hook.sh"'
ck "a settings.json mode 0600, /root/.claude 0700" test "$(x $a -- stat -c %a /root/.claude/settings.json /root/.claude | tr '\n' ' ')" = "600 700 "
ck "a hook executable" x $a -- test -x /usr/local/bin/agent-audit-hook.sh
ck "a hook appends a JSON line" inside $a 'echo "{\"tool\":\"Edit\"}" | ANKLUME_AGENT_LOG_DIR=/tmp/agentlogs /usr/local/bin/agent-audit-hook.sh && python3 -c "import json,glob; [json.loads(l) for l in open(glob.glob(\"/tmp/agentlogs/agent-session-*.jsonl\")[0])]"'
ck "a git user.email agent@anklume.local" test "$(x $a -- git config --global user.email)" = agent@anklume.local

# openclaw_server (§2.9).
ck "b /usr/bin/openclaw exists (stub kept, not reinstalled)" inside $b 'head -1 /usr/bin/openclaw | grep -q python3 && ! test -e /usr/local/bin/openclaw'
ck "b openclaw.json holds the base URL and memory search" x $b -- python3 -c '
import json; c = json.load(open("/root/.openclaw/openclaw.json"))
assert c["models"]["providers"]["ollama"]["baseUrl"] == "http://10.100.3.1:11434"
assert c["agents"]["defaults"]["memorySearch"]["remote"]["baseUrl"] == "http://10.100.3.1:11434/v1/"'
ck "b config set called twice in two runs (idempotent)" test "$(x $b -- grep -c '^\["config", "set", "--json"' /var/log/openclaw-stub.log)" = 2
ck "b gateway started by the unit" x $b -- grep -qxF '["gateway", "--allow-unconfigured"]' /var/log/openclaw-stub.log
ck "b all 12 workspace files" inside $b 'cd /root/.openclaw && for f in agents/main/AGENTS.md workspace/TOOLS.md workspace/USER.md workspace/IDENTITY.md workspace/MEMORY.md workspace/HEARTBEAT.md workspace/CRON.md workspace/skills/anklume-health.md workspace/skills/anklume-network-diff.md workspace/skills/anklume-network-triage.md workspace/skills/anklume-inventory-diff.md workspace/skills/anklume-pcap-summary.md; do test -s $f || exit 1; done'
ck "b MEMORY.md edit survived the rerun" x $b -- grep -qx -- '- kept across runs' /root/.openclaw/workspace/MEMORY.md
ck "b IDENTITY.md scoped to domain lab" x $b -- grep -qx -- '- Domain: lab' /root/.openclaw/workspace/IDENTITY.md
ck "b git user.email ada@anklume.local" test "$(x $b -- git config --global user.email)" = ada@anklume.local
ck "b openclaw-lab enabled and active" x $b -- systemctl is-active openclaw-lab
ck "b openclaw-lab is-enabled" x $b -- systemctl is-enabled openclaw-lab
ck "b unit Description names the domain" x $b -- grep -qx 'Description=OpenClaw AI Assistant Gateway (lab)' /etc/systemd/system/openclaw-lab.service
ck "b gh installed" x $b -- sh -c 'command -v gh'
ck "b no baseline dir (scan disabled)" x $b -- test ! -e /var/lib/openclaw/baselines

# lobechat (§2.6, with the local repository standing in for GitHub).
ck "b pnpm under npm prefix -g" x $b -- test -x /usr/local/bin/pnpm
ck "b .next/standalone/server.js exists" x $b -- test -f /opt/lobechat/.next/standalone/server.js
ck "b unit has PORT=3210" x $b -- grep -qx 'Environment=PORT=3210' /etc/systemd/system/lobechat.service
ck "b lobechat enabled" x $b -- systemctl is-enabled lobechat
ck "b lobechat port 3210 listens" listens $b 3210
ck "b lobechat answers with the unit's environment" inside $b 'curl -sf http://127.0.0.1:3210/ | grep -qF "{\"mark\":\"build-1\",\"ollama\":\"http://localhost:11434\",\"enabled\":\"1\"}"'

# A new upstream commit: rebuilt, and the service restarted onto the new build (v1 did not restart).
inside $b 'cd /srv/lobe-standin && sed -i s/build-1/build-2/ server.js && git -c user.name=t -c user.email=t@t commit -qam two'
if play run3 --limit claw; then
  ck "b run 3 rebuilt (changed)" grep -qE '^claw +: ok=.* changed=[1-9]' "$work/run3.log"
  ck "b rebuilt server answers after the restart" inside $b 'for i in $(seq 30); do curl -sf http://127.0.0.1:3210/ | grep -q "\"mark\":\"build-2\"" && exit 0; sleep 1; done; exit 1'
else
  cat "$work/run3.log"; fail=1
fi

# aider on Python 3.13: a clear failure, not a pip backtrack.
if play run4 --limit dev -e code_sandbox_aider=true; then
  echo "FAIL run 4 (aider on Python 3.13) succeeded"; fail=1
else
  ck "a aider on Python 3.13 fails with the version message" grep -q 'supports Python up to 3.12' "$work/run4.log"
fi

echo "wall time: $(($(date +%s) - t0)) s"
[ "$fail" -eq 0 ] && echo "run-standins-node: all passed" || echo "run-standins-node: FAILED" >&2
exit "$fail"
