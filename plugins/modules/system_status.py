#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: system_status
short_description: One status view of the call-center platform
version_added: "0.1.0"
description:
  - Reads each part of the platform itself, all at the same time and each under its own
    timeout. The application gives its version, uptime, active calls and readiness; Celery
    gives workers and queue depths; Redis its memory, clients and role; PostgreSQL its
    connections against C(max_connections), database size and version. The backups give the
    newest file, its age and its last verification; Flower whether it is reachable, asks for
    credentials (a Flower without auth is C(degraded)), and accepts the ones given; Alertmanager
    what is firing (C(alerts) - each alert with where it fires, since when, its summary and runbook link).
  - No URL is ever shown or returned with its user info (C(user:password@)).
  - Each component gets C(ok), C(degraded) or C(down) with a reason; the overall status is the
    worst. A component that is down never hides the others.
  - Only the components whose options are given are read.
  - Replication is part of the view - Redis replicas and their lag, and behind Sentinel the Sentinels'
    view of the master (how many see it, whether they reach their quorum); PostgreSQL's
    C(pg_stat_replication) on the primary and replay lag on each of O(pg_replicas). A lost or lagging
    replica is C(degraded); no reachable Redis master is C(down).
  - Read-only. Fails only when O(fail_on) says so.
author:
  - callcenter.ops maintainers (@callcenter-ops)
extends_documentation_fragment:
  - callcenter.ops.app_api
  - callcenter.ops.flower
  - callcenter.ops.broker.connection
  - callcenter.ops.postgres
  - callcenter.ops.attributes
attributes:
  check_mode:
    support: full
    details: Read-only; runs as usual.
  diff_mode:
    support: none
    details: No diff is produced.
options:
  timeout:
    description:
      - Seconds each component gets. A component that has not answered by then is C(down).
      - A finite number of seconds, above 0 and at most a day (86400).
    type: float
    default: 3
  component_timeouts:
    description:
      - Per-component timeouts overriding O(timeout), for example C(postgres=5) as a dict.
      - Keys are app, celery, redis, postgres, backup, flower, alerts; each value follows the rules of O(timeout).
        The C(postgres) timeout applies to the replicas of O(pg_replicas) too.
    type: dict
    default: {}
  expected_workers:
    description:
      - Celery workers that should answer (a count or node names). Fewer is C(degraded), none C(down).
    type: raw
  queues:
    description:
      - Celery queues whose depth is shown.
    type: list
    elements: str
    default: [quality, stats]
  max_queue_length:
    description:
      - A queue longer than this makes C(celery) degraded.
    type: int
    default: 500
  redis_memory_ratio_degraded:
    description:
      - C(used_memory / maxmemory) above which C(redis) is degraded.
    type: float
    default: 0.9
  redis_expected_replicas:
    description:
      - Redis replicas that should be connected to the master and online; fewer makes C(redis) degraded.
      - With a C(sentinel://) O(broker_url) the replicas the Sentinels know count as expected too, so a
        replica that went away is noticed without this option.
    type: int
  redis_replication_lag_bytes_degraded:
    description:
      - Bytes of replication stream (the master's offset minus the replica's) a Redis replica may be behind
        before C(redis) is degraded.
    type: int
    default: 1048576
  pg_connections_ratio_degraded:
    description:
      - Client connections over C(max_connections) above which C(postgres) is degraded.
    type: float
    default: 0.8
  pg_replicas:
    description:
      - PostgreSQL streaming replicas, as C(host) or C(host:port) (default port O(pg_port)), read with the
        same user, password and database as O(pg_host). Each becomes a component of its own,
        C(postgres@host:port), with its replay lag.
      - A replica that cannot be reached is C(degraded), not C(down) - the primary still serves.
    type: list
    elements: str
    default: []
  pg_expected_replicas:
    description:
      - Replicas that should stream from O(pg_host) (its C(pg_stat_replication)); fewer makes C(postgres)
        degraded. Defaults to the number of O(pg_replicas), or no expectation without them.
    type: int
  pg_replication_lag_bytes_degraded:
    description:
      - WAL bytes a replica may be behind in replay before its server (and the primary's view) is degraded.
    type: int
    default: 16777216
  pg_replication_lag_seconds_degraded:
    description:
      - Seconds a replica may be behind in replay before it is degraded.
    type: float
    default: 30
  backup_dir:
    description:
      - Directory of the backups; enables the C(backup) component.
    type: path
  backup_pattern:
    description:
      - Glob of the backup files.
    type: str
    default: "*.dump.gz"
  backup_max_age:
    description:
      - Older than this (seconds, or with a unit as V(26h)) makes C(backup) degraded.
    type: str
    default: 26h
  backup_metrics_file:
    description:
      - The metrics file M(callcenter.ops.backup_verify) or its role writes; its last result
        is shown, and a failed verification makes C(backup) degraded.
    type: path
  alertmanager_url:
    description:
      - Alertmanager's URL, for example C(http://127.0.0.1:9093) (with its route prefix, if any).
        Enables the C(alerts) component, which reads
        C(/api/v2/alerts?active=true&silenced=false&inhibited=false), so silenced and inhibited
        alerts are left out.
      - Fails closed - an Alertmanager that cannot be reached, or answers anything but a list of
        alerts, makes C(alerts) C(down) with the reason; it never reads as "nothing firing".
      - User info in the URL (C(https://user:pass@alertmanager.example/)) is sent as basic auth (for a proxy
        in front of Alertmanager) and taken out of every URL shown or returned.
      - If not set, the C(ALERTMANAGER_URL) environment variable is used.
    type: str
  alerts_severity_status:
    description:
      - The status one firing alert gives the C(alerts) component, by its C(severity) label; the
        component takes the worst of its alerts, and is C(ok) when nothing fires.
      - Values are V(ok), V(degraded) or V(down). A severity not listed (or none) counts as V(degraded).
    type: dict
    default: {critical: down, warning: degraded, info: ok}
  fail_on:
    description:
      - Fail the task when the overall status is at least this bad.
      - The fleet playbook applies the same rule to the merged status (P(callcenter.ops.status_fails#filter)).
    type: str
    choices: [degraded, down, never]
    default: never
requirements:
  - redis (redis-py) and celery for the celery and redis components
  - psycopg 3 for the postgres component
seealso:
  - module: callcenter.ops.celery_health
  - module: callcenter.ops.backup_verify
  - module: callcenter.ops.config_reload
'''

EXAMPLES = r'''
- name: Status of the whole platform
  callcenter.ops.system_status:
    app_url: https://app1.internal:8443
    app_token: "{{ vault_admin_token }}"
    broker_url: redis://127.0.0.1:6379/0
    broker_password: "{{ vault_redis_password }}"
    expected_workers: 2
    pg_host: 127.0.0.1
    pg_password: "{{ vault_pg_password }}"
    pg_database: callcenter
    backup_dir: /var/backups/callcenter
    backup_metrics_file: /var/lib/prometheus/node-exporter/callcenter_backup.prom
    flower_url: http://127.0.0.1:5555/
    flower_user: ops
    flower_password: "{{ vault_flower_password }}"
    alertmanager_url: http://127.0.0.1:9093
  register: status

- name: Print it as a table
  ansible.builtin.debug:
    msg: "{{ status | callcenter.ops.status_table }}"
'''

RETURN = r'''
status:
  description: The worst status of all components (ok, degraded or down).
  returned: always
  type: str
  sample: degraded
components:
  description:
    - One entry per component that was read, named as below; only the components whose options are
      given are there. A component that has not answered within its timeout is C(down) with the
      reason C(no answer within Ns) and only C(status), C(reason) and C(duration).
    - Every entry has C(status), C(reason) and C(duration); a component that is C(down) because it
      could not be read has only the figures it got before (often none).
  returned: always
  type: dict
  sample: {"redis": {"status": "ok", "reason": "", "used_memory": 1048576, "used_memory_human": "1.00M",
                     "maxmemory": 0, "mem_fragmentation_ratio": 1.2, "connected_clients": 5, "role": "master",
                     "redis_version": "7.0.15", "replication": {"role": "master", "master_repl_offset": 0,
                                                                "connected_replicas": 0, "replicas": []},
                     "duration": 0.002},
           "flower": {"status": "ok", "reason": "", "url": "http://127.0.0.1:5555/", "http_status": 401,
                      "auth": true, "credentials": "accepted", "duration": 0.01}}
  contains:
    app:
      description:
        - The application - C(ready) and C(checks) from C(/health/ready), and with O(app_token) the
          C(version), C(uptime_seconds) and C(active_calls) from its status endpoint.
        - C(down) when it cannot be reached or is not ready; C(degraded) when it is ready but its status
          endpoint fails.
      returned: when O(app_url) is given
      type: dict
      sample: {"status": "ok", "reason": "", "ready": true, "checks": {"database": "ok", "redis": "ok"},
               "version": "1.8.2", "uptime_seconds": 86400, "active_calls": 3, "duration": 0.004}
      contains:
        status:
          description: V(ok), V(degraded) or V(down).
          type: str
        reason:
          description: Why it is not ok, as a sentence (empty when ok, or a remark such as a token not given).
          type: str
        duration:
          description: Seconds this component took (a measurement, not a promise).
          type: float
        ready:
          description: Whether C(/health/ready) answered ready.
          type: bool
          returned: when the application answered
        checks:
          description: The C(checks) of C(/health/ready) as the application gives them (null when absent).
          type: dict
          returned: when the application answered
        version:
          description: The application's version.
          type: str
          returned: when O(app_token) is given and the status endpoint answered
        uptime_seconds:
          description: Seconds since the application started.
          type: float
          returned: when O(app_token) is given and the status endpoint answered
        active_calls:
          description: Calls in progress.
          type: int
          returned: when O(app_token) is given and the status endpoint answered
    celery:
      description:
        - Celery on the broker of O(broker_url) - the workers that answered ping and the depth of O(queues)
          (every priority sub-queue counted).
        - C(down) when no worker answers or the broker cannot be read; C(degraded) when fewer workers than
          O(expected_workers) answer or a queue is longer than O(max_queue_length).
      returned: when O(broker_url) is given
      type: dict
      sample: {"status": "ok", "reason": "", "workers_online": 2, "workers": ["w1@app1", "w2@app1"],
               "queues": {"quality": 0, "stats": 3}, "duration": 0.01}
      contains:
        status: &component_status
          description: V(ok), V(degraded) or V(down).
          type: str
        reason: &component_reason
          description: Why it is not ok (empty when ok).
          type: str
        duration: &component_duration
          description: Seconds this component took (a measurement, not a promise).
          type: float
        workers_online:
          description: How many workers answered ping.
          type: int
          returned: when the broker was read and Celery is installed
        workers:
          description: Node names of the workers that answered.
          type: list
          elements: str
          returned: when the broker was read and Celery is installed
        queues:
          description: Messages waiting per queue of O(queues) (prefetched, unacknowledged ones not counted).
          type: dict
          returned: when the broker was read
    redis:
      description:
        - The Redis of O(broker_url) (behind Sentinel, the master the Sentinels name).
        - C(degraded) when memory is above O(redis_memory_ratio_degraded) of C(maxmemory), when a replica is
          missing (fewer online than the Sentinels know or O(redis_expected_replicas)) or more than
          O(redis_replication_lag_bytes_degraded) behind, when a Sentinel does not answer or they disagree, or
          when fewer Sentinels than the quorum see the master; C(down) when no master is reachable (the reason
          says whether no Sentinel answered, they do not know the name, or the master they name is down).
      returned: when O(broker_url) is given
      type: dict
      sample: {"status": "degraded", "reason": "0 of 1 replica(s) connected and online", "role": "master",
               "used_memory": 1048576, "used_memory_human": "1.00M", "maxmemory": 0, "mem_fragmentation_ratio": 1.2,
               "connected_clients": 5, "redis_version": "7.0.15", "duration": 0.003,
               "replication": {"role": "master", "master_repl_offset": 5321, "connected_replicas": 0, "replicas": []},
               "sentinel": {"master_name": "callcenter", "master": "10.0.0.2:6379", "sentinels": 3,
                            "sentinels_answering": 3, "sentinels_naming_master": 3, "sentinels_seeing_master_up": 3,
                            "quorum": 2, "quorum_reached": true, "known_replicas": 1, "disagree": [], "views": []}}
      contains:
        status: *component_status
        reason: *component_reason
        duration: *component_duration
        used_memory:
          description: Bytes Redis uses (C(INFO memory)).
          type: int
          returned: when Redis answered
        used_memory_human:
          description: The same as Redis writes it, for example C(1.00M).
          type: str
          returned: when Redis answered
        maxmemory:
          description: Redis's memory limit in bytes, 0 for none.
          type: int
          returned: when Redis answered
        mem_fragmentation_ratio:
          description: RSS over used memory, as Redis gives it.
          type: float
          returned: when Redis answered
        connected_clients:
          description: Clients connected to Redis.
          type: int
          returned: when Redis answered
        role:
          description: V(master) or V(slave), as Redis names it.
          type: str
          returned: when Redis answered
        redis_version:
          description: The server's version.
          type: str
          returned: when Redis answered
        replication:
          description:
            - From C(INFO replication) - C(role), C(master_repl_offset), C(connected_replicas) and C(replicas),
              one per replica with its C(address), C(state), C(offset), C(lag_bytes) (the master's offset minus
              the replica's) and C(lag_seconds) (since its last acknowledgement).
            - When the server read is itself a replica, also C(master_link_status) and C(master) (C(host:port)).
          type: dict
          returned: when Redis answered
        sentinel:
          description:
            - The Sentinels' view - C(master_name), C(master) (C(host:port) most Sentinels name), C(sentinels),
              C(sentinels_answering), C(sentinels_naming_master), C(sentinels_seeing_master_up), C(quorum),
              C(quorum_reached), C(known_replicas) (replicas the Sentinels know, online or not), C(disagree)
              (other masters named) and C(views), each Sentinel's own answer (C(address), C(answered),
              C(knows_master), C(error), C(master), C(flags), C(master_down), C(quorum), C(num_other_sentinels),
              C(num_replicas)).
          type: dict
          returned: when O(broker_url) is a C(sentinel://) URL and the Sentinels were asked, also when Redis is down
    postgres:
      description:
        - The server of O(pg_host).
        - On a primary C(replication.replicas) lists C(pg_stat_replication) - C(name) (application_name),
          C(client_addr), C(state), C(sync_state), C(sent_lag_bytes), C(replay_lag_bytes),
          C(write_lag_seconds), C(flush_lag_seconds), C(replay_lag_seconds) (null while PostgreSQL has no
          measure). The LSN figures need a superuser or a member of C(pg_monitor) as O(pg_user).
        - On a replica C(replication) has C(replay_lag_bytes) (received, not yet replayed),
          C(replay_lag_seconds) (age of the last replayed transaction while WAL waits, else 0; null
          until the replica has replayed a transaction),
          C(replay_paused), C(wal_receiver) (V(streaming) when connected) and C(upstream) (C(host:port)).
        - C(down) when it cannot be reached (then only C(dsn) of the figures); C(degraded) when client
          connections are above O(pg_connections_ratio_degraded) of C(max_connections), when fewer replicas
          stream than O(pg_expected_replicas) (default - as many as O(pg_replicas)), a replica is not
          streaming, or one lags more than O(pg_replication_lag_bytes_degraded) or
          O(pg_replication_lag_seconds_degraded).
      returned: when O(pg_host) is given
      type: dict
      sample: {"status": "ok", "reason": "", "dsn": "host=127.0.0.1 port=5432 dbname=postgres user=postgres",
               "role": "primary", "connections": 3, "max_connections": 100, "database_size": 7566147,
               "server_version": "15.14", "duration": 0.02,
               "replication": {"replicas": [{"name": "walreceiver", "client_addr": "10.0.0.6", "state": "streaming",
                                             "sync_state": "async", "sent_lag_bytes": 0, "replay_lag_bytes": 0,
                                             "write_lag_seconds": 0.001, "flush_lag_seconds": 0.002,
                                             "replay_lag_seconds": 0.002}]}}
      contains: &pg_keys
        status: *component_status
        reason: *component_reason
        duration: *component_duration
        dsn:
          description: Where it was read, as a connection string without the password.
          type: str
          returned: when psycopg is installed
        role:
          description: V(primary) or V(replica) (C(pg_is_in_recovery())).
          type: str
          returned: when the server answered, and always for an entry of O(pg_replicas)
        connections:
          description: Client connections (C(pg_stat_activity), background processes left out).
          type: int
          returned: when the server answered
        max_connections:
          description: The server's C(max_connections).
          type: int
          returned: when the server answered
        database_size:
          description: Bytes of O(pg_database).
          type: int
          returned: when the server answered
        server_version:
          description: The server's version.
          type: str
          returned: when the server answered
        replication:
          description: Where it stands in streaming replication, as described above for a primary and a replica.
          type: dict
          returned: when the server answered
    "postgres@<host>:<port>":
      description:
        - One per entry of O(pg_replicas), named after it (for example C(postgres@10.0.0.6:5432)), with the
          same keys as C(postgres) (on a replica).
        - C(degraded) when replay is paused, the replica does not stream from a primary, lags more than
          the thresholds, is not in recovery at all (promoted), or cannot be reached (then only C(dsn) and
          C(role)) - the primary still serves, so a lost replica never makes the platform C(down).
      returned: for each entry of O(pg_replicas)
      type: dict
      sample: {"status": "degraded", "reason": "WAL replay is paused (pg_wal_replay_resume() continues it); replay 52000 bytes behind (max 16777216)",
               "dsn": "host=10.0.0.6 port=5432 dbname=postgres user=postgres", "connections": 1,
               "max_connections": 100, "database_size": 7566147, "server_version": "15.14", "duration": 0.02,
               "role": "replica", "replication": {"replay_lag_bytes": 52000, "replay_lag_seconds": 12.5,
                                                  "replay_paused": true, "wal_receiver": "streaming",
                                                  "upstream": "10.0.0.5:5432"}}
      contains: *pg_keys
    backup:
      description:
        - The newest file of O(backup_dir) matching O(backup_pattern), and with O(backup_metrics_file) the
          result of its last verification.
        - C(down) when there is no backup (or the directory cannot be read); C(degraded) when the newest is
          older than O(backup_max_age), the last verification failed, or its result cannot be read.
      returned: when O(backup_dir) is given
      type: dict
      sample: {"status": "ok", "reason": "", "path": "/var/backups/callcenter/callcenter-2026-11-25.dump.gz",
               "size": 131072000, "mtime": "2026-11-25T02:00:03+00:00", "age_seconds": 39600.0, "verified": true,
               "verified_at": "2026-11-25T02:10:00+00:00", "duration": 0.001}
      contains:
        status: *component_status
        reason: *component_reason
        duration: *component_duration
        path:
          description: The newest backup file.
          type: str
          returned: when a backup was found
        size:
          description: Its size in bytes.
          type: int
          returned: when a backup was found
        mtime:
          description: Its modification time (UTC, ISO 8601).
          type: str
          returned: when a backup was found
        age_seconds:
          description: Seconds since then.
          type: float
          returned: when a backup was found
        verified:
          description: The last verification's result from O(backup_metrics_file) - true, false, or null when unknown.
          type: bool
          returned: when a backup was found
        verified_at:
          description: When that verification ran (UTC, ISO 8601), or null.
          type: str
          returned: when a backup was found
        verification_problems:
          description: The failed checks' reasons of the last verification.
          type: list
          elements: str
          returned: when the last verification failed
    flower:
      description:
        - Flower's C(url) (without user info), C(http_status) of C(/) without credentials,
          C(auth) (true when Flower asks for credentials; false makes it C(degraded)) and
          C(credentials), one of V(accepted), V(rejected) (C(degraded)), V(not given) or
          V(not checked) (Flower without auth).
      returned: when O(flower_url) is given
      type: dict
      sample: {"status": "ok", "reason": "", "url": "http://127.0.0.1:5555/", "http_status": 401, "auth": true,
               "credentials": "accepted", "duration": 0.01}
      contains:
        status: *component_status
        reason: *component_reason
        duration: *component_duration
        url:
          description: The Flower asked, without user info.
          type: str
        http_status:
          description: The HTTP status of C(/) without credentials.
          type: int
          returned: when Flower answered
        auth:
          description: Whether Flower asks for credentials.
          type: bool
          returned: when Flower answered 200 or 401
        credentials:
          description: V(accepted), V(rejected), V(not given) or V(not checked).
          type: str
          returned: when Flower answered 200 or 401
    alerts:
      description:
        - What fires in Alertmanager - C(url) (without user info), C(count) and C(alerts), worst
          first. C(down) when a C(critical) alert fires or Alertmanager cannot be read (then
          C(count) and C(alerts) are absent), C(degraded) when only warnings fire (see
          O(alerts_severity_status)).
      returned: when O(alertmanager_url) is given
      type: dict
      sample: {"status": "down", "reason": "1 alert(s) firing (1 critical): CeleryWorkerDown (worker=w1@host)",
               "url": "http://127.0.0.1:9093", "count": 1, "duration": 0.004,
               "alerts": [{"alertname": "CeleryWorkerDown", "severity": "critical",
                           "labels": {"alertname": "CeleryWorkerDown", "severity": "critical", "worker": "w1@host",
                                      "instance": "127.0.0.1:5555"},
                           "where": "instance=127.0.0.1:5555, worker=w1@host",
                           "startsAt": "2026-11-25T12:55:00.000Z", "age_seconds": 300.0,
                           "summary": "Celery worker w1@host is down", "description": "",
                           "runbook_url": "https://ops.example/runbooks/celery-worker-down.html",
                           "generatorURL": "http://127.0.0.1:9090/graph", "fingerprint": "3c1a2b4d5e6f7a8b",
                           "state": "active"}]}
      contains:
        status:
          description: V(ok), V(degraded) or V(down).
          type: str
        reason:
          description: Which alerts fire, or why Alertmanager could not be read (empty when nothing fires).
          type: str
        duration:
          description: Seconds this component took (a measurement, not a promise).
          type: float
        url:
          description: The Alertmanager asked, without user info.
          type: str
        count:
          description: How many alerts fire (not silenced, not inhibited).
          type: int
        alerts:
          description:
            - One entry per firing alert - C(alertname), C(severity), C(labels) (all of them, as
              Alertmanager gives them), C(where) (its C(instance), C(worker), C(queue), C(path) and
              C(job) labels as one phrase), C(startsAt) (as Alertmanager gives it), C(age_seconds),
              the C(summary), C(description) and C(runbook_url) annotations (empty when absent),
              C(generatorURL), C(fingerprint) and C(state).
          type: list
          elements: dict
problems:
  description: One sentence per component that is not ok.
  returned: always
  type: list
  elements: str
  sample: ["postgres down: 127.0.0.1:5432 rejected the password for user postgres"]
generated_at:
  description: When the status was collected (UTC, ISO 8601).
  returned: always
  type: str
  sample: "2026-11-25T13:00:00+00:00"
duration:
  description:
    - Seconds the module took, from its start to the result (a measurement, not a promise).
  returned: always
  type: float
  sample: 0.35
collect_duration:
  description:
    - Seconds the components took, all read at the same time (about the slowest one when they overlap well).
    - A measurement, not a promise; speed goals live in the collection's benchmarks.
  returned: always
  type: float
  sample: 0.12
import_duration:
  description:
    - Seconds spent importing the client libraries before the components started.
    - A measurement, not a promise; speed goals live in the collection's benchmarks.
  returned: always
  type: float
  sample: 0.2
'''

import datetime
from functools import partial
import time

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib
from ansible_collections.callcenter.ops.plugins.module_utils import alertmanager
from ansible_collections.callcenter.ops.plugins.module_utils import app_api
from ansible_collections.callcenter.ops.plugins.module_utils import celery_client
from ansible_collections.callcenter.ops.plugins.module_utils import postgres
from ansible_collections.callcenter.ops.plugins.module_utils import redact
from ansible_collections.callcenter.ops.plugins.module_utils import redis_client
from ansible_collections.callcenter.ops.plugins.module_utils import status
from ansible_collections.callcenter.ops.plugins.module_utils import status_probes
from ansible_collections.callcenter.ops.plugins.module_utils.params import AGE_UNITS, check_timeouts, parse_quantity, timeout_problem
from ansible_collections.callcenter.ops.plugins.module_utils.status import COMPONENTS


def pg_replica_targets(module):
    """``[(component name, host, port)]`` of pg_replicas (``host`` or ``host:port``)."""
    out = []
    for item in module.params["pg_replicas"] or []:
        host, sep, port = str(item).strip().rpartition(":")
        if not sep:
            host, port = port, str(module.params["pg_port"])
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            module.fail_json(msg="pg_replicas entry %r is not host or host:port" % item)
        out.append(("postgres@%s:%s" % (host, port), host, int(port)))
    return out


def flower_target(module):
    """``(url without user info, (user, password) or None)``. Credentials inside flower_url are
    used (the options win) but never shown again: their password joins the module's no_log values."""
    p = module.params
    url, url_user, url_password = redact.split_userinfo(p["flower_url"])
    redact.hide(module, url_password)
    if url_user is not None:
        module.warn("flower_url holds credentials: they were taken out of every URL shown; pass them as "
                    "flower_user and flower_password (or FLOWER_USER / FLOWER_PASSWORD) instead")
    user = p["flower_user"] if p["flower_user"] is not None else url_user
    password = p["flower_password"] if p["flower_password"] is not None else url_password
    if password is not None and not user:
        module.fail_json(msg="flower_password is given without flower_user: Flower's basic auth needs both")
    if user and password is None:
        module.fail_json(msg="flower_user %r is given without flower_password (or FLOWER_PASSWORD)" % user)
    return url, ((user, password) if user else None)


def alertmanager_target(module):
    """``(url, (user, password) or None)``: credentials inside alertmanager_url go to a proxy as
    basic auth and join the module's no_log values; the probe shows the URL without them."""
    url, user, password = redact.split_userinfo(module.params["alertmanager_url"])
    redact.hide(module, password)
    return module.params["alertmanager_url"], ((user, password or "") if user else None)


def preload(probes):
    """Import what the selected components need (missing libraries are reported by the probes)."""
    for name, modules in (("celery", ("celery", "kombu.transport.redis")),):
        if name in probes:
            for mod in modules:
                try:
                    __import__(mod)
                except ImportError:
                    pass


def main():
    argument_spec = app_api.app_argument_spec()
    argument_spec.update(
        timeout=dict(type="float", default=3),
        component_timeouts=dict(type="dict", default={}),
        expected_workers=dict(type="raw"),
        queues=dict(type="list", elements="str", default=["quality", "stats"]),
        max_queue_length=dict(type="int", default=500),
        redis_memory_ratio_degraded=dict(type="float", default=0.9),
        redis_expected_replicas=dict(type="int"),
        redis_replication_lag_bytes_degraded=dict(type="int", default=1048576),
        pg_connections_ratio_degraded=dict(type="float", default=0.8),
        pg_replicas=dict(type="list", elements="str", default=[]),
        pg_expected_replicas=dict(type="int"),
        pg_replication_lag_bytes_degraded=dict(type="int", default=16777216),
        pg_replication_lag_seconds_degraded=dict(type="float", default=30),
        backup_dir=dict(type="path"),
        backup_pattern=dict(type="str", default="*.dump.gz"),
        backup_max_age=dict(type="str", default="26h"),
        backup_metrics_file=dict(type="path"),
        alertmanager_url=dict(type="str", fallback=(env_fallback, ["ALERTMANAGER_URL"])),
        alerts_severity_status=dict(type="dict", default=dict(alertmanager.DEFAULT_SEVERITY_STATUS)),
        fail_on=dict(type="str", choices=sorted(status.FAIL_ON), default="never"),
    )
    argument_spec.update(redis_client.broker_connection_spec())  # the same broker options as celery_health
    argument_spec.update(app_api.flower_argument_spec())
    argument_spec.update(postgres.postgres_connection_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    started = time.monotonic()
    check_timeouts(module, "timeout")
    unknown = sorted(set(p["component_timeouts"]) - set(COMPONENTS))
    if unknown:
        module.fail_json(msg="component_timeouts has unknown component(s) %s (known: %s)"
                             % (", ".join(unknown), ", ".join(COMPONENTS)))
    timeouts = {}
    for name in COMPONENTS:
        value = p["component_timeouts"].get(name, p["timeout"])
        problem = timeout_problem(value, "component_timeouts.%s" % name)
        if problem:
            module.fail_json(msg=problem)
        timeouts[name] = float(value)
    problem = alertmanager.severity_status_problem(p["alerts_severity_status"])
    if problem:
        module.fail_json(msg=problem)
    try:
        expected = celery_client.normalize_expected(p["expected_workers"])
        max_age = parse_quantity(p["backup_max_age"], AGE_UNITS, "backup_max_age")
    except ValueError as e:
        module.fail_json(msg=str(e))

    probes = {}
    if p["app_url"]:
        probes["app"] = lambda: status_probes.probe_app(p, timeouts["app"])
    if p["broker_url"]:
        if not redis_client.HAS_REDIS:
            module.fail_json(msg=missing_required_lib("redis"), exception=redis_client.REDIS_IMP_ERR)
        url = redis_client.broker_from_params(module)
        probes["redis"] = lambda: status_probes.probe_redis(url, timeouts["redis"], p)
        probes["celery"] = lambda: status_probes.probe_celery(url, timeouts["celery"], p, expected)
    if p["pg_host"]:
        probes["postgres"] = lambda: status_probes.probe_postgres(p, timeouts["postgres"])
    for name, host, port in pg_replica_targets(module):
        probes[name] = partial(status_probes.probe_postgres, p, timeouts["postgres"], host, port, True)
        timeouts[name] = timeouts["postgres"]
    if p["backup_dir"]:
        probes["backup"] = lambda: status_probes.probe_backup(p, max_age)
    if p["flower_url"]:
        flower_url, flower_credentials = flower_target(module)
        probes["flower"] = lambda: status_probes.probe_flower(p, flower_url, flower_credentials, timeouts["flower"])
    if p["alertmanager_url"]:
        am_url, am_credentials = alertmanager_target(module)
        probes["alerts"] = lambda: alertmanager.probe(am_url, timeouts["alerts"], p["alerts_severity_status"],
                                                      p["validate_certs"], p["ca_path"], basic_auth=am_credentials)
    if not probes:
        module.fail_json(msg="nothing to check: give at least one of app_url, broker_url, pg_host, pg_replicas, backup_dir, "
                             "flower_url, alertmanager_url")

    # Import the heavy libraries once, before the clock of the components starts: imports hold
    # the interpreter lock, so done inside the threads they would run one after another anyway.
    import_started = time.monotonic()
    preload(probes)
    import_duration = round(time.monotonic() - import_started, 3)
    collect_started = time.monotonic()
    components = status.collect(probes, timeouts)
    collect_duration = round(time.monotonic() - collect_started, 3)
    overall = status.worst(c["status"] for c in components.values())
    problems = ["%s %s: %s" % (name, c["status"], c["reason"]) for name, c in sorted(components.items())
                if c["status"] != status.OK]
    result = dict(changed=False, status=overall, components=components, problems=problems,
                  generated_at=datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
                  duration=round(time.monotonic() - started, 3), collect_duration=collect_duration,
                  import_duration=import_duration)
    result["msg"] = "platform %s%s" % (overall, (": " + "; ".join(problems)) if problems else "")
    if status.fails(overall, p["fail_on"]):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
