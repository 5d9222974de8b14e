"""A Telegram Bot API stand-in on loopback: Telegram's servers are not reachable here.

Records every ``POST /bot<token>/sendMessage`` (JSON or form body, as Alertmanager's client
or backup_verify's ``urllib`` send it) and answers ``{"ok": true, "result": <Message>}`` the
way Telegram does, so the sender sees a success. ``getMe`` is answered too (some clients ask
it first). ``GET /_stub/messages`` returns what was recorded, for tests in another process.

From tests::

    with TelegramStub() as tg:           # a free port on 127.0.0.1
        ...api_url = tg.url...
        msg = tg.wait_for(lambda m: "CeleryWorkerDown" in m["text"], timeout=10)

From the shell (the demo, the molecule scenario)::

    python tests/telegram_stub.py PORT [--port-file FILE] [--log FILE.jsonl]

PORT 0 picks a free port; ``--port-file`` receives the one taken. ``--log`` appends each
message as one JSON line, flushed, so an operator can ``tail -f`` it.
"""

import argparse
import http.server
import json
import os
import re
import sys
import threading
import time
import urllib.parse

PATH_RE = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>[A-Za-z]+)$")
# Telegram's HTML parse mode: these tags only; any other "<", ">" or a bare "&" makes it refuse the
# whole message ("can't parse entities"), so a template that forgets to escape fails here too.
HTML_TAG_RE = re.compile(r"</?(b|strong|i|em|u|ins|s|strike|del|a|code|pre|tg-spoiler|span|blockquote)(\s[^<>]*)?>")
HTML_ENTITY_RE = re.compile(r"&(#\d+|#x[0-9a-fA-F]+|lt|gt|amp|quot);")


def html_problem(text):
    """Why Telegram would refuse ``text`` in HTML parse mode, or None."""
    bare = HTML_ENTITY_RE.sub("", HTML_TAG_RE.sub("", text))
    for ch in "<>&":
        if ch in bare:
            return "Bad Request: can't parse entities: unexpected %r" % ch
    return None


class TelegramStub:
    """The stand-in server. ``messages`` holds one dict per sendMessage call:
    token, chat_id, text, parse_mode, disable_notification, content_type, time, raw (all fields)."""

    def __init__(self, host="127.0.0.1", port=0, log_file=None):
        self.messages = []
        self.calls = []            # (method, token) of every Bot API call, sendMessage or not
        self.rejected = []         # sendMessage bodies refused as Telegram would (bad HTML)
        self.status = 200          # set to e.g. 500 to play a failing Telegram
        self.log_file = log_file
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body):
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self):
                if self.path == "/_stub/messages":
                    with stub._lock:
                        self._send(200, list(stub.messages))
                    return
                self._dispatch({})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                try:
                    if ctype == "application/json":
                        fields = json.loads(body or b"{}")
                    else:  # application/x-www-form-urlencoded (urllib, curl -d)
                        fields = {k: v[-1] for k, v in urllib.parse.parse_qs(body.decode(), keep_blank_values=True).items()}
                except ValueError:
                    self._send(400, {"ok": False, "error_code": 400, "description": "Bad Request: can't parse body"})
                    return
                self._dispatch(fields, ctype)

            def _dispatch(self, fields, ctype=""):
                m = PATH_RE.match(urllib.parse.urlsplit(self.path).path)
                if not m:
                    self._send(404, {"ok": False, "error_code": 404, "description": "Not Found"})
                    return
                token, method = m.group("token"), m.group("method")
                with stub._lock:
                    stub.calls.append((method, token))
                if stub.status != 200:
                    self._send(stub.status, {"ok": False, "error_code": stub.status,
                                             "description": "Internal Server Error (stub)"})
                    return
                if method == "getMe":
                    self._send(200, {"ok": True, "result": {"id": 42, "is_bot": True, "first_name": "stub",
                                                            "username": "callcenter_stub_bot"}})
                elif method == "sendMessage":
                    if not fields.get("chat_id") or not fields.get("text"):
                        self._send(400, {"ok": False, "error_code": 400,
                                         "description": "Bad Request: chat_id and text are required"})
                        return
                    problem = html_problem(str(fields["text"])) if fields.get("parse_mode") == "HTML" else None
                    if problem:
                        with stub._lock:
                            stub.rejected.append(fields)
                        self._send(400, {"ok": False, "error_code": 400, "description": problem})
                        return
                    self._send(200, {"ok": True, "result": stub._record(token, fields, ctype)})
                else:
                    self._send(404, {"ok": False, "error_code": 404, "description": "Not Found: method %s" % method})

        self.server = http.server.ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.host, self.port = self.server.server_address[:2]
        self.url = "http://%s:%d" % (self.host, self.port)
        self._thread = None

    def _record(self, token, fields, ctype):
        now = time.time()
        chat = fields.get("chat_id")
        with self._cond:
            entry = {"token": token, "chat_id": str(chat), "text": str(fields.get("text", "")),
                     "parse_mode": fields.get("parse_mode") or "",
                     "disable_notification": str(fields.get("disable_notification", "")).lower() == "true",
                     "content_type": ctype, "time": now, "raw": fields}
            self.messages.append(entry)
            message_id = len(self.messages)
            if self.log_file:
                with open(self.log_file, "a", encoding="utf-8") as f:
                    f.write(json.dumps({k: v for k, v in entry.items() if k != "token"}) + "\n")
            self._cond.notify_all()
        # A Telegram Message object, as much of it as clients read.
        try:
            chat_id = int(chat)
        except (TypeError, ValueError):
            chat_id = chat
        return {"message_id": message_id, "date": int(now), "text": entry["text"],
                "chat": {"id": chat_id, "type": "group" if isinstance(chat_id, int) and chat_id < 0 else "private"},
                "from": {"id": 42, "is_bot": True, "first_name": "stub", "username": "callcenter_stub_bot"}}

    def start(self):
        self._thread = threading.Thread(target=self.server.serve_forever, name="telegram-stub", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def wait_for(self, predicate, timeout):
        """The first recorded message for which predicate(message) is true, waiting up to
        timeout seconds; raises TimeoutError naming what did arrive."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in self.messages:
                    if predicate(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no matching Telegram message after %ss; received: %s"
                                       % (timeout, [m["text"] for m in self.messages]))
                self._cond.wait(left)


def main(argv=None):
    p = argparse.ArgumentParser(description="Telegram Bot API stand-in on loopback (records sendMessage)")
    p.add_argument("port", type=int, help="port on 127.0.0.1 (0: any free port)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port-file", help="write the port taken to this file once listening")
    p.add_argument("--log", help="append each message as a JSON line to this file")
    args = p.parse_args(argv)
    stub = TelegramStub(args.host, args.port, log_file=args.log)
    if args.port_file:
        with open(args.port_file + ".tmp", "w", encoding="utf-8") as f:
            f.write("%d\n" % stub.port)
        os.replace(args.port_file + ".tmp", args.port_file)
    print("Telegram stub on %s (POST /bot<token>/sendMessage; GET /_stub/messages)" % stub.url, flush=True)
    try:
        stub.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stub.server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
