#!/usr/bin/env bash
# Real test of the roles ollama_server and open_webui with the stand-ins of
# ../shared/spec/provisioning.md §3, in throwaway containers from the
# `anklume-debian` image, through site.yml and the community.general.incus
# connection.
#
# Creates project `ankt-ai`, bridge `ankt-aibr` (10.251.79.1/24, NAT: apt and
# PyPI reachable) and containers ankt-ai-a (host `olla`) and ankt-ai-b (host
# `inst`). Stand-ins:
#   - olla: a stub /usr/local/bin/ollama (a python3 HTTP server for `serve`
#     answering GET /api/tags on $OLLAMA_HOST with the pulled models; `pull`
#     asks that server to record the model) and an ollama.service running it,
#     placed before the role (so the role must skip its installer, whose URL
#     points nowhere);
#   - inst: nothing; the role's installer URL points at a stand-in install.sh
#     served from the host on the bridge, which installs the same stub, an
#     `ollama` user and ollama.service, as the real installer does;
#   - both: /opt/open-webui-venv made with Debian's `python3 -m venv` (3.13 on
#     Debian 13) and a stub bin/open-webui serving HTTP on --port, so uv's
#     Python download and the multi-GB install are skipped.
# Runs the checks of the spec's §2.3/§2.4 with `incus exec` before the role
# (negative control: they must fail then) and after; runs site.yml twice (the
# second must report changed=0 on both hosts); then a run on a venv whose
# Python is 3.13 without Open WebUI, which must fail with a clear message.
# Deletes everything it created (KEEP=1 keeps it). Incus changes are made under
# /tmp/anklume-incus.lock. LOGS=<dir> keeps the Ansible output there.
# Exit status: 0 when everything passed.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
lock=/tmp/anklume-incus.lock
project=ankt-ai
bridge=ankt-aibr
gw=10.251.79.1
port=18079
P=(--project "$project")
names=(ankt-ai-a ankt-ai-b)

incus image list -f csv -c l anklume-debian | grep -qx anklume-debian \
  || { echo "run-standins-ai.sh: no anklume-debian image in Incus" >&2; exit 2; }
scripts/ansible-setup.sh >/dev/null
venv="${ANKLUME_ANSIBLE_VENV:-$HOME/.cache/anklume/ansible-venv}"

teardown() {
  flock "$lock" bash -c '
    for n in '"${names[*]}"'; do incus delete -f "$n" --project '"$project"' >/dev/null 2>&1 || true; done
    incus project delete '"$project"' >/dev/null 2>&1 || true
    incus network delete '"$bridge"' >/dev/null 2>&1 || true'
}
work=$(mktemp -d)
httpd=
cleanup() {
  [ -n "$httpd" ] && kill "$httpd" 2>/dev/null || true
  if [ -n "${LOGS:-}" ]; then mkdir -p "$LOGS" && cp "$work"/*.log "$LOGS"/ 2>/dev/null || true; fi
  rm -rf "$work"
  if [ "${KEEP:-0}" = 1 ]; then echo "KEEP=1: left project $project and bridge $bridge"; else teardown; fi
}
trap cleanup EXIT
t0=$(date +%s)

teardown
flock "$lock" bash -euc '
  incus network create '"$bridge"' ipv4.address='"$gw"'/24 ipv4.nat=true ipv6.address=none >/dev/null
  incus project create '"$project"' -c features.images=false -c features.profiles=true \
    -c features.networks=false -c features.storage.volumes=false >/dev/null
  pool=$(incus profile device get default root pool)
  incus profile device add default root disk path=/ pool="$pool" --project '"$project"' >/dev/null
  incus profile device add default eth0 nic network='"$bridge"' name=eth0 --project '"$project"' >/dev/null
  for n in '"${names[*]}"'; do incus launch anklume-debian "$n" --project '"$project"' >/dev/null 2>&1; done'

x() { incus exec "${P[@]}" "$@"; }
inside() { local i="$1"; shift; x "$i" -- sh -c "$*"; }
for n in "${names[@]}"; do
  for _ in $(seq 60); do x "$n" -- systemctl is-system-running --wait >/dev/null 2>&1 && break || sleep 1; done
done

# --- Stand-ins -------------------------------------------------------------
cat >"$work/ollama" <<'PY'
#!/usr/bin/python3
# Stand-in for the ollama binary (anklume tests): `serve` answers GET /api/tags
# on $OLLAMA_HOST with the models pulled so far; `pull NAME` asks the server
# at $OLLAMA_HOST to pull NAME (recorded in $STATE/models and $STATE/pulls.log).
import http.server, json, os, sys, urllib.request
STATE = "/var/lib/ollama-stub"
def addr():
    h = os.environ.get("OLLAMA_HOST", "") or "127.0.0.1:11434"
    h = h.split("://", 1)[-1].rstrip("/")
    host, _, port = h.rpartition(":") if ":" in h else (h, "", "")
    return host or "127.0.0.1", int(port or 11434)
def models():
    try:
        return [l.strip() for l in open(STATE + "/models") if l.strip()]
    except FileNotFoundError:
        return []
class H(http.server.BaseHTTPRequestHandler):
    def reply(self, obj):
        b = json.dumps(obj).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def do_GET(self):
        if self.path == "/api/tags":
            self.reply({"models": [{"name": m, "model": m} for m in models()]})
        else:
            self.reply({"status": "Ollama is running"})
    def do_POST(self):
        name = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["name"]
        name = name if ":" in name else name + ":latest"
        with open(STATE + "/pulls.log", "a") as f:
            f.write(name + "\n")
        if name not in models():
            with open(STATE + "/models", "a") as f:
                f.write(name + "\n")
        self.reply({"status": "success"})
cmd = sys.argv[1:2]
if cmd == ["serve"]:
    http.server.ThreadingHTTPServer(addr(), H).serve_forever()
elif cmd == ["pull"] and len(sys.argv) == 3:
    host, port = addr()
    host = "127.0.0.1" if host == "0.0.0.0" else host
    req = urllib.request.Request(f"http://{host}:{port}/api/pull", json.dumps({"name": sys.argv[2]}).encode(), method="POST")
    sys.exit(0 if urllib.request.urlopen(req).status == 200 else 1)
elif cmd == ["list"]:
    print("\n".join(models()))
else:
    sys.exit("ollama stand-in: unsupported arguments %s" % sys.argv[1:])
PY
unit() {
  printf '[Unit]\nDescription=Ollama Service (stand-in)\nAfter=network-online.target\n\n[Service]\nExecStart=/usr/local/bin/ollama serve\nUser=%s\nRestart=always\nRestartSec=1\n\n[Install]\nWantedBy=default.target\n' "$1"
}
unit root >"$work/ollama.service"
mkdir -p "$work/www"
# The installer stand-in, as ollama.com/install.sh: binary, user, unit, started.
{
  echo '#!/bin/sh'
  echo 'set -eu'
  echo 'cat >/usr/local/bin/ollama <<'"'"'STUB'"'"
  cat "$work/ollama"
  echo 'STUB'
  echo 'chmod 0755 /usr/local/bin/ollama'
  echo 'id ollama >/dev/null 2>&1 || useradd -r -s /bin/false -U -m -d /usr/share/ollama ollama'
  echo 'mkdir -p /var/lib/ollama-stub && chown ollama:ollama /var/lib/ollama-stub'
  echo 'echo "${OLLAMA_VERSION:-latest}" >/var/lib/ollama-stub/installed-version'
  echo 'cat >/etc/systemd/system/ollama.service <<'"'"'UNIT'"'"
  unit ollama
  echo 'UNIT'
  echo 'systemctl daemon-reload && systemctl enable --now ollama'
} >"$work/www/install.sh"
cat >"$work/open-webui" <<'PY'
#!/opt/open-webui-venv/bin/python
# Stand-in for Open WebUI (anklume tests): `serve --port N` serves HTTP on N;
# GET /stand-in-env returns the service environment variables it was given.
import http.server, json, os, sys
if sys.argv[1:2] != ["serve"] or "--port" not in sys.argv:
    sys.exit("open-webui stand-in: usage: open-webui serve --port N")
port = int(sys.argv[sys.argv.index("--port") + 1])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = json.dumps({k: v for k, v in os.environ.items() if k.startswith(("OLLAMA_", "AUDIO_"))}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
http.server.ThreadingHTTPServer(("0.0.0.0", port), H).serve_forever()
PY
(cd "$work/www" && exec python3 -m http.server --bind "$gw" "$port" >"$work/httpd.log" 2>&1) &
httpd=$!

a=ankt-ai-a b=ankt-ai-b
incus file push "${P[@]}" --mode 0755 "$work/ollama" "$a/usr/local/bin/ollama" >/dev/null
incus file push "${P[@]}" --mode 0644 "$work/ollama.service" "$a/etc/systemd/system/ollama.service" >/dev/null
inside $a 'mkdir -p /var/lib/ollama-stub && systemctl daemon-reload && systemctl enable --now ollama >/dev/null 2>&1'
for i in $a $b; do
  inside $i 'python3 -m venv --without-pip /opt/open-webui-venv && python3 -m venv --without-pip /opt/bad-venv'
  incus file push "${P[@]}" --mode 0755 "$work/open-webui" "$i/opt/open-webui-venv/bin/open-webui" >/dev/null
done
echo "stand-ins ready: $(( $(date +%s) - t0 )) s"

# --- Checks (run before the role as a negative control, and after) ----------
fail=0
ck() { local d="$1"; shift; if "$@" >/dev/null 2>&1; then echo "PASS $d"; else echo "FAIL $d"; fail=1; fi; }
nck() { local d="$1"; shift; if "$@" >/dev/null 2>&1; then echo "FAIL (before the role) $d already held"; fail=1; else echo "PASS (before the role) $d does not hold yet"; fi; }
tags() { inside "$1" "curl -sf http://$2/api/tags"; }
has_model() { tags "$1" "$2" | python3 -c 'import json,sys; n=[m["name"] for m in json.load(sys.stdin)["models"]]; sys.exit(0 if sys.argv[1] in n else 1)' "$3"; }
listens() { inside "$1" "ss -ltnH" | awk '{print $4}' | grep -qx "$2"; }
inst_models() { has_model $b 127.0.0.1:11500 nomic-embed-text:latest && has_model $b 127.0.0.1:11500 all-minilm:22m; }
checks() {  # $1 = ck or nck
  local c="$1"
  $c "olla drop-in OLLAMA_HOST=0.0.0.0:11434" inside $a "grep -qxF 'Environment=\"OLLAMA_HOST=0.0.0.0:11434\"' /etc/systemd/system/ollama.service.d/override.conf"
  $c "olla systemctl show -p Environment" test "$(x $a -- systemctl show ollama -p Environment --value)" = "OLLAMA_HOST=0.0.0.0:11434"
  $c "olla listens on 0.0.0.0:11434" listens $a 0.0.0.0:11434
  $c "olla /api/tags lists nomic-embed-text" has_model $a 127.0.0.1:11434 nomic-embed-text:latest
  $c "olla /api/tags lists the default model llama3.2" has_model $a 127.0.0.1:11434 llama3.2:latest
  $c "olla open-webui unit has --port 3000 and OLLAMA_BASE_URL" inside $a "grep -qxF 'ExecStart=/opt/open-webui-venv/bin/open-webui serve --port 3000' /etc/systemd/system/open-webui.service && grep -qxF 'Environment=\"OLLAMA_BASE_URL=http://localhost:11434\"' /etc/systemd/system/open-webui.service"
  $c "olla open-webui enabled" x $a -- systemctl is-enabled open-webui
  $c "olla port 3000 listens" listens $a 0.0.0.0:3000
  $c "inst is-enabled ollama reports disabled" test "$(x $b -- systemctl is-enabled ollama 2>/dev/null)" = disabled
  $c "inst ollama active, listens on 127.0.0.1:11500" listens $b 127.0.0.1:11500
  $c "inst /api/tags lists nomic-embed-text and all-minilm:22m" inst_models
  $c "inst open-webui port 8081 listens" listens $b 0.0.0.0:8081
  $c "inst open-webui process got the STT and Ollama URLs" inside $b "curl -sf http://127.0.0.1:8081/stand-in-env | python3 -c 'import json,sys; e=json.load(sys.stdin); assert e == {\"OLLAMA_BASE_URL\": \"http://127.0.0.1:11500\", \"AUDIO_STT_ENGINE\": \"openai\", \"AUDIO_STT_OPENAI_API_BASE_URL\": \"http://10.0.0.5:8000/v1\"}, e'"
}
checks nck
ck "olla ollama stand-in was installed before the role" x $a -- test -x /usr/local/bin/ollama
ck "inst has no ollama before the role" x $b -- test ! -e /usr/local/bin/ollama

# --- The tree, as `anklume sync` writes it ----------------------------------
tree="$work/tree"
mkdir -p "$tree/inventory" "$tree/group_vars" "$tree/host_vars"
begin=$'---\n# === MANAGED BY infra.yml ===\n# Do not edit this section — it will be overwritten by `make sync`'
end=$'# === END MANAGED ===\n\n# Your custom variables below:'
w() { printf '%s\n%s\n%s\n%s' "$begin" "$2" "$end" "${3:+$3
}" >"$tree/$1"; }
w inventory/ai.yml $'all:\n  children:\n    ai:\n      hosts:\n        olla:\n          ansible_host: 10.251.79.10\n        inst:\n          ansible_host: 10.251.79.11'
w group_vars/all.yml 'project_name: ankt'
w group_vars/ai.yml $'domain_name: ai\nincus_project: '"$project"
w host_vars/olla.yml $'instance_name: ankt-ai-a\ninstance_roles:\n  - ollama_server\n  - open_webui' \
  $'ollama_default_model: llama3.2\n# The binary is there: the installer must not be fetched (this URL fails).\nollama_server_install_url: http://'"$gw"$':9/nothing.sh'
w host_vars/inst.yml $'instance_name: ankt-ai-b\ninstance_roles:\n  - ollama_server\n  - open_webui' \
  $'ollama_host: 127.0.0.1:11500\nollama_service_enabled: false\nollama_extra_models: [nomic-embed-text, "all-minilm:22m"]\nollama_server_install_url: http://'"$gw:$port"$'/install.sh\nollama_server_version: 0.0.0-standin\nopen_webui_port: 8081\nopen_webui_ollama_url: http://127.0.0.1:11500\nopen_webui_stt_url: http://10.0.0.5:8000/v1'

export PATH="$venv/bin:$PATH" ANSIBLE_CONFIG="$root/ansible/ansible.cfg" ANKLUME_TREE="$tree"
export ANSIBLE_LOCAL_TEMP="$work/tmp" ANSIBLE_HOME="$work/home"
play() {  # $1 = log name, rest = extra ansible-playbook arguments
  local log="$work/$1.log"; shift
  local start rc=0 tenths
  start=$(date +%s%N)
  ansible-playbook "$root/ansible/site.yml" -i "$tree/inventory" -f 2 "$@" >"$log" 2>&1 || rc=$?
  tenths=$(( ($(date +%s%N) - start) / 100000000 ))
  echo "$(basename "$log" .log): exit $rc, $((tenths / 10)).$((tenths % 10)) s"
  grep -E '^[^ ]+ +: ok=' "$log" | awk '{print "  " $1, $3, $4, $6}'
  return "$rc"
}
for run in 1 2; do
  play "run$run" || { cat "$work/run$run.log"; fail=1; }
done
if grep -E '^[^ ]+ +: ok=.* changed=[1-9]' "$work/run2.log" >/dev/null; then
  echo "FAIL second run changed something:"; grep -B4 '^changed' "$work/run2.log"; fail=1
else
  echo "PASS second run: changed=0 on both hosts"
fi

checks ck
ck "olla kept the pre-placed stand-in (installer skipped)" x $a -- test ! -e /var/lib/ollama-stub/installed-version
ck "inst ran the installer from ollama_server_install_url with OLLAMA_VERSION" test "$(x $b -- cat /var/lib/ollama-stub/installed-version)" = 0.0.0-standin
ck "inst installer removed after use" x $b -- test ! -e /root/ollama-install.sh
ck "inst ollama user exists (from the installer)" x $b -- id ollama
ck "olla each model pulled once over two runs" test "$(x $a -- sort /var/lib/ollama-stub/pulls.log | tr '\n' ' ')" = "llama3.2:latest nomic-embed-text:latest "
ck "inst each model pulled once over two runs" test "$(x $b -- sort /var/lib/ollama-stub/pulls.log | tr '\n' ' ')" = "all-minilm:22m nomic-embed-text:latest "
ck "olla drop-in mode 0644, directory 0755" test "$(x $a -- stat -c %a /etc/systemd/system/ollama.service.d/override.conf /etc/systemd/system/ollama.service.d | tr '\n' ' ')" = "644 755 "
ck "olla open-webui unit 0644" test "$(x $a -- stat -c %a /etc/systemd/system/open-webui.service)" = 644
ck "olla open-webui unit has no STT lines" inside $a "grep -q ^ExecStart= /etc/systemd/system/open-webui.service && ! grep -q AUDIO_ /etc/systemd/system/open-webui.service"

# A venv with Python 3.13 (Debian 13's) and no Open WebUI: the role must stop
# with a clear message before installing anything.
rc=0; play run-badvenv --limit inst -e open_webui_venv=/opt/bad-venv -e '{"instance_roles": ["open_webui"]}' || rc=$?
ck "a 3.13 venv without Open WebUI fails the role" test "$rc" -ne 0
ck "  with a message naming the venv and the Python bound" grep -q "/opt/bad-venv has Python 3.13, but Open WebUI needs a Python below 3.13" "$work/run-badvenv.log"
ck "  nothing installed into that venv" x $b -- test ! -e /opt/bad-venv/bin/open-webui

echo "wall time: $(( $(date +%s) - t0 )) s"
[ "$fail" -eq 0 ] && echo "run-standins-ai: all passed" || echo "run-standins-ai: FAILED" >&2
exit "$fail"
