"""The flower role's refusals and its compose output (the systemd path with a running Flower
is the molecule scenario molecule/flower)."""

import shutil
import subprocess

import pytest
import yaml

GOOD = [{"user": "ops", "password": "Long-Enough-Secret-1"}]


def play(ansible, tmp_path, check=False, **variables):
    root = tmp_path / "host"
    base = dict(flower_deploy_method="compose", flower_compose_dir=str(root / "flower"), flower_compose_up=False,
                flower_broker_url="redis://:Broker-Secret-9@10.0.0.5:6379/0", flower_basic_auth=GOOD)
    base.update(variables)
    pb = tmp_path / "site.yml"
    pb.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "roles": [
        {"role": "callcenter.ops.flower", "vars": base}],
        "post_tasks": [{"name": "Show the URL", "ansible.builtin.debug": {"msg": "flower_url={{ flower_url }}"}}]}]))
    return ansible.playbook(pb, check=check), root


def test_compose_file_rendered_validated_and_secret_free(ansible, tmp_path):
    r, root = play(ansible, tmp_path, flower_url_prefix="flower", flower_public_url="https://ops.example/flower/")
    assert r.rc == 0, r
    compose = (root / "flower" / "docker-compose.yml").read_text()
    doc = yaml.safe_load(compose)
    svc = doc["services"]["flower"]
    assert svc["ports"] == ["127.0.0.1:5555:5555"]
    assert svc["env_file"] == [str(root / "flower" / "flower.env")]
    assert "Long-Enough-Secret-1" not in compose and "Broker-Secret-9" not in compose
    env = root / "flower" / "flower.env"
    assert oct(env.stat().st_mode & 0o777) == "0o600"
    assert "FLOWER_BASIC_AUTH=ops:Long-Enough-Secret-1" in env.read_text()
    assert "flower_url=https://ops.example/flower/" in r.output
    assert "Long-Enough-Secret-1" not in r.output and "Broker-Secret-9" not in r.output
    if shutil.which("docker-compose"):
        p = subprocess.run(["docker-compose", "-f", str(root / "flower" / "docker-compose.yml"), "config", "-q"],
                           capture_output=True, text=True, check=False)
        assert p.returncode == 0, p.stderr
    again, _root = play(ansible, tmp_path, flower_url_prefix="flower", flower_public_url="https://ops.example/flower/")
    assert again.rc == 0 and "changed=0" in again.output, again


def test_missing_auth_is_refused_before_any_change(ansible, tmp_path):
    r, root = play(ansible, tmp_path, flower_basic_auth=[])
    assert r.rc != 0
    assert "Flower is never deployed without auth" in r.output
    assert not root.exists()


@pytest.mark.parametrize("user,password", [
    ("admin", "password"), ("admin", "admin"), ("flower", "changeme"), ("ops", "short"),
    ("longusername-x", "longusername-x"), ("ops", "has,a-comma-inside"),
])
def test_weak_or_default_password_is_refused(ansible, tmp_path, user, password):
    r, root = play(ansible, tmp_path, flower_basic_auth=[{"user": user, "password": password}])
    assert r.rc != 0
    assert "the password is refused" in r.output
    assert not root.exists()


@pytest.mark.parametrize("port", [0, 70000, "http"])
def test_invalid_port_is_refused(ansible, tmp_path, port):
    r, root = play(ansible, tmp_path, flower_port=port)
    assert r.rc != 0
    assert "flower_port" in r.output
    assert not root.exists()


def test_compose_tool_rejecting_the_file_keeps_the_old_one(ansible, tmp_path):
    """A compose file the tool rejects (here: a port spec it cannot parse) never replaces the
    live one: template's validate runs first."""
    if not shutil.which("docker-compose"):
        pytest.skip("docker-compose not installed")
    r, root = play(ansible, tmp_path)
    assert r.rc == 0, r
    live = (root / "flower" / "docker-compose.yml").read_text()
    r, _root = play(ansible, tmp_path, flower_address="not an address:x")
    assert r.rc != 0
    assert (root / "flower" / "docker-compose.yml").read_text() == live


def test_changed_config_notifies_the_restart_handler_unchanged_does_not(ansible, tmp_path):
    r, _root = play(ansible, tmp_path)
    assert r.rc == 0, r
    same, _root = play(ansible, tmp_path)
    assert same.rc == 0 and "RUNNING HANDLER [callcenter.ops.flower : Recreate flower container]" not in same.output
    changed, _root = play(ansible, tmp_path, flower_max_tasks=5000)
    assert changed.rc == 0, changed
    assert "RUNNING HANDLER [callcenter.ops.flower : Recreate flower container]" in changed.output
