"""The celery beat schedule reader: beat's file read by its base name, whatever dbm wrote it."""

import datetime

import pytest

from ansible_collections.callcenter.ops.plugins.module_utils import celery_beat


def test_beat_file_missing(tmp_path):
    with pytest.raises(celery_beat.BeatError, match="does not exist"):
        celery_beat.read_beat_schedule(str(tmp_path / "celerybeat-schedule"))


def test_beat_file_read_by_base_name_whatever_the_suffix(tmp_path):
    import dbm.dumb
    import shelve

    from celery import Celery
    from celery.beat import ScheduleEntry

    base = str(tmp_path / "celerybeat-schedule")
    e = ScheduleEntry(name="last_daily_stats", task="t", schedule=86400.0, total_run_count=3,
                      last_run_at=datetime.datetime(2026, 11, 25, 3, 0, tzinfo=datetime.timezone.utc),
                      app=Celery(set_as_current=False))
    with shelve.Shelf(dbm.dumb.open(base, "c")) as s:
        s["entries"] = {"last_daily_stats": e}
    now = datetime.datetime(2026, 11, 25, 4, 0, tzinfo=datetime.timezone.utc)
    for given in (base, base + ".dat", base + ".dir"):
        beat = celery_beat.read_beat_schedule(given, now=now)
        assert beat == {"last_daily_stats": {"task": "t", "last_run_at": "2026-11-25T03:00:00+00:00",
                                             "age_seconds": 3600.0, "total_run_count": 3}}
