"""The prometheus_alerts role: promtool unit tests of every rule, and its refusals."""

import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(not PROMTOOL, reason="promtool (Debian package prometheus) not installed")


def apply(ansible, tmp_path, **variables):
    base = dict(prometheus_alerts_rules_dir=str(tmp_path / "rules"),
                prometheus_alerts_file_sd_dir=str(tmp_path / "file_sd"),
                prometheus_alerts_reload_method="none",
                # what tests/promtool/callcenter_rules_test.yml expects in runbook_url
                callcenter_runbook_base_url="http://localhost/doc/operations/runbooks")
    base.update(variables)
    pb = tmp_path / "site.yml"
    pb.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False,
                                   "roles": [{"role": "callcenter.ops.prometheus_alerts", "vars": base}]}]))
    return ansible.playbook(pb)


def test_every_rule_passes_its_promtool_unit_tests(ansible, tmp_path):
    r = apply(ansible, tmp_path)
    assert r.rc == 0, r
    rules = tmp_path / "rules"
    assert sorted(p.name for p in rules.iterdir()) == [
        "callcenter-app.rules.yml", "callcenter-backup.rules.yml", "callcenter-celery.rules.yml",
        "callcenter-replication.rules.yml"]
    shutil.copy(REPO / "tests" / "promtool" / "callcenter_rules_test.yml", rules)
    p = subprocess.run([PROMTOOL, "test", "rules", "callcenter_rules_test.yml"], cwd=rules, capture_output=True,
                       text=True, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    again = apply(ansible, tmp_path)
    assert again.rc == 0 and "changed=0" in again.output, again


def test_every_alert_has_a_runbook_url_and_the_operators_metric_names(ansible, tmp_path):
    r = apply(ansible, tmp_path, prometheus_alerts_metrics=dict(
        circuit_breaker_open="shop_cb_open", calls_total="voice_calls_total",
        calls_transferred_total="voice_transfers_total", response_seconds_bucket="voice_latency_seconds_bucket",
        operator_queue_size="voice_waiting", celery_queue_length="celery_queue_length"))
    assert r.rc == 0, r
    app = (tmp_path / "rules" / "callcenter-app.rules.yml").read_text()
    for name in ("shop_cb_open", "voice_calls_total", "voice_transfers_total", "voice_latency_seconds_bucket",
                 "voice_waiting"):
        assert name in app
    for f in (tmp_path / "rules").iterdir():
        for group in yaml.safe_load(f.read_text())["groups"]:
            for rule in group["rules"]:
                assert rule["annotations"]["runbook_url"].endswith(".html"), rule["alert"]


def test_a_rule_promtool_rejects_never_replaces_the_live_file(ansible, tmp_path):
    assert apply(ansible, tmp_path).rc == 0
    live = (tmp_path / "rules" / "callcenter-app.rules.yml").read_text()
    bad = dict(yaml.safe_load((REPO / "roles/prometheus_alerts/defaults/main.yml").read_text())
               ["prometheus_alerts_thresholds"], latency_p95_seconds="2.5 +")  # broken PromQL
    r = apply(ansible, tmp_path, prometheus_alerts_thresholds=bad)
    assert r.rc != 0
    assert "failed to validate" in r.output
    assert (tmp_path / "rules" / "callcenter-app.rules.yml").read_text() == live


def test_bad_metric_name_is_refused_before_any_change(ansible, tmp_path):
    metrics = yaml.safe_load((REPO / "roles/prometheus_alerts/defaults/main.yml").read_text())["prometheus_alerts_metrics"]
    metrics["operator_queue_size"] = "operator-queue size"
    r = apply(ansible, tmp_path, prometheus_alerts_metrics=metrics)
    assert r.rc != 0
    assert "prometheus_alerts_metrics.operator_queue_size must be a Prometheus metric name" in r.output
    assert not (tmp_path / "rules").exists()


def test_prometheus_not_reachable_for_reload_says_so(ansible, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = apply(ansible, tmp_path, prometheus_alerts_reload_method="http",
              prometheus_alerts_url="http://127.0.0.1:%d" % port)
    assert r.rc != 0
    assert "did not take the reload" in r.output and "--web.enable-lifecycle" in r.output
    assert (tmp_path / "rules" / "callcenter-celery.rules.yml").exists()  # rules in place, not active


def test_one_threshold_overridden_keeps_the_other_defaults(ansible, tmp_path):
    r = apply(ansible, tmp_path, prometheus_alerts_thresholds={"queue_backlog": 7})
    assert r.rc == 0, r  # every file passed `promtool check rules` through validate:
    rules = {rule["alert"]: rule for f in (tmp_path / "rules").iterdir()
             for group in yaml.safe_load(f.read_text())["groups"] for rule in group["rules"]}
    assert rules["CeleryQueueBacklog"]["expr"].endswith("> 7")
    assert rules["CeleryQueueBacklog"]["for"] == "10m"
    assert rules["CeleryWorkerDown"]["for"] == "5m"
    assert "> 2.5)" in rules["HighLatency"]["expr"] and rules["HighLatency"]["for"] == "5m"
    assert "> 93600" in rules["BackupTooOld"]["expr"]
    assert "callcenter_celery" in rules["MetricsTextfileStale"]["expr"] and "> 300" in rules["MetricsTextfileStale"]["expr"]


def test_a_latency_histogram_without_a_bucket_at_the_threshold_is_refused_before_any_change(ansible, tmp_path):
    r = apply(ansible, tmp_path, prometheus_alerts_latency_buckets=[0.5, 1, 2, "+Inf"])
    assert r.rc != 0
    assert "HighLatency could never fire" in r.output and "latency_p95_seconds 2.5" in r.output, r
    assert not (tmp_path / "rules").exists()
    ok = apply(ansible, tmp_path, prometheus_alerts_latency_buckets=[0.5, 1, 2.5, "+Inf"])
    assert ok.rc == 0, ok


def test_without_the_watchdog_every_other_alert_stays(ansible, tmp_path):
    r = apply(ansible, tmp_path, prometheus_alerts_watchdog=False)
    assert r.rc == 0, r
    celery = (tmp_path / "rules" / "callcenter-celery.rules.yml").read_text()
    assert "Watchdog" not in celery and "CeleryWorkerDown" in celery


def test_replication_rules_pass_their_promtool_tests_and_follow_the_thresholds(ansible, tmp_path):
    """RedisReplicaLost, RedisReplicationLag, RedisSentinelFailover, PostgresReplicaLost and
    PostgresReplicationLag (tests/promtool/callcenter_replication_test.yml); one threshold changed
    keeps the others; prometheus_alerts_replication=false removes the file."""
    r = apply(ansible, tmp_path)
    assert r.rc == 0, r
    rules = tmp_path / "rules"
    shutil.copy(REPO / "tests" / "promtool" / "callcenter_replication_test.yml", rules)
    p = subprocess.run([PROMTOOL, "test", "rules", "callcenter_replication_test.yml"], cwd=rules, capture_output=True,
                       text=True, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    r = apply(ansible, tmp_path, prometheus_alerts_thresholds={"postgres_replication_lag_bytes": 1000})
    assert r.rc == 0, r
    text = (rules / "callcenter-replication.rules.yml").read_text()
    assert "> 1000\n" in text and "redis_connected_slave_offset_bytes) > 1048576" in text
    r = apply(ansible, tmp_path, prometheus_alerts_replication=False)
    assert r.rc == 0, r
    assert not (rules / "callcenter-replication.rules.yml").exists()
