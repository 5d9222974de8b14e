"""Every runbook command works as pasted, against a live stack, and fails when what it checks is wrong.

The runbooks are rendered by the runbooks role for a test inventory (a worker and an app host
reached over SSH, the database host local), then every ```sh block is run as an operator would
paste it: ``bash -e -o pipefail``, from the controller, with the secrets only in an
ansible-vault file (never in the environment: a CELERY_BROKER_PASSWORD exported on the
controller would not reach the SSH host anyway). Passwords that a command asks for
(``redis-cli --askpass``, ``curl -u user``) are typed on its stdin.

Each block starts with ``# check: <what>`` (run it) or ``# needs: <what>`` (systemd, root, a
person at a terminal: skipped, and listed). First every block must exit 0 on the healthy
stack; then, one breakage at a time, every block that checks the broken thing must exit
non-zero. One stack for the whole module; blocks of a phase run in parallel.
"""

import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import (BIN, REPO, AlertmanagerServer, CeleryCluster, FlowerServer, JsonServer, RedisServer, _stop,
                      free_port, stop_all, wait_for)
from fake_app import ADMIN_TOKEN, FakeApp
from sshhost import SshHost

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(not (shutil.which("sshd") or os.path.exists("/usr/sbin/sshd")) or
                                not shutil.which("amtool") or not PROMETHEUS,
                                reason="needs Debian's openssh-server, prometheus and prometheus-alertmanager (amtool)")

REDIS_PASSWORD = "Redis-Runbook-Pass-1"
FLOWER_USER, FLOWER_PASSWORD = "ops", "Flower-Runbook-Pass-1"
WORKERS = ["w1@harness", "w2@harness"]
QUEUE_BACKLOG = 5  # prometheus_alerts_thresholds.queue_backlog for this test: the runbooks quote it
COLLECTOR = REPO / "roles" / "celery_metrics" / "files" / "callcenter-celery-metrics"
FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<lang>[a-z]*)\n(?P<body>.*?)^(?P=indent)```$", re.M | re.S)
# What each block needs typed on its stdin, by its `# check:` keyword.
STDIN = {"redis": lambda ok: (REDIS_PASSWORD if ok else "wrong-password") + "\n",
         "flower-login": lambda ok: (FLOWER_PASSWORD if ok else "wrong-password") + "\n"}


class Block:
    def __init__(self, runbook, text, lang):
        self.runbook, self.text, self.lang = runbook, text, lang
        first = text.splitlines()[0] if text.strip() else ""
        m = re.match(r"# (check|needs): ([a-z-]+(?:, [a-z-]+)*)", first)
        self.kind = m.group(1) if m else None
        self.what = m.group(2) if m else None

    def __repr__(self):
        return "<%s %s: %s>" % (self.runbook, self.kind, self.text.splitlines()[0])


def blocks_of(md_dir):
    found = []
    for page in sorted(Path(md_dir).glob("*.md")):
        if page.name == "index.md":
            continue
        for m in FENCE.finditer(page.read_text()):
            body = "\n".join(line[len(m.group("indent")):] for line in m.group("body").splitlines())
            found.append(Block(page.stem, body, m.group("lang")))
    return found


class PrometheusServer:
    """Debian's Prometheus scraping the app stand-in every second (the runbooks ask it whether an alert's
    expression still returns a series)."""

    def __init__(self, workdir, app_url):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "app", "static_configs": [{"targets": [app_url.split("//")[1]]}]}]}))
        self.log = open(self.dir / "prometheus.log", "wb")
        self.proc = subprocess.Popen([PROMETHEUS, "--config.file=%s" % (self.dir / "prometheus.yml"),
                                      "--storage.tsdb.path=%s" % (self.dir / "data"),
                                      "--web.listen-address=127.0.0.1:%d" % self.port],
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: urllib.request.urlopen(self.url + "/-/ready", timeout=1).status == 200, 30, "Prometheus")

    def query(self, expr):
        url = self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())["data"]["result"]

    def stop(self):
        _stop(self.proc)
        self.log.close()


class Env:
    """The live stack and the rendered runbooks."""

    def __init__(self, root, ansible, dumps):
        self.root, self.ansible = root, ansible
        self.things = []
        self.vaults = {}
        try:
            self.start(dumps)
        except BaseException:
            self.stop()
            raise

    def start(self, dumps):
        root = self.root
        self.redis = self.keep(RedisServer(root / "redis", REDIS_PASSWORD).start())
        self.celery = self.keep(CeleryCluster(self.redis.url, root / "celery"))
        self.celery.start_workers(names=("w1", "w2"))
        self.schedule = self.celery.start_beat(interval=1)
        self.flower = self.keep(FlowerServer(self.redis.url, root, user=FLOWER_USER, password=FLOWER_PASSWORD))
        self.app = self.keep(FakeApp().start())
        self.store_routes = {"/health": (200, {"status": "ok"})}
        self.store_api = self.keep(JsonServer(self.store_routes))
        self.am = self.keep(AlertmanagerServer(root / "alertmanager"))
        self.ssh = self.keep(SshHost(root / "ssh").start())
        self.prometheus = self.keep(PrometheusServer(root / "prometheus", self.app.url))
        self.flower.start()
        self.backups = root / "backups"
        self.backups.mkdir()
        shutil.copy(dumps / "callcenter-2026-11-25.dump.gz", self.backups)
        self.textfile = root / "textfile"
        self.textfile.mkdir()
        self.write_secrets(REDIS_PASSWORD, ADMIN_TOKEN)
        self.run_collector(REDIS_PASSWORD)
        self.inventory = root / "inventory.yml"
        local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
        self.inventory.write_text(yaml.safe_dump({"all": {"children": {
            "workers": {"hosts": {"worker1": self.ssh.inventory_vars(sys.executable)}},
            "app": {"hosts": {"app1": self.ssh.inventory_vars(sys.executable)}},
            "db": {"hosts": {"db1": local}}}}}))
        wait_for(lambda: (self.schedule.parent / "celerybeat-schedule").exists() or list(
            self.schedule.parent.glob("celerybeat-schedule*")), 30, "celery beat's schedule file")
        self.render()

    def keep(self, thing):
        self.things.append(thing)
        return thing

    def write_secrets(self, redis_password, admin_token):
        """The vault the runbooks' -e @... reads, encrypted as an operator keeps it (by ansible-vault,
        once per content: putting the right secrets back writes the file encrypted the first time)."""
        vault_pass = self.root / "vault-pass"
        vault_pass.write_text("vault-Runbook-Pass-1\n")
        secrets = self.root / "secrets.yml"
        encrypted = self.vaults.get((redis_password, admin_token))
        if encrypted is not None:
            secrets.write_bytes(encrypted)
            return
        secrets.write_text(yaml.safe_dump({"celery_broker_password": redis_password, "config_reload_app_token": admin_token}))
        subprocess.run([str(BIN / "ansible-vault"), "encrypt", "--vault-password-file", str(vault_pass), str(secrets)],
                       check=True, capture_output=True, env=self.ansible.env)
        self.vaults[(redis_password, admin_token)] = secrets.read_bytes()

    def run_collector(self, password):
        """The celery_metrics collector, installed as its role installs it (module_utils as ccops_*.py)."""
        lib = self.root / "lib"
        if not lib.exists():
            lib.mkdir()
            shutil.copy(COLLECTOR, lib)
            for name in ("celery_client", "celery_beat", "redis_client", "redact", "textfile", "params"):
                shutil.copy(REPO / "plugins" / "module_utils" / (name + ".py"), lib / ("ccops_%s.py" % name))
        env_file = self.root / "celery-metrics.env"
        env_file.write_text("CELERY_BROKER_URL=redis://127.0.0.1:%d/0\nCELERY_BROKER_PASSWORD=%s\n" % (
            self.redis.port, password))
        subprocess.run([sys.executable, str(lib / COLLECTOR.name), "--env-file", str(env_file), "--queue", "quality",
                        "--queue", "stats", "--expected-workers", ",".join(WORKERS), "--metrics-file",
                        str(self.textfile / "callcenter_celery.prom")], capture_output=True, check=False, timeout=60)

    def render(self):
        self.out = self.root / "rb"
        site = {
            "inventory": str(self.inventory),
            "secrets": "-e @%s --vault-password-file %s" % (self.root / "secrets.yml", self.root / "vault-pass"),
            "app_group": "app", "app_hosts": ["app1"], "app_url": self.app.url, "app_local_url": self.app.url,
            "worker_group": "workers", "expected_workers": WORKERS, "queues": ["quality", "stats"],
            "broker_url": "redis://127.0.0.1:%d/0" % self.redis.port, "redis_host": "127.0.0.1",
            "redis_port": self.redis.port, "celery_metrics_textfile": str(self.textfile / "callcenter_celery.prom"),
            "beat_schedule_file": str(self.schedule), "db_group": "db", "db_host": "db1",
            "backup_dir": str(self.backups), "backup_metrics_file": str(self.textfile / "callcenter_backup.prom"),
            "flower_url": self.flower.url, "flower_user": FLOWER_USER, "alertmanager_url": self.am.url,
            "store_api_health_url": self.store_api.url + "/health",
            "prometheus_url": self.prometheus.url,
        }
        pb = self.root / "render.yml"
        # the rules too, from the same variables: the runbooks must quote their expressions
        pb.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "vars": {
            "callcenter_runbook_base_url": "https://ops.example/doc/operations/runbooks",
            "prometheus_alerts_thresholds": {"queue_backlog": QUEUE_BACKLOG}}, "roles": [
            {"role": "callcenter.ops.runbooks", "vars": {"runbooks_dest": str(self.out), "runbooks_site": site}},
            {"role": "callcenter.ops.prometheus_alerts", "vars": {
                "prometheus_alerts_rules_dir": str(self.root / "rules"),
                "prometheus_alerts_file_sd_dir": str(self.root / "file_sd"),
                "prometheus_alerts_reload_method": "none"}}]}]))
        r = self.ansible.playbook(pb)
        assert r.rc == 0, r

    def run(self, block, healthy):
        env = dict(self.ansible.env, PATH="%s:%s" % (BIN, os.environ.get("PATH", "")))
        for secret in ("CELERY_BROKER_URL", "CELERY_BROKER_PASSWORD", "CALLCENTER_ADMIN_TOKEN", "REDISCLI_AUTH",
                       "ANSIBLE_PYTHON_INTERPRETER"):
            env.pop(secret, None)
        typed = STDIN.get(block.what, lambda ok: "")(healthy)
        start = time.monotonic()
        p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block.text], env=env, input=typed,
                           capture_output=True, text=True, timeout=180, start_new_session=True, cwd=str(self.root),
                           check=False)
        return p.returncode, p.stdout + p.stderr, time.monotonic() - start

    def stop(self):
        stop_all(self.things)


@pytest.fixture(scope="module")
def env(ansible, dumps, tmp_path_factory):
    e = None
    try:
        e = Env(tmp_path_factory.mktemp("runbook-commands"), ansible, dumps)
        yield e
    finally:
        if e is not None:
            e.stop()


def run_all(env, blocks, healthy):
    """Run blocks in parallel (3 at a time: the machine is shared); returns [(block, rc, output, seconds)].
    Blocks whose commands are the same (their comments aside) and get the same typed input run
    once: the runbooks share their checks (``{{ cc.celery_status() }}`` under several headings)."""
    def key(b):
        return commands(b.text), STDIN.get(b.what, lambda ok: "")(healthy)

    first = {}
    for b in blocks:
        first.setdefault(key(b), b)
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        ran = dict(zip(first, pool.map(lambda b: env.run(b, healthy), first.values())))
    return [(b,) + ran[key(b)] for b in blocks]


def commands(text):
    """What bash runs of a block: its lines without the comment lines."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def test_runbook_commands_work_as_pasted_and_fail_when_broken(env):
    blocks = blocks_of(env.out)
    shell = [b for b in blocks if b.lang == "sh"]
    assert len(shell) >= 30, blocks
    unmarked = [b for b in shell if b.kind is None]
    assert not unmarked, "every command block says what it checks or what it needs: %s" % unmarked
    for b in shell:
        for line in b.text.splitlines():
            if re.match(r"\s*(sudo )?ansible(-playbook)? ", line):
                assert " -i " in line, (b, line)
            assert not re.match(r"\s*export ", line), (b, line)
            if "dmesg" in line or "sudo " in line:
                assert b.kind == "needs" and "root" in b.what, (b, line)
            if line.strip().startswith("redis-cli"):
                assert " -p " in line and "--askpass" in line, (b, line)
    skipped = [b for b in shell if b.kind == "needs"]
    checks = [b for b in shell if b.kind == "check"]  # the same command twice runs once (run_all)
    sys.stderr.write("\nskipped by marker (%d):\n%s\n" % (len(skipped), "\n".join(
        "  %s: %s" % (b.runbook, b.text.splitlines()[0]) for b in skipped)))

    # healthy: every check passes
    started = time.monotonic()
    results = run_all(env, checks, True)
    failed = [(b, rc, out[-1500:]) for b, rc, out, _secs in results if rc != 0]
    assert not failed, failed
    sys.stderr.write("healthy: %d checks (%d distinct commands) in %.1f s\n" % (
        len(checks), len({commands(b.text) for b in checks}), time.monotonic() - started))

    def must_fail(kinds, why):
        chosen = [b for b in checks if b.what in kinds]
        assert chosen, kinds
        res = run_all(env, chosen, False)
        passed = [(b, out[-800:]) for b, rc, out, _secs in res if rc == 0]
        assert not passed, "%s: these still exit 0: %s" % (why, passed)
        return {b.text: out for b, _rc, out, _secs in res}

    # the application: breaker open, 7 callers waiting, Store API down, not ready; the newest backup corrupt
    env.app.breaker_open = True
    env.app.operator_waiting = 7
    env.app.ready = False
    env.store_routes["/health"] = (503, {"status": "down"})
    env.app.slow_answers = env.app.transfer_all = True
    good = next(env.backups.glob("*.dump.gz"))
    corrupt = env.backups / "callcenter-2026-11-26.dump.gz"
    corrupt.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    os.utime(corrupt, (time.time() + 60, time.time() + 60))
    wait_for(lambda: env.prometheus.query("histogram_quantile(0.95, sum by (le) "
                                          "(rate(callcenter_response_duration_seconds_bucket[5m]))) > 2.5") and
             env.prometheus.query("sum(increase(callcenter_calls_transferred_total[1h])) / "
                                  "sum(increase(callcenter_calls_total[1h])) > 0.6"), 30,
             "slow answers and transfers in Prometheus")
    outputs = must_fail({"breaker", "operator-queue", "store-api", "app", "backup", "prometheus"},
                        "app and backup broken")
    assert any('"circuit_breaker": "open"' in o for o in outputs.values())
    assert any('"waiting": 7' in o for o in outputs.values())
    backup_prom = (env.textfile / "callcenter_backup.prom").read_text()
    assert re.search(r"^callcenter_backup_verify_success(\{[^}]*\})? 0$", backup_prom, re.M), backup_prom
    # the backup is fixed: the Verify step rewrites the file the alert reads (success 1 at the next scrape)
    corrupt.unlink()
    env.app.breaker_open, env.app.operator_waiting, env.app.ready = False, 1, True
    env.app.slow_answers = env.app.transfer_all = False
    env.store_routes["/health"] = (200, {"status": "ok"})
    verify = [b for b in checks if b.what == "backup"]
    res = run_all(env, verify, True)
    assert all(r[1] == 0 for r in res), res
    backup_prom = (env.textfile / "callcenter_backup.prom").read_text()
    assert re.search(r"^callcenter_backup_verify_success(\{[^}]*\})? 1$", backup_prom, re.M), backup_prom

    # wrong secrets: the vault holds a wrong Redis password and admin token, a wrong password is typed
    env.write_secrets("wrong-Redis-Pass", "wrong-admin-token")
    env.run_collector("wrong-Redis-Pass")
    must_fail({"redis", "flower-login", "metrics", "reload"}, "wrong secrets")
    env.write_secrets(REDIS_PASSWORD, ADMIN_TOKEN)

    # one of two workers stopped (and beat): the confirm steps must not give an all-clear
    env.celery.workers["w2@harness"].kill()
    env.celery.beat.stop()
    outputs = must_fail({"workers", "beat"}, "one of two workers down")
    assert any("w2@harness" in o for o in outputs.values()), outputs

    # everything off: a backlog no worker takes, Flower and Alertmanager stopped
    env.celery.workers["w1@harness"].kill()
    from celery import Celery
    app = Celery("runbook-test", broker=env.redis.url, set_as_current=False)
    for _i in range(QUEUE_BACKLOG + 3):
        app.send_task("callcenter_sample.daily_stats", queue="stats")
    app.close()
    env.flower.stop()
    env.am.stop()
    outputs = must_fail({"backlog", "flower", "alertmanager"}, "backlog, Flower and Alertmanager down")
    assert any("max %d" % QUEUE_BACKLOG in o for o in outputs.values()), outputs


def test_every_promql_block_parses(env, tmp_path, promtool):
    queries = [b.text for b in blocks_of(env.out) if b.lang == "promql"]
    assert len(queries) >= 15
    rules = {"groups": [{"name": "runbook-queries", "rules": [
        {"record": "runbook:query_%d" % i, "expr": q} for i, q in enumerate(queries)]}]}
    (tmp_path / "q.yml").write_text(yaml.safe_dump(rules))
    p = promtool(["check", "rules", str(tmp_path / "q.yml")])
    assert p.returncode == 0, p.stdout + p.stderr


def test_what_fired_quotes_the_rules_expressions(env):
    """The runbooks' expressions are the rules' own, with the same (merged) thresholds."""
    def squash(text):
        return re.sub(r"\s+", "", text)

    quoted = {squash(b.text) for b in blocks_of(env.out) if b.lang == "promql"}
    rules = list((env.root / "rules").glob("*.yml"))
    assert len(rules) == 4, rules  # celery, app, backup and replication rules
    for f in rules:
        for group in yaml.safe_load(f.read_text())["groups"]:
            for rule in group["rules"]:
                if rule["alert"] == "Watchdog":
                    continue
                assert squash(rule["expr"]) in quoted, (rule["alert"], rule["expr"])
