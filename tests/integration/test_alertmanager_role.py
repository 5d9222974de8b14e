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
    tmp_path.mkdir(parents=True, exist_ok=True)
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


# The role taken through these runs in one directory (module-scoped fixture ``configured``; the
# tests only read what a run left, recorded when it ended):
#   first (-vvv): the defaults;  again: the same, reload over HTTP configured (nothing to reload);
#   refused (-v, ansible.refusals): what amtool rejects in that directory (the live file stays),
#     and bad input refused before any change in fresh directories;
#   refused_vvv (-vvv): one more amtool rejection there.
AMTOOL_REJECTS = {
    "group_wait": dict(alertmanager_group_wait="soon"),
    "extra_receiver": dict(alertmanager_extra_receivers=[{"name": "pager", "webhook_configs": [{"url": "not a url"}]}]),
    "config_mode": dict(alertmanager_config_mode="0644"),
}
BEFORE_ANY_CHANGE = {
    "chat_id": dict(alertmanager_telegram_chat_id="@callcenter_ops"),
    "token_and_file": dict(alertmanager_telegram_bot_token_file="{dir}/t"),
    "eda_url": dict(alertmanager_eda_webhook_url="ftp://x"),
    "token_file_content": dict(alertmanager_telegram_bot_token="", alertmanager_telegram_bot_token_file="{dir}/telegram.token"),
}


@pytest.fixture(scope="module")
def configured(ansible, tmp_path_factory):
    root = tmp_path_factory.mktemp("alertmanager")
    config = root / "etc" / "alertmanager.yml"
    c = {"root": root, "config": config}
    c["first"] = apply(ansible, root, verbosity=3)
    if c["first"].rc == 0:
        c["live"] = config.read_text()
        c["config_mode"] = stat.S_IMODE(config.stat().st_mode)
        c["template_mode"] = stat.S_IMODE((root / "etc" / "templates" / "callcenter-telegram.tmpl").stat().st_mode)
        c["amtool"] = subprocess.run([AMTOOL, "check-config", str(config)], capture_output=True, text=True, check=False)
    c["again"] = apply(ansible, root, alertmanager_reload_method="http", alertmanager_url="http://127.0.0.1:9")

    names, cases = [], []
    for name, variables in AMTOOL_REJECTS.items():
        names.append(name)
        cases.append(role_vars(root, **variables))
    for name, variables in BEFORE_ANY_CHANGE.items():
        d = root / name
        d.mkdir()
        names.append(name)
        cases.append(role_vars(d, **{k: v.format(dir=d) if isinstance(v, str) else v for k, v in variables.items()}))
    (root / "token_file_content" / "telegram.token").write_text("this is not a token\n")
    (root / "token_file_content" / "telegram.token").chmod(0o600)
    (root / "refusals-v1").mkdir()
    r, messages = ansible.refusals("callcenter.ops.alertmanager", cases, root / "refusals-v1", verbosity=1)
    c["refused"], c["messages"] = r, dict(zip(names, messages))
    c["after_refused"] = config.read_text() if config.exists() else None
    c["mode_after_refused"] = stat.S_IMODE(config.stat().st_mode) if config.exists() else None
    (root / "refusals-v3").mkdir()
    r, messages = ansible.refusals("callcenter.ops.alertmanager", [role_vars(root, alertmanager_group_interval="never")],
                                   root / "refusals-v3", verbosity=3)
    c["refused_vvv"], c["message_vvv"] = r, messages[0]
    c["after_refused_vvv"] = config.read_text() if config.exists() else None
    return c


def refused(configured, name):
    """The refusal run and the message the case ``name`` stopped with (None: it did not stop)."""
    r = configured["refused"]
    assert r.rc == 0, r   # every case ran in its block; the message says why the role stopped
    return r, configured["messages"][name]


def test_second_run_changes_nothing_and_does_not_reload(configured):
    assert configured["first"].rc == 0
    again = configured["again"]
    assert again.rc == 0 and "changed=0" in again.output, again
    assert "RUNNING HANDLER" not in again.output


def test_the_config_holding_the_token_is_not_readable_by_others(configured):
    r = configured["first"]
    assert r.rc == 0, r
    assert configured["config_mode"] == 0o640
    assert TOKEN in configured["live"]   # Alertmanager 0.25 has no bot_token_file
    assert configured["template_mode"] == 0o644
    p = configured["amtool"]
    assert p.returncode == 0, p.stdout + p.stderr

    r, msg = refused(configured, "config_mode")
    assert msg and "without permissions for others" in msg and "without permissions for others" in r.output, msg
    assert configured["mode_after_refused"] == 0o640


def test_a_route_amtool_rejects_never_replaces_the_live_file_and_says_why(configured):
    assert configured["first"].rc == 0
    r, msg = refused(configured, "group_wait")   # at -v
    assert msg, r
    for out in (msg, r.output):
        assert "was left as it was: amtool check-config rejected the new configuration" in out
        assert 'not a valid duration string: \\"soon\\"' in out or 'not a valid duration string: "soon"' in out
    assert configured["after_refused"] == configured["live"]
    assert TOKEN not in r.output


def test_a_bad_extra_receiver_is_refused_by_amtool(configured):
    assert configured["first"].rc == 0
    r, msg = refused(configured, "extra_receiver")
    assert msg and "amtool check-config rejected" in msg, (msg, r)
    assert configured["after_refused"] == configured["live"]


def test_a_chat_id_that_is_not_a_number_is_refused_before_any_change(configured):
    r, msg = refused(configured, "chat_id")
    assert msg, r
    assert "alertmanager_telegram_chat_id" in msg and "int" in msg
    assert "alertmanager_telegram_chat_id" in r.output
    assert not (configured["root"] / "chat_id" / "etc").exists()


def test_the_token_never_appears_in_ansible_output_even_at_vvv(configured):
    # -v is asserted by the refusal and token-file tests; -vvv prints module arguments too.
    first, bad = configured["first"], configured["refused_vvv"]
    assert first.rc == 0 and bad.rc == 0 and configured["message_vvv"], (first, bad)   # bad: the role stopped
    assert "amtool check-config rejected" in configured["message_vvv"]
    assert configured["after_refused_vvv"] == configured["live"]
    for r in (first, bad, configured["refused"]):
        assert TOKEN not in r.output
        assert TOKEN.split(":")[1] not in r.output


def test_token_and_token_file_together_are_refused(configured):
    r, msg = refused(configured, "token_and_file")
    assert msg and "exactly one of alertmanager_telegram_bot_token" in msg, r
    assert not (configured["root"] / "token_and_file" / "etc").exists()


def test_eda_receiver_is_off_by_default_and_a_bad_url_is_refused(configured):
    r = configured["first"]
    assert r.rc == 0, r
    assert "callcenter-eda" not in configured["live"]
    r, msg = refused(configured, "eda_url")
    assert msg and "alertmanager_eda_webhook_url" in msg, r
    assert not (configured["root"] / "eda_url" / "etc").exists()


def test_watchdog_never_reaches_telegram_and_goes_to_the_heartbeat(configured, elsewhere):
    """The always-firing Watchdog is the pipeline's heartbeat: null receiver (the defaults), or
    the dead man's switch (alertmanager_heartbeat_url, in the run ``elsewhere``)."""
    assert configured["first"].rc == 0 and elsewhere["run"].rc == 0, elsewhere["run"]
    for heartbeat, text in (("", configured["live"]), (HEARTBEAT, elsewhere["config"])):
        cfg = yaml.safe_load(text)
        first = cfg["route"]["routes"][0]
        assert first["matchers"] == ['alertname="Watchdog"'] and "continue" not in first, first
        names = [rc["name"] for rc in cfg["receivers"]]
        if heartbeat:
            assert first["receiver"] == "callcenter-heartbeat" and "callcenter-heartbeat" in names
            assert cfg["receivers"][names.index("callcenter-heartbeat")]["webhook_configs"][0]["url"] == heartbeat
        else:
            assert first["receiver"] == "callcenter-null" and "callcenter-null" in names


# One more configuration, somewhere else (module-scoped fixture ``elsewhere``): the bot token read
# from a file on the host, the heartbeat URL set, plain-text messages to the module's Telegram
# stand-in, and reload over HTTP at a port where no Alertmanager runs; at -v.
HEARTBEAT = "http://127.0.0.1:9/heartbeat"


@pytest.fixture(scope="module")
def telegram_module():
    with TelegramStub() as stub:
        yield stub


@pytest.fixture(scope="module")
def elsewhere(ansible, tmp_path_factory, telegram_module):
    root = tmp_path_factory.mktemp("alertmanager-elsewhere")
    token_file = root / "telegram.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    r = apply(ansible, root, verbosity=1, alertmanager_telegram_bot_token="",
              alertmanager_telegram_bot_token_file=str(token_file), alertmanager_heartbeat_url=HEARTBEAT,
              alertmanager_telegram_parse_mode="none", alertmanager_telegram_api_url=telegram_module.url,
              alertmanager_reload_method="http", alertmanager_url="http://127.0.0.1:%d" % free_port())
    config = root / "etc" / "alertmanager.yml"
    return {"root": root, "run": r, "config_file": config, "config": config.read_text() if config.exists() else ""}


def test_token_read_from_a_file_on_the_host(elsewhere, configured):
    r = elsewhere["run"]
    assert r.rc == 0, r
    assert TOKEN not in r.output
    assert 'bot_token: "%s"' % TOKEN in elsewhere["config"]

    token_file = configured["root"] / "token_file_content" / "telegram.token"   # "this is not a token"
    r, msg = refused(configured, "token_file_content")
    assert msg and "The Telegram bot token in %s does not look like one" % token_file in msg, msg
    assert "The Telegram bot token in %s does not look like one" % token_file in r.output
    assert "this is not a token" not in r.output


def test_alertmanager_not_running_is_reported_not_failed(elsewhere):
    r = elsewhere["run"]
    assert r.rc == 0, r
    assert "is not running (connection refused): the new configuration is in place" in r.output


def test_plain_text_mode_sends_values_unescaped(elsewhere, telegram_module):
    assert elsewhere["run"].rc == 0, elsewhere["run"]
    am = AlertmanagerServer(elsewhere["root"] / "am", elsewhere["config_file"])
    try:
        am.post_alert(*worker_down())
        m = telegram_module.wait_for(lambda m: "CeleryWorkerDown" in m["text"], timeout=15)
    finally:
        am.stop()
    assert m["parse_mode"] == ""
    assert "pool <prefork> & co" in m["text"] and "Runbook: %s" % RUNBOOK in m["text"] and "<b>" not in m["text"]


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
