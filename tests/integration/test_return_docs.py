"""Docs that cannot drift: each module is run through ``ansible`` against the real servers the
other tests use (a successful run, a failed one, check mode), and the keys it returns are
compared with its RETURN block.

- every key a run returns is documented (one level into documented ``contains`` too);
- every key documented ``returned: always`` is there in every run that got past its
  parameter checks.
Ansible's own keys (changed, failed, msg, invocation, warnings, ...) are not the module's API.

The runs of one module are the tasks of one ansible-playbook run (tests/modbatch.py): one
Ansible start per module, each run a task of its own, its JSON read as ``ansible -m`` gives it."""

import ast
import re
from pathlib import Path

import pytest
import yaml

from fake_app import ADMIN_TOKEN
from harness import free_port
from modbatch import case, run_batch
from replication import PostgresReplica, RedisSentinelSet, fresh_primary

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_KEYS = {"changed", "failed", "msg", "invocation", "warnings", "deprecations", "exception", "skipped",
                "skip_reason", "diff", "ansible_facts"}


def return_block(module):
    tree = ast.parse((REPO / "plugins" / "modules" / ("%s.py" % module)).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "RETURN":
            return yaml.safe_load(node.value.value) or {}
    raise AssertionError("%s has no RETURN block" % module)


def undocumented(result, doc, prefix=""):
    """Keys of ``result`` missing from ``doc``, into every level a documented ``contains``
    describes. A documented name with a ``<placeholder>`` (``postgres@<host>:<port>``) stands for
    every key of that shape."""
    missing = []
    for key, value in result.items():
        if not prefix and (key in ANSIBLE_KEYS or key.startswith("_ansible")):
            continue
        entry = documented_entry(key, doc)
        if entry is None:
            missing.append(prefix + key)
            continue
        contains = entry.get("contains")
        if not contains:
            continue
        for item in contained_items(value, contains):
            if isinstance(item, dict):
                missing += undocumented(item, contains, "%s%s." % (prefix, key))
    return sorted(set(missing))


def documented_entry(key, doc):
    """``doc``'s entry for ``key``: by name, or by a name with ``<placeholders>``."""
    if key in doc:
        return doc[key] or {}
    for name, entry in doc.items():
        if "<" in name and re.fullmatch(".+".join(re.escape(part) for part in re.split(r"<[^>]+>", name)), key):
            return entry or {}
    return None


def contained_items(value, contains):
    """The dicts whose keys ``contains`` documents: a list's elements, a dict itself, or the
    values of a dict keyed by name (e.g. one entry per component) when none of its keys is
    documented."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and value and all(documented_entry(k, contains) is None for k in value):
        return list(value.values())
    return [value]


def always_missing(result, doc):
    return sorted(k for k, v in doc.items() if str(v.get("returned", "")).strip() == "always" and k not in result
                  and k not in ANSIBLE_KEYS)


def batch_runs(ansible, module, cases):
    """``cases``: [(label, args, got_past_parameter_checks)] or with a 4th item, a dict of
    ``check``/``env``. Runs them in one playbook; returns [(label, Run, got_past...)] for check_runs."""
    made = {}
    for item in cases:
        made[item[0]] = case(module, item[1], **(item[3] if len(item) > 3 else {}))
    _playbook, runs = run_batch(ansible, made)
    return [(item[0], runs[item[0]], item[2]) for item in cases]


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
    nested = {"c": {"returned": "always", "type": "dict", "contains": {
        "db": {"contains": {"status": {}}}, "db@<host>:<port>": {"contains": {"status": {}, "lag": {}}}}}}
    assert undocumented(dict(c={"db": {"status": "ok", "size": 1}, "db@h:5433": {"status": "ok", "lag": 0},
                                "dbx": {}}), nested) == ["c.db.size", "c.dbx"]
    assert undocumented(dict(c={"db@h:5433": {"status": "ok", "x": 1}}), nested) == ["c.db@h:5433.x"]


def test_backup_verify_returns_what_it_documents(ansible, dumps, tmp_path):
    good = dumps / "callcenter-2026-11-25.dump.gz"
    cut = tmp_path / "cut.dump.gz"
    cut.write_bytes(good.read_bytes()[:5000])
    sidecar = tmp_path / "good.sha256"
    sidecar.write_text("%s  %s\n" % ("0" * 64, good.name))
    runs = batch_runs(ansible, "backup_verify", [
        ("valid, full", dict(path=str(good)), True),
        ("valid, toc mode, metrics in check mode", dict(
            path=str(good), mode="toc", metrics_file=str(tmp_path / "m.prom")), True, dict(check=True)),
        ("valid, metrics written, checksum file", dict(
            path=str(good), metrics_file=str(tmp_path / "m.prom"), checksum_file=str(sidecar),
            fail_on_invalid=False), True),
        ("uncompressed dump", dict(path=str(dumps / "raw.dump")), True),
        ("truncated", dict(path=str(cut)), True),
        ("no file", dict(path=str(tmp_path / "none.dump.gz")), True),
        ("bad max_age", dict(path=str(good), max_age="soon"), False),
    ])
    check_runs("backup_verify", runs)


def test_config_reload_returns_what_it_documents(ansible, fake_app, tmp_path):
    app = fake_app()
    env = {"CALLCENTER_ADMIN_TOKEN": ADMIN_TOKEN}
    down = "http://127.0.0.1:%d" % free_port()
    pidfile = tmp_path / "app.pid"
    pidfile.write_text("999999")
    runs = batch_runs(ansible, "config_reload", [
        ("reload", dict(app_url=app.url, timeout=2), True, dict(env=env)),
        ("check mode", dict(app_url=app.url, timeout=2), True, dict(check=True, env=env)),
        ("wrong token", dict(app_url=app.url, timeout=2), True, dict(env={"CALLCENTER_ADMIN_TOKEN": "wrong"})),
        ("application down", dict(app_url=down, timeout=1, retries=0), True, dict(env=env)),
        ("stale pidfile", dict(method="signal", pidfile=str(pidfile), verify_ready=False), True),
    ])
    check_runs("config_reload", runs)


@pytest.fixture
def celery_stack(redis_server, celery_factory):
    celery_factory(redis_server.url).start_workers(["w1"])
    return redis_server


def test_celery_health_returns_what_it_documents(ansible, celery_stack, tmp_path):
    url = celery_stack.url
    down = "redis://127.0.0.1:%d/0" % free_port()
    runs = batch_runs(ansible, "celery_health", [
        ("healthy", dict(broker_url=url, expected_workers=1, queues=["quality"], timeout=5,
                         metrics_file=str(tmp_path / "c.prom")), True),
        ("worker missing", dict(broker_url=url, expected_workers=2, timeout=1.5, fail_on_unhealthy=False), True),
        ("redis down", dict(broker_url=down, timeout=1), True),
    ])
    check_runs("celery_health", runs)


def test_celery_queue_purge_returns_what_it_documents(ansible, redis_server):
    down = "redis://127.0.0.1:%d/0" % free_port()
    runs = batch_runs(ansible, "celery_queue_purge", [
        ("check mode", dict(broker_url=redis_server.url, queues=["stats"]), True, dict(check=True)),
        ("purge", dict(broker_url=redis_server.url, queues=["stats"]), True),
        ("redis down", dict(broker_url=down, queues=["stats"]), True),
    ])
    check_runs("celery_queue_purge", runs)


@pytest.fixture
def replicated(tmp_path):
    """A PostgreSQL primary with a streaming replica, and a Redis master with a replica behind
    three Sentinels (a few seconds to start, on a shared machine up to ~15 s)."""
    primary = fresh_primary()
    replica = rs = None
    try:
        replica = PostgresReplica(primary).start()
        rs = RedisSentinelSet(tmp_path / "redis").start()
        yield primary, replica, rs
    finally:
        for server in (rs, replica, primary):
            if server:
                server.stop()


def test_system_status_returns_what_it_documents(ansible, celery_stack, fake_app, dumps, replicated, tmp_path):
    primary, replica, rs = replicated
    down = free_port()
    metrics = tmp_path / "backup.prom"
    metrics.write_text("callcenter_backup_verify_success 0\ncallcenter_backup_verify_last_run_timestamp_seconds 1764000000\n"
                       "callcenter_backup_verify_failure{check=\"gzip\",reason=\"truncated\"} 1\n")
    runs = batch_runs(ansible, "system_status", [
        ("every component up", dict(
            broker_url=celery_stack.url, expected_workers=1, app_url=fake_app().url, app_token=ADMIN_TOKEN,
            pg_host="127.0.0.1", pg_port=primary.port, pg_password=primary.password,
            pg_replicas=["127.0.0.1:%d" % replica.port], backup_dir=str(dumps), backup_metrics_file=str(metrics),
            timeout=5), True),
        ("Redis behind Sentinel, a replica gone", dict(
            broker_url=rs.url, sentinel_master_name=rs.master_name, pg_host="127.0.0.1", pg_port=primary.port,
            pg_password=primary.password, pg_replicas=["127.0.0.1:%d" % down], timeout=3), True),
        ("everything down", dict(
            broker_url="redis://127.0.0.1:%d/0" % down, app_url="http://127.0.0.1:%d" % down, pg_host="127.0.0.1",
            pg_port=down, backup_dir=str(tmp_path / "none"), timeout=2), True),
    ])
    by_label = dict((run[0], run[1]) for run in runs)
    up = by_label["every component up"]["components"]
    assert sorted(up) == sorted(["app", "celery", "redis", "postgres", "postgres@127.0.0.1:%d" % replica.port,
                                 "backup"]), up
    assert up["postgres@127.0.0.1:%d" % replica.port]["role"] == "replica"
    assert "sentinel" in by_label["Redis behind Sentinel, a replica gone"]["components"]["redis"]
    check_runs("system_status", runs)


def test_file_set_returns_what_it_documents(ansible, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    runs = batch_runs(ansible, "file_set", [
        ("first write", dict(path=str(tmp_path / "pages"), files={"a.md": "A\n", "b.md": "B\n"}), True),
        ("nothing to do, check mode", dict(path=str(tmp_path / "pages"), files={"a.md": "A\n", "b.md": "B\n"}),
         True, dict(check=True)),
        ("mode only", dict(path=str(tmp_path / "pages"), files={"a.md": "A\n"}, mode="0600"), True),
        ("path is a file", dict(path=str(blocker), files={"a.md": "A\n"}), True),
        ("name outside the directory", dict(path=str(tmp_path / "pages"), files={"../x": "X\n"}), False),
        ("refused by validate", dict(path=str(tmp_path / "pages"), files={"a.md": "changed\n"},
                                     validate="/bin/sh -c 'echo no >&2; exit 1' %s"), True),
    ])
    check_runs("file_set", runs)
