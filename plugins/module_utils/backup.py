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

verify() reads as open -> stream -> verdict: open_regular() and backup_archive.open_archive()
decide what the file is, stream() feeds it to the pg_restore children and records what it
saw in an Outcome, backup_archive.verdict() (pure, unit-tested) turns that into checks.

Fail closed, never hang, never harm the host: only regular files are opened (a FIFO would
block ``open()`` forever, a tape device may rewind); every OSError becomes a failed check with
a sentence; one deadline covers every step from the first ``open()`` to pg_restore's exit;
decompression yields at most OUT_CHUNK bytes at a time (a gzip bomb cannot fill memory) and
each pg_restore runs under an address-space limit (a corrupt length field cannot either).
The children are started without ``preexec_fn`` (unsafe once threads run): the limit is set
by ``ulimit -v`` in a ``/bin/sh`` that then execs pg_restore, each child gets its own session,
and whatever happens (an error, the timeout) every child is killed and reaped before stream()
returns.

STDLIB ONLY (isal optional): the backup_verify role installs this file on hosts as
ccops_backup.py, beside the rest of its set in roles/host_files/vars/main.yml, where no Ansible
exists."""

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
import signal
import stat
import subprocess
import threading
import time

try:
    from ansible_collections.callcenter.ops.plugins.module_utils import textfile
except ImportError:  # installed on a host by the backup_verify role, without Ansible
    import ccops_textfile as textfile
try:
    from ansible_collections.callcenter.ops.plugins.module_utils import params
except ImportError:
    import ccops_params as params
try:
    from ansible_collections.callcenter.ops.plugins.module_utils import backup_archive as archive
except ImportError:
    import ccops_backup_archive as archive

# The pure half, re-exported: callers and tests know them as backup.X.
Check, Inflater, Outcome, integrity_of, parse_toc, sniff = (
    archive.Check, archive.Inflater, archive.Outcome, archive.integrity_of, archive.parse_toc, archive.sniff)
CHUNK, OUT_CHUNK = archive.CHUNK, archive.OUT_CHUNK
HAS_ISAL, fast_zlib = archive.HAS_ISAL, archive.fast_zlib
# Input read per step while streaming: small enough that one step's output (~7x for a -Z0
# dump) needs few bounded decompress calls, so little of the input is copied around again.
STREAM_CHUNK = 256 * 1024

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


def _grow_pipe(fd, size=CHUNK):
    """Let the pipe hold a whole chunk (Linux F_SETPIPE_SZ): fewer context switches between
    the decompressor and pg_restore. Best effort; the default 64 KiB works too."""
    try:
        import fcntl
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except (ImportError, OSError, ValueError):
        pass


def limited_argv(argv, memory_limit):
    """``argv`` run under an address-space limit of ``memory_limit`` bytes: a /bin/sh sets it
    with ``ulimit -v`` and execs the program (same PID), so no Python code runs in the child
    between fork and exec (preexec_fn is unsafe once threads run)."""
    if not memory_limit:
        return list(argv)
    return ["/bin/sh", "-c", 'ulimit -v "$1" || exit 125; shift; exec "$@"', "ccops-limit",
            str(max(1, int(memory_limit) // 1024))] + list(argv)


class Child:
    """One child process fed through its stdin, in its own session, under an address-space
    limit. Its stdout/stderr are collected by threads so the pipes never fill up and block;
    those threads start only in start_readers(), once every child exists."""

    def __init__(self, argv, memory_limit=None, capture_stdout=False):
        self.proc = subprocess.Popen(limited_argv(argv, memory_limit), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE if capture_stdout else subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, close_fds=True, start_new_session=True)
        self.fd = self.proc.stdin.fileno()
        _grow_pipe(self.fd)
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
            try:
                for chunk in iter(lambda: stream.read(65536), b""):
                    into.append(chunk)
            except (OSError, ValueError):  # the pipe was closed under it by kill()
                pass
        t = threading.Thread(target=run)
        t.daemon = True
        t.start()
        return t

    def feed(self, data):
        """Write all of ``data``; returns False once the child has stopped reading (it exited
        or closed its stdin)."""
        if self.closed:
            return False
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view):]
            return True
        except OSError as e:
            if e.errno in (errno.EPIPE, errno.EINVAL, errno.EBADF):
                self.closed = True
                return False
            raise

    def wait(self, seconds):
        """Exit status, waiting at most ``seconds``; None while it runs."""
        try:
            return self.proc.wait(max(0.0, seconds))
        except subprocess.TimeoutExpired:
            return None

    def finish(self, timeout):
        """Close stdin and wait at most ``timeout`` seconds: (exit status or None when it had to
        be killed, stdout, stderr)."""
        self._close_stdin()
        rc = self.wait(timeout)
        if rc is None:
            self.kill()
        for t in self.threads:
            t.join(5)
        return rc, b"".join(self.stdout).decode("utf-8", "replace"), b"".join(self.stderr).decode("utf-8", "replace")

    def signal_kill(self):
        """SIGKILL its process group, without reaping (safe from the watchdog thread)."""
        try:
            if self.proc.returncode is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass

    def kill(self):
        """Kill and reap the child if it still runs (idempotent, never raises)."""
        try:
            if self.proc.poll() is None:
                self.signal_kill()
                self.proc.kill()
            self.proc.wait()
        except OSError:
            pass
        self._close_stdin()

    def _close_stdin(self):
        self.closed = True
        try:
            self.proc.stdin.close()
        except (OSError, ValueError):
            pass


class _Timeout(Exception):
    pass


class _GzipError(Exception):
    def __init__(self, cause):
        Exception.__init__(self, str(cause))
        self.cause = cause


def _pieces(arc, fh, outcome, digest, deadline, chunk_size, out_chunk):
    """The archive's bytes in bounded pieces: the head's, then the rest of the file read in
    ``chunk_size`` steps. Counts input in ``outcome`` and feeds ``digest``; raises _GzipError on
    corrupt gzip data and _Timeout past ``deadline``."""
    yield arc.first
    try:
        yield from arc.rest
    except Exception as e:
        raise _GzipError(e)
    inflater = arc.inflater
    read = fh.read
    while True:
        if time.monotonic() > deadline:
            raise _Timeout()
        chunk = read(chunk_size)
        if not chunk:
            return
        outcome.bytes_in += len(chunk)
        if digest:
            digest.update(chunk)
        if inflater is None:
            yield chunk
            continue
        try:
            yield from inflater.pieces(chunk, out_chunk)
        except Exception as e:
            raise _GzipError(e)


def stream(arc, fh, outcome, pg_restore, memory_limit, expected_sha256, deadline, chunk_size=STREAM_CHUNK,
           out_chunk=OUT_CHUNK):
    """Feed the archive to ``pg_restore --list`` and, in full mode, to ``pg_restore -f
    /dev/null``; record in ``outcome`` what happened. Both children start before any thread
    (reader threads, the deadline's watchdog). Whatever happens, an exception or the deadline,
    every child is killed and reaped before this returns or raises."""
    children = []
    watchdog = None
    try:
        try:
            children.append(Child([pg_restore, "--list"], memory_limit, capture_stdout=True))
            if outcome.mode == "full":
                children.append(Child([pg_restore, "-f", os.devnull], memory_limit))
        except OSError as e:
            raise BackupError("pg_restore (%s) could not be started: %s" % (pg_restore, e.strerror or e))
        for child in children:
            child.start_readers()
        timed_out = threading.Event()

        def on_deadline():
            timed_out.set()
            for child in children:  # unblocks a write to a child that stopped reading
                child.signal_kill()

        watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), on_deadline)
        watchdog.daemon = True
        watchdog.start()
        lister = children[0]
        full = children[1] if len(children) > 1 else None
        digest = hashlib.sha256(arc.head) if expected_sha256 else None
        _pump(arc, fh, outcome, lister, full, digest, deadline, timed_out, chunk_size, out_chunk)
        _drain_digest(fh, outcome, digest, deadline)
        remaining = deadline - time.monotonic() if outcome.stop != "timeout" else 0
        outcome.toc_rc, outcome.toc_listing, outcome.toc_err = lister.finish(remaining)
        if full:
            if outcome.gzip_problem or outcome.stop == "timeout":
                full.kill()
            else:
                outcome.data_rc, _out, outcome.data_err = full.finish(deadline - time.monotonic())
        if timed_out.is_set():
            outcome.stop = "timeout"
        return outcome
    finally:
        if watchdog is not None:
            watchdog.cancel()
        for child in children:
            child.kill()


def _pump(arc, fh, outcome, lister, full, digest, deadline, timed_out, chunk_size, out_chunk):
    """The streaming loop: every piece to each child still reading, until the end of the file
    or a reason to stop (outcome.stop, outcome.gzip_problem)."""
    toc_mode = outcome.mode == "toc"
    outcome.bytes_in = len(arc.head)
    try:
        for piece in _pieces(arc, fh, outcome, digest, deadline, chunk_size, out_chunk):
            outcome.bytes_out += len(piece)
            listing = lister.feed(piece)
            reading = full.feed(piece) if full is not None else True
            if timed_out.is_set():
                outcome.stop = "timeout"
                break
            if toc_mode and not listing:
                outcome.stop = "toc"  # the TOC has been read; toc mode stops here
                break
            if not reading:
                rc = full.wait(min(2.0, deadline - time.monotonic()))
                if rc is not None and rc != 0:
                    outcome.stop = "pg_restore"  # it failed: reading on (a gzip bomb) would only cost time
                    break
    except _GzipError as e:
        outcome.gzip_problem = archive.gzip_message(e.cause, outcome.bytes_in)
    except _Timeout:
        outcome.stop = "timeout"
    if time.monotonic() > deadline:
        outcome.stop = "timeout"
    outcome.read_to_end = outcome.stop is None and outcome.gzip_problem is None
    inflater = arc.inflater
    if inflater is not None and outcome.read_to_end:
        if not toc_mode or outcome.bytes_in >= os.fstat(fh.fileno()).st_size:
            outcome.gzip_problem = inflater.end_problem(outcome.bytes_in)
            outcome.gzip_checked = outcome.gzip_problem is None


def _drain_digest(fh, outcome, digest, deadline):
    """Read the rest of the file into the checksum when toc mode stopped early."""
    if not digest or outcome.stop not in (None, "toc"):
        return
    try:
        for more in iter(lambda: fh.read(CHUNK), b""):
            if time.monotonic() > deadline:
                raise _Timeout()
            digest.update(more)
        outcome.sha256 = digest.hexdigest()
    except _Timeout:
        outcome.stop = "timeout"


def verify(path, mode="full", pg_restore="pg_restore", memory_limit=DEFAULT_PG_RESTORE_MEMORY,
           expected_sha256=None, timeout=3600, chunk_size=STREAM_CHUNK, deadline=None, out_chunk=OUT_CHUNK,
           lib=None):
    """Verify one backup file: open -> stream -> verdict. Returns a dict: ``valid``, ``checks``
    (name, ok, message), ``toc``, ``format``, ``compressed``, ``uncompressed_size``, ``sha256``,
    ``decompressor``, ``integrity`` and ``warnings``.

    ``deadline`` (time.monotonic()) defaults to now + ``timeout``; it covers every step from
    the first open() to pg_restore's exit. ``lib`` is the inflate library (default: isal when
    installed, else zlib). Raises BackupError only when the check itself cannot run
    (pg_restore missing); every other problem is a failed check."""
    if deadline is None:
        deadline = time.monotonic() + timeout
    try:
        fh = open_regular(path)
    except BackupError as e:
        return refused(path, [Check("readable", False, str(e))])
    arc = None
    try:
        with fh:
            head = fh.read(CHUNK)
            try:
                arc = archive.open_archive(head, path, lib, out_chunk)
            except archive.Refused as e:
                gzipped = sniff(head) == "gzip"
                return refused(path, e.checks, compressed=gzipped if head else None,
                               decompressor=archive.lib_name(lib or archive.default_lib()) if gzipped else None)
            if not (os.path.sep in pg_restore and os.access(pg_restore, os.X_OK)) and not shutil.which(pg_restore):
                raise BackupError("pg_restore not found (%s): install the PostgreSQL client (postgresql-client-15) "
                                  "or set pg_restore_path" % pg_restore)
            outcome = Outcome(path, mode, arc.compressed, arc.decompressor, timeout, memory_limit)
            stream(arc, fh, outcome, pg_restore, memory_limit, expected_sha256, deadline, chunk_size, out_chunk)
    except OSError as e:  # EIO in the middle of the file, ...
        return refused(path, (arc.checks if arc else []) + [Check("readable", False, os_error_message(path, e))])
    return archive.verdict(outcome, arc.checks, expected_sha256)


def refused(path, checks, **known):
    """verify()'s result for a file that was not streamed: the checks so far, the last failed."""
    result = dict(valid=False, checks=[c.as_dict() for c in checks], toc=None, format=None, compressed=None,
                  uncompressed_size=None, sha256=None, decompressor=None, integrity="none", warnings=[])
    result.update(known)
    return result


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
        result.update(size=facts["size"], mtime=facts["mtime"], mtime_epoch=facts["mtime_epoch"],
                      age_seconds=facts["age_seconds"])
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
    return result


def failed_result(path, message, name="error"):
    """A result of check_backup()'s shape for a verification that could not run at all."""
    return dict(valid=False, path=path, checks=[dict(name=name, ok=False, message=message)], problems=[message],
                error=message, integrity="none", warnings=[], duration=0.0)


def write_metrics(metrics_file, result, requested_path):
    """Write the Prometheus textfile for ``result`` atomically. Raises OSError."""
    metrics = dict(result, path=result.get("path", requested_path), verified_at=int(time.time()))
    textfile.write_atomically(metrics_file, metrics_text(metrics))
