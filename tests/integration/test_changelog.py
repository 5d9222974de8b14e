"""The changelog as antsibull-changelog makes it from changelogs/fragments (scripts/changelog.sh):
the fragments pass its lint, and a release made in a temporary copy lists the new modules and
filters and what the fragments say about roles and playbooks."""

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO

MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
FILTERS = sorted(yaml.safe_load(p.read_text())["DOCUMENTATION"]["name"] for p in (REPO / "plugins" / "filter").glob("*.yml"))


def changelog(*args, **env):
    e = dict(os.environ, CALLCENTER_OPS_VENV=str(Path(sys.executable).parents[1]), **env)
    return subprocess.run(["bash", str(REPO / "scripts" / "changelog.sh")] + list(args), env=e, capture_output=True,
                          text=True, timeout=900, stdin=subprocess.DEVNULL, check=False)


def test_fragments_pass_antsibull_changelog_lint():
    r = changelog("lint")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def test_generated_changelog_lists_modules_filters_roles_and_playbooks(tmp_path):
    out = tmp_path / "CHANGELOG.md"
    r = changelog(CHANGELOG_OUT=str(out), CHANGELOG_DATE="2026-11-26")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    text = out.read_text().replace("\\", "")  # markdown escapes
    new_modules = text.split("### New Modules")[1]
    for m in MODULES:
        assert "callcenter.ops.%s - " % m in new_modules, m
    new_filters = text.split("#### Filter")[1].split("###")[0]
    for f in FILTERS:
        assert "callcenter.ops.%s - " % f in new_filters, f
    for role in sorted(p.name for p in (REPO / "roles").iterdir() if p.is_dir()):
        assert re.search(r"\b%s role\b|\b%s - new role" % (role, role), text), role
    for playbook in ("celery_status", "celery_purge", "verify_backup", "system_status", "config_reload", "deploy"):
        assert re.search(r"\b%s\b[^\n]*playbook" % playbook, text), playbook
    # the committed CHANGELOG.md is this generated one, not a hand-written file
    committed = (REPO / "CHANGELOG.md").read_text()
    assert committed.startswith("# callcenter\\.ops Release Notes"), committed[:200]
