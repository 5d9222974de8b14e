# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The celery beat schedule reader: beat's shelve file, whatever dbm flavour wrote it, as
``{entry: {task, last_run_at, age_seconds, total_run_count}}``.

Used by celery_health and by the celery_metrics host script.

STDLIB ONLY: host scripts import this file too (see roles/host_files/vars/main.yml). Unpickling
beat's entries needs celery importable in the same Python, but this file imports nothing of it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os
import stat

BEAT_SUFFIXES = (".db", ".dat", ".dir", ".bak")


class BeatError(Exception):
    """The beat schedule file could not be read; the message says why."""


def _beat_candidates(path):
    base = path
    for suffix in BEAT_SUFFIXES:
        if path.endswith(suffix):
            base = path[:-len(suffix)]
            break
    return base, [base] + [base + s for s in BEAT_SUFFIXES]


def open_beat_schedule(path):
    """Open celery beat's shelve file read-only, whatever dbm flavour wrote it.

    The file name's suffix depends on the dbm module (none, ``.db``, or
    ``.dat``/``.dir``/``.bak``): it is opened by its base name. gdbm files are opened
    without a lock, since the running beat keeps its own lock on them."""
    import dbm
    import shelve

    base, candidates = _beat_candidates(path)
    present = []
    for c in candidates:
        try:
            st = os.stat(c)
        except FileNotFoundError:
            continue
        except PermissionError:
            raise BeatError("beat schedule file %s is not readable (permission denied on %s or a folder "
                            "above it)" % (path, c))
        except OSError as e:
            raise BeatError("beat schedule file %s could not be read (%s)" % (path, e.strerror or e))
        if stat.S_ISDIR(st.st_mode):
            raise BeatError("beat schedule path %s is a directory, not a schedule file" % c)
        if not os.access(c, os.R_OK):
            raise BeatError("beat schedule file %s is not readable (permission denied)" % c)
        present.append(c)
    if not present:
        raise BeatError("beat schedule file %s does not exist (is celery beat running, "
                        "and is this its --schedule path?)" % path)
    try:
        kind = dbm.whichdb(base)
    except OSError as e:
        raise BeatError("beat schedule file %s could not be read (%s)" % (path, e.strerror or e))
    if not kind:
        raise BeatError("beat schedule file %s is not a dbm/shelve file this Python can read "
                        "(corrupt, or written by a different Python's dbm module)" % path)
    try:
        if kind == "dbm.gnu":
            import dbm.gnu
            db = dbm.gnu.open(base, "ru")
        else:
            db = dbm.open(base, "r")
    except Exception as e:
        raise BeatError("beat schedule file %s could not be opened as %s (%s)" % (path, kind, e))
    shelf = shelve.Shelf(db)
    shelf._kind = kind
    return shelf


def _as_utc(value):
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc)


def read_beat_schedule(path, now=None):
    """``{entry: {task, last_run_at, age_seconds, total_run_count}}`` from beat's file."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    shelf = open_beat_schedule(path)
    try:
        try:
            entries = shelf["entries"]
        except KeyError:
            if getattr(shelf, "_kind", None) == "dbm.ndbm":
                raise BeatError("beat schedule file %s has no entries: it is a Berkeley DB (dbm.ndbm) file, whose "
                                "writes are seen only after beat exits; give beat's Python the gdbm module "
                                "(Debian: python3-gdbm) so the schedule can be read while beat runs" % path)
            raise BeatError("beat schedule file %s has no entries yet (beat has not written it)" % path)
        except Exception as e:
            raise BeatError("beat schedule file %s could not be decoded (%s: %s)" % (path, type(e).__name__, e))
        result = {}
        for name, entry in sorted(entries.items()):
            last = _as_utc(getattr(entry, "last_run_at", None))
            result[name] = dict(
                task=getattr(entry, "task", None),
                last_run_at=last.isoformat() if last else None,
                age_seconds=round((now - last).total_seconds(), 3) if last else None,
                total_run_count=int(getattr(entry, "total_run_count", 0) or 0),
            )
        return result
    finally:
        shelf.close()
