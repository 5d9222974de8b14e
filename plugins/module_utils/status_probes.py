# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The probes of system_status: each reads one part of the platform and returns one
component of the status model (status.py) - ok, degraded or down with a reason, and its figures.

Each probe is split in two: the reading (a server, a file) and the verdict on what was read
(``*_verdict``), pure logic that unit tests reach without any server. ``p`` is the module's
parameters (a plain dict is enough)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import threading
import time

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.callcenter.ops.plugins.module_utils import app_api
from ansible_collections.callcenter.ops.plugins.module_utils import backup
from ansible_collections.callcenter.ops.plugins.module_utils import celery_client
from ansible_collections.callcenter.ops.plugins.module_utils import postgres
from ansible_collections.callcenter.ops.plugins.module_utils import redis_client
from ansible_collections.callcenter.ops.plugins.module_utils.status import DEGRADED, DOWN, OK, component


def verdict(data, reasons, bad=DEGRADED):
    """``bad`` with the reasons joined when there are any, else ok; ``data`` are the figures."""
    if reasons:
        return component(bad, "; ".join(reasons), **data)
    return component(OK, "", **data)


# --------------------------------------------------------------------------- app
def probe_app(p, timeout):
    """Readiness, then (with app_token) version, uptime and active calls."""
    client = app_api.AppClient(p["app_url"], p["app_token"], timeout, p["validate_certs"], p["ca_path"])
    try:
        ready, body = client.ready()
    except app_api.AppError as e:
        return component(DOWN, str(e))
    data = dict(ready=ready, checks=body.get("checks"))
    if not ready:
        return component(DOWN, "not ready: %s" % (body.get("checks") or body.get("status")), **data)
    if not p["app_token"]:
        return component(OK, "ready (no app_token: version and calls not read)", **data)
    try:
        info = client.system_status()
    except app_api.AppError as e:
        return component(DEGRADED, "ready, but the status endpoint failed: %s" % e, **data)
    data.update(version=info.get("version"), uptime_seconds=info.get("uptime_seconds"),
                active_calls=info.get("active_calls"))
    return component(OK, "", **data)


# --------------------------------------------------------------------------- redis
def sentinel_data(url):
    """The Sentinels' view (when broker_url names Sentinels and they were asked)."""
    if not url.is_sentinel or not url.sentinel_views:
        return {}
    summary = redis_client.sentinel_summary(url, url.sentinel_views)
    summary["views"] = url.sentinel_views
    return dict(sentinel=summary)


def redis_verdict(info, p, sentinel=None):
    """The redis component from ``INFO`` (as redis-py parses it) and the Sentinels' view:
    degraded when memory is above ``redis_memory_ratio_degraded`` of maxmemory, or when
    replication falls short (fewer replicas than expected, one lagging)."""
    used, maxmem = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    data = dict(used_memory=used, used_memory_human=info.get("used_memory_human"), maxmemory=maxmem,
                mem_fragmentation_ratio=info.get("mem_fragmentation_ratio"),
                connected_clients=info.get("connected_clients"), role=info.get("role"),
                redis_version=info.get("redis_version"))
    data["replication"] = redis_client.replication_figures(info)
    if sentinel:
        data.update(sentinel)
    reasons = []
    if maxmem and used / float(maxmem) > p["redis_memory_ratio_degraded"]:
        reasons.append("memory %.0f %% of maxmemory" % (100.0 * used / maxmem))
    reasons += redis_client.replication_problems(data["replication"], data.get("sentinel"),
                                                 p["redis_expected_replicas"],
                                                 p["redis_replication_lag_bytes_degraded"])
    return verdict(data, reasons)


def probe_redis(url, timeout, p):
    """Memory, clients, role and replication of the broker's Redis."""
    try:
        client = redis_client.open_checked(url, timeout, p["validate_certs"], p["ca_path"])
        info = client.info()
    except redis_client.BrokerError as e:
        return component(DOWN, str(e), **sentinel_data(url))
    except redis_client.redis.RedisError as e:
        return component(DOWN, redis_client.describe_error(e, url, timeout), **sentinel_data(url))
    return redis_verdict(info, p, sentinel_data(url))


# --------------------------------------------------------------------------- celery
def celery_verdict(online, queues, p, expected):
    """The celery component from the workers that answered ping and the queue depths: down
    when no worker answered, degraded when fewer than expected did or a queue is too long."""
    data = dict(workers_online=len(online), workers=online, queues=queues)
    if not online:
        return component(DOWN, "no Celery worker answered ping", **data)
    return verdict(data, celery_client.health_problems(online, expected=expected, queues=queues,
                                                       max_queue_length=p["max_queue_length"]))


def probe_celery(url, timeout, p, expected):
    """Queue depths on the broker, then the workers that answer ping."""
    started = time.monotonic()
    try:
        client = redis_client.open_checked(url, timeout, p["validate_certs"], p["ca_path"])
        depths = celery_client.queue_depths(client, p["queues"])  # every priority sub-queue, as celery_health
    except redis_client.BrokerError as e:
        return component(DOWN, "broker: %s" % e)
    except redis_client.redis.RedisError as e:
        return component(DOWN, "broker: %s" % redis_client.describe_error(e, url, timeout))
    queues = dict((q, d["waiting"]) for q, d in depths.items())
    if not celery_client.HAS_CELERY:
        return component(DOWN, missing_required_lib("celery"), queues=queues)
    probe = None
    try:
        probe = celery_client.CeleryProbe(url, timeout, p["validate_certs"], p["ca_path"])
        # A missing worker makes ping wait out its whole reply window: collect replies only for
        # what is left of this component's time (less a reserve for what follows the window:
        # kombu's wake-up, the broker check below; 0.6 s was not enough on a loaded 2-core host
        # at a 2 s timeout), so it still answers in time - degraded, naming who answered -
        # instead of "no answer". Workers that live answer within milliseconds of the broadcast.
        window = max(0.2, timeout - (time.monotonic() - started) - min(1.5, timeout * 0.4))
        online = probe.ping(expected, window=window)
        client.ping()  # kombu ends a ping whose connection broke quietly: is the broker still there?
    except redis_client.BrokerError as e:
        return component(DOWN, str(e), queues=queues)
    except (redis_client.redis.RedisError, OSError) as e:
        return component(DOWN, "broker lost during the check: %s" % redis_client.describe_error(e, url, timeout),
                         queues=queues)
    finally:
        if probe:
            # Closing Celery's connections must not hold up the answer, which has its deadline
            # (on a loaded host it ate the reserve): a thread of its own does it; the module's
            # process ends soon after, and what is still open then is closed with it.
            closer = threading.Thread(target=probe.close, name="status-celery-close")
            closer.daemon = True
            closer.start()
    return celery_verdict(online, queues, p, expected)


# --------------------------------------------------------------------------- postgres
def pg_expected_replicas(p):
    """Replicas the primary should stream to: pg_expected_replicas, else the number of
    pg_replicas, else no expectation (None)."""
    if p["pg_expected_replicas"] is not None:
        return p["pg_expected_replicas"]
    return len(p["pg_replicas"]) if p["pg_replicas"] else None


def postgres_verdict(data, replication, p, replica=False):
    """The postgres component from server_load() figures and replication_status(): degraded
    when connections exceed ``pg_connections_ratio_degraded`` of max_connections, when a server
    given as a replica is not in recovery (promoted), or when replication falls short."""
    data = dict(data)
    replication = dict(replication)
    data.update(role=replication.pop("role"), replication=replication)
    reasons = []
    if data["connections"] > p["pg_connections_ratio_degraded"] * data["max_connections"]:
        reasons.append("%d of %d connections in use" % (data["connections"], data["max_connections"]))
    if replica and data["role"] != "replica":
        reasons.append("given as a replica but not in recovery: was it promoted? Two primaries split the data")
    expected = None if replica else pg_expected_replicas(p)
    reasons += postgres.replication_problems(dict(replication, role=data["role"]), expected,
                                             p["pg_replication_lag_bytes_degraded"],
                                             p["pg_replication_lag_seconds_degraded"])
    return verdict(data, reasons)


def probe_postgres(p, timeout, host=None, port=None, replica=False):
    """The primary (pg_host) or one of pg_replicas: load figures and where it stands in
    replication. A replica that cannot be reached is degraded, not down: the primary serves."""
    if not postgres.HAS_PSYCOPG:
        return component(DOWN, missing_required_lib("psycopg"))
    host = host or p["pg_host"]
    port = port or p["pg_port"]
    dsn = postgres.safe_dsn(host, port, p["pg_database"], p["pg_user"])
    try:
        conn = postgres.connect(host, port, p["pg_user"], p["pg_password"], p["pg_database"], timeout)
        replication = postgres.replication_status(conn)
        data = postgres.server_load(conn)
    except postgres.PostgresError as e:
        if replica:
            return component(DEGRADED, "replica unreachable: %s (the primary still serves; it runs without "
                                       "this copy)" % e, dsn=dsn, role="replica")
        return component(DOWN, str(e), dsn=dsn)
    data.update(dsn=dsn)
    return postgres_verdict(data, replication, p, replica)


# --------------------------------------------------------------------------- backup
def backup_verdict(newest, facts, max_age, metrics_file=None, read_detail=backup.read_metrics_detail):
    """The backup component from the newest file's facts (backup.file_facts) and, with a
    ``metrics_file``, its last verification as ``read_detail`` reads it: degraded when that
    verification failed, left no result or cannot be read (OSError), or when the newest backup
    is older than ``max_age`` seconds."""
    data = dict(path=newest, size=facts["size"], mtime=facts["mtime"], age_seconds=facts["age_seconds"],
                verified=None, verified_at=None)
    reasons = []
    if metrics_file:
        try:
            detail = read_detail(metrics_file)
            success, last = detail["success"], detail["last_run"]
            data["verified"] = success
            if last:
                data["verified_at"] = datetime.datetime.fromtimestamp(last, datetime.timezone.utc).isoformat()
            if success is False:
                data["verification_problems"] = detail["problems"]
                reasons.append("last verification FAILED%s" % (
                    ": " + "; ".join(detail["problems"]) if detail["problems"] else ""))
            elif success is None:
                reasons.append("no verification result in %s" % metrics_file)
        except OSError as e:
            reasons.append("verification metrics unreadable (%s)" % (e.strerror or e))
    if facts["age_seconds"] > max_age:
        reasons.append("newest backup is %.1fh old" % (facts["age_seconds"] / 3600.0))
    return verdict(data, reasons)


def probe_backup(p, max_age):
    """The newest backup in backup_dir, its age, and its last verification."""
    try:
        newest = backup.find_backup(p["backup_dir"], p["backup_pattern"])
        facts = backup.file_facts(newest)
    except backup.BackupError as e:
        return component(DOWN, str(e))
    return backup_verdict(newest, facts, max_age, p["backup_metrics_file"])


# --------------------------------------------------------------------------- flower
def flower_client(p, url, credentials, timeout):
    """The HTTP client the flower probe uses (``url`` already without user info)."""
    return app_api.AppClient(url, None, timeout, p["validate_certs"], p["ca_path"], basic_auth=credentials,
                             option="flower_url", service="Flower")


def probe_flower(p, url, credentials, timeout, client=None):
    """Flower must ask for credentials (it shows every task and its arguments); the ones given,
    if any, must let us in. ``url`` is already without user info. ``client`` answers
    ``http_status(path, auth=False)``; by default flower_client()."""
    client = client or flower_client(p, url, credentials, timeout)
    try:
        anonymous = client.http_status("/")
    except app_api.AppError as e:
        return component(DOWN, str(e), url=url)
    data = dict(url=url, http_status=anonymous)
    if anonymous == 200:
        try:  # Flower 2.2 keeps its API closed without auth unless FLOWER_UNAUTHENTICATED_API is set
            api_open = client.http_status("/api/workers") == 200
        except app_api.AppError:
            api_open = False
        return component(DEGRADED, "Flower answers %s without credentials: anyone who reaches it can see every "
                         "worker, task and task argument%s - set basic auth (flower_basic_auth of the "
                         "callcenter.ops.flower role, or FLOWER_BASIC_AUTH)"
                         % (url, ", and through /api/workers shut workers down and revoke tasks" if api_open else ""),
                         auth=False, credentials="not checked", **data)
    if anonymous != 401:
        return component(DOWN, "%s answered HTTP %d (is flower_url Flower's address, with its url_prefix?)"
                         % (url, anonymous), **data)
    data["auth"] = True
    if not credentials:
        return component(OK, "asks for credentials (none given: flower_user / flower_password not checked)",
                         credentials="not given", **data)
    try:
        answer = client.http_status("/", auth=True)
    except app_api.AppError as e:
        return component(DOWN, str(e), credentials="not checked", **data)
    if answer == 200:
        return component(OK, "", credentials="accepted", **data)
    if answer == 401:
        return component(DEGRADED, "Flower rejected the credentials (401) of user %r at %s: check flower_user / "
                         "flower_password against the flower role's flower_basic_auth" % (credentials[0], url),
                         credentials="rejected", **data)
    return component(DOWN, "%s answered HTTP %d to the credentials given" % (url, answer),
                     credentials="not checked", **data)
