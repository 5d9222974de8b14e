"""celery_queue_purge and the celery_purge / celery_status playbooks, on a real Redis.

The module's own cases are the tasks of one ansible-playbook run (tests/modbatch.py), each on a
Redis of its own; the playbooks run as operators run them."""

import pytest

from conftest import stop_all
from modbatch import case, run_batch
from test_celery_health import publish


def fill(redis):
    """stats: 4 plain + 2 high-priority messages; quality: 3. No worker consumes them."""
    publish(redis.url, "stats", 4, task="callcenter_sample.daily_stats", args=[])
    publish(redis.url, "stats", 2, priority=9, task="callcenter_sample.daily_stats", args=[])
    publish(redis.url, "quality", 3)
    return redis


@pytest.fixture
def backlog(redis_server):
    return fill(redis_server)


def depth(redis, queue):
    c = redis.client()
    return sum(c.llen(n) for n in [queue] + [queue + "\x06\x16%d" % p for p in (3, 6, 9)])


@pytest.fixture(scope="module")
def batch(ansible, tmp_path_factory):
    """The module's cases, each on a Redis of its own (with the backlog above, empty, or
    stopped), as the tasks of ONE ansible-playbook run (tests/modbatch.py)."""
    from conftest import RedisServer
    root = tmp_path_factory.mktemp("celery-purge")
    servers = {}

    def server(label, with_backlog=True):
        servers[label] = RedisServer(root / ("redis%d" % len(servers)), "s3cret-Pa55").start()
        if with_backlog:
            fill(servers[label])
        return servers[label]

    try:
        def purge(label, redis, queues, check=False, **args):
            return case("celery_queue_purge", dict(broker_url=redis.url, queues=queues, **args), check=check)

        check_mode = server("check mode")
        purged = server("purge")
        unknown = server("unknown queue")
        skipped = server("unknown queue skipped")
        down = server("redis down", with_backlog=False)
        down.stop()
        empty = server("empty name", with_backlog=False)
        cases = {
            "check mode": purge("check mode", check_mode, ["stats"], check=True),
            "purge": purge("purge", purged, ["stats"]),
            "purge again": purge("purge", purged, ["stats"]),
            "unknown queue": purge("unknown queue", unknown, ["stats", "stast"]),
            "unknown queue skipped": purge("unknown queue skipped", skipped, ["stats", "stast"], fail_on_unknown=False),
            "redis down": purge("redis down", down, ["stats"]),
            "empty name": purge("empty name", empty, ["", "stats"]),
        }
        playbook, runs = run_batch(ansible, cases)
        yield runs, servers
    finally:
        stop_all(servers.values())


def test_check_mode_counts_and_removes_nothing(batch):
    runs, servers = batch
    r = runs["check mode"]
    assert r.rc == 0, r
    assert r["purged"] == {"stats": 6} and r["total"] == 6
    assert r["changed"] is True
    assert "would remove 6" in r["msg"]
    assert depth(servers["check mode"], "stats") == 6


def test_purge_empties_every_priority_sub_queue_and_only_that_queue(batch):
    runs, servers = batch
    r = runs["purge"]
    assert r.rc == 0, r
    assert r["purged"] == {"stats": 6} and r["changed"] is True
    assert depth(servers["purge"], "stats") == 0
    assert depth(servers["purge"], "quality") == 3
    again = runs["purge again"]
    assert again.rc == 0 and again["changed"] is False and again["purged"] == {"stats": 0}, again


def test_unknown_queue_fails_before_purging_anything(batch):
    runs, servers = batch
    r = runs["unknown queue"]
    assert r.rc != 0
    assert "unknown queue(s): stast" in r["msg"] and "nothing was purged" in r["msg"], r
    assert depth(servers["unknown queue"], "stats") == 6


def test_unknown_queue_can_be_skipped(batch):
    r = batch[0]["unknown queue skipped"]
    assert r.rc == 0, r
    assert r["purged"] == {"stats": 6, "stast": 0} and r["unknown_queues"] == ["stast"]
    assert "stast is empty and no worker has declared it" in r.own_output
    assert "stast is empty and no worker has declared it" in r.output


def test_purge_with_redis_down(batch):
    r = batch[0]["redis down"]
    assert r.rc != 0 and "refused the connection" in r["msg"], r
    assert "Traceback" not in r.output


def test_purge_rejects_empty_queue_names(batch):
    r = batch[0]["empty name"]
    assert r.rc != 0 and "empty name" in r["msg"], r


# --- playbooks, run by FQCN as operators do


def test_purge_playbook_unattended_without_confirmation_purges_nothing(ansible, backlog):
    """cron: no terminal, no TERM."""
    extra = dict(celery_broker_url=backlog.url, celery_purge_queues=["stats"])
    r = ansible.playbook("callcenter.ops.celery_purge", extra_vars=extra, env={"TERM": ""})
    assert r.rc != 0
    assert "Not purged: no person can answer a prompt here (no terminal" in r.output, r
    assert "celery_purge_confirm=true" in r.output
    assert r.duration < 20, r
    assert depth(backlog, "stats") == 6
    assert backlog.password not in r.output


def test_purge_playbook_refuses_a_confirmation_that_is_not_true_or_false(ansible, backlog):
    """Coerced by `bool`, "yes-please" was read as false and the job said "celery_purge_confirm=false
    was given"; it is a typo to name, before anything is read."""
    extra = dict(celery_broker_url=backlog.url, celery_purge_queues=["stats"], celery_purge_confirm="yes-please")
    r = ansible.playbook("callcenter.ops.celery_purge", extra_vars=extra, env={"TERM": ""})
    assert r.rc != 0
    assert "celery_purge_confirm must be true or false (got yes-please)" in r.output, r
    assert depth(backlog, "stats") == 6


def test_purge_playbook_with_celery_purge_confirm(ansible, backlog):
    extra = dict(celery_broker_url=backlog.url, celery_purge_queues="stats", celery_purge_confirm=True)
    r = ansible.playbook("callcenter.ops.celery_purge", extra_vars=extra)
    assert r.rc == 0, r
    assert "removed 6 message(s): stats=6" in r.output
    assert depth(backlog, "stats") == 0


def test_purge_playbook_in_check_mode_never_purges(ansible, backlog):
    extra = dict(celery_broker_url=backlog.url, celery_purge_queues=["stats"], celery_purge_confirm=True)
    r = ansible.playbook("callcenter.ops.celery_purge", extra_vars=extra, check=True)
    assert r.rc == 0, r
    assert depth(backlog, "stats") == 6


def test_purge_playbook_needs_queue_names(ansible, redis_server):
    extra = dict(celery_broker_url=redis_server.url)
    r = ansible.playbook("callcenter.ops.celery_purge", extra_vars=extra)
    assert r.rc != 0 and "Name the queues to purge" in r.output


def test_status_playbook_prints_summary_and_passes(ansible, redis_server, celery_factory):
    celery_factory(redis_server.url).start_workers(["w1", "w2"])
    extra = dict(celery_broker_url=redis_server.url, celery_status_expected_workers=2, celery_status_queues=["quality", "stats"])
    r = ansible.playbook("callcenter.ops.celery_status", extra_vars=extra)
    assert r.rc == 0, r
    assert "Celery HEALTHY: 2 worker(s) online" in r.output
    assert "worker w1@harness" in r.output and "queue  quality" in r.output
    assert redis_server.password not in r.output


def test_status_playbook_fails_with_the_reason_when_a_worker_is_gone(ansible, redis_server, celery_factory):
    cluster = celery_factory(redis_server.url)
    cluster.start_workers(["w1", "w2"])
    cluster.kill("w2@harness")
    extra = dict(celery_broker_url=redis_server.url, celery_status_expected_workers=["w1@harness", "w2@harness"], celery_status_timeout=1)
    r = ansible.playbook("callcenter.ops.celery_status", extra_vars=extra)
    assert r.rc != 0
    assert "Celery UNHEALTHY" in r.output
    assert "expected worker(s) not answering: w2@harness" in r.output


PROMPT = b"within"           # the purge prompt: "... press Ctrl+C and then C within 60 s ..."
CONTINUE_OR_ABORT = b"Press 'C'"  # what pause asks after Ctrl+C


def _run_on_a_tty(ansible, extra, keys, timeout=30, env=None):
    """Run the purge playbook the way a person does: stdin and stdout on a terminal (TERM set).
    ``keys``: (text to wait for, bytes to type) in order. Returns (rc, output, keys typed, seconds)."""
    import json
    import os
    import pty
    import select
    import subprocess
    import time
    master, slave = pty.openpty()
    cmd = [str(ansible.env["PATH"].split(":")[0] + "/ansible-playbook"), "-i", "localhost,", "-c", "local",
           "callcenter.ops.celery_purge", "-e", json.dumps(extra)]

    def controlling_tty():
        import fcntl
        import termios
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=dict(ansible.env, TERM="xterm", **(env or {})),
                            preexec_fn=controlling_tty)
    os.close(slave)
    out = b""
    pending = list(keys)
    typed = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _w, _x = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            while pending and pending[0][0] in out[-4000:]:
                time.sleep(1)  # let pause switch the terminal mode first (it flushes pending input)
                os.write(master, pending.pop(0)[1])
                typed += 1
        elif proc.poll() is not None:
            break
    if proc.poll() is None:  # a hang: end the whole session, workers included
        import signal
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    os.close(master)
    return proc.returncode, out.decode("utf-8", "replace"), typed, time.monotonic() - started


def test_purge_playbook_asks_a_person_and_purges_on_ctrl_c_then_c(ansible, backlog):
    rc, out, typed, _s = _run_on_a_tty(ansible, dict(celery_broker_url=backlog.url, celery_purge_queues=["stats"]),
                                       [(PROMPT, b"\x03"), (CONTINUE_OR_ABORT, b"c")])
    assert typed == 2, out[-3000:]
    assert rc == 0, out[-3000:]
    assert "Purge 6 message(s) from stats?" in out
    assert depth(backlog, "stats") == 0


def test_purge_playbook_keeps_messages_when_the_person_aborts(ansible, backlog):
    rc, out, typed, _s = _run_on_a_tty(ansible, dict(celery_broker_url=backlog.url, celery_purge_queues=["stats"]),
                                       [(PROMPT, b"\x03"), (CONTINUE_OR_ABORT, b"a")])
    assert typed == 2, out[-3000:]
    assert rc != 0 and "Not purged: no confirmation (aborted at the prompt)" in out, out[-3000:]
    assert depth(backlog, "stats") == 6


def test_purge_prompt_on_a_terminal_with_nobody_ends_by_itself(ansible, backlog):
    """A pty with nobody behind it that is not recognised as a job: the prompt has a bound."""
    rc, out, typed, seconds = _run_on_a_tty(
        ansible, dict(celery_broker_url=backlog.url, celery_purge_queues=["stats"], celery_purge_prompt_seconds=3), [])
    assert rc != 0, out[-3000:]
    assert "Purge 6 message(s) from stats?" in out
    assert "Not purged: no confirmation (no answer within 3 s)" in out, out[-3000:]
    assert seconds < 25, seconds
    assert depth(backlog, "stats") == 6


@pytest.mark.parametrize("extra", [dict(celery_purge_confirm=False), dict(celery_purge_confirm="false"),
                                   dict(celery_purge_interactive=False), dict(awx_job_id=42)])
def test_purge_on_a_terminal_never_asks_when_told_not_to(ansible, backlog, extra):
    extra = dict(extra, celery_broker_url=backlog.url, celery_purge_queues=["stats"])
    rc, out, typed, seconds = _run_on_a_tty(ansible, extra, [])
    assert rc != 0, out[-3000:]
    assert "Not purged:" in out and "celery_purge_confirm=true" in out, out[-3000:]
    assert "within" not in out, out[-3000:]  # no prompt at all
    assert seconds < 20, seconds
    assert depth(backlog, "stats") == 6


def test_purge_removes_every_one_of_ten_priority_steps(ansible, redis_server, celery_factory):
    from test_celery_health import ten_step_backlog
    total = ten_step_backlog(redis_server, celery_factory)
    args = dict(broker_url=redis_server.url, queues=["stats"])
    _playbook, runs = run_batch(ansible, {"check mode": case("celery_queue_purge", args, check=True),
                                          "purge": case("celery_queue_purge", args)})
    r = runs["check mode"]
    assert r.rc == 0 and r["purged"] == {"stats": total}, r
    r = runs["purge"]
    assert r.rc == 0 and r["purged"] == {"stats": total} and r["changed"] is True, r
    c = redis_server.client()
    assert [k for k in c.keys("stats*") if c.type(k) == b"list"] == []
