"""The collection's Alertmanager event source (extensions/eda/plugins/event_source/alertmanager.py):
Alertmanager's webhook payload becomes one event per alert, and a bad request is answered with
a 4xx that names the problem while the source keeps serving."""

import asyncio
import json
import socket

import pytest

from ansible_collections.callcenter.ops.extensions.eda.plugins.event_source import alertmanager as src


def payload(*alerts, status="firing"):
    return {"version": "4", "status": status, "receiver": "callcenter-eda", "groupKey": "{}:{alertname=\"X\"}",
            "externalURL": "http://am.example:9093", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
            "truncatedAlerts": 0, "alerts": list(alerts)}


def alert(name, status="firing", **labels):
    return {"status": status, "labels": dict(labels, alertname=name),
            "annotations": {"summary": "%s fires" % name, "runbook_url": "https://ops.example/rb.html"},
            "startsAt": "2026-11-26T12:00:00.5Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prom.example/graph", "fingerprint": "f-" + name}


def test_each_alert_of_a_notification_is_one_event_firing_and_resolved():
    events = src.alert_events(payload(alert("CeleryWorkerDown", worker="w1@app1"),
                                      alert("BackupTooOld", status="resolved", path="/b/x.dump.gz")))
    assert [(e["alertname"], e["status"]) for e in events] == [("CeleryWorkerDown", "firing"), ("BackupTooOld", "resolved")]
    first = events[0]
    assert first["alert"]["labels"] == {"alertname": "CeleryWorkerDown", "worker": "w1@app1"}
    assert first["alert"]["fingerprint"] == "f-CeleryWorkerDown" and first["receiver"] == "callcenter-eda"
    assert first["alert"]["annotations"]["runbook_url"] == "https://ops.example/rb.html"


def test_an_alert_without_its_own_status_takes_the_notifications():
    a = alert("X")
    del a["status"]
    assert src.alert_events(payload(a, status="resolved"))[0]["status"] == "resolved"


@pytest.mark.parametrize("body, reason", [
    (b"{not json", "not JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[]", "no 'alerts' list"),
    (json.dumps({"alerts": "x"}).encode(), "no 'alerts' list"),
    (json.dumps({"alerts": [1]}).encode(), "alert 0 is not an object"),
    (json.dumps({"alerts": [{"labels": {}}]}).encode(), "no alertname"),
    (json.dumps({"alerts": [{"labels": "x"}]}).encode(), "labels must be an object"),
    (json.dumps({"alerts": [{"labels": {"alertname": "X"}, "status": "weird"}]}).encode(), "status 'weird'"),
])
def test_a_body_that_is_not_an_alertmanager_notification_is_refused_with_the_reason(body, reason):
    with pytest.raises(src.BadPayload, match=reason):
        src.parse_body(body)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def request(port, raw):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, body = data.split(b"\r\n\r\n", 1)
    return int(head.split()[1]), json.loads(body or b"{}")


def post(body, path="/alerts", headers=""):
    return ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
            % (path, len(body), headers)).encode() + body


def test_the_server_queues_good_notifications_and_survives_bad_ones():
    async def scenario():
        queue = asyncio.Queue()
        port = free_port()
        task = asyncio.ensure_future(src.main(queue, {"port": port, "max_body_bytes": 4096, "token": "s3cret",
                                                      "read_timeout": 1}))
        for _attempt in range(100):
            try:
                status = (await request(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))[0]
                break
            except OSError:
                await asyncio.sleep(0.02)
        assert status == 200
        auth = "Authorization: Bearer s3cret\r\n"
        good = json.dumps(payload(alert("CeleryWorkerDown", worker="w1@a"), alert("X"))).encode()
        results = [
            await request(port, post(good, headers=auth)),
            await request(port, post(b"{broken", headers=auth)),
            await request(port, post(good)),                                   # no token
            await request(port, post(b"x" * 5000, headers=auth)),               # over the limit, never read
            await request(port, b"POST /alerts HTTP/1.1\r\nHost: x\r\n" + auth.encode() + b"\r\n"),  # no length
            await request(port, b"PUT /alerts HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            await request(port, post(b"{}" + b" " * 10, headers=auth)[:-5]),    # sends less than it says: timeout
            await request(port, post(good, headers=auth)),                     # still serving
        ]
        task.cancel()
        events = []
        while not queue.empty():
            events.append(queue.get_nowait())
        return results, events

    results, events = asyncio.run(scenario())
    assert [r[0] for r in results] == [200, 400, 401, 413, 411, 405, 408, 200]
    assert results[0][1] == {"accepted": 2} and "not JSON" in results[1][1]["error"]
    assert [e["alertname"] for e in events] == ["CeleryWorkerDown", "X"] * 2
