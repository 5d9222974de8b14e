"""The backup_verify role's result on this machine, checked with testinfra."""

import http.server
import json
import os
import shutil
import subprocess
import threading
import urllib.parse

import pytest

ROOT = os.environ["CCOPS_MOLECULE_ROOT"]
INSTALL = ROOT + "/usr/local/lib/callcenter-ops"
ENV = ROOT + "/etc/callcenter-ops/backup-verify.env"
UNITS = ROOT + "/etc/systemd/system"
METRICS = ROOT + "/var/lib/node-exporter/callcenter_backup.prom"
RULES = ROOT + "/etc/prometheus/rules/callcenter-backup.rules.yml"
TOKEN = "123456:molecule-Secret-Token"
HERE = os.path.dirname(os.path.abspath(__file__))


def test_verifier_and_reader_installed(host):
    assert host.file(INSTALL + "/callcenter-backup-verify").mode == 0o644
    # the reader and what it imports (the backup_verify set of roles/host_files/vars/main.yml)
    for helper in ("ccops_backup.py", "ccops_backup_archive.py", "ccops_textfile.py", "ccops_params.py"):
        assert host.file(INSTALL + "/" + helper).mode == 0o644


def test_secrets_file_is_private(host):
    f = host.file(ENV)
    assert f.mode == 0o600
    assert TOKEN in f.content_string


def test_units_pass_systemd_analyze(host, tmp_path):
    for unit in ("callcenter-backup-verify.service", "callcenter-backup-verify.timer"):
        assert host.file(os.path.join(UNITS, unit)).exists
    service = host.file(os.path.join(UNITS, "callcenter-backup-verify.service")).content_string
    assert TOKEN not in service  # the token lives only in the 0600 file
    assert "ProtectSystem=strict" in service
    # systemd-analyze verify wants a backup unit to exist for the drop-in's OnSuccess=
    work = tmp_path / "units"
    shutil.copytree(UNITS, work)
    r = subprocess.run(["systemd-analyze", "verify", str(work / "callcenter-backup-verify.service"),
                        str(work / "callcenter-backup-verify.timer")], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr


def test_onsuccess_dropin_on_the_backup_unit(host):
    f = host.file(UNITS + "/callcenter-backup.service.d/callcenter-backup-verify.conf")
    assert "OnSuccess=callcenter-backup-verify.service" in f.content_string


def test_rules_pass_promtool(host, tmp_path):
    assert host.run("promtool check rules %s" % RULES).rc == 0
    # promtool reads rule_files relative to the test file: both side by side in this test's tmp dir.
    shutil.copy(RULES, str(tmp_path / "callcenter-backup.rules.yml"))
    shutil.copy(os.path.join(HERE, "backup_rules_test.yml"), str(tmp_path / "backup_rules_test.yml"))
    r = host.run("promtool test rules %s" % (tmp_path / "backup_rules_test.yml"))
    assert r.rc == 0, r.stdout + r.stderr


def exec_start():
    for line in open(os.path.join(UNITS, "callcenter-backup-verify.service")):
        if line.startswith("ExecStart="):
            return line[len("ExecStart="):].strip()
    raise AssertionError("no ExecStart")


def test_the_unit_command_verifies_the_backup_and_writes_metrics(host):
    r = host.run(exec_start())
    assert r.rc == 0, r.stdout + r.stderr
    assert "is valid" in r.stdout
    text = host.file(METRICS).content_string
    assert "callcenter_backup_verify_success{" in text and "} 1" in text.split("verify_success{")[1].split("\n")[0]


class Bot(http.server.BaseHTTPRequestHandler):
    seen = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Bot.seen.append((self.path, urllib.parse.parse_qs(body.decode())))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"ok": True}).encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def telegram():
    srv = http.server.HTTPServer(("127.0.0.1", 0), Bot)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield "http://127.0.0.1:%d" % srv.server_address[1]
    srv.shutdown()


def test_broken_backup_fails_sets_metric_to_0_and_tells_telegram(host, telegram, tmp_path):
    good = ROOT + "/backups/callcenter-2026-11-25.dump.gz"
    data = open(good, "rb").read()
    broken = tmp_path / "callcenter-2026-11-26.dump.gz"
    broken.write_bytes(data[:len(data) // 2])
    cmd = exec_start().replace(ROOT + "/backups", str(tmp_path)).replace("http://127.0.0.1:9", telegram)
    r = host.run(cmd)
    assert r.rc == 1
    assert "truncated after" in r.stderr and "telegram: notified" in r.stderr
    assert TOKEN not in r.stdout + r.stderr
    path, form = Bot.seen[-1]
    assert path == "/bot%s/sendMessage" % TOKEN
    assert form["chat_id"] == ["-1001"] and "Backup verification failed" in form["text"][0]
    assert "_success{" in host.file(METRICS).content_string
    assert "} 0" in host.file(METRICS).content_string.split("verify_success{")[1].split("\n")[0]


def test_telegram_down_is_reported_without_the_token(host, tmp_path):
    (tmp_path / "x.dump.gz").write_bytes(b"")
    cmd = exec_start().replace(ROOT + "/backups", str(tmp_path))
    r = host.run(cmd)
    assert r.rc == 1
    assert "Telegram not reachable" in r.stderr
    assert TOKEN not in r.stdout + r.stderr
