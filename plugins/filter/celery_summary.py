# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turns a celery_health result into the lines an operator reads in a terminal or AWX."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.callcenter.ops.plugins.module_utils.fmt import duration


def celery_summary(result):
    """Lines summarising a celery_health result: verdict, workers, queues, beat, problems."""
    if not isinstance(result, dict):
        raise TypeError("celery_summary expects the registered result of callcenter.ops.celery_health")
    workers = result.get("workers") or []
    verdict = "HEALTHY" if result.get("healthy") else "UNHEALTHY"
    lines = ["Celery %s: %d worker(s) online, broker %s"
             % (verdict, result.get("workers_online", 0), result.get("broker", "?"))]
    name_w = max([len(w.get("name", "")) for w in workers] + [6])
    for w in workers:
        active = w.get("active")
        lines.append("  worker %-*s  %-8s active %s" % (name_w, w.get("name"), "ok" if w.get("ping") else "NO PING",
                                                        "-" if active is None else active))
    details = result.get("queue_details") or {}
    queues = result.get("queues") or {}
    q_w = max([len(q) for q in queues] + [6])
    for q in sorted(queues):
        d = details.get(q, {})
        extra = " (unacked %d)" % d["unacked"] if d.get("unacked") else ""
        unknown = "  [not declared by any worker]" if d.get("exists") is False else ""
        lines.append("  queue  %-*s  waiting %d%s%s" % (q_w, q, queues[q], extra, unknown))
    for name, e in sorted((result.get("beat") or {}).items()):
        age = "never" if e.get("age_seconds") is None else duration(e["age_seconds"]) + " ago"
        lines.append("  beat   %s  last run %s (%s, %d runs)"
                     % (name, e.get("last_run_at") or "-", age, e.get("total_run_count", 0)))
    for p in result.get("problems") or []:
        lines.append("  PROBLEM: %s" % p)
    return lines


class FilterModule(object):
    def filters(self):
        return {"celery_summary": celery_summary}
