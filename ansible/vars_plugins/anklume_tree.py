# anklume: load group_vars/ and host_vars/ that sit beside the inventory
# directory (the layout `anklume sync` writes), not inside it.
from __future__ import annotations

DOCUMENTATION = """
    name: anklume_tree
    short_description: Load group_vars/ and host_vars/ beside an `inventory/` directory
    description:
        - "For an inventory source C(<tree>/inventory) (or a file in it), loads C(<tree>/group_vars/)
          and C(<tree>/host_vars/) exactly as M(ansible.builtin.host_group_vars) loads the ones
          inside an inventory directory: same files, same merging, same precedence."
        - Inventory sources in a directory not named C(inventory) are ignored.
        - Requires enabling in C(vars_plugins_enabled).
    options:
      stage:
        ini:
          - key: stage
            section: vars_anklume_tree
        env:
          - name: ANSIBLE_VARS_PLUGIN_STAGE
      _valid_extensions:
        default: [".yml", ".yaml", ".json"]
        description: Extensions of the variable files.
        env:
          - name: ANSIBLE_YAML_FILENAME_EXT
        ini:
          - key: yaml_valid_extensions
            section: defaults
        type: list
        elements: string
    extends_documentation_fragment:
      - vars_plugin_staging
"""

import os

from ansible.plugins.vars.host_group_vars import VarsModule as HostGroupVars


class VarsModule(HostGroupVars):

    REQUIRES_ENABLED = True

    def get_vars(self, loader, path, entities, cache=True):
        directory = path if os.path.isdir(path) else os.path.dirname(path)
        directory = os.path.normpath(os.path.abspath(directory))
        if os.path.basename(directory) != "inventory":
            return {}
        return super().get_vars(loader, os.path.dirname(directory), entities, cache)
