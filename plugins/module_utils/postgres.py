# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one PostgreSQL helper of the collection (psycopg 3): connect with a deadline and say in
a sentence why not, never with the password; read the server's load figures."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import traceback

PSYCOPG_IMP_ERR = None
try:
    import psycopg
    HAS_PSYCOPG = True
except ImportError:
    PSYCOPG_IMP_ERR = traceback.format_exc()
    HAS_PSYCOPG = False


class PostgresError(Exception):
    """A PostgreSQL problem already phrased for an operator (no password inside)."""


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
        text = str(e)
        if password:
            text = text.replace(password, "***")
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
