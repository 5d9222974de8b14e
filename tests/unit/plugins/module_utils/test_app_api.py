import http.server
import json
import threading

import pytest

from ansible_collections.callcenter.ops.plugins.module_utils import app_api


@pytest.fixture
def app_answering():
    servers = []

    def make(status, body):
        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
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
