# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of module parameters shared by every module (one place, one wording).

STDLIB ONLY: host scripts import this file too (see roles/host_files/vars/main.yml)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import re

# A day: longer than any check should take, small enough for every clock and sleep call.
MAX_TIMEOUT = 86400.0


def timeout_problem(value, name="timeout", minimum=0.0, allow_zero=False, maximum=MAX_TIMEOUT):
    """None when ``value`` is a usable number of seconds, else the sentence saying why not.
    Rejects NaN, infinities, negatives (and 0 unless ``allow_zero``) and anything above
    ``maximum``: such values otherwise reach time/socket calls as raw Python errors."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "%s must be a number of seconds (got %r)" % (name, value)
    if math.isnan(v) or math.isinf(v):
        return "%s must be a finite number of seconds (got %s)" % (name, value)
    if v < minimum or (v == 0 and not allow_zero):
        return "%s must be greater than %s seconds (got %s)" % (name, "or equal to 0" if allow_zero else "0", value)
    if v > maximum:
        return "%s must be at most %d seconds (got %s)" % (name, maximum, value)
    return None


def check_timeouts(module, *names, **kwargs):
    """fail_json on the first of ``names`` (module parameters) that is not a usable timeout.
    Unset (None) parameters are skipped. ``allow_zero`` may list names where 0 is fine."""
    allow_zero = kwargs.get("allow_zero", ())
    for name in names:
        value = module.params.get(name)
        if value is None:
            continue
        problem = timeout_problem(value, name, allow_zero=name in allow_zero)
        if problem:
            module.fail_json(msg=problem)


# Units of the quantities operators type ("26h", "50M"): the modules, the host scripts and the
# roles' checks (filter callcenter.ops.quantity_problem) all read them here, never a copy.
AGE_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}
UNITS = {"age": AGE_UNITS, "size": SIZE_UNITS}


def parse_quantity(value, units, what):
    """``"26h"`` -> 93600.0 with AGE_UNITS, ``"50M"`` -> bytes with SIZE_UNITS; ValueError with
    the sentence to show otherwise."""
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]?)[bB]?\s*$", str(value))
    if not m or m.group(2).lower() not in units:
        raise ValueError("%s must be a number with an optional unit (%s), got %r"
                         % (what, "/".join(u for u in units if u), value))
    return float(m.group(1)) * units[m.group(2).lower()]


def quantity_problem(value, kind, what):
    """None when ``value`` is a usable quantity of ``kind`` ("age" or "size"), else the sentence."""
    try:
        parse_quantity(value, UNITS[kind], what)
    except ValueError as e:
        return str(e)
    return None
