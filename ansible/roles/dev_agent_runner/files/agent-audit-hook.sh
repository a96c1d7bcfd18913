#!/bin/sh
# anklume dev_agent_runner: Claude Code hook appending the hook's JSON (stdin),
# timestamped, to ${ANKLUME_AGENT_LOG_DIR:-/root/anklume/logs}/agent-session-YYYYMMDD.jsonl.
# Never blocks the agent: any failure is ignored and the exit status is 0.
dir="${ANKLUME_AGENT_LOG_DIR:-/root/anklume/logs}"
mkdir -p "$dir" 2>/dev/null || exit 0
ts=$(date -u +%Y-%m-%dT%H:%M:%SZ)
payload=$(cat | tr '\n' ' ')
[ -n "$payload" ] || payload=null
printf '{"ts":"%s","event":%s}\n' "$ts" "$payload" >>"$dir/agent-session-$(date -u +%Y%m%d).jsonl" 2>/dev/null
exit 0
