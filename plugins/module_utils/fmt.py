# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Figures as people read them, shared by the summary and table filters."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def duration(seconds):
    """42 -> '42s', 600 -> '10m', 9000 -> '2.5h', 259200 -> '3.0d'; None -> '?'."""
    if seconds is None:
        return "?"
    seconds = float(seconds)
    if seconds < 120:
        return "%ds" % seconds
    if seconds < 7200:
        return "%dm" % (seconds // 60)
    if seconds < 172800:
        return "%.1fh" % (seconds / 3600.0)
    return "%.1fd" % (seconds / 86400.0)


def size(n):
    """Bytes in binary units: 512 -> '512 B', 2048 -> '2.0 KiB'; None -> '?'."""
    if n is None:
        return "?"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024.0
    return "?"
