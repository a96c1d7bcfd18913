#!/usr/bin/env bash
# Record the Incus configuration key catalogue that `anklume check` uses
# offline (incus-keys/data/metadata-configuration.json), from the running
# daemon's `GET /1.0/metadata/configuration`. Keeps the sections anklume
# checks (instance, kernel, project, devices) and, per key, the fields the
# messages use (shortdesc, condition), sorted, so a re-recording on an
# unchanged Incus gives the same file. Read-only: it changes nothing.
# Usage: scripts/record-incus-keys.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=incus-keys/data/metadata-configuration.json
version="$(incus query /1.0 | python3 -c 'import json,sys; print(json.load(sys.stdin)["environment"]["server_version"])')"
incus query /1.0/metadata/configuration | python3 -c '
import json, sys
version = sys.argv[1]
configs = json.load(sys.stdin)["configs"]
out = {"server_version": version, "configs": {}}
for section in ("instance", "kernel", "project", "devices"):
    groups = {}
    for group, body in configs.get(section, {}).items():
        keys = {}
        for entry in body.get("keys", []):
            for key, meta in entry.items():
                keys[key] = {f: meta[f] for f in ("condition", "shortdesc") if f in meta}
        groups[group] = keys
    out["configs"][section] = groups
json.dump(out, sys.stdout, indent=1, sort_keys=True, ensure_ascii=False)
sys.stdout.write("\n")
' "$version" > "$out.tmp"
mv "$out.tmp" "$out"
echo "record-incus-keys: wrote $out (Incus $version)"
