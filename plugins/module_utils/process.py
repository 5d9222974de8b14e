# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which process may be signalled: the one place that turns a pidfile or a systemd unit into a
PID, and refuses every PID that would hurt the host.

``os.kill(-1, sig)`` as root signals every process on the host and ``os.kill(0, sig)`` the
caller's own process group: a pidfile holding ``-1`` or ``0`` (or ``1``, init) must never reach
``os.kill``. Nor may this module's own process, its group or session, or one of its parents
(that would be Ansible itself). Reading the pidfile must not hang either: a FIFO blocks
``open()`` forever, so the file is opened non-blocking and must be a regular file."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re
import signal
import stat

PIDFILE_MAX_BYTES = 64
_PID_TEXT = re.compile(r"^\s*(\d{1,10})\s*$")


class ProcessError(Exception):
    """The PID cannot be used; the message says why and what to do."""


def read_pidfile(path):
    """The PID in ``path``. Raises ProcessError for a missing, unreadable, non-regular, too long
    or malformed file (only one decimal number, nothing else, is a PID)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ENOENT:
            raise ProcessError("pidfile %s does not exist (is the application running?)" % path)
        if e.errno in (errno.EACCES, errno.EPERM):
            raise ProcessError("pidfile %s: permission denied (run with become?)" % path)
        raise ProcessError("pidfile %s could not be opened: %s" % (path, e.strerror or e))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ProcessError("pidfile %s is %s, not a regular file: refused" % (path, file_kind(st.st_mode)))
        raw = os.read(fd, PIDFILE_MAX_BYTES + 1)
    except OSError as e:
        raise ProcessError("pidfile %s could not be read: %s" % (path, e.strerror or e))
    finally:
        os.close(fd)
    if len(raw) > PIDFILE_MAX_BYTES:
        raise ProcessError("pidfile %s is longer than %d bytes: not a pidfile" % (path, PIDFILE_MAX_BYTES))
    text = raw.decode("ascii", "replace")
    m = _PID_TEXT.match(text)
    if not m:
        raise ProcessError("pidfile %s does not hold a PID (one positive decimal number), it holds %r: refused"
                           % (path, text.strip()[:20]))
    return int(m.group(1))


def file_kind(mode):
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def parent_pid(pid, proc="/proc"):
    """PPID of ``pid`` from /proc/PID/stat (the command name may hold spaces and parentheses)."""
    try:
        with open("%s/%d/stat" % (proc, pid)) as fh:
            data = fh.read()
    except OSError:
        return None
    try:
        return int(data[data.rindex(")") + 2:].split()[1])
    except (ValueError, IndexError):
        return None


def ancestors(pid=None, proc="/proc"):
    """PIDs of ``pid``'s parents up to init (this process's by default)."""
    pid = os.getpid() if pid is None else pid
    seen = []
    while True:
        ppid = parent_pid(pid, proc)
        if not ppid or ppid in seen or len(seen) > 512:
            return seen
        seen.append(ppid)
        if ppid == 1:
            return seen
        pid = ppid


def protected_pids():
    """PIDs that are never signalled: this process, its group, its session, its parents."""
    own = {os.getpid(), os.getpgrp()}
    try:
        own.add(os.getsid(0))
    except OSError:
        pass
    own.update(ancestors())
    return own


def refusal(pid, protected=None):
    """None when ``pid`` may be signalled as far as its number goes, else the sentence why not."""
    if pid <= 1:
        return "PID %d is refused: only a single process with a PID greater than 1 is ever signalled" % pid
    if pid in (protected if protected is not None else protected_pids()):
        return ("PID %d is refused: it is this module's own process, its process group or session, or one of "
                "its parents (Ansible itself)" % pid)
    return None


def names_of(pid, proc="/proc"):
    """Names a process goes by: comm, the executable's file name, the first two argv words'."""
    names = []
    try:
        with open("%s/%d/comm" % (proc, pid)) as fh:
            names.append(fh.read().strip())
    except OSError:
        pass
    try:
        names.append(os.path.basename(os.readlink("%s/%d/exe" % (proc, pid))).replace(" (deleted)", ""))
    except OSError:
        pass
    try:
        with open("%s/%d/cmdline" % (proc, pid), "rb") as fh:
            argv = fh.read(65536).split(b"\0")
        for word in argv[:2]:
            if word:
                names.append(os.path.basename(word.decode("utf-8", "replace")))
    except OSError:
        pass
    return [n for n in names if n]


def unit_of(pid, proc="/proc"):
    """The systemd unit whose cgroup holds ``pid`` (last ``*.service``/``*.scope`` path part)."""
    try:
        with open("%s/%d/cgroup" % (proc, pid)) as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    for line in lines:
        path = line.split(":", 2)[-1]
        for part in reversed(path.split("/")):
            if part.endswith((".service", ".scope")):
                return part
    return None


def check_target(pid, process_name=None, unit=None, proc="/proc"):
    """Raise ProcessError unless ``pid`` is a running process that may get a signal and, when
    given, goes by ``process_name`` and runs in ``unit``'s cgroup."""
    why = refusal(pid)
    if why:
        raise ProcessError(why)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise ProcessError("no process %d is running: stale pidfile?" % pid)
    except PermissionError:
        raise ProcessError("not allowed to signal process %d (run with become?)" % pid)
    if process_name:
        names = names_of(pid, proc)
        if process_name not in names:
            raise ProcessError("process %d is %s, not %s: refused (pidfile stale and its PID reused?)"
                               % (pid, "/".join(sorted(set(names))) or "unknown", process_name))
    if unit:
        want = unit if "." in unit else unit + ".service"
        got = unit_of(pid, proc)
        if got != want:
            raise ProcessError("process %d does not belong to unit %s (it runs in %s): refused"
                               % (pid, want, got or "no systemd unit"))


def send_signal(pid, sig=signal.SIGHUP, process_name=None, unit=None):
    """Check ``pid`` (check_target) and signal it. Where the kernel offers pidfds the process is
    pinned before the checks, so a PID reused between check and signal is never hit."""
    pidfd = None
    if hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal") and pid > 1:
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            pidfd = None  # gone, not permitted, or an old kernel: check_target says which
    try:
        check_target(pid, process_name, unit)
        try:
            if pidfd is not None:
                signal.pidfd_send_signal(pidfd, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            raise ProcessError("process %d exited before it could be signalled" % pid)
        except PermissionError:
            raise ProcessError("not allowed to signal process %d (run with become?)" % pid)
    finally:
        if pidfd is not None:
            os.close(pidfd)
