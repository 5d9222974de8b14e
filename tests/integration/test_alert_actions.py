"""The diagnosis playbooks of the alert loop run by hand: no stack, no rulebook, no Alertmanager,
as an operator (or an AWX job) runs them for an alert. A Redis and the workers a test needs, the
Telegram Bot API stand-in, and the collection's playbooks; tests/integration/test_alert_loop.py
runs the same playbooks from ansible-rulebook on the whole stack."""

import json
import sys

from telegram_stub import TelegramStub


def by_hand(ansible, tmp_path, tg, extra, env=None, playbook="diagnose_worker_down"):
    inventory = tmp_path / "inventory.yml"
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
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
