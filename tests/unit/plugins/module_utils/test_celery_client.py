"""Pure logic of the Celery client: no server needed."""

import pytest

from ansible_collections.callcenter.ops.plugins.module_utils import celery_client
from ansible_collections.callcenter.ops.plugins.module_utils.redis_client import BrokerError, BrokerURL


def test_priority_sub_queue_names_cover_every_step_kombu_can_use():
    """kombu clamps priorities to 0..9 and files a message under the largest step not above
    it: whatever the app's priority_steps, its lists are among these ten."""
    assert celery_client.priority_queue_names("stats") == ["stats"] + ["stats\x06\x16%d" % p for p in range(1, 10)]
    # the old default steps and Celery's documented list(range(10)) are both covered
    for steps in ([0, 3, 6, 9], list(range(10)), [0, 5]):
        assert set("q" if s == 0 else "q\x06\x16%d" % s for s in steps) <= set(celery_client.priority_queue_names("q"))
    # steps outside 0..9 can be added, never removed
    assert celery_client.priority_queue_names("q", [9, 0, 0, 12])[-1] == "q\x06\x1612"
    assert len(celery_client.priority_queue_names("q", [0, 3])) == 10


def test_priority_steps_match_kombu_itself():
    kombu_redis = pytest.importorskip("kombu.transport.redis")
    assert kombu_redis.Channel.sep == celery_client.PRIORITY_SEP
    # the channel maps priorities 0..9 to its steps; every target lies in 0..9
    channel = kombu_redis.Channel.__new__(kombu_redis.Channel)
    for steps in ([0, 3, 6, 9], list(range(10)), [0, 2, 4]):
        channel.priority_steps = steps
        names = set(channel._q_for_pri("q", p) for p in range(10))
        assert names <= set(celery_client.priority_queue_names("q")), steps


def test_metrics_text_escapes_queue_names_through_the_one_textfile_writer():
    text = celery_client.metrics_text(dict(queues={'a"b\nc': 3}, queue_details={'a"b\nc': {"unacked": 1}},
                                           workers_online=2, healthy=True))
    assert 'callcenter_celery_queue_length{queue="a\\"b\\nc"} 3' in text
    assert 'callcenter_celery_queue_unacked{queue="a\\"b\\nc"} 1' in text
    assert "callcenter_celery_workers_online 2" in text and "callcenter_celery_healthy 1" in text
    assert all(line.startswith(("#", "callcenter_")) for line in text.splitlines())


@pytest.mark.parametrize("given,expected", [
    (None, None), ("", None), ([], None), (2, 2), ("3", 3), (0, 0),
    (["b@h", "a@h", "a@h"], ["a@h", "b@h"]), ("a@h, b@h", ["a@h", "b@h"]),
])
def test_expected_workers_forms(given, expected):
    assert celery_client.normalize_expected(given) == expected


@pytest.mark.parametrize("bad", [-1, "-2", True, {"a": 1}, [1, 2], [""]])
def test_expected_workers_rejects(bad):
    with pytest.raises(ValueError):
        celery_client.normalize_expected(bad)


def test_healthy_fleet_has_no_problems():
    assert celery_client.health_problems(["w1@h", "w2@h"], expected=2, queues={"q": 3}, max_queue_length=10) == []


def test_no_worker_at_all():
    assert celery_client.health_problems([], expected=2) == ["no Celery worker answered ping (2 needed)"]


def test_named_worker_missing_is_named():
    problems = celery_client.health_problems(["w1@h"], expected=["w1@h", "w2@h"])
    assert "expected worker(s) not answering: w2@h" in problems


def test_explicit_min_workers_tolerates_a_missing_named_worker():
    assert celery_client.health_problems(["w1@h"], expected=["w1@h", "w2@h"], min_workers=1) == []


def test_without_expectations_one_worker_is_enough():
    assert celery_client.health_problems(["w1@h"]) == []
    assert celery_client.health_problems([]) == ["no Celery worker answered ping (1 needed)"]


def test_queue_backlog_over_threshold():
    assert celery_client.health_problems(["w"], queues={"q": 11, "r": 10}, max_queue_length=10) == [
        "queue q has 11 messages waiting (max 10)"]


def test_stale_and_never_run_beat_entries():
    beat = {
        "last_daily_stats": {"age_seconds": 100000, "total_run_count": 5},
        "fresh": {"age_seconds": 10, "total_run_count": 1},
        "never": {"age_seconds": 500, "total_run_count": 0},
        "celery.backend_cleanup": {"age_seconds": 99999, "total_run_count": 0},
    }
    problems = celery_client.health_problems(["w"], beat=beat, max_beat_age=400)
    assert problems == [
        "beat entry last_daily_stats last ran 100000s ago (max 400s)",
        "beat entry never has not run since beat started 500s ago (max 400s)",
    ]
    assert celery_client.health_problems(["w"], beat=beat, beat_entries=["gone"], max_beat_age=1) == [
        "beat entry gone is not in the schedule file"]


def test_broker_url_masks_password_and_refuses_other_schemes():
    u = BrokerURL("redis://:p%40ss@10.0.0.1:6380/2")
    assert (u.host, u.port, u.db, u.password) == ("10.0.0.1", 6380, 2, "p@ss")
    assert u.safe == "redis://:***@10.0.0.1:6380/2"
    assert "p%40ss" in u.secrets() and "p@ss" in u.secrets()
    assert BrokerURL("redis://127.0.0.1/0", password="x").celery_url() == "redis://:x@127.0.0.1:6379/0"
    with pytest.raises(BrokerError, match="scheme 'amqp' is not supported"):
        BrokerURL("amqp://guest:guest@h//")
    with pytest.raises(BrokerError, match="not a number"):
        BrokerURL("redis://h/abc")
