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
