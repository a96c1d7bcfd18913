#!/usr/bin/env bash
# Record the answers of the real Incus daemon that the in-memory fake
# (executor/src/incus/fake.rs) is built from: runs the scenario of
# tests/fake_fidelity.rs against the daemon and writes one normalised JSON
# file per step under executor/fixtures/incus-6.0/ (volatile values such as
# UUIDs, MACs, hashes and times become placeholders, so a re-recording on an
# unchanged Incus gives the same files). Then checks the fake still answers
# as recorded.
#
# Needs root and a running Incus set up by scripts/incus-setup.sh (with the
# `anklume-busybox` image alias). Creates only objects named `ankfx-…`
# (network ankfx-net on 10.251.77.0/24, projects ankfx-proj and ankfx-proj2,
# profile ankfx-prof, volume ankfx-vol, instance ankfx-c1) and removes them
# afterwards, also when the recording fails. Holds /tmp/anklume-incus.lock
# so no other real-daemon test runs at the same time.
#
# The fake embeds the fixtures it reads (include_str!), so a step newly added
# to the scenario and read by the fake needs its file before the first
# recording: create it as `{}`, then run this script.
#
# Like the other real-daemon tests it refuses to run beside anklume state it
# did not create; it touches none of it, so ANKLUME_TESTS_ALLOW_FOREIGN_STATE=1
# is safe here.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "record-incus-fixtures: run as root" >&2
  exit 1
fi
cd "$(dirname "$0")/.."

cleanup() {
  # The test removes its objects itself (also on panic); this catches a
  # killed run. Only ankfx- objects, errors ignored.
  command -v incus >/dev/null 2>&1 || return 0
  incus config set ankfx-c1 security.protection.delete=false --project ankfx-proj >/dev/null 2>&1 || true
  incus delete --force ankfx-c1 --project ankfx-proj >/dev/null 2>&1 || true
  incus delete --force ankfx-c2 --project ankfx-proj >/dev/null 2>&1 || true
  incus delete --force ankfx-c2 --project ankfx-proj2 >/dev/null 2>&1 || true
  incus profile delete ankfx-prof --project ankfx-proj >/dev/null 2>&1 || true
  incus storage volume delete default ankfx-vol --project ankfx-proj >/dev/null 2>&1 || true
  incus project delete ankfx-proj >/dev/null 2>&1 || true
  incus project delete ankfx-proj2 >/dev/null 2>&1 || true
  incus network delete ankfx-net >/dev/null 2>&1 || true
}
trap cleanup EXIT

flock /tmp/anklume-incus.lock env ANKLUME_RECORD_FIXTURES=1 ANKLUME_REQUIRE_INCUS=1 \
  cargo test --test fake_fidelity real_daemon_answers_as_recorded -- --nocapture
cargo test --test fake_fidelity fake_answers_as_recorded
git status --short executor/fixtures/incus-6.0/
