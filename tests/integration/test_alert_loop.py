"""The alert loop, end to end, with the real programs: a fault on the platform reaches Telegram
(the Bot API stand-in) through Prometheus and Alertmanager, with its runbook link, and the
resolved message follows once it is healed. One stack (tests/harness.py) on free ports in a
temp dir, configured by the collection's roles, with the demo's short timings.

The three incidents are injected together and their waits overlap: each alert has its own cause
(a killed worker, a consumer cancelled on 'stats', a truncated backup), its own group in
Alertmanager (group_by alertname, instance) and so its own Telegram message, and the only
inhibition is critical-over-warning of the same alert name. One heal, then every resolved
message."""

import json
import os
import shutil
import tempfile
import time
import urllib.request

import pytest

from conftest import Stack, wait_for

LOOP_TIMEOUT = 180  # seconds; measured ~35 s for a killed worker with the stack's timings
HAS_CELERY_METRICS = os.path.exists(os.path.join(os.path.dirname(__file__), "..", "..", "roles", "celery_metrics"))


@pytest.fixture(scope="module")
def stack(ansible):
    root = tempfile.mkdtemp(prefix="ccops-loop-")
    os.chmod(root, 0o711)  # the postgres user reaches the cluster under it
    s = Stack(os.path.join(root, "stack"), ansible_env=ansible.env, host="loop")
    try:
        s.up()
        yield s
    finally:
        s.stop()
        shutil.rmtree(root, ignore_errors=True)


def runbook_link_works(message):
    href = message["text"].split('<a href="', 1)[1].split('"', 1)[0]
    with urllib.request.urlopen(href, timeout=5) as r:
        return r.status == 200 and b"<html" in r.read(4096).lower()


def test_cold_start_of_the_whole_stack(stack):
    print("cold start with the monitoring half: %ss" % stack.state["cold_start_seconds"])
    rules = sorted(os.listdir(str(stack.dir / "prometheus" / "rules")))
    assert "callcenter-celery.rules.yml" in rules and "callcenter-backup.rules.yml" in rules

    def scraped():
        with urllib.request.urlopen(stack.url("prometheus", "/api/v1/targets"), timeout=5) as r:
            targets = json.load(r)["data"]["activeTargets"]
        return sorted((t["labels"]["job"], t["health"]) for t in targets) == [("flower", "up"), ("node", "up")]
    wait_for(scraped, 30, "Prometheus scraping Flower and node-exporter")


@pytest.fixture(scope="module")
def incidents(stack):
    """Every incident, one after the other without waiting for the alerts in between. The status
    playbooks run right after the kill, before the other two incidents: the page's failure is
    the killed worker's. ``mark``: Telegram messages before the first incident."""
    got = {"started": time.monotonic(), "mark": len(stack.telegram_messages())}
    stack.incident("worker-down")
    with open(os.devnull, "w") as devnull:
        got["status_rc"] = stack.status(stream=devnull)
    got["page"] = (stack.dir / "status.html").read_text()
    if HAS_CELERY_METRICS:
        stack.incident("backlog")
    got["before_backup"] = len(stack.telegram_messages())
    stack.incident("backup-corrupt")  # the verification runs (and sends its own message) right away
    return got


def test_killed_worker_reaches_telegram_with_its_runbook(stack, incidents):
    message, _seconds = stack.wait_alert("CeleryWorkerDown", LOOP_TIMEOUT, since=incidents["mark"])
    print("kill -9 -> Telegram: %.0f s" % (time.monotonic() - incidents["started"]))
    assert "w1@loop" in message["text"] and "celery-worker-down.html" in message["text"], message
    assert runbook_link_works(message)
    assert "CeleryWorkerDown" in [a["labels"]["alertname"] for a in stack.firing()]
    # The status page shows it too (the demo's view of the incident).
    assert incidents["status_rc"] != 0
    assert 'id="overall" class="badge status-ok"' not in incidents["page"]


def test_corrupt_backup_reaches_telegram_directly_and_through_alertmanager(stack, incidents):
    message, seconds = stack.wait_alert("BackupVerificationFailed", LOOP_TIMEOUT, since=incidents["mark"])
    print("corrupt backup -> Telegram: %.0f s" % seconds)
    assert "backup-failed.html" in message["text"] and runbook_link_works(message)
    direct = [m for m in stack.telegram_messages()[incidents["before_backup"]:]
              if "Backup verification failed" in m["text"]]
    assert direct and "NOT valid" in direct[0]["text"] and "truncated" in direct[0]["text"], direct


@pytest.mark.skipif(not HAS_CELERY_METRICS, reason="the celery_metrics role is not in this checkout")
def test_queue_backlog_reaches_telegram_through_the_celery_metrics(stack, incidents):
    message, seconds = stack.wait_alert("CeleryQueueBacklog", LOOP_TIMEOUT, since=incidents["mark"])
    print("backlog -> Telegram: %.0f s" % seconds)
    assert "stats" in message["text"] and "celery-queue-backlog.html" in message["text"], message


def test_healed_incidents_send_their_resolved_messages(stack, incidents):
    mark = len(stack.telegram_messages())
    stack.heal()
    alerts = ["CeleryWorkerDown", "BackupVerificationFailed"] + (["CeleryQueueBacklog"] if HAS_CELERY_METRICS else [])
    for alert in alerts:
        _message, seconds = stack.wait_alert(alert, LOOP_TIMEOUT, resolved=True, since=mark)
        print("heal -> %s resolved: %.0f s (whole loop %.0f s)"
              % (alert, seconds, time.monotonic() - incidents["started"]))
