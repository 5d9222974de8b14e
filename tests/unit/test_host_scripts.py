"""The host scripts on a broken install (their ccops_* files missing, even the textfile writer):
a failed run the alert sees, with the reason on stderr, never a traceback or a silent success."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("script, args, metric", [
    ("roles/backup_verify/files/callcenter-backup-verify", ["/nonexistent/backups"], "callcenter_backup_verify_success"),
    ("roles/celery_metrics/files/callcenter-celery-metrics", [], "callcenter_celery_metrics_success"),
])
def test_a_script_without_its_code_writes_a_failure_and_says_why(tmp_path, script, args, metric):
    alone = tmp_path / Path(script).name
    shutil.copy(REPO / script, alone)
    out = tmp_path / "out.prom"
    p = subprocess.run([sys.executable, str(alone), "--metrics-file", str(out)] + args, capture_output=True, text=True,
                       timeout=60, check=False, stdin=subprocess.DEVNULL)
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr
    assert "cannot be loaded" in p.stderr and "No module named 'ccops_" in p.stderr, p.stderr
    samples = [s for f in text_string_to_metric_families(out.read_text()) for s in f.samples]
    assert [s.value for s in samples if s.name == metric] == [0], samples
    reasons = [s.labels["reason"] for s in samples if "reason" in s.labels]
    assert len(reasons) == 1 and "cannot be loaded: run the" in reasons[0] and "role again" in reasons[0], samples
    assert not list(tmp_path.glob("*.tmp")), "a temporary file was left"
