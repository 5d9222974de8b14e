# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One Redis connection helper for every module of the collection.

Short timeouts and no retries, so a Redis that is down is reported in milliseconds
instead of after redis-py's or Celery's own retry loops (seconds). Error messages name
the host and the likely fix and never contain the password.

STDLIB + redis ONLY: the celery_metrics host script imports this file too (see
roles/host_files/vars/main.yml), in the Python that has the app's redis-py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading
import time
import traceback

try:
    from ansible.module_utils.basic import env_fallback
    from ansible.module_utils.six.moves.urllib.parse import quote, urlsplit, unquote
except ImportError:  # installed on a host beside the celery_metrics script, without Ansible
    from urllib.parse import quote, urlsplit, unquote
    env_fallback = None
try:
    from ansible_collections.callcenter.ops.plugins.module_utils.redact import MASK, hide, mask
except ImportError:
    from ccops_redact import MASK, hide, mask

REDIS_IMP_ERR = None
try:
    import redis
    import redis.sentinel
    from redis.backoff import NoBackoff
    from redis.retry import Retry
    HAS_REDIS = True
except ImportError:
    REDIS_IMP_ERR = traceback.format_exc()
    HAS_REDIS = False

SUPPORTED_SCHEMES = ("redis", "rediss", "redis+socket", "unix", "sentinel")
SENTINEL_PORT = 26379
ENV_SENTINEL_MASTER = "CELERY_BROKER_SENTINEL_MASTER"
ENV_SENTINEL_PASSWORD = "CELERY_BROKER_SENTINEL_PASSWORD"


class BrokerError(Exception):
    """A broker problem already phrased for an operator (no secrets inside)."""


def broker_connection_spec():
    """Where the broker is and its password (doc fragment ``callcenter.ops.broker.connection``):
    the one declaration of these options, environment fallbacks included, for every module
    that reads the broker. ``broker_url`` is checked by broker_from_params(), whose message
    names the environment variable too."""
    return dict(
        broker_url=dict(type="str", fallback=(env_fallback, ["CELERY_BROKER_URL"])),
        broker_password=dict(type="str", no_log=True, fallback=(env_fallback, ["CELERY_BROKER_PASSWORD"])),
        sentinel_master_name=dict(type="str", fallback=(env_fallback, [ENV_SENTINEL_MASTER])),
        sentinel_password=dict(type="str", no_log=True, fallback=(env_fallback, [ENV_SENTINEL_PASSWORD])),
    )


def broker_argument_spec():
    """Connection options of the modules that only talk to the broker (doc fragments
    ``callcenter.ops.broker.connection`` and ``callcenter.ops.broker``)."""
    spec = broker_connection_spec()
    spec.update(
        timeout=dict(type="float", default=2.0),
        validate_certs=dict(type="bool", default=True),
        ca_path=dict(type="path"),
    )
    return spec


class BrokerURL:
    """A parsed broker URL; ``safe`` is the form that may be printed.

    A Sentinel URL (kombu's form: ``sentinel://[:password@]host:port[/db]`` entries joined by
    ``;``) names the Sentinels, not Redis: ``sentinels`` lists them, ``master_name`` is the
    ``master_name`` of the app's ``broker_transport_options``, ``sentinel_password`` that of
    its ``sentinel_kwargs``. ``host``/``port`` then become the master's once resolve_master()
    asked the Sentinels. As in kombu, the password and database of the first entry that has
    one are the master's; the Sentinels' own password is ``sentinel_password``."""

    def __init__(self, url, password=None, master_name=None, sentinel_password=None):
        self.original = url
        self.sentinels = []
        self.master_name = None
        self.sentinel_password = sentinel_password or None
        self.master_where = None
        self.sentinel_views = None
        entries = [e.strip() for e in (url or "").split(";") if e.strip()]
        if not entries:
            raise BrokerError("broker_url is empty")
        first = self._split(entries[0])
        self.scheme = first.scheme.lower()
        if self.scheme not in SUPPORTED_SCHEMES:
            raise BrokerError(
                "broker_url scheme '%s' is not supported: this collection reads Celery queues from Redis, "
                "use redis://, rediss://, redis+socket://, unix:// or sentinel://" % (self.scheme or "(none)"))
        if self.scheme == "sentinel":
            self._init_sentinel(entries, password, master_name)
            return
        if len(entries) > 1:
            raise BrokerError("broker_url holds %d URLs separated by ';': only sentinel:// URLs can be listed "
                              "(failover URLs of other schemes are not read)" % len(entries))
        parts = first
        self.username = unquote(parts.username) if parts.username else None
        self.password = password if password else (unquote(parts.password) if parts.password else None)
        self.url_password = parts.password
        self.query = parts.query
        if self.scheme in ("redis+socket", "unix"):
            self.path = parts.path
            self.host, self.port, self.db = None, None, 0
            self.where = "Redis at unix:%s" % self.path
        else:
            self.path = None
            self.host = parts.hostname or "localhost"
            self.port = parts.port or 6379
            self.db = self._db(parts)
            self.where = "Redis at %s:%s" % (self.host, self.port)
        netloc = self.host if self.host else ""
        if self.port:
            netloc = "%s:%s" % (netloc, self.port)
        self.safe = "%s://%s%s/%s" % (self.scheme, self._auth(), netloc, self.path or self.db)

    @staticmethod
    def _split(entry):
        try:
            parts = urlsplit(entry)
            parts.port  # pylint: disable=pointless-statement  # raises ValueError on a bad port
        except ValueError as e:
            raise BrokerError("broker_url is not a valid URL (%s)" % mask(e, entry))
        return parts

    @staticmethod
    def _db(parts):
        db = (parts.path or "/").lstrip("/") or "0"
        try:
            return int(db)
        except ValueError:
            raise BrokerError("broker_url database '%s' is not a number" % db)

    def _auth(self):
        if self.username or self.password:
            return "%s:%s@" % (self.username or "", MASK)
        return ""

    def _init_sentinel(self, entries, password, master_name):
        self.username, self.password, self.url_password, self.db = None, None, None, None
        self.path, self.query, self.host, self.port = None, "", None, None
        for entry in entries:
            parts = self._split(entry)
            if parts.scheme.lower() != "sentinel":
                raise BrokerError("broker_url mixes sentinel:// with %s:// URLs: list only Sentinels, "
                                  "separated by ';'" % parts.scheme)
            self.sentinels.append((parts.hostname or "localhost", parts.port or SENTINEL_PORT))
            if parts.password and self.url_password is None:
                self.url_password = parts.password
                self.username = unquote(parts.username) if parts.username else None
            if self.db is None and (parts.path or "").strip("/"):
                self.db = self._db(parts)
        self.db = self.db or 0
        self.password = password if password else (unquote(self.url_password) if self.url_password else None)
        self.master_name = (master_name or "").strip() or None
        if not self.master_name:
            raise BrokerError("broker_url names Redis Sentinels: give sentinel_master_name (or %s), the "
                              "master_name of the app's broker_transport_options" % ENV_SENTINEL_MASTER)
        self.where = "Redis master '%s' (Sentinels %s)" % (self.master_name, self.sentinel_list())
        self.safe = ";".join("sentinel://%s%s:%s/%s" % (self._auth() if i == 0 else "", h, port, self.db)
                             for i, (h, port) in enumerate(self.sentinels))

    @property
    def is_sentinel(self):
        return self.scheme == "sentinel"

    def sentinels_answering_first(self):
        """The Sentinels, those that named the master first: kombu asks them one after the other,
        each with the full socket timeout, so a dead first Sentinel would cost a whole timeout."""
        if not self.sentinel_views:
            return list(self.sentinels)
        good = set(v["address"] for v in self.sentinel_views if v.get("knows_master"))
        return sorted(self.sentinels, key=lambda hp: "%s:%s" % hp not in good)

    def sentinel_list(self):
        return ", ".join("%s:%s" % hp for hp in self.sentinels)

    def secrets(self):
        """Values the module must mask in its output."""
        return [s for s in (self.password, self.url_password, self.sentinel_password) if s]

    def celery_url(self):
        """The URL handed to kombu, with broker_password folded in."""
        auth = ""
        if self.password:
            auth = "%s:%s@" % (quote(self.username or "", safe=""), quote(self.password, safe=""))
        if self.is_sentinel:  # kombu takes the master's password from the first entry
            return ";".join("sentinel://%s%s:%s/%s" % (auth if i == 0 else "", h, port, self.db)
                            for i, (h, port) in enumerate(self.sentinels_answering_first()))
        if self.path:
            return "redis+socket://%s" % self.path
        return "%s://%s%s:%s/%s" % (self.scheme, auth, self.host, self.port, self.db)

    def transport_options(self, timeout):
        """kombu ``broker_transport_options`` for this broker: short socket timeouts, plus for
        Sentinel the app's ``master_name`` and the Sentinels' password (``sentinel_kwargs``)."""
        opts = dict(socket_timeout=timeout, socket_connect_timeout=timeout, max_connections=2)
        if self.is_sentinel:
            opts["master_name"] = self.master_name
            opts["sentinel_kwargs"] = _sentinel_kwargs(self, timeout)
        return opts


def _sentinel_kwargs(url, timeout):
    kwargs = dict(socket_connect_timeout=timeout, socket_timeout=timeout)
    if url.sentinel_password:
        kwargs["password"] = url.sentinel_password
    return kwargs


def _ask_sentinels(url, timeout):
    """``SENTINEL MASTER <master_name>`` on every Sentinel at the same time (redis-py's
    ``redis.sentinel`` clients), each answer or error within ``timeout``. One dict per Sentinel:
    ``address``, ``answered``, ``error`` (a sentence) and, when it knows the master, its view:
    ``master`` (ip:port), ``flags``, ``quorum``, ``num_other_sentinels``, ``num_replicas``."""
    kwargs = _sentinel_kwargs(url, timeout)
    kwargs.update(retry=Retry(NoBackoff(), 0), health_check_interval=0)
    manager = redis.sentinel.Sentinel(url.sentinels, sentinel_kwargs=kwargs)
    views = [dict(address="%s:%s" % hp, answered=False, knows_master=False, error="no answer within %ss" % timeout)
             for hp in url.sentinels]

    def ask(i, client):
        view = views[i]
        try:
            state = client.sentinel_master(url.master_name)
        except redis.ResponseError as e:
            view["answered"] = True
            low = str(e).lower()
            if "no such master" in low:
                view["error"] = "does not know a master named '%s'" % url.master_name
            elif "noauth" in low or "auth" in low:
                view["error"] = ("requires a password: give sentinel_password (or %s)" % ENV_SENTINEL_PASSWORD)
            else:
                view["error"] = mask(e, *url.secrets())
            return
        except (redis.RedisError, OSError) as e:
            if isinstance(e, redis.AuthenticationError) or "auth" in str(e).lower():
                view["answered"] = True
                view["error"] = ("rejected the Sentinel password (check sentinel_password or %s)" % ENV_SENTINEL_PASSWORD
                                 if url.sentinel_password else
                                 "requires a password: give sentinel_password (or %s)" % ENV_SENTINEL_PASSWORD)
            else:
                view["error"] = _reason(e, url, timeout)
            return
        finally:
            try:
                client.close()
            except Exception:
                pass
        flags = state.get("flags") or ""
        flags = sorted(flags) if isinstance(flags, (set, list, tuple)) else sorted(f for f in flags.split(",") if f)
        view.update(answered=True, knows_master=True, error=None, master="%s:%s" % (state.get("ip"), state.get("port")),
                    flags=flags, master_down="s_down" in flags or "o_down" in flags or "disconnected" in flags,
                    quorum=state.get("quorum"), num_other_sentinels=state.get("num-other-sentinels"),
                    num_replicas=state.get("num-slaves"))

    threads = []
    for i, client in enumerate(manager.sentinels):
        t = threading.Thread(target=ask, args=(i, client), name="sentinel-%d" % i)
        t.daemon = True
        t.start()
        threads.append(t)
    deadline = time.monotonic() + timeout + 0.1
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return [dict(v) for v in views]


def _reason(exc, url, timeout):
    """A short reason for one failed connection (refused, timed out, ...), without secrets."""
    text = mask(exc, *url.secrets())
    low = text.lower()
    if isinstance(exc, redis.TimeoutError) or "timed out" in low:
        return "no answer within %ss" % timeout
    if "refused" in low or "error 111" in low:
        return "connection refused"
    if "name or service not known" in low or "temporary failure in name" in low:
        return "host name does not resolve"
    return text


def _grouped_errors(views):
    """``"h1:26379, h2:26379: connection refused; h3:26379: no answer within 2s"``."""
    by_error = {}
    for v in views:
        if v.get("error"):
            by_error.setdefault(v["error"], []).append(v["address"])
    return "; ".join("%s: %s" % (", ".join(addrs), err) for err, addrs in by_error.items())


def sentinel_summary(url, views):
    """The Sentinels' view of the master: the address most of them name, how many name it,
    how many see it up, the quorum and whether it is reached. Pure logic (unit-tested)."""
    knowing = [v for v in views if v.get("knows_master")]
    counts = {}
    for v in knowing:
        counts[v["master"]] = counts.get(v["master"], 0) + 1
    master = None
    if counts:  # the address most Sentinels name; on a tie the first Sentinel's
        master = max(counts, key=lambda a: (counts[a], -[v["master"] for v in knowing].index(a)))
    agree = [v for v in knowing if v["master"] == master]
    see_up = [v for v in agree if not v.get("master_down")]
    quorum = max([v.get("quorum") or 0 for v in agree] or [0]) or None
    known = [v.get("num_replicas") for v in agree if v.get("num_replicas") is not None]
    return dict(known_replicas=max(known) if known else None, master_name=url.master_name, master=master, sentinels=len(views),
                sentinels_answering=len([v for v in views if v.get("answered")]),
                sentinels_naming_master=len(agree), sentinels_seeing_master_up=len(see_up), quorum=quorum,
                quorum_reached=bool(quorum) and len(see_up) >= quorum,
                disagree=sorted(set(counts) - set([master])) if master else [])


def resolve_master(url, timeout):
    """Ask the Sentinels of a sentinel:// BrokerURL which Redis is the master now and point
    ``url`` at it (``host``, ``port``, ``where``). Returns the per-Sentinel views. Raises
    BrokerError naming what failed: no Sentinel answered, the Sentinels do not know the master
    name, or they name none."""
    views = _ask_sentinels(url, timeout)
    answered = [v for v in views if v["answered"]]
    detail = _grouped_errors(views)
    if not answered:
        raise BrokerError("no Redis Sentinel answered (%s): are the redis-sentinel processes running, and are "
                          "the sentinel:// addresses in broker_url right?" % detail)
    knowing = [v for v in answered if v["knows_master"]]
    if not knowing:
        if all("password" in (v.get("error") or "") for v in answered):
            raise BrokerError("the Redis Sentinels refused the query (%s)" % detail)
        raise BrokerError("the Redis Sentinels do not know a master named '%s' (%s): check sentinel_master_name "
                          "(or %s) against the app's master_name and 'sentinel monitor' in sentinel.conf"
                          % (url.master_name, detail, ENV_SENTINEL_MASTER))
    url.sentinel_views = views
    summary = sentinel_summary(url, views)
    host, _sep, port = summary["master"].rpartition(":")
    url.host, url.port = host, int(port)
    url.master_where = "%s:%s" % (url.host, url.port)
    url.where = "Redis master '%s' at %s (named by %d of %d Sentinels)" % (
        url.master_name, url.master_where, summary["sentinels_naming_master"], len(views))
    return views


def connect(url, timeout, validate_certs=True, ca_path=None):
    """A redis-py client for a BrokerURL that fails fast: connect and read timeouts of
    ``timeout`` seconds and no retries. A Sentinel URL must be resolved first (open_checked)."""
    kwargs = dict(
        db=url.db,
        username=url.username,
        password=url.password,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),  # no retries, a timeout included (retry_on_timeout is deprecated in redis-py 6+)
        health_check_interval=0,
    )
    if url.path:
        return redis.Redis(unix_socket_path=url.path, **kwargs)
    if url.scheme == "rediss":
        kwargs.update(ssl=True, ssl_cert_reqs="required" if validate_certs else "none")
        if ca_path:
            kwargs["ssl_ca_certs"] = ca_path
    return redis.Redis(host=url.host, port=url.port, **kwargs)


def describe_error(exc, url, timeout):
    """Turn a redis-py exception into a sentence naming the server and the likely fix."""
    text = mask(exc, *url.secrets())
    low = text.lower()
    where = url.where
    if "noauth" in low or "authentication required" in low or "must be called with the client already authenticated" \
            in low or (isinstance(exc, redis.AuthenticationError) and not url.password):
        return "%s requires a password and none was given (add it to broker_url or broker_password)" % where
    if isinstance(exc, redis.AuthenticationError) or "wrongpass" in low or "invalid password" in low \
            or "invalid username-password" in low:
        return "%s rejected the credentials (check the password in broker_url or broker_password)" % where
    if isinstance(exc, redis.TimeoutError) or "timed out" in low:
        return "%s did not answer within %ss (host down, firewalled or overloaded?)" % (where, timeout)
    if "refused" in low or "error 111" in low:
        return "%s refused the connection (is redis-server running and listening there?)" % where
    if "name or service not known" in low or "nodename nor servname" in low or "temporary failure in name" in low:
        return "%s: the host name does not resolve (check broker_url)" % where
    if "no such file" in low:
        return "%s: the socket file does not exist (is redis-server running?)" % where
    if "ssl" in low or "certificate" in low:
        return "%s: TLS handshake failed (%s); check ca_path or validate_certs" % (where, text)
    return "%s: %s" % (where, text)


def open_checked(url, timeout, validate_certs=True, ca_path=None):
    """Connect and PING; return the client or raise BrokerError with a clear sentence.
    A Sentinel URL is resolved first, within the same ``timeout``, and the server it names
    must answer as a master (during a failover the old one may still be named)."""
    started = time.monotonic()
    views = None
    if url.is_sentinel:
        views = resolve_master(url, timeout)
        # the master gets what is left of the timeout (Sentinels answer in milliseconds)
        timeout = max(timeout - (time.monotonic() - started), min(0.2, timeout))
    client = connect(url, timeout, validate_certs, ca_path)
    try:
        client.ping()
        if url.is_sentinel:
            role = client.execute_command("ROLE")
            role = role[0].decode() if isinstance(role[0], bytes) else str(role[0])
            if role != "master":
                raise BrokerError("%s answers as a %s, not a master: a Sentinel failover is under way, try again in "
                                  "a few seconds" % (url.where, role))
    except redis.RedisError as e:
        raise BrokerError(_sentinel_context(describe_error(e, url, timeout), url, views))
    except OSError as e:
        raise BrokerError(_sentinel_context(describe_error(e, url, timeout), url, views))
    return client


def still_up(url, timeout):
    """Raise redis-py's error when the broker ``url`` points at (after open_checked) no longer
    answers PING: kombu may end a call whose connection broke quietly, with the replies so far."""
    client = connect(url, timeout)
    try:
        client.ping()
    finally:
        client.close()


def _sentinel_context(sentence, url, views):
    if views is None:
        return sentence
    down = [v for v in views if v.get("master_down")]
    return "%s; the master the Sentinels name is down%s" % (
        sentence, " (%d of %d Sentinels flag it down: they promote a replica, if one is up)" % (len(down), len(views))
        if down else " (the Sentinels have not noticed yet)")


def replication_figures(info):
    """Role, replicas and their lag in bytes from ``INFO replication`` (as redis-py parses it):
    ``{role, master_repl_offset, connected_replicas, replicas: [{address, state, offset,
    lag_bytes, lag_seconds}]}``; a replica's own view adds ``master_link_status``."""
    out = dict(role=info.get("role"), master_repl_offset=info.get("master_repl_offset"),
               connected_replicas=int(info.get("connected_slaves") or 0), replicas=[])
    top = int(info.get("master_repl_offset") or 0)
    for key in sorted(info):
        value = info[key]
        if not (key.startswith("slave") and key[5:].isdigit() and isinstance(value, dict)):
            continue
        offset = int(value.get("offset") or 0)
        out["replicas"].append(dict(address="%s:%s" % (value.get("ip"), value.get("port")), state=value.get("state"),
                                    offset=offset, lag_bytes=max(0, top - offset), lag_seconds=value.get("lag")))
    if out["role"] == "slave":
        out.update(master_link_status=info.get("master_link_status"),
                   master="%s:%s" % (info.get("master_host"), info.get("master_port")))
    return out


def replication_problems(figures, sentinel=None, expected_replicas=None, lag_bytes=None):
    """The sentences that make Redis replication degraded (empty when fine). Pure logic.
    ``sentinel`` is sentinel_summary()'s view; its known replicas count as expected ones."""
    problems = []
    online = [r for r in figures.get("replicas") or [] if r.get("state") == "online"]
    expected = expected_replicas
    if sentinel and sentinel.get("known_replicas") is not None:
        expected = max(expected or 0, sentinel["known_replicas"])
    if expected is not None and len(online) < expected:
        problems.append("%d of %d replica(s) connected and online" % (len(online), expected))
    if lag_bytes is not None:
        for r in online:
            if r["lag_bytes"] > lag_bytes:
                problems.append("replica %s is %d bytes behind (max %d)" % (r["address"], r["lag_bytes"], lag_bytes))
    if sentinel:
        if sentinel["sentinels_answering"] < sentinel["sentinels"]:
            problems.append("%d of %d Sentinels answered" % (sentinel["sentinels_answering"], sentinel["sentinels"]))
        if sentinel.get("disagree"):
            problems.append("Sentinels disagree on the master (%s besides %s)"
                            % (", ".join(sentinel["disagree"]), sentinel["master"]))
        if sentinel.get("quorum") and sentinel["sentinels_answering"] < sentinel["quorum"]:
            problems.append("only %d Sentinel(s) answer, fewer than the quorum of %s: no failover could be agreed"
                            % (sentinel["sentinels_answering"], sentinel["quorum"]))
        elif not sentinel["quorum_reached"]:
            problems.append("only %d of %d Sentinels see the master up (quorum %s): they consider it down"
                            % (sentinel["sentinels_seeing_master_up"], sentinel["sentinels"], sentinel["quorum"]))
    return problems


def broker_from_params(module, url_key="broker_url", password_key="broker_password"):
    """The BrokerURL of a module's parameters; fails the module with a clear message when the
    URL is missing or unusable, and makes sure its password is masked in every output."""
    if not module.params.get(url_key):
        module.fail_json(msg="%s is required: give it, or set CELERY_BROKER_URL in the environment of the "
                             "host that runs the module" % url_key)
    try:
        url = BrokerURL(module.params[url_key], module.params.get(password_key),
                        master_name=module.params.get("sentinel_master_name"),
                        sentinel_password=module.params.get("sentinel_password"))
    except BrokerError as e:
        module.fail_json(msg=str(e))
    hide(module, *url.secrets())
    return url
