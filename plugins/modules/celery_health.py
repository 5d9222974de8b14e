#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: celery_health
short_description: Check Celery workers, queue depths and beat on a Redis broker
version_added: "0.1.0"
description:
  - Pings the Celery workers with Celery's own control API, counts the messages waiting in
    each queue on the Redis broker (summed over Celery's priority sub-queues), reads the
    last run of each C(celery beat) entry, and says whether the deployment is healthy.
  - Redis is checked first with a short timeout, so a broker that is down is reported in
    milliseconds, not after Celery's own connection retries.
  - When O(expected_workers) is given the module returns as soon as that many workers have
    answered instead of waiting out O(timeout).
  - The module is read-only. It never changes anything and reports C(changed=false), unless it
    wrote O(metrics_file).
author:
  - callcenter.ops maintainers (@callcenter-ops)
extends_documentation_fragment:
  - callcenter.ops.broker.connection
  - callcenter.ops.broker
  - callcenter.ops.attributes
attributes:
  check_mode:
    support: full
    details: The module is read-only; check mode runs it as usual.
  diff_mode:
    support: none
    details: Nothing is changed, so there is no diff.
options:
  expected_workers:
    description:
      - Workers that should be online, as a count (V(2)) or a list of node names
        (V([worker1@host1, worker2@host1])).
      - With names, only those workers are asked and the missing ones are listed by name.
      - Without it, every worker that answers within O(timeout) is counted, which always
        takes the whole O(timeout).
    type: raw
  min_workers:
    description:
      - Fewest workers answering ping for the deployment to count as healthy.
      - Defaults to the number of O(expected_workers), or 1. When set explicitly, missing
        named workers are listed in RV(workers_missing) but do not make it unhealthy on
        their own.
    type: int
  queues:
    description:
      - Queue names whose depth is measured.
      - Defaults to the queues the online workers consume (asked with C(inspect active_queues)).
    type: list
    elements: str
  priority_steps:
    description:
      - Not needed for any usual app. Every priority sub-queue kombu can use for a queue
        (steps 0 to 9) is always counted, whatever the app's
        C(broker_transport_options.priority_steps) (the default V([0, 3, 6, 9]) or
        V([0, 1, ..., 9]) as Celery's docs suggest).
      - Only for an app whose steps include values outside 0 to 9, which kombu would file
        messages under; those extra steps are read too.
    type: list
    elements: int
  max_queue_length:
    description:
      - A queue with more waiting messages than this makes the deployment unhealthy.
    type: int
  beat_schedule_file:
    description:
      - Path of celery beat's schedule file (C(--schedule)), with or without the suffix the
        dbm module adds (C(.db), C(.dat)). Its entries are reported in RV(beat).
    type: path
  beat_entries:
    description:
      - Beat entries that O(max_beat_age) applies to. Defaults to every entry in the file
        except Celery's own C(celery.*) housekeeping entries.
    type: list
    elements: str
  max_beat_age:
    description:
      - Seconds since an entry's last run after which it is a problem (for a daily task
        such as C(last_daily_stats), for example V(90000)).
    type: int
  metrics_file:
    description:
      - Also write the result as Prometheus textfile-collector metrics to this file, atomically
        (C(callcenter_celery_queue_length{queue}), C(callcenter_celery_queue_unacked{queue}),
        C(callcenter_celery_workers_online), C(callcenter_celery_healthy)). The
        C(CeleryQueueBacklog) alert of the prometheus_alerts role reads the queue length.
      - Written also when unhealthy; not in check mode. Reports C(changed) when written.
    type: path
  fail_on_unhealthy:
    description:
      - Fail the task when the deployment is unhealthy. Set to V(false) to only report
        (RV(healthy) and RV(problems) are returned either way).
    type: bool
    default: true
requirements:
  - celery (the same major version as the workers) on the host that runs the module
notes:
  - Queue depth counts messages waiting in Redis, in every priority sub-queue
    (C(<queue>), C(<queue>\x06\x16<1..9>)). Messages a worker has already reserved
    (prefetched) but not acknowledged are reported separately as C(unacked).
  - A worker started with C(--pool solo) does not answer ping while it runs a task;
    a prefork worker does.
  - celery beat writes its schedule file through Python's dbm module. A Berkeley DB
    (C(dbm.ndbm)) file shows its entries only after beat exits; give beat's Python the gdbm
    module (Debian package C(python3-gdbm)) so the schedule can be read while beat runs.
    beat writes the file every C(beat_sync_every) tasks or every 3 minutes, so keep
    O(max_beat_age) well above that.
seealso:
  - module: callcenter.ops.celery_queue_purge
'''

EXAMPLES = r'''
- name: Check the workers, the queues and the nightly stats job
  callcenter.ops.celery_health:
    broker_url: redis://127.0.0.1:6379/0
    broker_password: "{{ vault_redis_password }}"
    expected_workers: 2
    queues: [quality, stats]
    max_queue_length: 500
    beat_schedule_file: /var/lib/callcenter/celerybeat-schedule
    beat_entries: [last_daily_stats]
    max_beat_age: 90000

- name: Report only, for a dashboard or a status page
  callcenter.ops.celery_health:
    broker_url: "{{ celery_broker_url }}"
    expected_workers: [worker1@app1, worker2@app1]
    fail_on_unhealthy: false
  register: celery

# Ad hoc, during an incident: the password only in the environment, never in -a (a failed
# ad-hoc task's arguments are printed by ansible-core):
# read -rs CELERY_BROKER_PASSWORD && export CELERY_BROKER_PASSWORD
# ansible workers -m callcenter.ops.celery_health -a 'broker_url=redis://127.0.0.1:6379/0 expected_workers=2'

- name: The same behind Redis Sentinel (the app's broker URL and master_name)
  callcenter.ops.celery_health:
    broker_url: sentinel://10.0.0.1:26379;sentinel://10.0.0.2:26379;sentinel://10.0.0.3:26379/0
    sentinel_master_name: callcenter
    broker_password: "{{ vault_redis_password }}"
    sentinel_password: "{{ vault_sentinel_password }}"
    expected_workers: 2
'''

RETURN = r'''
healthy:
  description: Whether no problem was found.
  returned: always
  type: bool
  sample: true
problems:
  description: One sentence per problem found; empty when healthy.
  returned: always
  type: list
  elements: str
  sample: ["expected worker(s) not answering: worker2@app1"]
broker:
  description: The broker URL with the password masked.
  returned: always
  type: str
  sample: redis://:***@127.0.0.1:6379/0
broker_master:
  description:
    - For a C(sentinel://) O(broker_url), the master the Sentinels named (C(host:port)), which the
      queues were read from.
  returned: when O(broker_url) names Sentinels and they named a master
  type: str
  sample: 10.0.0.2:6379
workers_online:
  description: Number of workers that answered ping.
  returned: always
  type: int
  sample: 2
workers:
  description: One entry per worker that answered or was expected.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Node name.
      type: str
      sample: worker1@app1
    ping:
      description: Whether it answered ping.
      type: bool
      sample: true
    active:
      description: Tasks it is executing, from C(inspect active); null if it did not say.
      type: int
      sample: 1
    queues:
      description: Queues it consumes, from C(inspect active_queues); null if it did not say.
      type: list
      elements: str
      sample: [quality, stats]
  sample: [{"name": "worker1@app1", "ping": true, "active": 0, "queues": ["quality", "stats"]}]
workers_missing:
  description: Expected workers (by name) that did not answer.
  returned: always
  type: list
  elements: str
  sample: []
queues:
  description: Messages waiting per queue, summed over the priority sub-queues.
  returned: always
  type: dict
  sample: {"quality": 12, "stats": 0}
queue_details:
  description:
    - Per queue, messages waiting per priority step, reserved-but-unacknowledged messages,
      whether any worker has declared the queue, and the online workers consuming it
      (C(consumers), from C(inspect active_queues)).
    - C(by_priority) has step C(0) and every step that holds messages, whatever the app's
      C(priority_steps) (with V(list(range(10))) that may be any of C(1) to C(9)).
  returned: always
  type: dict
  sample: {"quality": {"waiting": 12, "by_priority": {"0": 10, "7": 2}, "unacked": 1, "exists": true,
                       "consumers": ["worker1@app1"]}}
beat:
  description: Per beat entry, its task, last run (UTC, ISO 8601), age in seconds and run count.
  returned: when O(beat_schedule_file) is given and could be read
  type: dict
  sample: {"last_daily_stats": {"task": "app.daily_stats", "last_run_at": "2026-11-25T03:00:00+00:00",
           "age_seconds": 3600.5, "total_run_count": 12}}
metrics_written:
  description: Whether O(metrics_file) was written.
  returned: always
  type: bool
  sample: false
duration:
  description: Seconds the check took.
  returned: always
  type: float
  sample: 0.012
'''

import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.callcenter.ops.plugins.module_utils import celery_beat
from ansible_collections.callcenter.ops.plugins.module_utils import celery_client
from ansible_collections.callcenter.ops.plugins.module_utils import redis_client
from ansible_collections.callcenter.ops.plugins.module_utils.params import check_timeouts
from ansible_collections.callcenter.ops.plugins.module_utils.textfile import write_atomically


def run_check(module, url, expected):
    p = module.params
    timeout = p["timeout"]
    result = dict(changed=False, healthy=False, problems=[], broker=url.safe, workers_online=0,
                  workers=[], workers_missing=[], queues={}, queue_details={})
    beat = None
    if p["beat_schedule_file"]:
        try:
            beat = celery_beat.read_beat_schedule(p["beat_schedule_file"])
            result["beat"] = beat
        except celery_beat.BeatError as e:
            result["problems"].append(str(e))

    try:
        client = redis_client.open_checked(url, timeout, p["validate_certs"], p["ca_path"])
    except redis_client.BrokerError as e:
        result["problems"].insert(0, str(e))
        return result
    finally:
        if url.master_where:
            result["broker_master"] = url.master_where

    probe = None
    try:
        probe = celery_client.CeleryProbe(url, timeout, p["validate_certs"], p["ca_path"])
        online = probe.ping(expected)
        active = probe.active(online)
        consumed = probe.consumers(online)
        queues = p["queues"]
        if queues is None:
            queues = sorted(set(q for names in consumed.values() for q in names))
        details = celery_client.queue_depths(client, queues, p["priority_steps"])
        unacked, complete = celery_client.unacked_by_queue(client)
        if not complete:
            module.warn("more than %d unacknowledged messages: unacked counts stop there" % celery_client.UNACKED_SCAN_LIMIT)
    except redis_client.BrokerError as e:
        result["problems"].insert(0, str(e))
        return result
    except redis_client.redis.RedisError as e:
        result["problems"].insert(0, redis_client.describe_error(e, url, timeout))
        return result
    finally:
        if probe:
            probe.close()

    for name, d in details.items():
        d["unacked"] = unacked.get(name, 0)
        d["consumers"] = sorted(w for w, names in consumed.items() if name in names)
    names = sorted(set(online) | set(expected if isinstance(expected, list) else []))
    result["workers"] = [dict(name=n, ping=n in online, active=active.get(n), queues=consumed.get(n))
                         for n in names]
    result["workers_online"] = len(online)
    result["workers_missing"] = [n for n in names if n not in online]
    result["queues"] = dict((q, d["waiting"]) for q, d in details.items())
    result["queue_details"] = details
    for q, d in sorted(details.items()):
        if not d["exists"]:
            module.warn("queue %s is empty and no worker has declared it: is the name right?" % q)
    result["problems"].extend(celery_client.health_problems(
        online, expected=expected, min_workers=p["min_workers"], queues=result["queues"],
        max_queue_length=p["max_queue_length"], beat=beat, beat_entries=p["beat_entries"],
        max_beat_age=p["max_beat_age"]))
    return result


def main():
    argument_spec = redis_client.broker_argument_spec()
    argument_spec.update(
        expected_workers=dict(type="raw"),
        min_workers=dict(type="int"),
        queues=dict(type="list", elements="str"),
        priority_steps=dict(type="list", elements="int"),
        max_queue_length=dict(type="int"),
        beat_schedule_file=dict(type="path"),
        beat_entries=dict(type="list", elements="str"),
        max_beat_age=dict(type="int"),
        metrics_file=dict(type="path"),
        fail_on_unhealthy=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if not redis_client.HAS_REDIS:
        module.fail_json(msg=missing_required_lib("redis"), exception=redis_client.REDIS_IMP_ERR)
    if not celery_client.HAS_CELERY:
        module.fail_json(msg=missing_required_lib("celery"))
    p = module.params
    started = time.monotonic()

    check_timeouts(module, "timeout")
    for key in ("min_workers", "max_queue_length", "max_beat_age"):
        if p[key] is not None and p[key] < 0:
            module.fail_json(msg="%s must not be negative (got %d)" % (key, p[key]))
    try:
        expected = celery_client.normalize_expected(p["expected_workers"])
    except ValueError as e:
        module.fail_json(msg=str(e))
    url = redis_client.broker_from_params(module)

    result = run_check(module, url, expected)
    result["healthy"] = not result["problems"]
    result["duration"] = round(time.monotonic() - started, 3)
    result["metrics_written"] = False
    if p["metrics_file"] and not module.check_mode:
        try:
            write_atomically(p["metrics_file"], celery_client.metrics_text(result))
        except OSError as e:
            module.fail_json(msg="could not write metrics_file %s: %s" % (p["metrics_file"], e.strerror or e),
                             **result)
        result.update(metrics_written=True, changed=True)
    if not result["healthy"] and p["fail_on_unhealthy"]:
        module.fail_json(msg="Celery is unhealthy: " + "; ".join(result["problems"]), **result)
    if result["healthy"]:
        result["msg"] = "Celery is healthy: %d worker(s) online" % result["workers_online"]
    else:
        result["msg"] = "Celery is unhealthy: " + "; ".join(result["problems"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
