# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A system_status result as a table that reads well in a terminal and in AWX's job output."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.callcenter.ops.plugins.module_utils.fmt import duration as _duration, size as _bytes
from ansible_collections.callcenter.ops.plugins.module_utils.redact import strip_userinfo
from ansible_collections.callcenter.ops.plugins.module_utils.status import COMPONENTS, DOWN, OK, fails, worst


def component_names(components):
    """The names of a result's components in the order a person reads them: the known ones in
    the order of COMPONENTS (module_utils/status.py), then every other one (``postgres@host:port`` replicas, ...) sorted."""
    comps = components or {}
    return [n for n in COMPONENTS if n in comps] + sorted(str(n) for n in comps if n not in COMPONENTS)


def figures(name, c):
    """The key figures of one component, as a short phrase. ``name`` may carry a ``@where``
    (``postgres@db2:5432``): its figures are those of its kind."""
    if c.get("status") == "down" and len(c) <= 3:
        return ""
    name = str(name).split("@", 1)[0]
    if name == "app":
        parts = []
        if c.get("version"):
            parts.append("v%s" % c["version"])
        if c.get("uptime_seconds") is not None:
            parts.append("up %s" % _duration(c["uptime_seconds"]))
        if c.get("active_calls") is not None:
            parts.append("%s active call(s)" % c["active_calls"])
        parts.append("ready" if c.get("ready") else "NOT ready")
        return ", ".join(parts)
    if name == "celery":
        queues = " ".join("%s=%s" % (q, n) for q, n in sorted((c.get("queues") or {}).items()))
        return "%s worker(s)%s" % (c.get("workers_online", 0), (", " + queues) if queues else "")
    if name == "redis":
        limit = _bytes(c["maxmemory"]) if c.get("maxmemory") else "no limit"
        if c.get("used_memory") is None:
            return redis_replication(c)
        return ", ".join(p for p in ["mem %s / %s, frag %s, %s clients, %s" % (
            _bytes(c.get("used_memory")), limit, c.get("mem_fragmentation_ratio"), c.get("connected_clients"),
            c.get("role")), redis_replication(c)] if p)
    if name == "postgres":
        if c.get("connections") is None:
            return ""
        return ", ".join(p for p in ["%s/%s connections, db %s, v%s" % (
            c["connections"], c.get("max_connections"), _bytes(c.get("database_size")), c.get("server_version")),
            pg_replication(c)] if p)
    if name == "backup":
        if not c.get("path"):
            return ""
        verified = {True: "verified ok", False: "verification FAILED", None: "not verified"}[c.get("verified")]
        return "%s %s, %s old, %s" % (c["path"].rsplit("/", 1)[-1], _bytes(c.get("size")),
                                      _duration(c.get("age_seconds")), verified)
    if name == "flower":
        parts = [strip_userinfo(c.get("url") or "")]
        if c.get("auth") is not None:
            parts.append("auth on" if c["auth"] else "NO auth")
        if c.get("credentials") in ("accepted", "rejected"):
            parts.append("login %s" % c["credentials"])
        return ", ".join(p for p in parts if p)
    if name == "alerts":
        if c.get("count") is None:
            return strip_userinfo(c.get("url") or "")
        if not c["count"]:
            return "nothing firing"
        severities = {}
        for a in c.get("alerts") or []:
            sev = a.get("severity") or "no severity"
            severities[sev] = severities.get(sev, 0) + 1
        return "%d firing: %s" % (c["count"], ", ".join(
            "%d %s" % (n, sev) for sev, n in sorted(severities.items(), key=lambda kv: (-kv[1], kv[0]))))
    return ""


def redis_replication(c):
    """Replicas and their lag, and the Sentinels' view, as a phrase (empty without either)."""
    parts = []
    rep = c.get("replication") or {}
    replicas = rep.get("replicas") or []
    if replicas:
        online = sum(1 for r in replicas if r.get("state") == "online")
        parts.append("%d/%d replica(s) online, max lag %s" % (
            online, len(replicas), _bytes(max(r.get("lag_bytes") or 0 for r in replicas))))
    elif rep.get("master"):
        parts.append("replica of %s, link %s" % (rep["master"], rep.get("master_link_status") or "?"))
    sentinel = c.get("sentinel") or {}
    if sentinel:
        parts.append("Sentinel: master %s, %s/%s answering, quorum %s" % (
            sentinel.get("master") or "?", sentinel.get("sentinels_answering", "?"), sentinel.get("sentinels", "?"),
            "reached" if sentinel.get("quorum_reached") else "NOT reached"))
    return ", ".join(parts)


def pg_replication(c):
    """Where a PostgreSQL server stands in replication, as a phrase: a primary's streaming
    replicas and their replay lag, or a replica's upstream, replay lag and pause."""
    rep = c.get("replication") or {}
    if c.get("role") == "replica":
        parts = ["replica of %s, %s" % (rep.get("upstream") or "?", rep.get("wal_receiver") or "not streaming")]
        lag = "replay lag %s" % _bytes(rep.get("replay_lag_bytes"))
        if rep.get("replay_lag_seconds") is not None:
            lag += " / %s" % _duration(rep["replay_lag_seconds"])
        parts.append(lag)
        if rep.get("replay_paused"):
            parts.append("replay PAUSED")
        return ", ".join(parts)
    replicas = rep.get("replicas") or []
    if not replicas:
        return ""
    streaming = sum(1 for r in replicas if r.get("state") == "streaming")
    lags = [r["replay_lag_bytes"] for r in replicas if r.get("replay_lag_bytes") is not None]
    return "%d replica(s) streaming%s" % (streaming, (", max replay lag %s" % _bytes(max(lags))) if lags else "")


def alert_lines(c):
    """One indented line per firing alert, with where it fires, since when and its runbook."""
    lines = []
    for a in (c or {}).get("alerts") or []:
        parts = ["%s %s" % ((a.get("severity") or "-").upper(), a.get("alertname") or "?")]
        if a.get("where"):
            parts.append(a["where"])
        if a.get("startsAt"):
            parts.append("since %s%s" % (a["startsAt"], " (%s)" % _duration(a["age_seconds"])
                                         if a.get("age_seconds") is not None else ""))
        if a.get("summary"):
            parts.append(a["summary"])
        if a.get("runbook_url"):
            parts.append("runbook: %s" % strip_userinfo(a["runbook_url"]))
        lines.append("  - " + " | ".join(parts))
    return lines


def app_instance(result):
    """The app component of one host's registered system_status result; a host that gave no
    result (unreachable, module failed) is a ``down`` instance saying why."""
    result = result if isinstance(result, dict) else {}
    app = (result.get("components") or {}).get("app")
    if isinstance(app, dict):
        return app
    if result.get("unreachable"):
        why = "host unreachable: %s" % (result.get("msg") or "no answer")
    elif result.get("skipped"):
        why = "not collected (skipped)"
    elif result.get("failed"):
        why = "collection failed: %s" % (result.get("msg") or "no message")
    else:
        why = "no result from this host"
    return dict(status=DOWN, reason=why)


def status_fleet(shared, apps):
    """One system_status result for a fleet: the shared components read once (``shared``, the
    registered result; a failed "nothing to check" counts as none) and ``apps`` ({host: that
    host's registered result}) as one application instance per host, under ``apps``. The
    overall status, problems and msg cover both."""
    if not isinstance(apps, dict):
        raise TypeError("status_fleet expects {host: registered system_status result}")
    shared = shared if isinstance(shared, dict) else {}
    comps = dict(shared.get("components") or {})
    comps.pop("app", None)
    instances = dict((str(h), app_instance(r)) for h, r in apps.items())
    problems = ["%s %s: %s" % (n, c.get("status"), c.get("reason")) for n, c in sorted(comps.items())
                if c.get("status") != OK]
    problems += ["app@%s %s: %s" % (h, c.get("status"), c.get("reason")) for h, c in sorted(instances.items())
                 if c.get("status") != OK]
    overall = worst([c.get("status") for c in comps.values()] + [c.get("status") for c in instances.values()])
    ready = sum(1 for c in instances.values() if c.get("ready"))
    results = [r for r in apps.values() if isinstance(r, dict)]
    generated = shared.get("generated_at") or max([r.get("generated_at", "") for r in results] or [""])
    duration = max([shared.get("duration") or 0] + [r.get("duration") or 0 for r in results])
    out = dict(changed=False, status=overall, components=comps, apps=instances, problems=problems,
               apps_ready=ready, generated_at=generated, duration=duration)
    out["msg"] = "platform %s (%d of %d app instance(s) ready)%s" % (
        overall, ready, len(instances), (": " + "; ".join(problems)) if problems else "")
    return out


def status_table(result):
    """Lines of a table: component, status, key figures, reason; then the overall status.
    A fleet result (status_fleet) has one row per application instance, ``app@<host>``."""
    if not isinstance(result, dict) or "components" not in result:
        raise TypeError("status_table expects the registered result of callcenter.ops.system_status")
    comps = result["components"]
    names = component_names(comps)
    rows = [("COMPONENT", "STATUS", "FIGURES", "REASON")]
    for host, c in sorted((result.get("apps") or {}).items()):
        rows.append(("app@%s" % host, str(c.get("status", "?")).upper(), figures("app", c), c.get("reason") or ""))
    for n in names:
        c = comps[n]
        rows.append((n, str(c.get("status", "?")).upper(), figures(n, c), c.get("reason") or ""))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = []
    for r in rows:
        lines.append(("%-*s  %-*s  %-*s  %s" % (widths[0], r[0], widths[1], r[1], widths[2], r[2], r[3])).rstrip())
        if r[0] == "alerts":
            lines.extend(alert_lines(comps["alerts"]))
    fleet = ""
    if result.get("apps") is not None:
        fleet = ", %d of %d app instance(s) ready" % (result.get("apps_ready") or 0, len(result["apps"]))
    lines.append("overall: %s%s (generated %s, %.2fs)" % (str(result.get("status", "?")).upper(), fleet,
                                                          result.get("generated_at", "?"), result.get("duration") or 0))
    return lines


def status_figures(comp, name):
    """The key figures of one component of a system_status result."""
    return figures(name, comp or {})


def status_components(components):
    """Every component name of a system_status result (its ``components``), known ones first in
    their usual order, then the others (``postgres@host:port`` replicas, ...)."""
    if not isinstance(components, dict):
        raise TypeError("status_components expects the components of a system_status result")
    return component_names(components)


def status_duration(seconds):
    """Seconds as people read them (42s, 10m, 2.5h, 3.0d), e.g. how long an alert has fired."""
    return _duration(seconds)


def url_without_credentials(url):
    """``url`` without its ``user:password@`` part, for links on pages and in messages."""
    return strip_userinfo(url)


def status_fails(overall, fail_on="never"):
    """Whether a run with this overall status fails under ``fail_on``: the module's own rule."""
    return fails(overall, fail_on)


class FilterModule(object):
    def filters(self):
        return {"status_table": status_table, "status_figures": status_figures,
                "url_without_credentials": url_without_credentials, "status_duration": status_duration,
                "status_fleet": status_fleet, "status_components": status_components,
                "status_fails": status_fails}
