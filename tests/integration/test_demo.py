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
import time
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


@pytest.fixture
def demo():
    work = Path(tempfile.mkdtemp(prefix="ccops-demo-"))
    os.chmod(str(work), 0o711)  # the postgres user reaches the cluster under it
    env = dict(os.environ, CALLCENTER_OPS_WORK=str(work), CALLCENTER_OPS_VENV=str(Path(sys.executable).parents[1]),
               DEMO_FREE_PORTS="1", ANSIBLE_NOCOLOR="1", CI="true")
    env.pop("CALLCENTER_OPS_COLLECTIONS", None)

    def run(*args, timeout=420):
        return subprocess.run(["bash", str(REPO / "scripts" / "demo.sh")] + list(args), env=env, cwd=str(REPO),
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    run.stack = work / "stack"
    yield run
    run("stop", timeout=120)
    shutil.rmtree(str(work), ignore_errors=True)


def test_demo_status_during_an_incident_runs_every_check_and_rewrites_the_page(demo):
    up = demo()
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
    time.sleep(1)
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
