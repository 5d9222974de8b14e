# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The call-center application's HTTP contract (docs/app-http-contract.md), as one client:
config reload, readiness, system status. Errors are sentences naming the URL and the fix;
the token never appears in them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import socket
import ssl
import time

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.urls import Request, make_context

try:
    from ansible.module_utils.urls import SSLValidationError
except ImportError:  # pragma: no cover
    SSLValidationError = ssl.SSLError

RELOAD_PATH = "/admin/config/reload"
READY_PATH = "/health/ready"
STATUS_PATH = "/admin/system-status"


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


class AppClient:
    def __init__(self, base_url, token=None, timeout=5.0, validate_certs=True, ca_path=None):
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise AppError("app_url must be an http:// or https:// URL (got %r)" % (base_url,))
        self.base = base_url.rstrip("/")
        self.token = token
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
        if auth and self.token:
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
            raise AppError("%s did not answer within %ss (application overloaded or hung?)" % (url, self.timeout),
                           retryable=False)
        except URLError as e:
            reason = getattr(e, "reason", e)
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise AppError("%s did not answer within %ss (application overloaded or hung?)" % (url, self.timeout))
            if isinstance(reason, ssl.SSLError):
                raise AppError("%s: TLS failed (%s); give ca_path, or validate_certs=false for a test system"
                               % (url, self._clean(reason)))
            text = self._clean(reason)
            if "refused" in text.lower():
                raise AppError("%s refused the connection (is the application running?)" % url, retryable=True)
            raise AppError("%s could not be reached (%s)" % (url, text), retryable=True)
        except (ssl.SSLError, ConnectionError, OSError) as e:
            raise AppError("%s could not be reached (%s)" % (url, self._clean(e)), retryable=True)
        return status, raw

    def _clean(self, e):
        text = str(e)
        if self.token:
            text = text.replace(self.token, "***")
        return text

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

    def http_status(self, path):
        """Just the HTTP status of ``GET path`` without auth (reachability, e.g. of Flower)."""
        return self._request("GET", path, auth=False)[0]

    def reload(self, sections=None, retries=2):
        """POST the reload; returns the application's JSON (reloaded, restart_required, changed)."""
        body = {"sections": sections} if sections else None
        _status, data = self.call("POST", RELOAD_PATH, body=body, retries=retries)
        if not isinstance(data, dict) or "reloaded" not in data:
            raise AppError("%s%s answered without a 'reloaded' list: not the expected contract" % (self.base, RELOAD_PATH))
        data.setdefault("restart_required", [])
        data.setdefault("unchanged", [])
        data.setdefault("changed", bool(data["reloaded"]))
        return data

    def ready(self):
        """``(ready, body)`` from /health/ready (503 means not ready, not an error)."""
        status, raw = self._request("GET", READY_PATH, auth=False)
        data = self._json(READY_PATH, status, raw)
        if status == 503:
            return False, data
        self._check(READY_PATH, status, data)
        return data.get("status", "ready") == "ready", data

    def system_status(self):
        return self.call("GET", STATUS_PATH)[1]


def _read(e):
    try:
        return e.read()
    except Exception:
        return b""
