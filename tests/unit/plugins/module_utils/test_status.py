import time

import pytest

from ansible_collections.callcenter.ops.plugins.module_utils import status


def test_worst_status_wins():
    assert status.worst([]) == "ok"
    assert status.worst(["ok", "degraded", "ok"]) == "degraded"
    assert status.worst(["degraded", "down"]) == "down"
    assert status.worst(["weird"]) == "down"


def test_collect_runs_concurrently_and_abandons_a_hung_component():
    def slow():
        time.sleep(0.3)
        return status.component("ok")

    def hung():
        time.sleep(2)
        return status.component("ok")

    def empty():
        return None

    def broken():
        raise RuntimeError("boom")

    t0 = time.monotonic()
    out = status.collect({"a": slow, "b": slow, "c": hung, "d": broken, "e": empty},
                         {"a": 1, "b": 1, "c": 0.5, "d": 1, "e": 1}, margin=0.1)
    elapsed = time.monotonic() - t0
    assert elapsed < 0.9  # a and b overlapped; c cut at its own 0.5 s
    assert out["a"]["status"] == "ok" and out["b"]["status"] == "ok"
    assert out["c"] == {"status": "down", "reason": "no answer within 0.5s", "duration": out["c"]["duration"]}
    assert out["d"]["status"] == "down" and "RuntimeError: boom" in out["d"]["reason"]
    assert out["e"]["status"] == "down" and out["e"]["reason"] == "the check returned no result"


def test_the_docs_name_the_components_in_the_order_of_COMPONENTS():
    """COMPONENTS is the one list; the docs that must spell it out (YAML cannot import it) follow it."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[4]
    spelled = ", ".join(status.COMPONENTS)
    for doc in ("plugins/modules/system_status.py", "plugins/filter/status_components.yml",
                "plugins/filter/status_figures.yml"):
        assert spelled in " ".join((repo / doc).read_text().split()), doc


@pytest.mark.parametrize("overall, fail_on, expected", [
    ("ok", "degraded", False), ("degraded", "degraded", True), ("down", "degraded", True),
    ("ok", "down", False), ("degraded", "down", False), ("down", "down", True),
    ("down", "never", False), ("unknown", "down", True), ("unknown", "never", False),
])
def test_fail_on_one_rule_for_the_module_and_the_fleet_playbook(overall, fail_on, expected):
    from ansible_collections.callcenter.ops.plugins.filter.status_table import FilterModule
    assert status.fails(overall, fail_on) is expected
    assert FilterModule().filters()["status_fails"](overall, fail_on) is expected


def test_an_unknown_fail_on_is_refused():
    with pytest.raises(ValueError, match="fail_on must be one of degraded, down, never"):
        status.fails("ok", "sometimes")
