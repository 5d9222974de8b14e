# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one backup reader of the collection: verifies a PostgreSQL custom-format dump
(``pg_dump -Fc``), gzip'ed or not, in one streaming pass.

Why a full read: ``pg_restore --list`` reads only the table of contents at the head of the
archive, so a dump truncated at half or with a flipped byte in the middle passes it. Here the
file is read once, in chunks: the gzip stream is decompressed and its CRC and length checked,
and the same bytes are fed through pipes to ``pg_restore --list`` (table of contents) and, in
full mode, to ``pg_restore -f /dev/null`` (every data block). Nothing is written to disk and
memory stays bounded by the chunk size whatever the dump size."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import errno
import fnmatch
import glob
import hashlib
import os
import re
import shutil
import subprocess
import threading
import time
import zlib

try:
    from isal import isal_zlib as fast_zlib  # ISA-L: ~4x faster inflate than zlib
    HAS_ISAL = True
except ImportError:
    fast_zlib = None
    HAS_ISAL = False

CHUNK = 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"
PGDMP_MAGIC = b"PGDMP"
DEFAULT_PG_RESTORE_MEMORY = 512 * 1024 * 1024


class BackupError(Exception):
    """The backup could not be checked at all (missing file, no pg_restore, ...)."""


def find_backup(path, pattern="*.dump.gz"):
    """The file to verify: ``path`` itself, or the newest file in directory ``path`` whose name
    matches ``pattern``. Raises BackupError naming what is wrong."""
    try:
        os.stat(path)
    except FileNotFoundError:
        raise BackupError("%s does not exist" % path)
    except PermissionError:
        raise BackupError("%s: permission denied" % path)
    if not os.path.isdir(path):
        return path
    try:
        names = os.listdir(path)
    except PermissionError:
        raise BackupError("directory %s: permission denied (cannot list it)" % path)
    best = None
    for name in names:
        if not fnmatch.fnmatch(name, pattern):
            continue
        full = os.path.join(path, name)
        try:
            fst = os.stat(full)
        except OSError:
            continue
        if not os.path.isfile(full):
            continue
        if best is None or (fst.st_mtime, name) > best[0]:
            best = ((fst.st_mtime, name), full)
    if best is None:
        raise BackupError("no file matches %s in %s" % (pattern, path))
    return best[1]


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
    def __init__(self, name, ok, message):
        self.name, self.ok, self.message = name, ok, message

    def as_dict(self):
        return dict(name=self.name, ok=self.ok, message=self.message)


def _grow_pipe(stream, size=CHUNK):
    """Let the pipe hold a whole chunk (Linux F_SETPIPE_SZ): fewer context switches between
    the decompressor and pg_restore. Best effort; the default 64 KiB works too."""
    try:
        import fcntl
        fcntl.fcntl(stream.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except (ImportError, OSError, ValueError):
        pass


class _Sink:
    """A child process fed through its stdin, with stdout/stderr collected by threads so the
    pipes never fill up and block."""

    def __init__(self, argv, memory_limit=None, capture_stdout=False):
        def limit():
            if memory_limit:
                import resource
                resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE if capture_stdout else subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, preexec_fn=limit, close_fds=True)
        _grow_pipe(self.proc.stdin)
        self.stdout = []
        self.stderr = []
        self.closed = False
        self.threads = []
        if capture_stdout:
            self.threads.append(self._drain(self.proc.stdout, self.stdout))
        self.threads.append(self._drain(self.proc.stderr, self.stderr))

    @staticmethod
    def _drain(stream, into):
        def run():
            for chunk in iter(lambda: stream.read(65536), b""):
                into.append(chunk)
        t = threading.Thread(target=run)
        t.daemon = True
        t.start()
        return t

    def feed(self, data):
        """Write; returns False once the child has stopped reading (it exited or closed stdin)."""
        if self.closed:
            return False
        try:
            self.proc.stdin.write(data)
            return True
        except (BrokenPipeError, OSError) as e:
            if isinstance(e, BrokenPipeError) or e.errno in (errno.EPIPE, errno.EINVAL):
                self.closed = True
                return False
            raise

    def finish(self, timeout):
        if not self.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            self.closed = True
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        for t in self.threads:
            t.join(5)
        return rc, b"".join(self.stdout).decode("utf-8", "replace"), b"".join(self.stderr).decode("utf-8", "replace")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        try:
            self.proc.stdin.close()
        except OSError:
            pass


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
        m = re.match(r"\d+;\s+\d+\s+\d+\s+TABLE\s+(\S+)\s+(\S+)\s", line + " ")
        if m:
            info["tables"].append("%s.%s" % (m.group(1), m.group(2)))
    return info


def _first_line(text):
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line
    return ""


def verify(path, mode="full", pg_restore="pg_restore", memory_limit=DEFAULT_PG_RESTORE_MEMORY,
           expected_sha256=None, timeout=3600, chunk_size=CHUNK):
    """Verify one backup file. Returns a dict: ``valid``, ``checks`` (name, ok, message),
    ``toc``, ``format``, ``compressed``, ``bytes_read``, ``uncompressed_size``, ``sha256``.

    Raises BackupError only when the check itself cannot run (pg_restore missing)."""
    checks = []
    result = dict(valid=False, checks=checks, toc=None, format=None, compressed=None,
                  uncompressed_size=None, sha256=None, decompressor=None)

    def fail(name, message):
        checks.append(Check(name, False, message))
        result["checks"] = [c.as_dict() for c in checks]
        return result

    try:
        fh = open(path, "rb")
    except PermissionError:
        return fail("readable", "%s: permission denied" % path)
    except IsADirectoryError:
        return fail("readable", "%s is a directory" % path)
    except FileNotFoundError:
        return fail("readable", "%s does not exist" % path)
    with fh:
        head = fh.read(chunk_size)
        if not head:
            return fail("format", "%s is empty (0 bytes)" % path)
        kind = sniff(head)
        result["compressed"] = kind == "gzip"
        inflater = None
        first = head
        head_extra = b""
        if kind == "gzip":
            lib = fast_zlib if HAS_ISAL else zlib
            result["decompressor"] = "isal" if HAS_ISAL else "zlib"
            inflater = lib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                first, inflater, head_extra = _inflate(inflater, head)
            except Exception as e:
                return fail("gzip", _gzip_message(e, len(head)))
            if not first:
                if inflater.eof:
                    return fail("gzip", "%s holds an empty gzip stream (0 bytes once decompressed)" % path)
                return fail("gzip", "truncated after %d bytes: the gzip stream ends before any data" % len(head))
            inner = sniff(first)
            checks.append(Check("gzip_header", True, "gzip stream"))
        else:
            inner = kind
        if inner is not None and inner != "custom":
            if inner == "plain-sql":
                return fail("format", "%s is a plain-SQL dump%s, not a pg_dump custom-format archive: pg_restore "
                                      "cannot read it (make backups with pg_dump -Fc)" %
                            (path, " inside gzip" if kind == "gzip" else ""))
            if inner == "tar":
                return fail("format", "%s is a tar-format dump (pg_dump -Ft); only custom format (-Fc) is supported"
                            % path)
            if inner == "gzip":
                return fail("format", "%s is gzip'ed twice" % path)
            return fail("format", "%s is not a pg_dump archive (no PGDMP signature%s)" %
                        (path, " inside the gzip stream" if kind == "gzip" else ""))
        if inner == "custom":
            checks.append(Check("format", True, "pg_dump custom-format archive"))
        result["format"] = "custom"

        if not (os.path.sep in pg_restore and os.access(pg_restore, os.X_OK)) and not shutil.which(pg_restore):
            raise BackupError("pg_restore not found (%s): install the PostgreSQL client (postgresql-client-15) "
                              "or set pg_restore_path" % pg_restore)
        try:
            lister = _Sink([pg_restore, "--list"], memory_limit, capture_stdout=True)
            full = _Sink([pg_restore, "-f", os.devnull], memory_limit) if mode == "full" else None
        except OSError as e:
            raise BackupError("pg_restore (%s) could not be started: %s" % (pg_restore, e.strerror or e))
        sinks = [s for s in (lister, full) if s]
        digest = hashlib.sha256() if expected_sha256 else None
        total_in = 0
        total_out = 0
        deadline = time.monotonic() + timeout
        gzip_problem = None
        trailing = head_extra
        chunk = head
        out = first
        while True:
            total_in += len(chunk)
            if digest:
                digest.update(chunk)
            if out:
                total_out += len(out)
                alive = [s.feed(out) for s in sinks]
                if mode == "toc" and not alive[0]:
                    break  # the TOC has been read; toc mode stops here
            if time.monotonic() > deadline:
                gzip_problem = "verification took longer than %ss and was stopped" % timeout
                break
            chunk = fh.read(chunk_size)
            if not chunk:
                break
            if inflater is not None:
                try:
                    out, inflater, extra = _inflate(inflater, chunk)
                except Exception as e:
                    gzip_problem = _gzip_message(e, total_in)
                    break
                if extra:
                    trailing = (trailing + extra)[:CHUNK]
            else:
                out = chunk
        if inflater is not None and gzip_problem is None and (mode == "full" or total_in >= os.path.getsize(path)):
            if not inflater.eof:
                gzip_problem = "truncated after %d bytes: the gzip stream ends without its trailer" % total_in
            elif trailing.strip(b"\x00"):
                gzip_problem = "%d bytes of trailing garbage after the gzip stream" % len(trailing)
        if digest:
            while mode == "toc":
                more = fh.read(chunk_size)
                if not more:
                    break
                digest.update(more)
    rc_list, listing, err_list = lister.finish(timeout=60)
    if full:
        if gzip_problem:
            full.kill()
            rc_full, err_full = None, ""
        else:
            rc_full, _out, err_full = full.finish(timeout=max(1, deadline - time.monotonic()))

    result["uncompressed_size"] = total_out if (mode == "full" or not result["compressed"]) else None
    if result["compressed"]:
        if gzip_problem:
            checks.append(Check("gzip", False, gzip_problem))
        elif mode == "full":
            checks.append(Check("gzip", True, "gzip CRC and length match (%d bytes uncompressed)" % total_out))
    if rc_list == 0 and listing:
        toc = parse_toc(listing)
        result["toc"] = toc
        checks.append(Check("toc", True, "table of contents readable: %s entries, %d tables, database %s"
                            % (toc["entries"], len(toc["tables"]), toc["database"])))
    else:
        checks.append(Check("toc", False, "pg_restore --list could not read the table of contents: %s"
                            % (_first_line(err_list) or "exit status %s" % rc_list)))
    if full:
        if gzip_problem:
            checks.append(Check("data", False, "data not checked: the gzip stream is broken"))
        elif rc_full == 0 and not err_full.strip():
            checks.append(Check("data", True, "pg_restore read every data block (%d bytes)" % total_out))
        else:
            line = _first_line(err_full) or "exit status %s" % rc_full
            msg = "pg_restore could not read the archive: %s" % line
            if "out of memory" in err_full:
                msg += " (a corrupt length field; pg_restore was limited to %d MB)" % (memory_limit // 1048576)
            if not result["compressed"] and ("unexpected end of file" in err_full or "could not read" in err_full):
                msg = "truncated or corrupt after %d bytes: %s" % (total_in, line)
            checks.append(Check("data", False, msg))
    if expected_sha256:
        got = digest.hexdigest()
        result["sha256"] = got
        if got.lower() == expected_sha256.lower():
            checks.append(Check("checksum", True, "sha256 matches the checksum file"))
        else:
            checks.append(Check("checksum", False, "sha256 mismatch: file has %s, checksum file says %s"
                                % (got, expected_sha256)))
    result["checks"] = [c.as_dict() for c in checks]
    result["valid"] = all(c.ok for c in checks)
    return result


def _inflate(inflater, data):
    """Decompress ``data``; a new gzip member after the end of one is read on (as gzip does).
    Returns (output, inflater now in use, bytes that are not gzip after the end)."""
    out = []
    while data:
        if inflater.eof:
            if not data.startswith(GZIP_MAGIC[:len(data)]) or (len(data) >= 2 and not data.startswith(GZIP_MAGIC)):
                return b"".join(out), inflater, data
            inflater = (fast_zlib if HAS_ISAL else zlib).decompressobj(16 + zlib.MAX_WBITS)
        out.append(inflater.decompress(data))
        data = inflater.unused_data if inflater.eof else b""
    return b"".join(out), inflater, b""


def _gzip_message(exc, offset):
    text = str(exc)
    low = text.lower()
    if "incorrect data check" in low or "checksum" in low or "crc" in low:
        return "gzip CRC mismatch: the data was altered after compression"
    if "length" in low:
        return "gzip length check failed: the data was altered after compression"
    if "header" in low or "magic" in low:
        return "gzip header is corrupt (%s)" % text
    return "gzip data is corrupt within the first %d bytes (%s)" % (offset, text)


def read_checksum_file(path, backup_path):
    """The sha256 for ``backup_path`` from a ``sha256sum``-style sidecar file."""
    try:
        with open(path) as fh:
            content = fh.read(1 << 20)
    except FileNotFoundError:
        raise BackupError("checksum file %s does not exist" % path)
    except PermissionError:
        raise BackupError("checksum file %s: permission denied" % path)
    name = os.path.basename(backup_path)
    lines = [line.split() for line in content.splitlines() if line.strip()]
    for parts in lines:
        if len(parts) >= 2 and os.path.basename(parts[-1].lstrip("*")) == name:
            return parts[0]
    if len(lines) == 1 and re.match(r"^[0-9a-fA-F]{64}$", lines[0][0]):
        return lines[0][0]
    raise BackupError("checksum file %s has no sha256 for %s" % (path, name))


def metrics_text(result, prefix="callcenter_backup"):
    """Prometheus textfile-collector exposition of a verification result."""
    labels = '{path="%s"}' % result["path"].replace("\\", "\\\\").replace('"', '\\"')
    rows = [
        ("verify_success", "gauge", "1 if the last verification of the newest backup passed, else 0",
         1 if result.get("valid") else 0),
        ("verify_last_run_timestamp_seconds", "gauge", "Unix time of the last verification", result["verified_at"]),
        ("verify_duration_seconds", "gauge", "Seconds the last verification took", result.get("duration", 0)),
        ("age_seconds", "gauge", "Age of the newest backup file when it was verified", result.get("age_seconds")),
        ("size_bytes", "gauge", "Size of the newest backup file", result.get("size")),
        ("mtime_seconds", "gauge", "Modification time of the newest backup file (Unix time)", result.get("mtime_epoch")),
    ]
    lines = []
    for name, kind, help_text, value in rows:
        if value is None:
            continue
        lines.append("# HELP %s_%s %s" % (prefix, name, help_text))
        lines.append("# TYPE %s_%s %s" % (prefix, name, kind))
        lines.append("%s_%s%s %s" % (prefix, name, labels, _num(value)))
    return "\n".join(lines) + "\n"


def _num(v):
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return repr(round(v, 3))
    return str(v)


def read_metrics(path):
    """The last verification recorded by metrics_text() in ``path``:
    ``(success, last_run_epoch)``, each None when absent. Raises OSError."""
    success = last = None
    with open(path) as fh:
        for line in fh:
            m = re.match(r"^callcenter_backup_(verify_success|verify_last_run_timestamp_seconds)\{[^}]*\}\s+(\S+)", line)
            if m:
                value = float(m.group(2))
                if m.group(1) == "verify_success":
                    success = value == 1
                else:
                    last = value
    return success, last


def write_atomically(path, text, mode=0o644):
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename,
    so a collector never reads half a file."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    tmp = os.path.join(directory, ".%s.%d.tmp" % (os.path.basename(path), os.getpid()))
    try:
        with open(tmp, "w") as fh:
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


def file_facts(path, now=None):
    st = os.stat(path)
    now = now or time.time()
    return dict(size=st.st_size, mtime_epoch=int(st.st_mtime),
                mtime=datetime.datetime.fromtimestamp(st.st_mtime, datetime.timezone.utc).isoformat(),
                age_seconds=round(now - st.st_mtime, 3))


AGE_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}


def parse_quantity(value, units, what):
    """``"26h"`` -> 93600.0 with AGE_UNITS, ``"50M"`` -> bytes with SIZE_UNITS."""
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]?)[bB]?\s*$", str(value))
    if not m or m.group(2).lower() not in units:
        raise ValueError("%s must be a number with an optional unit (%s), got %r"
                         % (what, "/".join(u for u in units if u), value))
    return float(m.group(1)) * units[m.group(2).lower()]


def find_pg_restore(given=None):
    """``given``, else pg_restore on PATH, else the newest /usr/lib/postgresql/*/bin/pg_restore."""
    if given:
        if not os.access(given, os.X_OK) or os.path.isdir(given):
            raise BackupError("pg_restore_path %s does not exist or is not executable" % given)
        return given
    found = shutil.which("pg_restore")
    if found:
        return found
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_restore"),
                      key=lambda p: [int(x) for x in re.findall(r"\d+", p)])
    if versions:
        return versions[-1]
    raise BackupError("pg_restore not found on PATH or under /usr/lib/postgresql: install the PostgreSQL "
                      "client (Debian: postgresql-client-15) or set pg_restore_path")


def check_backup(path, pattern="*.dump.gz", mode="full", max_age=None, min_size=None, checksum_file=None,
                 pg_restore_path=None, memory_limit_mb=1024, timeout=3600):
    """Everything the module and the host-side script report: find the file, verify it, apply
    max_age (seconds) and min_size (bytes). Never raises for a bad backup; ``valid`` says it."""
    started = time.monotonic()
    result = dict(valid=False, checks=[])
    facts = {}
    try:
        found = find_backup(path, pattern)
        result["path"] = found
        facts = file_facts(found)
        result.update(size=facts["size"], mtime=facts["mtime"], age_seconds=facts["age_seconds"])
        expected = None
        if checksum_file:
            sidecar = found + ".sha256" if checksum_file == "auto" else checksum_file
            if checksum_file != "auto" or os.path.exists(sidecar):
                expected = read_checksum_file(sidecar, found)
        pg_restore = find_pg_restore(pg_restore_path)
        result.update(verify(found, mode=mode, pg_restore=pg_restore, memory_limit=memory_limit_mb * 1024 * 1024,
                             expected_sha256=expected, timeout=timeout))
    except BackupError as e:
        result["checks"].append(dict(name="found", ok=False, message=str(e)))
        result["error"] = str(e)
    checks = result["checks"]
    if facts:
        if max_age is not None:
            ok = facts["age_seconds"] <= max_age
            checks.append(dict(name="age", ok=ok, message="%s is %ds old (max_age %ds)" % (
                "backup" if ok else "older than max_age: backup", facts["age_seconds"], max_age)))
        if min_size is not None:
            ok = facts["size"] >= min_size
            checks.append(dict(name="size", ok=ok, message="%d bytes (min_size %d)%s" % (
                facts["size"], min_size, "" if ok else ": smaller than min_size")))
    result["valid"] = bool(checks) and all(c["ok"] for c in checks)
    result["problems"] = [c["message"] for c in checks if not c["ok"]]
    result["duration"] = round(time.monotonic() - started, 3)
    result["mtime_epoch"] = facts.get("mtime_epoch")
    return result


def write_metrics(metrics_file, result, requested_path):
    """Write the Prometheus textfile for ``result`` atomically."""
    metrics = dict(result, path=result.get("path", requested_path), verified_at=int(time.time()))
    write_atomically(metrics_file, metrics_text(metrics))
