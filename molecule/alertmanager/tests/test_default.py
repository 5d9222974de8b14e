"""The alertmanager role against a real Alertmanager and the Telegram stand-in: the rendered
config passes amtool, Alertmanager runs it after the role's reload, and an alert POSTed to
Alertmanager reaches "Telegram" with its runbook link, then its resolved message."""

import datetime
import json
import os
import stat
import time
import urllib.request

ROOT = os.environ["CCOPS_MOLECULE_ROOT"]
AM = "http://127.0.0.1:%s" % os.environ["CCOPS_MOLECULE_ALERTMANAGER_PORT"]
CONFIG = os.path.join(ROOT, "etc", "alertmanager.yml")
RUNBOOK = "https://ops.example/doc/operations/runbooks/celery-worker-down.html"


def stub_url():
    with open(os.path.join(ROOT, "telegram_stub.port"), encoding="utf-8") as f:
        return "http://127.0.0.1:%s" % f.read().strip()


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def post_alert(instance, ends_at=None):
    alert = {"labels": {"alertname": "CeleryWorkerDown", "severity": "critical", "instance": instance},
             "annotations": {"summary": "Celery worker on %s is down" % instance, "runbook_url": RUNBOOK}}
    if ends_at:
        alert["endsAt"] = ends_at.isoformat()
    req = urllib.request.Request(AM + "/api/v2/alerts", data=json.dumps([alert]).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 200


def wait_message(predicate, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        messages = get(stub_url() + "/_stub/messages")
        found = [m for m in messages if predicate(m)]
        if found:
            return found[0]
        assert time.monotonic() < deadline, "no such message; received: %s" % [m["text"] for m in messages]
        time.sleep(0.2)


def test_rendered_config_passes_amtool_check_config(host):
    r = host.run("amtool check-config %s", CONFIG)
    assert r.rc == 0, r.stdout + r.stderr
    assert "1 templates" in r.stdout


def test_config_holding_the_token_is_not_readable_by_others():
    assert stat.S_IMODE(os.stat(CONFIG).st_mode) & 0o007 == 0


def test_running_alertmanager_took_the_reload():
    original = get(AM + "/api/v2/status")["config"]["original"]
    assert "telegram_configs" in original
    assert "molecule-Fake_Bot-Token" not in original   # shown as <secret>


def test_alert_reaches_telegram_with_its_runbook_link_then_resolves():
    instance = "molecule-%d" % time.time()
    post_alert(instance)
    firing = wait_message(lambda m: instance in m["text"] and "FIRING" in m["text"])
    assert "CeleryWorkerDown" in firing["text"] and '<a href="%s">' % RUNBOOK in firing["text"]
    assert firing["chat_id"] == "-1009876543210" and firing["parse_mode"] == "HTML"
    post_alert(instance, ends_at=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=5))
    resolved = wait_message(lambda m: instance in m["text"] and "RESOLVED" in m["text"])
    assert RUNBOOK in resolved["text"]


def test_running_alertmanager_also_sends_to_the_eda_webhook():
    original = get(AM + "/api/v2/status")["config"]["original"]
    assert "callcenter-eda" in original and "http://127.0.0.1:9/alerts" in original
