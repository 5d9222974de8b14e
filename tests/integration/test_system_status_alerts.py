"""system_status's ``alerts`` component against a real Alertmanager 0.25: what fires, worst
first, with where, since when, its summary and its runbook; in the table and on the page.
Fail closed: an Alertmanager that is down, hung or answers something else is ``down``, never
"nothing firing".

The module runs are the tasks of one ansible-playbook run (tests/modbatch.py), each against an
Alertmanager (or a server) in the state it needs; the playbooks run as operators run them."""

import json
import re
import shutil
import socket
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import ALERTS_QUERY, AlertmanagerServer, JsonServer, free_port, stop_all
from modbatch import case, run_batch

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
pytestmark = pytest.mark.skipif(not ALERTMANAGER, reason="Alertmanager (Debian package prometheus-alertmanager) "
                                                         "not installed")

RUNBOOK = "https://ops.example/doc/operations/runbooks/celery-worker-down.html"
BACKLOG_RUNBOOK = "https://ops.example/doc/operations/runbooks/celery-queue-backlog.html"


@pytest.fixture
def alertmanager(tmp_path):
    am = AlertmanagerServer(tmp_path / "am")
    yield am
    am.stop()


def worker_down(am, summary="Celery worker w1@harness is down"):
    am.post_alert_and_wait({"alertname": "CeleryWorkerDown", "severity": "critical", "instance": "127.0.0.1:5555",
                            "worker": "w1@harness"}, {"summary": summary, "runbook_url": RUNBOOK})


def queue_backlog(am):
    am.post_alert_and_wait({"alertname": "CeleryQueueBacklog", "severity": "warning", "queue": "quality"},
                           {"summary": "Queue quality holds 812 messages", "runbook_url": BACKLOG_RUNBOOK})


def alerts_only(url, env=None, **over):
    args = dict(alertmanager_url=url, timeout=3)
    args.update(over)
    return case("system_status", args, env=env)


NOT_ALERTS = [
    (200, {"status": "success", "data": {"alerts": []}}, "answered a JSON object where Alertmanager's API v2 "
                                                         "answers a list of alerts"),
    (200, b"<html>Sign in</html>", "answered something that is not JSON"),
    (404, b"404 page not found", "answered HTTP 404"),
]


@pytest.fixture(scope="module")
def batch(ansible, tmp_path_factory):
    """Every module run of this file in ONE ansible-playbook run (tests/modbatch.py), each
    against an Alertmanager in the state it needs (nothing, a warning, a critical and a
    warning, a critical), one that is down, one that never answers, or a server that answers
    something else."""
    root = tmp_path_factory.mktemp("alerts")
    made = []

    def am(name):
        made.append(AlertmanagerServer(root / name))
        return made[-1]

    hole = socket.socket()
    try:
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)  # accepts connections, never answers
        quiet, warning, both, critical = am("quiet"), am("warning"), am("both"), am("critical")
        queue_backlog(warning)
        queue_backlog(both)
        worker_down(both)
        worker_down(critical)
        port = free_port()
        backups = root / "backups"
        backups.mkdir()
        (backups / "callcenter-2026-11-25.dump.gz").write_bytes(b"x")  # any file: the backup card stays readable
        cases = {
            "nothing firing": alerts_only(quiet.url),
            "a warning": alerts_only(warning.url),
            "a critical and a warning": alerts_only(both.url, fail_on="down"),
            "critical mapped to degraded": alerts_only(critical.url, alerts_severity_status={"critical": "degraded"}),
            "critical mapped to fatal": alerts_only(critical.url, alerts_severity_status={"critical": "fatal"}),
            "url from the environment": case("system_status", dict(timeout=3), env={
                "ALERTMANAGER_URL": "http://ops:Am-Proxy-Secret-7@127.0.0.1:%d/" % critical.port}),
            "down": alerts_only("http://127.0.0.1:%d" % port),
            "hung": case("system_status", dict(alertmanager_url="http://127.0.0.1:%d" % hole.getsockname()[1],
                                               timeout=5, component_timeouts={"alerts": 1}, backup_dir=str(backups),
                                               backup_max_age="1000d")),
        }
        for i, (status, body, _words) in enumerate(NOT_ALERTS):
            made.append(JsonServer({None: (status, body)}))
            cases["not a list %d" % i] = alerts_only(made[-1].url)
        playbook, runs = run_batch(ansible, cases)
        yield SimpleNamespace(runs=runs, quiet=quiet, critical=critical, port=port)
    finally:
        hole.close()
        stop_all(made)


def test_nothing_firing_is_ok(batch):
    r = batch.runs["nothing firing"]
    assert r.rc == 0, r
    a = r["components"]["alerts"]
    assert a["status"] == "ok" and a["count"] == 0 and a["alerts"] == [] and a["reason"] == "", a
    assert a["url"] == batch.quiet.url and r["status"] == "ok"


def test_a_warning_firing_degrades_with_where_since_and_runbook(batch):
    r = batch.runs["a warning"]
    a = r["components"]["alerts"]
    assert a["status"] == "degraded" and a["count"] == 1, a
    assert a["reason"] == "1 alert(s) firing (1 warning): CeleryQueueBacklog (queue=quality)", a
    alert, = a["alerts"]
    assert alert["alertname"] == "CeleryQueueBacklog" and alert["severity"] == "warning"
    assert alert["labels"] == {"alertname": "CeleryQueueBacklog", "severity": "warning", "queue": "quality"}
    assert alert["summary"] == "Queue quality holds 812 messages" and alert["runbook_url"] == BACKLOG_RUNBOOK
    assert alert["startsAt"].startswith(time.strftime("%Y-", time.gmtime())) and 0 <= alert["age_seconds"] < 60
    assert r["status"] == "degraded" and "alerts degraded: 1 alert(s) firing" in r["msg"]


def test_a_critical_firing_is_down_and_listed_first(batch):
    r = batch.runs["a critical and a warning"]
    assert r.rc != 0, r  # fail_on=down: a critical alert fails the task
    a = r["components"]["alerts"]
    assert a["status"] == "down" and a["count"] == 2, a
    assert [x["alertname"] for x in a["alerts"]] == ["CeleryWorkerDown", "CeleryQueueBacklog"]
    assert a["alerts"][0]["where"] == "instance=127.0.0.1:5555, worker=w1@harness"
    assert a["alerts"][0]["runbook_url"] == RUNBOOK
    assert a["reason"].startswith("2 alert(s) firing (1 critical, 1 warning): CeleryWorkerDown"), a


def test_the_severity_mapping_is_an_option(batch):
    r = batch.runs["critical mapped to degraded"]
    assert r["components"]["alerts"]["status"] == "degraded", r
    r = batch.runs["critical mapped to fatal"]
    assert r.rc != 0 and r["msg"] == "alerts_severity_status.critical must be one of ok, degraded, down (got 'fatal')"


def test_the_url_comes_from_the_environment_and_is_shown_without_credentials(batch):
    r = batch.runs["url from the environment"]
    a = r["components"]["alerts"]
    assert a["status"] == "down" and a["count"] == 1 and a["url"] == batch.critical.url, a
    assert "Am-Proxy-Secret-7" not in r.output and "Am-Proxy-Secret-7" not in json.dumps(r.result)


def test_alertmanager_down_is_down_with_a_sentence_never_nothing_firing(batch):
    port = batch.port
    r = batch.runs["down"]
    assert r.rc == 0, r
    a = r["components"]["alerts"]
    assert a["status"] == "down" and "count" not in a and "alerts" not in a, a
    assert a["reason"] == ("http://127.0.0.1:%d%s refused the connection (is Alertmanager running?); "
                           "firing alerts unknown" % (port, ALERTS_QUERY)), a
    assert r["status"] == "down"


def test_a_hung_alertmanager_costs_only_its_own_timeout(batch):
    r = batch.runs["hung"]
    assert r.rc == 0, r
    a = r["components"]["alerts"]
    assert a["status"] == "down" and "did not answer within 1.0s" in a["reason"], a
    assert r["components"]["backup"]["status"] == "ok", r["components"]["backup"]
    assert r["collect_duration"] < 1 + 0.5, (r["collect_duration"], r["components"])


@pytest.mark.parametrize("i", range(len(NOT_ALERTS)))
def test_an_answer_that_is_not_a_list_of_alerts_is_down(batch, i):
    words = NOT_ALERTS[i][2]
    r = batch.runs["not a list %d" % i]
    a = r["components"]["alerts"]
    assert a["status"] == "down" and words in a["reason"] and "count" not in a, a
    assert "Traceback" not in r.output


def test_playbook_table_and_page_show_the_alert_with_its_runbook_escaped(ansible, alertmanager, tmp_path):
    worker_down(alertmanager, summary='Worker <script>alert("x")</script> w1 & co is down')
    page = tmp_path / "status.html"
    url = "http://ops:Am-Link-Secret-8@127.0.0.1:%d/" % alertmanager.port
    r = ansible.playbook("callcenter.ops.system_status",
                         extra_vars={"system_status_alertmanager_url": url, "system_status_html_path": str(page)})
    assert r.rc == 0, r
    # the table: the component row, then one line per alert with its runbook
    row = next(line for line in r.stdout.splitlines() if '"alerts ' in line)
    assert "DOWN" in row and "1 firing: 1 critical" in row, row
    assert "CRITICAL CeleryWorkerDown | instance=127.0.0.1:5555, worker=w1@harness | since " in r.stdout
    assert "runbook: %s" % RUNBOOK in r.stdout
    html = page.read_text()
    for secret_place in (html, r.output):
        assert "Am-Link-Secret-8" not in secret_place
    assert '<a id="link-alertmanager" href="http://127.0.0.1:%d/">Alertmanager</a>' % alertmanager.port in html
    assert 'id="component-alerts"' in html and 'data-status="down"' in html
    assert '<a class="runbook" href="%s">Runbook: CeleryWorkerDown</a>' % RUNBOOK in html
    assert re.search(r'since <time datetime="[0-9T:.-]+Z">[0-9T:.-]+Z</time> \(\d+s\)', html), html
    assert 'data-alertname="CeleryWorkerDown" data-severity="critical"' in html
    assert "instance=127.0.0.1:5555, worker=w1@harness" in html
    assert "<script>" not in html
    assert "Worker &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; w1 &amp; co is down" in html
    # Parsed as a browser tokenizes it (the page in a real Chromium is test_system_status'):
    # the summary is text, and no element of the page is a script.
    tags, text = [], []

    class Page(HTMLParser):
        def handle_starttag(self, tag, attrs):
            tags.append(tag)

        def handle_data(self, data):
            text.append(data)

    Page(convert_charrefs=True).feed(html)
    assert "script" not in tags, tags
    assert 'Worker <script>alert("x")</script> w1 & co is down' in "".join(text)


def test_a_runbook_link_that_is_not_http_is_shown_as_text_not_linked(ansible, alertmanager, tmp_path):
    alertmanager.post_alert_and_wait({"alertname": "Odd", "severity": "warning"},
                                     {"summary": "odd", "runbook_url": "javascript:alert(1)"})
    page = tmp_path / "status.html"
    r = ansible.playbook("callcenter.ops.system_status",
                         extra_vars={"system_status_alertmanager_url": alertmanager.url,
                                     "system_status_html_path": str(page)})
    assert r.rc == 0, r
    html = page.read_text()
    assert 'href="javascript:' not in html and "Runbook: javascript:alert(1)" in html


def test_ansible_doc_renders_the_alerts_options_and_return(ansible):
    r = subprocess.run([str(Path(shutil.which("ansible-doc") or "ansible-doc")), "callcenter.ops.system_status"],
                       env=ansible.env, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    for words in ("alertmanager_url", "ALERTMANAGER_URL", "alerts_severity_status", "runbook_url"):
        assert words in r.stdout, words
