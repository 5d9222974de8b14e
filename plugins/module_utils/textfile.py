# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one Prometheus textfile writer of the collection: label escaping, exposition text,
atomic write. Every metrics file (backup verification, Celery queues) goes through here.

STDLIB ONLY: host scripts import this file too (see roles/host_files/vars/main.yml)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import os
import re

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def escape_label_value(value):
    """A label value as the exposition format wants it: backslash, double quote and line
    feed escaped, so no value (a file or queue name with a newline) can break the file."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text):
    """HELP text: backslash and line feed escaped (quotes are allowed there)."""
    return str(text).replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value):
    """A sample value: bools as 0/1, floats rounded to ms, NaN/Inf spelled as Prometheus does."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        return repr(round(value, 3))
    return str(int(value))


def labels_text(labels):
    if not labels:
        return ""
    parts = []
    for key in sorted(labels):
        if not _LABEL.match(key):
            raise ValueError("invalid Prometheus label name %r" % (key,))
        parts.append('%s="%s"' % (key, escape_label_value(labels[key])))
    return "{%s}" % ",".join(parts)


def exposition(families):
    """Text of metric families: an iterable of ``(name, type, help, samples)`` where samples
    is a list of ``(labels dict or None, value)``; samples whose value is None are left out
    (a family with no sample left keeps its HELP/TYPE lines)."""
    lines = []
    for name, kind, help_text, samples in families:
        if not _NAME.match(name):
            raise ValueError("invalid Prometheus metric name %r" % (name,))
        lines.append("# HELP %s %s" % (name, escape_help(help_text)))
        lines.append("# TYPE %s %s" % (name, kind))
        for labels, value in samples:
            if value is None:
                continue
            lines.append("%s%s %s" % (name, labels_text(labels), format_value(value)))
    return "\n".join(lines) + "\n"


def write_atomically(path, text, mode=0o644):
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename,
    so a collector never reads half a file. Raises OSError."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    tmp = os.path.join(directory, ".%s.%d.tmp" % (os.path.basename(path), os.getpid()))
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
