#!/usr/bin/python3
# anklume's small-files module: several directories, files and symbolic
# links in one task, so in one round trip to the instance (each task costs
# an `incus exec` and a Python start there, more than the work itself).
from __future__ import annotations

DOCUMENTATION = r"""
module: anklume_files
short_description: Write several small files, directories and links in one task
description:
  - Creates directories, writes files with exact content (atomically, through a
    temporary file renamed into place) and makes symbolic links, only where they
    differ. Supports check mode and diff.
options:
  dirs:
    description: Directories to create, each C({path, mode}).
    type: list
    elements: dict
    default: []
  files:
    description: Files to write, each C({path, content, mode}).
    type: list
    elements: dict
    default: []
  links:
    description: >-
      Symbolic links, each C({path, src, require_src}); with require_src, a
      missing src fails the task before anything is changed.
    type: list
    elements: dict
    default: []
author: anklume
"""

EXAMPLES = r"""
- name: Base | Locale and timezone files
  anklume_files:
    files:
      - {path: /etc/timezone, content: "Europe/Paris\n", mode: "0644"}
    links:
      - {path: /etc/localtime, src: /usr/share/zoneinfo/Europe/Paris, require_src: true}
"""

RETURN = r"""
changed_paths:
  description: The paths created or changed.
  type: list
  returned: always
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule


def _mode(m, value, default):
    try:
        return int(str(value if value is not None else default), 8)
    except ValueError:
        m.fail_json(msg="mode %r is not an octal mode such as '0644'" % (value,))
        return 0


def main():
    m = AnsibleModule(
        argument_spec=dict(
            dirs=dict(type="list", elements="dict", default=[]),
            files=dict(type="list", elements="dict", default=[]),
            links=dict(type="list", elements="dict", default=[]),
        ),
        supports_check_mode=True,
    )
    p = m.params
    for link in p["links"]:
        if not link.get("path") or not link.get("src"):
            m.fail_json(msg="each link needs path and src: %r" % (link,))
        if link.get("require_src") and not os.path.exists(link["src"]):
            m.fail_json(msg="%s does not exist (needed by the link %s)" % (link["src"], link["path"]))
    changed = []
    diffs = []
    check = m.check_mode
    for d in p["dirs"]:
        path = d["path"]
        mode = _mode(m, d.get("mode"), "0755")
        if not os.path.isdir(path):
            if not check:
                os.makedirs(path, mode)
                os.chmod(path, mode)
            changed.append(path)
        elif os.stat(path).st_mode & 0o7777 != mode:
            if not check:
                os.chmod(path, mode)
            changed.append(path)
    for f in p["files"]:
        path = f["path"]
        want = str(f.get("content", "")).encode()
        mode = _mode(m, f.get("mode"), "0644")
        try:
            with open(path, "rb") as fh:
                have = fh.read()
            have_mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            have, have_mode = None, None
        if have == want and have_mode == mode:
            continue
        if have != want:
            diffs.append(
                dict(
                    before_header=path,
                    after_header=path,
                    before=(have or b"").decode(errors="replace"),
                    after=want.decode(errors="replace"),
                )
            )
        if not check:
            parent = os.path.dirname(path) or "."
            fd, tmp = tempfile.mkstemp(dir=parent, prefix=".anklume-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(want)
                os.chmod(tmp, mode)
                os.replace(tmp, path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        changed.append(path)
    for link in p["links"]:
        path, src = link["path"], link["src"]
        if os.path.islink(path) and os.readlink(path) == src:
            continue
        if not check:
            tmp = os.path.join(os.path.dirname(path) or ".", ".anklume-link-%d" % os.getpid())
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(src, tmp)
            os.replace(tmp, path)
        changed.append(path)
    result = dict(changed=bool(changed), changed_paths=changed)
    if m._diff and diffs:
        result["diff"] = diffs
    m.exit_json(**result)


if __name__ == "__main__":
    main()
