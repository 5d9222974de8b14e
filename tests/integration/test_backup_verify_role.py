"""The verify_backup playbook and the backup_verify role's bad-input paths (the role's happy
path on systemd is the molecule scenario molecule/backup_verify)."""

import os
import shutil

TOKEN = "999:role-Secret-Token"


def role_playbook(tmp_path, **overrides):
    root = tmp_path / "host"
    variables = dict(
        backup_verify_path=str(tmp_path / "backups"),
        backup_verify_install_dir=str(root / "lib"),
        backup_verify_config_dir=str(root / "etc"),
        backup_verify_systemd_dir=str(root / "systemd"),
        backup_verify_cron_file=str(root / "cron.d" / "callcenter-backup-verify"),
        backup_verify_metrics_file=str(root / "metrics" / "backup.prom"),
        backup_verify_telegram_bot_token=TOKEN,
        backup_verify_telegram_chat_id="42",
    )
    variables.update(overrides)
    pb = tmp_path / "site.yml"
    lines = ["- hosts: localhost", "  gather_facts: false", "  roles:", "    - role: callcenter.ops.backup_verify",
             "      vars:"]
    for k, v in variables.items():
        lines.append("        %s: %r" % (k, v))
    pb.write_text("\n".join(lines) + "\n")
    return pb, root


def test_cron_scheduler_writes_a_cron_entry_and_no_units(ansible, tmp_path):
    pb, root = role_playbook(tmp_path, backup_verify_scheduler="cron", backup_verify_cron_schedule="15 5 * * *")
    r = ansible.playbook(pb, verbosity=1)
    assert r.rc == 0, r
    cron = (root / "cron.d" / "callcenter-backup-verify").read_text()
    assert cron.splitlines()[-1].startswith("15 5 * * * root /usr/bin/python3 ")
    assert "--env-file" in cron and TOKEN not in cron
    assert not (root / "systemd" / "callcenter-backup-verify.timer").exists()
    assert TOKEN not in r.output
    again = ansible.playbook(pb)
    assert again.rc == 0 and "changed=0" in again.output, again


def test_bad_max_age_fails_before_anything_is_written(ansible, tmp_path):
    pb, root = role_playbook(tmp_path, backup_verify_max_age="yesterday")
    r = ansible.playbook(pb)
    assert r.rc != 0
    assert "backup_verify settings are invalid" in r.output
    assert not root.exists()


def test_wrong_type_is_refused_by_the_argument_spec(ansible, tmp_path):
    pb, root = role_playbook(tmp_path, backup_verify_scheduler="anacron")
    r = ansible.playbook(pb)
    assert r.rc != 0
    assert "backup_verify_scheduler" in r.output and "anacron" in r.output
    assert not root.exists()


def test_token_without_chat_id_is_refused(ansible, tmp_path):
    pb, root = role_playbook(tmp_path, backup_verify_telegram_chat_id="")
    r = ansible.playbook(pb)
    assert r.rc != 0 and "Telegram token and chat id both set or both empty" in r.output
    assert TOKEN not in r.output


def test_verify_backup_playbook_prints_verdict(ansible, dumps, tmp_path):
    r = ansible.playbook("callcenter.ops.verify_backup", extra_vars={"backup_path": str(dumps)})
    assert r.rc == 0, r
    assert "Backup VALID: %s/callcenter-2026-11-25.dump.gz" % dumps in r.output
    assert "toc: database callcenter" in r.output


def test_verify_backup_playbook_fails_on_a_broken_backup(ansible, dumps, tmp_path):
    src = (dumps / "callcenter-2026-11-25.dump.gz").read_bytes()
    shutil.copy(dumps / "callcenter-2026-11-25.dump.gz", tmp_path)
    os.utime(tmp_path / "callcenter-2026-11-25.dump.gz", (1_700_000_000, 1_700_000_000))
    (tmp_path / "callcenter-2026-11-26.dump.gz").write_bytes(src[: len(src) // 2])  # the newest
    r = ansible.playbook("callcenter.ops.verify_backup", extra_vars={"backup_path": str(tmp_path)})
    assert r.rc != 0
    assert "Backup NOT VALID: %s/callcenter-2026-11-26.dump.gz" % tmp_path in r.output
    assert "truncated after" in r.output
