"""system_status over a fleet: three application instances (three stand-ins, each an inventory
host of group app) and the shared components read once; one table, one page. The page's
"Reload config" is a real button when a URL for it is configured, the command otherwise."""

import re
import sys
from html.parser import HTMLParser

import pytest
import yaml

from conftest import REPO
from fake_app import ADMIN_TOKEN


@pytest.fixture
def fleet(fake_app, redis_server, celery_factory, tmp_path):
    """app1 ready (1.8.2), app2 ready on another version, app3 not ready; Redis + one worker shared."""
    celery_factory(redis_server.url).start_workers(["w1"])
    apps = [fake_app(), fake_app(), fake_app()]
    apps[1].version, apps[1].active_calls = "1.9.0", 11
    apps[2].ready = False
    inv = tmp_path / "hosts.yml"
    inv.write_text(yaml.safe_dump({"all": {"children": {"app": {"hosts": {
        "app%d" % (i + 1): {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                            "system_status_app_url": a.url} for i, a in enumerate(apps)}}}}}))
    return dict(apps=apps, inventory=inv, redis=redis_server, page=tmp_path / "status.html")


def run(ansible, fleet, **extra):
    ev = {"system_status_hosts": "app", "system_status_broker_url": fleet["redis"].url,
          "system_status_expected_workers": 1, "system_status_html_path": str(fleet["page"])}
    ev.update(extra)
    return ansible.playbook("callcenter.ops.system_status", extra_vars=ev, inventory=str(fleet["inventory"]),
                            env={"CALLCENTER_ADMIN_TOKEN": ADMIN_TOKEN})


class Page(HTMLParser):
    def __init__(self, html):
        super().__init__()
        self.rows, self.cards, self.reload_button, self._cell, self._row = {}, [], None, None, None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "app-instance" in (a.get("class") or ""):
            self._row = self.rows.setdefault(a["data-host"], {"status": a["data-status"]})
        if tag == "td" and self._row is not None and a.get("class"):
            self._cell = a["class"]
        if tag == "section" and a.get("id", "").startswith("component-"):
            self.cards.append(a["id"][10:])
        if tag == "a" and a.get("id") == "reload-button":
            self.reload_button = a.get("href")

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None
        if tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._cell and self._row is not None:
            self._row[self._cell] = self._row.get(self._cell, "") + data.strip()


def test_three_app_instances_one_row_each_and_the_shared_components_once(ansible, fleet):
    r = run(ansible, fleet, system_status_reload_url="https://awx.example/#/templates/job_template/42")
    assert r.rc == 0, r
    table = [line.strip(' ",') for line in r.stdout.splitlines() if re.match(r'\s*"(app@|celery|redis|COMPONENT)', line)]
    assert [t.split()[0] for t in table] == ["COMPONENT", "app@app1", "app@app2", "app@app3", "celery", "redis"], table
    assert "v1.8.2" in table[1] and "3 active call(s), ready" in table[1]
    assert "v1.9.0" in table[2] and "11 active call(s)" in table[2]
    assert table[3].split()[1] == "DOWN" and "NOT ready" in table[3]
    assert "overall: DOWN, 2 of 3 app instance(s) ready" in r.stdout
    assert ADMIN_TOKEN not in r.output and fleet["redis"].password not in r.output

    page = Page(fleet["page"].read_text())
    assert sorted(page.rows) == ["app1", "app2", "app3"]
    assert page.rows["app1"]["version"] == "1.8.2" and page.rows["app1"]["ready"] == "yes"
    assert page.rows["app1"]["uptime"].endswith("h") and page.rows["app1"]["calls"] == "3"
    assert page.rows["app2"]["version"] == "1.9.0" and page.rows["app2"]["calls"] == "11"
    assert page.rows["app3"]["status"] == "down" and page.rows["app3"]["ready"] == "NO"
    # the shared components once each, no per-host app card
    assert page.cards == ["apps", "celery", "redis"], page.cards
    assert page.reload_button == "https://awx.example/#/templates/job_template/42"
    html = fleet["page"].read_text()
    assert "callcenter.ops.config_reload" in html  # the command stays for a shell
    assert ADMIN_TOKEN not in html and fleet["redis"].password not in html


def test_without_a_reload_url_the_page_shows_the_command_and_an_instance_down_fails_the_job(ansible, fleet):
    fleet["apps"][0].stop()
    r = run(ansible, fleet, system_status_fail_on="down")
    assert r.rc != 0, r
    assert re.search(r"app@app1 down: .*refused", r.stdout), r.stdout[-3000:]
    html = fleet["page"].read_text()
    page = Page(html)
    assert page.reload_button is None
    assert 'id="reload-command"' in html and "callcenter.ops.config_reload" in html
    assert page.rows["app1"]["status"] == "down" and "refused" in page.rows["app1"]["reason"]


def test_a_reload_url_that_is_not_http_is_refused_before_anything_runs(ansible, fleet):
    r = run(ansible, fleet, system_status_reload_url="javascript:alert(1)")
    assert r.rc != 0
    assert "system_status_reload_url must start with http:// or https://" in r.stdout, r.stdout[-2000:]
    assert not fleet["page"].exists()


def test_example_inventory_has_the_platform_groups():
    inv = yaml.safe_load((REPO / "examples" / "inventory" / "hosts.yml").read_text())
    groups = inv["all"]["children"]
    assert set(groups) == {"app", "workers", "db", "flower", "prometheus"}
    assert len(groups["app"]["hosts"]) >= 2
    group_vars = yaml.safe_load((REPO / "examples" / "inventory" / "group_vars" / "all.yml").read_text())
    keys = list(group_vars) + [k for g in groups.values() for k in (g.get("vars") or {})]
    assert not [k for k in keys if re.search("password|token|secret", k)], keys  # secrets come from the env
