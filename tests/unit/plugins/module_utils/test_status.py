import time

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
