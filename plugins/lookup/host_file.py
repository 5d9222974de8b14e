# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
name: host_file
author:
  - callcenter.ops maintainers (@callcenter-ops)
version_added: "0.1.0"
short_description: Path on the controller of one of the collection's module_utils files
description:
  - Returns the path of C(plugins/module_utils/<name>.py) of this collection, as the
    controller loaded it, for each name given.
  - The host_files role copies these files onto hosts, where scripts run them without
    Ansible. A role thus never reaches outside its own folder (no C(role_path/..)).
  - Only the names of existing module_utils files are accepted.
options:
  _terms:
    description: Names of module_utils files, without C(.py) (V(backup), V(textfile), ...).
    required: true
    type: list
    elements: str
'''

EXAMPLES = r'''
- name: Install the backup reader
  ansible.builtin.copy:
    src: "{{ lookup('callcenter.ops.host_file', 'backup') }}"
    dest: /opt/callcenter/ccops_backup.py
    mode: "0644"
'''

RETURN = r'''
_raw:
  description: Absolute paths of the files, one per name.
  type: list
  elements: path
'''

import importlib.util
import os
import re

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

PACKAGE = "ansible_collections.callcenter.ops.plugins.module_utils"


def module_utils_path(name):
    """The file of module_utils ``name`` (``backup`` -> .../plugins/module_utils/backup.py)."""
    if not isinstance(name, str) or not re.match(r"^[a-z][a-z0-9_]*$", name):
        raise AnsibleLookupError("host_file: %r is not the name of a module_utils file (lower-case, like backup)"
                                 % (name,))
    try:
        spec = importlib.util.find_spec("%s.%s" % (PACKAGE, name))
    except ImportError:
        spec = None
    origin = getattr(spec, "origin", None)
    if not origin or not os.path.isfile(origin):
        here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")
        origin = os.path.join(here, name + ".py")
    if not os.path.isfile(origin):
        raise AnsibleLookupError("host_file: callcenter.ops has no module_utils file %s.py" % name)
    return origin


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        return [module_utils_path(term) for term in terms]
