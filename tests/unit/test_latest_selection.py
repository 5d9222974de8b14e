"""tests/latest-selection.txt names tests that exist: a renamed or moved test would otherwise be
found missing only in the last stage of scripts/test.sh, after twenty minutes."""

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_selected_test_exists():
    missing = []
    for line in (TESTS / "latest-selection.txt").read_text().splitlines():
        node = line.split("#", 1)[0].strip()
        if not node:
            continue
        path, _sep, name = node.partition("::")
        source = TESTS / "integration" / path
        if not source.is_file() or not re.search(r"^def %s\(" % re.escape(name.split("[")[0]), source.read_text(), re.M):
            missing.append(node)
    assert not missing, "not found (update tests/latest-selection.txt): %s" % missing
