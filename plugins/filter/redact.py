# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secrets kept out of what the roles show (failure messages), by the modules' own helper
(module_utils/redact.py): one mask, one rule for empty and nested secrets."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.callcenter.ops.plugins.module_utils import redact


class FilterModule(object):
    def filters(self):
        return {"mask_secrets": redact.mask}
