"""The one local stack of callcenter.ops: every server the demo, the tests and the benchmarks
run, written once.

Each component is started for real on 127.0.0.1 in a directory of its own: redis-server,
PostgreSQL 15 (initdb), Celery workers and beat of the sample app in ``tests/sample_app``,
Flower, the application stand-in (``tests/fake_app.py``), the Telegram Bot API stand-in
(``tests/telegram_stub.py``), and the monitoring half: Prometheus, Alertmanager and
node-exporter (Debian packages), configured by the collection's own roles.

The tests use the component classes through ``tests/conftest.py`` (free ports, temp dirs,
stopped after each test). ``Stack`` puts them together for the demo and the loop tests, and
remembers what it started in ``<dir>/stack.json`` so a later command (status, incident, heal,
stop) finds it again. CLI::

    python tests/harness.py up      --dir DIR [--demo-ports]   start what is not running
    python tests/harness.py status  --dir DIR                  the collection's status playbooks
    python tests/harness.py incident --dir DIR worker-down|backlog|backup-corrupt
    python tests/harness.py heal    --dir DIR                  undo every incident
    python tests/harness.py stop    --dir DIR                  stop what the stack started

Nothing here touches a process it did not start: PIDs come from its own state file and are
checked against the command line they were started with before any signal is sent.
"""

import argparse
import datetime
import gzip
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
SAMPLE_APP = TESTS / "sample_app"
BIN = Path(sys.executable).parent
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception as e:  # the server is still starting
            last = e
        time.sleep(0.05)
    raise TimeoutError("%s not ready after %ss (%s)" % (what, timeout, last))


def _stop(proc, sig=signal.SIGTERM, timeout=10):
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


# --------------------------------------------------------------------------- redis
class RedisServer:
    """A redis-server on 127.0.0.1:<free port>, optionally with a password."""

    def __init__(self, workdir, password=None):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.password = password
        self.port = free_port()
        self.proc = None

    @property
    def url(self):
        auth = ":%s@" % self.password if self.password else ""
        return "redis://%s127.0.0.1:%d/0" % (auth, self.port)

    def client(self):
        import redis
        return redis.Redis(port=self.port, password=self.password, socket_timeout=5)

    def command(self):
        """redis-server's command line (tests/replication.py adds replication to it)."""
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
               "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", str(self.dir / "redis.log")]
        if self.password:
            cmd += ["--requirepass", self.password]
        return cmd

    def start(self):
        cmd = self.command()
        self.proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self.client().ping(), 10, "redis-server on port %d" % self.port)
        return self

    def stop(self):
        if self.proc:
            _stop(self.proc)

    def kill(self):
        if self.proc:
            _stop(self.proc, signal.SIGKILL)


# --------------------------------------------------------------------------- celery
class CeleryProcess:
    """A Celery worker or beat of the sample app, in its own process group."""

    def __init__(self, broker_url, argv, logfile, app="callcenter_sample", env=None):
        env = dict(os.environ, CELERY_BROKER_URL=broker_url, PYTHONPATH=str(SAMPLE_APP), **(env or {}))
        self.log = open(logfile, "wb")
        self.proc = subprocess.Popen([str(BIN / "celery"), "-A", app] + argv, cwd=str(SAMPLE_APP),
                                     env=env, start_new_session=True, stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self):
        _stop(self.proc, timeout=3)  # a worker in warm shutdown would wait for its task
        self.log.close()

    def kill(self):
        """SIGKILL the whole process group: a crash, no goodbye event."""
        _stop(self.proc, signal.SIGKILL)


def celery_ping(broker_url, names, timeout=1.0):
    from celery import Celery
    app = Celery("harness", broker=broker_url, set_as_current=False)
    try:
        replies = app.control.ping(destination=list(names), timeout=timeout, limit=len(names)) or []
        return sorted(k for r in replies for k in r)
    finally:
        app.close()


class CeleryCluster:
    def __init__(self, broker_url, workdir, app="callcenter_sample"):
        self.broker_url = broker_url
        self.app = app  # tests/sample_app module: callcenter_sample, or callcenter_sample_prio (steps 0..9)
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.workers = {}
        self.beat = None

    def start_workers(self, names=("w1", "w2"), queues=("quality", "stats"), concurrency=1, pool="prefork",
                      wait=True):
        started = []
        for short in names:
            node = "%s@harness" % short
            argv = ["worker", "-n", node, "-Q", ",".join(queues), "-c", str(concurrency), "-P", pool,
                    "-l", "warning", "--without-gossip", "--without-mingle", "--prefetch-multiplier", "1"]
            self.workers[node] = CeleryProcess(self.broker_url, argv, self.dir / ("%s.log" % short), self.app)
            started.append(node)
        if wait:
            wait_for(lambda: celery_ping(self.broker_url, started) == sorted(started), 30,
                     "celery workers %s" % started)
        return started

    def start_beat(self, interval=1):
        self.schedule = self.dir / "celerybeat-schedule"
        self.beat = CeleryProcess(self.broker_url, ["beat", "-s", str(self.schedule), "-l", "warning"],
                                  self.dir / "beat.log", env={"SAMPLE_BEAT_INTERVAL": str(interval)})
        return self.schedule

    def kill(self, node):
        self.workers[node].kill()

    def stop(self):
        for w in self.workers.values():
            w.stop()
        if self.beat:
            self.beat.stop()


# --------------------------------------------------------------------------- postgres
class PostgresCluster:
    """A PostgreSQL 15 cluster made with initdb (as the postgres user when root)."""

    def __init__(self, password="pg-Secret-1"):
        self.dir = Path(tempfile.mkdtemp(prefix="ccops-pg-"))
        self.port = free_port()
        self.password = password
        self.user = "postgres"
        self._as = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    @property
    def dsn(self):
        return "host=127.0.0.1 port=%d user=postgres password=%s dbname=postgres" % (self.port, self.password)

    def run(self, *argv, **kw):
        return subprocess.run(self._as + list(argv), check=True, capture_output=True, **kw)

    def start(self):
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password + "\n")
        if self._as:
            shutil.chown(pwfile, "postgres")
        # --no-sync: a throw-away cluster need not wait for its ~1,000 new files to reach the disk
        self.run(str(PG_BIN / "initdb"), "-D", str(self.dir / "data"), "-U", "postgres", "--auth=scram-sha-256",
                 "--pwfile", str(pwfile), "-E", "UTF8", "--locale=C", "--no-sync")
        opts = "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off" % (self.port, self.dir)
        self.run(str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-o", opts, "-l", str(self.dir / "log"),
                 "-w", "start")
        return self

    def psql(self, sql, db="postgres"):
        env = dict(os.environ, PGPASSWORD=self.password)
        return subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db,
                               "-v", "ON_ERROR_STOP=1", "-qAtc", sql], env=env, check=True,
                              capture_output=True, text=True).stdout

    def stop(self):
        try:
            self.run(str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------- flower
class FlowerServer:
    """Real Flower (celery flower) on a free loopback port with basic auth (none with auth=False)."""

    def __init__(self, broker_url, workdir, user="ops", password="Flower-Test-Pass-1", auth=True):
        self.port = free_port()
        self.auth = (user, password) if auth else None
        self.url = "http://127.0.0.1:%d/" % self.port
        env = dict(os.environ, CELERY_BROKER_URL=broker_url, FLOWER_PORT=str(self.port), FLOWER_ADDRESS="127.0.0.1")
        env.pop("FLOWER_BASIC_AUTH", None)
        if auth:
            env["FLOWER_BASIC_AUTH"] = "%s:%s" % self.auth
        self.log = open(Path(workdir) / ("flower-%d.log" % self.port), "wb")
        self.proc = subprocess.Popen([str(BIN / "celery"), "flower"], env=env, cwd=str(workdir),
                                     start_new_session=True, stdout=self.log, stderr=subprocess.STDOUT)

    def start(self):
        import urllib.error
        import urllib.request

        def answers():
            try:
                urllib.request.urlopen(self.url, timeout=1)
            except urllib.error.HTTPError as e:
                return e.code == 401
            return self.auth is None
        wait_for(answers, 30, "flower on port %d" % self.port)
        return self

    def stop(self):
        _stop(self.proc)
        self.log.close()


# --------------------------------------------------------------------------- alertmanager, fixed answers
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager") or "prometheus-alertmanager"
ALERTS_QUERY = "/api/v2/alerts?active=true&silenced=false&inhibited=false"


class AlertmanagerServer:
    """A real Alertmanager (Debian's 0.25) on a free loopback port, clustering off, its data in
    ``workdir``; ``config_file`` or a null receiver."""

    def __init__(self, workdir, config_file=None):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        if config_file is None:
            config_file = self.dir / "alertmanager.yml"
            config_file.write_text("route: {receiver: 'null'}\nreceivers: [{name: 'null'}]\n")
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log = open(self.dir / "alertmanager.log", "wb")
        self.proc = subprocess.Popen(
            [ALERTMANAGER, "--config.file=%s" % config_file, "--storage.path=%s" % (self.dir / "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port, "--cluster.listen-address="],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: urllib.request.urlopen(self.url + "/-/ready", timeout=1).status == 200, 20, "Alertmanager")

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=5) as r:
            return json.loads(r.read())

    def firing(self):
        return self.get(ALERTS_QUERY)

    def post_alert(self, labels, annotations, ends_at=None, wait=False):
        """POST one alert (resolved when ``ends_at`` is in the past); ``wait``: until it is listed."""
        before = len(self.firing()) if wait else 0
        alert = {"labels": labels, "annotations": annotations, "generatorURL": "http://127.0.0.1:9090/graph"}
        if ends_at:
            alert["endsAt"] = ends_at.isoformat()
        req = urllib.request.Request(self.url + "/api/v2/alerts", data=json.dumps([alert]).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 200
        if wait:
            wait_for(lambda: len(self.firing()) > before, 10, "the posted alert in Alertmanager")

    def post_alert_and_wait(self, labels, annotations):
        self.post_alert(labels, annotations, wait=True)

    def stop(self):
        _stop(self.proc)
        self.log.close()


class JsonServer:
    """A loopback HTTP server giving fixed answers: ``routes`` maps a path (None: any path) to
    ``(status, body)``; a body that is not bytes is sent as JSON. For contracts broken on purpose."""

    def __init__(self, routes):
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                status, body = routes.get(self.path, routes.get(None, (404, {"error": "not found"})))
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                if not isinstance(body, bytes):
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# --------------------------------------------------------------------------- processes the stack keeps
def proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def proc_alive(pid, marker):
    """True when ``pid`` runs and its command line still holds ``marker`` (so a PID reused by
    another program is never taken for ours)."""
    if not pid or pid <= 1:
        return False
    try:
        with open("/proc/%d/stat" % pid) as fh:
            if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
    except (OSError, IndexError):
        return False
    return marker in proc_cmdline(pid)


def stop_pid(pid, marker, timeout=10):
    """SIGTERM the process group ``pid`` leads (each daemon is started in a session of its own),
    then SIGKILL after ``timeout``; only when ``pid`` is still the process we started."""
    if not proc_alive(pid, marker):
        return False
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not proc_alive(pid, marker):
                return True
            time.sleep(0.1)
    return True


def spawn(argv, log, env=None, cwd=None):
    """Start a daemon of the stack in its own session; returns its PID. It outlives this process."""
    with open(log, "ab") as out:
        proc = subprocess.Popen([str(a) for a in argv], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, cwd=cwd and str(cwd), start_new_session=True)
    return proc.pid


def http_ok(url, timeout=1.0):
    req = urllib.request.Request(url)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def get_json(url, timeout=5.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read().decode("utf-8"))


# --------------------------------------------------------------------------- the stack
DEMO_PORTS = dict(redis=16379, postgres=15432, flower=15555, app=18080, telegram=18081, runbooks=18082,
                  prometheus=19090, alertmanager=19093, node_exporter=19100)
# Timings short enough that an alert loop takes a minute or two; production keeps the roles'
# defaults (worker_down_for 5m, Flower purge_offline_workers 300 s, ...).
FAST = dict(scrape_interval="2s", worker_down_for="20s", queue_backlog=20, queue_backlog_for="10s",
            flower_purge_offline_workers=10, metrics_every=10, group_wait="2s", group_interval="10s")
WORKERS = ("w1", "w2")
QUEUES = ("quality", "stats")
NODE_EXPORTER = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter") or "prometheus-node-exporter"


def log(msg):
    sys.stderr.write("\033[1m==> %s\033[0m\n" % msg if sys.stderr.isatty() else "==> %s\n" % msg)
    sys.stderr.flush()


class Stack:
    """The whole platform on loopback under one directory, remembered in ``stack.json``."""

    def __init__(self, directory, ports=None, ansible_env=None, timings=None, host="demo"):
        self.dir = Path(directory).resolve()
        self.state_file = self.dir / "stack.json"
        self.state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
        self.state.setdefault("pids", {})
        self.state.setdefault("incidents", [])
        if ports:
            self.state["ports"] = dict(ports)
        self.state.setdefault("ports", {})
        for k in DEMO_PORTS:  # a port added to the stack later gets one too
            self.state["ports"].setdefault(k, free_port())
        self.state["timings"] = dict(FAST, **(timings or self.state.get("timings") or {}))
        self.state.setdefault("host", host)
        self.env = dict(ansible_env or os.environ)
        self.env.setdefault("ANSIBLE_PYTHON_INTERPRETER", sys.executable)
        self.env.update(ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
                        ANSIBLE_RETRY_FILES_ENABLED="false")
        self.env["PATH"] = "%s:%s" % (BIN, self.env.get("PATH", ""))

    # -- state
    @property
    def ports(self):
        return self.state["ports"]

    @property
    def timings(self):
        return self.state["timings"]

    def save(self):
        tmp = self.state_file.with_suffix(".tmp")
        with open(os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
            json.dump(self.state, fh, indent=2, sort_keys=True)
        os.rename(str(tmp), str(self.state_file))

    def secret(self, name):
        s = self.state.setdefault("secrets", {})
        if name not in s:
            s[name] = "%s-%s" % (name, secrets.token_urlsafe(12).replace("-", "x").replace("_", "y"))
            if name == "telegram":  # a bot token has @BotFather's shape: digits, a colon, then letters
                s[name] = "%d:%s" % (secrets.randbelow(10 ** 9) + 10 ** 9, secrets.token_urlsafe(26))
            self.save()  # a secret is written once (initdb, requirepass): never lose it
        return s[name]

    @property
    def broker_url(self):
        return "redis://:%s@127.0.0.1:%d/0" % (self.secret("redis"), self.ports["redis"])

    def url(self, name, path=""):
        return "http://127.0.0.1:%d%s" % (self.ports[name], path)

    def nodes(self):
        return ["%s@%s" % (w, self.state["host"]) for w in WORKERS]

    def running(self, name):
        p = self.state["pids"].get(name)
        return bool(p) and proc_alive(p["pid"], p["marker"])

    def daemon(self, name, argv, marker, env=None, cwd=None):
        """Start ``name`` unless it already runs; remember its PID and command-line marker."""
        if self.running(name):
            return False
        pid = spawn(argv, self.dir / "logs" / ("%s.log" % name), env=env, cwd=cwd)
        self.state["pids"][name] = dict(pid=pid, marker=marker)
        self.save()
        return True

    # -- components
    def start_redis(self):
        if self.daemon("redis", ["redis-server", "--port", self.ports["redis"], "--bind", "127.0.0.1",
                                 "--dir", self.dir / "redis", "--save", "", "--appendonly", "no",
                                 "--requirepass", self.secret("redis")], "redis-server"):
            log("redis-server on 127.0.0.1:%d (password in %s)" % (self.ports["redis"], self.state_file))
        wait_for(lambda: socket.create_connection(("127.0.0.1", self.ports["redis"]), 1).close() is None, 15,
                 "redis-server")

    def celery_env(self):
        return dict(os.environ, CELERY_BROKER_URL=self.broker_url, PYTHONPATH=str(SAMPLE_APP),
                    SAMPLE_BEAT_INTERVAL=os.environ.get("SAMPLE_BEAT_INTERVAL", "5"))

    def start_worker(self, short):
        node = "%s@%s" % (short, self.state["host"])
        if self.daemon("worker-" + short, [BIN / "celery", "-A", "callcenter_sample", "worker", "-n", node,
                                           "-Q", ",".join(QUEUES), "-c", "1", "-l", "info", "--without-gossip",
                                           "--without-mingle", "--prefetch-multiplier", "1"],
                       node, env=self.celery_env(), cwd=SAMPLE_APP):
            log("Celery worker %s (queues %s)" % (node, ", ".join(QUEUES)))

    def start_beat(self):
        if self.daemon("beat", [BIN / "celery", "-A", "callcenter_sample", "beat", "-s",
                                self.dir / "celerybeat-schedule", "-l", "info"], "celerybeat-schedule",
                       env=self.celery_env(), cwd=SAMPLE_APP):
            log("celery beat (last_daily_stats every %ss)" % self.celery_env()["SAMPLE_BEAT_INTERVAL"])

    def start_flower(self):
        env = dict(self.celery_env(), FLOWER_PORT=str(self.ports["flower"]), FLOWER_ADDRESS="127.0.0.1",
                   FLOWER_BASIC_AUTH="ops:%s" % self.secret("flower"),
                   FLOWER_PURGE_OFFLINE_WORKERS=str(self.timings["flower_purge_offline_workers"]))
        if self.daemon("flower", [BIN / "celery", "flower"], "flower", env=env, cwd=self.dir / "flower"):
            log("Flower on %s (user ops, basic auth)" % self.url("flower"))

    def start_app(self):
        if self.daemon("app", [sys.executable, TESTS / "fake_app.py", self.ports["app"]], "fake_app.py"):
            log("application stand-in on %s" % self.url("app"))

    def start_telegram(self):
        if self.daemon("telegram", [sys.executable, TESTS / "telegram_stub.py", self.ports["telegram"], "--log",
                                    self.dir / "telegram.jsonl"], "telegram_stub.py"):
            log("Telegram Bot API stand-in on %s (messages in %s)"
                % (self.url("telegram"), self.dir / "telegram.jsonl"))

    def pg_as(self):
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def start_postgres(self):
        pg = self.dir / "pg"
        data = pg / "data"
        if not data.exists():
            log("PostgreSQL 15 cluster in %s (initdb)" % pg)
            pg.mkdir(parents=True, exist_ok=True)
            pw = pg / "pw"
            pw.write_text(self.secret("postgres") + "\n")
            if os.geteuid() == 0:
                pwent = pwd.getpwnam("postgres")
                for p in (pg, pw):
                    os.chown(str(p), pwent.pw_uid, pwent.pw_gid)
            subprocess.run(self.pg_as() + [str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres",
                                           "--auth=scram-sha-256", "--pwfile", str(pw), "-E", "UTF8", "--locale=C"],
                           check=True, capture_output=True)
            pw.unlink()
        st = subprocess.run(self.pg_as() + [str(PG_BIN / "pg_ctl"), "-D", str(data), "status"],
                            capture_output=True, check=False)
        if st.returncode != 0:
            log("PostgreSQL on 127.0.0.1:%d" % self.ports["postgres"])
            subprocess.run(self.pg_as() + [str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(pg / "log"), "-w", "-o",
                                           "-p %d -k %s -c listen_addresses=127.0.0.1" % (self.ports["postgres"], pg),
                                           "start"], check=True, capture_output=True)
        self.psql_env = dict(os.environ, PGPASSWORD=self.secret("postgres"))
        base = ["psql", "-h", "127.0.0.1", "-p", str(self.ports["postgres"]), "-U", "postgres", "-v", "ON_ERROR_STOP=1",
                "-qAt"]
        have = subprocess.run(base + ["-c", "SELECT 1 FROM pg_database WHERE datname='callcenter'"],
                              env=self.psql_env, capture_output=True, text=True, check=True).stdout.strip()
        if have != "1":
            subprocess.run(base + ["-c", "CREATE DATABASE callcenter"], env=self.psql_env, check=True,
                           capture_output=True)
            subprocess.run(base + ["-d", "callcenter", "-c",
                                   "CREATE TABLE calls (id serial PRIMARY KEY, transcript text); INSERT INTO calls "
                                   "(transcript) SELECT md5(i::text) FROM generate_series(1, 5000) i;"],
                           env=self.psql_env, check=True, capture_output=True)
        backups = self.dir / "backups"
        backups.mkdir(exist_ok=True)
        if not list(backups.glob("*.dump.gz")):
            self.make_backup()

    def make_backup(self):
        dest = self.dir / "backups" / ("callcenter-%s.dump.gz" % datetime.date.today().isoformat())
        log("tonight's backup: pg_dump -Fc -Z0 | gzip > %s" % dest)
        dump = subprocess.run([str(PG_BIN / "pg_dump"), "-h", "127.0.0.1", "-p", str(self.ports["postgres"]), "-U",
                               "postgres", "-Fc", "-Z0", "callcenter"], env=self.psql_env, check=True,
                              capture_output=True).stdout
        with gzip.open(str(dest), "wb", 6) as fh:
            fh.write(dump)
        return dest

    # -- the monitoring half, configured by the collection's roles
    def role_vars(self):
        import yaml
        t = self.timings
        thresholds = yaml.safe_load((REPO / "roles/prometheus_alerts/defaults/main.yml").read_text())[
            "prometheus_alerts_thresholds"]
        thresholds.update(worker_down_for=t["worker_down_for"], queue_backlog=t["queue_backlog"],
                          queue_backlog_for=t["queue_backlog_for"])
        d = str(self.dir)
        return dict(
            stack_dir=d, stack_python=sys.executable, stack_broker_url=self.broker_url,
            stack_has_celery_metrics=(REPO / "roles/celery_metrics/tasks/main.yml").exists(),
            stack_metrics_every=t["metrics_every"], stack_nodes=self.nodes(), stack_queues=list(QUEUES),
            runbooks_dest=d + "/runbooks", stack_runbooks_url=self.url("runbooks"),
            prometheus_alerts_rules_dir=d + "/prometheus/rules", prometheus_alerts_file_sd_dir=d + "/prometheus/file_sd",
            prometheus_alerts_reload_method="none",
            prometheus_alerts_flower_targets=["127.0.0.1:%d" % self.ports["flower"]],
            prometheus_alerts_thresholds=thresholds,
            backup_verify_path=d + "/backups", backup_verify_scheduler="cron",
            backup_verify_cron_file=d + "/cron.d/callcenter-backup-verify",
            backup_verify_install_dir=d + "/host/lib", backup_verify_config_dir=d + "/host/etc",
            backup_verify_systemd_dir=d + "/host/systemd", backup_verify_metrics_file=d + "/textfile/callcenter_backup.prom",
            backup_verify_python=sys.executable, backup_verify_telegram_bot_token=self.secret("telegram"),
            backup_verify_telegram_chat_id="4242", backup_verify_telegram_api_url=self.url("telegram"),
            alertmanager_config_file=d + "/alertmanager/alertmanager.yml",
            alertmanager_templates_dir=d + "/alertmanager/templates", alertmanager_config_group="root",
            alertmanager_reload_method="none", alertmanager_telegram_bot_token=self.secret("telegram"),
            alertmanager_telegram_chat_id=4242, alertmanager_telegram_api_url=self.url("telegram"),
            alertmanager_group_wait=t["group_wait"], alertmanager_group_interval=t["group_interval"],
            alertmanager_repeat_interval="1h",
            alertmanager_eda_webhook_url=self.state.get("eda_webhook_url", ""),  # tests/eda.py
        )

    def configure(self):
        log("configuring the monitoring half with the collection's roles (tests/stack/configure.yml)")
        extra = self.dir / "stack-vars.json"
        with open(os.open(str(extra), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
            json.dump(self.role_vars(), fh)
        r = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                            str(TESTS / "stack" / "configure.yml"), "-e", "@%s" % extra],
                           env=self.env, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
        (self.dir / "logs" / "configure.log").write_text(r.stdout + r.stderr)
        if r.returncode != 0:
            raise RuntimeError("configuring the stack failed (rc %d); see %s:\n%s" % (
                r.returncode, self.dir / "logs" / "configure.log", r.stdout[-3000:]))

    def prometheus_config(self):
        d = self.dir / "prometheus"
        t = self.timings
        text = "\n".join([
            "# Written by tests/harness.py: scrape Flower (file_sd of prometheus_alerts) and node-exporter",
            "# (textfile metrics of backup_verify and celery_metrics); rules from the roles; alerts to Alertmanager.",
            "global:",
            "  scrape_interval: %s" % t["scrape_interval"],
            "  evaluation_interval: %s" % t["scrape_interval"],
            "rule_files: ['%s/rules/*.yml']" % d,
            "alerting:",
            "  alertmanagers:",
            "    - static_configs: [{targets: ['127.0.0.1:%d']}]" % self.ports["alertmanager"],
            "scrape_configs:",
            "  - job_name: flower",
            "    file_sd_configs: [{files: ['%s/file_sd/*.yml']}]" % d,
            "  - job_name: node",
            "    static_configs: [{targets: ['127.0.0.1:%d']}]" % self.ports["node_exporter"],
            ""])
        (d / "prometheus.yml").write_text(text)
        return d / "prometheus.yml"

    def start_monitoring(self):
        (self.dir / "textfile").mkdir(exist_ok=True)
        if self.daemon("node-exporter", [NODE_EXPORTER, "--web.listen-address=127.0.0.1:%d" % self.ports["node_exporter"],
                                         "--collector.disable-defaults", "--collector.textfile",
                                         "--collector.textfile.directory=%s" % (self.dir / "textfile")],
                       "node-exporter"):
            log("node-exporter on %s (textfile collector: %s)" % (self.url("node_exporter"), self.dir / "textfile"))
        am = self.dir / "alertmanager"
        if self.daemon("alertmanager", [ALERTMANAGER, "--config.file=%s" % (am / "alertmanager.yml"),
                                        "--storage.path=%s" % (am / "data"),
                                        "--web.listen-address=127.0.0.1:%d" % self.ports["alertmanager"],
                                        "--cluster.listen-address="], "alertmanager"):
            log("Alertmanager on %s (Telegram receiver -> the stand-in)" % self.url("alertmanager"))
        else:
            urllib.request.urlopen(urllib.request.Request(self.url("alertmanager", "/-/reload"), method="POST"), timeout=5)
        cfg = self.prometheus_config()
        if self.daemon("prometheus", ["prometheus", "--config.file=%s" % cfg,
                                      "--storage.tsdb.path=%s" % (self.dir / "prometheus" / "data"),
                                      "--web.listen-address=127.0.0.1:%d" % self.ports["prometheus"],
                                      "--web.enable-lifecycle"], "prometheus --config.file=%s" % cfg):
            log("Prometheus on %s" % self.url("prometheus"))
        else:
            urllib.request.urlopen(urllib.request.Request(self.url("prometheus", "/-/reload"), method="POST"), timeout=5)
        # Runbook links must be http(s): Alertmanager's templates turn a file:// href into "#ZgotmplZ".
        if self.daemon("runbooks", [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory",
                                    self.dir / "runbooks", self.ports["runbooks"]], "http.server"):
            log("runbooks served on %s" % self.url("runbooks"))
        if self.daemon("cron", [sys.executable, Path(__file__).resolve(), "cron", "--dir", self.dir], "harness.py cron"):
            log("cron stand-in: runs the every-minute cron entries of %s every %ss"
                % (self.dir / "cron.d", self.timings["metrics_every"]))
        for name, path in (("node-exporter", "/metrics"), ("alertmanager", "/-/ready"), ("prometheus", "/-/ready")):
            port = self.ports[name.replace("-", "_")]
            wait_for(lambda p=port, q=path: http_ok("http://127.0.0.1:%d%s" % (p, q)), 30, name)

    # -- cron entries, as cron runs them
    def cron_entries(self):
        """``(schedule, command)`` of every line of the stack's cron.d files."""
        out = []
        for f in sorted((self.dir / "cron.d").glob("*")):
            for line in f.read_text().splitlines():
                line = line.strip()
                if not line or line.startswith("#") or "=" in line.split()[0]:
                    continue
                parts = line.split(None, 6)
                if len(parts) == 7:
                    out.append((" ".join(parts[:5]), parts[6], f.name))
        return out

    def run_cron(self, name_part, timeout=600):
        """Run the cron entry whose file name holds ``name_part`` now, as cron would (sh -c)."""
        for _sched, cmd, fname in self.cron_entries():
            if name_part in fname:
                # cron would hand the output to syslog (`| logger`): here the operator sees it, and its status.
                cmd = re.sub(r"\s*2>&1\s*\|\s*logger\b.*$", "", cmd)
                return subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=timeout, check=False,
                                      stdin=subprocess.DEVNULL)
        return None

    # -- the whole thing
    def up(self):
        started = time.monotonic()
        for sub in ("logs", "redis", "flower", "prometheus", "alertmanager", "textfile", "cron.d"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(str(self.dir), 0o711)  # the postgres user reaches pg/ under it; secrets inside are 0600
        self.save()
        self.start_redis()
        for w in WORKERS:
            self.start_worker(w)
        self.start_beat()
        self.start_flower()
        self.start_app()
        self.start_telegram()
        self.start_postgres()
        self.configure()
        self.start_monitoring()
        if self.state.get("eda"):  # Event-Driven Ansible: tests/eda.py
            __import__("eda").start(self)
        wait_for(lambda: celery_ping(self.broker_url, self.nodes()) == sorted(self.nodes()), 60, "Celery workers")
        wait_for((self.dir / "celerybeat-schedule").exists, 30, "celery beat's schedule file")
        self.run_cron("backup-verify")
        self.run_cron("celery-metrics")
        self.state["cold_start_seconds"] = round(time.monotonic() - started, 1)
        self.save()
        return self

    def stop(self):
        for name in ["rulebook", "cron", "runbooks", "prometheus", "alertmanager", "node-exporter", "beat"] + \
                ["worker-" + w for w in WORKERS] + ["flower", "app", "telegram", "redis"]:
            p = self.state["pids"].get(name)
            if p and stop_pid(p["pid"], p["marker"]):
                log("stopped %s" % name)
        data = self.dir / "pg" / "data"
        if (data / "postmaster.pid").exists():
            subprocess.run(self.pg_as() + [str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
                           capture_output=True, check=False)
            log("stopped PostgreSQL")

    # -- what the operator sees
    def playbook_env(self):
        return dict(self.env, CELERY_BROKER_URL=self.broker_url, PGPASSWORD=self.secret("postgres"),
                    CALLCENTER_ADMIN_TOKEN=__import__("fake_app").ADMIN_TOKEN, FLOWER_USER="ops",
                    FLOWER_PASSWORD=self.secret("flower"))

    def status(self, stream=None):
        """The collection's status playbooks, as an operator runs them; every one runs even if an
        earlier one failed, and the page is always rewritten. Returns the worst exit status."""
        d = str(self.dir)
        runs = [
            ("callcenter.ops.celery_status", {
                "celery_status_expected_workers": self.nodes(), "celery_status_queues": list(QUEUES),
                "celery_status_max_queue_length": self.timings["queue_backlog"], "celery_status_beat_entries": ["last_daily_stats"],
                "celery_status_max_beat_age": 300, "celery_status_beat_schedule_file": d + "/celerybeat-schedule"}),
            ("callcenter.ops.verify_backup", {
                "verify_backup_path": d + "/backups", "verify_backup_metrics_file": d + "/textfile/callcenter_backup.prom"}),
            ("callcenter.ops.system_status", {
                "system_status_app_url": self.url("app"), "system_status_expected_workers": self.nodes(),
                "system_status_pg_host": "127.0.0.1", "system_status_pg_port": self.ports["postgres"],
                "system_status_pg_database": "callcenter", "system_status_backup_dir": d + "/backups",
                "system_status_backup_metrics_file": d + "/textfile/callcenter_backup.prom",
                "system_status_flower_url": self.url("flower", "/"), "system_status_html_path": d + "/status.html",
                "system_status_prometheus_url": self.url("prometheus"),
                "system_status_alertmanager_url": self.url("alertmanager"),
                "system_status_grafana_url": "", "system_status_fail_on": "degraded"}),
        ]
        worst = 0
        for playbook, extra in runs:
            log("ansible-playbook %s (secrets in the environment)" % playbook)
            r = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", playbook,
                                "-e", json.dumps(extra)], env=self.playbook_env(), stdin=subprocess.DEVNULL,
                               stdout=stream, stderr=subprocess.STDOUT if stream else None, check=False)
            if r.returncode:
                log("FAILED (rc %d): %s" % (r.returncode, playbook))
                worst = max(worst, r.returncode)
        return worst

    def firing(self):
        """Alerts firing in Alertmanager now: ``[{alertname, labels, annotations, startsAt}]``."""
        return get_json(self.url("alertmanager", "/api/v2/alerts?active=true&silenced=false&inhibited=false"))

    def telegram_messages(self):
        path = self.dir / "telegram.jsonl"
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def wait_alert(self, alertname, timeout, resolved=False, since=None):
        """Wait until Alertmanager's Telegram message for ``alertname`` (firing, or resolved) has
        reached the stand-in; returns (message, seconds). Raises TimeoutError naming what is missing.
        ``since``: how many messages came before the ones that count (default: those before the
        last incident, or before this call when waiting for the resolved message)."""
        started = time.monotonic()
        # Only messages that arrived after the incident (or the heal) count.
        seen = since if since is not None else (
            len(self.telegram_messages()) if resolved else self.state.get("telegram_mark", 0))
        deadline = started + timeout
        while time.monotonic() < deadline:
            for m in self.telegram_messages()[seen:]:
                # One line per alert in Alertmanager's message: "[FIRING] <b>Name</b>" / "[RESOLVED] ...".
                tag = "[RESOLVED]" if resolved else "[FIRING]"
                if re.search(r"%s (<b>)?%s\b" % (re.escape(tag), re.escape(alertname)), m.get("text", "")):
                    return m, round(time.monotonic() - started, 1)
            time.sleep(1)
        names = [a["labels"].get("alertname") for a in self.firing()]
        raise TimeoutError("no %s Telegram message for %s within %ss (firing in Alertmanager now: %s)" % (
            "resolved" if resolved else "firing", alertname, timeout, ", ".join(names) or "nothing"))

    # -- incidents
    def incident(self, kind):
        self.state["telegram_mark"] = len(self.telegram_messages())
        self.save()
        if kind == "worker-down":
            p = self.state["pids"]["worker-w1"]
            log("kill -9 the Celery worker w1@%s (pid %d): a crash, no goodbye" % (self.state["host"], p["pid"]))
            os.killpg(p["pid"], signal.SIGKILL)
            return "CeleryWorkerDown"
        if kind == "backlog":
            from celery import Celery
            app = Celery("harness", broker=self.broker_url, set_as_current=False)
            try:
                app.control.cancel_consumer("stats", destination=self.nodes(), reply=True, timeout=5)
                n = int(self.timings["queue_backlog"]) * 2 + 1
                log("workers stop consuming 'stats'; %d messages pile up there" % n)
                for _i in range(n):
                    app.send_task("callcenter_sample.daily_stats", queue="stats")
            finally:
                app.close()
            return "CeleryQueueBacklog"
        if kind == "backup-corrupt":
            newest = max((self.dir / "backups").glob("*.dump.gz"), key=lambda f: f.stat().st_mtime)
            keep = self.dir / "backups-intact"
            keep.mkdir(exist_ok=True)
            if not (keep / newest.name).exists():
                shutil.copy2(str(newest), str(keep / newest.name))
            data = newest.read_bytes()
            newest.write_bytes(data[:len(data) // 2])
            log("tonight's backup %s cut at half; the verification runs as its timer would" % newest.name)
            r = self.run_cron("backup-verify")
            said = [line for line in (r.stdout + r.stderr).splitlines() if line.startswith(("FAIL", "OK", "error"))]
            log("backup verification (rc %s): %s" % (r.returncode, " / ".join(said) or "no verdict printed"))
            return "BackupVerificationFailed"
        raise ValueError("unknown incident %r (worker-down, backlog, backup-corrupt)" % kind)

    def heal(self):
        """Undo every incident: worker back, queue consumed, backup intact and re-verified."""
        self.start_worker("w1")
        from celery import Celery
        app = Celery("harness", broker=self.broker_url, set_as_current=False)
        try:
            wait_for(lambda: celery_ping(self.broker_url, self.nodes()) == sorted(self.nodes()), 60, "Celery workers")
            app.control.add_consumer("stats", destination=self.nodes(), reply=True, timeout=5)
        finally:
            app.close()
        keep = self.dir / "backups-intact"
        if keep.exists():
            for f in keep.glob("*.dump.gz"):
                shutil.copy2(str(f), str(self.dir / "backups" / f.name))
                f.unlink()
        self.run_cron("backup-verify")
        self.run_cron("celery-metrics")


def cron_loop(directory):
    """A stand-in for cron (none runs here): every ``metrics_every`` seconds run the stack's
    every-minute cron entries (celery_metrics), each under flock as its line says."""
    stack = Stack(directory)
    while True:
        for sched, cmd, _f in stack.cron_entries():
            if sched == "* * * * *":
                try:
                    subprocess.run(["sh", "-c", cmd], timeout=120, check=False, stdin=subprocess.DEVNULL)
                except subprocess.TimeoutExpired:
                    pass
        time.sleep(float(stack.timings["metrics_every"]))


INCIDENTS = ("worker-down", "backlog", "backup-corrupt")


def main(argv=None):
    ap = argparse.ArgumentParser(description="The local callcenter.ops stack (demo, tests, benchmarks).")
    ap.add_argument("command", choices=["up", "status", "incident", "heal", "stop", "ports", "cron"])
    ap.add_argument("kind", nargs="?", help="incident: worker-down | backlog | backup-corrupt")
    ap.add_argument("--dir", required=True)
    ap.add_argument("--demo-ports", action="store_true", help="the README's fixed demo ports")
    ap.add_argument("--timeout", type=float, default=300, help="incident: seconds to wait for the message")
    ap.add_argument("--eda", action="store_true", help="up: Event-Driven Ansible too (tests/eda.py)")
    args = ap.parse_args(argv)
    if args.command == "incident" and args.kind not in INCIDENTS:
        ap.error("incident needs a kind: %s (got %r)" % (" | ".join(INCIDENTS), args.kind or ""))
    sys.path.insert(0, str(TESTS))
    stack = Stack(args.dir, ports=DEMO_PORTS if args.demo_ports and not Path(args.dir, "stack.json").exists() else None)
    if args.eda and args.command == "up" and not stack.state.get("eda"):
        __import__("eda").enable(stack)
    if args.command == "cron":
        cron_loop(args.dir)
        return 0
    if args.command == "up":
        stack.up()
        rc = stack.status()
        print_links(stack)
        return rc
    if args.command == "status":
        rc = stack.status()
        print_links(stack)
        return rc
    if args.command == "ports":
        print(json.dumps(stack.ports, indent=2, sort_keys=True))
        return 0
    if args.command == "stop":
        stack.stop()
        return 0
    if args.command == "heal":
        stack.heal()
        log("healed; the alerts resolve within a minute (Telegram gets the resolved messages)")
        return stack.status()
    if args.command == "incident":
        alert = stack.incident(args.kind)
        log("waiting for %s to fire and its Telegram message to arrive (up to %ds)" % (alert, args.timeout))
        try:
            message, seconds = stack.wait_alert(alert, args.timeout)
        except TimeoutError as e:
            log("NOT arrived: %s" % e)
            return 1
        log("Telegram message after %.0f s, as the operator reads it:" % seconds)
        print("\n" + message.get("text", "") + "\n")
        if stack.state.get("eda"):
            __import__("eda").show_diagnosis(stack, alert, args.timeout)
        stack.status(stream=subprocess.DEVNULL)
        log("the status page %s shows it; heal with: bash scripts/demo.sh heal" % (stack.dir / "status.html"))
        return 0
    return 2


def print_links(stack):
    log("status page: %s" % (stack.dir / "status.html"))
    for name in ("prometheus", "alertmanager", "flower", "node_exporter", "app", "runbooks", "telegram", "redis",
                 "postgres"):
        log("  %-14s 127.0.0.1:%d" % (name, stack.ports[name]))
    log("Telegram messages (stand-in): %s" % (stack.dir / "telegram.jsonl"))
    log("the stack keeps running: bash scripts/demo.sh stop (or clean: stop and remove its data)")


def cli():
    try:
        return main()
    except KeyboardInterrupt:
        return 130
    except (RuntimeError, TimeoutError, OSError, subprocess.CalledProcessError) as e:
        detail = ""
        if isinstance(e, subprocess.CalledProcessError):
            detail = ": %s" % ((e.stderr or b"").decode("utf-8", "replace").strip()[-500:] if isinstance(
                e.stderr, bytes) else (e.stderr or "").strip()[-500:])
        log("the stack could not do that: %s%s" % (e, detail))
        return 1


if __name__ == "__main__":
    sys.exit(cli())
