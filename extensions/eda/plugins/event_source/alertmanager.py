# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An ansible-rulebook event source: Alertmanager's webhook, one event per alert.

The usual one lives in ansible.eda, which is not always installable (no Galaxy): this one
is small, stdlib only (asyncio), and strict about what it accepts, so a bad sender can
never stop it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
short_description: Receive Alertmanager webhook notifications, one event per alert.
description:
  - An HTTP server for Alertmanager's C(webhook_configs) (payload version 4). Every alert of a
    notification becomes one event, firing and resolved, shaped as
    C({alert: {status, labels, annotations, startsAt, endsAt, fingerprint, generatorURL},
    alertname, status, receiver, groupKey, externalURL}).
  - A body over O(max_body_bytes) is answered 413, JSON that is not an Alertmanager payload
    400, a wrong token 401; the source keeps running. C(GET /healthz) answers 200.
options:
  host:
    description: Address to listen on. Keep it on loopback unless O(token) is set.
    type: str
    default: 127.0.0.1
  port:
    description: Port to listen on.
    type: int
    default: 5000
  token:
    description:
      - When set, a request must carry C(Authorization Bearer <token>) (Alertmanager's
        C(http_config.authorization.credentials)). Pass it from the environment (C(-E)).
    type: str
  max_body_bytes:
    description: Largest body accepted, in bytes.
    type: int
    default: 1048576
  read_timeout:
    description: Seconds a client gets to send its request.
    type: float
    default: 10
"""

EXAMPLES = r"""
- name: Alerts start their runbook
  hosts: all
  sources:
    - callcenter.ops.alertmanager:
        host: 127.0.0.1
        port: 5000
  rules:
    - name: A worker is down
      condition: event.alert.status == "firing" and event.alertname == "CeleryWorkerDown"
      action:
        run_playbook:
          name: callcenter.ops.diagnose_worker_down
"""

import asyncio
import hmac
import json
import logging

LOG = logging.getLogger(__name__)
MAX_HEADER_BYTES = 16384
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 411: "Length Required", 413: "Payload Too Large",
           431: "Request Header Fields Too Large"}


class BadPayload(ValueError):
    """The request is not an Alertmanager webhook notification; the text says why."""


def _str_map(value, what):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadPayload("%s must be an object" % what)
    return dict((str(k), "" if v is None else str(v)) for k, v in value.items())


def alert_events(payload):
    """Alertmanager's webhook payload (a dict) as a list of events, one per alert."""
    if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
        raise BadPayload("not an Alertmanager webhook payload: no 'alerts' list")
    events = []
    for i, raw in enumerate(payload["alerts"]):
        if not isinstance(raw, dict):
            raise BadPayload("alert %d is not an object" % i)
        labels = _str_map(raw.get("labels"), "alert %d's labels" % i)
        if not labels.get("alertname"):
            raise BadPayload("alert %d has no alertname label" % i)
        status = raw.get("status") or payload.get("status")
        if status not in ("firing", "resolved"):
            raise BadPayload("alert %d has status %r (firing or resolved expected)" % (i, status))
        alert = {
            "status": status,
            "labels": labels,
            "annotations": _str_map(raw.get("annotations"), "alert %d's annotations" % i),
            "startsAt": str(raw.get("startsAt") or ""),
            "endsAt": str(raw.get("endsAt") or ""),
            "fingerprint": str(raw.get("fingerprint") or ""),
            "generatorURL": str(raw.get("generatorURL") or ""),
        }
        events.append({"alert": alert, "alertname": labels["alertname"], "status": status,
                       "receiver": str(payload.get("receiver") or ""), "groupKey": str(payload.get("groupKey") or ""),
                       "externalURL": str(payload.get("externalURL") or "")})
    return events


def parse_body(body):
    """The events in a request body (bytes); BadPayload naming the problem otherwise."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadPayload("the body is not UTF-8") from None
    except ValueError as e:
        raise BadPayload("the body is not JSON (%s)" % e) from None
    return alert_events(payload)


def _response(writer, status, body):
    raw = json.dumps(body).encode()
    writer.write(("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                  "Connection: close\r\n\r\n" % (status, REASONS.get(status, ""), len(raw))).encode() + raw)


async def handle(reader, writer, queue, token=None, max_body=1048576, read_timeout=10.0):
    """One request: answer it, put its events on ``queue``; never raises."""
    status, body = 500, {"error": "internal error"}
    try:
        status, body = await asyncio.wait_for(_handle(reader, queue, token, max_body), read_timeout)
    except asyncio.TimeoutError:
        status, body = 408, {"error": "the request was not sent within %ss" % read_timeout}
    except (asyncio.IncompleteReadError, ConnectionError):
        status = None
    except Exception as e:  # pylint: disable=broad-except  # a bad client must never stop the source
        LOG.exception("alertmanager source: request failed: %s", e)
    try:
        if status is not None:
            _response(writer, status, body)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _handle(reader, queue, token, max_body):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        return 431, {"error": "request headers over %d bytes" % MAX_HEADER_BYTES}
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split()
    if len(parts) != 3:
        return 400, {"error": "malformed request line"}
    method, target = parts[0], parts[1]
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if method == "GET" and target.split("?")[0] == "/healthz":
        return 200, {"status": "ok"}
    if method != "POST":
        return 405, {"error": "POST Alertmanager's webhook notifications here"}
    if token and not hmac.compare_digest(headers.get("authorization", "").encode(), ("Bearer %s" % token).encode()):
        return 401, {"error": "missing or wrong bearer token"}
    try:
        length = int(headers["content-length"])
    except (KeyError, ValueError):
        return 411, {"error": "a Content-Length header is required"}
    if length < 0 or length > max_body:
        return 413, {"error": "body of %d bytes is over the limit of %d" % (length, max_body)}
    data = await reader.readexactly(length)
    try:
        events = parse_body(data)
    except BadPayload as e:
        LOG.warning("alertmanager source: rejected a request: %s", e)
        return 400, {"error": str(e)}
    for event in events:
        await queue.put(event)
    return 200, {"accepted": len(events)}


async def main(queue, args):
    """ansible-rulebook's entry point: serve until cancelled."""
    host = args.get("host", "127.0.0.1")
    port = int(args.get("port", 5000))
    token = args.get("token") or None
    max_body = int(args.get("max_body_bytes", 1048576))
    read_timeout = float(args.get("read_timeout", 10))

    async def client(reader, writer):
        await handle(reader, writer, queue, token, max_body, read_timeout)

    server = await asyncio.start_server(client, host, port, limit=MAX_HEADER_BYTES)
    LOG.info("alertmanager source listening on %s:%d", host, port)
    try:
        async with server:
            await server.serve_forever()
    finally:
        server.close()


if __name__ == "__main__":
    # Try it without ansible-rulebook: print the events.
    class _Print:
        async def put(self, event):
            print(json.dumps(event))

    asyncio.run(main(_Print(), {"port": 5000}))
