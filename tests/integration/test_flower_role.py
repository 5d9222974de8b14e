"""The flower role's refusals and its compose output (the systemd path with a running Flower
is the molecule scenario molecule/flower)."""

import shutil
import subprocess

import pytest
import yaml

GOOD = [{"user": "ops", "password": "Long-Enough-Secret-1"}]


@pytest.fixture(scope="module")
def compose_tool():
    """Debian's docker-compose (validates a file without an engine); the test is skipped, not
    silently passed, without it."""
    tool = shutil.which("docker-compose")
    if not tool:
        pytest.skip("docker-compose not installed (apt-get install docker-compose)")
    return tool


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
    assert "FLOWER_BASIC_AUTH='ops:Long-Enough-Secret-1'" in env.read_text()
    assert "flower_url=https://ops.example/flower/" in r.output
    assert "Long-Enough-Secret-1" not in r.output and "Broker-Secret-9" not in r.output
    again, _root = play(ansible, tmp_path, flower_url_prefix="flower", flower_public_url="https://ops.example/flower/")
    assert again.rc == 0 and "changed=0" in again.output, again


def test_compose_tool_rejecting_the_file_keeps_the_old_one(ansible, tmp_path, compose_tool):
    """A compose file the tool rejects (here: a port spec it cannot parse) never replaces the
    live one: template's validate runs first."""
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


# A password that is refused, one with a newline that would inject a line into flower.env, and
# one that is accepted: none may show in any output, at any verbosity.
REFUSED = "Refused,Secret-Pass-77"
INJECTING = "Injected-Secret-55\nFLOWER_UNAUTHENTICATED_API=true"
ACCEPTED = "Accepted-Secret-Pass-88"


@pytest.mark.parametrize("password,why", [
    (REFUSED, "comma"), (INJECTING, "control character"), ("Tab\tinside-Secret-66", "control character"),
    ("Quote'inside-Secret-66", "single quote"), ("Back\\slash-Secret-66", "backslash"),
])
def test_refused_password_is_never_printed_even_at_vvv(ansible, tmp_path, password, why):
    root = tmp_path / "host"
    pb = tmp_path / "site.yml"
    pb.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "roles": [
        {"role": "callcenter.ops.flower", "vars": dict(
            flower_deploy_method="compose", flower_compose_dir=str(root / "flower"), flower_compose_up=False,
            flower_basic_auth=[{"user": "ops", "password": ACCEPTED}, {"user": "night-shift", "password": password}])}]}]))
    for verbosity in (0, 1, 3):
        r = ansible.playbook(pb, verbosity=verbosity)
        assert r.rc != 0, r
        assert "Flower user 'night-shift': the password is refused" in r.output, r
        assert why in r.output, r
        assert "Flower user 'ops'" not in r.output, r
        for secret in (password, ACCEPTED) + tuple(p for p in password.split("\n") if "Secret" in p):
            assert secret not in r.output, (verbosity, secret, r)
        assert not root.exists()


def test_accepted_password_is_never_printed_even_at_vvv(ansible, tmp_path):
    pb = tmp_path / "site.yml"
    root = tmp_path / "host"
    pb.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "roles": [
        {"role": "callcenter.ops.flower", "vars": dict(
            flower_deploy_method="compose", flower_compose_dir=str(root / "flower"), flower_compose_up=False,
            flower_broker_url="redis://:Broker-Secret-9@10.0.0.5:6379/0",
            flower_basic_auth=[{"user": "ops", "password": ACCEPTED}])}]}]))
    for verbosity in (0, 1, 3):
        r = ansible.playbook(pb, verbosity=verbosity)
        assert r.rc == 0, r
        assert ACCEPTED not in r.output and "Broker-Secret-9" not in r.output, (verbosity, r)


def test_env_file_quotes_every_value_for_systemd_sh_and_compose(ansible, tmp_path):
    password = "Dollar$HOME-and#hash and space"
    r, root = play(ansible, tmp_path, flower_basic_auth=[{"user": "ops", "password": password}],
                   flower_extra_env={"FLOWER_AUTO_REFRESH": "False"})
    assert r.rc == 0, r
    env = root / "flower" / "flower.env"
    # the shell (molecule starts Flower with `set -a; . flower.env`) reads the value back verbatim
    out = subprocess.run(["sh", "-c", "set -a; . %s; printf %%s \"$FLOWER_BASIC_AUTH\"" % env],
                         capture_output=True, text=True, check=True).stdout
    assert out == "ops:" + password


def test_compose_reads_the_env_file_and_the_rendered_file_verbatim(ansible, tmp_path, compose_tool):
    password = "Dollar$HOME-and#hash and space"
    r, root = play(ansible, tmp_path, flower_basic_auth=[{"user": "ops", "password": password}],
                   flower_extra_env={"FLOWER_AUTO_REFRESH": "False"})
    assert r.rc == 0, r
    p = subprocess.run([compose_tool, "-f", str(root / "flower" / "docker-compose.yml"), "config"],
                       capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stderr
    service = yaml.safe_load(p.stdout)["services"]["flower"]
    assert service["environment"]["FLOWER_BASIC_AUTH"].replace("$$", "$") == "ops:" + password
    assert service["environment"]["FLOWER_AUTO_REFRESH"] == "False"
    assert service["image"] == "mher/flower:2.2.0"


def test_compose_image_is_the_flower_version(ansible, tmp_path):
    r, root = play(ansible, tmp_path, flower_version="2.2.0")
    assert r.rc == 0, r
    svc = yaml.safe_load((root / "flower" / "docker-compose.yml").read_text())["services"]["flower"]
    assert svc["image"] == "mher/flower:2.2.0"


def test_the_role_owns_its_compose_template():
    from pathlib import Path
    role = Path(__file__).resolve().parents[2] / "roles" / "flower"
    assert (role / "templates" / "docker-compose.yml.j2").is_file()
    tasks = "".join(p.read_text() for p in (role / "tasks").glob("*.yml"))
    assert "role_path" not in tasks


# Every refusal of bad input, each case a separate application of the role in one playbook run
# (ansible.refusals); (variables, what the failure message says).
REFUSED = [
    (dict(flower_basic_auth=[]), "Flower is never deployed without auth"),
] + [
    (dict(flower_basic_auth=[{"user": u, "password": pw}]), "the password is refused")
    for u, pw in [("admin", "password"), ("admin", "admin"), ("flower", "changeme"), ("ops", "short"),
                  ("longusername-x", "longusername-x"), ("ops", "has,a-comma-inside")]
] + [
    (dict(flower_port=port), "flower_port") for port in (0, 70000, "http")
] + [
    (dict(flower_basic_auth=[{"user": u, "password": ACCEPTED}]), "user name")
    for u in ("a:b", "a,b", "ops\nFLOWER_X=1", "o'ps")
] + [
    (v, "flower.env") for v in (
        dict(flower_extra_env={"FLOWER_X": "1\nFLOWER_UNAUTHENTICATED_API=true"}),
        dict(flower_extra_env={"BAD KEY": "1"}),
        dict(flower_broker_url="redis://127.0.0.1:6379/0\nFLOWER_UNAUTHENTICATED_API=true"),
        dict(flower_db_path="/var/lib/flower/x\nFLOWER_UNAUTHENTICATED_API=true"))
] + [
    (dict(flower_compose_image=image, flower_version="2.2.0"), "must be tagged with flower_version (2.2.0)")
    for image in ("mher/flower:2.0", "mher/flower", "registry.local:5000/flower", "mher/flower@sha256:abc")
]


def test_bad_input_is_refused_by_name_before_any_change(ansible, tmp_path):
    """Missing auth, weak or default passwords, bad ports, malformed user names, values that would
    inject a line into flower.env, a compose image of another version: each stops the role before
    it writes anything, with a message naming what is wrong, and no accepted password is shown."""
    cases = []
    for i, (variables, _expected) in enumerate(REFUSED):
        base = dict(flower_deploy_method="compose", flower_compose_dir=str(tmp_path / ("case%d" % i) / "flower"),
                    flower_compose_up=False, flower_broker_url="redis://:Broker-Secret-9@10.0.0.5:6379/0",
                    flower_basic_auth=GOOD)
        base.update(variables)
        cases.append(base)
    r, messages = ansible.refusals("callcenter.ops.flower", cases, tmp_path)
    assert r.rc == 0, r
    for (variables, expected), msg in zip(REFUSED, messages):
        assert msg and expected in msg, (variables, expected, msg)
    assert ACCEPTED not in r.output and "Broker-Secret-9" not in r.output
    assert not list(tmp_path.glob("case*/flower")), "a refused case wrote files"
