# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure half of the backup reader: what a file is (sniffing its first bytes), bounded gzip
decompression, the table of contents pg_restore lists, and the verdict on what a streaming
pass observed. No processes, no file system: every function here is unit-tested on bytes and
plain values (tests/unit/plugins/module_utils/test_backup.py).

The I/O half (finding and opening files, the pg_restore children, the streaming pass) is
backup.py, which composes open_archive() -> its stream -> verdict().

STDLIB ONLY (isal optional): the backup_verify role installs this file on hosts as
ccops_backup_archive.py, beside ccops_backup.py, where no Ansible exists."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import zlib

try:
    from isal import isal_zlib as fast_zlib  # ISA-L: ~4x faster inflate than zlib
    HAS_ISAL = True
except ImportError:
    fast_zlib = None
    HAS_ISAL = False

CHUNK = 1024 * 1024
# Most bytes one decompress call may return: a gzip of zeros expands ~1000x, so a whole
# 1 MiB input chunk at once could be 1 GiB (measured: 2.1 GB RSS before this bound).
OUT_CHUNK = 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"
PGDMP_MAGIC = b"PGDMP"


def sniff(head):
    """The kind of file from its first bytes: gzip, custom (pg_dump -Fc), tar, plain-sql, or unknown."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(PGDMP_MAGIC):
        return "custom"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    text = head[:512].lstrip()
    if text.startswith(b"--") or text.upper().startswith((b"SET ", b"CREATE ", b"BEGIN", b"\\connect".upper())):
        return "plain-sql"
    return "unknown"


class Check:
    """One named check with its outcome and the sentence a person reads."""

    def __init__(self, name, ok, message):
        self.name, self.ok, self.message = name, ok, message

    def as_dict(self):
        return dict(name=self.name, ok=self.ok, message=self.message)


def default_lib():
    """The inflate library used unless one is given: isal when installed, else zlib."""
    return fast_zlib if HAS_ISAL else zlib


def lib_name(lib):
    return "isal" if fast_zlib is not None and lib is fast_zlib else "zlib"


class Inflater:
    """gzip decompression with bounded output: pieces() yields at most ``max_out`` bytes at a
    time whatever the input expands to. Members after the end of one are read on (as gzip
    does); bytes after the last member that are not gzip are kept (up to CHUNK) in ``extra``."""

    def __init__(self, lib=None):
        self.lib = lib or default_lib()
        self.obj = self._new()
        self.extra = b""

    def _new(self):
        return self.lib.decompressobj(16 + zlib.MAX_WBITS)

    @property
    def eof(self):
        return self.obj.eof

    def pieces(self, data, max_out=OUT_CHUNK):
        """Decompress ``data``; yields output pieces of at most ``max_out`` bytes. Raises the
        library's error on corrupt data."""
        while True:
            if self.obj.eof:
                if not data:
                    return
                if self.extra or not data.startswith(GZIP_MAGIC[:min(len(data), 2)]):
                    self.extra = (self.extra + data)[:CHUNK]
                    return
                self.obj = self._new()
            out = self.obj.decompress(data, max_out)
            data = self.obj.unused_data if self.obj.eof else self.obj.unconsumed_tail
            if out:
                yield out
            # a full piece may leave output pending inside the decompressor: ask again
            if not data and len(out) < max_out and not self.obj.eof:
                return

    def end_problem(self, bytes_in):
        """After the whole file went in: None when the stream ended with its trailer and only
        zero padding follows, else the sentence saying what is wrong."""
        if not self.eof:
            return "truncated after %d bytes: the gzip stream ends without its trailer" % bytes_in
        if self.extra.strip(b"\x00"):
            return "%d bytes of trailing garbage after the gzip stream" % len(self.extra)
        return None


class Refused(Exception):
    """The file is not something pg_restore can verify; ``checks`` says so (the last one failed)."""

    def __init__(self, checks):
        Exception.__init__(self, checks[-1].message)
        self.checks = checks


class Archive:
    """What open_archive() found at the head of a file. ``first`` is the first piece of the
    archive's bytes (decompressed when gzip'ed), ``rest`` an iterator over the other pieces the
    head decompressed to (it raises the library's error on corrupt data)."""

    def __init__(self, head, inflater, first, rest, checks):
        self.head, self.inflater, self.first, self.rest, self.checks = head, inflater, first, rest, checks

    @property
    def compressed(self):
        return self.inflater is not None

    @property
    def decompressor(self):
        return lib_name(self.inflater.lib) if self.inflater else None


def open_archive(head, path, lib=None, out_chunk=OUT_CHUNK):
    """Decide from ``head`` (the file's first bytes) whether it is a custom-format archive,
    gzip'ed or not. Returns an Archive; raises Refused with a sentence naming what the file is
    instead (plain SQL, tar, gzip'ed twice, empty, ...) and how to make one that can be verified."""
    if not head:
        raise Refused([Check("format", False, "%s is empty (0 bytes)" % path)])
    kind = sniff(head)
    checks = []
    inflater = None
    first, rest = head, iter(())
    if kind == "gzip":
        inflater = Inflater(lib)
        rest = inflater.pieces(head, out_chunk)
        try:
            first = next(rest, b"")
        except Exception as e:
            raise Refused([Check("gzip", False, gzip_message(e, len(head)))])
        if not first:
            if inflater.eof:
                raise Refused([Check("gzip", False, "%s holds an empty gzip stream (0 bytes once decompressed)" % path)])
            raise Refused([Check("gzip", False, "truncated after %d bytes: the gzip stream ends before any data"
                                 % len(head))])
        checks.append(Check("gzip_header", True, "gzip stream"))
        inner = sniff(first)
    else:
        inner = kind
    if inner != "custom":
        inside = " inside gzip" if kind == "gzip" else ""
        if inner == "plain-sql":
            message = ("%s is a plain-SQL dump%s, not a pg_dump custom-format archive: pg_restore cannot read it "
                       "(make backups with pg_dump -Fc)" % (path, inside))
        elif inner == "tar":
            message = "%s is a tar-format dump (pg_dump -Ft); only custom format (-Fc) is supported" % path
        elif inner == "gzip":
            message = "%s is gzip'ed twice" % path
        else:
            message = "%s is not a pg_dump archive (no PGDMP signature%s)" % (
                path, " inside the gzip stream" if kind == "gzip" else "")
        raise Refused(checks + [Check("format", False, message)])
    checks.append(Check("format", True, "pg_dump custom-format archive"))
    return Archive(head, inflater, first, rest, checks)


def parse_toc(listing):
    """Facts from ``pg_restore --list`` output: entry count, tables, database, versions."""
    info = dict(entries=None, tables=[], database=None, dumped_at=None, server_version=None,
                pg_dump_version=None, format=None, compression=None, dump_version=None)
    header = {
        "dbname": "database", "toc entries": "entries", "format": "format", "compression": "compression",
        "dump version": "dump_version", "dumped from database version": "server_version",
        "dumped by pg_dump version": "pg_dump_version",
    }
    for line in listing.splitlines():
        if line.startswith(";"):
            m = re.match(r";\s+Archive created at\s+(.*)$", line)
            if m:
                info["dumped_at"] = m.group(1).strip()
                continue
            m = re.match(r";\s+([A-Za-z_ ]+?):\s*(.*)$", line)
            if m and m.group(1).lower() in header:
                key = header[m.group(1).lower()]
                value = m.group(2).strip()
                info[key] = int(value) if key == "entries" and value.isdigit() else value
            continue
        m = re.match(r"\d+;\s+\d+\s+\d+\s+TABLE\s+(?!DATA\s)(\S+)\s+(\S+)\s", line + " ")  # not TABLE DATA
        if m:
            info["tables"].append("%s.%s" % (m.group(1), m.group(2)))
    return info


def first_line(text):
    for line in (text or "").splitlines():
        line = line.strip()
        if line:
            return line
    return ""


def pg_restore_problem(stderr, rc, memory_limit):
    """pg_restore's own first error line, with the fix when the memory limit caused it."""
    stderr = stderr or ""
    line = first_line(stderr) or "exit status %s" % rc
    mb = (memory_limit or 0) // 1048576
    if "error while loading shared libraries" in stderr or "failed to map segment" in stderr:
        return ("%s (pg_restore cannot even start within the memory limit of %d MiB: raise "
                "pg_restore_memory_limit)" % (line, mb))
    if "out of memory" in stderr:
        return ("%s (pg_restore was limited to %d MiB: a corrupt length field, or a row larger than the limit "
                "allows; raise pg_restore_memory_limit if the dump holds rows that large)" % (line, mb))
    return line


def gzip_message(exc, offset):
    """A sentence for the inflate library's error ``exc`` raised ``offset`` bytes into the file."""
    text = str(exc)
    low = text.lower()
    if "incorrect data check" in low or "checksum" in low or "crc" in low:
        return "gzip CRC mismatch: the data was altered after compression"
    if "length" in low:
        return "gzip length check failed: the data was altered after compression"
    if "header" in low or "magic" in low:
        return "gzip header is corrupt (%s)" % text
    return "gzip data is corrupt within the first %d bytes (%s)" % (offset, text)


def integrity_of(result, mode, expected_sha256, gzip_checked):
    """What protected the data blocks in this verification: checksum_file, gzip_crc,
    pg_dump_compression or none (an uncompressed -Fc -Z0 dump has no checksum of its own)."""
    if expected_sha256 and result.get("sha256"):
        return "checksum_file"
    if result.get("compressed") and (gzip_checked or mode == "full"):
        # In full mode gzip's CRC covers every byte, whether the run got to the trailer (valid) or
        # the stream broke before it (the gzip check says so): never "nothing protected it".
        return "gzip_crc"
    compression = str((result.get("toc") or {}).get("compression") or "0").strip().lower()
    if mode == "full" and result.get("data_read") and compression not in ("0", "none", ""):
        return "pg_dump_compression"
    return "none"


class Outcome:
    """What one streaming pass over an archive observed; verdict() turns it into checks.

    ``stop`` says why reading ended before the end of the file: None (it did not), ``toc``
    (toc mode, the table of contents was read), ``pg_restore`` (the full reader failed) or
    ``timeout``. ``toc_rc``/``data_rc`` are the exit statuses of ``pg_restore --list`` and
    ``pg_restore -f /dev/null`` (None: killed, or not run)."""

    def __init__(self, path, mode="full", compressed=False, decompressor=None, timeout=3600, memory_limit=None):
        self.path, self.mode, self.compressed, self.decompressor = path, mode, compressed, decompressor
        self.timeout, self.memory_limit = timeout, memory_limit
        self.bytes_in = self.bytes_out = 0
        self.stop = None
        self.read_to_end = False
        self.gzip_problem = None
        self.gzip_checked = False
        self.toc_rc = self.data_rc = None
        self.toc_listing = self.toc_err = self.data_err = ""
        self.sha256 = None


def verdict(outcome, checks=(), expected_sha256=None):
    """The result of a verification from what streaming observed (``outcome``) and the checks
    that passed while opening (``checks``). Returns the dict verify() returns: ``valid``,
    ``checks`` (dicts), ``toc``, ``format``, ``compressed``, ``uncompressed_size``, ``sha256``,
    ``decompressor``, ``integrity`` and ``warnings``."""
    o = outcome
    checks = list(checks)
    full = o.mode == "full"
    result = dict(toc=None, format="custom", compressed=o.compressed, sha256=None, decompressor=o.decompressor,
                  warnings=[], uncompressed_size=o.bytes_out if o.read_to_end and (full or not o.compressed) else None)
    if o.stop == "timeout":
        checks.append(Check("timeout", False, "verification of %s was stopped by its timeout of %ss (after %d bytes): "
                                              "raise timeout for backups this large, or look for a hung disk or "
                                              "pg_restore" % (o.path, o.timeout, o.bytes_in)))
    if o.compressed:
        if o.gzip_problem:
            checks.append(Check("gzip", False, o.gzip_problem))
        elif o.gzip_checked and full:
            checks.append(Check("gzip", True, "gzip CRC and length match (%d bytes uncompressed)" % o.bytes_out))
    checks.append(_toc_check(o, result))
    data_read = False
    if full:
        data_read = o.data_rc == 0 and not (o.data_err or "").strip() and not o.stop and not o.gzip_problem
        checks.append(_data_check(o, data_read))
    if expected_sha256:
        if o.stop in (None, "toc") and o.sha256:
            result["sha256"] = o.sha256
            if o.sha256.lower() == expected_sha256.lower():
                checks.append(Check("checksum", True, "sha256 matches the checksum file"))
            else:
                checks.append(Check("checksum", False, "sha256 mismatch: file has %s, checksum file says %s"
                                    % (o.sha256, expected_sha256)))
        else:
            checks.append(Check("checksum", False, "sha256 not computed: the file was not read to the end"))
    result["integrity"] = integrity_of(dict(result, data_read=data_read), o.mode, expected_sha256, o.gzip_checked)
    if full and result["integrity"] == "none" and result["toc"] and not o.compressed:
        result["warnings"].append(
            "%s is an uncompressed custom-format dump (pg_dump -Fc -Z0) without gzip or a checksum file: nothing "
            "protects its data blocks, so a flipped byte inside table data cannot be detected. gzip it, let "
            "pg_dump compress it (-Z1..9) or write a sha256 file at backup time (checksum_file=auto)" % o.path)
    result["checks"] = [c.as_dict() for c in checks]
    result["valid"] = all(c.ok for c in checks)
    return result


def _toc_check(o, result):
    if o.toc_rc == 0 and o.toc_listing:
        toc = parse_toc(o.toc_listing)
        result["toc"] = toc
        if toc["entries"] == 0:  # pg_dump always writes ENCODING, STDSTRINGS, SEARCHPATH entries
            return Check("toc", False, "the table of contents lists no entries at all: not an archive pg_dump "
                                       "made, or its header is corrupt")
        return Check("toc", True, "table of contents readable: %s entries, %d tables, database %s"
                     % (toc["entries"], len(toc["tables"]), toc["database"]))
    if o.toc_rc is None or o.stop == "timeout":
        return Check("toc", False, "pg_restore --list did not finish before the timeout")
    return Check("toc", False, "pg_restore --list could not read the table of contents: %s"
                 % pg_restore_problem(o.toc_err, o.toc_rc, o.memory_limit))


def _data_check(o, data_read):
    if o.stop == "timeout":
        return Check("data", False, "data not fully checked: stopped by the timeout")
    if o.gzip_problem:
        return Check("data", False, "data not checked: the gzip stream is broken")
    if data_read:
        return Check("data", True, "pg_restore read every data block (%d bytes)" % o.bytes_out)
    err = o.data_err or ""
    msg = "pg_restore could not read the archive: %s" % pg_restore_problem(err, o.data_rc, o.memory_limit)
    if o.stop == "pg_restore":
        msg += " (it stopped after %d bytes of the file; the rest was not read)" % o.bytes_in
    elif not o.compressed and ("unexpected end of file" in err or "could not read" in err):
        msg = "truncated or corrupt after %d bytes: %s" % (o.bytes_in, first_line(err))
    return Check("data", False, msg)
