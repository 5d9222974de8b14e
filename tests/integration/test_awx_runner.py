"""The purge playbook run as AWX runs jobs: through ansible-runner, which gives ansible-playbook
a pty. A job has no person behind it: without confirm_purge=true it must fail at once and
purge nothing, never wait at a prompt (before the fix it waited until killed)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# backlog is a fixture: imported so pytest finds it here.
from test_celery_purge import backlog, depth  # noqa: F401 pylint: disable=unused-import

pytest.importorskip("ansible_runner")

HARD_TIMEOUT = 90  # a regression fails here instead of hanging the suite


def descendants(pid):
    """PIDs of every process below ``pid`` (read from /proc), deepest first."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return list(reversed(found))


def private_data_dir(tmp_path, ansible, extravars):
    """A job as AWX hands it to ansible-runner: project (a playbook that imports the collection's),
    inventory, env/envvars and env/extravars."""
    pdd = tmp_path / "job"
    (pdd / "project").mkdir(parents=True)
    (pdd / "inventory").mkdir()
    (pdd / "env").mkdir()
    (pdd / "project" / "purge.yml").write_text("- ansible.builtin.import_playbook: callcenter.ops.celery_purge\n")
    (pdd / "inventory" / "hosts").write_text(
        "localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
    envvars = dict((k, ansible.env[k]) for k in ("ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_HOME", "PATH"))
    envvars.update(ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_NOCOLOR="1")
    (pdd / "env" / "envvars").write_text(json.dumps(envvars))
    (pdd / "env" / "extravars").write_text(json.dumps(extravars))
    return pdd


def run_job(ansible, pdd, timeout=HARD_TIMEOUT):
    """``ansible-runner run <pdd> -p purge.yml``; on a hang every process it started is killed
    (ansible-playbook runs in its own session under runner's pty and ignores SIGTERM)."""
    runner = str(Path(ansible.env["PATH"].split(":")[0]) / "ansible-runner")
    env = dict(ansible.env, TERM="xterm")  # as from a terminal: TERM alone must not decide
    started = time.monotonic()
    proc = subprocess.Popen([runner, "run", str(pdd), "-p", "purge.yml"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out = proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        for pid in descendants(proc.pid) + [proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        out = proc.communicate(timeout=10)[0]
        out += b"\n[test] KILLED after %ds: the job hung" % timeout
    return proc.returncode, out.decode("utf-8", "replace"), time.monotonic() - started


def test_awx_job_without_confirmation_fails_fast_and_purges_nothing(ansible, backlog, tmp_path):  # noqa: F811
    pdd = private_data_dir(tmp_path, ansible, dict(celery_broker_url=backlog.url, celery_purge_queues=["stats"]))
    rc, out, seconds = run_job(ansible, pdd)
    assert "KILLED" not in out, out[-3000:]
    assert rc != 0, out[-3000:]
    assert "Not purged: no person can answer a prompt here (ansible-runner" in out, out[-3000:]
    assert "confirm_purge=true" in out
    assert seconds < 60, seconds
    assert depth(backlog, "stats") == 6
    assert backlog.password not in out
    # what AWX keeps of the job says the same
    assert "confirm_purge=true" in next(pdd.glob("artifacts/*/stdout")).read_text()


def test_awx_job_with_confirm_purge_purges(ansible, backlog, tmp_path):  # noqa: F811
    pdd = private_data_dir(tmp_path, ansible, dict(celery_broker_url=backlog.url, celery_purge_queues=["stats"],
                                                   confirm_purge=True))
    rc, out, _s = run_job(ansible, pdd)
    assert rc == 0, out[-3000:]
    assert "removed 6 message(s): stats=6" in out
    assert depth(backlog, "stats") == 0


def test_awx_job_forced_interactive_still_ends_by_itself(ansible, backlog, tmp_path):  # noqa: F811
    """Someone forces the prompt in a job: it runs out its time, nothing is purged."""
    pdd = private_data_dir(tmp_path, ansible, dict(celery_broker_url=backlog.url, celery_purge_queues=["stats"],
                                                   celery_purge_interactive=True, celery_purge_prompt_seconds=3))
    rc, out, seconds = run_job(ansible, pdd)
    assert "KILLED" not in out and rc != 0, out[-3000:]
    assert "Not purged: no confirmation (no answer within 3 s)" in out, out[-3000:]
    assert seconds < 60
    assert depth(backlog, "stats") == 6
