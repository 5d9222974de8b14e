"""The flower role's result on this machine: files, a real Flower, real Redis."""

import os
import shutil
import subprocess

ROOT = os.environ["CCOPS_MOLECULE_ROOT"]
FLOWER_PORT = os.environ["CCOPS_MOLECULE_FLOWER_PORT"]
REDIS_PORT = os.environ["CCOPS_MOLECULE_REDIS_PORT"]
ENV = ROOT + "/etc/flower/flower.env"
UNIT = ROOT + "/etc/systemd/system/flower.service"
PASSWORD = "molecule-Flower-Pass-1"
REDIS_PASSWORD = "molecule-Redis-Pass-1"
URL = "http://127.0.0.1:%s/flower/" % FLOWER_PORT


def test_environment_file_holds_the_secrets_and_is_private(host):
    f = host.file(ENV)
    assert f.mode == 0o600 and f.user == "root"
    assert "FLOWER_BASIC_AUTH='ops:%s'" % PASSWORD in f.content_string
    assert "CELERY_BROKER_URL='redis://:%s@127.0.0.1:%s/0'" % (REDIS_PASSWORD, REDIS_PORT) in f.content_string
    assert "FLOWER_ADDRESS='127.0.0.1'" in f.content_string
    assert "FLOWER_URL_PREFIX='flower'" in f.content_string


def test_unit_has_no_secret_and_passes_systemd_analyze(host, tmp_path):
    unit = host.file(UNIT).content_string
    assert PASSWORD not in unit and REDIS_PASSWORD not in unit
    for setting in ("Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict", "EnvironmentFile=" + ENV):
        assert setting in unit
    shutil.copy(UNIT, tmp_path / "flower.service")
    r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "flower.service")], capture_output=True,
                       text=True, check=False)
    assert r.returncode == 0, r.stderr


def test_flower_pinned_in_its_virtualenv(host):
    r = host.run(ROOT + "/venv/bin/python -c 'import flower; print(flower.__version__)'")
    assert r.rc == 0 and r.stdout.strip() == "2.2.0"


def test_flower_refuses_anonymous_and_admits_the_user(host):
    assert host.run("curl -s -o /dev/null -w '%%{http_code}' %s" % URL).stdout == "401"
    assert host.run("curl -s -o /dev/null -w '%%{http_code}' -u ops:%s %s" % (PASSWORD, URL)).stdout == "200"
    assert host.run("curl -s -o /dev/null -w '%%{http_code}' -u ops:wrong-password-123 %s" % URL).stdout == "401"


def test_flower_talks_to_the_real_broker(host):
    r = host.run("curl -s -u ops:%s %sapi/workers" % (PASSWORD, URL))
    assert r.rc == 0 and r.stdout.strip().startswith("{")


def test_no_secret_on_the_command_line(host):
    pid = open(ROOT + "/flower.pid").read().strip()
    cmdlines = subprocess.run(["ps", "-o", "args=", "--ppid", pid, "-p", pid], capture_output=True, text=True,
                              check=False).stdout
    assert "flower" in cmdlines
    assert PASSWORD not in cmdlines and REDIS_PASSWORD not in cmdlines


def test_runs_as_the_unit_user(host):
    out = subprocess.run(["ps", "-C", "celery", "-o", "user="], capture_output=True, text=True, check=False).stdout
    assert "nobody" in out.split()
    assert os.path.exists(ROOT + "/flower.log")
