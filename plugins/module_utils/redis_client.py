# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One Redis connection helper for every module of the collection.

Short timeouts and no retries, so a Redis that is down is reported in milliseconds
instead of after redis-py's or Celery's own retry loops (seconds). Error messages name
the host and the likely fix and never contain the password."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

try:
    from ansible.module_utils.basic import env_fallback
    from ansible.module_utils.six.moves.urllib.parse import quote, urlsplit, unquote
except ImportError:  # installed on a host beside the celery_metrics script, without Ansible
    from urllib.parse import quote, urlsplit, unquote
    env_fallback = None

REDIS_IMP_ERR = None
try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
    HAS_REDIS = True
except ImportError:
    REDIS_IMP_ERR = traceback.format_exc()
    HAS_REDIS = False

SUPPORTED_SCHEMES = ("redis", "rediss", "redis+socket", "unix")


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
    """A parsed broker URL; ``safe`` is the form that may be printed."""

    def __init__(self, url, password=None):
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as e:
            raise BrokerError("broker_url is not a valid URL (%s)" % _strip(str(e), url))
        self.scheme = parts.scheme.lower()
        if self.scheme not in SUPPORTED_SCHEMES:
            raise BrokerError(
                "broker_url scheme '%s' is not supported: this collection reads Celery queues from Redis, "
                "use redis://, rediss:// or redis+socket://" % (self.scheme or "(none)"))
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
            self.port = port or 6379
            db = (parts.path or "/").lstrip("/") or "0"
            try:
                self.db = int(db)
            except ValueError:
                raise BrokerError("broker_url database '%s' is not a number" % db)
            self.where = "Redis at %s:%s" % (self.host, self.port)
        netloc = self.host if self.host else ""
        if self.port:
            netloc = "%s:%s" % (netloc, self.port)
        auth = ""
        if self.username or self.password:
            auth = "%s:***@" % (self.username or "")
        self.safe = "%s://%s%s/%s" % (self.scheme, auth, netloc, self.path or self.db)
        self.original = url

    def secrets(self):
        """Values the module must mask in its output."""
        return [s for s in (self.password, self.url_password) if s]

    def celery_url(self):
        """The URL handed to kombu, with broker_password folded in."""
        if self.path:
            return "redis+socket://%s" % self.path
        auth = ""
        if self.password:
            auth = "%s:%s@" % (quote(self.username or "", safe=""), quote(self.password, safe=""))
        return "%s://%s%s:%s/%s" % (self.scheme, auth, self.host, self.port, self.db)


def _strip(text, *secrets):
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text


def connect(url, timeout, validate_certs=True, ca_path=None):
    """A redis-py client for a BrokerURL that fails fast: connect and read timeouts of
    ``timeout`` seconds and no retries."""
    kwargs = dict(
        db=url.db,
        username=url.username,
        password=url.password,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
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
    text = _strip(str(exc), *url.secrets())
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
    """Connect and PING; return the client or raise BrokerError with a clear sentence."""
    client = connect(url, timeout, validate_certs, ca_path)
    try:
        client.ping()
    except redis.RedisError as e:
        raise BrokerError(describe_error(e, url, timeout))
    except OSError as e:
        raise BrokerError(describe_error(e, url, timeout))
    return client


def broker_from_params(module, url_key="broker_url", password_key="broker_password"):
    """The BrokerURL of a module's parameters; fails the module with a clear message when the
    URL is missing or unusable, and makes sure its password is masked in every output."""
    if not module.params.get(url_key):
        module.fail_json(msg="%s is required: give it, or set CELERY_BROKER_URL in the environment of the "
                             "host that runs the module" % url_key)
    try:
        url = BrokerURL(module.params[url_key], module.params.get(password_key))
    except BrokerError as e:
        module.fail_json(msg=str(e))
    for secret in url.secrets():
        module.no_log_values.add(secret)
    return url
