# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one PostgreSQL helper of the collection (psycopg 3): connect with a deadline and say in
a sentence why not, never with the password; read the server's load figures."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import traceback

from ansible.module_utils.basic import env_fallback
from ansible_collections.callcenter.ops.plugins.module_utils.redact import mask

PSYCOPG_IMP_ERR = None
try:
    import psycopg
    HAS_PSYCOPG = True
except ImportError:
    PSYCOPG_IMP_ERR = traceback.format_exc()
    HAS_PSYCOPG = False


class PostgresError(Exception):
    """A PostgreSQL problem already phrased for an operator (no password inside)."""


def postgres_connection_spec():
    """Where PostgreSQL is and how to log in (doc fragment ``callcenter.ops.postgres``): the one
    declaration of these options, the PGPASSWORD fallback included, for every module that reads it."""
    return dict(
        pg_host=dict(type="str"),
        pg_port=dict(type="int", default=5432),
        pg_user=dict(type="str", default="postgres"),
        pg_password=dict(type="str", no_log=True, fallback=(env_fallback, ["PGPASSWORD"])),
        pg_database=dict(type="str", default="postgres"),
    )


def safe_dsn(host, port, dbname, user):
    """The connection target as it may be printed."""
    return "host=%s port=%s dbname=%s user=%s" % (host, port, dbname, user)


def connect(host, port, user, password, dbname, timeout):
    """A psycopg connection, or PostgresError naming the server and the likely fix.
    libpq treats connect_timeout < 2 as 2: callers that need less enforce their own deadline."""
    where = "%s:%s" % (host, port)
    try:
        return psycopg.connect(host=host, port=port, user=user, password=password, dbname=dbname,
                               connect_timeout=max(1, int(math.ceil(timeout))),
                               options="-c statement_timeout=%d" % int(timeout * 1000),
                               application_name="callcenter.ops")
    except psycopg.OperationalError as e:
        text = mask(e, password)
        low = text.lower()
        last = text.strip().splitlines()[-1] if text.strip() else type(e).__name__
        if "password authentication failed" in low:
            raise PostgresError("%s rejected the password for user %s" % (where, user))
        if "refused" in low:
            raise PostgresError("%s refused the connection (is PostgreSQL running?)" % where)
        if "timeout" in low:
            raise PostgresError("%s did not answer within %ss" % (where, timeout))
        raise PostgresError("%s: %s" % (where, last))


def server_load(conn):
    """Client connections (background processes left out), max_connections, size of the
    current database in bytes, and the server version."""
    try:
        with conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),"
                " current_setting('max_connections')::int, pg_database_size(current_database()),"
                " current_setting('server_version')").fetchone()
    except psycopg.Error as e:
        raise PostgresError("query failed (%s)" % str(e).strip().splitlines()[0])
    return dict(connections=row[0], max_connections=row[1], database_size=row[2], server_version=row[3])


def _lag_seconds(value):
    return round(float(value), 3) if value is not None else None


def replication_status(conn):
    """Where this server stands in streaming replication (call before server_load(), which
    closes the connection).

    A primary: ``role`` ``primary`` and ``replicas``, one per row of ``pg_stat_replication``
    (``name``, ``client_addr``, ``state``, ``sync_state``, ``sent_lag_bytes``,
    ``replay_lag_bytes`` and ``write/flush/replay_lag_seconds`` as PostgreSQL measures them;
    the LSN columns need superuser or ``pg_monitor``). A replica (``pg_is_in_recovery()``):
    ``role`` ``replica``, ``receive_lag``: bytes received but not replayed, ``replay_lag_bytes``,
    ``replay_lag_seconds`` (age of the last replayed transaction while WAL waits, else 0),
    ``replay_paused`` and ``upstream`` (``pg_stat_wal_receiver``)."""
    try:
        in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
        if not in_recovery:
            rows = conn.execute(
                "SELECT application_name, host(client_addr), state, sync_state,"
                " pg_wal_lsn_diff(pg_current_wal_lsn(), sent_lsn)::bigint,"
                " pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint,"
                " EXTRACT(EPOCH FROM write_lag), EXTRACT(EPOCH FROM flush_lag), EXTRACT(EPOCH FROM replay_lag)"
                " FROM pg_stat_replication ORDER BY application_name, client_addr").fetchall()
            replicas = [dict(name=r[0], client_addr=r[1], state=r[2], sync_state=r[3], sent_lag_bytes=r[4],
                             replay_lag_bytes=r[5], write_lag_seconds=_lag_seconds(r[6]),
                             flush_lag_seconds=_lag_seconds(r[7]), replay_lag_seconds=_lag_seconds(r[8]))
                        for r in rows]
            return dict(role="primary", replicas=replicas)
        row = conn.execute(
            "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint,"
            " CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
            " ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) END,"
            " pg_is_wal_replay_paused(),"
            " (SELECT status FROM pg_stat_wal_receiver),"
            " (SELECT sender_host || ':' || sender_port FROM pg_stat_wal_receiver)").fetchone()
    except psycopg.Error as e:
        raise PostgresError("replication query failed (%s)" % str(e).strip().splitlines()[0])
    return dict(role="replica", replay_lag_bytes=max(0, row[0] or 0), replay_lag_seconds=_lag_seconds(row[1]),
                replay_paused=bool(row[2]), wal_receiver=row[3], upstream=row[4])


def replication_problems(status, expected_replicas=None, lag_bytes=None, lag_seconds=None):
    """The sentences that make a server's replication degraded; empty when fine. Pure logic.

    On a primary: fewer streaming replicas than ``expected_replicas``, a replica not streaming,
    or one lagging more than ``lag_bytes`` / ``lag_seconds``. On a replica: replay paused, no
    WAL receiver (cut off from its primary), or replay lag above a threshold."""
    problems = []
    if status.get("role") == "primary":
        replicas = status.get("replicas") or []
        streaming = [r for r in replicas if r.get("state") == "streaming"]
        if expected_replicas is not None and len(streaming) < expected_replicas:
            problems.append("%d of %d expected replica(s) streaming" % (len(streaming), expected_replicas))
        for r in replicas:
            who = "replica %s (%s)" % (r.get("name") or "?", r.get("client_addr") or "local")
            if r.get("state") != "streaming":
                problems.append("%s is %s, not streaming" % (who, r.get("state")))
            if lag_bytes is not None and (r.get("replay_lag_bytes") or 0) > lag_bytes:
                problems.append("%s replays %d bytes behind (max %d)" % (who, r["replay_lag_bytes"], lag_bytes))
            if lag_seconds is not None and (r.get("replay_lag_seconds") or 0) > lag_seconds:
                problems.append("%s replays %.1fs behind (max %ss)" % (who, r["replay_lag_seconds"], lag_seconds))
        return problems
    if status.get("replay_paused"):
        problems.append("WAL replay is paused (pg_wal_replay_resume() continues it)")
    if status.get("wal_receiver") != "streaming":
        problems.append("not streaming from a primary (WAL receiver %s)" % (status.get("wal_receiver") or "not running"))
    if lag_bytes is not None and (status.get("replay_lag_bytes") or 0) > lag_bytes:
        problems.append("replay %d bytes behind (max %d)" % (status["replay_lag_bytes"], lag_bytes))
    if lag_seconds is not None and (status.get("replay_lag_seconds") or 0) > lag_seconds:
        problems.append("replay %.1fs behind (max %ss)" % (status["replay_lag_seconds"], lag_seconds))
    return problems
