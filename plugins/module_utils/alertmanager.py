# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What is firing in Alertmanager (API v2), as one status component.

Fail closed: an Alertmanager that cannot be reached, or that answers anything but a list of
alerts, is ``down`` with the reason; it never reads as "nothing firing"."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import json
import re
import time

from ansible_collections.callcenter.ops.plugins.module_utils import app_api
from ansible_collections.callcenter.ops.plugins.module_utils.redact import strip_userinfo
from ansible_collections.callcenter.ops.plugins.module_utils.status import DEGRADED, DOWN, OK, component, worst

# Firing and not muted: a silenced or inhibited alert is someone's decision, not news.
ALERTS_PATH = "/api/v2/alerts?active=true&silenced=false&inhibited=false"
DEFAULT_SEVERITY_STATUS = {"critical": DOWN, "warning": DEGRADED, "info": OK}
# A firing alert whose severity is not in the mapping (or has none) is not ok: someone wrote a
# rule for it. It counts as degraded.
UNKNOWN_SEVERITY_STATUS = DEGRADED
# Labels that say where an alert fires, in the order they are shown.
WHERE_LABELS = ("instance", "worker", "queue", "path", "job")

_RFC3339 = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")


class AlertmanagerError(Exception):
    """Alertmanager could not be read, phrased for an operator."""


def severity_status_problem(mapping):
    """None when ``mapping`` ({severity: ok|degraded|down}) is usable, else the sentence why not."""
    if not isinstance(mapping, dict):
        return "alerts_severity_status must be a dict of severity: ok|degraded|down (got %r)" % (mapping,)
    for severity, status in mapping.items():
        if status not in (OK, DEGRADED, DOWN):
            return ("alerts_severity_status.%s must be one of ok, degraded, down (got %r)" % (severity, status))
    return None


def parse_time(value):
    """Seconds since the epoch of an RFC 3339 time as Alertmanager writes it (nanoseconds and
    all: ``2026-11-25T13:00:00.123456789Z``); None when it is not one."""
    m = _RFC3339.match(value) if isinstance(value, str) else None
    if not m:
        return None
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    try:
        epoch = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    epoch += float("0" + m.group(7)) if m.group(7) else 0.0
    zone = m.group(8)
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        epoch -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return epoch


def _text(value):
    return value if isinstance(value, str) else ("" if value is None else str(value))


def parse_alerts(data, url, now=None):
    """The alerts of an API v2 answer, each as a flat dict a page and a table can show.

    Raises AlertmanagerError when ``data`` is not a list of alert objects (fail closed)."""
    if not isinstance(data, list):
        raise AlertmanagerError("%s answered %s where Alertmanager's API v2 answers a list of alerts: is "
                                "alertmanager_url Alertmanager's address (not Prometheus, not a proxy page)?"
                                % (url, app_api.json_kind(data)))
    now = time.time() if now is None else now
    alerts = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("labels"), dict):
            raise AlertmanagerError("%s answered a list whose item %d is not an alert with labels (%s): is "
                                    "alertmanager_url Alertmanager's address?" % (url, i, app_api.json_kind(item)))
        labels = dict((_text(k), _text(v)) for k, v in item["labels"].items())
        annotations = item.get("annotations") if isinstance(item.get("annotations"), dict) else {}
        started = parse_time(item.get("startsAt"))
        status = item.get("status") if isinstance(item.get("status"), dict) else {}
        alerts.append(dict(
            alertname=labels.get("alertname", ""),
            severity=labels.get("severity", ""),
            labels=labels,
            where=", ".join("%s=%s" % (k, labels[k]) for k in WHERE_LABELS if labels.get(k)),
            startsAt=_text(item.get("startsAt")),
            age_seconds=round(max(0.0, now - started), 1) if started is not None else None,
            summary=_text(annotations.get("summary")),
            description=_text(annotations.get("description")),
            runbook_url=strip_userinfo(_text(annotations.get("runbook_url"))),
            generatorURL=strip_userinfo(_text(item.get("generatorURL"))),
            fingerprint=_text(item.get("fingerprint")),
            state=_text(status.get("state")),
        ))
    return alerts


def alert_status(alert, mapping):
    """The status one firing alert gives the component (by its severity)."""
    return mapping.get(alert["severity"], UNKNOWN_SEVERITY_STATUS)


def sort_alerts(alerts, mapping):
    """Worst first, then the oldest first, then by name."""
    rank = {DOWN: 0, DEGRADED: 1, OK: 2}
    return sorted(alerts, key=lambda a: (rank[alert_status(a, mapping)], -(a["age_seconds"] or 0),
                                         a["alertname"], a["where"]))


def summarize(alerts, mapping):
    """``(status, reason)`` of the component for these firing alerts."""
    if not alerts:
        return OK, ""
    status = worst(alert_status(a, mapping) for a in alerts)
    by_severity = {}
    for a in alerts:
        by_severity[a["severity"] or "no severity"] = by_severity.get(a["severity"] or "no severity", 0) + 1
    counts = ", ".join("%d %s" % (n, sev) for sev, n in sorted(by_severity.items(), key=lambda kv: (-kv[1], kv[0])))
    names = []
    for a in sort_alerts(alerts, mapping):
        name = "%s (%s)" % (a["alertname"] or "?", a["where"]) if a["where"] else (a["alertname"] or "?")
        if name not in names:
            names.append(name)
    shown = "; ".join(names[:5]) + ("; and %d more" % (len(names) - 5) if len(names) > 5 else "")
    return status, "%d alert(s) firing (%s): %s" % (len(alerts), counts, shown)


def probe(url, timeout, mapping=None, validate_certs=True, ca_path=None, basic_auth=None):
    """The ``alerts`` component: what fires in the Alertmanager at ``url`` (shown without user info)."""
    mapping = DEFAULT_SEVERITY_STATUS if mapping is None else mapping
    shown = strip_userinfo(url).rstrip("/") if isinstance(url, str) else url
    try:
        client = app_api.AppClient(url, None, timeout, validate_certs, ca_path, basic_auth=basic_auth,
                                   option="alertmanager_url", service="Alertmanager")
        status, raw = client._request("GET", ALERTS_PATH, auth=bool(basic_auth))
    except app_api.AppError as e:
        return component(DOWN, "%s; firing alerts unknown" % e, url=shown)
    where = shown + ALERTS_PATH
    try:
        if status == 401:
            raise AlertmanagerError("%s answered 401: the proxy in front of Alertmanager wants credentials "
                                    "(user info in alertmanager_url)" % where)
        if status != 200:
            raise AlertmanagerError("%s answered HTTP %d (is alertmanager_url Alertmanager's address, with its "
                                    "route prefix?)" % (where, status))
        try:
            data = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            snippet = raw[:80].decode("utf-8", "replace").replace("\n", " ")
            raise AlertmanagerError("%s answered something that is not JSON (%r...): is alertmanager_url "
                                    "Alertmanager's address, not a proxy page?" % (where, snippet))
        alerts = parse_alerts(data, where)
    except AlertmanagerError as e:
        return component(DOWN, "%s; firing alerts unknown" % e, url=shown)
    alerts = sort_alerts(alerts, mapping)
    status, reason = summarize(alerts, mapping)
    return component(status, reason, url=shown, count=len(alerts), alerts=alerts)
