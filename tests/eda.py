"""Event-Driven Ansible on the local stack (tests/harness.py): ansible-rulebook running the
collection's rulebook (extensions/eda/rulebooks/callcenter_alerts.yml) behind Alertmanager's
second receiver, and the service manager the alert actions talk to.

There is no systemd as PID 1 here, so the harness plays the worker's service manager: the
inventory points ``alert_actions_worker_{status,log,restart}_command`` at this file's
``service`` command, which reads the stack's state file. ``restart`` only starts a worker the
stack started and that no longer runs (the crash the test caused): it never signals a process.

    python tests/eda.py service --dir DIR status|log|restart SHORT
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
WORK = Path(os.environ.get("CALLCENTER_OPS_WORK", REPO / ".work"))
# Next to the venv running this (.work/venv -> .work/venv-eda), as scripts/lib.sh puts it.
EDA_VENV = Path(os.environ.get("CALLCENTER_OPS_EDA_VENV") or Path(sys.executable).parents[1].parent / "venv-eda")
RULEBOOK = "callcenter.ops.callcenter_alerts"
CHAT_ID = 4242


def ensure_venv():
    """Build .work/venv-eda from requirements/eda.txt when it is missing or stale (scripts/lib.sh's
    ensure_eda_venv, under a lock); returns (bin dir, seconds it took)."""
    started = time.monotonic()
    r = subprocess.run(["bash", "-c", 'source "$1/scripts/lib.sh"; ensure_eda_venv', "eda", str(REPO)],
                       env=dict(os.environ, CALLCENTER_OPS_EDA_VENV=str(EDA_VENV)), capture_output=True, text=True,
                       timeout=900, check=False, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise RuntimeError("building %s failed (rc %d): %s" % (EDA_VENV, r.returncode, (r.stdout + r.stderr)[-2000:]))
    return EDA_VENV / "bin", round(time.monotonic() - started, 1)


def java_home():
    """JAVA_HOME of a Java 17 runtime (ansible-rulebook's Drools engine runs in it)."""
    cands = [os.environ.get("JAVA_HOME", "")] + sorted(str(p) for p in Path("/usr/lib/jvm").glob("java-17-openjdk*"))
    for c in cands:
        if c and (Path(c) / "bin" / "java").exists() and "17" in Path(c).name:
            return c
    raise RuntimeError("no Java 17 runtime under /usr/lib/jvm (apt-get install openjdk-17-jre-headless, "
                       "or set JAVA_HOME)")


def enable(stack, remediation=False, dry_run=False):
    """Before ``stack.up()``: Alertmanager's second receiver goes to the rulebook's port."""
    stack.dir.mkdir(parents=True, exist_ok=True)
    stack.ports.setdefault("eda", __import__("harness").free_port())
    stack.state["eda"] = {"remediation": remediation, "dry_run": dry_run}
    stack.state["eda_webhook_url"] = "http://127.0.0.1:%d/alerts" % stack.ports["eda"]
    stack.save()


def inventory(stack):
    """The rulebook's inventory: this machine as the controller and as the workers' host
    (``w1@<host>``), every setting of the alert actions, and the system_status_* the page uses."""
    d = stack.dir
    eda = stack.state.get("eda") or {}
    me = [sys.executable, str(Path(__file__).resolve()), "service", "--dir", str(d)]
    # Pipelining: one process per task instead of four (mkdir, copy, run, rm): the diagnosis is sooner.
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_pipelining": True}
    settings = {
        "alert_actions_audit_log": str(d / "eda" / "audit.jsonl"),
        "alert_actions_dry_run": bool(eda.get("dry_run")),
        "alert_actions_remediation": bool(eda.get("remediation")),
        "alert_actions_remediation_groups": ["celery_workers"],
        "alert_actions_restart_interval": int(eda.get("restart_interval", 1800)),
        "alert_actions_diagnosis_window": int(eda.get("diagnosis_window", 900)),
        "alert_actions_worker_unit": "worker-{short} (harness)",
        "alert_actions_worker_log_lines": int(eda.get("log_lines", 15)),
        "alert_actions_worker_status_command": " ".join(me + ["status", "{short}"]),
        "alert_actions_worker_log_command": " ".join(me + ["log", "{short}"]),
        "alert_actions_worker_restart_command": " ".join(me + ["restart", "{short}"]),
        "alert_actions_restart_verify_timeout": 60,
        "alert_actions_queues": ["quality", "stats"],
        "alert_actions_expected_workers": stack.nodes(),
        "system_status_app_url": stack.url("app"), "system_status_expected_workers": stack.nodes(),
        "system_status_pg_host": "127.0.0.1", "system_status_pg_port": stack.ports["postgres"],
        "system_status_pg_database": "callcenter", "system_status_backup_dir": str(d / "backups"),
        "system_status_backup_metrics_file": str(d / "textfile" / "callcenter_backup.prom"),
        "system_status_flower_url": stack.url("flower", "/"),
        "system_status_alertmanager_url": stack.url("alertmanager"),
        "system_status_timeout": 2,
    }
    return {"all": {"vars": settings, "hosts": {"localhost": local},
                    "children": {"celery_workers": {"hosts": {stack.state["host"]: local}}}}}


def write_config(stack):
    (stack.dir / "eda").mkdir(exist_ok=True)
    inv = stack.dir / "eda" / "inventory.json"  # JSON is YAML: ansible's yaml inventory plugin reads it
    inv.write_text(json.dumps(inventory(stack), indent=2))
    rb_vars = stack.dir / "eda" / "vars.yml"
    rb_vars.write_text("callcenter_eda_host: 127.0.0.1\ncallcenter_eda_port: %d\n" % stack.ports["eda"])
    return inv, rb_vars


def rulebook_env(stack, eda_bin):
    env = dict(stack.playbook_env())
    env.update(JAVA_HOME=java_home(), PATH="%s:%s" % (eda_bin, env.get("PATH", "")),
               CALLCENTER_TELEGRAM_BOT_TOKEN=stack.secret("telegram"), CALLCENTER_TELEGRAM_CHAT_ID=str(CHAT_ID),
               TELEGRAM_API_URL=stack.url("telegram"), ANSIBLE_HOST_KEY_CHECKING="false",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    # ansible-rulebook finds the collection (rulebook, event source, playbooks) through this path.
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", os.environ.get("ANSIBLE_COLLECTIONS_PATH", ""))
    return env


def healthy(stack):
    import urllib.request
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % stack.ports["eda"], timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def start(stack, timeout=120):
    """Start ansible-rulebook for the stack (hook of Stack.up when the stack has EDA enabled)."""
    from harness import log, wait_for
    eda_bin, secs = ensure_venv()
    inv, rb_vars = write_config(stack)
    argv = [eda_bin / "ansible-rulebook", "-r", RULEBOOK, "-i", inv, "-e", rb_vars]
    if stack.daemon("rulebook", argv, RULEBOOK, env=rulebook_env(stack, eda_bin), cwd=stack.dir / "eda"):
        log("ansible-rulebook %s listening on 127.0.0.1:%d (Alertmanager's second receiver; venv ready in %.0f s)"
            % (RULEBOOK, stack.ports["eda"], secs))
    wait_for(lambda: healthy(stack), timeout, "ansible-rulebook's Alertmanager source on port %d (see %s)"
             % (stack.ports["eda"], stack.dir / "logs" / "rulebook.log"))


def reload_state(stack):
    """The service command (another process) records the restarted worker's PID: read it back."""
    stack.state = json.loads(stack.state_file.read_text())


def diagnoses(stack, since=0):
    return [m for m in stack.telegram_messages()[since:] if m.get("text", "").lstrip("[DRY RUN] ").startswith(
        ("Diagnosis:", "Remediation:", "Status at"))]


def wait_message(stack, predicate, timeout, since=0, what="the message"):
    """The first Telegram message after index ``since`` that ``predicate`` accepts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in stack.telegram_messages()[since:]:
            if predicate(m.get("text", "")):
                return m
        time.sleep(0.5)
    raise TimeoutError("no %s in Telegram within %ss; the rulebook's log: %s; messages: %s" % (
        what, timeout, stack.dir / "logs" / "rulebook.log",
        [m.get("text", "")[:120] for m in stack.telegram_messages()[since:]]))


def show_diagnosis(stack, alertname, timeout):
    """The demo: after the page, the rulebook's diagnosis (and a remediation's outcome)."""
    from harness import log
    started = time.monotonic()
    try:
        m = wait_message(stack, lambda t: t.startswith(("Diagnosis:", "Status at")) and alertname in t,
                         timeout, since=stack.state.get("telegram_mark", 0), what="diagnosis of %s" % alertname)
    except TimeoutError as e:
        log("no diagnosis from Event-Driven Ansible: %s" % e)
        return
    log("Event-Driven Ansible's diagnosis %.0f s after the page (ansible-rulebook -> callcenter.ops playbook):"
        % (time.monotonic() - started))
    print("\n" + m.get("text", "") + "\n")


class AlertmanagerClient:
    """POST an alert to the stack's Alertmanager as Prometheus would, and wait until it fires."""

    def __init__(self, stack):
        self.stack = stack

    def post(self, node, instance, timeout=10):
        import urllib.request
        from harness import wait_for
        alert = {"labels": {"alertname": "CeleryWorkerDown", "severity": "critical", "worker": node,
                            "instance": instance},
                 "annotations": {"summary": "Celery worker %s is down" % node,
                                 "runbook_url": self.stack.url("runbooks", "/celery-worker-down.html")}}
        req = urllib.request.Request(self.stack.url("alertmanager", "/api/v2/alerts"), data=json.dumps([alert]).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 200
        wait_for(lambda: any(a["labels"].get("worker") == node for a in self.stack.firing()), timeout,
                 "%s firing in Alertmanager" % node)


def audit(stack):
    path = stack.dir / "eda" / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# --------------------------------------------------------------------------- the service manager stand-in
def service(directory, verb, short):
    import harness
    stack = harness.Stack(directory)
    name = "worker-" + short
    logfile = stack.dir / "logs" / ("%s.log" % name)
    p = stack.state["pids"].get(name)
    if verb == "status":
        running = stack.running(name)
        print("ActiveState=%s" % ("active" if running else "failed"))
        print("SubState=%s" % ("running" if running else "dead"))
        print("MainPID=%s" % (p["pid"] if p and running else 0))
        if logfile.exists():
            print("LogLastWritten=%s" % datetime.datetime.fromtimestamp(
                logfile.stat().st_mtime, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"))
        return 0
    if verb == "log":
        if not logfile.exists():
            print("no log file %s" % logfile, file=sys.stderr)
            return 1
        lines = logfile.read_text(errors="replace").splitlines()[-15:]
        print("\n".join(lines + ["-- %s (pid %s) gone --" % (name, p["pid"] if p else "?")]
                        if p and not stack.running(name) else lines))
        return 0
    if verb == "restart":
        if stack.running(name):
            print("%s already runs (pid %d): left alone" % (name, p["pid"]))
            return 0
        stack.start_worker(short)
        print("started %s (pid %d)" % (name, stack.state["pids"][name]["pid"]))
        return 0
    print("unknown verb %s" % verb, file=sys.stderr)
    return 2


def main(argv=None):
    ap = argparse.ArgumentParser(description="The harness's service manager for the alert actions.")
    ap.add_argument("command", choices=["service"])
    ap.add_argument("verb", choices=["status", "log", "restart"])
    ap.add_argument("short", help="worker short name (w1)")
    ap.add_argument("--dir", required=True)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(TESTS))
    return service(args.dir, args.verb, args.short)


if __name__ == "__main__":
    sys.exit(main())
