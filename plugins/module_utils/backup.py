# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one backup reader of the collection: verifies a PostgreSQL custom-format dump
(``pg_dump -Fc``), gzip'ed or not, in one streaming pass.

Why a full read: ``pg_restore --list`` reads only the table of contents at the head of the
archive, so a dump truncated at half or with a flipped byte in the middle passes it. Here the
file is read once, in chunks: the gzip stream is decompressed and its CRC and length checked,
and the same bytes are fed through pipes to ``pg_restore --list`` (table of contents) and, in
full mode, to ``pg_restore -f /dev/null`` (every data block). Nothing is written to disk.

Fail closed, never hang, never harm the host: only regular files are opened (a FIFO would
block ``open()`` forever, a tape device may rewind); every OSError becomes a failed check with
a sentence; one deadline covers every step from the first ``open()`` to pg_restore's exit;
decompression yields at most OUT_CHUNK bytes at a time (a gzip bomb cannot fill memory) and
each pg_restore runs under an address-space limit (a corrupt length field cannot either).

STDLIB ONLY (isal optional): the backup_verify role installs this file on hosts as
ccops_backup.py, beside ccops_textfile.py and ccops_params.py, where no Ansible exists."""

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
import stat
import subprocess
import threading
import time
import zlib

try:
    from ansible_collections.callcenter.ops.plugins.module_utils import textfile
except ImportError:  # installed on a host by the backup_verify role, without Ansible
    import ccops_textfile as textfile
try:
    from ansible_collections.callcenter.ops.plugins.module_utils import params
except ImportError:
    import ccops_params as params

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
# Address space of each pg_restore child (RLIMIT_AS), MiB. pg_restore 15 needs 17.6 MiB on a
# normal dump (VmPeak; RSS 9.7 MB). 28 leaves ~10 MiB for its largest block (a -Fc -Z0 dump
# holds each row in one block) and keeps both children plus the verifier under 64 MB RSS
# even for a crafted dump (measured: 32 MiB let a corrupt TOC reach 62 MB, 64 MiB 77 MB).
DEFAULT_MEMORY_LIMIT_MB = 28
MIN_MEMORY_LIMIT_MB = 24  # below this pg_restore cannot even map its libraries
DEFAULT_PG_RESTORE_MEMORY = DEFAULT_MEMORY_LIMIT_MB * 1024 * 1024


class BackupError(Exception):
    """The backup could not be checked at all (missing file, no pg_restore, ...)."""


_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a directory"),
)

_ERRNO_SENTENCES = {
    errno.ENOENT: "%s does not exist",
    errno.EACCES: "%s: permission denied (run the verification as a user that can read the backups)",
    errno.EPERM: "%s: operation not permitted (run the verification as a user that can read the backups)",
    errno.ELOOP: "%s: too many levels of symbolic links (a symlink loop?): fix the link or give the backup's "
                 "real path",
    errno.ENAMETOOLONG: "%s: file name too long: check the path",
    errno.ENOTDIR: "%s: a component of the path is not a directory: check the path",
    errno.EIO: "%s: input/output error while reading it: the disk or network file system failed (see dmesg); "
               "the backup cannot be trusted until it reads back",
    errno.ENXIO: "%s: no such device or address: it is not a file that can be read",
}


def short_path(path, limit=200):
    """``path`` for a message: very long ones (ENAMETOOLONG) are cut in the middle."""
    path = str(path)
    return path if len(path) <= limit else "%s...%s" % (path[:limit - 60], path[-50:])


def os_error_message(path, exc):
    """One sentence naming ``path``, what went wrong and the fix, for any OSError."""
    where = short_path(path)
    sentence = _ERRNO_SENTENCES.get(getattr(exc, "errno", None))
    if sentence:
        return sentence % where
    code = errno.errorcode.get(getattr(exc, "errno", None) or 0, "")
    return "%s: cannot be read: %s%s" % (where, getattr(exc, "strerror", None) or exc, " (%s)" % code if code else "")


def file_kind(mode):
    """"a FIFO", "a socket", ... for a stat mode that is not a regular file; None for one."""
    if stat.S_ISREG(mode):
        return None
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a file"


def not_regular_message(path, kind):
    return ("%s is %s, not a regular file: it was not opened (only backup files are verified; point path at "
            "the dump file or its directory)" % (short_path(path), kind))


def open_regular(path):
    """Open ``path`` for binary reading if, and only if, it is a regular file (symlinks followed).
    FIFOs, sockets and devices are refused from their stat(), never opened: a FIFO blocks
    ``open()`` until a writer comes, a device may act on being opened. O_NONBLOCK and a
    fstat() of what was opened close the window in which the name could be swapped.
    Raises BackupError with a sentence for every refusal and every OSError."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise BackupError(os_error_message(path, e))
    kind = file_kind(st.st_mode)
    if kind:
        raise BackupError(not_regular_message(path, kind))
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise BackupError(os_error_message(path, e))
    try:
        kind = file_kind(os.fstat(fd).st_mode)
        if kind:
            raise BackupError(not_regular_message(path, kind) + " (it was replaced while being opened)")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def find_backup(path, pattern="*.dump.gz", skipped=None):
    """The file to verify: ``path`` itself, or the newest regular file in directory ``path``
    whose name matches ``pattern``. Matching entries that are not regular files (a FIFO, a
    socket) are skipped without being opened and, when ``skipped`` is a list, named in it.
    Raises BackupError naming what is wrong."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise BackupError(os_error_message(path, e))
    if not stat.S_ISDIR(st.st_mode):
        kind = file_kind(st.st_mode)
        if kind:
            raise BackupError(not_regular_message(path, kind))
        return path
    try:
        names = os.listdir(path)
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EPERM):
            raise BackupError("directory %s: permission denied (cannot list it)" % short_path(path))
        raise BackupError("directory %s cannot be listed: %s" % (short_path(path), os_error_message(path, e)))
    best = None
    passed = []
    for name in names:
        if not fnmatch.fnmatch(name, pattern):
            continue
        full = os.path.join(path, name)
        try:
            fst = os.stat(full)
        except OSError as e:
            passed.append(os_error_message(full, e))
            continue
        kind = file_kind(fst.st_mode)
        if kind:
            passed.append("%s is %s, not a regular file" % (short_path(full), kind))
            continue
        if best is None or (fst.st_mtime, name) > best[0]:
            best = ((fst.st_mtime, name), full)
    if skipped is not None:
        skipped.extend(sorted(passed))
    if best is None:
        raise BackupError("no file matches %s in %s%s" % (
            pattern, short_path(path), " (skipped: %s)" % "; ".join(sorted(passed)[:5]) if passed else ""))
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
    """A child process fed through its stdin. Its stdout/stderr are collected by threads so the
    pipes never fill up and block; those threads start only in start_readers(), once every
    child exists (a preexec_fn after threads have started is documented unsafe)."""

    def __init__(self, argv, memory_limit=None, capture_stdout=False):
        def limit():
            if memory_limit:
                import resource
                resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE if capture_stdout else subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, preexec_fn=limit, close_fds=True)
        _grow_pipe(self.proc.stdin)
        self.capture_stdout = capture_stdout
        self.stdout = []
        self.stderr = []
        self.closed = False
        self.threads = []

    def start_readers(self):
        if self.capture_stdout:
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
        except (BrokenPipeError, OSError, ValueError) as e:
            if isinstance(e, (BrokenPipeError, ValueError)) or e.errno in (errno.EPIPE, errno.EINVAL):
                self.closed = True
                return False
            raise

    def finish(self, timeout):
        """Close stdin and wait at most ``timeout`` seconds: (exit status or None when it had to
        be killed, stdout, stderr)."""
        if not self.closed:
            try:
                self.proc.stdin.close()
            except (OSError, ValueError):
                pass
            self.closed = True
        try:
            rc = self.proc.wait(max(0.0, timeout))
        except subprocess.TimeoutExpired:
            self.kill()
            rc = None
        for t in self.threads:
            t.join(5)
        return rc, b"".join(self.stdout).decode("utf-8", "replace"), b"".join(self.stderr).decode("utf-8", "replace")

    def kill(self):
        """Kill and reap the child if it still runs (idempotent, never raises)."""
        try:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        except OSError:
            pass
        self.closed = True
        try:
            self.proc.stdin.close()
        except (OSError, ValueError):
            pass


class Inflater:
    """gzip decompression with bounded output: pieces() yields at most ``max_out`` bytes at a
    time whatever the input expands to. Members after the end of one are read on (as gzip
    does); bytes after the last member that are not gzip are kept (up to CHUNK) in ``extra``."""

    def __init__(self, lib=None):
        self.lib = lib or (fast_zlib if HAS_ISAL else zlib)
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


class _GzipError(Exception):
    def __init__(self, cause):
        Exception.__init__(self, str(cause))
        self.cause = cause


class _Timeout(Exception):
    pass


def _wait(sink, seconds):
    """Exit status of a child that closed its stdin, waiting at most ``seconds``; None if it runs."""
    try:
        return sink.proc.wait(max(0.0, seconds))
    except subprocess.TimeoutExpired:
        return None


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


def verify(path, mode="full", pg_restore="pg_restore", memory_limit=DEFAULT_PG_RESTORE_MEMORY,
           expected_sha256=None, timeout=3600, chunk_size=CHUNK, deadline=None, out_chunk=OUT_CHUNK):
    """Verify one backup file. Returns a dict: ``valid``, ``checks`` (name, ok, message),
    ``toc``, ``format``, ``compressed``, ``uncompressed_size``, ``sha256``, ``decompressor``,
    ``integrity`` and ``warnings``.

    ``deadline`` (time.monotonic()) defaults to now + ``timeout``; it covers every step from
    the first open() to pg_restore's exit. Raises BackupError only when the check itself
    cannot run (pg_restore missing); every other problem is a failed check."""
    if deadline is None:
        deadline = time.monotonic() + timeout
    checks = []
    result = dict(valid=False, checks=checks, toc=None, format=None, compressed=None, uncompressed_size=None,
                  sha256=None, decompressor=None, integrity="none", warnings=[])

    def fail(name, message):
        checks.append(Check(name, False, message))
        result["checks"] = [c.as_dict() for c in checks]
        return result

    try:
        fh = open_regular(path)
    except BackupError as e:
        return fail("readable", str(e))
    try:
        with fh:
            return _verify_stream(fh, path, result, checks, fail, mode, pg_restore, memory_limit, expected_sha256,
                                  timeout, chunk_size, deadline, out_chunk)
    except OSError as e:  # EIO in the middle of the file, ...
        return fail("readable", os_error_message(path, e))


def _verify_stream(fh, path, result, checks, fail, mode, pg_restore, memory_limit, expected_sha256, timeout,
                   chunk_size, deadline, out_chunk):
    head = fh.read(chunk_size)
    if not head:
        return fail("format", "%s is empty (0 bytes)" % path)
    kind = sniff(head)
    result["compressed"] = kind == "gzip"
    inflater = None
    first = head
    rest_of_head = iter(())
    if kind == "gzip":
        inflater = Inflater()
        result["decompressor"] = "isal" if HAS_ISAL and inflater.lib is fast_zlib else "zlib"
        rest_of_head = inflater.pieces(head, out_chunk)
        try:
            first = next(rest_of_head, b"")
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
    if inner != "custom":
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
    checks.append(Check("format", True, "pg_dump custom-format archive"))
    result["format"] = "custom"

    if not (os.path.sep in pg_restore and os.access(pg_restore, os.X_OK)) and not shutil.which(pg_restore):
        raise BackupError("pg_restore not found (%s): install the PostgreSQL client (postgresql-client-15) "
                          "or set pg_restore_path" % pg_restore)
    sinks = []
    watchdog = None
    try:
        # Both children first, then every thread (preexec_fn is unsafe once threads run).
        try:
            sinks.append(_Sink([pg_restore, "--list"], memory_limit, capture_stdout=True))
            if mode == "full":
                sinks.append(_Sink([pg_restore, "-f", os.devnull], memory_limit))
        except OSError as e:
            raise BackupError("pg_restore (%s) could not be started: %s" % (pg_restore, e.strerror or e))
        for s in sinks:
            s.start_readers()
        timed_out = threading.Event()

        def on_deadline():
            timed_out.set()
            for s in sinks:  # unblocks a write to a child that stopped reading
                try:
                    s.proc.kill()
                except OSError:
                    pass

        watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), on_deadline)
        watchdog.daemon = True
        watchdog.start()
        stream = dict(fh=fh, head=head, first=first, rest_of_head=rest_of_head, inflater=inflater,
                      lister=sinks[0], full=sinks[1] if mode == "full" else None, timed_out=timed_out)
        return _feed(stream, path, result, checks, mode, memory_limit, expected_sha256, timeout, chunk_size,
                     deadline, out_chunk)
    finally:
        if watchdog is not None:
            watchdog.cancel()
        for s in sinks:
            s.kill()


def _feed(stream, path, result, checks, mode, memory_limit, expected_sha256, timeout, chunk_size, deadline,
          out_chunk):
    fh, inflater, lister, full = stream["fh"], stream["inflater"], stream["lister"], stream["full"]
    digest = hashlib.sha256() if expected_sha256 else None
    counts = dict(bytes_in=len(stream["head"]), bytes_out=0)
    if digest:
        digest.update(stream["head"])

    def outputs():
        yield stream["first"]
        try:
            yield from stream["rest_of_head"]
        except Exception as e:
            raise _GzipError(e)
        while True:
            if time.monotonic() > deadline:
                raise _Timeout()
            chunk = fh.read(chunk_size)
            if not chunk:
                return
            counts["bytes_in"] += len(chunk)
            if digest:
                digest.update(chunk)
            if inflater is None:
                yield chunk
                continue
            try:
                yield from inflater.pieces(chunk, out_chunk)
            except Exception as e:
                raise _GzipError(e)

    sinks = [s for s in (lister, full) if s]
    gzip_problem = None
    stop = None  # why reading ended before the end of the file: toc, pg_restore, timeout
    try:
        for piece in outputs():
            counts["bytes_out"] += len(piece)
            alive = [s.feed(piece) for s in sinks]
            if stream["timed_out"].is_set() or time.monotonic() > deadline:
                stop = "timeout"
                break
            if mode == "toc" and not alive[0]:
                stop = "toc"  # the TOC has been read; toc mode stops here
                break
            if full is not None and not alive[1]:
                rc = _wait(full, min(2.0, deadline - time.monotonic()))
                if rc is not None and rc != 0:
                    stop = "pg_restore"  # it failed: reading on (a gzip bomb) would only cost time
                    break
    except _GzipError as e:
        gzip_problem = _gzip_message(e.cause, counts["bytes_in"])
    except _Timeout:
        stop = "timeout"
    total_in, total_out = counts["bytes_in"], counts["bytes_out"]
    read_to_end = stop is None and gzip_problem is None
    gzip_checked = False
    if inflater is not None and read_to_end:
        if mode == "full" or total_in >= os.fstat(fh.fileno()).st_size:
            if not inflater.eof:
                gzip_problem = "truncated after %d bytes: the gzip stream ends without its trailer" % total_in
            elif inflater.extra.strip(b"\x00"):
                gzip_problem = "%d bytes of trailing garbage after the gzip stream" % len(inflater.extra)
            else:
                gzip_checked = True
    if digest and stop in (None, "toc"):
        try:
            while True:
                if time.monotonic() > deadline:
                    raise _Timeout()
                more = fh.read(chunk_size)
                if not more:
                    break
                digest.update(more)
        except _Timeout:
            stop = "timeout"

    rc_list, listing, err_list = lister.finish(deadline - time.monotonic() if stop != "timeout" else 0)
    rc_full = err_full = None
    if full:
        if gzip_problem or stop == "timeout":
            full.kill()
        else:
            rc_full, _out, err_full = full.finish(deadline - time.monotonic())
    if stream["timed_out"].is_set():
        stop = "timeout"

    result["uncompressed_size"] = total_out if (read_to_end and (mode == "full" or not result["compressed"])) else None
    if stop == "timeout":
        checks.append(Check("timeout", False, "verification of %s was stopped by its timeout of %ss (after %d "
                                              "bytes): raise timeout for backups this large, or look for a hung "
                                              "disk or pg_restore" % (path, timeout, total_in)))
    if result["compressed"]:
        if gzip_problem:
            checks.append(Check("gzip", False, gzip_problem))
        elif gzip_checked and mode == "full":
            checks.append(Check("gzip", True, "gzip CRC and length match (%d bytes uncompressed)" % total_out))
    if rc_list == 0 and listing:
        toc = parse_toc(listing)
        result["toc"] = toc
        if toc["entries"] == 0:  # pg_dump always writes ENCODING, STDSTRINGS, SEARCHPATH entries
            checks.append(Check("toc", False, "the table of contents lists no entries at all: not an archive "
                                              "pg_dump made, or its header is corrupt"))
        else:
            checks.append(Check("toc", True, "table of contents readable: %s entries, %d tables, database %s"
                                % (toc["entries"], len(toc["tables"]), toc["database"])))
    elif rc_list is None or stop == "timeout":
        checks.append(Check("toc", False, "pg_restore --list did not finish before the timeout"))
    else:
        checks.append(Check("toc", False, "pg_restore --list could not read the table of contents: %s"
                            % _pg_restore_problem(err_list, rc_list, memory_limit)))
    if full:
        if stop == "timeout":
            checks.append(Check("data", False, "data not fully checked: stopped by the timeout"))
        elif gzip_problem:
            checks.append(Check("data", False, "data not checked: the gzip stream is broken"))
        elif rc_full == 0 and not (err_full or "").strip():
            result["data_read"] = True
            checks.append(Check("data", True, "pg_restore read every data block (%d bytes)" % total_out))
        else:
            msg = "pg_restore could not read the archive: %s" % _pg_restore_problem(err_full, rc_full, memory_limit)
            if stop == "pg_restore":
                msg += " (it stopped after %d bytes of the file; the rest was not read)" % total_in
            elif not result["compressed"] and ("unexpected end of file" in err_full or "could not read" in err_full):
                msg = "truncated or corrupt after %d bytes: %s" % (total_in, _first_line(err_full))
            checks.append(Check("data", False, msg))
    if expected_sha256:
        if stop in (None, "toc"):
            got = digest.hexdigest()
            result["sha256"] = got
            if got.lower() == expected_sha256.lower():
                checks.append(Check("checksum", True, "sha256 matches the checksum file"))
            else:
                checks.append(Check("checksum", False, "sha256 mismatch: file has %s, checksum file says %s"
                                    % (got, expected_sha256)))
        else:
            checks.append(Check("checksum", False, "sha256 not computed: the file was not read to the end"))
    result["integrity"] = integrity_of(result, mode, expected_sha256, gzip_checked)
    result.pop("data_read", None)
    if mode == "full" and result["integrity"] == "none" and result.get("toc") and not result.get("compressed"):
        result["warnings"].append(
            "%s is an uncompressed custom-format dump (pg_dump -Fc -Z0) without gzip or a checksum file: nothing "
            "protects its data blocks, so a flipped byte inside table data cannot be detected. gzip it, let "
            "pg_dump compress it (-Z1..9) or write a sha256 file at backup time (checksum_file=auto)" % path)
    result["checks"] = [c.as_dict() for c in checks]
    result["valid"] = all(c.ok for c in checks)
    return result


def _pg_restore_problem(stderr, rc, memory_limit):
    """pg_restore's own first error line, with the fix when the memory limit caused it."""
    stderr = stderr or ""
    line = _first_line(stderr) or "exit status %s" % rc
    mb = (memory_limit or 0) // 1048576
    if "error while loading shared libraries" in stderr or "failed to map segment" in stderr:
        return ("%s (pg_restore cannot even start within the memory limit of %d MiB: raise "
                "pg_restore_memory_limit)" % (line, mb))
    if "out of memory" in stderr:
        return ("%s (pg_restore was limited to %d MiB: a corrupt length field, or a row larger than the limit "
                "allows; raise pg_restore_memory_limit if the dump holds rows that large)" % (line, mb))
    return line


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
    """The sha256 for ``backup_path`` from a ``sha256sum``-style sidecar file (a regular file;
    at most 1 MiB of it is read)."""
    try:
        with open_regular(path) as fh:
            content = fh.read(1 << 20).decode("utf-8", "replace")
    except BackupError as e:
        raise BackupError("checksum file: %s" % e)
    except OSError as e:
        raise BackupError("checksum file: %s" % os_error_message(path, e))
    name = os.path.basename(backup_path)
    lines = [line.split() for line in content.splitlines() if line.strip()]
    for parts in lines:
        if len(parts) >= 2 and os.path.basename(parts[-1].lstrip("*")) == name:
            return parts[0]
    if len(lines) == 1 and re.match(r"^[0-9a-fA-F]{64}$", lines[0][0]):
        return lines[0][0]
    raise BackupError("checksum file %s has no sha256 for %s" % (path, name))


def metrics_families(result, prefix="callcenter_backup"):
    """Metric families (textfile.exposition) of a verification result. A failed one also
    gets one ``<prefix>_verify_failure{check, reason}`` sample per failed check, so the
    alert can say why."""
    labels = dict(path=result["path"])
    families = [
        ("verify_success", "gauge", "1 if the last verification of the newest backup passed, else 0",
         1 if result.get("valid") else 0),
        ("verify_last_run_timestamp_seconds", "gauge", "Unix time of the last verification", result["verified_at"]),
        ("verify_duration_seconds", "gauge", "Seconds the last verification took", result.get("duration", 0)),
        ("age_seconds", "gauge", "Age of the newest backup file when it was verified", result.get("age_seconds")),
        ("size_bytes", "gauge", "Size of the newest backup file", result.get("size")),
        ("mtime_seconds", "gauge", "Modification time of the newest backup file (Unix time)", result.get("mtime_epoch")),
    ]
    out = [("%s_%s" % (prefix, name), kind, help_text, [(labels, value)])
           for name, kind, help_text, value in families if value is not None]
    if not result.get("valid"):
        failed = [c for c in result.get("checks") or [] if not c.get("ok")] or \
            [dict(name="error", message=result.get("error") or "verification failed")]
        out.append(("%s_verify_failure" % prefix, "gauge",
                    "1 for each check that failed in the last verification (check name, reason)",
                    [(dict(labels, check=c["name"], reason=str(c["message"])[:300]), 1) for c in failed]))
    return out


def metrics_text(result, prefix="callcenter_backup"):
    """Prometheus textfile-collector exposition of a verification result (through textfile:
    label values with a newline, quote or backslash cannot break the file)."""
    return textfile.exposition(metrics_families(result, prefix))


_METRIC_LINE = re.compile(r"^callcenter_backup_(verify_success|verify_last_run_timestamp_seconds|verify_failure)"
                          r"(\{(?:[^\"}]|\"(?:[^\"\\]|\\.)*\")*\})?\s+(\S+)\s*$")
_LABEL_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def _label_values(text):
    """``{name: value}`` of a label set as textfile.labels_text() writes it, unescaped."""
    return dict((k, re.sub(r'\\[\\"n]', lambda m: _UNESCAPE[m.group(0)], v))
                for k, v in _LABEL_PAIR.findall(text or ""))


def read_metrics_detail(path):
    """The last verification recorded by metrics_text() in ``path``: ``success`` (bool or
    None), ``last_run`` (epoch or None) and ``problems`` (the failed checks' reasons). Raises
    OSError (also for a path that is not a regular file, which is never opened)."""
    detail = dict(success=None, last_run=None, problems=[])
    try:
        fh = open_regular(path)
    except BackupError as e:
        raise OSError(errno.EINVAL, str(e))
    with fh:
        text = fh.read(4 << 20).decode("utf-8", "replace")
    for line in text.splitlines():
        m = _METRIC_LINE.match(line)
        if not m:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        if m.group(1) == "verify_success":
            detail["success"] = value == 1
        elif m.group(1) == "verify_last_run_timestamp_seconds":
            detail["last_run"] = value
        elif value == 1:
            labels = _label_values(m.group(2))
            reason = labels.get("reason") or labels.get("check")
            if reason:
                detail["problems"].append(reason)
    return detail


def file_facts(path, now=None):
    """Size, mtime and age of ``path``. Raises BackupError with a sentence."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise BackupError(os_error_message(path, e))
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
                 pg_restore_path=None, memory_limit_mb=DEFAULT_MEMORY_LIMIT_MB, timeout=3600):
    """Everything the module and the host-side script report: find the file, verify it, apply
    max_age (seconds) and min_size (bytes). Never raises: a bad backup, an OSError or any
    other failure is a failed check (fail closed), and ``valid`` says it. One deadline,
    ``timeout`` seconds from the start, covers every step."""
    started = time.monotonic()
    result = dict(valid=False, checks=[], integrity="none", warnings=[])
    facts = {}
    try:
        problem = params.timeout_problem(timeout)
        if problem:
            raise BackupError(problem)
        deadline = started + float(timeout)
        skipped = []
        found = find_backup(path, pattern, skipped)
        result["path"] = found
        newer = [s for s in skipped if " not a regular file" in s]
        if newer and os.path.isdir(path):
            result["warnings"].append("skipped in %s (never opened): %s" % (short_path(path), "; ".join(newer[:5])))
        facts = file_facts(found)
        result.update(size=facts["size"], mtime=facts["mtime"], age_seconds=facts["age_seconds"])
        expected = None
        if checksum_file:
            sidecar = found + ".sha256" if checksum_file == "auto" else checksum_file
            if checksum_file != "auto" or os.path.lexists(sidecar):
                expected = read_checksum_file(sidecar, found)
        pg_restore = find_pg_restore(pg_restore_path)
        verified = verify(found, mode=mode, pg_restore=pg_restore, memory_limit=int(memory_limit_mb) * 1024 * 1024,
                          expected_sha256=expected, timeout=timeout, deadline=deadline)
        result["warnings"].extend(verified.pop("warnings", []))
        result.update(verified)
    except BackupError as e:
        result["checks"].append(dict(name="found", ok=False, message=str(e)))
        result["error"] = str(e)
    except OSError as e:
        message = os_error_message(getattr(e, "filename", None) or path, e)
        result["checks"].append(dict(name="readable", ok=False, message=message))
        result["error"] = message
    except Exception as e:  # fail closed: whatever broke, the verification failed and says why
        message = "the verification of %s failed unexpectedly: %s: %s" % (short_path(path), type(e).__name__, e)
        result["checks"].append(dict(name="error", ok=False, message=message))
        result["error"] = message
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


def failed_result(path, message, name="error"):
    """A result of check_backup()'s shape for a verification that could not run at all."""
    return dict(valid=False, path=path, checks=[dict(name=name, ok=False, message=message)], problems=[message],
                error=message, integrity="none", warnings=[], duration=0.0)


def write_metrics(metrics_file, result, requested_path):
    """Write the Prometheus textfile for ``result`` atomically. Raises OSError."""
    metrics = dict(result, path=result.get("path", requested_path), verified_at=int(time.time()))
    textfile.write_atomically(metrics_file, metrics_text(metrics))
