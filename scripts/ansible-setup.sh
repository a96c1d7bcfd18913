#!/usr/bin/env bash
# Install anklume's pinned Ansible into a Python venv, from PyPI only.
#
#   venv:  ${ANKLUME_ANSIBLE_VENV:-$HOME/.cache/anklume/ansible-venv}
#   pins:  ansible/requirements.txt (top level) + ansible/constraints.txt (every package)
#   python: ${ANKLUME_PYTHON:-python3.11} (3.11 or later)
#
# Idempotent: the venv records the digest of the Python version and both pin
# files in .anklume-pins.sha256; when it matches, nothing is installed and the
# script only prints the versions. Otherwise (other pins, other Python, a
# half-made venv) the venv is rebuilt from scratch.
#
# Usage: scripts/ansible-setup.sh [--refreeze]
#   --refreeze  resolve requirements.txt afresh in a scratch venv and rewrite
#               constraints.txt (then run the script again to install it)
# The last line gives the venv's path.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
venv="${ANKLUME_ANSIBLE_VENV:-$HOME/.cache/anklume/ansible-venv}"
python="${ANKLUME_PYTHON:-python3.11}"
req="$root/ansible/requirements.txt"
cons="$root/ansible/constraints.txt"

die() { echo "ansible-setup.sh: $*" >&2; exit 1; }

command -v "$python" >/dev/null 2>&1 || die "$python not found (set ANKLUME_PYTHON to a Python 3.11+ interpreter)"
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || die "$python is $("$python" -V 2>&1); Python 3.11 or later is needed"
[ -f "$req" ] && [ -f "$cons" ] || die "missing $req or $cons"

if [ "${1:-}" = "--refreeze" ]; then
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  "$python" -m venv "$scratch/venv"
  "$scratch/venv/bin/pip" install -q -r "$req"
  {
    echo "# Every package of the venv, pinned (pip freeze of a clean install of requirements.txt on Python 3.11)."
    echo "# Regenerate: scripts/ansible-setup.sh --refreeze"
    "$scratch/venv/bin/pip" freeze
  } >"$cons"
  echo "rewrote $cons; run scripts/ansible-setup.sh to install it"
  exit 0
elif [ $# -gt 0 ]; then
  die "unknown argument: $1 (usage: scripts/ansible-setup.sh [--refreeze])"
fi

digest=$( { "$python" -c 'import sys; print(sys.version)'; cat "$req" "$cons"; } | sha256sum | cut -d' ' -f1)
stamp="$venv/.anklume-pins.sha256"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ] && [ -x "$venv/bin/ansible-playbook" ]; then
  state="up to date"
else
  # The stamp is written last, so an interrupted install is redone next time.
  # Never remove a directory that is not a venv (a mistyped ANKLUME_ANSIBLE_VENV).
  if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ] && [ -n "$(ls -A "$venv" 2>/dev/null)" ]; then
    die "$venv exists and is not a Python venv; refusing to replace it"
  fi
  echo "installing pinned Ansible into $venv (PyPI)..." >&2
  mkdir -p "$(dirname "$venv")"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  if ! "$venv/bin/pip" install -q -r "$req" -c "$cons"; then
    rm -rf "$venv"
    die "pip install failed; venv removed"
  fi
  # The incus connection plugin must be in the pinned community.general.
  "$venv/bin/ansible-doc" -t connection community.general.incus >/dev/null 2>&1 \
    || { rm -rf "$venv"; die "community.general.incus connection plugin missing from the pinned ansible"; }
  echo "$digest" >"$stamp"
  state="installed"
fi

core=$("$venv/bin/python" -c 'import ansible.release as r; print(r.__version__)')
pkg=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("ansible"))')
lint=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("ansible-lint"))')
cg=$("$venv/bin/python" -c '
import json, pathlib, ansible_collections.community.general as c
print(json.loads((pathlib.Path(c.__path__[0]) / "MANIFEST.json").read_text())["collection_info"]["version"])')
echo "ansible $pkg (ansible-core $core, community.general $cg), ansible-lint $lint: $state"
echo "venv: $venv"
