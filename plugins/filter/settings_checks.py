# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The roles check their settings with the modules' own rules (module_utils/params.py): a unit
or a timeout a role accepts is one the module and the host script accept too."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.callcenter.ops.plugins.module_utils import params


def quantity_problem(value, kind, name="value"):
    """'' when ``value`` is a usable ``kind`` ("age": 26h, 90m; "size": 1M, 500k), else why not."""
    if kind not in params.UNITS:
        raise ValueError("quantity_problem: kind must be one of %s" % ", ".join(sorted(params.UNITS)))
    return params.quantity_problem(value, kind, name) or ""


def timeout_problem(value, name="timeout", maximum=params.MAX_TIMEOUT):
    """'' when ``value`` is a usable number of seconds (finite, > 0, at most ``maximum``), else why not."""
    return params.timeout_problem(value, name, maximum=float(maximum)) or ""


class FilterModule(object):
    def filters(self):
        return {"quantity_problem": quantity_problem, "timeout_problem": timeout_problem}
