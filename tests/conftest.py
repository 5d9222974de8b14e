"""The real-services test harness.

Every server a test needs is started here for real, on 127.0.0.1, on a free port, in a
temporary directory, and stopped afterwards: redis-server, PostgreSQL 15 (initdb), Celery
workers and beat of the sample app in ``tests/sample_app``. ``ansible`` runs modules and
playbooks through the real ``ansible``/``ansible-playbook`` against the collection built
from this checkout. Later features add their servers here as fixtures of the same shape.
"""

import atexit
import contextlib
import fcntl
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

# The components themselves are written once, in tests/harness.py (the demo and the
# benchmarks use them too); here they become fixtures that stop them after each test.
# Re-exported for the test modules (from conftest import ...): one name, one definition.
from harness import (ALERTS_QUERY, BIN, PG_BIN, REPO, SAMPLE_APP, AlertmanagerServer, CeleryCluster,  # noqa: F401 pylint: disable=unused-import
                     CeleryProcess, FlowerServer, JsonServer, PostgresCluster, RedisServer, Stack, _stop, celery_ping,
                     free_port, wait_for)


# Make ``ansible_collections.callcenter.ops`` importable from this checkout for unit tests
# (the integration tests use the built and installed collection instead).
_IMPORT_ROOT = Path(tempfile.mkdtemp(prefix="ccops-import-"))
(_IMPORT_ROOT / "ansible_collections" / "callcenter").mkdir(parents=True)
(_IMPORT_ROOT / "ansible_collections" / "callcenter" / "ops").symlink_to(REPO)
sys.path.insert(0, str(_IMPORT_ROOT))
atexit.register(shutil.rmtree, str(_IMPORT_ROOT), True)


@contextlib.contextmanager
def stopped_afterwards(build):
    """The body of every factory fixture: ``make(...)`` calls ``build(index, ...)`` and keeps
    what it returns; at teardown everything made is stopped, even if the test stopped it first."""
    made = []

    def make(*args, **kwargs):
        thing = build(len(made), *args, **kwargs)
        made.append(thing)
        return thing

    try:
        yield make
    finally:
        stop_all(made)


def stop_all(things):
    """Stop every server in ``things``, the last started first; one failed stop must not leave
    the others running."""
    for thing in reversed(list(things)):
        try:
            thing.stop()
        except Exception:  # pylint: disable=broad-except
            pass


@pytest.fixture
def redis_factory(tmp_path):
    with stopped_afterwards(lambda i, password=None: RedisServer(tmp_path / ("redis%d" % i), password).start()) as make:
        yield make


@pytest.fixture
def redis_server(redis_factory):
    """A fresh Redis with a password, for one test."""
    return redis_factory(password="s3cret-Pa55")


@pytest.fixture
def celery_factory(tmp_path):
    with stopped_afterwards(lambda i, broker_url, app="callcenter_sample":
                            CeleryCluster(broker_url, tmp_path / ("celery%d" % i), app)) as make:
        yield make


@pytest.fixture(scope="session")
def postgres():
    pg = PostgresCluster().start()
    yield pg
    pg.stop()


# --------------------------------------------------------------------------- backups
@pytest.fixture(scope="session")
def dumps(request, tmp_path_factory):
    """A small call-center database dumped the ways the platform does: -Fc -Z0 gzip'ed
    (the nightly *.dump.gz), -Fc with pg_dump's own compression, and a plain-SQL dump.
    Made once per run: the first pytest-xdist process that needs them makes them (with its
    PostgreSQL) under a lock, the others read the same files (the tests only read them)."""
    base = tmp_path_factory.getbasetemp()
    # a worker's basetemp is <the run's basetemp>/popen-gwN: the run's one is shared by its workers only
    d = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "dumps"
    with open(str(d) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (d / "callcenter-2026-11-25.dump.gz").exists():
            made = Path(tempfile.mkdtemp(prefix="dumps-", dir=str(d.parent)))
            make_dumps(request.getfixturevalue("postgres"), made)
            made.rename(d)
    return d


def make_dumps(postgres, d):
    postgres.psql("CREATE DATABASE callcenter")
    postgres.psql("""
        CREATE TABLE calls (id serial PRIMARY KEY, started_at timestamptz DEFAULT now(), transcript text);
        CREATE TABLE operators (id serial PRIMARY KEY, name text);
        INSERT INTO calls (transcript)
            SELECT md5(i::text) || md5((i * 7)::text) || md5((i * 13)::text) || ' hello operator'
            FROM generate_series(1, 60000) i;
        INSERT INTO operators (name) SELECT 'op' || i FROM generate_series(1, 50) i;
    """, db="callcenter")
    env = dict(os.environ, PGPASSWORD=postgres.password)
    base = [str(PG_BIN / "pg_dump"), "-h", "127.0.0.1", "-p", str(postgres.port), "-U", "postgres"]
    subprocess.run(base + ["-Fc", "-Z0", "-f", str(d / "raw.dump"), "callcenter"], env=env, check=True)
    subprocess.run(base + ["-Fc", "-f", str(d / "pgz.dump"), "callcenter"], env=env, check=True)
    subprocess.run(base + ["-Fp", "-f", str(d / "plain.sql"), "callcenter"], env=env, check=True)
    with open(d / "raw.dump", "rb") as src, gzip.open(d / "callcenter-2026-11-25.dump.gz", "wb", 6) as dst:
        shutil.copyfileobj(src, dst)
    with open(d / "plain.sql", "rb") as src, gzip.open(d / "plain.sql.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)


# --------------------------------------------------------------------------- stopped by SIGTERM
def _terminated(signum, frame):  # pylint: disable=unused-argument
    """SIGTERM (a CI timeout, `kill` of scripts/test.sh's process group) ends the run the way
    Ctrl-C does: pytest tears the fixtures down, so the servers they started in sessions of their
    own (redis-server, PostgreSQL, Celery, Flower, Prometheus...) are stopped, not left running.
    A second SIGTERM kills at once."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise KeyboardInterrupt("SIGTERM")


def pytest_configure(config):  # pylint: disable=unused-argument
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)


# --------------------------------------------------------------------------- longest files first
# pytest-xdist (--dist loadfile) hands files out in collection order; its default order (most
# tests first) put the few-test, minute-long files last, where one of them alone kept the run
# going for minutes after the other processes had finished. scripts/test.sh passes
# --no-loadscope-reorder and this order applies: the longest files (wall time of one run on
# 2 cores, longest first) start first, every other file after them in its usual order.
LONGEST_FIRST = (
    "test_alert_loop.py", "test_celery_metrics_role.py", "test_runbook_commands.py",
    "test_awx_runner.py", "test_celery_health.py", "test_prometheus_alerts_role.py", "test_system_status.py",
    "test_sentinel.py", "test_alertmanager_role.py", "test_flower_role.py", "test_celery_purge.py",
    "test_return_docs.py", "test_deploy_playbook.py", "test_packaging.py", "test_backup_verify.py",
    "test_backup_verify_role.py", "test_config_reload.py", "test_alert_actions.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


# --------------------------------------------------------------------------- no silent skips in CI
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # pylint: disable=unused-argument
    """Under CI=true a skipped test is a failed one: the CI machine has everything the README's
    test command installs, so a skip there means a check that silently did not run."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI", "").lower() in ("true", "1") and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = "skipped under CI=true, so this check did not run: %s" % reason


# --------------------------------------------------------------------------- modules in-process
class ModuleResult(dict):
    """A module's JSON result; ``failed`` is True when it ended with fail_json."""

    @property
    def failed(self):
        return bool(self.get("failed"))


def run_module(name, args, env=None):
    """Run ``callcenter.ops.<name>``'s main() in this process with ``args`` as `ansible -m` would
    pass them, and return what it printed (parsed): for the checks that need no server (the
    argument handling and the sentences bad input gets, tests/unit/plugins/modules). Environment
    variables of ``env`` are set for the run only (None: unset)."""
    import importlib
    import io
    from contextlib import redirect_stdout
    from ansible.module_utils.testing import patch_module_args
    module = importlib.import_module("ansible_collections.callcenter.ops.plugins.modules." + name)
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in (env or {}).items():
            if value is None:
                mp.delenv(key, raising=False)
            else:
                mp.setenv(key, value)
        with patch_module_args(args), redirect_stdout(out):
            with pytest.raises(SystemExit) as ended:
                module.main()
    result = ModuleResult(json.loads(out.getvalue()))
    assert ended.value.code == (1 if result.failed else 0), (ended.value.code, result)
    return result


@pytest.fixture
def module_run():
    return run_module


# --------------------------------------------------------------------------- ansible
@pytest.fixture(scope="session")
def collections_path(tmp_path_factory):
    """The collection as users get it: built from this checkout and installed.
    scripts/test.sh builds it once and passes CALLCENTER_OPS_COLLECTIONS; plain pytest builds it here."""
    given = os.environ.get("CALLCENTER_OPS_COLLECTIONS")
    if given:
        return Path(given)
    dest = tmp_path_factory.mktemp("collections")
    out = tmp_path_factory.mktemp("build")
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(REPO)],
                   check=True, capture_output=True)
    tarball = next(out.glob("callcenter-ops-*.tar.gz"))
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "--offline", "-p", str(dest), str(tarball)],
                   check=True, capture_output=True, env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(dest)))
    return dest


class Result:
    def __init__(self, rc, stdout, stderr, duration, result=None):
        self.rc, self.stdout, self.stderr, self.duration, self.result = rc, stdout, stderr, duration, result or {}

    @property
    def output(self):
        return self.stdout + self.stderr

    def __getitem__(self, key):
        return self.result[key]

    def get(self, key, default=None):
        return self.result.get(key, default)

    def __repr__(self):
        return "Result(rc=%s, %.2fs, result=%s, stdout=%s, stderr=%s)" % (
            self.rc, self.duration, json.dumps(self.result)[:2000], self.stdout[-2000:], self.stderr[-2000:])


class Ansible:
    """Runs modules and playbooks the way operators do: the real CLI, the installed collection."""

    def __init__(self, collections, home):
        self.env = dict(os.environ)
        self.env.update(
            ANSIBLE_COLLECTIONS_PATH=str(collections),
            ANSIBLE_HOME=str(home),
            ANSIBLE_PYTHON_INTERPRETER=sys.executable,
            ANSIBLE_LOCALHOST_WARNING="false",
            ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_RETRY_FILES_ENABLED="false",
            PATH="%s:%s" % (BIN, os.environ.get("PATH", "")),
        )
        # this checkout's settings, never the machine's ansible.cfg (scripts/lib.sh sets the same)
        self.env.setdefault("ANSIBLE_CONFIG", str(REPO / "scripts" / "ansible.cfg"))
        # SSH connections' ControlPersist sockets in this run's home, not in ~/.ansible/cp
        self.env.setdefault("ANSIBLE_SSH_CONTROL_PATH_DIR", str(Path(home) / "cp"))
        self.home = Path(home)

    def module(self, name, args, check=False, verbosity=0, timeout=120, env=None):
        """``ansible localhost -m callcenter.ops.<name>``; returns a Result whose ``result`` is the
        module's JSON (read through the tree callback, not scraped from the screen)."""
        tree = Path(tempfile.mkdtemp(dir=self.home))
        run_env = dict(self.env, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.tree",
                       ANSIBLE_CALLBACK_TREE_DIR=str(tree), **(env or {}))
        cmd = [str(BIN / "ansible"), "localhost", "-m", "callcenter.ops." + name, "-a", json.dumps(args)]
        if check:
            cmd.append("--check")
        if verbosity:
            cmd.append("-" + "v" * verbosity)
        start = time.monotonic()
        p = subprocess.run(cmd, env=run_env, check=False, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        duration = time.monotonic() - start
        result = {}
        if (tree / "localhost").exists():
            result = json.loads((tree / "localhost").read_text())
        shutil.rmtree(tree, ignore_errors=True)
        return Result(p.returncode, p.stdout, p.stderr, duration, result)

    def playbook(self, playbook, extra_vars=None, check=False, verbosity=0, timeout=300, stdin=None, env=None,
                 inventory="localhost,"):
        cmd = [str(BIN / "ansible-playbook"), "-i", inventory, "-c", "local", str(playbook)]
        if extra_vars:
            cmd += ["-e", json.dumps(extra_vars)]
        if check:
            cmd.append("--check")
        if verbosity:
            cmd.append("-" + "v" * verbosity)
        start = time.monotonic()
        p = subprocess.run(cmd, env=dict(self.env, **(env or {})), check=False, capture_output=True, text=True, timeout=timeout,
                           input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)
        return Result(p.returncode, p.stdout, p.stderr, time.monotonic() - start)

    def refusals(self, role, cases, workdir, verbosity=0):
        """Apply ``role`` once per case (a dict of role variables) in ONE ansible-playbook run,
        each in a block whose rescue records why the role stopped: a role's refusals of bad
        input cost one Ansible start, not one per case. Returns ``(result, messages)``: the
        run, and per case the failure message (None when the role did not fail)."""
        out = Path(workdir) / "refusals.json"
        tasks = [{"name": "Start with nothing recorded", "ansible.builtin.set_fact": {"refused": {}}}]
        for i, variables in enumerate(cases):
            tasks.append({"name": "Case %d" % i, "block": [
                {"name": "Apply the role (case %d)" % i,
                 "ansible.builtin.include_role": {"name": role}, "vars": variables},
                {"name": "It did not stop", "ansible.builtin.set_fact": {"refused": "{{ refused | combine({'%d': None}) }}" % i}},
            ], "rescue": [
                {"name": "Record why it stopped", "ansible.builtin.set_fact": {
                    "refused": "{{ refused | combine({'%d': ansible_failed_result.msg | default('') | string}) }}" % i}},
            ]})
        tasks.append({"name": "Write what each case got", "ansible.builtin.copy": {
            "content": "{{ refused | to_json }}", "dest": str(out), "mode": "0600"}})
        pb = Path(workdir) / "refusals.yml"
        pb.write_text(json.dumps([{"name": "Refusals of %s" % role, "hosts": "localhost", "gather_facts": False,
                                   "tasks": tasks}]))
        r = self.playbook(pb, verbosity=verbosity)
        got = json.loads(out.read_text()) if out.exists() else {}
        return r, [got.get(str(i), "(case not reached)") for i in range(len(cases))]


@pytest.fixture(scope="session")
def ansible(collections_path, tmp_path_factory):
    a = Ansible(collections_path, tmp_path_factory.mktemp("ansible-home"))
    yield a
    # SSH masters kept open by ControlPersist end with the run, not 60 s after it
    for sock in (a.home / "cp").glob("*"):
        subprocess.run(["ssh", "-O", "exit", "-o", "ControlPath=%s" % sock, "x"], capture_output=True, timeout=10,
                       check=False, stdin=subprocess.DEVNULL)


# --------------------------------------------------------------------------- the application (stand-in)
@pytest.fixture
def fake_app(tmp_path):
    """Factory of servers that follow docs/app-http-contract.md (tests/fake_app.py)."""
    from fake_app import FakeApp, self_signed

    def build(_index, tls=False):
        cert, key = self_signed(tmp_path) if tls else (None, None)
        app = FakeApp(cert, key).start()
        app.cert = cert
        return app

    with stopped_afterwards(build) as make:
        yield make


@pytest.fixture
def flower_factory(tmp_path):
    with stopped_afterwards(lambda _i, broker_url, **kw: FlowerServer(broker_url, tmp_path, **kw).start()) as make:
        yield make


@pytest.fixture
def blackhole():
    """A TCP port that accepts connections and never answers."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(16)
    yield lst.getsockname()[1]
    lst.close()


@pytest.fixture(scope="session")
def promtool():
    """promtool (Debian package prometheus): ``promtool(args, text=None, cwd=None)`` runs it and returns
    the completed process. Without it the test is skipped, never silently passed (under CI, a failure)."""
    tool = shutil.which("promtool")
    if not tool:
        pytest.skip("promtool (Debian package prometheus) not installed")
    return lambda args, text=None, cwd=None: subprocess.run([tool] + list(args), input=text, cwd=cwd, capture_output=True,
                                                            text=True, check=False)
