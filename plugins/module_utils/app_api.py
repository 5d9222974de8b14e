# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The call-center application's HTTP contract (docs/app-http-contract.md), as one client:
config reload, readiness, system status. Errors are sentences naming the URL and the fix;
the token never appears in them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import socket
import ssl
import time

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.urls import Request, make_context
from ansible_collections.callcenter.ops.plugins.module_utils.redact import mask, strip_userinfo

try:
    from ansible.module_utils.urls import SSLValidationError
except ImportError:  # pragma: no cover
    SSLValidationError = ssl.SSLError

RELOAD_PATH = "/admin/config/reload"
READY_PATH = "/health/ready"
STATUS_PATH = "/admin/system-status"
CONTRACT = "docs/app-http-contract.md"


def json_kind(value):
    """How a JSON value is called in a sentence: "a JSON list", "a JSON string", ..."""
    if isinstance(value, list):
        return "a JSON list"
    if isinstance(value, bool):
        return "a JSON boolean"
    if isinstance(value, (int, float)):
        return "a JSON number"
    if isinstance(value, str):
        return "a JSON string"
    if value is None:
        return "JSON null"
    return "a JSON object"


class AppError(Exception):
    """A failed call, phrased for an operator. ``status`` is the HTTP status when there was one."""

    def __init__(self, message, status=None, retryable=False):
        super(AppError, self).__init__(message)
        self.status = status
        self.retryable = retryable


def app_argument_spec():
    """Connection options shared by the modules that call the application."""
    return dict(
        app_url=dict(type="str", fallback=(env_fallback, ["CALLCENTER_APP_URL"])),
        app_token=dict(type="str", no_log=True, fallback=(env_fallback, ["CALLCENTER_ADMIN_TOKEN"])),
        validate_certs=dict(type="bool", default=True),
        ca_path=dict(type="path"),
    )


def flower_argument_spec():
    """Flower's connection options (doc fragment callcenter.ops.flower)."""
    return dict(
        flower_url=dict(type="str"),
        flower_user=dict(type="str", fallback=(env_fallback, ["FLOWER_USER"])),
        flower_password=dict(type="str", no_log=True, fallback=(env_fallback, ["FLOWER_PASSWORD"])),
    )


class AppClient:
    def __init__(self, base_url, token=None, timeout=5.0, validate_certs=True, ca_path=None, basic_auth=None,
                 option="app_url", service="the application"):
        """``basic_auth`` is ``(user, password)`` (Flower); ``option`` and ``service`` name what is
        called in messages. User info inside ``base_url`` is dropped: give credentials apart."""
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise AppError("%s must be an http:// or https:// URL (got %r)" % (option, strip_userinfo(base_url)))
        self.base = strip_userinfo(base_url).rstrip("/")
        self.token = token
        self.basic_auth = basic_auth
        self.service = service
        self.timeout = timeout
        self.validate_certs = validate_certs
        self.ca_path = ca_path
        self._context = None
        self._session = Request(timeout=timeout, follow_redirects="none")

    def _ssl_context(self):
        """One TLS context per client: building one loads the CA bundle (~25 ms), which open_url
        would do again for every request, plain HTTP included."""
        if self._context is None:
            if self.base.startswith("https://"):
                self._context = make_context(cafile=self.ca_path, validate_certs=self.validate_certs)
            else:
                self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # never used for http://
        return self._context

    def _request(self, method, path, body=None, auth=True):
        url = self.base + path
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        if auth and self.basic_auth:
            pair = ("%s:%s" % self.basic_auth).encode("utf-8")
            headers["Authorization"] = "Basic %s" % base64.b64encode(pair).decode("ascii")
        elif auth and self.token:
            headers["Authorization"] = "Bearer %s" % self.token
        try:
            resp = self._session.open(method, url, data=data, headers=headers, timeout=self.timeout,
                                      validate_certs=self.validate_certs, ca_path=self.ca_path,
                                      context=self._ssl_context())
            status, raw = resp.getcode(), resp.read()
        except HTTPError as e:
            status, raw = e.code, _read(e)
        except SSLValidationError as e:
            raise AppError("%s: TLS certificate verification failed (%s); give ca_path, or validate_certs=false "
                           "for a test system" % (url, self._clean(e)))
        except (socket.timeout, TimeoutError):
            raise AppError("%s did not answer within %ss (is %s overloaded or hung?)" % (url, self.timeout, self.service),
                           retryable=False)
        except URLError as e:
            reason = getattr(e, "reason", e)
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise AppError("%s did not answer within %ss (is %s overloaded or hung?)" % (url, self.timeout, self.service))
            if isinstance(reason, ssl.SSLError):
                raise AppError("%s: TLS failed (%s); give ca_path, or validate_certs=false for a test system"
                               % (url, self._clean(reason)))
            text = self._clean(reason)
            if "refused" in text.lower():
                raise AppError("%s refused the connection (is %s running?)" % (url, self.service), retryable=True)
            raise AppError("%s could not be reached (%s)" % (url, text), retryable=True)
        except (ssl.SSLError, ConnectionError, OSError) as e:
            raise AppError("%s could not be reached (%s)" % (url, self._clean(e)), retryable=True)
        return status, raw

    def _clean(self, e):
        return mask(e, self.token, self.basic_auth and self.basic_auth[1])

    def _object(self, path, data):
        """``data`` when it is a JSON object, else an AppError saying what came instead."""
        if not isinstance(data, dict):
            raise AppError("%s%s answered %s where the contract (%s) says an object: is app_url the application "
                           "(and the application up to date)?" % (self.base, path, json_kind(data), CONTRACT))
        return data

    def _field(self, path, data, name, kinds, what):
        """``data[name]`` when absent or of one of ``kinds``, else an AppError naming the field."""
        value = data.get(name)
        if value is None or (isinstance(value, kinds) and not isinstance(value, bool)):
            return value
        raise AppError("%s%s answered %s for %r where the contract (%s) says %s"
                       % (self.base, path, json_kind(value), name, CONTRACT, what))

    def _json(self, path, status, raw):
        try:
            return json.loads(raw.decode("utf-8")) if raw else {}
        except (ValueError, UnicodeDecodeError):
            snippet = raw[:80].decode("utf-8", "replace").replace("\n", " ")
            raise AppError("%s%s answered HTTP %d with something that is not JSON (%r...): is app_url the "
                           "application, not a proxy error page?" % (self.base, path, status, snippet), status=status)

    def _check(self, path, status, data):
        if status == 401:
            raise AppError("%s%s rejected the token (401): missing or invalid app_token" % (self.base, path), status)
        if status == 403:
            raise AppError("%s%s refused the token (403): it is valid but not an admin token" % (self.base, path),
                           status)
        if status >= 400:
            detail = data.get("error") if isinstance(data, dict) else None
            raise AppError("%s%s answered HTTP %d%s" % (self.base, path, status, ": %s" % detail if detail else ""),
                           status, retryable=status in (502, 503, 504))

    def call(self, method, path, body=None, auth=True, retries=0, delay=1.0):
        """One request; connection errors (only) are retried ``retries`` times."""
        attempt = 0
        while True:
            try:
                status, raw = self._request(method, path, body, auth)
                break
            except AppError as e:
                if not e.retryable or attempt >= retries:
                    raise
                attempt += 1
                time.sleep(delay)
        data = self._json(path, status, raw)
        self._check(path, status, data)
        return status, data

    def http_status(self, path, auth=False):
        """Just the HTTP status of ``GET path``, without auth unless ``auth`` (e.g. Flower)."""
        return self._request("GET", path, auth=auth)[0]

    def reload(self, sections=None, retries=2):
        """POST the reload; returns the application's JSON (reloaded, restart_required, changed)."""
        body = {"sections": sections} if sections else None
        _status, data = self.call("POST", RELOAD_PATH, body=body, retries=retries)
        data = self._object(RELOAD_PATH, data)
        if "reloaded" not in data:
            raise AppError("%s%s answered without a 'reloaded' list: not the expected contract (%s)"
                           % (self.base, RELOAD_PATH, CONTRACT))
        for name in ("reloaded", "restart_required", "unchanged"):
            value = self._field(RELOAD_PATH, data, name, list, "a list of section names")
            if value is not None and not all(isinstance(v, str) for v in value):
                raise AppError("%s%s answered a %r list that is not all section names (strings), where the contract "
                               "(%s) says so" % (self.base, RELOAD_PATH, name, CONTRACT))
            data[name] = value or []
        if not isinstance(data.get("changed", bool(data["reloaded"])), bool):
            raise AppError("%s%s answered %s for 'changed' where the contract (%s) says true or false"
                           % (self.base, RELOAD_PATH, json_kind(data["changed"]), CONTRACT))
        data.setdefault("changed", bool(data["reloaded"]))
        return data

    def ready(self):
        """``(ready, body)`` from /health/ready (503 means not ready, not an error)."""
        status, raw = self._request("GET", READY_PATH, auth=False)
        data = self._json(READY_PATH, status, raw)
        if status != 503:
            self._check(READY_PATH, status, data)
        data = self._object(READY_PATH, data)
        self._field(READY_PATH, data, "checks", dict, "an object of check names and results")
        if status == 503:
            return False, data
        return data.get("status", "ready") == "ready", data

    def system_status(self):
        """The object /admin/system-status answers, its figures checked against the contract."""
        data = self._object(STATUS_PATH, self.call("GET", STATUS_PATH)[1])
        for name in ("uptime_seconds", "active_calls"):
            self._field(STATUS_PATH, data, name, (int, float), "a number")
        self._field(STATUS_PATH, data, "version", str, "a string")
        return data


def _read(e):
    try:
        return e.read()
    except Exception:
        return b""
