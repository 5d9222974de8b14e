"""The verify_backup playbook and the backup_verify role's bad-input paths (the role's happy
path on systemd is the molecule scenario molecule/backup_verify)."""

import os
import shutil
from pathlib import Path

import pytest

TOKEN = "999:role-Secret-Token"
MODULE_UTILS = Path(__file__).resolve().parents[2] / "plugins" / "module_utils"


def role_vars(root, tmp_path, **overrides):
    variables = dict(
        backup_verify_path=str(tmp_path / "backups"),
        backup_verify_install_dir=str(root / "lib"),
        backup_verify_config_dir=str(root / "etc"),
        backup_verify_systemd_dir=str(root / "systemd"),
        backup_verify_cron_file=str(root / "cron.d" / "callcenter-backup-verify"),
        backup_verify_metrics_file=str(root / "metrics" / "backup.prom"),
        backup_verify_telegram_bot_token=TOKEN,
        backup_verify_telegram_chat_id="42",
        callcenter_runbook_base_url="https://ops.example/doc/operations/runbooks",
    )
    variables.update(overrides)
    return variables


def role_playbook(tmp_path, **overrides):
    root = tmp_path / "host"
    variables = role_vars(root, tmp_path, **overrides)
    pb = tmp_path / "site.yml"
    lines = ["- hosts: localhost", "  gather_facts: false", "  roles:", "    - role: callcenter.ops.backup_verify",
             "      vars:"]
    for k, v in variables.items():
        lines.append("        %s: %r" % (k, v))
    pb.write_text("\n".join(lines) + "\n")
    return pb, root


# Each refusal is one application of the role in one playbook run (ansible.refusals):
# (variables, what the failure message says).
REFUSED = [
    (dict(backup_verify_max_age="yesterday"), "backup_verify settings are invalid"),
] + [
    (dict(backup_verify_timeout=v), "timeout a number of seconds > 0") for v in ("nan", "inf", "1e12", 0)
] + [
    (dict(backup_verify_scheduler="anacron"), "anacron"),
    (dict(backup_verify_telegram_chat_id=""), "Telegram token and chat id both set or both empty"),
]


def test_bad_input_is_refused_before_anything_is_written(ansible, tmp_path):
    cases = [role_vars(tmp_path / ("case%d" % i), tmp_path, **v) for i, (v, _e) in enumerate(REFUSED)]
    r, messages = ansible.refusals("callcenter.ops.backup_verify", cases, tmp_path)
    assert r.rc == 0, r
    for (variables, expected), msg in zip(REFUSED, messages):
        assert msg and expected in msg, (variables, expected, msg)
    assert "backup_verify_scheduler" in messages[-2]
    assert TOKEN not in r.output
    assert not list(tmp_path.glob("case*")), "a refused case wrote files"


def test_verify_backup_playbook_prints_verdict(ansible, dumps, tmp_path):
    r = ansible.playbook("callcenter.ops.verify_backup", extra_vars={"verify_backup_path": str(dumps)})
    assert r.rc == 0, r
    assert "Backup VALID: %s/callcenter-2026-11-25.dump.gz" % dumps in r.output
    assert "toc: database callcenter" in r.output
    assert "integrity: the gzip CRC and length cover every byte" in r.output


def test_verify_backup_playbook_fails_on_a_broken_backup(ansible, dumps, tmp_path):
    src = (dumps / "callcenter-2026-11-25.dump.gz").read_bytes()
    shutil.copy(dumps / "callcenter-2026-11-25.dump.gz", tmp_path)
    os.utime(tmp_path / "callcenter-2026-11-25.dump.gz", (1_700_000_000, 1_700_000_000))
    (tmp_path / "callcenter-2026-11-26.dump.gz").write_bytes(src[: len(src) // 2])  # the newest
    r = ansible.playbook("callcenter.ops.verify_backup", extra_vars={"verify_backup_path": str(tmp_path)})
    assert r.rc != 0
    assert "Backup NOT VALID: %s/callcenter-2026-11-26.dump.gz" % tmp_path in r.output
    assert "truncated after" in r.output


# --------------------------------------------------------------------------- the host script, installed by the role

import subprocess  # noqa: E402
import sys  # noqa: E402

from telegram_stub import TelegramStub  # noqa: E402
from test_backup_verify import make_bomb  # noqa: E402


@pytest.fixture(scope="module")
def installed(ansible, tmp_path_factory):
    """The role applied once (cron scheduler, temp dirs): the verifier as the host runs it."""
    tmp = tmp_path_factory.mktemp("bvrole")
    pb, root = role_playbook(tmp, backup_verify_scheduler="cron")
    r = ansible.playbook(pb)
    assert r.rc == 0, r
    for name in ("callcenter-backup-verify", "ccops_backup.py", "ccops_backup_archive.py", "ccops_textfile.py",
                 "ccops_params.py"):
        assert (root / "lib" / name).exists(), name
    # the host files are the collection's module_utils byte for byte (one module run installs them)
    for name in ("backup", "backup_archive", "textfile", "params", "redact"):
        assert (root / "lib" / ("ccops_%s.py" % name)).read_bytes() == (MODULE_UTILS / ("%s.py" % name)).read_bytes(), name
        assert oct((root / "lib" / ("ccops_%s.py" % name)).stat().st_mode & 0o777) == "0o644", name
    return root


@pytest.fixture
def telegram():
    """The Telegram Bot API stand-in of tests/telegram_stub.py, on a free loopback port."""
    with TelegramStub() as tg:
        yield tg


def run_verifier(root, path, *extra, telegram_url="http://127.0.0.1:9", timeout=60, metrics=None):
    env_file = root / "tg.env"
    env_file.write_text("TELEGRAM_BOT_TOKEN=%s\nTELEGRAM_CHAT_ID=42\n" % TOKEN)
    cmd = [sys.executable, str(root / "lib" / "callcenter-backup-verify"), str(path), "--max-age", "3650d",
           "--metrics-file", str(metrics or root / "metrics" / "backup.prom"), "--env-file", str(env_file),
           "--telegram-api-url", telegram_url, "--pg-restore", "/usr/lib/postgresql/15/bin/pg_restore"] + list(extra)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                          env=dict(os.environ, PYTHONPATH=""))


def success_value(metrics):
    line = [x for x in metrics.read_text().splitlines() if x.startswith("callcenter_backup_verify_success{")]
    assert len(line) == 1, metrics.read_text()
    return line[0].rsplit(" ", 1)[1]


def test_host_script_on_a_symlink_loop_fails_closed(installed, dumps, telegram, tmp_path):
    metrics = tmp_path / "backup.prom"
    ok = run_verifier(installed, dumps / "callcenter-2026-11-25.dump.gz", metrics=metrics)
    assert ok.returncode == 0 and success_value(metrics) == "1", ok.stdout + ok.stderr
    loop = tmp_path / "latest.dump.gz"
    os.symlink(loop, loop)
    r = run_verifier(installed, loop, telegram_url=telegram.url, metrics=metrics)
    assert r.returncode != 0, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert "too many levels of symbolic links" in r.stderr, r.stderr
    assert success_value(metrics) == "0"  # the old "1" would have kept the alert quiet
    assert 'callcenter_backup_verify_failure{check="found"' in metrics.read_text()
    assert "too many levels of symbolic links" in metrics.read_text()
    assert "telegram: notified" in r.stderr
    msg = telegram.wait_for(lambda m: "Backup verification failed" in m["text"], timeout=10)
    assert msg["token"] == TOKEN and msg["chat_id"] == "42"
    assert "too many levels of symbolic links" in msg["text"]
    assert TOKEN not in r.stdout + r.stderr


def test_host_script_refuses_a_fifo_within_seconds(installed, telegram, tmp_path):
    fifo = tmp_path / "latest.dump.gz"
    os.mkfifo(fifo)
    metrics = tmp_path / "backup.prom"
    r = run_verifier(installed, fifo, "--timeout", "5", telegram_url=telegram.url, metrics=metrics, timeout=30)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "is a FIFO, not a regular file" in r.stderr and "Traceback" not in r.stderr
    assert success_value(metrics) == "0" and telegram.messages


@pytest.mark.parametrize("value, expected", [("nan", "finite"), ("inf", "finite"), ("1e12", "at most 86400")])
def test_host_script_refuses_an_unusable_timeout_as_a_failed_verification(
        installed, dumps, tmp_path, value, expected):
    metrics = tmp_path / "backup.prom"
    r = run_verifier(installed, dumps / "raw.dump", "--timeout", value, metrics=metrics)
    assert r.returncode == 2 and "--timeout must be" in r.stderr and expected in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and success_value(metrics) == "0"


def test_host_script_memory_stays_bounded_on_a_gzip_bomb(installed, dumps, tmp_path):
    """2.3 MB of gzip that expands to 2.3 GB behind a real header (2.8 GB RSS before the fix).
    wait4 gives the largest process of the verification: the verifier or a pg_restore it reaped."""
    bomb = make_bomb(dumps / "raw.dump", tmp_path / "bomb.dump.gz")
    log = tmp_path / "out.log"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child execs at once
        fd = os.open(str(log), os.O_WRONLY | os.O_CREAT, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.execv(sys.executable, [sys.executable, str(installed / "lib" / "callcenter-backup-verify"), str(bomb),
                                  "--metrics-file", str(tmp_path / "m.prom"),
                                  "--pg-restore", "/usr/lib/postgresql/15/bin/pg_restore"])
    _pid, status, usage = os.wait4(pid, 0)
    output = log.read_text()
    assert os.waitstatus_to_exitcode(status) == 1, output
    assert "pg_restore could not read the archive" in output and "Traceback" not in output
    assert usage.ru_maxrss < 100 * 1024, "peak RSS %.1f MB" % (usage.ru_maxrss / 1024.0)
    assert success_value(tmp_path / "m.prom") == "0"


def test_switching_to_cron_writes_a_cron_entry_and_removes_the_units_and_the_onsuccess_dropin(ansible, tmp_path):
    pb, root = role_playbook(tmp_path, backup_verify_scheduler="systemd",
                             backup_verify_after_unit="callcenter-backup.service")
    assert ansible.playbook(pb).rc == 0
    dropin = root / "systemd" / "callcenter-backup.service.d" / "callcenter-backup-verify.conf"
    assert "OnSuccess=callcenter-backup-verify.service" in dropin.read_text()
    assert (root / "systemd" / "callcenter-backup-verify.timer").exists()
    pb, root = role_playbook(tmp_path, backup_verify_scheduler="cron", backup_verify_cron_schedule="15 5 * * *",
                             backup_verify_after_unit="callcenter-backup.service")
    r = ansible.playbook(pb, verbosity=1)
    assert r.rc == 0, r
    assert not dropin.exists(), "the OnSuccess= drop-in still starts the removed service"
    assert not (root / "systemd" / "callcenter-backup-verify.service").exists()
    assert not (root / "systemd" / "callcenter-backup-verify.timer").exists()
    cron = (root / "cron.d" / "callcenter-backup-verify").read_text()
    assert cron.splitlines()[-1].startswith("15 5 * * * root /usr/bin/python3 ")
    assert "--env-file" in cron and TOKEN not in cron
    assert TOKEN not in r.output
    again = ansible.playbook(pb)
    assert again.rc == 0 and "changed=0" in again.output, again
