#!/usr/bin/env bash
# What keeping a deleted instance costs: one Debian container (the image
# from scripts/image-debian.sh) is applied, then `anklume remove`d with its
# copy kept, brought back by `anklume rollback`, and removed again with
# --no-keep. Prints the time of each and the size of the kept copy.
# Uses its own domain (ankt-kb) and state directory; cleans up after.
set -euo pipefail
ANKLUME=${ANKLUME:-$(dirname "$0")/../target/release/anklume}
ANKLUME=$(realpath "$ANKLUME")
RUNS=${RUNS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export ANKLUME_STATE_DIR="$work/state" ANKLUME_CONTEXT_DIR="$work/ctx" ANKLUME_SKIP_HOST_SUBNET_CHECK=1
cat > infra.yml <<YML
project_name: kbench
global:
  addressing: {zone_base: 124}
  default_os_image: anklume-debian
domains:
  ankt-kb:
    trust_level: admin
    machines:
      ankt-kb-one:
        ephemeral: true
YML
ms() { date +%s%3N; }
"$ANKLUME" plan -o plan.bin
for run in $(seq "$RUNS"); do
  "$ANKLUME" apply plan.bin --yes --no-nftables --no-provision >/dev/null
  incus exec ankt-kb-one --project ankt-kb -- sh -c 'head -c 50000000 /dev/urandom > /root/data'
  t0=$(ms); "$ANKLUME" remove ankt-kb-one --yes >/dev/null; t1=$(ms)
  bytes=$(find state/kept -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
  t2=$(ms); "$ANKLUME" rollback --yes >/dev/null; t3=$(ms)
  incus exec ankt-kb-one --project ankt-kb -- test -s /root/data
  t4=$(ms); "$ANKLUME" remove ankt-kb-one --yes --no-keep >/dev/null; t5=$(ms)
  used=$(incus query /1.0/storage-pools/default/resources >/dev/null 2>&1 && echo)
  echo "run $run: remove with copy $((t1-t0)) ms (copy $((bytes/1048576)) MiB), rollback $((t3-t2)) ms, remove --no-keep $((t5-t4)) ms"
  rm -rf state/kept
done
incus project delete ankt-kb >/dev/null 2>&1 || true
incus network delete net-ankt-kb >/dev/null 2>&1 || true
