# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ok / degraded / down model every status report uses, and the concurrent collector
that gives each component its own deadline."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading
import time

OK, DEGRADED, DOWN = "ok", "degraded", "down"
# The components of system_status, in the order people read them (the status table, the page).
# Replicas come as extra components named after their kind ("postgres@host:port").
COMPONENTS = ("app", "celery", "redis", "postgres", "backup", "flower", "alerts")
_RANK = {OK: 0, DEGRADED: 1, DOWN: 2}
# fail_on: the statuses that fail a run (the module's option, and the fleet playbook's)
FAIL_ON = {"never": (), "down": (DOWN,), "degraded": (DOWN, DEGRADED)}


def fails(overall, fail_on):
    """Whether a run whose overall status is ``overall`` fails under ``fail_on`` (FAIL_ON)."""
    if fail_on not in FAIL_ON:
        raise ValueError("fail_on must be one of %s, got %r" % (", ".join(sorted(FAIL_ON)), fail_on))
    return overall in FAIL_ON[fail_on] or (fail_on != "never" and overall not in _RANK)


def worst(statuses):
    """The worst of some statuses (ok < degraded < down); ok for none."""
    result = OK
    for s in statuses:
        if _RANK.get(s, 2) > _RANK[result]:
            result = s if s in _RANK else DOWN
    return result


def component(status, reason="", **data):
    """One component's report: status, a reason a person reads, and its figures."""
    out = dict(status=status, reason=reason)
    out.update(data)
    return out


def collect(probes, timeouts, margin=0.25):
    """Run ``probes`` ({name: callable returning a component dict}) at the same time, each in
    a daemon thread, and wait for each no longer than its own ``timeouts[name]`` + ``margin``.

    A probe that raises becomes ``down`` with the exception as reason; one that has not
    finished in time becomes ``down`` "no answer within Ts" and is abandoned (daemon threads
    never hold up the module's exit). Returns ``{name: component}`` with ``duration`` added."""
    results = {}
    started = {}
    threads = {}

    def run(name, probe):
        t0 = time.monotonic()
        try:
            res = probe()
            if not isinstance(res, dict):
                res = component(DOWN, "the check returned no result")
        except Exception as e:  # a probe's own bug must not hide the other components
            res = component(DOWN, "%s: %s" % (type(e).__name__, e))
        res["duration"] = round(time.monotonic() - t0, 3)
        results[name] = res

    for name, probe in probes.items():
        started[name] = time.monotonic()
        t = threading.Thread(target=run, args=(name, probe), name="status-%s" % name)
        t.daemon = True
        threads[name] = t
        t.start()
    for name, t in threads.items():
        deadline = started[name] + timeouts[name] + margin
        t.join(max(0.0, deadline - time.monotonic()))
    out = {}
    for name in probes:
        if name in results:
            out[name] = results[name]
        else:
            out[name] = component(DOWN, "no answer within %ss" % timeouts[name],
                                  duration=round(time.monotonic() - started[name], 3))
    return out
