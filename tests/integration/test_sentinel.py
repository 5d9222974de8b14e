"""The broker behind Redis Sentinel, with the real programs: a Redis master and replica, three
Sentinels (``redis-server --sentinel``, down-after 1 s), Celery workers of the sample app
consuming through ``sentinel://``. celery_health, celery_queue_purge, the celery_metrics
collector and system_status read the same URL; killing the master during a run ends that run
within its timeout with a sentence, and the run after the failover reads the new master.

One set for the module: the tests that only read it first, then the failover tests, each
killing the master it finds; between them the killed node comes back as the new master's
replica (``restored``), and the last test kills both nodes."""

import contextlib
import json
import subprocess
import threading
import time

import pytest

from conftest import CeleryCluster, ModuleResult, free_port, run_module, wait_for
from replication import RedisSentinelSet
from test_celery_metrics_role import apply_role, run_cron, samples, success, value

PASSWORD = "Redis-Master-Pa55"
SENTINEL_PASSWORD = "Sentinel-Pa55-9"
WORKERS = ["w1@harness", "w2@harness"]
QUEUES = ["quality", "stats", "backlog"]
# A module run in-process (tests/conftest.py run_module) would read these from the test's environment (the workers need them)
NO_SENTINEL_ENV = {"CELERY_BROKER_SENTINEL_MASTER": None, "CELERY_BROKER_SENTINEL_PASSWORD": None}


def transport_options(rs):
    return {"master_name": rs.master_name, "sentinel_kwargs": {"password": rs.sentinel_password},
            "priority_steps": [0, 3, 6, 9], "queue_order_strategy": "priority"}


def publish(rs, queue, count):
    """Messages put in the way the app does: Celery's producer through the Sentinels."""
    from celery import Celery
    app = Celery("producer", broker=rs.url, set_as_current=False)
    app.conf.broker_transport_options = transport_options(rs)
    try:
        for i in range(count):
            app.send_task("callcenter_sample.score_call", args=[i], queue=queue)
    finally:
        app.close()


def ping(rs, names, timeout=1.0):
    from celery import Celery
    app = Celery("harness", broker=rs.url, set_as_current=False)
    app.conf.broker_transport_options = transport_options(rs)
    try:
        replies = app.control.ping(destination=list(names), timeout=timeout, limit=len(names)) or []
        return sorted(k for r in replies for k in r)
    finally:
        app.close()


@contextlib.contextmanager
def running_set(workdir):
    """Master + replica + 3 Sentinels (both with passwords), two workers on sentinel://; the
    workers stop first, while their broker still answers, then the Redis set."""
    rs = RedisSentinelSet(workdir / "redis", password=PASSWORD, sentinel_password=SENTINEL_PASSWORD)
    cluster = None
    with pytest.MonkeyPatch.context() as mp:
        try:
            rs.start()
            # the workers' app reads master_name and the Sentinels' password from these (as an app would)
            mp.setenv("CELERY_BROKER_SENTINEL_MASTER", rs.master_name)
            mp.setenv("CELERY_BROKER_SENTINEL_PASSWORD", SENTINEL_PASSWORD)
            cluster = CeleryCluster(rs.url, workdir / "celery", app="callcenter_sample_sentinel")
            cluster.start_workers(["w1", "w2"], wait=False)
            wait_for(lambda: ping(rs, WORKERS) == WORKERS, 40, "workers through the Sentinels")
            yield rs, cluster
        finally:
            if cluster:
                cluster.stop()
            rs.stop()


@pytest.fixture(scope="module")
def sentinel_set(ansible, tmp_path_factory):  # pylint: disable=unused-argument
    """One set (and its two workers) for the module. ``ansible`` first, so its environment never
    holds the Sentinel variables."""
    with running_set(tmp_path_factory.mktemp("sentinel")) as rs_cluster:
        yield rs_cluster


@pytest.fixture
def sentinel_stack(sentinel_set):
    """The module's set as every test expects it (see ``restored``)."""
    restored(sentinel_set[0])
    return sentinel_set


def restored(rs):
    """A master and one replica in sync, every Sentinel agreeing on them, no message in the
    backlog queue. After a test's failover the killed node is started again as a replica of the
    new master (as an operator brings a crashed Redis back); ``rs.master`` and ``rs.replicas``
    then name the nodes' roles now. The failover tests kill the master in turn; the last test of
    the module kills both nodes."""
    port = rs.master_port()
    master = rs.node_on(port)
    for node in rs.nodes:
        if node is not master and node.proc.poll() is not None:
            node.replicaof = port
            node.start()
    rs.master = master
    rs.replicas = [n for n in rs.nodes if n is not master]
    wait_for(lambda: all(r.client().info("replication").get("master_link_status") == "up" for r in rs.replicas),
             30, "the replicas in sync with the master on port %d" % port)

    def sentinels_agree():
        for s in rs.sentinels:
            c = s.client()
            m = c.sentinel_master(rs.master_name)
            replicas = c.sentinel_slaves(rs.master_name)
            if int(m["port"]) != port or m.get("is_sdown") or m.get("is_odown") or len(replicas) != len(rs.replicas):
                return False
            if any(r.get("is_sdown") or r.get("is_disconnected") or int(r["master-port"]) != port for r in replicas):
                return False
            if int(m["num-other-sentinels"]) != len(rs.sentinels) - 1:
                return False
        return True
    wait_for(sentinels_agree, 30, "Sentinels that agree on the master on port %d and see its replica up" % port)
    master.client().delete(*["backlog"] + ["backlog\x06\x16%d" % p for p in (3, 6, 9)])
    sync_replicas(rs)


def args(rs, **over):
    a = dict(broker_url=rs.url, sentinel_master_name=rs.master_name, sentinel_password=SENTINEL_PASSWORD, timeout=2)
    a.update(over)
    return a


def assert_no_secret(r):
    for s in (PASSWORD, SENTINEL_PASSWORD):
        assert s not in r.output and s not in str(r.result), r


def sync_replicas(rs):
    """Wait until the replica has every write (WAIT), so a failover loses no message."""
    master = rs.node_on(rs.master_port())
    assert master.client().execute_command("WAIT", len(rs.replicas), 5000) == len(rs.replicas)


def test_no_sentinel_answering_is_named_within_the_timeout(ansible, blackhole):
    url = "sentinel://127.0.0.1:%d;sentinel://127.0.0.1:%d" % (free_port(), blackhole)
    r = ansible.module("celery_health", dict(broker_url=url, sentinel_master_name="mymaster", timeout=1.5))
    assert r.rc != 0, r
    assert "no Redis Sentinel answered" in r["msg"] and "connection refused" in r["msg"], r
    assert "no answer within 1.5s" in r["msg"], r
    assert r["duration"] < 2.5, r
    assert "Traceback" not in r.output


# ------------------------------------------------ tests that read the set
def test_celery_health_and_purge_read_the_master_the_sentinels_name(ansible, sentinel_stack):
    rs, _cluster = sentinel_stack
    publish(rs, "backlog", 7)
    r = ansible.module("celery_health", args(rs, expected_workers=WORKERS, queues=QUEUES))
    assert r.rc == 0, r
    assert r["workers_online"] == 2 and r["healthy"] is True
    assert r["queues"]["backlog"] == 7
    assert r["broker_master"] == "127.0.0.1:%d" % rs.master.port
    assert r["broker"].startswith("sentinel://:***@127.0.0.1:")
    assert_no_secret(r)
    print("celery_health through 3 Sentinels: %.2fs wall, module %.3fs" % (r.duration, r["duration"]))

    # the environment variables the option documents (what an ad-hoc call uses)
    r = ansible.module("celery_health", dict(broker_url=rs.url, expected_workers=2, queues=QUEUES),
                       env=dict(CELERY_BROKER_SENTINEL_MASTER=rs.master_name,
                                CELERY_BROKER_SENTINEL_PASSWORD=SENTINEL_PASSWORD))
    assert r.rc == 0 and r["queues"]["backlog"] == 7, r
    # the playbook form of the README
    r = ansible.playbook("callcenter.ops.celery_status", dict(
        celery_status_expected_workers=2, celery_status_queues=QUEUES, celery_sentinel_master_name=rs.master_name),
        env=dict(CELERY_BROKER_URL=rs.url, CELERY_BROKER_SENTINEL_PASSWORD=SENTINEL_PASSWORD))
    assert r.rc == 0 and "failed=0" in r.output, r
    assert PASSWORD not in r.output and SENTINEL_PASSWORD not in r.output

    # check mode in-process (the CLI's --check has its own test in test_celery_purge.py); the purge on the CLI
    r = run_module("celery_queue_purge", dict(args(rs, queues=["backlog"]), _ansible_check_mode=True),
                   env=NO_SENTINEL_ENV)
    assert not r.failed and r["purged"] == {"backlog": 7}, r
    assert PASSWORD not in json.dumps(dict((k, v) for k, v in r.items() if k != "invocation"))
    r = ansible.module("celery_queue_purge", args(rs, queues=["backlog"]))
    assert r.rc == 0 and r["total"] == 7 and r["broker_master"] == "127.0.0.1:%d" % rs.master.port, r
    assert rs.master.client().llen("backlog") == 0
    assert_no_secret(r)


def test_a_dead_first_sentinel_costs_no_timeout(ansible, sentinel_stack, blackhole):
    """kombu asks the Sentinels one after the other: the module hands it those that answered first."""
    rs, _cluster = sentinel_stack
    url = "sentinel://:%s@127.0.0.1:%d;%s" % (PASSWORD, blackhole, rs.url.replace(":%s@" % PASSWORD, ""))
    r = ansible.module("celery_health", args(rs, broker_url=url, expected_workers=WORKERS, queues=QUEUES, timeout=2))
    assert r.rc == 0, r
    assert r["workers_online"] == 2
    print("first Sentinel blackholed: module %.3fs" % r["duration"])
    assert r["duration"] < 2 + 1.5, r  # the Sentinels are asked at once: one timeout, not two
    assert_no_secret(r)


# One case on the real CLI (`ansible localhost -m`); the others run the same module in-process
# (tests/conftest.py run_module) against the same Sentinels: the sentence is the module's.
ON_THE_CLI = "master name unknown"


@pytest.mark.parametrize("case", ["master name unknown", "no sentinel password", "wrong sentinel password",
                                  "no master name"])
def test_sentinel_problems_are_sentences_within_the_timeout(ansible, sentinel_stack, case):
    rs, _cluster = sentinel_stack
    over = {"master name unknown": dict(sentinel_master_name="callcenter-typo"),
            "no sentinel password": dict(sentinel_password=None),
            "wrong sentinel password": dict(sentinel_password="Not-The-Sentinel-Pa55"),
            "no master name": dict(sentinel_master_name=None)}[case]
    a = dict((k, v) for k, v in args(rs, **over).items() if v is not None)
    if case == ON_THE_CLI:
        r = ansible.module("celery_health", a)
        assert r.rc != 0, r
        result, output = r.result, r.output
    else:
        result = run_module("celery_health", a, env=NO_SENTINEL_ENV)  # a traceback would raise here
        assert result.failed, result
        # what the CLI shows at its default verbosity (the tree callback drops "invocation")
        result = ModuleResult((k, v) for k, v in result.items() if k != "invocation")
        output = json.dumps(result)
    msg = result["msg"]
    expected = {"master name unknown": "do not know a master named 'callcenter-typo'",
                "no sentinel password": "requires a password: give sentinel_password",
                "wrong sentinel password": "rejected the Sentinel password",
                "no master name": "give sentinel_master_name (or CELERY_BROKER_SENTINEL_MASTER)"}[case]
    assert expected in msg, msg
    assert "Traceback" not in output
    assert result.get("duration", 0) < 2, result
    for s in (PASSWORD, SENTINEL_PASSWORD):
        assert s not in output and s not in str(result), result


# ------------------------------------------------ failovers: each kills the master it finds (the last one both nodes)
def kill_master_during_ping(rs, proc, timeout=30):
    """Wait until the check's Celery client has declared its reply queue on the master (it is
    in the middle of its ping), then SIGKILL the master; returns (old port, seconds it waited)."""
    master = rs.node_on(rs.master_port())
    client = master.client()
    key = "_kombu.binding.reply.celery.pidbox"
    # a reply queue of its own (a new member), not a count: on the module's one set earlier clients'
    # bindings may be removed while the check adds its own
    before = client.smembers(key)
    started = time.monotonic()
    wait_for(lambda: client.smembers(key) - before or proc.poll() is not None, timeout, "the check's Celery ping")
    assert proc.poll() is None, "the check ended before the master could be killed"
    rs.kill_master()
    return master.port, round(time.monotonic() - started, 2)


def test_master_killed_during_celery_health_then_the_next_run_reads_the_new_master(ansible, sentinel_stack):
    rs, _cluster = sentinel_stack
    publish(rs, "backlog", 5)
    sync_replicas(rs)
    # a worker that does not exist makes the ping wait its whole timeout: the window for the kill
    timeout = 4
    holder = {}

    def run():
        holder["r"] = ansible.module("celery_health", args(rs, timeout=timeout, queues=QUEUES,
                                                           expected_workers=WORKERS + ["w9@harness"]))
    t = threading.Thread(target=run)
    # ansible.module runs a subprocess: find it through the master instead of its handle
    t.start()
    old_port, _waited = kill_master_during_ping(rs, _Alive(t))
    killed_at = time.monotonic()
    t.join(timeout + 60)
    assert not t.is_alive()
    r = holder["r"]
    ended_after_kill = time.monotonic() - killed_at
    print("celery_health with the master killed mid-ping: rc %d, module %.2fs, wall %.2fs (ended %.2fs after the kill)"
          % (r.rc, r.get("duration", -1), r.duration, ended_after_kill))
    print("  msg: %s" % r["msg"])
    assert r.rc != 0, r
    assert "Traceback" not in r.output
    assert r["duration"] <= timeout + 3.0, r  # the call's hard deadline is timeout + CALL_GRACE (2 s)
    assert "127.0.0.1:%d" % old_port in r["msg"], r["msg"]
    assert_no_secret(r)

    failover = rs.wait_failover(old_port, timeout=30)
    print("Sentinels promoted the replica %.2fs after the run ended" % failover)
    new_port = rs.master_port()
    assert new_port != old_port
    # workers reconnect through the Sentinels on their own
    wait_for(lambda: ping(rs, WORKERS) == WORKERS, 60, "workers on the new master")
    r = ansible.module("celery_health", args(rs, expected_workers=WORKERS, queues=QUEUES))
    assert r.rc == 0, r
    assert r["broker_master"] == "127.0.0.1:%d" % new_port
    assert r["workers_online"] == 2 and r["queues"]["backlog"] == 5, r


class _Alive:
    """A thread that looks like a Popen to kill_master_during_ping (poll() is None while it runs)."""

    def __init__(self, thread):
        self.thread = thread

    def poll(self):
        return None if self.thread.is_alive() else 0


def test_master_killed_during_a_metrics_run_then_the_next_run_reads_the_new_master(ansible, sentinel_stack, tmp_path):
    rs, _cluster = sentinel_stack
    r, root = apply_role(ansible, tmp_path, celery_metrics_broker_url=rs.url,
                         celery_metrics_broker_password=PASSWORD,
                         celery_metrics_sentinel_master_name=rs.master_name,
                         celery_metrics_sentinel_password=SENTINEL_PASSWORD,
                         celery_metrics_expected_workers=WORKERS + ["w9@harness"], celery_metrics_timeout=3)
    assert r.rc == 0, r
    assert PASSWORD not in r.output and SENTINEL_PASSWORD not in r.output
    textfile = root / "textfile" / "callcenter_celery.prom"
    publish(rs, "backlog", 4)
    sync_replicas(rs)

    p = run_cron(root)
    assert p.returncode == 0, p.stderr
    found = samples(textfile)
    assert value(found, "callcenter_celery_queue_length", queue="backlog") == 4
    assert value(found, "callcenter_celery_workers_online") == 2

    from test_celery_metrics_role import cron_command
    started = time.monotonic()
    proc = subprocess.Popen(["sh", "-c", cron_command(root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        old_port, _waited = kill_master_during_ping(rs, proc)
        out, err = proc.communicate(timeout=4 * 3 + 5 + 10)
    finally:
        if proc.poll() is None:
            proc.kill()
    took = time.monotonic() - started
    print("metrics run with the master killed mid-ping: exit %d after %.2fs: %s" % (proc.returncode, took, err.strip()))
    assert proc.returncode == 1, out + err
    assert "Traceback" not in out + err
    assert took < 4 * 3 + 5, took  # the collector's own deadline
    labels, ok = success(samples(textfile))
    assert ok == 0 and "127.0.0.1:%d" % old_port in labels["reason"], labels
    assert PASSWORD not in textfile.read_text() + err and SENTINEL_PASSWORD not in textfile.read_text() + err

    failover = rs.wait_failover(old_port, timeout=30)
    print("Sentinels promoted the replica %.2fs after the run ended" % failover)
    wait_for(lambda: ping(rs, WORKERS) == WORKERS, 60, "workers on the new master")
    p = run_cron(root)
    assert p.returncode == 0, p.stderr
    found = samples(textfile)
    assert success(found) == ({}, 1.0)
    assert value(found, "callcenter_celery_queue_length", queue="backlog") == 4
    assert value(found, "callcenter_celery_workers_online") == 2


def test_system_status_shows_replicas_and_the_sentinels_view_through_a_failover(ansible, sentinel_stack):
    rs, _cluster = sentinel_stack
    a = args(rs, expected_workers=WORKERS)
    r = ansible.module("system_status", a)
    assert r.rc == 0, r
    redis_c = r["components"]["redis"]
    assert r["status"] == "ok", r["msg"]
    assert redis_c["role"] == "master"
    repl = redis_c["replication"]
    assert repl["connected_replicas"] == 1 and repl["replicas"][0]["state"] == "online"
    assert repl["replicas"][0]["address"] == "127.0.0.1:%d" % rs.replicas[0].port
    assert repl["replicas"][0]["lag_bytes"] >= 0
    sen = redis_c["sentinel"]
    assert sen["master"] == "127.0.0.1:%d" % rs.master.port
    assert (sen["sentinels"], sen["sentinels_answering"], sen["sentinels_seeing_master_up"]) == (3, 3, 3)
    assert sen["quorum"] == 2 and sen["quorum_reached"] is True and sen["known_replicas"] == 1
    assert r["components"]["celery"]["workers_online"] == 2
    assert_no_secret(r)

    old = rs.kill_master().port
    print("master killed -> replica promoted (all Sentinels agree, it answers as master): %.2fs"
          % rs.wait_failover(old))
    r = ansible.module("system_status", a)
    redis_c = r["components"]["redis"]
    print("after the failover: redis %s: %s" % (redis_c["status"], redis_c["reason"]))
    assert redis_c["sentinel"]["master"] == "127.0.0.1:%d" % rs.replicas[0].port
    assert redis_c["role"] == "master"
    # the old master is a replica the Sentinels know, and it is gone
    assert redis_c["status"] == "degraded" and "0 of 1 replica(s) connected and online" in redis_c["reason"], redis_c

    # the last Redis killed: nothing left to promote, no master reachable
    last = rs.kill_master().port
    r = ansible.module("system_status", a)
    redis_c = r["components"]["redis"]
    print("no master left: redis %s: %s" % (redis_c["status"], redis_c["reason"]))
    assert redis_c["status"] == "down" and "127.0.0.1:%d" % last in redis_c["reason"], redis_c
    assert "the master the Sentinels name is down" in redis_c["reason"], redis_c
    assert redis_c["sentinel"]["master"] == "127.0.0.1:%d" % last
    assert r["components"]["celery"]["status"] == "down"
    assert r["status"] == "down" and "Traceback" not in r.output
