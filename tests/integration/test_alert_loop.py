"""The README's main job and the alert loop, end to end, on the one stack it starts.

``bash scripts/demo.sh`` as a newcomer runs it (its own work dir, free ports): the whole platform
with the monitoring half and ansible-rulebook, then the status playbooks. The README's examples
run verbatim in its shell. Then the loop with the real programs: a fault on the platform reaches
Telegram (the Bot API stand-in) through Prometheus and Alertmanager, with its runbook link, and
the resolved message follows once it is healed. Alertmanager's second receiver hands every page to
ansible-rulebook too (the collection's rulebook and event source), and the collection's playbook
posts its diagnosis to Telegram, after the page. One bring-up serves the demo's checks, the pages
and the diagnoses, as in production one incident raises both.

The three incidents are injected together and their waits overlap: each alert has its own cause
(a killed worker, a consumer cancelled on 'stats', a truncated backup), its own group in
Alertmanager (group_by alertname, instance) and so its own Telegram message, and the only
inhibition is critical-over-warning of the same alert name. ``demo.sh status`` runs during them:
every check runs although the first fails, and the page shows the failures. Each page is followed
by the rulebook's diagnosis (remediation off: read-only). One heal, then every resolved message.
Then, with remediation switched on, a second killed worker is restarted by the rulebook's playbook
and its alert resolves. The diagnosis playbooks run by hand: tests/integration/test_alert_actions.py."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, Stack, wait_for
from harness import proc_alive

import eda

LOOP_TIMEOUT = 180  # seconds; measured ~35 s for a killed worker with the stack's timings
DIAGNOSIS_TIMEOUT = 120  # page -> diagnosis: 35-45 s measured at load 8-11 on a shared 2-core machine
HAS_CELERY_METRICS = os.path.exists(os.path.join(os.path.dirname(__file__), "..", "..", "roles", "celery_metrics"))
HOST = "demo"  # the demo's workers are w1@demo and w2@demo


def contrast(fg, bg):
    """WCAG contrast ratio of two #rrggbb colours."""
    def lum(hexcolor):
        rgb = [int(hexcolor[i:i + 2], 16) / 255.0 for i in (1, 3, 5)]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    hi, lo = sorted((lum(fg), lum(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def assert_badges_readable(html):
    badges = re.findall(r'class="badge[^"]*"[^>]*style="background: (#[0-9a-fA-F]{6}); color: (#[0-9a-fA-F]{6})"', html)
    assert badges and len(badges) == html.count('class="badge'), html
    for bg, fg in badges:
        assert contrast(fg, bg) >= 4.5, (fg, bg, contrast(fg, bg))


@pytest.fixture(scope="module")
def demo():
    """``bash scripts/demo.sh ARGS`` on the module's own work dir and free ports; ``demo.up`` is the
    bring-up (started once: the README's examples run against it first, then the incidents)."""
    work = Path(tempfile.mkdtemp(prefix="ccops-demo-"))
    os.chmod(str(work), 0o711)  # the postgres user reaches the cluster under it
    env = dict(os.environ, CALLCENTER_OPS_WORK=str(work), CALLCENTER_OPS_VENV=str(Path(sys.executable).parents[1]),
               DEMO_FREE_PORTS="1", ANSIBLE_NOCOLOR="1", CI="true")
    env.pop("CALLCENTER_OPS_COLLECTIONS", None)

    def run(*args, timeout=420):
        return subprocess.run(["bash", str(REPO / "scripts" / "demo.sh")] + list(args), env=env, cwd=str(REPO),
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    run.stack = work / "stack"
    run.env = env
    try:
        run.up = run()
        yield run
    finally:
        run("stop", timeout=120)
        shutil.rmtree(str(work), ignore_errors=True)


@pytest.fixture(scope="module")
def stack(demo):
    """The demo's stack as tests/harness.py sees it (incidents, heal, Telegram, Alertmanager); its
    playbooks run through demo.sh, with the demo's own copy of the collection."""
    assert demo.up.returncode == 0, demo.up.stdout[-3000:] + demo.up.stderr[-3000:]
    s = Stack(demo.stack)
    # The incidents come together: with the role's 15 log lines (beat's task every 5 s) and a status
    # table of three failing parts the diagnosis would pass Telegram's 4000 characters, and the
    # notify step would cut the findings' end, the log this test reads (what was done and the runbook
    # stay: test_awx_runner.py checks the cut). 5 lines still end with the harness's "gone". The
    # rulebook copies its inventory for every playbook run: this takes effect at once.
    s.state["eda"]["log_lines"] = 5
    s.save()
    eda.write_config(s)
    return s


# ----------------------------------------------------------------- the README's main job
def readme_examples():
    """Command lines of the README's ``bash`` blocks, continuation lines joined; not the two
    commands at the top (demo.sh and test.sh themselves) nor blocks for real hosts."""
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert "bash scripts/test.sh" in blocks[0]
    lines = []
    for block in blocks[1:]:
        if block.startswith("# on your platform"):
            continue
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                lines.append(line.strip())
    return lines


def test_demo_shell_runs_a_command_with_the_stack_in_its_environment(demo):
    assert demo.up.returncode == 0, demo.up.stdout[-3000:] + demo.up.stderr[-3000:]
    r = demo("shell", "ansible-playbook", "callcenter.ops.celery_status", "-e", "celery_status_expected_workers=2")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "Celery is healthy" in r.stdout or "2 worker" in r.stdout, r.stdout[-2000:]
    env = demo("env")
    path = Path(env.stdout.strip())
    assert env.returncode == 0 and path.is_file() and oct(path.stat().st_mode & 0o777) == "0o600", env
    secrets = json.loads((demo.stack / "stack.json").read_text())["secrets"]
    for s in secrets.values():
        assert s not in env.stdout + env.stderr and s not in r.stdout + r.stderr
    text = path.read_text()
    for name in ("CELERY_BROKER_URL", "PGPASSWORD", "PGHOST", "PGPORT", "CALLCENTER_ADMIN_TOKEN", "FLOWER_USER",
                 "FLOWER_PASSWORD", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_HOME", "PATH"):
        assert re.search(r"^export %s=" % name, text, re.M), name


def test_readme_examples_run_verbatim_in_the_demo_shell(demo, tmp_path):
    assert demo.up.returncode == 0
    examples = readme_examples()
    assert any("system_status_pg_port" in e for e in examples) and len(examples) >= 10, examples
    envfile = demo("env").stdout.strip()
    # cron-like (no terminal type), HOME a temp dir: nothing may land there
    env = dict(demo.env, HOME=str(tmp_path))
    env.pop("TERM", None)
    failed = []
    for line in examples:
        r = subprocess.run(["bash", "-c", 'source "$1" && eval "$2"', "example", envfile, line], cwd=str(tmp_path),
                           env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL, check=False)
        out = r.stdout + r.stderr
        bad = [w for w in ("ERROR!", "Could not match supplied host pattern", "no hosts matched", "Traceback")
               if w in out]
        # "asks": nobody can answer here (no terminal type), so it refuses at once when there is
        # something to purge, and never waits
        refused = "# asks" in line and "Not purged: no person can answer a prompt here" in out
        if bad or (r.returncode != 0 and not refused):
            failed.append((line, r.returncode, bad, out[-1500:]))
    assert not failed, "\n\n".join("%s\n rc=%s %s\n%s" % f for f in failed)
    # the pages go into the demo's own directory ($CALLCENTER_STACK), nothing outside the checkout
    assert (demo.stack / "my-status.html").exists() and (demo.stack / "fleet.html").exists()
    assert not list(tmp_path.glob("*.html")), list(tmp_path.iterdir())


# ----------------------------------------------------------------- the whole stack
def runbook_link_works(message):
    href = message["text"].split('<a href="', 1)[1].split('"', 1)[0]
    with urllib.request.urlopen(href, timeout=5) as r:
        return r.status == 200 and b"<html" in r.read(4096).lower()


def set_remediation(stack, on):
    """The rulebook copies its inventory for every playbook run: switching takes effect at once."""
    stack.state["eda"]["remediation"] = on
    stack.save()
    eda.write_config(stack)


def test_cold_start_of_the_whole_stack(stack):
    print("cold start with the monitoring half and ansible-rulebook: %ss" % stack.state["cold_start_seconds"])
    rules = sorted(os.listdir(str(stack.dir / "prometheus" / "rules")))
    assert "callcenter-celery.rules.yml" in rules and "callcenter-backup.rules.yml" in rules

    def scraped():
        with urllib.request.urlopen(stack.url("prometheus", "/api/v1/targets"), timeout=5) as r:
            targets = json.load(r)["data"]["activeTargets"]
        return sorted((t["labels"]["job"], t["health"]) for t in targets) == [("flower", "up"), ("node", "up")]
    wait_for(scraped, 30, "Prometheus scraping Flower and node-exporter")


def test_alertmanager_sends_every_page_to_the_rulebook_too(stack):
    with urllib.request.urlopen(stack.url("alertmanager", "/api/v2/status"), timeout=5) as r:
        original = json.load(r)["config"]["original"]
    assert stack.state["eda_webhook_url"] in original and "telegram_configs" in original
    assert eda.healthy(stack)


@pytest.fixture(scope="module")
def incidents(stack, demo):
    """Every incident, one after the other without waiting for the alerts in between, then
    ``demo.sh status`` as an operator runs it then. Before the backup is cut, a good copy of it a
    day older is put next to it: the backup diagnosis must name it. ``mark``: Telegram messages
    before the first incident."""
    page = stack.dir / "status.html"
    got = {"started": time.monotonic(), "mark": len(stack.telegram_messages()),
           "page_before": page.read_text(), "page_mtime_before": page.stat().st_mtime}
    stack.incident("worker-down")
    if HAS_CELERY_METRICS:
        stack.incident("backlog")
    backups = stack.dir / "backups"
    got["newest"] = max(backups.glob("*.dump.gz"), key=lambda f: f.stat().st_mtime)
    got["older"] = backups / "callcenter-2000-01-01.dump.gz"
    shutil.copy2(str(got["newest"]), str(got["older"]))
    day_ago = time.time() - 86400
    os.utime(str(got["older"]), (day_ago, day_ago))
    got["before_backup"] = len(stack.telegram_messages())
    stack.incident("backup-corrupt")  # the verification runs (and sends its own message) right away
    # (no sleep before the status: its three playbooks take seconds, and st_mtime has ns resolution)
    got["status"] = demo("status")
    got["page"] = page.read_text()
    got["page_mtime"] = page.stat().st_mtime
    return got


def test_demo_status_during_an_incident_runs_every_check_and_rewrites_the_page(incidents):
    before = incidents["page_before"]
    assert 'id="overall" class="badge status-ok"' in before, before
    assert_badges_readable(before)
    st = incidents["status"]
    out = st.stdout + st.stderr
    assert st.returncode != 0, out[-3000:]
    # All three playbooks ran although the first one failed.
    for play in ("Celery status", "Verify", "System status"):
        assert re.search(r"PLAY \[%s" % play, out), (play, out[-4000:])
    html = incidents["page"]
    assert incidents["page_mtime"] > incidents["page_mtime_before"]
    assert 'id="overall" class="badge status-ok"' not in html
    assert 'data-status="ok"' not in html.split('id="overall"')[1][:80], html
    assert "w1@%s" % HOST in html
    # The failed backup card says why it failed.
    card = html.split('id="component-backup"')[1].split("</section>")[0]
    assert "FAILED" in card and "truncated" in card, card
    assert '<meta name="viewport"' in html
    assert_badges_readable(html)


def test_killed_worker_reaches_telegram_with_its_runbook_and_a_diagnosis_naming_it_follows(stack, incidents):
    mark = incidents["mark"]
    message, _seconds = stack.wait_alert("CeleryWorkerDown", LOOP_TIMEOUT, since=mark)
    print("kill -9 -> Telegram: %.0f s" % (time.monotonic() - incidents["started"]))
    assert "w1@%s" % HOST in message["text"] and "celery-worker-down.html" in message["text"], message
    assert runbook_link_works(message)
    assert "CeleryWorkerDown" in [a["labels"]["alertname"] for a in stack.firing()]
    # The status page shows it too: test_demo_status_during_an_incident_runs_every_check_and_rewrites_the_page.
    # The rulebook's diagnosis follows the page.
    diagnosis = eda.wait_message(stack, lambda t: t.startswith("Diagnosis: Celery worker w1@%s" % HOST),
                                 DIAGNOSIS_TIMEOUT, since=mark, what="diagnosis of the killed worker")
    print(diagnosis["text"])
    print("page -> diagnosis %.1f s" % (diagnosis["time"] - message["time"]))
    text = diagnosis["text"]
    assert diagnosis["time"] >= message["time"]
    assert "w1@%s: does NOT answer ping" % HOST in text, text
    assert "Workers online: w2@%s" % HOST in text, text
    assert "ActiveState=failed" in text and "gone" in text, text       # what the host (the harness) says
    assert "Done automatically: read-only diagnosis. Remediation is off" in text, text
    assert "celery-worker-down.html" in text and "firing since 20" in text and "Down since: before 20" in text, text
    assert stack.secret("telegram") not in text
    wait_for(lambda: [e for e in eda.audit(stack) if e["alert"] == "CeleryWorkerDown"], 30, "the audit entry")
    entries = [e for e in eda.audit(stack) if e["alert"] == "CeleryWorkerDown"]
    assert entries and entries[-1]["result"] == "posted" and entries[-1]["who"].startswith("ansible-rulebook rule")


def test_corrupt_backup_reaches_telegram_directly_and_through_alertmanager_and_its_diagnosis_names_the_newest_good_one(
        stack, incidents):
    message, seconds = stack.wait_alert("BackupVerificationFailed", LOOP_TIMEOUT, since=incidents["mark"])
    print("corrupt backup -> Telegram: %.0f s" % seconds)
    assert "backup-failed.html" in message["text"] and runbook_link_works(message)
    direct = [m for m in stack.telegram_messages()[incidents["before_backup"]:]
              if "Backup verification failed" in m["text"]]
    assert direct and "NOT valid" in direct[0]["text"] and "truncated" in direct[0]["text"], direct
    diagnosis = eda.wait_message(stack, lambda t: t.startswith("Diagnosis: backup"), DIAGNOSIS_TIMEOUT,
                                 since=incidents["mark"], what="diagnosis of the corrupt backup")
    text = diagnosis["text"]
    assert "Failed file: %s" % incidents["newest"] in text and "truncated" in text, text
    assert "Newest good backup: %s, 24.0 h old" % incidents["older"] in text, text
    assert "GiB free" in text, text


@pytest.mark.skipif(not HAS_CELERY_METRICS, reason="the celery_metrics role is not in this checkout")
def test_queue_backlog_reaches_telegram_through_the_celery_metrics(stack, incidents):
    message, seconds = stack.wait_alert("CeleryQueueBacklog", LOOP_TIMEOUT, since=incidents["mark"])
    print("backlog -> Telegram: %.0f s" % seconds)
    assert "stats" in message["text"] and "celery-queue-backlog.html" in message["text"], message


def test_healed_incidents_send_their_resolved_messages(stack, incidents):
    mark = len(stack.telegram_messages())
    stack.heal()
    alerts = ["CeleryWorkerDown", "BackupVerificationFailed"] + (["CeleryQueueBacklog"] if HAS_CELERY_METRICS else [])
    for alert in alerts:
        _message, seconds = stack.wait_alert(alert, LOOP_TIMEOUT, resolved=True, since=mark)
        print("heal -> %s resolved: %.0f s (whole loop %.0f s)"
              % (alert, seconds, time.monotonic() - incidents["started"]))


def test_with_remediation_the_worker_is_restarted_answers_ping_and_the_alert_resolves(stack, incidents):
    set_remediation(stack, True)
    mark = len(stack.telegram_messages())
    stack.state["telegram_mark"] = mark
    stack.save()
    pid, marker = stack.state["pids"]["worker-w2"]["pid"], stack.state["pids"]["worker-w2"]["marker"]
    assert proc_alive(pid, marker)   # still the worker this stack started, as the harness's incidents check
    os.killpg(pid, signal.SIGKILL)
    stack.wait_alert("CeleryWorkerDown", LOOP_TIMEOUT)
    diagnosis = eda.wait_message(stack, lambda t: t.startswith("Diagnosis: Celery worker w2@%s" % HOST),
                                 DIAGNOSIS_TIMEOUT, since=mark, what="diagnosis of w2")
    assert "Restarting worker-w2 (harness) on %s now" % HOST in diagnosis["text"], diagnosis["text"]
    outcome = eda.wait_message(stack, lambda t: t.startswith("Remediation: Celery worker w2@%s" % HOST), 120,
                               since=mark, what="remediation outcome")
    assert "restarted and answers ping" in outcome["text"], outcome["text"]
    assert "Done automatically: restarted worker-w2 (harness) on %s once" % HOST in outcome["text"]
    eda.reload_state(stack)
    assert stack.running("worker-w2") and stack.state["pids"]["worker-w2"]["pid"] != pid
    # The restart may be verified after the alert already resolved: count from the kill on.
    resolved = eda.wait_message(stack, lambda t: "[RESOLVED]" in t and "CeleryWorkerDown" in t and "w2@%s" % HOST in t,
                                LOOP_TIMEOUT, since=mark, what="resolved message for w2")
    print("remediation outcome -> resolved message %.0f s" % (resolved["time"] - outcome["time"]))
    wait_for(lambda: [e for e in eda.audit(stack) if e.get("action") == "restart"], 30, "the restart's audit entry")
    restarts = [e for e in eda.audit(stack) if e.get("action") == "restart"]
    assert len(restarts) == 1 and restarts[0]["target"] == "w2@%s" % HOST and restarts[0]["outcome"] == "ok"
    set_remediation(stack, False)


def test_status_colours_keep_text_readable():
    # The page's palette: white on amber (1.97:1) was unreadable; each pair must reach 4.5:1.
    assert contrast("#ffffff", "#2e7d32") >= 4.5
    assert contrast("#ffffff", "#c62828") >= 4.5
    assert contrast("#1d1d1f", "#f9a825") >= 4.5
    assert contrast("#ffffff", "#f9a825") < 4.5
