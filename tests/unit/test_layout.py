"""The test tree's own rules."""

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_one_conftest_only():
    """Test modules import helpers with `from conftest import ...`; a second conftest.py deeper in
    the tree (no packages here) takes the module name `conftest` and breaks those imports for every
    file that runs after it in the same process."""
    found = sorted(str(p.relative_to(TESTS)) for p in TESTS.rglob("conftest.py"))
    assert found == ["conftest.py"], found
