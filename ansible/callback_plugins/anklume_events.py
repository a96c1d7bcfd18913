# anklume's progress events: one JSON object per line, appended to the file
# named by the environment variable ANKLUME_EVENTS_FILE (nothing happens
# without it). anklume's executor reads the file while ansible-playbook runs
# and turns each line into an apply event (text and `--format json`).
#
# Lines:
#   {"kind": "task", "host": H, "task": NAME, "role": ROLE|null,
#    "status": "ok"|"changed"|"failed"|"skipped"|"unreachable",
#    "ignored": BOOL, "msg": TEXT|null}         one per host and task result
#   {"kind": "stats", "hosts": {H: {"ok": N, "changed": N, "failed": N,
#    "unreachable": N, "skipped": N, "rescued": N, "ignored": N}}}
#                                                at the end of the run
# Each line is written whole and flushed, so a reader never sees half a line
# once it has seen its newline.
from __future__ import annotations

DOCUMENTATION = r"""
name: anklume_events
type: notification
short_description: JSON-lines progress events for anklume's executor
description:
  - Appends one JSON object per task result, and the final per-host counts,
    to the file named by the ANKLUME_EVENTS_FILE environment variable.
  - Does nothing when the variable is unset.
requirements:
  - enabled with callbacks_enabled (anklume's ansible.cfg does it)
"""

import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "anklume_events"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        path = os.environ.get("ANKLUME_EVENTS_FILE")
        self._out = open(path, "a", encoding="utf-8") if path else None

    def _emit(self, obj):
        if self._out is None:
            return
        self._out.write(json.dumps(obj, sort_keys=True, default=str) + "\n")
        self._out.flush()

    @staticmethod
    def _msg(result):
        r = result._result
        msg = r.get("msg") or r.get("stderr") or r.get("reason")
        if isinstance(msg, str):
            msg = msg.strip()
            # One line is enough for progress; the log has the whole output.
            return msg[:2000] if msg else None
        return None

    def _task(self, result, status, ignored=False):
        task = result._task
        role = getattr(task, "_role", None)
        role = role.get_name() if role is not None else None
        name = task.get_name().strip()
        # Ansible prefixes a role's task names with "<role> : ".
        if role and name.startswith(role + " : "):
            name = name[len(role) + 3 :]
        self._emit(
            {
                "kind": "task",
                "host": result._host.get_name(),
                "task": name,
                "role": role,
                "status": status,
                "ignored": bool(ignored),
                "msg": self._msg(result) if status in ("failed", "unreachable") else None,
            }
        )

    def v2_runner_on_ok(self, result):
        self._task(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._task(result, "failed", ignored=ignore_errors)

    def v2_runner_on_skipped(self, result):
        self._task(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._task(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        hosts = {}
        for h in sorted(stats.processed.keys()):
            s = stats.summarize(h)
            # Ansible calls the failed count "failures".
            hosts[h] = {
                "ok": int(s.get("ok", 0)),
                "changed": int(s.get("changed", 0)),
                "failed": int(s.get("failures", 0)),
                "unreachable": int(s.get("unreachable", 0)),
                "skipped": int(s.get("skipped", 0)),
                "rescued": int(s.get("rescued", 0)),
                "ignored": int(s.get("ignored", 0)),
            }
        self._emit({"kind": "stats", "hosts": hosts})
        if self._out is not None:
            self._out.close()
            self._out = None
