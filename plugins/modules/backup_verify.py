#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: backup_verify
short_description: Verify that a PostgreSQL backup would restore
version_added: "0.1.0"
description:
  - Verifies a PostgreSQL custom-format dump (C(pg_dump -Fc)), gzip'ed (C(*.dump.gz)) or not,
    or the newest matching file in a directory.
  - In O(mode=full) every byte is read once, in a stream. The gzip CRC and length are checked,
    and the same bytes are fed to C(pg_restore --list) for the table of contents and to
    C(pg_restore -f /dev/null), which reads every data block. Nothing is written to disk.
  - This catches what C(pg_restore --list) alone misses. A dump truncated at half, or with
    a flipped byte in the middle, passes C(--list), because it reads only the head.
  - The format is found by the file's first bytes, not by its name. Plain-SQL and tar dumps
    are refused with a message saying so.
  - Only regular files are verified. A FIFO, socket or device (given as O(path) or matching
    O(pattern) in a directory) is refused or skipped from its C(stat()), never opened, so it
    cannot block the check. Any error of the file system (a symlink loop, a name too long, an
    I/O error) is a failed check with a sentence, never a crash.
  - Memory stays bounded whatever the input, a gzip bomb included. Decompression yields at most
    1 MiB at a time, and each C(pg_restore) child runs under O(pg_restore_memory_limit)
    (set with C(ulimit -v) by C(/bin/sh) before it runs C(pg_restore)).
  - The module only reads the backup. It reports C(changed) only when it wrote O(metrics_file).
author:
  - callcenter.ops maintainers (@callcenter-ops)
extends_documentation_fragment:
  - callcenter.ops.attributes
attributes:
  check_mode:
    support: full
    details: Verifies as usual but writes no metrics file.
  diff_mode:
    support: none
    details: No diff is produced.
options:
  path:
    description:
      - The backup file, or a directory in which the newest file matching O(pattern) is verified.
    type: path
    required: true
  pattern:
    description:
      - Shell glob for the backup files when O(path) is a directory.
    type: str
    default: "*.dump.gz"
  mode:
    description:
      - V(full) decompresses and checks every byte and has C(pg_restore) read every data block.
      - V(toc) checks the gzip header and the table of contents only. It is fast, but it
        does not catch a truncated or corrupted body.
    type: str
    choices: [full, toc]
    default: full
  max_age:
    description:
      - A backup older than this fails. Seconds, or a number with a unit
        (V(30m), V(26h), V(2d)).
    type: str
  min_size:
    description:
      - A backup smaller than this fails. Bytes, or a number with a unit (V(10K), V(50M), V(1G)).
    type: str
  checksum_file:
    description:
      - A C(sha256sum)-style sidecar file with the backup's expected sha256.
      - V(auto) uses C(<backup>.sha256) when it exists.
    type: str
  metrics_file:
    description:
      - Write the result as Prometheus textfile-collector metrics to this file, atomically
        (C(callcenter_backup_verify_success), C(..._last_run_timestamp_seconds),
        C(callcenter_backup_age_seconds), C(..._size_bytes), C(..._verify_duration_seconds)).
      - Written whether the backup is valid or not, and also when no backup is found.
        A failed verification also gets C(callcenter_backup_verify_failure{check, reason}) samples
        saying which check failed and why.
    type: path
  pg_restore_path:
    description:
      - The C(pg_restore) to use. Defaults to the one on C(PATH), else the newest under
        C(/usr/lib/postgresql/*/bin).
      - It must be at least as new as the C(pg_dump) that made the backup.
    type: path
  pg_restore_memory_limit:
    description:
      - Address-space limit (C(RLIMIT_AS)) for each C(pg_restore) child, in MiB, at least 24.
        A corrupt length field can make C(pg_restore) try to allocate gigabytes.
      - C(pg_restore) 15 needs about 18 MiB. The default leaves about 10 MiB for the largest
        row of an uncompressed (C(-Z0)) dump, which C(pg_restore) holds in one block. A dump
        with larger rows fails with C(out of memory) and the advice to raise this limit.
    type: int
    default: 28
  timeout:
    description:
      - Seconds after which the verification is stopped and reported as failed. The deadline
        covers every step, from the first C(open()) to the exit of C(pg_restore).
      - A finite number above 0 and at most 86400.
    type: float
    default: 3600
  fail_on_invalid:
    description:
      - Fail the task when the backup is not valid. With V(false) the result is only reported.
    type: bool
    default: true
requirements:
  - pg_restore (PostgreSQL client) on the host that runs the module
  - isal (optional, Python) for faster decompression, zlib is used without it
notes:
  - Only the custom format (C(pg_dump -Fc)) is read, compressed by pg_dump itself or not, and
    optionally gzip'ed around it.
  - An uncompressed custom dump (C(pg_dump -Fc -Z0)) that is not gzip'ed has no checksum of its
    own. C(pg_restore) copies its table data through unchecked, so a flipped byte inside the
    data cannot be detected from the archive alone. The result's RV(integrity) says what
    protected the data, and the module warns when nothing did. Protect such dumps with gzip,
    with C(pg_dump)'s own compression (C(-Z1) to C(-Z9)), or with a checksum file written at
    backup time (O(checksum_file)).
seealso:
  - name: pg_restore
    description: The PostgreSQL tool this module drives.
    link: https://www.postgresql.org/docs/15/app-pgrestore.html
'''

EXAMPLES = r'''
- name: Verify the newest nightly backup and publish the result for Prometheus
  callcenter.ops.backup_verify:
    path: /var/backups/callcenter
    pattern: "callcenter-*.dump.gz"
    max_age: 26h
    min_size: 1M
    metrics_file: /var/lib/prometheus/node-exporter/callcenter_backup.prom

- name: Quick check of one file (table of contents only)
  callcenter.ops.backup_verify:
    path: /var/backups/callcenter/callcenter-2026-11-25.dump.gz
    mode: toc

- name: Report without failing
  callcenter.ops.backup_verify:
    path: /var/backups/callcenter
    fail_on_invalid: false
  register: backup
'''

RETURN = r'''
path:
  description: The file that was verified.
  returned: when a file was found
  type: str
  sample: /var/backups/callcenter/callcenter-2026-11-25.dump.gz
valid:
  description: Whether every check passed.
  returned: always
  type: bool
  sample: true
checks:
  description: Each check with its outcome and a sentence.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Check name (found, readable, format, gzip_header, gzip, toc, data, checksum, timeout, age, size, error).
      type: str
    ok:
      description: Whether it passed.
      type: bool
    message:
      description: What was found.
      type: str
  sample: [{"name": "gzip", "ok": false, "message": "gzip CRC mismatch: the data was altered after compression"}]
problems:
  description: The messages of the failed checks; empty when valid.
  returned: always
  type: list
  elements: str
  sample: ["truncated after 52428800 bytes: the gzip stream ends without its trailer"]
error:
  description: Why the verification could not run at all (no file, no pg_restore).
  returned: when it could not run
  type: str
  sample: no file matches *.dump.gz in /var/backups/callcenter
size:
  description: File size in bytes.
  returned: when a file was found
  type: int
  sample: 131072000
mtime:
  description: File modification time (UTC, ISO 8601).
  returned: when a file was found
  type: str
  sample: "2026-11-25T03:00:12+00:00"
mtime_epoch:
  description: File modification time (Unix time), as written to the metrics file.
  returned: when a file was found
  type: int
  sample: 1764039612
age_seconds:
  description: Seconds since the file was last modified.
  returned: when a file was found
  type: float
  sample: 3600.2
compressed:
  description: Whether the file is gzip'ed.
  returned: when a file was found
  type: bool
  sample: true
format:
  description: The archive format found (C(custom)).
  returned: when recognised
  type: str
  sample: custom
uncompressed_size:
  description: Bytes of the archive once decompressed (full mode).
  returned: when a file was found
  type: int
  sample: 876543210
decompressor:
  description:
    - The gzip implementation used, V(isal) or V(zlib) (without the optional isal library).
    - V(null) for a file that is not gzip'ed.
  returned: when a file was found
  type: str
  sample: isal
toc:
  description: What the table of contents says.
  returned: when it could be read
  type: dict
  contains:
    entries:
      description: Number of TOC entries.
      type: int
    tables:
      description: Tables in the archive (schema.name).
      type: list
      elements: str
    database:
      description: Name of the dumped database.
      type: str
    dumped_at:
      description: When pg_dump ran, as pg_restore prints it.
      type: str
    server_version:
      description: Server version the dump was taken from.
      type: str
    pg_dump_version:
      description: Version of pg_dump.
      type: str
    format:
      description: Archive format as pg_restore names it.
      type: str
    compression:
      description: pg_dump's own compression.
      type: str
    dump_version:
      description: Archive format version.
      type: str
  sample: {"entries": 42, "tables": ["public.calls"], "database": "callcenter", "dumped_at": "2026-11-25 03:00:01 UTC",
           "server_version": "15.8", "pg_dump_version": "15.8", "format": "CUSTOM", "compression": "gzip",
           "dump_version": "1.15-0"}
sha256:
  description: sha256 of the file, when a checksum file was used.
  returned: when a checksum file was used
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
integrity:
  description:
    - What protected the data blocks in this verification.
    - C(checksum_file) the whole file matched the sha256 of O(checksum_file).
    - C(gzip_crc) the gzip CRC and length were checked to the end of the stream.
    - C(pg_dump_compression) pg_dump's own compression (zlib, with its checksum) was read by C(pg_restore).
    - C(none) nothing did, as for an uncompressed C(pg_dump -Fc -Z0) file, or in O(mode=toc).
      A flipped byte inside table data would go unnoticed. A warning says so in O(mode=full).
  returned: always
  type: str
  choices: [checksum_file, gzip_crc, pg_dump_compression, none]
  sample: gzip_crc
metrics_written:
  description: Whether the metrics file was written.
  returned: always
  type: bool
  sample: true
duration:
  description:
    - Seconds the verification took, as written to the metrics file
      (C(callcenter_backup_verify_duration_seconds)). A measurement, not a promise;
      speed goals live in the collection's benchmarks.
  returned: always
  type: float
  sample: 1.52
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.callcenter.ops.plugins.module_utils import backup
from ansible_collections.callcenter.ops.plugins.module_utils.params import AGE_UNITS, SIZE_UNITS, check_timeouts, parse_quantity


class BackupVerifyModule(AnsibleModule):
    """AnsibleModule without the file attributes it adds to any result that has a C(path)
    (owner, mode, state, and a C(size) from lstat(), the size of a symlink rather than of the
    backup it points to): this module reports on a backup, it does not manage a file."""

    def add_path_info(self, kwargs):
        return kwargs


def main():
    module = BackupVerifyModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            pattern=dict(type="str", default="*.dump.gz"),
            mode=dict(type="str", choices=["full", "toc"], default="full"),
            max_age=dict(type="str"),
            min_size=dict(type="str"),
            checksum_file=dict(type="str"),
            metrics_file=dict(type="path"),
            pg_restore_path=dict(type="path"),
            pg_restore_memory_limit=dict(type="int", default=backup.DEFAULT_MEMORY_LIMIT_MB),
            timeout=dict(type="float", default=3600),
            fail_on_invalid=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        max_age = parse_quantity(p["max_age"], AGE_UNITS, "max_age") if p["max_age"] else None
        min_size = parse_quantity(p["min_size"], SIZE_UNITS, "min_size") if p["min_size"] else None
    except ValueError as e:
        module.fail_json(msg=str(e))
    check_timeouts(module, "timeout")
    if p["pg_restore_memory_limit"] < backup.MIN_MEMORY_LIMIT_MB:
        module.fail_json(msg="pg_restore_memory_limit must be at least %d (MiB; pg_restore needs about 18 to start), "
                             "got %d" % (backup.MIN_MEMORY_LIMIT_MB, p["pg_restore_memory_limit"]))

    result = backup.check_backup(p["path"], p["pattern"], p["mode"], max_age, min_size, p["checksum_file"],
                                 p["pg_restore_path"], p["pg_restore_memory_limit"], p["timeout"])
    for warning in result.pop("warnings", []):
        module.warn(warning)
    result.update(changed=False, metrics_written=False)
    if p["metrics_file"] and not module.check_mode:
        try:
            backup.write_metrics(p["metrics_file"], result, p["path"])
        except OSError as e:
            module.fail_json(msg="could not write metrics_file %s: %s" % (p["metrics_file"], e.strerror or e),
                             **result)
        result.update(changed=True, metrics_written=True)

    where = result.get("path", p["path"])
    if result["valid"]:
        result["msg"] = "backup %s is valid (%s mode, %.1fs)" % (where, p["mode"], result["duration"])
        module.exit_json(**result)
    result["msg"] = "backup %s is NOT valid: %s" % (where, "; ".join(result["problems"]))
    if p["fail_on_invalid"]:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
