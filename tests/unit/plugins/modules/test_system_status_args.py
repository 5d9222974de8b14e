"""system_status refuses unusable options with a sentence before it reads anything (in-process;
the command-line path of one case stays in tests/integration/test_system_status.py)."""

import pytest

NO_ENV = {"CELERY_BROKER_URL": None, "ALERTMANAGER_URL": None, "FLOWER_URL": None, "CALLCENTER_APP_URL": None}


@pytest.mark.parametrize("args,name", [
    (dict(timeout="nan"), "timeout"), (dict(timeout="inf"), "timeout"), (dict(timeout=1e12), "timeout"),
    (dict(timeout=-1), "timeout"), (dict(timeout=0), "timeout"),
    (dict(component_timeouts={"app": "nan"}), "component_timeouts.app"),
    (dict(component_timeouts={"flower": "inf"}), "component_timeouts.flower"),
    (dict(component_timeouts={"postgres": 1e12}), "component_timeouts.postgres"),
    (dict(component_timeouts={"redis": -2}), "component_timeouts.redis"),
])
def test_unusable_timeouts_are_refused_with_a_sentence(module_run, args, name):
    a = dict(app_url="http://127.0.0.1:9/")
    a.update(args)
    r = module_run("system_status", a, env=NO_ENV)
    assert r.failed, r
    assert r["msg"].startswith(name + " must be"), r["msg"]
    assert "_PyTime_t" not in r["msg"], r


def test_unknown_component_timeout_names_the_known_ones(module_run):
    r = module_run("system_status", dict(app_url="http://127.0.0.1:9/", component_timeouts={"redsi": 2}), env=NO_ENV)
    assert r.failed and "component_timeouts has unknown component(s) redsi" in r["msg"], r
    assert "redis" in r["msg"]


def test_nothing_to_check(module_run):
    r = module_run("system_status", dict(broker_url=None), env=NO_ENV)
    assert r.failed and "nothing to check" in r["msg"], r


def test_bad_replica_entry_is_refused_with_a_sentence(module_run):
    r = module_run("system_status", dict(pg_replicas=["db2:notaport"]), env=NO_ENV)
    assert r.failed and "pg_replicas entry 'db2:notaport' is not host or host:port" in r["msg"], r
