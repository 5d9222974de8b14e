"""The README's main job, run the way a newcomer runs it: scripts/demo.sh on its own work dir
and free ports, then an incident (a worker killed) and `demo.sh status`."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import REPO


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
    """One demo stack for the module (started once: the README's examples run against it first,
    then the incident test breaks it)."""
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
    run.up = run()
    yield run
    run("stop", timeout=120)
    shutil.rmtree(str(work), ignore_errors=True)


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


def test_demo_status_during_an_incident_runs_every_check_and_rewrites_the_page(demo):
    up = demo.up
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    page = demo.stack / "status.html"
    assert 'id="overall" class="badge status-ok"' in page.read_text(), page.read_text()
    assert_badges_readable(page.read_text())
    before = page.stat().st_mtime

    state = json.loads((demo.stack / "stack.json").read_text())
    os.killpg(state["pids"]["worker-w1"]["pid"], signal.SIGKILL)
    backup = next((demo.stack / "backups").glob("*.dump.gz"))
    data = backup.read_bytes()
    backup.write_bytes(data[:len(data) // 2])  # tonight's backup, cut at half
    # (no sleep before the status: its three playbooks take seconds, and st_mtime has ns resolution)
    st = demo("status")
    out = st.stdout + st.stderr
    assert st.returncode != 0, out[-3000:]
    # All three playbooks ran although the first one failed.
    for play in ("Celery status", "Verify", "System status"):
        assert re.search(r"PLAY \[%s" % play, out), (play, out[-4000:])
    html = page.read_text()
    assert page.stat().st_mtime > before
    assert 'data-status="ok"' not in html.split('id="overall"')[1][:80], html
    assert "w1@demo" in html
    # The failed backup card says why it failed.
    card = html.split('id="component-backup"')[1].split("</section>")[0]
    assert "FAILED" in card and "truncated" in card, card
    assert '<meta name="viewport"' in html
    assert_badges_readable(html)


def test_status_colours_keep_text_readable():
    # The page's palette: white on amber (1.97:1) was unreadable; each pair must reach 4.5:1.
    assert contrast("#ffffff", "#2e7d32") >= 4.5
    assert contrast("#ffffff", "#c62828") >= 4.5
    assert contrast("#1d1d1f", "#f9a825") >= 4.5
    assert contrast("#ffffff", "#f9a825") < 4.5
