"""The alerts component's pure logic: parsing Alertmanager's API v2 answer, severity to status,
and failing closed on anything that is not a list of alerts."""

import http.server
import json
import socket
import threading

import pytest

from ansible_collections.callcenter.ops.plugins.module_utils import alertmanager

URL = "http://127.0.0.1:9093/api/v2/alerts"
NOW = 1795611600.0  # 2026-11-25T13:00:00Z


def alert(name, severity=None, starts="2026-11-25T12:00:00.123456789Z", **labels):
    labels = dict(labels, alertname=name)
    if severity:
        labels["severity"] = severity
    return {"labels": labels, "annotations": {"summary": "%s fires" % name,
                                              "runbook_url": "https://ops.example/runbooks/%s.html" % name.lower()},
            "startsAt": starts, "endsAt": "2026-11-25T13:04:00Z", "generatorURL": "http://prom.example/graph",
            "fingerprint": "abc%s" % name, "status": {"state": "active", "silencedBy": [], "inhibitedBy": []},
            "receivers": [{"name": "null"}], "updatedAt": starts}


def test_rfc3339_times_with_nanoseconds_and_offsets():
    assert alertmanager.parse_time("2026-11-25T13:00:00Z") == NOW
    assert alertmanager.parse_time("2026-11-25T13:00:00.5Z") == NOW + 0.5
    assert alertmanager.parse_time("2026-11-25T13:00:00.123456789Z") == pytest.approx(NOW + 0.123456789)
    assert alertmanager.parse_time("2026-11-25T14:00:00+01:00") == NOW
    assert alertmanager.parse_time("2026-11-25T12:30:00-00:30") == NOW
    for bad in ("", None, 42, "yesterday", "2026-13-45T99:00:00Z"):
        assert alertmanager.parse_time(bad) is None


def test_nothing_firing_is_ok():
    assert alertmanager.parse_alerts([], URL) == []
    assert alertmanager.summarize([], alertmanager.DEFAULT_SEVERITY_STATUS) == ("ok", "")


def test_one_alert_is_flattened_with_where_it_fires_and_its_runbook():
    a, = alertmanager.parse_alerts([alert("CeleryWorkerDown", "critical", instance="flower:5555", worker="w1@h")], URL, now=NOW)
    assert a["alertname"] == "CeleryWorkerDown" and a["severity"] == "critical"
    assert a["labels"] == {"alertname": "CeleryWorkerDown", "severity": "critical", "instance": "flower:5555",
                           "worker": "w1@h"}
    assert a["where"] == "instance=flower:5555, worker=w1@h"
    assert a["startsAt"] == "2026-11-25T12:00:00.123456789Z"
    assert a["age_seconds"] == pytest.approx(3599.9, abs=0.1)
    assert a["summary"] == "CeleryWorkerDown fires"
    assert a["runbook_url"] == "https://ops.example/runbooks/celeryworkerdown.html"
    assert a["state"] == "active"


def test_a_warning_degrades_a_critical_downs():
    m = alertmanager.DEFAULT_SEVERITY_STATUS
    warn = alertmanager.parse_alerts([alert("CeleryQueueBacklog", "warning", queue="quality")], URL, now=NOW)
    status, reason = alertmanager.summarize(warn, m)
    assert status == "degraded"
    assert reason == "1 alert(s) firing (1 warning): CeleryQueueBacklog (queue=quality)"
    both = alertmanager.parse_alerts([alert("CeleryQueueBacklog", "warning", queue="quality"),
                                      alert("CeleryWorkerDown", "critical", worker="w1@h")], URL, now=NOW)
    status, reason = alertmanager.summarize(both, m)
    assert status == "down"
    assert reason == ("2 alert(s) firing (1 critical, 1 warning): CeleryWorkerDown (worker=w1@h); "
                      "CeleryQueueBacklog (queue=quality)")
    assert [a["alertname"] for a in alertmanager.sort_alerts(both, m)] == ["CeleryWorkerDown", "CeleryQueueBacklog"]


def test_info_is_ok_and_an_unknown_or_missing_severity_is_not():
    m = alertmanager.DEFAULT_SEVERITY_STATUS
    assert alertmanager.summarize(alertmanager.parse_alerts([alert("Watchdog", "info")], URL), m)[0] == "ok"
    assert alertmanager.summarize(alertmanager.parse_alerts([alert("Odd", "page")], URL), m)[0] == "degraded"
    status, reason = alertmanager.summarize(alertmanager.parse_alerts([alert("NoSeverity")], URL), m)
    assert status == "degraded" and "1 no severity" in reason


def test_the_severity_mapping_is_an_option():
    alerts = alertmanager.parse_alerts([alert("CeleryQueueBacklog", "warning")], URL)
    assert alertmanager.summarize(alerts, {"warning": "down"})[0] == "down"
    assert alertmanager.summarize(alerts, {"warning": "ok"})[0] == "ok"
    assert alertmanager.severity_status_problem({"critical": "down", "warning": "degraded"}) is None
    assert alertmanager.severity_status_problem({"warning": "bad"}) == \
        "alerts_severity_status.warning must be one of ok, degraded, down (got 'bad')"
    assert "must be a dict" in alertmanager.severity_status_problem(["critical"])


def test_many_alerts_are_counted_and_the_reason_stays_short():
    alerts = alertmanager.parse_alerts([alert("A%d" % i, "warning") for i in range(8)], URL)
    reason = alertmanager.summarize(alerts, alertmanager.DEFAULT_SEVERITY_STATUS)[1]
    assert reason.startswith("8 alert(s) firing (8 warning): ") and reason.endswith("; and 3 more")


def test_credentials_never_leave_in_a_runbook_or_generator_url():
    item = alert("X", "warning")
    item["annotations"]["runbook_url"] = "https://ops:Rb-Secret-1@ops.example/rb.html"
    item["generatorURL"] = "http://prom:Gen-Secret-2@prom.example/graph"
    a, = alertmanager.parse_alerts([item], URL)
    assert a["runbook_url"] == "https://ops.example/rb.html" and a["generatorURL"] == "http://prom.example/graph"


@pytest.mark.parametrize("data,kind", [({"alerts": []}, "a JSON object"), ("ok", "a JSON string"),
                                       (None, "JSON null"), (0, "a JSON number")])
def test_anything_but_a_list_fails_closed(data, kind):
    with pytest.raises(alertmanager.AlertmanagerError) as e:
        alertmanager.parse_alerts(data, URL)
    assert str(e.value).startswith("%s answered %s where Alertmanager's API v2 answers a list of alerts" % (URL, kind))


@pytest.mark.parametrize("item", ["CeleryWorkerDown", {"annotations": {}}, {"labels": ["a"]}])
def test_a_list_of_things_that_are_not_alerts_fails_closed(item):
    with pytest.raises(alertmanager.AlertmanagerError) as e:
        alertmanager.parse_alerts([item], URL)
    assert "item 0 is not an alert with labels" in str(e.value)


# --------------------------------------------------------------------------- the probe, on loopback
@pytest.fixture
def answering():
    servers = []

    def make(status, body, content_type="application/json"):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                Handler.paths.append(self.path)
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass
        Handler.paths = []
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return "http://127.0.0.1:%d" % srv.server_address[1], Handler.paths
    yield make
    for s in servers:
        s.shutdown()
        s.server_close()


def test_probe_asks_only_for_unmuted_active_alerts(answering):
    url, paths = answering(200, [alert("CeleryWorkerDown", "critical", worker="w1@h")])
    c = alertmanager.probe(url + "/", 2)
    assert paths == ["/api/v2/alerts?active=true&silenced=false&inhibited=false"]
    assert c["status"] == "down" and c["count"] == 1 and c["url"] == url
    assert c["alerts"][0]["runbook_url"] == "https://ops.example/runbooks/celeryworkerdown.html"


@pytest.mark.parametrize("status,body,words", [
    (200, {"status": "success", "data": []}, "answered a JSON object where Alertmanager's API v2 answers a list"),
    (200, b"<html>proxy</html>", "answered something that is not JSON"),
    (503, {"error": "x"}, "answered HTTP 503"),
    (401, b"", "answered 401"),
])
def test_probe_fails_closed_on_a_wrong_answer(answering, status, body, words):
    url = answering(status, body)[0]
    c = alertmanager.probe(url, 2)
    assert c["status"] == "down" and words in c["reason"] and c["reason"].endswith("firing alerts unknown"), c
    assert "alerts" not in c and "count" not in c


def test_probe_refused_is_down_without_credentials_in_the_reason():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = alertmanager.probe("http://ops:Am-Secret-3@127.0.0.1:%d/" % port, 1)
    assert c["status"] == "down" and "refused the connection (is Alertmanager running?)" in c["reason"], c
    assert "Am-Secret-3" not in json.dumps(c) and c["url"] == "http://127.0.0.1:%d" % port


def test_probe_rejects_a_url_that_is_not_http():
    c = alertmanager.probe("alertmanager:9093", 1)
    assert c["status"] == "down" and "alertmanager_url must be an http:// or https:// URL" in c["reason"]
