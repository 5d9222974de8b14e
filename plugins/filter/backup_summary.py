# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turns a backup_verify result into the lines an operator reads."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.callcenter.ops.plugins.module_utils.fmt import size as _size


_INTEGRITY = {
    "checksum_file": "the whole file matches its sha256 checksum file",
    "gzip_crc": "the gzip CRC and length cover every byte",
    "pg_dump_compression": "pg_dump's own compression (zlib checksums) covers the data blocks",
    "none": "NOTHING protects the data blocks (an uncompressed pg_dump -Fc -Z0 file, or toc mode): "
            "a flipped byte in table data would go unnoticed",
}


def backup_summary(result):
    """Verdict line, then one line per check, then the table of contents."""
    if not isinstance(result, dict):
        raise TypeError("backup_summary expects the registered result of callcenter.ops.backup_verify")
    verdict = "VALID" if result.get("valid") else "NOT VALID"
    lines = ["Backup %s: %s" % (verdict, result.get("path") or result.get("error") or "?")]
    if result.get("size") is not None:
        lines.append("  size %s, modified %s (%.1fh ago), checked in %.1fs" % (
            _size(result["size"]), result.get("mtime"), (result.get("age_seconds") or 0) / 3600.0,
            result.get("duration") or 0))
    for c in result.get("checks") or []:
        lines.append("  %-8s %-4s %s" % (c.get("name"), "ok" if c.get("ok") else "FAIL", c.get("message")))
    integrity = result.get("integrity")
    if integrity:
        lines.append("  integrity: %s" % _INTEGRITY.get(integrity, integrity))
    toc = result.get("toc")
    if toc:
        lines.append("  toc: database %s, %s entries, %d tables, dumped %s by pg_dump %s" % (
            toc.get("database"), toc.get("entries"), len(toc.get("tables") or []), toc.get("dumped_at"),
            toc.get("pg_dump_version")))
    return lines


class FilterModule(object):
    def filters(self):
        return {"backup_summary": backup_summary}
