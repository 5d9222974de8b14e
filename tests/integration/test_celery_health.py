"""celery_health against a real Redis and real Celery workers of the sample app."""

import os
import time

import pytest

QUEUES = ["quality", "stats"]


def publish(broker_url, queue, count, priority=None, task="callcenter_sample.score_call", args=None):
    """Put messages into a queue the way the platform does (Celery's own producer)."""
    from celery import Celery
    app = Celery("producer", broker=broker_url, set_as_current=False)
    app.conf.broker_transport_options = {"priority_steps": [0, 3, 6, 9], "queue_order_strategy": "priority"}
    try:
        for i in range(count):
            opts = {"queue": queue}
            if priority is not None:
                opts["priority"] = priority
            app.send_task(task, args=args if args is not None else [i], **opts)
    finally:
        app.close()


@pytest.fixture
def stack(redis_server, celery_factory):
    cluster = celery_factory(redis_server.url)
    cluster.start_workers(["w1", "w2"])
    return redis_server, cluster


def health(ansible, redis, **args):
    params = dict(broker_url=redis.url, timeout=1.5)
    params.update(args)
    return ansible.module("celery_health", params)


def test_two_workers_answer_at_once_when_expected(ansible, stack):
    redis = stack[0]
    r = health(ansible, redis, expected_workers=2, queues=QUEUES, timeout=5)
    assert r.rc == 0, r
    assert r["healthy"] is True and r["problems"] == []
    assert r["workers_online"] == 2
    assert [w["name"] for w in r["workers"]] == ["w1@harness", "w2@harness"]
    assert all(w["ping"] and w["active"] == 0 for w in r["workers"])
    assert r["queues"] == {"quality": 0, "stats": 0}
    assert r["changed"] is False
    # limit=expected: returns long before the 5 s timeout
    assert r["duration"] < 1.0, r


def test_queues_default_to_what_workers_consume(ansible, stack):
    redis = stack[0]
    r = health(ansible, redis, expected_workers=["w1@harness", "w2@harness"])
    assert r.rc == 0, r
    assert sorted(r["queues"]) == QUEUES


def test_check_mode_is_the_same_read_only_check(ansible, stack):
    redis = stack[0]
    r = ansible.module("celery_health", dict(broker_url=redis.url, expected_workers=2), check=True)
    assert r.rc == 0 and r["changed"] is False and r["healthy"], r


def test_priority_messages_are_counted_in_every_sub_queue(ansible, redis_server):
    publish(redis_server.url, "backlog", 3)
    publish(redis_server.url, "backlog", 2, priority=6)
    publish(redis_server.url, "backlog", 1, priority=9)
    r = ansible.module("celery_health", dict(broker_url=redis_server.url, queues=["backlog"], min_workers=0,
                                             timeout=0.5))
    assert r.rc == 0, r
    assert r["queues"] == {"backlog": 6}
    # LLEN of the bare name alone would say 3
    assert redis_server.client().llen("backlog") == 3
    assert r["queue_details"]["backlog"]["by_priority"] == {"0": 3, "3": 0, "6": 2, "9": 1}


def test_backlog_over_threshold_makes_it_unhealthy(ansible, redis_server):
    publish(redis_server.url, "quality", 5, priority=3)
    r = ansible.module("celery_health", dict(broker_url=redis_server.url, queues=["quality"], min_workers=0,
                                             max_queue_length=4, timeout=0.5))
    assert r.rc != 0
    assert "queue quality has 5 messages waiting (max 4)" in r["msg"]


def test_redis_down_is_reported_at_once(ansible, redis_factory):
    redis = redis_factory()
    redis.stop()
    r = health(ansible, redis, expected_workers=2, timeout=3)
    assert r.rc != 0
    assert "refused the connection" in r["msg"] and "127.0.0.1:%d" % redis.port in r["msg"], r
    assert "Traceback" not in r.output
    assert r["duration"] < 1.0, r


def test_redis_blackholed_is_reported_within_timeout(ansible, tmp_path):
    import socket
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)  # accepts the TCP handshake, never answers
    try:
        port = lst.getsockname()[1]
        r = ansible.module("celery_health", dict(broker_url="redis://127.0.0.1:%d/0" % port, timeout=1))
        assert r.rc != 0
        assert "did not answer within 1.0s" in r["msg"], r
        assert r["duration"] < 2.0, r
    finally:
        lst.close()


def test_wrong_password_is_named_and_never_printed(ansible, stack):
    """Ad hoc, the URL comes from the environment: ansible-core itself echoes a failed ad-hoc
    task's -a arguments, so that is where operators are told to put it."""
    redis = stack[0]
    wrong = "Wr0ng-Pa55word"
    url = redis.url.replace(redis.password, wrong)
    r = ansible.module("celery_health", dict(expected_workers=2), verbosity=3, env={"CELERY_BROKER_URL": url})
    assert r.rc != 0
    assert "rejected the credentials" in r["msg"], r
    assert wrong not in r.output and wrong not in str(r.result)


def test_wrong_password_in_a_playbook_is_never_printed_at_vvv(ansible, stack, tmp_path):
    redis = stack[0]
    wrong = "Wr0ng-Pa55word"
    pb = tmp_path / "check.yml"
    pb.write_text("""
- hosts: localhost
  gather_facts: false
  tasks:
    - callcenter.ops.celery_health:
        broker_url: "{{ url }}"
        expected_workers: 2
""")
    r = ansible.playbook(pb, extra_vars={"url": redis.url.replace(redis.password, wrong)}, verbosity=3)
    assert r.rc != 0
    assert "rejected the credentials" in r.output
    assert wrong not in r.output


def test_password_in_url_is_masked_even_when_healthy_at_vvv(ansible, stack):
    redis = stack[0]
    r = ansible.module("celery_health", dict(broker_url=redis.url, expected_workers=2), verbosity=3)
    assert r.rc == 0, r
    assert redis.password not in r.output and redis.password not in str(r.result)
    assert r["broker"] == "redis://:***@127.0.0.1:%d/0" % redis.port


def test_missing_password_says_one_is_needed(ansible, stack):
    redis = stack[0]
    r = ansible.module("celery_health", dict(broker_url="redis://127.0.0.1:%d/0" % redis.port))
    assert r.rc != 0 and "requires a password and none was given" in r["msg"], r


def test_broker_password_option_works(ansible, stack):
    redis = stack[0]
    r = ansible.module("celery_health", dict(broker_url="redis://127.0.0.1:%d/0" % redis.port,
                                             broker_password=redis.password, expected_workers=2), verbosity=3)
    assert r.rc == 0, r
    assert redis.password not in r.output


@pytest.mark.parametrize("url", ["amqp://guest:guest@localhost//", "http://127.0.0.1:6379", "127.0.0.1:6379"])
def test_bad_url_scheme_is_refused(ansible, url):
    r = ansible.module("celery_health", dict(broker_url=url))
    assert r.rc != 0
    assert "scheme" in r["msg"] and "redis://" in r["msg"], r
    assert "guest:guest" not in r["msg"]


@pytest.mark.parametrize("timeout", [0, -1])
def test_timeout_must_be_positive(ansible, timeout):
    r = ansible.module("celery_health", dict(broker_url="redis://127.0.0.1:1/0", timeout=timeout))
    assert r.rc != 0 and "timeout must be greater than 0" in r["msg"], r


def test_expected_workers_rejects_nonsense(ansible):
    r = ansible.module("celery_health", dict(broker_url="redis://127.0.0.1:1/0", expected_workers={"a": 1}))
    assert r.rc != 0 and "expected_workers must be a count or a list" in r["msg"], r


def test_no_workers_at_all(ansible, redis_server):
    r = health(ansible, redis_server, expected_workers=2, timeout=1)
    assert r.rc != 0
    assert "no Celery worker answered ping (2 needed)" in r["msg"], r
    assert r["workers_online"] == 0
    assert r["duration"] < 2.0, r


def test_no_workers_reported_without_failing_when_asked(ansible, redis_server):
    r = health(ansible, redis_server, timeout=0.5, fail_on_unhealthy=False)
    assert r.rc == 0, r
    assert r["healthy"] is False and r["problems"]


def test_one_of_two_workers_killed(ansible, stack):
    redis, cluster = stack
    cluster.kill("w2@harness")
    r = health(ansible, redis, expected_workers=["w1@harness", "w2@harness"], timeout=1)
    assert r.rc != 0
    assert r["workers_online"] == 1
    assert r["workers_missing"] == ["w2@harness"]
    assert "w2@harness" in r["msg"]
    assert r["duration"] < 2.0, r


def test_min_workers_tolerates_one_missing_but_still_lists_it(ansible, stack):
    redis, cluster = stack
    cluster.kill("w2@harness")
    r = health(ansible, redis, expected_workers=["w1@harness", "w2@harness"], min_workers=1, timeout=1)
    assert r.rc == 0, r
    assert r["workers_missing"] == ["w2@harness"]


def test_busy_prefork_worker_still_answers_and_shows_its_task(ansible, stack):
    redis = stack[0]
    publish(redis.url, "quality", 1, task="callcenter_sample.sleep", args=[8])
    deadline = time.monotonic() + 15
    while True:
        r = health(ansible, redis, expected_workers=2, queues=QUEUES, timeout=2)
        if sum(w["active"] or 0 for w in r.get("workers", [])) == 1 or time.monotonic() > deadline:
            break
    assert r.rc == 0, r
    assert r["workers_online"] == 2
    assert sum(w["active"] for w in r["workers"]) == 1


def test_busy_solo_worker_does_not_answer(ansible, redis_server, celery_factory):
    cluster = celery_factory(redis_server.url)
    cluster.start_workers(["solo"], queues=["quality"], pool="solo")
    publish(redis_server.url, "quality", 1, task="callcenter_sample.sleep", args=[8])
    time.sleep(1.5)
    r = health(ansible, redis_server, expected_workers=["solo@harness"], timeout=1)
    assert r.rc != 0
    assert r["workers_missing"] == ["solo@harness"]


def test_unknown_queue_is_flagged_not_fatal(ansible, stack):
    redis = stack[0]
    r = health(ansible, redis, expected_workers=2, queues=["qualty"])
    assert r.rc == 0, r
    assert r["queue_details"]["qualty"]["exists"] is False
    assert "queue qualty is empty and no worker has declared it" in r.output


def test_beat_schedule_shows_last_daily_stats(ansible, stack):
    redis, cluster = stack
    schedule = cluster.start_beat(interval=1)
    deadline = time.monotonic() + 20
    while True:
        r = health(ansible, redis, expected_workers=2, beat_schedule_file=str(schedule), max_beat_age=30)
        if (r.rc == 0 and r["beat"].get("last_daily_stats", {}).get("total_run_count", 0) >= 1) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert r.rc == 0, r
    entry = r["beat"]["last_daily_stats"]
    assert entry["task"] == "callcenter_sample.daily_stats"
    assert entry["age_seconds"] < 30
    # beat stopped: the entry goes stale
    cluster.beat.stop()
    time.sleep(2.2)
    r = health(ansible, redis, expected_workers=2, beat_schedule_file=str(schedule), beat_entries=["last_daily_stats"],
               max_beat_age=2)
    assert r.rc != 0
    assert "beat entry last_daily_stats last ran" in r["msg"], r


def test_missing_beat_file(ansible, stack, tmp_path):
    redis = stack[0]
    r = health(ansible, redis, expected_workers=2, beat_schedule_file=str(tmp_path / "nope" / "celerybeat-schedule"))
    assert r.rc != 0 and "does not exist" in r["msg"], r
    # the rest of the check still ran
    assert r["workers_online"] == 2


def test_corrupt_beat_file(ansible, stack, tmp_path):
    redis = stack[0]
    bad = tmp_path / "celerybeat-schedule"
    bad.write_bytes(os.urandom(4096))
    r = health(ansible, redis, expected_workers=2, beat_schedule_file=str(bad))
    assert r.rc != 0 and "not a dbm/shelve file" in r["msg"], r
    assert "Traceback" not in r.output


def test_beat_path_that_is_a_directory(ansible, stack, tmp_path):
    redis = stack[0]
    r = health(ansible, redis, expected_workers=2, beat_schedule_file=str(tmp_path))
    assert r.rc != 0 and "is a directory" in r["msg"], r


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become an unprivileged user")
def test_unreadable_beat_file_says_permission_denied(tmp_path):
    """An operator account that cannot read beat's file. As root everything is readable, so a
    forked child becomes nobody and reads it through the collection's own code."""
    import pwd
    import tempfile
    from ansible_collections.callcenter.ops.plugins.module_utils import celery_client as cc
    folder = tempfile.mkdtemp(prefix="ccops-beat-")
    try:
        os.chmod(folder, 0o755)
        f = os.path.join(folder, "celerybeat-schedule")
        with open(f, "wb") as fh:
            fh.write(b"x")
        os.chmod(f, 0o600)
        rd, wr = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(rd)
            msg = "no error"
            try:
                nobody = pwd.getpwnam("nobody")
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
                cc.read_beat_schedule(f)
            except cc.BeatError as e:
                msg = str(e)
            except BaseException as e:
                msg = "unexpected %r" % e
            os.write(wr, msg.encode())
            os._exit(0)
        os.close(wr)
        os.waitpid(pid, 0)
        msg = os.read(rd, 4096).decode()
        assert "permission denied" in msg, msg
    finally:
        import shutil
        shutil.rmtree(folder, ignore_errors=True)


def test_metrics_file_feeds_the_backlog_alert_and_check_mode_writes_nothing(ansible, redis_server, tmp_path):
    import shutil
    import subprocess
    publish(redis_server.url, "quality", 4)
    publish(redis_server.url, "quality", 2, priority=9)
    (tmp_path / "textfile").mkdir()
    metrics = tmp_path / "textfile" / "celery.prom"
    args = dict(broker_url=redis_server.url, queues=["quality", "stats"], min_workers=0, timeout=0.5,
                metrics_file=str(metrics))
    r = ansible.module("celery_health", args, check=True)
    assert r.rc == 0 and r["changed"] is False and not metrics.exists(), r
    r = ansible.module("celery_health", args)
    assert r.rc == 0 and r["changed"] is True and r["metrics_written"] is True, r
    text = metrics.read_text()
    assert 'callcenter_celery_queue_length{queue="quality"} 6' in text
    assert 'callcenter_celery_queue_length{queue="stats"} 0' in text
    assert "callcenter_celery_workers_online 0" in text and "callcenter_celery_healthy 1" in text
    assert [p.name for p in (tmp_path / "textfile").iterdir()] == ["celery.prom"]  # no temp file left
    if shutil.which("promtool"):
        p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False)
        assert p.returncode == 0, p.stdout + p.stderr
