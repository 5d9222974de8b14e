"""celery_health and celery_queue_purge refuse what they cannot use, each with a sentence that
says what to give instead (in-process; the command-line path of one case stays in
tests/integration/test_celery_health.py)."""

import pytest

NO_ENV = {"CELERY_BROKER_URL": None, "CELERY_BROKER_PASSWORD": None, "CELERY_BROKER_SENTINEL_MASTER": None,
          "CELERY_BROKER_SENTINEL_PASSWORD": None}


@pytest.mark.parametrize("url", ["amqp://guest:guest@localhost//", "http://127.0.0.1:6379", "127.0.0.1:6379"])
def test_bad_url_scheme_is_refused(module_run, url):
    r = module_run("celery_health", dict(broker_url=url), env=NO_ENV)
    assert r.failed
    assert "scheme" in r["msg"] and "redis://" in r["msg"], r
    assert "guest:guest" not in r["msg"]


@pytest.mark.parametrize("timeout", [0, -1])
def test_timeout_must_be_positive(module_run, timeout):
    r = module_run("celery_health", dict(broker_url="redis://127.0.0.1:1/0", timeout=timeout), env=NO_ENV)
    assert r.failed and "timeout must be greater than 0" in r["msg"], r


def test_expected_workers_rejects_nonsense(module_run):
    r = module_run("celery_health", dict(broker_url="redis://127.0.0.1:1/0", expected_workers={"a": 1}), env=NO_ENV)
    assert r.failed and "expected_workers must be a count or a list" in r["msg"], r


@pytest.mark.parametrize("module", ["celery_health", "celery_queue_purge"])
@pytest.mark.parametrize("timeout", ["nan", "inf", "-inf", "1e12", "-1", "0"])
def test_timeout_nonsense_is_refused_with_a_sentence(module_run, module, timeout):
    """As typed on an ad-hoc command line (-a 'timeout=nan'): a string the module converts."""
    r = module_run(module, dict(broker_url="redis://127.0.0.1:1/0", queues="stats", timeout=timeout), env=NO_ENV)
    assert r.failed
    assert "timeout must be" in r["msg"], r
    assert "_PyTime_t" not in r["msg"] and "refused" not in r["msg"], r


def test_health_without_any_broker_url_says_where_to_put_it(module_run):
    r = module_run("celery_health", dict(expected_workers=1), env=dict(NO_ENV, CELERY_BROKER_URL=""))
    assert r.failed
    assert "broker_url is required" in r["msg"] and "CELERY_BROKER_URL" in r["msg"], r
