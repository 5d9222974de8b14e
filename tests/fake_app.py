"""A small HTTP server that follows the application's contract (docs/app-http-contract.md).
The call-center application is the one part of the platform not in this repository; this is
the only stand-in of the test suite. Behaviour is switched per test through attributes."""

import datetime
import http.server
import json
import ssl
import threading
import time

ADMIN_TOKEN = "admin-Token-0123456789"
USER_TOKEN = "user-Token-0123456789"
RELOADABLE = ["Quality", "FeatureFlag", "Logging"]
RESTART_ONLY = ["Database", "Redis", "AudioSocket"]


class FakeApp:
    def __init__(self, tls_cert=None, tls_key=None):
        self.ready = True
        self.ready_after_reload = True
        self.delay = 0.0            # seconds before every answer (a slow app)
        self.non_json = False       # answer HTML like a proxy error page
        # Sections whose settings changed since the application loaded them: a reload applies
        # the reloadable ones (and clears them); restart-only ones stay pending until a restart.
        self.pending = set(RELOADABLE) | {"Database"}
        self.reloads = []           # (sections, token) of each reload received
        self.version = "1.8.2"
        self.active_calls = 3
        # what the runbooks ask about (docs/app-http-contract.md, /health/store-api, /health/operator-queue)
        self.breaker_open = False
        self.operator_waiting = 1
        self.operators_logged_in = 4
        self.operators_available = 1
        # counters behind /metrics: every scrape adds 10 calls; slow_answers puts them above 2.5 s,
        # transfer_all transfers every one (HighLatency / HighTransferRate fire from these)
        self.slow_answers = False
        self.transfer_all = False
        self.calls = self.transferred = 0
        self.answers = {le: 0 for le in ("0.5", "1", "2.5", "5", "+Inf")}
        self.started = time.time() - 90000
        app = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body):
                if app.delay:
                    time.sleep(app.delay)
                if app.non_json:
                    raw, ctype = b"<html><body>502 Bad Gateway</body></html>", "text/html"
                else:
                    raw, ctype = json.dumps(body).encode(), "application/json"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _send_text(self, text):
                raw = text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _auth(self):
                header = self.headers.get("Authorization", "")
                token = header[7:] if header.startswith("Bearer ") else None
                if token == ADMIN_TOKEN:
                    return token
                self._send(403 if token == USER_TOKEN else 401,
                           {"error": "forbidden" if token == USER_TOKEN else "unauthorized"})
                return None

            def do_GET(self):
                path, query = (self.path.split("?", 1) + [""])[:2]
                params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
                if path == "/health/store-api":
                    return self._send(503 if app.breaker_open else 200, {
                        "circuit_breaker": "open" if app.breaker_open else "closed",
                        "consecutive_failures": 12 if app.breaker_open else 0,
                        "opened_at": "2026-11-26T03:02:00Z" if app.breaker_open else None,
                        "reset_timeout_seconds": 60,
                        "last_error": "timeout after 5.0 s" if app.breaker_open else None})
                if path == "/health/operator-queue":
                    try:
                        limit = int(params["max_waiting"]) if "max_waiting" in params else None
                    except ValueError:
                        return self._send(400, {"error": "max_waiting must be an integer"})
                    over = limit is not None and app.operator_waiting > limit
                    return self._send(503 if over else 200, {
                        "waiting": app.operator_waiting, "longest_wait_seconds": 20 * app.operator_waiting,
                        "operators_logged_in": app.operators_logged_in,
                        "operators_available": app.operators_available, "max_waiting": limit})
                if path == "/metrics":
                    return self._send_text(app.metrics())
                if self.path == "/health/ready":
                    ok = app.ready
                    self._send(200 if ok else 503, {"status": "ready" if ok else "not_ready",
                                                    "checks": {"database": "ok" if ok else "failing", "redis": "ok"}})
                elif self.path == "/admin/system-status":
                    if self._auth():
                        self._send(200, {"version": app.version, "uptime_seconds": int(time.time() - app.started),
                                         "active_calls": app.active_calls,
                                         "started_at": datetime.datetime.fromtimestamp(
                                             app.started, datetime.timezone.utc).isoformat()})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self):
                if self.path != "/admin/config/reload":
                    return self._send(404, {"error": "not found"})
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                token = self._auth()
                if not token:
                    return None
                sections = body.get("sections") or RELOADABLE
                unknown = [s for s in sections if s not in RELOADABLE + RESTART_ONLY]
                if unknown:
                    return self._send(400, {"error": "unknown section: %s" % ", ".join(unknown)})
                app.reloads.append((sections, token))
                if not app.ready_after_reload:
                    app.ready = False
                asked = body.get("sections")
                reloaded = [s for s in sections if s in RELOADABLE and s in app.pending]
                unchanged = [s for s in sections if s not in app.pending]
                # Without a list, every pending restart-only section is reported; with one, those asked.
                restart = [s for s in (asked or RESTART_ONLY) if s in RESTART_ONLY and s in app.pending]
                app.pending -= set(reloaded)
                return self._send(200, {"reloaded": reloaded, "unchanged": unchanged,
                                        "restart_required": restart, "changed": bool(reloaded),
                                        "audit_id": "audit-%d" % len(app.reloads)})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.scheme = "http"
        if tls_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls_cert, tls_key)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.port = self.server.server_address[1]
        self.url = "%s://127.0.0.1:%d" % (self.scheme, self.port)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def metrics(self):
        """The metrics the alert rules and runbooks read, in Prometheus' text format."""
        # a broken minute outweighs the healthy past at once: 1000 calls a scrape
        step = 1000 if (self.transfer_all or self.slow_answers) else 10
        self.calls += step
        self.transferred += step if self.transfer_all else 1
        for le in self.answers:
            if le in ("5", "+Inf") or not self.slow_answers:
                self.answers[le] += step
        lines = ["# TYPE callcenter_calls_total counter", "callcenter_calls_total %d" % self.calls,
                 "# TYPE callcenter_calls_transferred_total counter",
                 "callcenter_calls_transferred_total %d" % self.transferred,
                 "# TYPE callcenter_response_duration_seconds histogram"]
        lines += ['callcenter_response_duration_seconds_bucket{le="%s"} %d' % (le, n) for le, n in self.answers.items()]
        lines += ["callcenter_response_duration_seconds_sum %d" % self.calls,
                  "callcenter_response_duration_seconds_count %d" % self.answers["+Inf"],
                  "# TYPE callcenter_store_api_circuit_breaker_open gauge",
                  "callcenter_store_api_circuit_breaker_open %d" % int(self.breaker_open),
                  "# TYPE callcenter_operator_queue_size gauge",
                  "callcenter_operator_queue_size %d" % self.operator_waiting,
                  "# TYPE callcenter_operators_available gauge",
                  "callcenter_operators_available %d" % self.operators_available,
                  "# TYPE callcenter_stage_duration_seconds histogram"]
        for stage in ("stt", "llm", "tts"):
            for le, count in (("0.25", 10), ("0.5", 40), ("1", 48), ("2.5", 50), ("+Inf", 50)):
                lines.append('callcenter_stage_duration_seconds_bucket{stage="%s",le="%s"} %d' % (stage, le, count))
            lines.append('callcenter_stage_duration_seconds_sum{stage="%s"} 20' % stage)
            lines.append('callcenter_stage_duration_seconds_count{stage="%s"} 50' % stage)
        return "\n".join(lines) + "\n"

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def self_signed(directory):
    """A throw-away certificate for 127.0.0.1 (cryptography comes with ansible-core)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "callcenter-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


if __name__ == "__main__":  # the demo stack runs the stand-in as a process: fake_app.py PORT
    import sys
    server = FakeApp()
    server.server.server_close()
    server.server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])),
                                                    server.server.RequestHandlerClass)
    print("application stand-in on http://127.0.0.1:%s (admin token %s)" % (sys.argv[1], ADMIN_TOKEN), flush=True)
    server.server.serve_forever()
