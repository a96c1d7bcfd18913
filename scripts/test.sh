#!/usr/bin/env bash
# Run every check the project has: formatting, lints, and the whole test
# suite (unit, property, golden-file, fuzz-regression, CLI and real-Incus
# tests), with the `failpoints` feature the kill tests need.
#
# It does not change the machine: the Incus tests use a daemon that is
# already running, or are skipped (ANKLUME_REQUIRE_INCUS=1 makes a missing
# daemon an error, as in CI). To install and start Incus first (apt
# sources, packages, incusd, the test image: scripts/incus-setup.sh, as
# root), ask for it with --setup or ANKLUME_SETUP=1; --setup also builds
# the offline Debian image (scripts/image-debian.sh) and the pinned Ansible
# venv (scripts/ansible-setup.sh) that the provisioning tests need. Without
# them those tests are skipped, unless ANKLUME_REQUIRE_PROVISIONING=1 (CI).
#
# The real-Incus tests create and delete only objects named ankt-… (and the
# `inet anklume` nftables table while they run), and refuse to run on a host
# with anklume state of its own; see docs/apply.md ("The tests and the host").
# Usage: scripts/test.sh [--setup]
set -euo pipefail
cd "$(dirname "$0")/.."

setup="${ANKLUME_SETUP:-0}"
for arg in "$@"; do
  case "$arg" in
    --setup) setup=1 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test.sh: unknown argument '$arg' (usage: scripts/test.sh [--setup])" >&2; exit 2 ;;
  esac
done

# Snapshots are reviewed by people (`cargo insta review`), never written by CI.
export CI="${CI:-true}"
export INSTA_UPDATE=no

if [ "$setup" = 1 ]; then
  scripts/incus-setup.sh
  scripts/image-debian.sh
  scripts/ansible-setup.sh
fi
venv="${ANKLUME_ANSIBLE_VENV:-$HOME/.cache/anklume/ansible-venv}"
have_venv=0; [ -x "$venv/bin/ansible-playbook" ] && have_venv=1
have_image=0
if command -v incus >/dev/null 2>&1 && incus image list -f csv -c l anklume-debian 2>/dev/null | grep -qx anklume-debian; then
  have_image=1
fi
require="${ANKLUME_REQUIRE_PROVISIONING:-0}"
if [ "$require" = 1 ] && [ "$have_venv$have_image" != 11 ]; then
  echo "test.sh: ANKLUME_REQUIRE_PROVISIONING=1 but the Ansible venv ($have_venv) or the anklume-debian image ($have_image) is missing: run with --setup" >&2
  exit 1
fi

# The failpoints feature compiles the kill-at-record-N hook the rollback
# tests use; release builds never have it.
features=(--features failpoints)

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings
echo "==> cargo test ${features[*]}"
cargo test --workspace "${features[@]}"
matrix=$(ls -t target/tmp/isolation-matrix.txt 2>/dev/null | head -n 1 || true)
if [ -n "$matrix" ]; then
  echo "==> measured isolation matrix"
  cat "$matrix"
fi
if [ "$have_venv" = 1 ]; then
  echo "==> Ansible content: syntax check and ansible-lint"
  scripts/ansible-check.sh
  # Roles that need the Internet: their templates, rendered on this machine.
  for t in ansible/tests/render-*.sh; do
    [ -e "$t" ] || continue
    echo "==> $t"
    "$t"
  done
else
  echo "==> Ansible content checks skipped: no venv (scripts/ansible-setup.sh)"
fi
if [ "$have_venv$have_image" = 11 ]; then
  # The roles, for real, in throwaway containers (each script creates and
  # deletes its own ankt-… project and bridge).
  for t in ansible/tests/run-*.sh; do
    echo "==> $t"
    "$t"
  done
else
  echo "==> real role tests skipped: they need the Ansible venv and the anklume-debian image (--setup)"
fi
echo "==> benches compile"
cargo bench --workspace --no-run -q
echo "==> all tests passed"
