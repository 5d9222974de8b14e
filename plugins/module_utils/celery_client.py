# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one Celery client of the collection: worker ping and inspect (Celery's own control
API), queue depth and purge on the Redis broker. The beat schedule file is read by celery_beat.

Used by celery_health, celery_queue_purge and system_status. Celery is imported only when
a worker call is about to be made: a Redis that is down is reported before paying for it.

STDLIB + celery ONLY: the celery_metrics host script imports this file too (see
roles/host_files/vars/main.yml), in the Python that has the app's Celery."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
from functools import partial
import threading

try:
    from ansible_collections.callcenter.ops.plugins.module_utils.redis_client import BrokerError
except ImportError:  # installed on a host beside the celery_metrics script, without Ansible
    from ccops_redis_client import BrokerError
try:
    from ansible_collections.callcenter.ops.plugins.module_utils.textfile import exposition
except ImportError:
    from ccops_textfile import exposition
try:
    from ansible_collections.callcenter.ops.plugins.module_utils.redact import mask
except ImportError:
    from ccops_redact import mask

# kombu's Redis transport keeps one list per priority step: the bare name for step 0, then
# "<queue>\x06\x16<step>". It clamps a message's priority to 0..9 and files it under the largest
# configured step not above it (kombu.transport.redis Channel._q_for_pri / priority), so whatever
# the app's priority_steps, its lists are among these ten: reading all ten (one pipelined round
# trip) counts every message without the operator knowing the app's steps. A SCAN for
# "<queue>\x06\x16*" would also find them, but walks the whole keyspace (result keys included).
PRIORITY_SEP = "\x06\x16"
KOMBU_PRIORITY_STEPS = tuple(range(10))
UNACKED_KEY = "unacked"
BINDING_PREFIX = "_kombu.binding."
UNACKED_SCAN_LIMIT = 100000
# Seconds a Celery call may take beyond its own timeout (connecting, declaring the reply queue)
# before it is abandoned. 1 s proved too little on a loaded 2-core machine: a ping that found no
# worker was sometimes abandoned as "connection broke" and the queue check never ran.
CALL_GRACE = 2.0

try:
    from importlib.util import find_spec
    HAS_CELERY = find_spec("celery") is not None  # found, not imported: the import costs ~0.2 s
except (ImportError, ValueError):
    HAS_CELERY = False


def priority_steps(extra=None):
    """Every step a kombu Redis queue can have a list for (0..9), plus ``extra`` steps."""
    return sorted(set(KOMBU_PRIORITY_STEPS) | set(int(s) for s in (extra or ())))


def priority_queue_names(queue, steps=None):
    """Redis list names that may hold the messages of ``queue``, one per priority step
    (every step 0..9, plus ``steps`` for an app with steps outside that range)."""
    return [queue if step == 0 else "%s%s%d" % (queue, PRIORITY_SEP, step) for step in priority_steps(steps)]


def queue_depths(client, queues, steps=None):
    """Messages waiting per queue, summed over all its priority sub-queues, in one round trip.

    Returns ``{queue: {"waiting": n, "by_priority": {step: n}, "exists": bool}}``;
    ``by_priority`` lists step 0 and every step holding messages (Redis drops empty lists, so
    these are the steps in use). A queue "exists" when a worker has declared it (kombu
    binding) or it holds messages."""
    steps = priority_steps(steps)
    pipe = client.pipeline(transaction=False)
    for q in queues:
        for name in priority_queue_names(q, steps):
            pipe.llen(name)
        pipe.exists(BINDING_PREFIX + q)
    replies = pipe.execute()
    result = {}
    i = 0
    for q in queues:
        by_priority = {}
        for step in steps:
            n = int(replies[i])
            i += 1
            if n or step == 0:
                by_priority[str(step)] = n
        bound = bool(replies[i])
        i += 1
        waiting = sum(by_priority.values())
        result[q] = dict(waiting=waiting, by_priority=by_priority, exists=bound or waiting > 0)
    return result


def unacked_by_queue(client, limit=UNACKED_SCAN_LIMIT):
    """Messages reserved by workers but not yet acknowledged, by routing key (queue).

    Returns ``(counts, complete)``; ``complete`` is False when more than ``limit``
    entries exist and counting stopped there."""
    counts = {}
    seen = 0
    for _tag, raw in client.hscan_iter(UNACKED_KEY, count=1000):
        seen += 1
        if seen > limit:
            return counts, False
        try:
            routing_key = json.loads(raw)[2]
        except (ValueError, IndexError, TypeError):
            routing_key = "(unreadable)"
        counts[routing_key] = counts.get(routing_key, 0) + 1
    return counts, True


def purge_queues(client, queues, steps=None, check_mode=False):
    """Remove every waiting message of each queue (all its priority sub-queues) atomically.

    Returns ``{queue: removed}``; in check mode counts what would be removed and removes
    nothing. Unacknowledged (reserved) messages are not touched, as with ``celery purge``."""
    result = {}
    for q in queues:
        names = priority_queue_names(q, steps)
        pipe = client.pipeline(transaction=True)
        for name in names:
            pipe.llen(name)
        if not check_mode:
            for name in names:
                pipe.delete(name)
        replies = pipe.execute()
        result[q] = sum(int(r) for r in replies[:len(names)])
    return result


class CeleryProbe:
    """Celery's control API (ping, inspect) on one broker, configured to fail fast."""

    def __init__(self, url, timeout, validate_certs=True, ca_path=None):
        try:
            from celery import Celery  # costs ~0.2 s: import only once Redis answered
        except ImportError as e:
            raise BrokerError("Celery could not be imported on this host (%s): install celery in the Python "
                              "that runs the module (ansible_python_interpreter)" % e)

        self.url = url
        self.timeout = timeout
        self.abandoned = False
        # fixups=[]: the probe is not the app. With DJANGO_SETTINGS_MODULE in the environment, Celery's
        # Django fixup would import Django, put the current directory first on sys.path and make the
        # probe the default app; without it, one import less on every run.
        self.app = Celery("callcenter_ops_probe", broker=url.celery_url(), set_as_current=False, fixups=[])
        # the app's own transport options where they matter (Sentinel: master_name, sentinel_kwargs)
        transport = url.transport_options(timeout)
        self.app.conf.update(
            broker_connection_retry=False,
            broker_connection_retry_on_startup=False,
            broker_connection_max_retries=0,
            broker_connection_timeout=timeout,
            broker_transport_options=transport,
            broker_heartbeat=0,
            result_backend=None,
        )
        if url.scheme == "rediss":
            import ssl
            opts = dict(ssl_cert_reqs=ssl.CERT_REQUIRED if validate_certs else ssl.CERT_NONE)
            if ca_path:
                opts["ssl_ca_certs"] = ca_path
            self.app.conf.broker_use_ssl = opts

    def _call(self, what, func):
        """Run one Celery call with a hard deadline of ``timeout`` + CALL_GRACE seconds: kombu
        retries a connection that broke during the call (a Sentinel master killed mid-ping took
        11.6 s with timeout 4), so the call runs in a daemon thread that is abandoned at the deadline."""
        outcome = {}

        def run():
            try:
                outcome["value"] = func()
            except Exception as e:  # kombu raises many types; all become one clear sentence
                outcome["error"] = e

        worker = threading.Thread(target=run, name="celery-%s" % what)
        worker.daemon = True
        worker.start()
        worker.join(self.timeout + CALL_GRACE)
        hint = ""
        if getattr(self.url, "is_sentinel", False):
            hint = "; if the master just went down, the Sentinels promote a replica within seconds: run the check again"
        if worker.is_alive():
            self.abandoned = True  # its connection is still in use: close() must not wait for it
            raise BrokerError("%s: Celery %s did not finish within %ss (the broker connection broke during the call, "
                              "and kombu kept retrying)%s" % (self.url.where, what, self.timeout + CALL_GRACE, hint))
        if "error" in outcome:
            e = outcome["error"]
            text = mask(e, *self.url.secrets())
            raise BrokerError("%s: Celery %s failed (%s: %s)%s" % (self.url.where, what, type(e).__name__, text, hint))
        return outcome.get("value")

    def ping(self, expected=None, window=None):
        """Names of the workers answering ping. With ``expected`` (a count or a list of node
        names) it returns as soon as that many have answered instead of waiting out the timeout.
        ``window``: seconds to collect replies, when less than the timeout is left for it."""
        kwargs = dict(timeout=min(self.timeout, window) if window else self.timeout)
        if isinstance(expected, list) and expected:
            kwargs.update(destination=expected, limit=len(expected))
        elif isinstance(expected, int) and expected > 0:
            kwargs["limit"] = expected
        replies = self._call("ping", partial(self.app.control.ping, **kwargs)) or []
        names = []
        for reply in replies:
            names.extend(reply.keys())
        return sorted(set(names))

    def _inspect(self, method, names):
        if not names:
            return {}
        insp = self.app.control.inspect(destination=list(names), timeout=self.timeout, limit=len(names))
        return self._call("inspect %s" % method, getattr(insp, method)) or {}

    def active(self, names):
        """``{worker: number of tasks executing}`` for the given workers (those that answer)."""
        return dict((k, len(v or [])) for k, v in self._inspect("active", names).items())

    def consumers(self, names):
        """``{worker: [queue names it consumes]}`` for the given workers (those that answer)."""
        return dict((worker, sorted(set(q["name"] for q in (declared or []) if q.get("name"))))
                    for worker, declared in self._inspect("active_queues", names).items())

    def active_queues(self, names):
        """Queue names consumed by the given workers."""
        return sorted(set(q for queues in self.consumers(names).values() for q in queues))

    def close(self):
        if self.abandoned:
            return
        try:
            self.app.close()
        except Exception:
            pass


def health_problems(workers_online, expected=None, min_workers=None, queues=None,
                    max_queue_length=None, beat=None, beat_entries=None, max_beat_age=None):
    """The sentences that make a Celery deployment unhealthy; an empty list means healthy.

    ``expected`` is a count or a list of node names; ``min_workers`` defaults to the
    number expected (or 1). Pure logic, unit-tested without any server."""
    problems = []
    online = list(workers_online)
    expected_names = expected if isinstance(expected, list) else None
    expected_count = len(expected) if expected_names is not None else (expected or 0)
    explicit_min = min_workers is not None
    if not explicit_min:
        min_workers = expected_count or 1
    if len(online) < min_workers:
        if not online:
            problems.append("no Celery worker answered ping (%d needed)" % min_workers)
        else:
            problems.append("%d Celery worker(s) answered ping, %d needed" % (len(online), min_workers))
    if expected_names and not explicit_min:
        missing = [n for n in expected_names if n not in online]
        if missing:
            problems.append("expected worker(s) not answering: %s" % ", ".join(missing))
    if max_queue_length is not None:
        for name, waiting in sorted((queues or {}).items()):
            if waiting > max_queue_length:
                problems.append("queue %s has %d messages waiting (max %d)" % (name, waiting, max_queue_length))
    if beat is not None and max_beat_age is not None:
        # Celery's own housekeeping (celery.backend_cleanup, daily at 4:00) is left out by default.
        names = beat_entries or sorted(n for n in beat if not n.startswith("celery."))
        for name in names:
            entry = beat.get(name)
            if entry is None:
                problems.append("beat entry %s is not in the schedule file" % name)
            elif entry.get("total_run_count", 0) == 0 and (entry.get("age_seconds") or 0) > max_beat_age:
                problems.append("beat entry %s has not run since beat started %ds ago (max %ds)"
                                % (name, entry["age_seconds"], max_beat_age))
            elif entry.get("age_seconds") is not None and entry["age_seconds"] > max_beat_age:
                problems.append("beat entry %s last ran %ds ago (max %ds)" % (name, entry["age_seconds"], max_beat_age))
    return problems


def normalize_expected(value):
    """``expected_workers`` as given (int, digit string, list, comma string) → int, list or None.
    Raises ValueError with a message for anything else."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, bool):
        raise ValueError("expected_workers must be a count or a list of node names, not a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("expected_workers must not be negative (got %d)" % value)
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return normalize_expected(int(text))
        value = [v.strip() for v in text.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        names = []
        for v in value:
            if not isinstance(v, str) or not v.strip():
                raise ValueError("expected_workers list must hold node names such as worker1@host, got %r" % (v,))
            names.append(v.strip())
        return sorted(set(names))
    raise ValueError("expected_workers must be a count or a list of node names, got %s" % type(value).__name__)


def metrics_text(result):
    """Prometheus textfile-collector exposition of a celery_health result: queue depth (the
    series the CeleryQueueBacklog alert reads), unacked messages, workers online, health."""
    details = result.get("queue_details") or {}
    return exposition([
        ("callcenter_celery_queue_length", "gauge", "Messages waiting in a Celery queue, all priority sub-queues",
         [({"queue": q}, n) for q, n in sorted((result.get("queues") or {}).items())]),
        ("callcenter_celery_queue_unacked", "gauge", "Messages reserved by workers, not yet acknowledged",
         [({"queue": q}, details[q].get("unacked", 0)) for q in sorted(details)]),
        ("callcenter_celery_workers_online", "gauge", "Workers that answered ping",
         [(None, result.get("workers_online", 0))]),
        ("callcenter_celery_healthy", "gauge", "1 if celery_health found no problem",
         [(None, bool(result.get("healthy")))]),
    ])
