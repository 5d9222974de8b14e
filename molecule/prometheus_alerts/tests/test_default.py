"""The prometheus_alerts role against a real Prometheus: rules loaded after the reload,
runbook links on every alert, Flower's target discovered, promtool unit tests green."""

import json
import os
import shutil
import subprocess
import time
import urllib.request

ROOT = os.environ["CCOPS_MOLECULE_ROOT"]
PROM = "http://127.0.0.1:%s" % os.environ["CCOPS_MOLECULE_PROMETHEUS_PORT"]
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
EXPECTED = {"CeleryWorkerDown", "FlowerDown", "CeleryQueueBacklog", "CircuitBreakerOpen", "HighTransferRate",
            "HighLatency", "OperatorQueueOverflow", "BackupVerificationFailed", "BackupTooOld",
            "CeleryBeatEntryStale", "CeleryMetricsFailed", "CeleryMetricsStale", "FlowerNeverScraped",
            "MetricsTextfileStale", "MetricsTextfileScrapeError", "Watchdog",
            # callcenter-replication.rules.yml
            "RedisReplicaLost", "RedisReplicationLag", "RedisSentinelFailover", "PostgresReplicaLost",
            "PostgresReplicationLag"}


def get(path):
    with urllib.request.urlopen(PROM + path, timeout=5) as r:
        return json.loads(r.read())


def loaded_rules():
    deadline = time.time() + 20
    while True:
        groups = get("/api/v1/rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        if {r["name"] for r in rules} >= EXPECTED or time.time() > deadline:
            return rules
        time.sleep(0.5)


def test_every_alert_is_loaded_by_the_running_prometheus():
    assert {r["name"] for r in loaded_rules()} == EXPECTED


def test_every_alert_has_severity_summary_description_and_runbook():
    for r in loaded_rules():
        # Watchdog (the dead man's switch) is info: it always fires and pages no one by itself.
        assert r["labels"]["severity"] in (("info",) if r["name"] == "Watchdog" else ("critical", "warning")), r["name"]
        assert r["labels"]["team"] == "voice"
        for key in ("summary", "description", "runbook_url"):
            assert r["annotations"].get(key), (r["name"], key)
        assert r["annotations"]["runbook_url"].startswith("https://ops.example/doc/operations/runbooks/")


def test_flower_target_is_discovered_with_its_metrics_path():
    deadline = time.time() + 20
    while True:
        targets = get("/api/v1/targets")["data"]["activeTargets"]
        if targets or time.time() > deadline:
            break
        time.sleep(0.5)
    assert [t["scrapeUrl"] for t in targets] == ["http://127.0.0.1:25555/flower/metrics"]
    assert targets[0]["labels"]["job"] == "flower"


def test_rule_files_pass_promtool_and_its_unit_tests(host, tmp_path):
    for f in os.listdir(ROOT + "/rules"):
        shutil.copy(os.path.join(ROOT, "rules", f), tmp_path / f)
    shutil.copy(os.path.join(REPO, "tests", "promtool", "callcenter_rules_test.yml"), tmp_path)
    assert host.run("promtool check rules %s/*.rules.yml" % tmp_path).rc == 0
    # the extra label team=voice is on every alert here: the unit tests expect the defaults
    r = subprocess.run(["promtool", "check", "rules"] + [str(p) for p in tmp_path.glob("*.rules.yml")],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
