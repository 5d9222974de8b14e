"""celery_health against a real Redis and real Celery workers of the sample app.

Every run goes through the installed collection on the command line. The runs that read the
shared workers, or a Redis of their own that nothing else changes, are the tasks of ONE
ansible-playbook run (the ``batch`` fixture, tests/modbatch.py); the ad-hoc password cases,
the runs against workers a test kills, loads or starts, and the playbook cases keep their own."""

import os
import sys
import time
from types import SimpleNamespace

import pytest

from modbatch import case, probe, run_batch

QUEUES = ["quality", "stats"]


def publish(broker_url, queue, count, priority=None, task="callcenter_sample.score_call", args=None,
            steps=(0, 3, 6, 9)):
    """Put messages into a queue the way the platform does (Celery's own producer), with the
    app's ``priority_steps``."""
    from celery import Celery
    app = Celery("producer", broker=broker_url, set_as_current=False)
    app.conf.broker_transport_options = {"priority_steps": list(steps), "queue_order_strategy": "priority"}
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
    """Redis and two workers of its own, for a test that kills, loads or adds to them."""
    cluster = celery_factory(redis_server.url)
    cluster.start_workers(["w1", "w2"])
    return redis_server, cluster


@pytest.fixture(scope="module")
def shared_stack(tmp_path_factory):
    """One Redis and two workers for the tests that only read them (each start costs seconds of
    CPU): they never kill a worker, send a task or write to the broker."""
    from conftest import CeleryCluster, RedisServer
    root = tmp_path_factory.mktemp("shared-stack")
    redis = RedisServer(root / "redis", "s3cret-Pa55").start()
    cluster = CeleryCluster(redis.url, root / "celery", "callcenter_sample")
    try:
        cluster.start_workers(["w1", "w2"])
        yield redis, cluster
    finally:
        cluster.stop()
        redis.stop()


@pytest.fixture(scope="module")
def batch(ansible, shared_stack, tmp_path_factory):
    """The cases that read the shared workers, and the cases that each need a Redis of their
    own (messages published into it, no worker, stopped, blackholed), as the tasks of ONE
    ansible-playbook run (tests/modbatch.py)."""
    import socket
    from conftest import RedisServer
    root = tmp_path_factory.mktemp("celery-health")
    redis = shared_stack[0]
    own = {}

    def redis_of(label):
        own[label] = RedisServer(root / ("redis%d" % len(own)), "s3cret-Pa55").start()
        return own[label]

    hole = socket.socket()
    try:
        cases = {}

        def add(label, server, **args):
            params = dict(broker_url=server.url, timeout=1.5)
            params.update(args)
            cases[label] = case("celery_health", params)

        add("two workers", redis, expected_workers=2, queues=QUEUES, timeout=5)
        add("queues by default", redis, expected_workers=["w1@harness", "w2@harness"])
        cases["check mode"] = case("celery_health", dict(broker_url=redis.url, expected_workers=2), check=True)
        cases["missing password"] = case("celery_health", dict(broker_url="redis://127.0.0.1:%d/0" % redis.port))
        add("unknown queue", redis, expected_workers=2, queues=["qualty"])
        add("missing beat file", redis, expected_workers=2,
            beat_schedule_file=str(root / "nope" / "celerybeat-schedule"))
        bad = root / "celerybeat-schedule"
        bad.write_bytes(os.urandom(4096))
        add("corrupt beat file", redis, expected_workers=2, beat_schedule_file=str(bad))
        add("beat path is a directory", redis, expected_workers=2, beat_schedule_file=str(root))

        prio = redis_of("priorities")
        publish(prio.url, "backlog", 3)
        publish(prio.url, "backlog", 2, priority=6)
        publish(prio.url, "backlog", 1, priority=9)
        add("priorities", prio, queues=["backlog"], min_workers=0, timeout=0.5)

        backlog = redis_of("backlog")
        publish(backlog.url, "quality", 5, priority=3)
        add("backlog", backlog, queues=["quality"], min_workers=0, max_queue_length=4, timeout=0.5)

        down = redis_of("down")
        down.stop()
        add("redis down", down, expected_workers=2, timeout=3)

        hole.bind(("127.0.0.1", 0))
        hole.listen(0)  # accepts the TCP handshake, never answers
        cases["blackholed"] = case("celery_health", dict(broker_url="redis://127.0.0.1:%d/0" % hole.getsockname()[1],
                                                         timeout=1))

        empty = redis_of("no workers")
        add("no workers", empty, expected_workers=2, timeout=1)
        add("no workers, not failing", empty, timeout=0.5, fail_on_unhealthy=False)

        textfile = root / "textfile"
        textfile.mkdir()
        metrics_redis = redis_of("metrics")
        publish(metrics_redis.url, "quality", 4)
        publish(metrics_redis.url, "quality", 2, priority=9)
        metrics_args = dict(broker_url=metrics_redis.url, queues=["quality", "stats"], min_workers=0, timeout=0.5,
                            metrics_file=str(textfile / "celery.prom"))
        cases["metrics, check mode"] = case("celery_health", metrics_args, check=True)
        cases["metrics check mode wrote nothing"] = probe("'%s' is exists" % (textfile / "celery.prom"))
        cases["metrics"] = case("celery_health", metrics_args)

        playbook, runs = run_batch(ansible, cases)
        yield SimpleNamespace(runs=runs, own=own, playbook=playbook, textfile=textfile, port=down.port)
    finally:
        hole.close()
        for server in own.values():
            try:
                server.stop()
            except Exception:  # one failed stop must not leave the others running
                pass


def health(ansible, redis, **args):
    params = dict(broker_url=redis.url, timeout=1.5)
    params.update(args)
    return ansible.module("celery_health", params)


def test_two_workers_answer_at_once_when_expected(batch):
    r = batch.runs["two workers"]
    assert r.rc == 0, r
    assert r["healthy"] is True and r["problems"] == []
    assert r["workers_online"] == 2
    assert [w["name"] for w in r["workers"]] == ["w1@harness", "w2@harness"]
    assert all(w["ping"] and w["active"] == 0 for w in r["workers"])
    assert r["queues"] == {"quality": 0, "stats": 0}
    assert r["changed"] is False
    # limit=expected: returns long before the 5 s timeout (half of it: a loaded machine's imports aside)
    assert r["duration"] < 2.5, r


def test_queues_default_to_what_workers_consume(batch):
    r = batch.runs["queues by default"]
    assert r.rc == 0, r
    assert sorted(r["queues"]) == QUEUES
    # who consumes what: per worker, and per queue (the backlog diagnosis names them)
    assert all(w["queues"] == QUEUES for w in r["workers"]), r["workers"]
    assert all(r["queue_details"][q]["consumers"] == ["w1@harness", "w2@harness"] for q in QUEUES), r


def test_check_mode_is_the_same_read_only_check(batch):
    r = batch.runs["check mode"]
    assert r.rc == 0 and r["changed"] is False and r["healthy"], r


def test_priority_messages_are_counted_in_every_sub_queue(batch):
    r = batch.runs["priorities"]
    assert r.rc == 0, r
    assert r["queues"] == {"backlog": 6}
    # LLEN of the bare name alone would say 3
    assert batch.own["priorities"].client().llen("backlog") == 3
    # step 0 and the steps that hold messages
    assert r["queue_details"]["backlog"]["by_priority"] == {"0": 3, "6": 2, "9": 1}


def test_backlog_over_threshold_makes_it_unhealthy(batch):
    r = batch.runs["backlog"]
    assert r.rc != 0
    assert "queue quality has 5 messages waiting (max 4)" in r["msg"]


def test_redis_down_is_reported_at_once(batch):
    r = batch.runs["redis down"]
    assert r.rc != 0
    assert "refused the connection" in r["msg"] and "127.0.0.1:%d" % batch.port in r["msg"], r
    assert "Traceback" not in r.output
    assert r["duration"] < 1.5, r  # at once: within half of its 3 s timeout


def test_redis_blackholed_is_reported_within_timeout(batch):
    r = batch.runs["blackholed"]
    assert r.rc != 0
    assert "did not answer within 1.0s" in r["msg"], r
    assert r["duration"] < 1 + 2.5, r  # its 1 s timeout, plus start-up and closing on a loaded machine


def test_wrong_password_is_named_and_never_printed(ansible, shared_stack):
    """Ad hoc, the URL comes from the environment: ansible-core itself echoes a failed ad-hoc
    task's -a arguments, so that is where operators are told to put it."""
    redis = shared_stack[0]
    wrong = "Wr0ng-Pa55word"
    url = redis.url.replace(redis.password, wrong)
    r = ansible.module("celery_health", dict(expected_workers=2), verbosity=3, env={"CELERY_BROKER_URL": url})
    assert r.rc != 0
    assert "rejected the credentials" in r["msg"], r
    assert wrong not in r.output and wrong not in str(r.result)


def test_wrong_password_in_a_playbook_is_never_printed_at_vvv(ansible, shared_stack, tmp_path):
    redis = shared_stack[0]
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


def test_password_in_url_is_masked_even_when_healthy_at_vvv(vvv):
    redis, runs = vvv
    r = runs["password in the URL"]
    assert r.rc == 0, r
    assert redis.password not in r.output and redis.password not in str(r.result)
    assert r["broker"] == "redis://:***@127.0.0.1:%d/0" % redis.port


def test_missing_password_says_one_is_needed(batch):
    r = batch.runs["missing password"]
    assert r.rc != 0 and "requires a password and none was given" in r["msg"], r


def test_broker_password_option_works(vvv):
    redis, runs = vvv
    r = runs["broker_password"]
    assert r.rc == 0, r
    assert redis.password not in r.output


def test_no_workers_at_all(batch):
    r = batch.runs["no workers"]
    assert r.rc != 0
    assert "no Celery worker answered ping (2 needed)" in r["msg"], r
    assert r["workers_online"] == 0
    assert r["duration"] < 1 + 2.5, r  # one 1 s ping window (see test_one_of_two_workers_killed)


def test_no_workers_reported_without_failing_when_asked(batch):
    r = batch.runs["no workers, not failing"]
    assert r.rc == 0, r
    assert r["healthy"] is False and r["problems"]


@pytest.fixture(scope="module")
def one_killed(ansible, tmp_path_factory):
    """Redis and two workers, w2 killed; both runs that read that state in one ansible-playbook."""
    from conftest import CeleryCluster, RedisServer
    root = tmp_path_factory.mktemp("one-killed")
    redis = RedisServer(root / "redis", "s3cret-Pa55").start()
    cluster = CeleryCluster(redis.url, root / "celery", "callcenter_sample")
    try:
        cluster.start_workers(["w1", "w2"])
        cluster.kill("w2@harness")
        expected = ["w1@harness", "w2@harness"]
        _playbook, runs = run_batch(ansible, {
            "killed": case("celery_health", dict(broker_url=redis.url, expected_workers=expected, timeout=1)),
            "min_workers": case("celery_health", dict(broker_url=redis.url, expected_workers=expected, min_workers=1,
                                                      timeout=1)),
        })
        yield runs
    finally:
        cluster.stop()
        redis.stop()


def test_one_of_two_workers_killed(one_killed):
    r = one_killed["killed"]
    assert r.rc != 0
    assert r["workers_online"] == 1
    assert r["workers_missing"] == ["w2@harness"]
    assert "w2@harness" in r["msg"]
    # one 1 s ping window, not a wait for the missing worker (2.5 s measured on the loaded CI machine)
    assert r["duration"] < 1 + 2.5, r


def test_min_workers_tolerates_one_missing_but_still_lists_it(one_killed):
    r = one_killed["min_workers"]
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
    # 20 s of work, taken before the check starts (the message reserved: the solo pool runs it at
    # once), so the check's ping lands while the only process is busy, however slow this machine is.
    publish(redis_server.url, "quality", 1, task="callcenter_sample.sleep", args=[20])
    deadline = time.monotonic() + 30
    while not redis_server.client().hlen("unacked") and time.monotonic() < deadline:
        time.sleep(0.1)
    r = health(ansible, redis_server, expected_workers=["solo@harness"], timeout=1)
    assert r.rc != 0
    assert r["workers_missing"] == ["solo@harness"]


def test_unknown_queue_is_flagged_not_fatal(batch):
    r = batch.runs["unknown queue"]
    assert r.rc == 0, r
    assert r["queue_details"]["qualty"]["exists"] is False
    assert "queue qualty is empty and no worker has declared it" in r.own_output
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


def test_missing_beat_file(batch):
    r = batch.runs["missing beat file"]
    assert r.rc != 0 and "does not exist" in r["msg"], r
    # the rest of the check still ran
    assert r["workers_online"] == 2


def test_corrupt_beat_file(batch):
    r = batch.runs["corrupt beat file"]
    assert r.rc != 0 and "not a dbm/shelve file" in r["msg"], r
    assert "Traceback" not in r.output


def test_beat_path_that_is_a_directory(batch):
    r = batch.runs["beat path is a directory"]
    assert r.rc != 0 and "is a directory" in r["msg"], r


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become an unprivileged user")
def test_unreadable_beat_file_says_permission_denied(tmp_path):
    """An operator account that cannot read beat's file. As root everything is readable, so a
    forked child becomes nobody and reads it through the collection's own code."""
    import pwd
    import tempfile
    from ansible_collections.callcenter.ops.plugins.module_utils import celery_beat
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
                celery_beat.read_beat_schedule(f)
            except celery_beat.BeatError as e:
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


def test_metrics_file_feeds_the_backlog_alert_and_check_mode_writes_nothing(batch, promtool):
    r = batch.runs["metrics, check mode"]
    assert r.rc == 0 and r["changed"] is False and batch.runs["metrics check mode wrote nothing"]["value"] is False, r
    r = batch.runs["metrics"]
    assert r.rc == 0 and r["changed"] is True and r["metrics_written"] is True, r
    text = (batch.textfile / "celery.prom").read_text()
    assert 'callcenter_celery_queue_length{queue="quality"} 6' in text
    assert 'callcenter_celery_queue_length{queue="stats"} 0' in text
    assert "callcenter_celery_workers_online 0" in text and "callcenter_celery_healthy 1" in text
    assert [p.name for p in batch.textfile.iterdir()] == ["celery.prom"]  # no temp file left
    p = promtool(["check", "metrics"], text)
    assert p.returncode == 0, p.stdout + p.stderr


# --- an app with priority_steps=list(range(10)) (Celery's docs suggest it for Redis)

# messages per priority 0..9: 37 in all, 14 of them at the default steps 0, 3, 6, 9
PER_PRIORITY = [4, 3, 5, 2, 6, 1, 4, 3, 5, 4]


def ten_step_backlog(redis, celery_factory, queue="stats"):
    """Workers of the ten-step sample app declare their queues, stop, and 37 messages with
    priorities 0..9 wait for them (as during an outage of the workers)."""
    cluster = celery_factory(redis.url, app="callcenter_sample_prio")
    cluster.start_workers(["p1"], queues=["quality", "stats"])
    cluster.stop()
    for priority, n in enumerate(PER_PRIORITY):
        publish(redis.url, queue, n, priority=priority, task="callcenter_sample.daily_stats", args=[],
                steps=range(10))
    lists = sorted(k for k in redis.client().keys(queue + "*") if redis.client().type(k) == b"list")
    assert len(lists) == 10, lists  # kombu made one list per step
    return sum(PER_PRIORITY)


@pytest.fixture(scope="module")
def vvv(ansible, shared_stack):
    """The runs whose whole output at -vvv must hold no password, in one ansible-playbook -vvv."""
    redis = shared_stack[0]
    _playbook, runs = run_batch(ansible, {
        "password in the URL": case("celery_health", dict(broker_url=redis.url, expected_workers=2)),
        "broker_password": case("celery_health", dict(broker_url="redis://127.0.0.1:%d/0" % redis.port,
                                                      broker_password=redis.password, expected_workers=2)),
    }, verbosity=3)
    return redis, runs


@pytest.fixture(scope="module")
def ten_steps(ansible, tmp_path_factory):
    """One ten-step backlog (ten_step_backlog), read by celery_health and by system_status in
    one ansible-playbook run."""
    from conftest import CeleryCluster, RedisServer, stopped_afterwards
    root = tmp_path_factory.mktemp("ten-steps")
    redis = RedisServer(root / "redis", "s3cret-Pa55").start()
    try:
        with stopped_afterwards(lambda i, broker_url, app="callcenter_sample":
                                CeleryCluster(broker_url, root / ("celery%d" % i), app)) as make:
            total = ten_step_backlog(redis, make)
        _playbook, runs = run_batch(ansible, {
            "celery_health": case("celery_health", dict(broker_url=redis.url, queues=["stats"], min_workers=0,
                                                        timeout=0.5)),
            "system_status": case("system_status", dict(broker_url=redis.url, queues=["stats"], timeout=1)),
        })
        yield total, runs
    finally:
        redis.stop()


def test_ten_priority_steps_are_all_counted_without_naming_them(ten_steps):
    total, runs = ten_steps
    r = runs["celery_health"]
    assert r.rc == 0, r
    assert r["queues"] == {"stats": total}  # 37, not the 14 of steps 0,3,6,9
    assert r["queue_details"]["stats"]["by_priority"] == dict((str(p), n) for p, n in enumerate(PER_PRIORITY))
    assert r["queue_details"]["stats"]["exists"] is True


def test_system_status_counts_the_same_ten_steps(ten_steps):
    total, runs = ten_steps
    r = runs["system_status"]
    assert r.rc == 0, r
    assert r["components"]["celery"]["queues"] == {"stats": total}, r


def test_system_status_takes_the_broker_password_from_the_environment(ansible, shared_stack):
    """The same broker options as celery_health: CELERY_BROKER_PASSWORD keeps the password off
    the ad-hoc command line (ad hoc: a task's own environment is shown at -vvv, the process's not)."""
    redis = shared_stack[0]
    r = ansible.module("system_status", dict(broker_url="redis://127.0.0.1:%d/0" % redis.port, timeout=1),
                       env={"CELERY_BROKER_PASSWORD": redis.password}, verbosity=3)
    assert r.rc == 0, r
    assert r["components"]["redis"]["status"] == "ok", r["components"]["redis"]
    assert redis.password not in r.output


@pytest.mark.parametrize("module, timeout", [("celery_health", "nan"), ("celery_queue_purge", "1e12")])
def test_timeout_nonsense_is_refused_with_a_sentence(ansible, module, timeout):
    """As typed on an ad-hoc command line: -a 'timeout=nan' (the whole matrix, and the other
    refusals of bad input, run in-process in tests/unit/plugins/modules/test_celery_args.py)."""
    cmd = [str(ansible.env["PATH"].split(":")[0] + "/ansible"), "localhost", "-m", "callcenter.ops." + module,
           "-a", "broker_url=redis://127.0.0.1:1/0 queues=stats timeout=%s" % timeout]
    import subprocess
    p = subprocess.run(cmd, env=ansible.env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                       check=False)
    out = p.stdout + p.stderr
    assert p.returncode != 0
    assert "timeout must be" in out, out
    assert "Traceback" not in out and "_PyTime_t" not in out and "refused" not in out, out


def _python_without_celery(tmp_path, with_redis=True):
    """Environment for ``ansible.module`` that runs the module with /usr/bin/python3 (Debian's:
    neither celery nor redis-py) plus, on PYTHONPATH, only redis-py. An inventory sets the
    interpreter: the implicit localhost always uses the controller's own Python."""
    import shutil
    import subprocess
    python = shutil.which("python3", path="/usr/bin")
    if not python or subprocess.run([python, "-c", "import celery"], capture_output=True, check=False).returncode == 0:
        pytest.skip("needs a system python3 without celery")
    version = subprocess.run([python, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True,
                             check=False).stdout.strip()
    if version != str(tuple(sys.version_info[:2])):  # redis-py of this venv must suit that Python
        pytest.skip("the system python3 (%s) is not this venv's Python" % version)
    site = tmp_path / "site"
    site.mkdir()
    if with_redis:
        import redis
        packages = os.path.dirname(os.path.dirname(redis.__file__))
        for name in ("redis", "async_timeout"):
            if os.path.exists(os.path.join(packages, name)):
                os.symlink(os.path.join(packages, name), site / name)
    inventory = tmp_path / "hosts"
    inventory.write_text("localhost ansible_connection=local ansible_python_interpreter=%s\n" % python)
    return dict(ANSIBLE_INVENTORY=str(inventory), PYTHONPATH=str(site))


def test_host_without_celery_gets_the_missing_library_message(ansible, redis_server, tmp_path):
    env = _python_without_celery(tmp_path)
    r = ansible.module("celery_health", dict(broker_url=redis_server.url, expected_workers=1), env=env)
    assert r.rc != 0
    assert "Failed to import the required Python library (celery)" in r["msg"], r
    assert "No module named" not in r["msg"] and "Traceback" not in r.output


def test_host_without_redis_py_gets_the_missing_library_message(ansible, redis_server, tmp_path):
    env = _python_without_celery(tmp_path, with_redis=False)
    for module in ("celery_health", "celery_queue_purge"):
        r = ansible.module(module, dict(broker_url=redis_server.url, queues=["stats"]), env=env)
        assert r.rc != 0
        assert "Failed to import the required Python library (redis)" in r["msg"], r


def test_purge_needs_only_redis_py(ansible, redis_server, tmp_path):
    env = _python_without_celery(tmp_path)
    publish(redis_server.url, "stats", 2)
    r = ansible.module("celery_queue_purge", dict(broker_url=redis_server.url, queues=["stats"]), check=True, env=env)
    assert r.rc == 0 and r["total"] == 2, r


@pytest.mark.parametrize("module", ["celery_health", "celery_queue_purge"])
def test_module_docs_render_with_the_shared_broker_fragments(ansible, module):
    import subprocess
    p = subprocess.run([str(ansible.env["PATH"].split(":")[0] + "/ansible-doc"), "callcenter.ops." + module],
                       env=ansible.env, capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 0, p.stderr
    assert "CELERY_BROKER_PASSWORD" in p.stdout and "broker_url" in p.stdout
    assert "print a failed ad-hoc" in " ".join(p.stdout.split())
