"""The alertmanager role against a real Alertmanager 0.25 and the Telegram stand-in: an alert
reaches Telegram with its runbook link, then its resolved message; amtool's refusals leave the
live file alone; the bot token never shows in Ansible's output nor in a file others can read."""

import datetime
import grp
import http.server
import json
import os
import pwd
import shutil
import stat
import subprocess
import threading
import time

import pytest
import yaml

from conftest import AlertmanagerServer, free_port, wait_for
from telegram_stub import TelegramStub

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
AMTOOL = shutil.which("amtool")
pytestmark = pytest.mark.skipif(not (ALERTMANAGER and AMTOOL),
                                reason="Alertmanager/amtool (Debian package prometheus-alertmanager) not installed")

TOKEN = "7412369850:AAE-Secret_Bot-Token-for-tests-0nly"
CHAT_ID = -1001234567890
RUNBOOK = "https://ops.example/doc/operations/runbooks/celery-worker-down.html"


class WebhookRecorder:
    """Stands for an Event-Driven Ansible webhook: records each Alertmanager POST."""

    def __init__(self):
        self.posts = []
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                rec.posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/endpoint" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def telegram():
    with TelegramStub() as stub:
        yield stub


def role_vars(tmp_path, **variables):
    base = dict(alertmanager_config_file=str(tmp_path / "etc" / "alertmanager.yml"),
                alertmanager_templates_dir=str(tmp_path / "etc" / "templates"),
                alertmanager_config_owner=pwd.getpwuid(os.getuid()).pw_name,
                alertmanager_config_group=grp.getgrgid(os.getgid()).gr_name,
                alertmanager_telegram_bot_token=TOKEN,
                alertmanager_telegram_chat_id=CHAT_ID,
                alertmanager_telegram_api_url="http://127.0.0.1:9",   # the tests that send replace it
                alertmanager_group_wait="1s", alertmanager_group_interval="1s", alertmanager_repeat_interval="1h",
                alertmanager_reload_method="none")
    base.update(variables)
    return base


def apply(ansible, tmp_path, verbosity=0, **variables):
    pb = tmp_path / "site.yml"
    pb.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False,
                                   "roles": [{"role": "callcenter.ops.alertmanager",
                                              "vars": role_vars(tmp_path, **variables)}]}]))
    return ansible.playbook(pb, verbosity=verbosity)


def worker_down(instance="worker-1.callcenter:5555"):
    labels = {"alertname": "CeleryWorkerDown", "severity": "critical", "instance": instance,
              "worker": "w1@harness"}
    annotations = {"summary": "Celery worker w1@harness is down (pool <prefork> & co)",
                   "description": "Killed.", "runbook_url": RUNBOOK}
    return labels, annotations


def test_a_firing_alert_reaches_telegram_with_its_runbook_then_its_resolved_message(ansible, tmp_path, telegram):
    # Alertmanager first runs a config without Telegram; the role's handler reloads it.
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "alertmanager.yml").write_text("route: {receiver: 'null'}\nreceivers: [{name: 'null'}]\n")
    am = AlertmanagerServer(tmp_path / "am", etc / "alertmanager.yml")
    eda = WebhookRecorder()
    try:
        r = apply(ansible, tmp_path, alertmanager_reload_method="http", alertmanager_url=am.url,
                  alertmanager_telegram_api_url=telegram.url,
                  alertmanager_webhooks=[{"name": "eda", "url": eda.url, "matchers": ['severity="critical"']}])
        assert r.rc == 0, r
        assert "RUNNING HANDLER [callcenter.ops.alertmanager : Reload Alertmanager over HTTP]" in r.output
        status = am.get("/api/v2/status")["config"]["original"]
        assert "telegram_configs" in status and TOKEN not in status  # Alertmanager shows <secret>

        labels, annotations = worker_down()
        sent = time.monotonic()
        am.post_alert(labels, annotations)
        firing = telegram.wait_for(lambda m: "CeleryWorkerDown" in m["text"] and "FIRING" in m["text"], timeout=15)
        latency = time.monotonic() - sent
        assert firing["token"] == TOKEN and firing["chat_id"] == str(CHAT_ID)
        assert firing["parse_mode"] == "HTML" and not telegram.rejected
        text = firing["text"]
        assert '<a href="%s">' % RUNBOOK in text
        assert "Severity: critical" in text and "Instance: worker-1.callcenter:5555" in text
        assert "pool &lt;prefork&gt; &amp; co" in text   # escaped, or Telegram refuses the message

        sent = time.monotonic()
        am.post_alert(labels, annotations, ends_at=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=5))
        resolved = telegram.wait_for(lambda m: "RESOLVED" in m["text"] and "CeleryWorkerDown" in m["text"], timeout=15)
        resolved_latency = time.monotonic() - sent
        assert RUNBOOK in resolved["text"]
        print("\nalert -> Telegram stand-in: firing %.2fs, resolved %.2fs (group_wait/group_interval 1s)"
              % (latency, resolved_latency))
        assert latency < 10 and resolved_latency < 10

        # Telegram still got it although the EDA webhook route matched first (continue: true).
        wait_for(lambda: any(p["status"] == "resolved" for p in eda.posts), 10, "resolved webhook post")
        assert eda.posts[0]["alerts"][0]["annotations"]["runbook_url"] == RUNBOOK
    finally:
        eda.stop()
        am.stop()


def test_second_run_changes_nothing_and_does_not_reload(ansible, tmp_path):
    assert apply(ansible, tmp_path).rc == 0
    again = apply(ansible, tmp_path, alertmanager_reload_method="http", alertmanager_url="http://127.0.0.1:9")
    assert again.rc == 0 and "changed=0" in again.output, again
    assert "RUNNING HANDLER" not in again.output


def test_the_config_holding_the_token_is_not_readable_by_others(ansible, tmp_path):
    r = apply(ansible, tmp_path)
    assert r.rc == 0, r
    config = tmp_path / "etc" / "alertmanager.yml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert TOKEN in config.read_text()   # Alertmanager 0.25 has no bot_token_file
    assert stat.S_IMODE((tmp_path / "etc" / "templates" / "callcenter-telegram.tmpl").stat().st_mode) == 0o644
    p = subprocess.run([AMTOOL, "check-config", str(config)], capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stdout + p.stderr

    r = apply(ansible, tmp_path, alertmanager_config_mode="0644")
    assert r.rc != 0 and "without permissions for others" in r.output
    assert stat.S_IMODE(config.stat().st_mode) == 0o640


def test_a_route_amtool_rejects_never_replaces_the_live_file_and_says_why(ansible, tmp_path):
    assert apply(ansible, tmp_path).rc == 0
    live = (tmp_path / "etc" / "alertmanager.yml").read_text()
    r = apply(ansible, tmp_path, verbosity=1, alertmanager_group_wait="soon")
    assert r.rc != 0
    assert "was left as it was: amtool check-config rejected the new configuration" in r.output
    assert 'not a valid duration string: \\"soon\\"' in r.output or 'not a valid duration string: "soon"' in r.output
    assert (tmp_path / "etc" / "alertmanager.yml").read_text() == live
    assert TOKEN not in r.output


def test_a_bad_extra_receiver_is_refused_by_amtool(ansible, tmp_path):
    assert apply(ansible, tmp_path).rc == 0
    live = (tmp_path / "etc" / "alertmanager.yml").read_text()
    r = apply(ansible, tmp_path, alertmanager_extra_receivers=[{"name": "pager", "webhook_configs": [{"url": "not a url"}]}])
    assert r.rc != 0 and "amtool check-config rejected" in r.output, r
    assert (tmp_path / "etc" / "alertmanager.yml").read_text() == live


def test_a_chat_id_that_is_not_a_number_is_refused_before_any_change(ansible, tmp_path):
    r = apply(ansible, tmp_path, alertmanager_telegram_chat_id="@callcenter_ops")
    assert r.rc != 0
    assert "alertmanager_telegram_chat_id" in r.output and "int" in r.output
    assert not (tmp_path / "etc").exists()


def test_the_token_never_appears_in_ansible_output_even_at_vvv(ansible, tmp_path):
    # -v is asserted by the refusal and token-file tests; -vvv prints module arguments too.
    first = apply(ansible, tmp_path, verbosity=3)
    bad = apply(ansible, tmp_path, verbosity=3, alertmanager_group_interval="never")
    assert first.rc == 0 and bad.rc != 0
    for r in (first, bad):
        assert TOKEN not in r.output
        assert TOKEN.split(":")[1] not in r.output


def test_token_read_from_a_file_on_the_host(ansible, tmp_path):
    token_file = tmp_path / "telegram.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    r = apply(ansible, tmp_path, verbosity=1, alertmanager_telegram_bot_token="",
              alertmanager_telegram_bot_token_file=str(token_file))
    assert r.rc == 0, r
    assert TOKEN not in r.output
    assert 'bot_token: "%s"' % TOKEN in (tmp_path / "etc" / "alertmanager.yml").read_text()

    token_file.write_text("this is not a token\n")
    r = apply(ansible, tmp_path, alertmanager_telegram_bot_token="", alertmanager_telegram_bot_token_file=str(token_file))
    assert r.rc != 0
    assert "The Telegram bot token in %s does not look like one" % token_file in r.output
    assert "this is not a token" not in r.output


def test_token_and_token_file_together_are_refused(ansible, tmp_path):
    r = apply(ansible, tmp_path, alertmanager_telegram_bot_token_file=str(tmp_path / "t"))
    assert r.rc != 0 and "exactly one of alertmanager_telegram_bot_token" in r.output
    assert not (tmp_path / "etc").exists()


def test_alertmanager_not_running_is_reported_not_failed(ansible, tmp_path):
    r = apply(ansible, tmp_path, alertmanager_reload_method="http", alertmanager_url="http://127.0.0.1:%d" % free_port())
    assert r.rc == 0, r
    assert "is not running (connection refused): the new configuration is in place" in r.output


def test_plain_text_mode_sends_values_unescaped(ansible, tmp_path, telegram):
    r = apply(ansible, tmp_path, alertmanager_telegram_parse_mode="none", alertmanager_telegram_api_url=telegram.url)
    assert r.rc == 0, r
    am = AlertmanagerServer(tmp_path / "am", tmp_path / "etc" / "alertmanager.yml")
    try:
        am.post_alert(*worker_down())
        m = telegram.wait_for(lambda m: "CeleryWorkerDown" in m["text"], timeout=15)
    finally:
        am.stop()
    assert m["parse_mode"] == ""
    assert "pool <prefork> & co" in m["text"] and "Runbook: %s" % RUNBOOK in m["text"] and "<b>" not in m["text"]


def test_watchdog_never_reaches_telegram_and_goes_to_the_heartbeat(ansible, tmp_path):
    """The always-firing Watchdog is the pipeline's heartbeat: null receiver, or the dead man's switch."""
    for heartbeat in ("", "http://127.0.0.1:9/heartbeat"):
        d = tmp_path / ("hb%d" % len(heartbeat))
        d.mkdir()
        r = apply(ansible, d, alertmanager_heartbeat_url=heartbeat, alertmanager_reload_method="none")
        assert r.rc == 0, r
        cfg = yaml.safe_load(open(role_vars(d)["alertmanager_config_file"]).read())
        first = cfg["route"]["routes"][0]
        assert first["matchers"] == ['alertname="Watchdog"'] and "continue" not in first, first
        names = [rc["name"] for rc in cfg["receivers"]]
        if heartbeat:
            assert first["receiver"] == "callcenter-heartbeat" and "callcenter-heartbeat" in names
        else:
            assert first["receiver"] == "callcenter-null" and "callcenter-null" in names


def test_eda_receiver_gets_every_page_telegram_gets_with_its_bearer_token(ansible, tmp_path, telegram):
    """alertmanager_eda_webhook_url: the rulebook's event source gets the page (firing and
    resolved) next to Telegram, never Watchdog; the token goes in the Authorization header."""
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "alertmanager.yml").write_text("route: {receiver: 'null'}\nreceivers: [{name: 'null'}]\n")
    am = AlertmanagerServer(tmp_path / "am", etc / "alertmanager.yml")
    rec = WebhookRecorder()
    seen_auth = []
    handler = rec.server.RequestHandlerClass
    original = handler.do_POST

    def do_post(self):
        seen_auth.append(self.headers.get("Authorization"))
        original(self)
    handler.do_POST = do_post
    try:
        r = apply(ansible, tmp_path, alertmanager_reload_method="http", alertmanager_url=am.url,
                  alertmanager_telegram_api_url=telegram.url, alertmanager_eda_webhook_url=rec.url,
                  alertmanager_eda_webhook_token="eda-Token-1")
        assert r.rc == 0, r
        assert "eda-Token-1" not in r.output
        cfg = yaml.safe_load(open(role_vars(tmp_path)["alertmanager_config_file"]).read())
        eda_route = [x for x in cfg["route"]["routes"] if x["receiver"] == "callcenter-eda"]
        assert eda_route == [{"receiver": "callcenter-eda", "continue": True}]
        assert cfg["route"]["routes"][0]["matchers"] == ['alertname="Watchdog"']   # Watchdog stops before it
        assert subprocess.run([AMTOOL, "check-config", role_vars(tmp_path)["alertmanager_config_file"]],
                              capture_output=True, check=False).returncode == 0
        labels, annotations = worker_down()
        am.post_alert(labels, annotations)
        am.post_alert({"alertname": "Watchdog", "severity": "info"}, {"summary": "heartbeat"})
        telegram.wait_for(lambda m: "CeleryWorkerDown" in m["text"] and "FIRING" in m["text"], timeout=15)
        wait_for(lambda: rec.posts, 10, "the EDA webhook post")
        am.post_alert(labels, annotations, ends_at=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=5))
        wait_for(lambda: any(p["status"] == "resolved" for p in rec.posts), 15, "resolved EDA webhook post")
        names = {a["labels"]["alertname"] for p in rec.posts for a in p["alerts"]}
        assert names == {"CeleryWorkerDown"} and set(seen_auth) == {"Bearer eda-Token-1"}
    finally:
        rec.stop()
        am.stop()


def test_eda_receiver_is_off_by_default_and_a_bad_url_is_refused(ansible, tmp_path):
    r = apply(ansible, tmp_path)
    assert r.rc == 0, r
    assert "callcenter-eda" not in open(role_vars(tmp_path)["alertmanager_config_file"]).read()
    bad = tmp_path / "bad"
    bad.mkdir()
    r = apply(ansible, bad, alertmanager_eda_webhook_url="ftp://x")
    assert r.rc != 0 and "alertmanager_eda_webhook_url" in r.output, r
