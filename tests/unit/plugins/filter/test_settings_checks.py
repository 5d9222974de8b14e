"""The roles' settings checks read units and timeouts as the modules do."""

import pytest

from ansible_collections.callcenter.ops.plugins.filter.settings_checks import quantity_problem, timeout_problem


@pytest.mark.parametrize("value", ["26h", "90m", " 2d ", "1.5w", 3600, "45"])
def test_usable_ages(value):
    assert quantity_problem(value, "age", "max_age") == ""


@pytest.mark.parametrize("value", ["yesterday", "26x", "-1h", "", "1h30m"])
def test_unusable_ages_get_the_modules_sentence(value):
    assert quantity_problem(value, "age", "max_age").startswith("max_age must be a number with an optional unit (s/m/h/d/w)")


@pytest.mark.parametrize("value, ok", [("1M", True), ("500k", True), ("2GB", True), ("1Q", False)])
def test_sizes(value, ok):
    assert (quantity_problem(value, "size", "min_size") == "") is ok


def test_unknown_kind_is_a_programming_error():
    with pytest.raises(ValueError):
        quantity_problem("1h", "weight")


@pytest.mark.parametrize("value, expected", [
    ("nan", "finite"), ("inf", "finite"), (0, "greater than 0"), ("-1", "greater than 0"),
    ("601", "at most 600"), ("soon", "a number of seconds"),
])
def test_unusable_timeouts(value, expected):
    assert expected in timeout_problem(value, "celery_metrics_timeout", 600)


def test_usable_timeout():
    assert timeout_problem("2.5", "t", 600) == ""


def test_a_broker_url_is_refused_in_the_modules_words_and_never_shows_its_password():
    from ansible_collections.callcenter.ops.plugins.filter.broker import broker_url_problem
    assert broker_url_problem("redis://:pw@127.0.0.1:6379/0") == ""
    assert broker_url_problem("sentinel://10.0.0.1:26379;sentinel://10.0.0.2:26379", "mymaster") == ""
    assert "scheme 'amqp' is not supported" in broker_url_problem("amqp://guest@rabbit//")
    assert "give sentinel_master_name" in broker_url_problem("sentinel://10.0.0.1:26379")
    said = broker_url_problem("redis://:Secret-Pw@127.0.0.1:port/0")
    assert "is not a valid URL" in said and "Secret-Pw" not in said
    # with the caller's prefix, the sentence names the caller's variables
    said = broker_url_problem("sentinel://10.0.0.1:26379", "", "celery_metrics_")
    assert said.startswith("celery_metrics_broker_url names Redis Sentinels: give celery_metrics_sentinel_master_name, "), said
