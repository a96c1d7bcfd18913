#!/usr/bin/env bash
# Static checks of the roles ollama_server, open_webui, stt_server and
# dev_test_runner (../shared/spec/provisioning.md §2.3-2.5, 2.11, §3 "Internet
# only"): `ansible-playbook --syntax-check` of a play importing each role,
# ansible-lint (production profile) of each role, each role's input check run
# alone on localhost against bad inputs (it must fail, naming the variable),
# and every template rendered on localhost from the role's defaults and vars,
# compared byte for byte (or, for the Incus preseed, as parsed YAML) with the
# expected text, for each branch the spec names: stt_server with and without
# a GPU, language set and unset, a CPU-capable quantization; open_webui with
# and without an STT URL; dev_test_runner's preseed with the defaults and
# with other values, and the Debian 12 backports source.
# Touches nothing outside a temporary directory (no Incus, no root changes).
# Uses the pinned venv of scripts/ansible-setup.sh.
# Exit status: 0 when everything passed.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
scripts/ansible-setup.sh >/dev/null
venv="${ANKLUME_ANSIBLE_VENV:-$HOME/.cache/anklume/ansible-venv}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PATH="$venv/bin:$PATH" ANSIBLE_CONFIG="$root/ansible/ansible.cfg"
export ANSIBLE_LOCAL_TEMP="$work/tmp" ANSIBLE_HOME="$work/home" ANKLUME_TREE="$work/tree"
mkdir -p "$work/tree/inventory"
roles=(ollama_server open_webui stt_server dev_test_runner)
fail=0
ok() { echo "PASS $1"; }
ko() { echo "FAIL $1"; fail=1; }

echo "== syntax-check and lint"
for r in "${roles[@]}"; do
  printf -- '- name: Syntax\n  hosts: all\n  gather_facts: false\n  roles: [%s]\n' "$r" >"$work/syntax-$r.yml"
  if ansible-playbook --syntax-check -i localhost, "$work/syntax-$r.yml" >"$work/syntax-$r.log" 2>&1; then
    ok "syntax-check $r"
  else cat "$work/syntax-$r.log"; ko "syntax-check $r"; fi
  if (cd ansible && ansible-lint --profile production --offline "roles/$r") >"$work/lint-$r.log" 2>&1; then
    ok "ansible-lint --profile production roles/$r"
  else cat "$work/lint-$r.log"; ko "ansible-lint roles/$r"; fi
done

# A play on localhost loading a role's defaults and vars (as the role would),
# then rendering one of its templates to a file.
cat >"$work/render.yml" <<'YAML'
- name: Render
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - "{{ root }}/ansible/roles/{{ role }}/defaults/main.yml"
    - ["{{ root }}/ansible/roles/{{ role }}/vars/main.yml", "{{ empty }}"]
  tasks:
    - name: Render | Write the template
      ansible.builtin.copy:
        content: "{{ lookup('ansible.builtin.template', root ~ '/ansible/roles/' ~ role ~ '/templates/' ~ tpl) }}"
        dest: "{{ out }}"
        mode: "0644"
YAML
printf -- '---\n{}\n' >"$work/empty.yml"
render() {  # role template out [-e ...]
  local role="$1" tpl="$2" out="$3"; shift 3
  ansible-playbook -i localhost, "$work/render.yml" -e "root=$root" -e "empty=$work/empty.yml" \
    -e "role=$role" -e "tpl=$tpl" -e "out=$out" "$@" >"$out.log" 2>&1 || { cat "$out.log"; return 1; }
}
same() {  # description rendered expected-on-stdin
  if diff -u <(cat) "$2" >"$work/diff" 2>&1; then ok "$1"; else cat "$work/diff"; ko "$1"; fi
}

echo "== ollama_server"
render ollama_server override.conf.j2 "$work/ollama-override.conf" -e ollama_host=127.0.0.1:11500
same "ollama drop-in sets OLLAMA_HOST" "$work/ollama-override.conf" <<'EOF'
# Ansible managed
[Service]
Environment="OLLAMA_HOST=127.0.0.1:11500"
EOF

echo "== open_webui"
render open_webui open-webui.service.j2 "$work/owui-nostt.service"
same "open-webui unit, no STT URL" "$work/owui-nostt.service" <<'EOF'
# Ansible managed
[Unit]
Description=Open WebUI
After=network.target

[Service]
Type=simple
ExecStart=/opt/open-webui-venv/bin/open-webui serve --port 3000
Environment="OLLAMA_BASE_URL=http://localhost:11434"
Restart=always

[Install]
WantedBy=multi-user.target
EOF
render open_webui open-webui.service.j2 "$work/owui-stt.service" -e open_webui_stt_url=http://stt:8000/v1 -e open_webui_port=8080
same "open-webui unit, STT URL set, port 8080" "$work/owui-stt.service" <<'EOF'
# Ansible managed
[Unit]
Description=Open WebUI
After=network.target

[Service]
Type=simple
ExecStart=/opt/open-webui-venv/bin/open-webui serve --port 8080
Environment="OLLAMA_BASE_URL=http://localhost:11434"
Environment="AUDIO_STT_ENGINE=openai"
Environment="AUDIO_STT_OPENAI_API_BASE_URL=http://stt:8000/v1"
Restart=always

[Install]
WantedBy=multi-user.target
EOF

echo "== stt_server"
stt_unit() {  # compute-type language-line ld-line exec-line
  printf '%s\n' '# Ansible managed' '[Unit]' 'Description=Speaches speech-to-text server (OpenAI-compatible, faster-whisper)' \
    'After=network.target' '' '[Service]' 'Type=simple' 'WorkingDirectory=/opt/speaches' "Environment=\"WHISPER__MODEL=$1\"" \
    "Environment=\"WHISPER__COMPUTE_TYPE=$2\""
  [ -n "$3" ] && printf '%s\n' "$3"
  [ -n "$4" ] && printf '%s\n' "$4"
  printf '%s\n' "$5" 'Restart=always' 'RestartSec=5' '' '[Install]' 'WantedBy=multi-user.target'
}
sp=/opt/speaches/.venv/lib/python3.13/site-packages
ld="Environment=\"LD_LIBRARY_PATH=$sp/nvidia/cudnn/lib:$sp/nvidia/cublas/lib:$sp/nvidia/curand/lib:$sp/nvidia/cuda_runtime/lib:$sp/ctranslate2.libs\""
exec_default='ExecStart=/opt/speaches/.venv/bin/uvicorn speaches.main:create_app --factory --host 0.0.0.0 --port 8000'
render stt_server speaches.service.j2 "$work/stt-cpu.service" -e stt_server_has_gpu=false
same "speaches unit, no GPU, no language: float16 falls back to int8" "$work/stt-cpu.service" < <(stt_unit large-v3-turbo int8 "" "" "$exec_default")
render stt_server speaches.service.j2 "$work/stt-gpu.service" -e stt_server_has_gpu=true -e stt_server_language=fr -e "stt_server_site_packages=$sp"
same "speaches unit, GPU, language fr: float16, LD_LIBRARY_PATH from the venv's site-packages" "$work/stt-gpu.service" < <(stt_unit large-v3-turbo float16 'Environment="WHISPER__LANGUAGE=fr"' "$ld" "$exec_default")
render stt_server speaches.service.j2 "$work/stt-cpu-q.service" -e stt_server_has_gpu=false -e stt_server_quantization=int8_float32 \
  -e stt_server_host=127.0.0.1 -e stt_server_port=9000 -e stt_server_model=small -e stt_server_language=de
same "speaches unit, no GPU, quantization int8_float32 read, host/port/model/language" "$work/stt-cpu-q.service" < <(stt_unit small int8_float32 'Environment="WHISPER__LANGUAGE=de"' "" \
  'ExecStart=/opt/speaches/.venv/bin/uvicorn speaches.main:create_app --factory --host 127.0.0.1 --port 9000')
render stt_server speaches.service.j2 "$work/stt-gpu-q.service" -e stt_server_has_gpu=true -e stt_server_quantization=int8_float16 -e "stt_server_site_packages=$sp"
same "speaches unit, GPU, quantization int8_float16 read, no language" "$work/stt-gpu-q.service" < <(stt_unit large-v3-turbo int8_float16 "" "$ld" "$exec_default")

echo "== dev_test_runner"
render dev_test_runner incus-preseed.yaml.j2 "$work/preseed-default.yaml"
render dev_test_runner incus-preseed.yaml.j2 "$work/preseed-custom.yaml" -e dev_test_runner_incus_bridge_name=nestbr0 \
  -e dev_test_runner_incus_bridge_subnet=10.99.0.1/24 -e dev_test_runner_incus_storage_driver=btrfs
preseed_is() {  # file bridge subnet driver
  python3 - "$@" <<'PY'
import sys, yaml
f, bridge, subnet, driver = sys.argv[1:]
got = yaml.safe_load(open(f))
want = {
    "networks": [{"name": bridge, "type": "bridge",
                  "config": {"ipv4.address": subnet, "ipv4.nat": "true", "ipv6.address": "none"}}],
    "storage_pools": [{"name": "default", "driver": driver}],
    "profiles": [{"name": "default", "devices": {
        "eth0": {"name": "eth0", "network": bridge, "type": "nic"},
        "root": {"path": "/", "pool": "default", "type": "disk"}}}],
}
assert got == want, (got, want)
assert all(isinstance(v, str) for n in got["networks"] for v in n["config"].values()), "config values must be strings"
PY
}
if preseed_is "$work/preseed-default.yaml" incusbr0 10.250.0.1/24 dir; then ok "preseed, defaults (incusbr0 10.250.0.1/24 NAT no IPv6, dir pool, default profile)"; else ko "preseed, defaults"; fi
if preseed_is "$work/preseed-custom.yaml" nestbr0 10.99.0.1/24 btrfs; then ok "preseed, other bridge/subnet/driver"; else ko "preseed, other values"; fi
render dev_test_runner backports.sources.j2 "$work/backports.sources" -e '{"ansible_facts": {"distribution_release": "bookworm"}}'
same "bookworm-backports source (Debian 12)" "$work/backports.sources" <<'EOF'
# Ansible managed
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

echo "== input checks (each role's first task, alone, on localhost)"
# Runs only the role's input assertion (its first task), so nothing else of
# the role can touch this machine.
python3 - "$root" "$work" "${roles[@]}" <<'PY'
import sys, yaml
root, work, *roles = sys.argv[1:]
for r in roles:
    first = yaml.safe_load(open(f"{root}/ansible/roles/{r}/tasks/main.yml"))[0]
    assert "ansible.builtin.assert" in first, (r, first)
    yaml.safe_dump([first], open(f"{work}/assert-{r}.yml", "w"), sort_keys=False)
    with open(f"{work}/check-{r}.yml", "w") as f:
        f.write(f"""- name: Check
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - {root}/ansible/roles/{r}/defaults/main.yml
    - ["{root}/ansible/roles/{r}/vars/main.yml", "{work}/empty.yml"]
  tasks:
    - name: Check | The role's input assertion
      ansible.builtin.include_tasks: {work}/assert-{r}.yml
""")
PY
inputs() {  # role expect(pass|fail) message-fragment -e ...
  local r="$1" want="$2" frag="$3" rc=0 log; shift 3
  log="$work/check-$r-$RANDOM.log"
  ansible-playbook -i localhost, "$work/check-$r.yml" "$@" >"$log" 2>&1 || rc=$?
  local d="$r inputs $*: $want"
  if [ "$want" = pass ] && [ "$rc" -eq 0 ]; then ok "$d"
  elif [ "$want" = fail ] && [ "$rc" -ne 0 ] && grep -qF -- "$frag" "$log"; then ok "$d ('$frag')"
  else cat "$log"; ko "$d"; fi
}
inputs ollama_server pass ""
inputs ollama_server pass "" -e 'ollama_host=[::]:11434' -e ollama_default_model=llama3.2:3b
inputs ollama_server fail "ollama_host must be host[:port]" -e 'ollama_host=0.0.0.0:99999'
inputs ollama_server fail "ollama_host must be host[:port]" -e 'ollama_host=http://x y'
inputs ollama_server fail "ollama_extra_models a list" -e '{"ollama_extra_models": "nomic-embed-text"}'
inputs ollama_server fail "ollama_service_enabled a boolean" -e '{"ollama_service_enabled": "yes"}'
inputs open_webui pass ""
inputs open_webui fail "open_webui_port must be a port number" -e open_webui_port=http
inputs open_webui fail "open_webui_ollama_url an http(s) URL" -e open_webui_ollama_url=localhost:11434
inputs open_webui fail "open_webui_stt_url an http(s) URL" -e 'open_webui_stt_url=stt:8000'
inputs stt_server pass ""
inputs stt_server pass "" -e stt_server_quantization=int8 -e stt_server_language=fr
inputs stt_server fail "stt_server_quantization one of" -e stt_server_quantization=float8
inputs stt_server fail "stt_server_language a language code" -e stt_server_language=French
inputs stt_server fail "stt_server_port a port number" -e stt_server_port=0
inputs dev_test_runner pass ""
inputs dev_test_runner fail "dev_test_runner_incus_bridge_subnet an" -e dev_test_runner_incus_bridge_subnet=10.250.0.1
inputs dev_test_runner fail "dev_test_runner_incus_storage_driver an Incus storage driver" -e dev_test_runner_incus_storage_driver=ext4
inputs dev_test_runner fail "incus_all_images lists" -e '{"incus_all_images": "images:debian/13"}'

[ "$fail" -eq 0 ] && echo "render-ai: all passed" || echo "render-ai: FAILED" >&2
exit "$fail"
