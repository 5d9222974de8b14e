"""playbooks/deploy.yml puts every role on its inventory group (all on localhost here)."""

import re

import yaml


def test_deploy_applies_each_role_to_its_group(ansible, tmp_path):
    inv = tmp_path / "inventory.yml"
    root = tmp_path / "host"
    inv.write_text(yaml.safe_dump({"all": {
        "hosts": {"localhost": {"ansible_connection": "local", "ansible_become": False}},
        "children": {g: {"hosts": {"localhost": None}} for g in ("flower", "prometheus", "app", "db")},
        "vars": {
            "flower_deploy_method": "compose", "flower_compose_up": False, "flower_compose_dir": str(root / "flower"),
            "flower_basic_auth": [{"user": "ops", "password": "Deploy-Test-Secret-1"}],
            "prometheus_alerts_rules_dir": str(root / "rules"), "prometheus_alerts_file_sd_dir": str(root / "sd"),
            "prometheus_alerts_reload_method": "none",
            "runbooks_dest": str(root / "runbooks"),
            "callcenter_runbook_base_url": "https://ops.example/doc/operations/runbooks",
            "backup_verify_install_dir": str(root / "lib"), "backup_verify_config_dir": str(root / "etc"),
            "backup_verify_systemd_dir": str(root / "systemd"),
            "backup_verify_metrics_file": str(root / "metrics" / "b.prom"),
        }}}))
    r = ansible.playbook("callcenter.ops.deploy", inventory=str(inv))
    assert r.rc == 0, r
    for path in ("flower/docker-compose.yml", "rules/callcenter-celery.rules.yml", "runbooks/index.html",
                 "systemd/callcenter-backup-verify.timer"):
        assert (root / path).exists(), path
    assert "Deploy-Test-Secret-1" not in r.output
    # Idempotence of the playbook itself (its plays, become, tags): run again, one part selected
    # by its tag (ANSIBLE_RUN_TAGS, the same as the --tags its header names), and nothing may
    # change. One part, not all four: each role's own second run is checked where the role is
    # tested (molecule/*/molecule.yml: an idempotence step in every scenario, runbooks included;
    # in pytest tests/integration/test_flower_role.py (compose, as here),
    # test_prometheus_alerts_role.py and test_backup_verify_role.py (cron)). backup_verify is the
    # part chosen: its systemd timer, as deployed here, is the one second run pytest checks
    # nowhere else.
    only = ansible.playbook("callcenter.ops.deploy", inventory=str(inv), extra_vars=None,
                            env={"ANSIBLE_RUN_TAGS": "backup_verify"})
    assert only.rc == 0 and "changed=0" in only.output, only
    # Only that part ran: every role's argument check is tagged `always` by Ansible, and flower
    # tags `always` the two tasks its own --tags runs need (is systemd PID 1, is the service
    # managed); nothing else of flower, runbooks or prometheus_alerts (backup_verify installs its
    # files with host_files).
    ran = [(role, task) for role, task in re.findall(r"TASK \[callcenter\.ops\.(\w+) : ([^\]]*)\]", only.output)
           if not task.startswith("Validating arguments against arg spec")]
    flower_always = {"Find out whether systemd runs this host", "Decide whether the role manages the service"}
    others = {(role, task) for role, task in ran
              if role not in ("backup_verify", "host_files") and not (role == "flower" and task in flower_always)}
    assert ("backup_verify" in {role for role, _task in ran}) and not others, (others, only)
