"""Alerts that start their runbook, end to end with the real programs: a fault reaches
Alertmanager through Prometheus, Alertmanager's second receiver hands it to ansible-rulebook
(the collection's rulebook and event source), and the collection's playbook posts its diagnosis
to Telegram (the Bot API stand-in), after the page. One stack (tests/harness.py, tests/eda.py)
on free ports in a temp dir with the demo's short timings."""

import json
import os
import shutil
import signal
import tempfile
import time

import pytest

from conftest import Stack, wait_for
from harness import proc_alive
from telegram_stub import TelegramStub

import eda

LOOP_TIMEOUT = 180  # seconds; a killed worker pages after ~35 s with the stack's timings
DIAGNOSIS_TIMEOUT = 120  # page -> diagnosis: 35-45 s measured at load 8-11 on a shared 2-core machine


@pytest.fixture(scope="module")
def stack(ansible):
    root = tempfile.mkdtemp(prefix="ccops-eda-")
    os.chmod(root, 0o711)  # the postgres user reaches the cluster under it
    s = Stack(os.path.join(root, "stack"), ansible_env=ansible.env, host="edaloop")
    eda.enable(s, remediation=False)
    try:
        s.up()
        yield s
    finally:
        eda.reload_state(s)
        s.stop()
        shutil.rmtree(root, ignore_errors=True)


def set_remediation(stack, on):
    """The rulebook copies its inventory for every playbook run: switching takes effect at once."""
    stack.state["eda"]["remediation"] = on
    stack.save()
    eda.write_config(stack)


def test_alertmanager_sends_every_page_to_the_rulebook_too(stack):
    original = json.loads(__import__("urllib.request").request.urlopen(
        stack.url("alertmanager", "/api/v2/status"), timeout=5).read())["config"]["original"]
    assert stack.state["eda_webhook_url"] in original and "telegram_configs" in original
    assert eda.healthy(stack)


def test_killed_worker_gets_a_diagnosis_naming_it_after_the_page(stack):
    mark = len(stack.telegram_messages())
    stack.incident("worker-down")
    page, seconds = stack.wait_alert("CeleryWorkerDown", LOOP_TIMEOUT)
    diagnosis = eda.wait_message(stack, lambda t: t.startswith("Diagnosis: Celery worker w1@edaloop"), DIAGNOSIS_TIMEOUT,
                                 since=mark, what="diagnosis of the killed worker")
    print(diagnosis["text"])
    print("kill -9 -> page %.0f s; page -> diagnosis %.1f s" % (seconds, diagnosis["time"] - page["time"]))
    text = diagnosis["text"]
    assert diagnosis["time"] >= page["time"]
    assert "w1@edaloop: does NOT answer ping" in text, text
    assert "Workers online: w2@edaloop" in text, text
    assert "ActiveState=failed" in text and "gone" in text, text       # what the host (the harness) says
    assert "Done automatically: read-only diagnosis. Remediation is off" in text, text
    assert "celery-worker-down.html" in text and "firing since 20" in text and "Down since: before 20" in text, text
    assert stack.secret("telegram") not in text
    wait_for(lambda: [e for e in eda.audit(stack) if e["alert"] == "CeleryWorkerDown"], 30, "the audit entry")
    entries = [e for e in eda.audit(stack) if e["alert"] == "CeleryWorkerDown"]
    assert entries and entries[-1]["result"] == "posted" and entries[-1]["who"].startswith("ansible-rulebook rule")
    stack.heal()
    stack.wait_alert("CeleryWorkerDown", LOOP_TIMEOUT, resolved=True)


def test_with_remediation_the_worker_is_restarted_answers_ping_and_the_alert_resolves(stack):
    set_remediation(stack, True)
    mark = len(stack.telegram_messages())
    stack.state["telegram_mark"] = mark
    stack.save()
    pid, marker = stack.state["pids"]["worker-w2"]["pid"], stack.state["pids"]["worker-w2"]["marker"]
    assert proc_alive(pid, marker)   # still the worker this stack started, as the harness's incidents check
    os.killpg(pid, signal.SIGKILL)
    stack.wait_alert("CeleryWorkerDown", LOOP_TIMEOUT)
    diagnosis = eda.wait_message(stack, lambda t: t.startswith("Diagnosis: Celery worker w2@edaloop"), DIAGNOSIS_TIMEOUT,
                                 since=mark, what="diagnosis of w2")
    assert "Restarting worker-w2 (harness) on edaloop now" in diagnosis["text"], diagnosis["text"]
    outcome = eda.wait_message(stack, lambda t: t.startswith("Remediation: Celery worker w2@edaloop"), 120,
                               since=mark, what="remediation outcome")
    assert "restarted and answers ping" in outcome["text"], outcome["text"]
    assert "Done automatically: restarted worker-w2 (harness) on edaloop once" in outcome["text"]
    eda.reload_state(stack)
    assert stack.running("worker-w2") and stack.state["pids"]["worker-w2"]["pid"] != pid
    # The restart may be verified after the alert already resolved: count from the kill on.
    resolved = eda.wait_message(stack, lambda t: "[RESOLVED]" in t and "CeleryWorkerDown" in t and "w2@edaloop" in t,
                                LOOP_TIMEOUT, since=mark, what="resolved message for w2")
    print("remediation outcome -> resolved message %.0f s" % (resolved["time"] - outcome["time"]))
    wait_for(lambda: [e for e in eda.audit(stack) if e.get("action") == "restart"], 30, "the restart's audit entry")
    restarts = [e for e in eda.audit(stack) if e.get("action") == "restart"]
    assert len(restarts) == 1 and restarts[0]["target"] == "w2@edaloop" and restarts[0]["outcome"] == "ok"
    set_remediation(stack, False)


def test_corrupt_newest_backup_gets_a_diagnosis_naming_the_newest_good_one(stack):
    backups = stack.dir / "backups"
    newest = max(backups.glob("*.dump.gz"), key=lambda f: f.stat().st_mtime)
    older = backups / "callcenter-2000-01-01.dump.gz"
    shutil.copy2(str(newest), str(older))
    day_ago = time.time() - 86400
    os.utime(str(older), (day_ago, day_ago))
    mark = len(stack.telegram_messages())
    stack.incident("backup-corrupt")
    stack.wait_alert("BackupVerificationFailed", LOOP_TIMEOUT)
    diagnosis = eda.wait_message(stack, lambda t: t.startswith("Diagnosis: backup"), DIAGNOSIS_TIMEOUT, since=mark,
                                 what="diagnosis of the corrupt backup")
    text = diagnosis["text"]
    assert "Failed file: %s" % newest in text and "truncated" in text, text
    assert "Newest good backup: %s, 24.0 h old" % older in text, text
    assert "GiB free" in text, text
    stack.heal()


# ----------------------------------------------------------------- the playbooks by hand (no EDA)
def by_hand(ansible, tmp_path, tg, extra, env=None, playbook="diagnose_worker_down"):
    inventory = tmp_path / "inventory.yml"
    local = {"ansible_connection": "local", "ansible_python_interpreter": os.sys.executable}
    inventory.write_text(json.dumps({"all": {"hosts": {"localhost": local}, "children": {
        "celery_workers": {"hosts": {"harness": local}}}}}))
    run_env = {"CALLCENTER_TELEGRAM_BOT_TOKEN": "123456:by-Hand_token", "CALLCENTER_TELEGRAM_CHAT_ID": "77",
               "TELEGRAM_API_URL": tg.url}
    run_env.update(env or {})
    extra = dict({"alert_actions_audit_log": str(tmp_path / "audit.jsonl"), "system_status_queues": ["quality"]}, **extra)
    return ansible.playbook("callcenter.ops." + playbook, extra, inventory=str(inventory), env=run_env)


def test_dry_run_says_what_it_would_restart_restarts_nothing_and_a_second_page_is_throttled(
        ansible, tmp_path, redis_server, celery_factory):
    cluster = celery_factory(redis_server.url)
    cluster.start_workers(names=("w1",))
    marker = tmp_path / "restarted"
    extra = {"alert_actions_worker": "w2@harness", "alert_actions_dry_run": True, "alert_actions_remediation": True,
             "alert_actions_remediation_groups": ["celery_workers"], "alert_actions_expected_workers": ["w1@harness"],
             "alert_actions_worker_restart_command": "touch %s" % marker,
             "alert_actions_worker_status_command": "echo ActiveState=failed {unit}",
             "alert_actions_worker_log_command": "echo last line of {short}"}
    with TelegramStub() as tg:
        r = by_hand(ansible, tmp_path, tg, extra, env={"CELERY_BROKER_URL": redis_server.url})
        assert r.rc == 0, r
        text = tg.messages[0]["text"]
        assert text.startswith("[DRY RUN] Diagnosis: Celery worker w2@harness is down"), text
        assert "does NOT answer ping" in text and "Workers online: w1@harness" in text, text
        assert "ActiveState=failed celery-worker@w2.service" in text and "last line of w2" in text, text
        assert "DRY RUN: would restart celery-worker@w2.service on harness" in text, text
        assert not marker.exists() and redis_server.password not in r.output
        r = by_hand(ansible, tmp_path, tg, extra, env={"CELERY_BROKER_URL": redis_server.url})
        assert r.rc == 0 and len(tg.messages) == 1, r
    results = [json.loads(line)["result"] for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert results == ["dry-run", "throttled"]


def test_without_telegram_settings_the_findings_stay_in_the_job_output_and_the_audit_log(ansible, tmp_path):
    with TelegramStub() as tg:
        r = by_hand(ansible, tmp_path, tg, {"alert_actions_worker": "w1@nowhere"},
                    env={"CALLCENTER_TELEGRAM_BOT_TOKEN": "", "CELERY_BROKER_URL": "redis://127.0.0.1:9/0"})
        assert not tg.messages
    assert r.rc != 0 and "set CALLCENTER_TELEGRAM_BOT_TOKEN and CALLCENTER_TELEGRAM_CHAT_ID" in r.output, r
    assert "could not be asked: Redis at 127.0.0.1:9" in r.output and "host nowhere is not in the inventory" in r.output.lower()
    assert json.loads((tmp_path / "audit.jsonl").read_text())["result"] == "not-configured"


def test_backlog_diagnosis_names_depth_per_priority_and_who_consumes_each_queue_and_purges_nothing(
        ansible, tmp_path, redis_server, celery_factory):
    cluster = celery_factory(redis_server.url)
    cluster.start_workers(names=("w1",))  # consumes quality and stats, not "nobody"
    from celery import Celery
    app = Celery("eda-backlog", broker=redis_server.url, set_as_current=False)
    for priority in (0, 0, 9):
        app.send_task("callcenter_sample.daily_stats", queue="nobody", priority=priority)
    app.close()
    extra = {"alert_actions_queue": "nobody", "alert_actions_queues": ["quality"]}
    with TelegramStub() as tg:
        r = by_hand(ansible, tmp_path, tg, extra, env={"CELERY_BROKER_URL": redis_server.url},
                    playbook="diagnose_queue_backlog")
        assert r.rc == 0, r
        text = tg.messages[0]["text"]
    assert text.startswith("Diagnosis: Celery queue nobody has a backlog"), text
    assert "nobody: 3 waiting" in text and "NO worker online consumes it" in text, text
    assert "quality: 0 waiting" in text and "consumed by w1@harness" in text, text
    assert "never purged automatically" in text and redis_server.password not in r.output + text
    assert redis_server.client().llen("nobody") + sum(
        redis_server.client().llen(k) for k in redis_server.client().keys("nobody\x06\x16*")) == 3
