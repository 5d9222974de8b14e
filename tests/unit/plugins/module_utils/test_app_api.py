import http.server
import json
import threading

import pytest

from ansible_collections.callcenter.ops.plugins.module_utils import app_api, status_probes


@pytest.fixture
def app_answering():
    """``make(status, body)``: an AppClient of a server giving that answer to every request;
    ``make(routes={path: (status, body)})``: one answer per path (404 elsewhere)."""
    servers = []

    def make(status=200, body=None, routes=None):
        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                code, answer = routes.get(self.path, (404, {"error": "not found"})) if routes else (status, body)
                raw = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=httpd.serve_forever, kwargs=dict(poll_interval=0.05), daemon=True).start()
        servers.append(httpd)
        return app_api.AppClient("http://127.0.0.1:%d" % httpd.server_address[1], "tok", timeout=2)
    yield make
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.mark.parametrize("body,what", [
    (["Quality"], "a JSON list where the contract (docs/app-http-contract.md) says an object"),
    ({"reloaded": "Quality"}, "a JSON string for 'reloaded'"),
    ({"reloaded": ["Quality"], "restart_required": {"Database": 1}}, "a JSON object for 'restart_required'"),
    ({"reloaded": [1, 2]}, "'reloaded' list that is not all section names"),
    ({"reloaded": [], "changed": "yes"}, "for 'changed'"),
])
def test_reload_answer_breaking_the_contract_is_a_sentence(app_answering, body, what):
    client = app_answering(200, body)
    with pytest.raises(app_api.AppError) as e:
        client.reload()
    assert what in str(e.value) and "/admin/config/reload" in str(e.value)


def test_reload_answer_following_the_contract_is_returned(app_answering):
    data = app_answering(200, {"reloaded": ["Quality"], "restart_required": ["Database"]}).reload()
    assert data["reloaded"] == ["Quality"] and data["unchanged"] == [] and data["changed"] is True


def test_flower_basic_auth_is_sent_and_its_password_never_in_messages():
    client = app_api.AppClient("http://ops:Pw-In-Url-9@127.0.0.1:9/", basic_auth=("ops", "Pw-Given-8"), timeout=1,
                               option="flower_url", service="Flower")
    assert client.base == "http://127.0.0.1:9"
    with pytest.raises(app_api.AppError) as e:
        client.http_status("/", auth=True)
    assert "refused the connection (is Flower running?)" in str(e.value)
    assert "Pw-" not in str(e.value)
    with pytest.raises(app_api.AppError) as e:
        app_api.AppClient("ftp://ops:Pw-In-Url-9@h/", option="flower_url")
    assert str(e.value).startswith("flower_url must be") and "Pw-In-Url-9" not in str(e.value)


# --------------------------------------------------------------------------- system_status's app component
def probe(client):
    params = dict(app_url=client.base, app_token="tok", validate_certs=True, ca_path=None)
    return status_probes.probe_app(params, 2)


@pytest.mark.parametrize("code, body", [(200, ["ready"]), (503, ["not_ready"]), (200, "ready"), (200, 42)])
def test_ready_answering_json_that_is_not_an_object_is_down_with_a_sentence(app_answering, code, body):
    client = app_answering(routes={"/health/ready": (code, body)})
    c = probe(client)
    assert c["status"] == "down", c
    assert client.base + "/health/ready answered a JSON" in c["reason"], c
    assert "where the contract (docs/app-http-contract.md) says an object" in c["reason"], c


@pytest.mark.parametrize("body", [["1.8.2"], {"version": "1.8.2", "uptime_seconds": "a day", "active_calls": 3},
                                  {"version": 1.8, "uptime_seconds": 5, "active_calls": 3}])
def test_status_endpoint_breaking_the_contract_is_degraded_with_a_sentence(app_answering, body):
    client = app_answering(routes={"/health/ready": (200, {"status": "ready", "checks": {}}),
                                   "/admin/system-status": (200, body)})
    c = probe(client)
    assert c["status"] == "degraded" and c["ready"] is True, c
    assert c["reason"].startswith("ready, but the status endpoint failed: ") and "contract (docs/app-http-contract.md)" in c["reason"], c


def test_not_ready_is_down_with_the_checks_that_failed(app_answering):
    checks = {"database": "ok", "telephony": "sip trunk unreachable"}
    c = probe(app_answering(routes={"/health/ready": (503, {"status": "not_ready", "checks": checks})}))
    assert c["status"] == "down" and c["ready"] is False and c["checks"] == checks, c
    assert "sip trunk unreachable" in c["reason"], c


def test_ready_with_figures_is_ok_and_returns_them(app_answering):
    c = probe(app_answering(routes={"/health/ready": (200, {"status": "ready", "checks": {"database": "ok"}}),
                                    "/admin/system-status": (200, {"version": "1.8.2", "uptime_seconds": 86400,
                                                                   "active_calls": 12})}))
    assert c["status"] == "ok" and c["reason"] == "", c
    assert (c["version"], c["uptime_seconds"], c["active_calls"]) == ("1.8.2", 86400, 12), c
