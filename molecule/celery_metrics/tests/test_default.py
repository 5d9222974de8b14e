"""The celery_metrics role's result on this machine (systemd scheduler, per-run root), checked
with testinfra, and its unit's command run against the real redis-server of prepare.yml."""

import os
import shutil
import subprocess

ROOT = os.environ["CCOPS_MOLECULE_ROOT"]
PORT = os.environ["CCOPS_MOLECULE_REDIS_PORT"]
PASSWORD = "molecule-Redis-Pa55"
INSTALL = ROOT + "/usr/local/lib/callcenter-ops"
ENV = ROOT + "/etc/callcenter-ops/celery-metrics.env"
UNITS = ROOT + "/etc/systemd/system"
METRICS = ROOT + "/var/lib/node-exporter/callcenter_celery.prom"


def test_collector_and_the_celery_code_installed(host):
    assert host.file(INSTALL + "/callcenter-celery-metrics").mode == 0o644
    for helper in ("ccops_celery_client.py", "ccops_redis_client.py", "ccops_textfile.py", "ccops_params.py"):
        assert host.file(INSTALL + "/" + helper).mode == 0o644


def test_broker_env_file_is_private(host):
    f = host.file(ENV)
    assert f.mode == 0o600
    assert PASSWORD in f.content_string and "127.0.0.1:%s" % PORT in f.content_string


def test_units_pass_systemd_analyze_and_hold_no_secret(host):
    service = host.file(UNITS + "/callcenter-celery-metrics.service").content_string
    assert PASSWORD not in service
    assert "ExecStart=/usr/bin/flock -n " in service and "ProtectSystem=strict" in service
    assert "OnUnitActiveSec=60s" in host.file(UNITS + "/callcenter-celery-metrics.timer").content_string
    assert not host.file(ROOT + "/etc/cron.d/callcenter-celery-metrics").exists
    if shutil.which("systemd-analyze"):
        r = host.run("systemd-analyze verify %s/callcenter-celery-metrics.service %s/callcenter-celery-metrics.timer"
                     % (UNITS, UNITS))
        assert r.rc == 0, r.stderr


def exec_start():
    for line in open(os.path.join(UNITS, "callcenter-celery-metrics.service")):
        if line.startswith("ExecStart="):
            return line[len("ExecStart="):].strip()
    raise AssertionError("no ExecStart")


def test_the_unit_command_writes_a_valid_textfile_with_the_true_queue_length(host):
    # 5 waiting in "backlog": 2 at priority 0, 3 in kombu's priority-9 list
    cli = "redis-cli -p %s --no-auth-warning -a %s " % (PORT, PASSWORD)
    assert host.run(cli + "del backlog").rc == 0
    assert host.run(cli + "rpush backlog m1 m2").rc == 0
    assert host.run(cli + "rpush \"$(printf 'backlog\\006\\0269')\" m3 m4 m5").rc == 0  # kombu: <queue>\x06\x16<step>
    r = host.run(exec_start())
    assert r.rc == 0, r.stdout + r.stderr
    text = host.file(METRICS).content_string
    assert host.file(METRICS).mode == 0o644
    assert 'callcenter_celery_queue_length{queue="backlog"} 5' in text, text
    assert "callcenter_celery_metrics_success 1" in text
    assert "callcenter_celery_workers_online 0" in text
    assert PASSWORD not in text + r.stdout + r.stderr
    if shutil.which("promtool"):
        p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False)
        assert p.returncode == 0, p.stderr


def test_a_wrong_password_makes_the_command_fail_closed(host, tmp_path):
    env = tmp_path / "wrong.env"
    env.write_text("CELERY_BROKER_URL='redis://127.0.0.1:%s/0'\nCELERY_BROKER_PASSWORD='Not-It-1'\n" % PORT)
    r = host.run(exec_start().replace(ENV, str(env)))
    assert r.rc == 1
    assert "rejected the credentials" in r.stderr and "Not-It-1" not in r.stdout + r.stderr
    assert 'callcenter_celery_metrics_success{reason="broker: Redis at 127.0.0.1:%s rejected' % PORT \
        in host.file(METRICS).content_string
