"""Runbooks: every alert has one, each has the four sections, every command that names this
collection names something that exists, and the rendered pages speak of the operator's system."""

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = REPO / "roles/runbooks/templates/runbooks"
SECTIONS = ["## Symptoms", "## Diagnosis", "## Resolution", "## Escalation"]


def runbook_list():
    return yaml.safe_load((REPO / "roles/runbooks/vars/main.yml").read_text())["runbooks_list"]


def alert_names_and_runbooks():
    """(alert, runbook name) from the rule templates, read as text (they are Jinja)."""
    pairs = []
    for tpl in list((REPO / "roles/prometheus_alerts/templates").glob("*.rules.yml.j2")) + \
            [REPO / "roles/backup_verify/templates/backup.rules.yml.j2"]:
        text = tpl.read_text()
        for block in re.split(r"\n\s+- alert: ", text)[1:]:
            name = block.split()[0]
            m = re.search(r"runbook_url: \"[^\"]*/([a-z0-9-]+)\.html\"", block)
            pairs.append((name, m.group(1) if m else None))
    return pairs


def test_every_alert_points_at_a_runbook_that_exists():
    listed = {r["name"]: r for r in runbook_list()}
    pairs = alert_names_and_runbooks()
    assert len(pairs) == 16
    for alert, runbook in pairs:
        assert runbook, "%s has no runbook_url" % alert
        assert (RUNBOOKS / (runbook + ".md.j2")).exists(), (alert, runbook)
        assert alert in listed[runbook]["alerts"], (alert, runbook)


def test_every_runbook_source_is_listed_and_has_the_four_sections():
    names = {r["name"] for r in runbook_list()}
    sources = {p.name[:-len(".md.j2")] for p in RUNBOOKS.glob("*.md.j2")}
    assert sources == names
    for p in RUNBOOKS.glob("*.md.j2"):
        text = p.read_text()
        positions = [text.find(s + "\n") for s in SECTIONS]
        assert all(pos >= 0 for pos in positions), (p.name, positions)
        assert positions == sorted(positions), "%s: sections out of order" % p.name


def exists_in_collection(name):
    return any((REPO / path).exists() for path in (
        "plugins/modules/%s.py" % name, "playbooks/%s.yml" % name, "roles/%s" % name, "plugins/filter/%s.py" % name))


def test_every_command_naming_the_collection_names_something_real():
    seen = set()
    for p in RUNBOOKS.glob("*.md.j2"):
        for name in re.findall(r"callcenter\.ops\.([a-z_]+)", p.read_text()):
            seen.add(name)
            assert exists_in_collection(name), "%s names callcenter.ops.%s, which does not exist" % (p.name, name)
    assert {"celery_health", "celery_status", "verify_backup", "backup_verify", "config_reload",
            "system_status"} <= seen


def render(ansible, tmp_path, site):
    pb = tmp_path / "site.yml"
    pb.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "roles": [
        {"role": "callcenter.ops.runbooks", "vars": {"runbooks_dest": str(tmp_path / "rb"), "runbooks_site": site}}]}]))
    return ansible.playbook(pb)


def test_rendered_runbooks_speak_of_the_operators_system(ansible, tmp_path):
    r = render(ansible, tmp_path, {"db_host": "pg-main-01", "worker_group": "celery_nodes",
                                   "grafana_url": "https://grafana.example/d/voice", "oncall_secondary": "Anna"})
    assert r.rc == 0, r
    out = tmp_path / "rb"
    backup = (out / "backup-failed.html").read_text()
    assert "-e backup_hosts=pg-main-01" in backup
    assert "https://grafana.example/d/voice" in (out / "high-latency.html").read_text()
    assert "ansible celery_nodes -m callcenter.ops.celery_health" in (out / "celery-worker-down.md").read_text()
    index = (out / "index.html").read_text()
    for rb in runbook_list():
        assert 'href="%s.html"' % rb["name"] in index
    assert "{{" not in backup and "{%" not in backup


@pytest.mark.parametrize("site", [{"grafna_url": "https://x"}, {"db_hots": "pg1", "db_host": "pg1"}])
def test_unknown_runbook_variables_are_refused(ansible, tmp_path, site):
    r = render(ansible, tmp_path, site)
    assert r.rc != 0
    assert "unknown runbook variable(s) in runbooks_site" in r.output
    assert not (tmp_path / "rb").exists()
