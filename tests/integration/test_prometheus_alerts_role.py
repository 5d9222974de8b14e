"""The prometheus_alerts role: promtool unit tests of every rule, and its refusals.

The role is applied a few times into one rules directory (module-scoped fixture ``site``), each
run checked for several things; the refusals of bad input share one playbook run
(ansible.refusals), and promtool runs every unit-test file in one call."""

import shutil
import socket
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

DEFAULTS = yaml.safe_load((REPO / "roles/prometheus_alerts/defaults/main.yml").read_text())
RULE_FILES = ["callcenter-app.rules.yml", "callcenter-backup.rules.yml", "callcenter-celery.rules.yml",
              "callcenter-replication.rules.yml"]
PROMTOOL_TESTS = ["callcenter_rules_test.yml", "callcenter_replication_test.yml"]
METRICS = dict(circuit_breaker_open="shop_cb_open", calls_total="voice_calls_total",
               calls_transferred_total="voice_transfers_total", response_seconds_bucket="voice_latency_seconds_bucket",
               operator_queue_size="voice_waiting", celery_queue_length="celery_queue_length")


TRIMMED = dict(prometheus_alerts_watchdog=False, prometheus_alerts_replication=False)


def role_vars(root, **variables):
    base = dict(prometheus_alerts_rules_dir=str(root / "rules"),
                prometheus_alerts_file_sd_dir=str(root / "file_sd"),
                prometheus_alerts_reload_method="none",
                # what tests/promtool/callcenter_rules_test.yml expects in runbook_url
                callcenter_runbook_base_url="http://localhost/doc/operations/runbooks")
    base.update(variables)
    return base


def apply(ansible, root, **variables):
    root.mkdir(parents=True, exist_ok=True)
    pb = root / "site.yml"
    pb.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False,
                                   "roles": [{"role": "callcenter.ops.prometheus_alerts",
                                              "vars": role_vars(root, **variables)}]}]))
    return ansible.playbook(pb)


def rules_of(rules_dir):
    return {rule["alert"]: rule for f in rules_dir.iterdir()
            for group in yaml.safe_load(f.read_text())["groups"] for rule in group["rules"]}


@pytest.fixture(scope="module")
def site(ansible, promtool, tmp_path_factory):
    """One rules directory taken through the runs the tests check, in order; what each test
    reads is recorded at the moment it holds (the tests only read it):
      default: the defaults (its files, promtool's unit tests of them, the app rules);
      overridden: operator metric names, two thresholds and latency buckets that hold 2.5;
      trimmed: without the Watchdog and without the replication rules."""
    root = tmp_path_factory.mktemp("prometheus-alerts")
    rules = root / "rules"
    s = {"root": root}
    s["default"] = apply(ansible, root)
    s["default_files"] = sorted(p.name for p in rules.iterdir()) if rules.is_dir() else []
    # promtool's unit tests of the rules as rendered with the defaults: one promtool run for
    # every test file, next to copies of the rendered rules.
    check = root / "promtool"
    check.mkdir()
    for name in s["default_files"]:
        shutil.copy(rules / name, check)
    for name in PROMTOOL_TESTS:
        shutil.copy(REPO / "tests" / "promtool" / name, check)
    s["promtool"] = promtool(["test", "rules"] + PROMTOOL_TESTS, cwd=check)
    s["overridden"] = apply(ansible, root, prometheus_alerts_metrics=METRICS,
                            prometheus_alerts_thresholds={"queue_backlog": 7, "postgres_replication_lag_bytes": 1000},
                            prometheus_alerts_latency_buckets=[0.5, 1, 2.5, "+Inf"])
    s["overridden_app"] = (rules / "callcenter-app.rules.yml").read_text()
    s["overridden_replication"] = (rules / "callcenter-replication.rules.yml").read_text()
    s["overridden_rules"] = rules_of(rules)
    s["overridden_docs"] = {f.name: yaml.safe_load(f.read_text()) for f in rules.iterdir()}
    s["trimmed"] = apply(ansible, root, **TRIMMED)
    s["trimmed_celery"] = (rules / "callcenter-celery.rules.yml").read_text()
    s["trimmed_files"] = sorted(p.name for p in rules.iterdir())
    return s


def test_every_rule_passes_its_promtool_unit_tests(site):
    r = site["default"]
    assert r.rc == 0, r
    assert site["default_files"] == RULE_FILES
    p = site["promtool"]
    assert p.returncode == 0, p.stdout + p.stderr
    # a second run of the defaults changes nothing: molecule/prometheus_alerts' idempotence step


def test_every_alert_has_a_runbook_url_and_the_operators_metric_names(site):
    r = site["overridden"]
    assert r.rc == 0, r
    app = site["overridden_app"]
    for name in ("shop_cb_open", "voice_calls_total", "voice_transfers_total", "voice_latency_seconds_bucket",
                 "voice_waiting"):
        assert name in app
    assert sorted(site["overridden_docs"]) == RULE_FILES
    for doc in site["overridden_docs"].values():
        for group in doc["groups"]:
            for rule in group["rules"]:
                assert rule["annotations"]["runbook_url"].endswith(".html"), rule["alert"]


def test_a_latency_histogram_with_a_bucket_at_the_threshold_is_accepted(site):
    """The refused side (no bucket at 2.5) is test_bad_input_is_refused_before_any_change."""
    r = site["overridden"]   # prometheus_alerts_latency_buckets [0.5, 1, 2.5, +Inf]
    assert r.rc == 0, r


def test_a_rule_promtool_rejects_never_replaces_the_live_file(site, refused):
    """The last case of the refusals run: a threshold that breaks the PromQL, applied to the
    ``site`` directory (its other settings as in its last run)."""
    assert site["trimmed"].rc == 0
    _root, r, messages = refused
    assert r.rc == 0, r   # the case ran in its block: messages[-1] is set when the role stopped
    assert messages[-1], messages   # (the looped template task's own message: "One or more items failed")
    assert "failed to validate" in r.output
    assert r.app_after == r.app_before


def test_one_threshold_overridden_keeps_the_other_defaults(site):
    r = site["overridden"]
    assert r.rc == 0, r  # every file passed `promtool check rules` through validate:
    rules = site["overridden_rules"]
    assert rules["CeleryQueueBacklog"]["expr"].endswith("> 7")
    assert rules["CeleryQueueBacklog"]["for"] == "10m"
    assert rules["CeleryWorkerDown"]["for"] == "5m"
    assert "> 2.5)" in rules["HighLatency"]["expr"] and rules["HighLatency"]["for"] == "5m"
    assert "> 93600" in rules["BackupTooOld"]["expr"]
    assert "callcenter_celery" in rules["MetricsTextfileStale"]["expr"] and "> 300" in rules["MetricsTextfileStale"]["expr"]


def test_without_the_watchdog_every_other_alert_stays(site):
    r = site["trimmed"]
    assert r.rc == 0, r
    celery = site["trimmed_celery"]
    assert "Watchdog" not in celery and "CeleryWorkerDown" in celery


def test_replication_rules_pass_their_promtool_tests_and_follow_the_thresholds(site):
    """RedisReplicaLost, RedisReplicationLag, RedisSentinelFailover, PostgresReplicaLost and
    PostgresReplicationLag (tests/promtool/callcenter_replication_test.yml, in the same promtool
    run as the other rules' tests); one threshold changed keeps the others;
    prometheus_alerts_replication=false removes the file."""
    assert site["default"].rc == 0, site["default"]
    assert "callcenter-replication.rules.yml" in site["default_files"]
    p = site["promtool"]
    assert p.returncode == 0, p.stdout + p.stderr
    assert "callcenter_replication_test.yml" in p.stdout + p.stderr   # promtool ran this file's tests too
    assert site["overridden"].rc == 0, site["overridden"]
    text = site["overridden_replication"]
    assert "> 1000\n" in text and "redis_connected_slave_offset_bytes) > 1048576" in text
    assert site["trimmed"].rc == 0, site["trimmed"]
    assert "callcenter-replication.rules.yml" not in site["trimmed_files"]


# Refusals before any change, one playbook run (ansible.refusals): (variables, what the message says).
def _metrics_with_a_bad_name():
    metrics = dict(DEFAULTS["prometheus_alerts_metrics"])
    metrics["operator_queue_size"] = "operator-queue size"
    return metrics


REFUSED = [
    (dict(prometheus_alerts_metrics=_metrics_with_a_bad_name()),
     ["prometheus_alerts_metrics.operator_queue_size must be a Prometheus metric name"]),
    (dict(prometheus_alerts_latency_buckets=[0.5, 1, 2, "+Inf"]),
     ["HighLatency could never fire", "latency_p95_seconds 2.5"]),
    (dict(prometheus_alerts_thresholds={"queue_backlog": None}),
     ["prometheus_alerts_thresholds.queue_backlog is empty"]),
]


@pytest.fixture(scope="module")
def refused(ansible, tmp_path_factory, site):
    """One playbook run: every case of REFUSED in a fresh directory, then a threshold promtool
    rejects (broken PromQL) in the ``site`` directory. Returns (workdir, run, messages); the run
    keeps the site directory's app rules from before and after it (app_before, app_after)."""
    root = tmp_path_factory.mktemp("prometheus-alerts-refused")
    cases = [role_vars(root / ("case%d" % i), **variables) for i, (variables, _expected) in enumerate(REFUSED)]
    bad = dict(DEFAULTS["prometheus_alerts_thresholds"], latency_p95_seconds="2.5 +")  # broken PromQL
    cases.append(role_vars(site["root"], prometheus_alerts_thresholds=bad, **TRIMMED))
    app = site["root"] / "rules" / "callcenter-app.rules.yml"
    before = app.read_text()
    r, messages = ansible.refusals("callcenter.ops.prometheus_alerts", cases, root)
    r.app_before, r.app_after = before, app.read_text()
    return root, r, messages


@pytest.mark.parametrize("index", range(len(REFUSED)), ids=["bad_metric_name", "latency_buckets_below_threshold", "empty_threshold"])
def test_bad_input_is_refused_before_any_change(refused, index):
    """A metric name Prometheus would not accept; a latency histogram without a bucket at the
    threshold (HighLatency could never fire; with one, the ``site`` fixture applies it); a
    threshold set empty."""
    root, r, messages = refused
    assert r.rc == 0, r
    msg = messages[index]
    for expected in REFUSED[index][1]:
        assert msg and expected in msg, (expected, msg)
        assert expected in r.output
    assert not (root / ("case%d" % index) / "rules").exists()


def test_prometheus_not_reachable_for_reload_says_so(ansible, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = apply(ansible, tmp_path, prometheus_alerts_reload_method="http",
              prometheus_alerts_url="http://127.0.0.1:%d" % port)
    assert r.rc != 0
    assert "did not take the reload" in r.output and "--web.enable-lifecycle" in r.output
    assert (tmp_path / "rules" / "callcenter-celery.rules.yml").exists()  # rules in place, not active
