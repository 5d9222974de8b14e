"""system_status against real Redis, Celery workers, PostgreSQL, Flower, backups, and the
application stand-in; faults in one component never hide the others."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fake_app import ADMIN_TOKEN

REPO = Path(__file__).resolve().parents[2]


def build_platform(root, started, postgres, dumps):
    """Everything up: 2 workers, PostgreSQL, a verified backup, Flower, the app. ``started``
    collects what must be stopped afterwards."""
    from conftest import CeleryCluster, FlowerServer, RedisServer
    from fake_app import FakeApp
    redis = RedisServer(root / "redis", "s3cret-Pa55").start()
    started.append(redis)
    celery = CeleryCluster(redis.url, root / "celery", "callcenter_sample")
    started.append(celery)
    celery.start_workers(["w1", "w2"])
    backups = root / "backups"
    backups.mkdir()
    shutil.copy(dumps / "callcenter-2026-11-25.dump.gz", backups)
    app = FakeApp(None, None).start()
    started.append(app)
    flower = FlowerServer(redis.url, root).start()
    started.append(flower)
    return dict(redis=redis, postgres=postgres, backups=backups, metrics=root / "backup.prom", app=app, flower=flower)


def stop_all(started):
    for thing in reversed(started):
        try:
            thing.stop()
        except Exception:  # one failed stop must not leave the others running
            pass


@pytest.fixture
def platform(postgres, dumps, tmp_path):
    """A platform of its own, for a test that stops or changes a part of it."""
    started = []
    try:
        yield build_platform(tmp_path, started, postgres, dumps)
    finally:
        stop_all(started)


@pytest.fixture(scope="module")
def shared_platform(postgres, dumps, tmp_path_factory):
    """One platform for the tests that only read it (each start of two workers and Flower costs
    seconds of CPU): they may pass other options, never stop or change a part of it."""
    started = []
    try:
        yield build_platform(tmp_path_factory.mktemp("platform"), started, postgres, dumps)
    finally:
        stop_all(started)


def args_for(p, **over):
    a = dict(app_url=p["app"].url, broker_url=p["redis"].url, expected_workers=2, pg_host="127.0.0.1",
             pg_port=p["postgres"].port, pg_password=p["postgres"].password, backup_dir=str(p["backups"]),
             backup_metrics_file=str(p["metrics"]), flower_url=p["flower"].url, timeout=3)
    a.update(over)
    return a


def verify_backups(ansible, p):
    r = ansible.module("backup_verify", dict(path=str(p["backups"]), metrics_file=str(p["metrics"])))
    assert r.rc == 0, r


def status(ansible, p, **over):
    return ansible.module("system_status", args_for(p, **over), env={"CALLCENTER_ADMIN_TOKEN": ADMIN_TOKEN})


def test_everything_up_is_ok_with_every_figure(ansible, shared_platform):
    verify_backups(ansible, shared_platform)
    r = status(ansible, shared_platform)
    assert r.rc == 0, r
    assert r["status"] == "ok", r["problems"]
    c = r["components"]
    assert set(c) == {"app", "celery", "redis", "postgres", "backup", "flower"}
    assert c["app"]["version"] == "1.8.2" and c["app"]["active_calls"] == 3 and c["app"]["uptime_seconds"] > 80000
    assert c["celery"]["workers_online"] == 2 and c["celery"]["queues"] == {"quality": 0, "stats": 0}
    assert c["redis"]["role"] == "master" and c["redis"]["used_memory"] > 0
    assert c["postgres"]["max_connections"] == 100 and c["postgres"]["connections"] >= 1
    assert c["postgres"]["server_version"].startswith("15")
    assert c["backup"]["verified"] is True and c["backup"]["path"].endswith("callcenter-2026-11-25.dump.gz")
    assert c["flower"]["auth"] is True
    for secret in (shared_platform["redis"].password, shared_platform["postgres"].password, ADMIN_TOKEN):
        assert secret not in r.output and secret not in json.dumps(r.result)
    assert "password" not in c["postgres"]["dsn"]


def test_redis_down_is_reported_and_the_others_still_shown(ansible, platform):
    platform["redis"].stop()
    r = status(ansible, platform, timeout=2)
    assert r.rc == 0, r
    c = r["components"]
    assert r["status"] == "down"
    assert c["redis"]["status"] == "down" and "refused the connection" in c["redis"]["reason"]
    assert c["celery"]["status"] == "down"
    assert c["postgres"]["status"] == "ok" and c["app"]["status"] == "ok"
    assert "redis down" in r["msg"]


def test_postgres_wrong_password(ansible, shared_platform):
    r = status(ansible, shared_platform, pg_password="Wrong-Pg-Pass-42")
    assert r.rc == 0
    pg = r["components"]["postgres"]
    assert pg["status"] == "down" and "rejected the password for user postgres" in pg["reason"], pg
    assert "Wrong-Pg-Pass-42" not in r.output
    assert r["components"]["redis"]["status"] == "ok"


def test_postgres_down(ansible, shared_platform, blackhole):
    from conftest import free_port
    r = status(ansible, shared_platform, pg_port=free_port())
    pg = r["components"]["postgres"]
    assert pg["status"] == "down" and "refused the connection" in pg["reason"], pg


def test_backup_dir_missing_and_failed_verification(ansible, platform, tmp_path):
    r = status(ansible, platform, backup_dir=str(tmp_path / "nope"))
    assert r["components"]["backup"]["status"] == "down" and "does not exist" in r["components"]["backup"]["reason"]
    (platform["backups"] / "callcenter-2026-11-26.dump.gz").write_bytes(b"broken")
    ansible.module("backup_verify", dict(path=str(platform["backups"]), metrics_file=str(platform["metrics"]),
                                         fail_on_invalid=False))
    r = status(ansible, platform)
    b = r["components"]["backup"]
    assert b["status"] == "degraded" and "last verification FAILED" in b["reason"], b


def test_app_wrong_token_and_app_down(ansible, platform):
    r = ansible.module("system_status", args_for(platform), env={"CALLCENTER_ADMIN_TOKEN": "bad-token-xyz"})
    a = r["components"]["app"]
    assert a["status"] == "degraded" and "401" in a["reason"], a
    platform["app"].stop()
    r = status(ansible, platform)
    assert r["components"]["app"]["status"] == "down"
    assert r["components"]["celery"]["status"] == "ok"


@pytest.mark.parametrize("component", ["app", "postgres", "redis"])
def test_blackholed_component_costs_only_its_own_timeout(ansible, shared_platform, blackhole, component):
    over = {"app": dict(app_url="http://127.0.0.1:%d" % blackhole),
            "postgres": dict(pg_port=blackhole),
            "redis": dict(broker_url="redis://127.0.0.1:%d/0" % blackhole)}[component]
    # the celery component reads the same broker, so it shares redis's timeout
    timeouts = {"redis": 1, "celery": 1} if component == "redis" else {component: 1}
    r = status(ansible, shared_platform, timeout=5, component_timeouts=timeouts, **over)
    assert r.rc == 0, r
    assert r["components"][component]["status"] == "down", r["components"][component]
    # well under the 5 s the others may take: its own 1 s governs (a loaded machine adds its share)
    assert r["duration"] < 1 + 2.5, (r["duration"], r["components"])
    for name in ("flower", "postgres", "app", "redis"):
        if name != component:
            assert r["components"][name]["status"] == "ok", (name, r["components"][name])


def test_fail_on_down(ansible, platform):
    platform["app"].stop()
    r = status(ansible, platform, fail_on="down")
    assert r.rc != 0 and "app down" in r["msg"], r
    assert r["components"]["postgres"]["status"] == "ok"


def test_playbook_table_and_html_page_in_chromium(ansible, platform, tmp_path):
    verify_backups(ansible, platform)
    platform["app"].stop()  # one component down
    page = tmp_path / "status.html"
    extra = {
        "system_status_app_url": platform["app"].url, "system_status_broker_url": platform["redis"].url,
        "system_status_expected_workers": 2, "system_status_pg_host": "127.0.0.1",
        "system_status_pg_port": platform["postgres"].port, "system_status_pg_password": platform["postgres"].password,
        "system_status_backup_dir": str(platform["backups"]), "system_status_backup_metrics_file": str(platform["metrics"]),
        "system_status_flower_url": platform["flower"].url, "system_status_html_path": str(page),
        "system_status_grafana_url": "https://grafana.example/d/voice", "system_status_prometheus_url": "https://prom.example",
    }
    r = ansible.playbook("callcenter.ops.system_status", extra_vars=extra)
    assert r.rc == 0, r
    assert "COMPONENT" in r.output and "overall: DOWN" in r.output
    assert platform["postgres"].password not in r.output and platform["redis"].password not in r.output
    html = page.read_text()
    assert platform["postgres"].password not in html and platform["redis"].password not in html
    chromium = shutil.which("chromium")
    if not chromium:
        pytest.skip("chromium not installed")
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--user-data-dir=%s" % (tmp_path / "chrome")]
    dom = subprocess.run(flags + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=60,
                         check=False).stdout
    from html.parser import HTMLParser

    class Collect(HTMLParser):
        def __init__(self):
            super().__init__()
            self.cards, self.links, self.overall = {}, {}, None

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "section" and a.get("id", "").startswith("component-"):
                self.cards[a["id"][10:]] = (a.get("data-status"), a.get("style", ""))
            if tag == "a" and a.get("id", "").startswith("link-"):
                self.links[a["id"][5:]] = a.get("href")
            if a.get("id") == "overall":
                self.overall = (a.get("data-status"), a.get("style", ""))

    c = Collect()
    c.feed(dom)
    # the text colour (contrast >= 4.5:1) follows the background
    assert c.overall[0] == "down" and c.overall[1].startswith("background: #c62828"), c.overall
    assert c.cards["app"] == ("down", "border-left-color: #c62828")
    for name in ("celery", "redis", "postgres", "backup", "flower"):
        assert c.cards[name] == ("ok", "border-left-color: #2e7d32"), name
    assert c.links == {"grafana": "https://grafana.example/d/voice", "flower": platform["flower"].url,
                       "prometheus": "https://prom.example"}
    assert 'data-verified="true"' in dom and "callcenter.ops.config_reload" in dom
    out = REPO / "tests" / "output" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    shot = out / "status_page.png"
    subprocess.run(flags + ["--screenshot=%s" % shot, "--window-size=1280,1000", page.as_uri()],
                   capture_output=True, timeout=60, check=False)
    assert shot.exists() and shot.stat().st_size > 10000


# --------------------------------------------------------------------------- Flower auth
FLOWER_PASSWORD = "Flower-Test-Pass-1"


def flower_only(ansible, url, verbosity=0, env=None, **over):
    args = dict(flower_url=url, timeout=3)
    args.update(over)
    return ansible.module("system_status", args, verbosity=verbosity, env=env)


def assert_no_secret(r, *secrets):
    for secret in secrets:
        assert secret not in r.output, (secret, r)
        assert secret not in json.dumps(r.result), (secret, r)


def test_flower_without_auth_is_degraded_not_ok(ansible, redis_server, flower_factory):
    open_flower = flower_factory(redis_server.url, auth=False)
    r = flower_only(ansible, open_flower.url)
    assert r.rc == 0, r
    f = r["components"]["flower"]
    assert f["status"] == "degraded" and f["auth"] is False, f
    assert "without credentials" in f["reason"] and "set basic auth" in f["reason"], f
    assert r["status"] == "degraded" and r["changed"] is False


def test_flower_credentials_accepted_rejected_or_not_given(ansible, redis_server, flower_factory):
    flower = flower_factory(redis_server.url)
    r = flower_only(ansible, flower.url, flower_user="ops", flower_password=FLOWER_PASSWORD, verbosity=3)
    f = r["components"]["flower"]
    assert f["status"] == "ok" and f["auth"] is True and f["credentials"] == "accepted", f
    assert_no_secret(r, FLOWER_PASSWORD)

    r = flower_only(ansible, flower.url, flower_user="ops", flower_password="Wrong-Flower-Pass-2", verbosity=3)
    f = r["components"]["flower"]
    assert f["status"] == "degraded" and f["credentials"] == "rejected", f
    assert "Flower rejected the credentials (401)" in f["reason"] and "ops" in f["reason"], f
    assert_no_secret(r, "Wrong-Flower-Pass-2")

    r = flower_only(ansible, flower.url)
    f = r["components"]["flower"]
    assert f["status"] == "ok" and f["auth"] is True and f["credentials"] == "not given", f

    # the environment is the safe way on an ad-hoc command line
    r = flower_only(ansible, flower.url, env={"FLOWER_USER": "ops", "FLOWER_PASSWORD": FLOWER_PASSWORD})
    assert r["components"]["flower"]["credentials"] == "accepted", r
    assert_no_secret(r, FLOWER_PASSWORD)


def test_flower_credentials_inside_the_url_are_used_but_never_shown(ansible, redis_server, flower_factory):
    flower = flower_factory(redis_server.url)
    url = "http://ops:%s@127.0.0.1:%d/" % (FLOWER_PASSWORD, flower.port)
    r = flower_only(ansible, url, verbosity=3)
    f = r["components"]["flower"]
    assert f["status"] == "ok" and f["auth"] is True and f["credentials"] == "accepted", f
    assert f["url"] == flower.url and "WITHOUT auth" not in json.dumps(r.result), f
    assert "flower_url holds credentials" in r.output, r
    assert_no_secret(r, FLOWER_PASSWORD)


def test_flower_down_names_the_url_without_credentials(ansible):
    from conftest import free_port
    r = flower_only(ansible, "http://ops:Some-Flower-Pass-3@127.0.0.1:%d/" % free_port())
    f = r["components"]["flower"]
    assert f["status"] == "down" and "refused the connection" in f["reason"], f
    assert "127.0.0.1" in f["reason"]
    assert_no_secret(r, "Some-Flower-Pass-3")


def test_playbook_never_writes_flower_or_link_credentials_into_the_page(ansible, redis_server, flower_factory, tmp_path):
    flower = flower_factory(redis_server.url)
    page = tmp_path / "status.html"
    extra = {
        "system_status_flower_url": "http://ops:%s@127.0.0.1:%d/" % (FLOWER_PASSWORD, flower.port),
        "system_status_flower_user": "ops", "system_status_flower_password": FLOWER_PASSWORD,
        "system_status_html_path": str(page),
        "system_status_grafana_url": "https://admin:Grafana-Secret-3@grafana.example/d/voice",
        "system_status_prometheus_url": "https://prom:Prom-Secret-4@prom.example:9090/graph",
    }
    r = ansible.playbook("callcenter.ops.system_status", extra_vars=extra, verbosity=3)
    assert r.rc == 0, r
    html = page.read_text()
    for secret in (FLOWER_PASSWORD, "Grafana-Secret-3", "Prom-Secret-4"):
        assert secret not in html, secret
        assert secret not in r.output, secret
    assert 'href="%s"' % flower.url in html
    assert 'href="https://grafana.example/d/voice"' in html and 'href="https://prom.example:9090/graph"' in html
    assert "WITHOUT auth" not in html


# --------------------------------------------------------------------------- timeouts
@pytest.mark.parametrize("args,name", [
    (dict(timeout="nan"), "timeout"), (dict(component_timeouts={"redis": -2}), "component_timeouts.redis"),
])
def test_unusable_timeouts_are_refused_with_a_sentence(ansible, args, name):
    """Through `ansible -m`; every other refusal of bad options runs in-process in
    tests/unit/plugins/modules/test_system_status_args.py."""
    a = dict(app_url="http://127.0.0.1:9/")
    a.update(args)
    r = ansible.module("system_status", a)
    assert r.rc != 0, r
    assert r["msg"].startswith(name + " must be"), r["msg"]
    assert "Traceback" not in r.output and "_PyTime_t" not in r.output, r


# --------------------------------------------------------------------------- the app's JSON shape
@pytest.fixture
def shape_server():
    """Fixed JSON per path: the application's contract broken on purpose."""
    from conftest import JsonServer
    made = []

    def make(routes):
        made.append(JsonServer(routes))
        return made[-1]
    yield make
    for s in made:
        s.stop()


@pytest.mark.parametrize("ready", [(200, ["ready"]), (503, ["not_ready"]), (200, "ready"), (200, 42)])
def test_ready_answering_json_that_is_not_an_object_is_a_sentence(ansible, shape_server, ready):
    app = shape_server({"/health/ready": ready})
    r = ansible.module("system_status", dict(app_url=app.url, timeout=2))
    a = r["components"]["app"]
    assert a["status"] == "down", a
    assert "where the contract (docs/app-http-contract.md) says an object" in a["reason"], a
    assert app.url + "/health/ready answered a JSON" in a["reason"], a
    assert "AttributeError" not in r.output and "Error" not in a["reason"], a


@pytest.mark.parametrize("body", [["1.8.2"], {"version": "1.8.2", "uptime_seconds": "a day", "active_calls": 3}])
def test_system_status_endpoint_breaking_the_contract_is_a_sentence(ansible, shape_server, body):
    app = shape_server({"/health/ready": (200, {"status": "ready", "checks": {}}), "/admin/system-status": (200, body)})
    r = ansible.module("system_status", dict(app_url=app.url, timeout=2), env={"CALLCENTER_ADMIN_TOKEN": "t0ken-x"})
    a = r["components"]["app"]
    assert a["status"] == "degraded" and "contract (docs/app-http-contract.md)" in a["reason"], a
    assert "Error" not in a["reason"], a


@pytest.mark.parametrize("timeout", [2, 3])
def test_one_of_two_workers_dead_is_degraded_in_time_not_down(ansible, redis_server, celery_factory, timeout):
    """ping waits out its reply window for a missing worker: the window must end before the
    component's own deadline, or the answer would be "no answer within Ns" (down, no figures)."""
    cluster = celery_factory(redis_server.url)
    cluster.start_workers(names=("w1", "w2"))
    cluster.workers["w2@harness"].kill()
    r = ansible.module("system_status", dict(broker_url=redis_server.url, queues=["quality"], timeout=timeout,
                                             expected_workers=["w1@harness", "w2@harness"]))
    c = r["components"]["celery"]
    assert c["status"] == "degraded" and c["workers_online"] == 1 and c["workers"] == ["w1@harness"], c
    assert c["duration"] <= timeout + 0.25, c
