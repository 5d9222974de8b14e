"""Runbooks: every alert has one, each has the four sections, every command that names this
collection names something that exists, and the rendered pages speak of the operator's system."""

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = REPO / "roles/runbooks/templates/runbooks"
SECTIONS = ["## What fired", "## Symptoms", "## Diagnosis", "## Resolution", "## Verify", "## Silence", "## Escalation"]


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
    assert len(pairs) == 21  # every rule of the three rule templates and the backup rules
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
    for p in RUNBOOKS.glob("*.j2"):
        for name in re.findall(r"callcenter\.ops\.([a-z_]+)", p.read_text()):
            seen.add(name)
            assert exists_in_collection(name), "%s names callcenter.ops.%s, which does not exist" % (p.name, name)
    assert {"celery_status", "verify_backup", "config_reload", "celery_purge", "celery_metrics"} <= seen


BASE = "https://ops.example/doc/operations/runbooks"


def render(ansible, tmp_path, site, **role_vars):
    pb = tmp_path / "site.yml"
    pb.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "roles": [
        {"role": "callcenter.ops.runbooks", "vars": dict({"runbooks_dest": str(tmp_path / "rb"), "runbooks_site": site,
                                                          "callcenter_runbook_base_url": BASE}, **role_vars)}]}]))
    return ansible.playbook(pb)


def test_rendered_runbooks_speak_of_the_operators_system(ansible, tmp_path):
    r = render(ansible, tmp_path, {"db_group": "pg_main", "worker_group": "celery_nodes", "inventory": "/srv/inv.yml",
                                   "grafana_url": "https://grafana.example"},
               runbooks_contacts={"oncall_secondary": "Anna Petrova, +7 900 000-00-00"},
               prometheus_alerts_thresholds={"latency_p95_seconds": 1.5, "operator_queue": 9})
    assert r.rc == 0, r
    out = tmp_path / "rb"
    backup = (out / "backup-failed.html").read_text()
    assert "-e verify_backup_hosts=pg_main" in backup
    latency = (out / "high-latency.md").read_text()
    assert "https://grafana.example/d/callcenter/call-center?viewPanel=2" in latency
    # the threshold the rules use (merged over the defaults), in words and in the expression
    assert "**1.5 s**" in latency and "> 1.5)" in latency
    for stage in ("stt", "llm", "tts"):
        assert "stage%3D%22" + stage + "%22" in latency, stage
    assert "max_waiting=9" in (out / "operator-queue-overflow.md").read_text()
    worker = (out / "celery-worker-down.md").read_text()
    assert "ansible-playbook -i /srv/inv.yml " in worker and "celery_status_hosts=celery_nodes[0]" in worker
    assert "Anna Petrova, +7 900 000-00-00" in worker
    assert "amtool silence add alertname=CeleryWorkerDown" in worker and "--alertmanager.url=" in worker
    assert BASE + "/celery-worker-down.html" in (out / "celery-queue-backlog.md").read_text()
    index = (out / "index.html").read_text()
    for rb in runbook_list():
        assert 'href="%s.html"' % rb["name"] in index
        page = (out / (rb["name"] + ".md")).read_text()
        assert "Seed" not in page, rb["name"]
        assert not re.search(r"^ansible(-playbook)? (?!-i )", page, re.M), rb["name"]
    assert "{{" not in backup and "{%" not in backup


def test_the_runbooks_thresholds_are_the_rules_defaults():
    ours = yaml.safe_load((REPO / "roles/runbooks/vars/main.yml").read_text())
    rules = yaml.safe_load((REPO / "roles/prometheus_alerts/defaults/main.yml").read_text())
    assert ours["runbooks_alert_thresholds_defaults"] == rules["prometheus_alerts_thresholds_defaults"]
    assert ours["runbooks_alert_metrics_defaults"] == rules["prometheus_alerts_metrics"]


def test_bad_settings_are_refused_before_anything_is_written(ansible, tmp_path):
    """Each case one application of the role, all in one playbook run (ansible.refusals)."""
    def case(i, site=None, **role_vars):
        return dict({"runbooks_dest": str(tmp_path / ("rb%d" % i)), "runbooks_site": site or {},
                     "callcenter_runbook_base_url": BASE}, **role_vars)
    cases = [
        case(0, runbooks_environment="production", runbooks_contacts={"oncall_primary": "Ivan Ivanov, +7 900 111-11-11"}),
        {"runbooks_dest": str(tmp_path / "rb1")},  # no callcenter_runbook_base_url
        case(2, {"grafna_url": "https://x"}),
        case(3, {"db_hots": "pg1", "db_host": "pg1"}),
    ]
    r, messages = ansible.refusals("callcenter.ops.runbooks", cases, tmp_path)
    assert r.rc == 0, r
    placeholders, base_url, unknown, unknown_too = messages
    assert "runbooks_environment is production but runbooks_contacts still has placeholder contacts for" in placeholders
    assert "oncall_secondary" in placeholders and "oncall_primary" not in placeholders.split("placeholder contacts for")[1]
    assert "Set callcenter_runbook_base_url" in base_url, base_url
    for msg, name in ((unknown, "grafna_url"), (unknown_too, "db_hots")):
        assert "unknown runbook variable(s) in runbooks_site" in msg and name in msg, msg
    assert not list(tmp_path.glob("rb*")), "a refused case wrote pages"


def test_file_set_through_ansible_writes_once_and_nothing_in_check_mode(ansible, tmp_path):
    """The module the role writes its pages with, as `ansible -m` runs it (the other cases run
    in-process: tests/unit/plugins/modules/test_file_set.py)."""
    pages = {"a.md": "# A\n", "a.html": "<h1>A</h1>\n"}
    r = ansible.module("file_set", {"path": str(tmp_path / "rb"), "files": pages})
    assert r.rc == 0 and r["changed"] and r["written"] == ["a.html", "a.md"], r
    r = ansible.module("file_set", {"path": str(tmp_path / "rb"), "files": dict(pages, **{"a.md": "# B\n"})}, check=True)
    assert r.rc == 0 and r["changed"] and r["written"] == ["a.md"] and r["unchanged"] == 1, r
    assert (tmp_path / "rb" / "a.md").read_text() == "# A\n"
