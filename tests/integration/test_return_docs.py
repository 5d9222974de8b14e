"""Docs that cannot drift: each module is run through ``ansible`` against the real servers the
other tests use (a successful run, a failed one, check mode), and the keys it returns are
compared with its RETURN block.

- every key a run returns is documented (one level into documented ``contains`` too);
- every key documented ``returned: always`` is there in every run that got past its
  parameter checks.
Ansible's own keys (changed, failed, msg, invocation, warnings, ...) are not the module's API."""

import ast
from pathlib import Path

import pytest
import yaml

from fake_app import ADMIN_TOKEN
from harness import free_port

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_KEYS = {"changed", "failed", "msg", "invocation", "warnings", "deprecations", "exception", "skipped",
                "skip_reason", "diff", "ansible_facts"}


def return_block(module):
    tree = ast.parse((REPO / "plugins" / "modules" / ("%s.py" % module)).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "RETURN":
            return yaml.safe_load(node.value.value) or {}
    raise AssertionError("%s has no RETURN block" % module)


def undocumented(result, doc):
    """Keys of ``result`` (one level into documented ``contains``) missing from ``doc``."""
    missing = []
    for key, value in result.items():
        if key in ANSIBLE_KEYS or key.startswith("_ansible"):
            continue
        if key not in doc:
            missing.append(key)
            continue
        contains = doc[key].get("contains")
        if not contains:
            continue
        for item in contained_items(value, contains):
            if isinstance(item, dict):
                missing += ["%s.%s" % (key, k) for k in item if k not in contains]
    return sorted(set(missing))


def contained_items(value, contains):
    """The dicts whose keys ``contains`` documents: a list's elements, a dict itself, or the
    values of a dict keyed by name (e.g. one entry per component) when none of its keys is
    documented."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and value and not set(value) & set(contains):
        return list(value.values())
    return [value]


def always_missing(result, doc):
    return sorted(k for k, v in doc.items() if str(v.get("returned", "")).strip() == "always" and k not in result
                  and k not in ANSIBLE_KEYS)


def check_runs(module, runs):
    """``runs``: [(label, Result, got_past_parameter_checks)]. Fails with every mismatch at once."""
    doc = return_block(module)
    problems = []
    for label, r, complete in runs:
        assert r.result, "%s (%s) gave no JSON: %r" % (module, label, r)
        extra = undocumented(r.result, doc)
        if extra:
            problems.append("%s: returned but not in RETURN: %s" % (label, ", ".join(extra)))
        if complete:
            lacking = always_missing(r.result, doc)
            if lacking:
                problems.append("%s: RETURN says always, not returned: %s" % (label, ", ".join(lacking)))
    assert not problems, "%s RETURN does not match what it returns:\n  %s" % (module, "\n  ".join(problems))


def test_unit_check_finds_undocumented_and_missing_keys():
    doc = {"a": {"returned": "always"}, "d": {"returned": "always", "type": "dict", "contains": {"x": {}}},
           "l": {"returned": "success", "type": "list", "contains": {"n": {}}}}
    assert undocumented(dict(a=1, b=2, d={"x": 1, "y": 2}, l=[{"n": 1, "m": 2}], changed=True), doc) == \
        ["b", "d.y", "l.m"]
    assert always_missing(dict(a=1, changed=False), doc) == ["d"]


def test_backup_verify_returns_what_it_documents(ansible, dumps, tmp_path):
    good = dumps / "callcenter-2026-11-25.dump.gz"
    cut = tmp_path / "cut.dump.gz"
    cut.write_bytes(good.read_bytes()[:5000])
    sidecar = tmp_path / "good.sha256"
    sidecar.write_text("%s  %s\n" % ("0" * 64, good.name))
    runs = [
        ("valid, full", ansible.module("backup_verify", dict(path=str(good))), True),
        ("valid, toc mode, metrics in check mode", ansible.module("backup_verify", dict(
            path=str(good), mode="toc", metrics_file=str(tmp_path / "m.prom")), check=True), True),
        ("valid, metrics written, checksum file", ansible.module("backup_verify", dict(
            path=str(good), metrics_file=str(tmp_path / "m.prom"), checksum_file=str(sidecar),
            fail_on_invalid=False)), True),
        ("uncompressed dump", ansible.module("backup_verify", dict(path=str(dumps / "raw.dump"))), True),
        ("truncated", ansible.module("backup_verify", dict(path=str(cut))), True),
        ("no file", ansible.module("backup_verify", dict(path=str(tmp_path / "none.dump.gz"))), True),
        ("bad max_age", ansible.module("backup_verify", dict(path=str(good), max_age="soon")), False),
    ]
    check_runs("backup_verify", runs)


def test_config_reload_returns_what_it_documents(ansible, fake_app, tmp_path):
    app = fake_app()
    env = {"CALLCENTER_ADMIN_TOKEN": ADMIN_TOKEN}
    down = "http://127.0.0.1:%d" % free_port()
    pidfile = tmp_path / "app.pid"
    pidfile.write_text("999999")
    runs = [
        ("reload", ansible.module("config_reload", dict(app_url=app.url, timeout=2), env=env), True),
        ("check mode", ansible.module("config_reload", dict(app_url=app.url, timeout=2), check=True, env=env), True),
        ("wrong token", ansible.module("config_reload", dict(app_url=app.url, timeout=2),
                                       env={"CALLCENTER_ADMIN_TOKEN": "wrong"}), True),
        ("application down", ansible.module("config_reload", dict(app_url=down, timeout=1, retries=0), env=env), True),
        ("stale pidfile", ansible.module("config_reload", dict(method="signal", pidfile=str(pidfile),
                                                               verify_ready=False)), True),
    ]
    check_runs("config_reload", runs)


# system_status is being changed in another branch: its RETURN documents only the flower and
# alerts entries of components, not the others (redis, app, celery, postgres, backup) nor the
# keys every entry has (status, reason, duration, ...). Expected to fail until that lands; the
# assertion message lists the keys.
UNDOCUMENTED_COMPONENTS = pytest.mark.xfail(reason="system_status RETURN: components entries other than flower "
                                                   "and alerts are undocumented", strict=False)


@pytest.fixture
def celery_stack(redis_server, celery_factory):
    celery_factory(redis_server.url).start_workers(["w1"])
    return redis_server


def test_celery_health_returns_what_it_documents(ansible, celery_stack, tmp_path):
    url = celery_stack.url
    down = "redis://127.0.0.1:%d/0" % free_port()
    runs = [
        ("healthy", ansible.module("celery_health", dict(broker_url=url, expected_workers=1, queues=["quality"],
                                                         timeout=5, metrics_file=str(tmp_path / "c.prom"))), True),
        ("worker missing", ansible.module("celery_health", dict(broker_url=url, expected_workers=2, timeout=1.5,
                                                                fail_on_unhealthy=False)), True),
        ("redis down", ansible.module("celery_health", dict(broker_url=down, timeout=1)), True),
    ]
    check_runs("celery_health", runs)


def test_celery_queue_purge_returns_what_it_documents(ansible, redis_server):
    down = "redis://127.0.0.1:%d/0" % free_port()
    runs = [
        ("check mode", ansible.module("celery_queue_purge", dict(broker_url=redis_server.url, queues=["stats"]),
                                      check=True), True),
        ("purge", ansible.module("celery_queue_purge", dict(broker_url=redis_server.url, queues=["stats"])), True),
        ("redis down", ansible.module("celery_queue_purge", dict(broker_url=down, queues=["stats"])), True),
    ]
    check_runs("celery_queue_purge", runs)


@UNDOCUMENTED_COMPONENTS
def test_system_status_returns_what_it_documents(ansible, redis_server, fake_app):
    down = free_port()
    runs = [
        ("redis and app up", ansible.module("system_status", dict(
            broker_url=redis_server.url, app_url=fake_app().url, timeout=3)), True),
        ("everything down", ansible.module("system_status", dict(
            broker_url="redis://127.0.0.1:%d/0" % down, app_url="http://127.0.0.1:%d" % down, pg_host="127.0.0.1",
            pg_port=down, timeout=2)), True),
    ]
    check_runs("system_status", runs)
