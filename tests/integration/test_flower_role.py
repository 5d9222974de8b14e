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


def role_vars(root, **variables):
    base = dict(flower_deploy_method="compose", flower_compose_dir=str(root / "flower"), flower_compose_up=False,
                flower_broker_url="redis://:Broker-Secret-9@10.0.0.5:6379/0", flower_basic_auth=GOOD)
    base.update(variables)
    return base


def play(ansible, root, verbosity=0, **variables):
    root.mkdir(parents=True, exist_ok=True)
    pb = root / "site.yml"
    pb.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "roles": [
        {"role": "callcenter.ops.flower", "vars": role_vars(root / "host", **variables)}],
        "post_tasks": [{"name": "Show the URL", "ansible.builtin.debug": {"msg": "flower_url={{ flower_url }}"}}]}]))
    return ansible.playbook(pb, verbosity=verbosity)


# The compose deployment, taken through these runs in one directory (module-scoped fixture
# ``compose``; every test only reads what a run left, recorded when the run ended):
#   first: ACCEPTED as the password, a URL prefix and a public URL;  same: the same again, at -v;
#   changed: a password full of $, # and spaces, an extra variable, flower_max_tasks and
#   flower_version set;  bad_address: an address the compose tool rejects (with docker-compose only).
ACCEPTED = "Accepted-Secret-Pass-88"
FIRST = dict(flower_url_prefix="flower", flower_public_url="https://ops.example/flower/",
             flower_basic_auth=[{"user": "ops", "password": ACCEPTED}])
DOLLAR = "Dollar$HOME-and#hash and space"
CHANGED = {**FIRST, "flower_basic_auth": [{"user": "ops", "password": DOLLAR}],
           "flower_extra_env": {"FLOWER_AUTO_REFRESH": "False"}, "flower_max_tasks": 5000, "flower_version": "2.2.0"}


@pytest.fixture(scope="module")
def compose(ansible, tmp_path_factory):
    root = tmp_path_factory.mktemp("flower-compose")
    flower = root / "host" / "flower"
    c = {"root": root / "host"}
    c["first"] = play(ansible, root, **FIRST)
    if c["first"].rc == 0:
        c["first_compose"] = (flower / "docker-compose.yml").read_text()
        c["first_env_mode"] = oct((flower / "flower.env").stat().st_mode & 0o777)
        c["first_env"] = (flower / "flower.env").read_text()
    c["same"] = play(ansible, root, verbosity=1, **FIRST)
    c["changed"] = play(ansible, root, **CHANGED)
    if c["changed"].rc == 0:
        c["changed_compose"] = (flower / "docker-compose.yml").read_text()
    if shutil.which("docker-compose"):
        c["bad_address"] = play(ansible, root, **{**CHANGED, "flower_address": "not an address:x"})
        c["after_bad_address"] = (flower / "docker-compose.yml").read_text()
    return c


def test_compose_file_rendered_validated_and_secret_free(compose):
    r, root = compose["first"], compose["root"]
    assert r.rc == 0, r
    compose_text = compose["first_compose"]
    doc = yaml.safe_load(compose_text)
    svc = doc["services"]["flower"]
    assert svc["ports"] == ["127.0.0.1:5555:5555"]
    assert svc["env_file"] == [str(root / "flower" / "flower.env")]
    assert ACCEPTED not in compose_text and "Broker-Secret-9" not in compose_text
    assert compose["first_env_mode"] == "0o600"
    assert "FLOWER_BASIC_AUTH='ops:%s'" % ACCEPTED in compose["first_env"]
    assert "flower_url=https://ops.example/flower/" in r.output
    assert ACCEPTED not in r.output and "Broker-Secret-9" not in r.output
    again = compose["same"]
    assert again.rc == 0 and "changed=0" in again.output, again


def test_compose_tool_rejecting_the_file_keeps_the_old_one(compose, compose_tool):  # pylint: disable=unused-argument
    """A compose file the tool rejects (here: a port spec it cannot parse) never replaces the
    live one: template's validate runs first."""
    assert compose["changed"].rc == 0, compose["changed"]
    r = compose["bad_address"]
    assert r.rc != 0
    assert compose["after_bad_address"] == compose["changed_compose"]


def test_changed_config_notifies_the_restart_handler_unchanged_does_not(compose):
    assert compose["first"].rc == 0, compose["first"]
    same = compose["same"]
    assert same.rc == 0 and "RUNNING HANDLER [callcenter.ops.flower : Recreate flower container]" not in same.output
    changed = compose["changed"]
    assert changed.rc == 0, changed
    assert "RUNNING HANDLER [callcenter.ops.flower : Recreate flower container]" in changed.output


# A password that is refused, one with a newline that would inject a line into flower.env, and
# one that is accepted: none may show in any output, at any verbosity.
REFUSED_PASSWORD = "Refused,Secret-Pass-77"
INJECTING = "Injected-Secret-55\nFLOWER_UNAUTHENTICATED_API=true"
PASSWORDS = [
    (REFUSED_PASSWORD, "comma"), (INJECTING, "control character"), ("Tab\tinside-Secret-66", "control character"),
    ("Quote'inside-Secret-66", "single quote"), ("Back\\slash-Secret-66", "backslash"),
]


def test_env_file_quotes_every_value_for_systemd_sh_and_compose(compose):
    assert compose["changed"].rc == 0, compose["changed"]
    env = compose["root"] / "flower" / "flower.env"
    # the shell (molecule starts Flower with `set -a; . flower.env`) reads the value back verbatim
    out = subprocess.run(["sh", "-c", "set -a; . %s; printf %%s \"$FLOWER_BASIC_AUTH\"" % env],
                         capture_output=True, text=True, check=True).stdout
    assert out == "ops:" + DOLLAR


def test_compose_reads_the_env_file_and_the_rendered_file_verbatim(compose, compose_tool):
    assert compose["changed"].rc == 0, compose["changed"]
    p = subprocess.run([compose_tool, "-f", str(compose["root"] / "flower" / "docker-compose.yml"), "config"],
                       capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stderr
    service = yaml.safe_load(p.stdout)["services"]["flower"]
    assert service["environment"]["FLOWER_BASIC_AUTH"].replace("$$", "$") == "ops:" + DOLLAR
    assert service["environment"]["FLOWER_AUTO_REFRESH"] == "False"
    assert service["image"] == "mher/flower:2.2.0"


def test_compose_image_is_the_flower_version(compose):
    r = compose["changed"]   # flower_version="2.2.0"
    assert r.rc == 0, r
    svc = yaml.safe_load(compose["changed_compose"])["services"]["flower"]
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


VERBOSITIES = (0, 1, 3)


@pytest.fixture(scope="module")
def refusal_runs(ansible, tmp_path_factory):
    """One playbook run per verbosity (ansible.refusals: a block/rescue per case): each of
    PASSWORDS as the second user's password next to ACCEPTED, and at -vvv ACCEPTED alone with a
    broker password too (the role runs through; at -v and without -v, that is the ``compose``
    fixture's runs). Returns {verbosity: (result, messages, workdir)}; the cases' directories are
    pw<i>/host (PASSWORDS) and accepted/host."""
    runs = {}
    for verbosity in VERBOSITIES:
        work = tmp_path_factory.mktemp("flower-refusals-v%d" % verbosity)
        cases = [dict(flower_deploy_method="compose", flower_compose_dir=str(work / ("pw%d" % i) / "host" / "flower"),
                      flower_compose_up=False,
                      flower_basic_auth=[{"user": "ops", "password": ACCEPTED}, {"user": "night-shift", "password": pw}])
                 for i, (pw, _why) in enumerate(PASSWORDS)]
        if verbosity == 3:
            cases.append(dict(flower_deploy_method="compose", flower_compose_dir=str(work / "accepted" / "host" / "flower"),
                              flower_compose_up=False, flower_broker_url="redis://:Broker-Secret-9@10.0.0.5:6379/0",
                              flower_basic_auth=[{"user": "ops", "password": ACCEPTED}]))
        r, messages = ansible.refusals("callcenter.ops.flower", cases, work, verbosity=verbosity)
        runs[verbosity] = (r, messages, work)
    return runs


@pytest.mark.parametrize("index", range(len(PASSWORDS)), ids=[why.replace(" ", "_") for _pw, why in PASSWORDS])
def test_refused_password_is_never_printed_even_at_vvv(refusal_runs, index):
    password, why = PASSWORDS[index]
    for verbosity in VERBOSITIES:
        r, messages, work = refusal_runs[verbosity]
        assert r.rc == 0, r   # the refusal is rescued and recorded: the role stopped (messages[index])
        msg = messages[index]
        assert msg and "Flower user 'night-shift': the password is refused" in msg, (verbosity, msg)
        assert "Flower user 'night-shift': the password is refused" in r.output, r
        assert why in msg and why in r.output, (verbosity, msg)
        assert "Flower user 'ops'" not in msg and "Flower user 'ops'" not in r.output, r
        for secret in (password, ACCEPTED) + tuple(p for p in password.split("\n") if "Secret" in p):
            assert secret not in r.output, (verbosity, secret, r)
        assert not (work / ("pw%d" % index) / "host").exists()


def test_accepted_password_is_never_printed_even_at_vvv(compose, refusal_runs):
    """ACCEPTED (and a broker password) deployed without -v (the first compose run, files
    created), at -v (the same run again) and at -vvv (a fresh directory, in refusal_runs)."""
    for verbosity, r in ((0, compose["first"]), (1, compose["same"])):
        assert r.rc == 0, r
        assert ACCEPTED not in r.output and "Broker-Secret-9" not in r.output, (verbosity, r)
    r, messages, work = refusal_runs[3]
    assert r.rc == 0, r
    assert messages[len(PASSWORDS)] is None, messages[len(PASSWORDS)]   # the role ran through
    assert (work / "accepted" / "host" / "flower" / "docker-compose.yml").is_file()
    assert ACCEPTED not in r.output and "Broker-Secret-9" not in r.output, r


def test_bad_input_is_refused_by_name_before_any_change(ansible, tmp_path):
    """Missing auth, weak or default passwords, bad ports, malformed user names, values that would
    inject a line into flower.env, a compose image of another version: each stops the role before
    it writes anything, with a message naming what is wrong, and no accepted password is shown."""
    cases = [dict(role_vars(tmp_path / ("case%d" % i)), **variables) for i, (variables, _expected) in enumerate(REFUSED)]
    r, messages = ansible.refusals("callcenter.ops.flower", cases, tmp_path)
    assert r.rc == 0, r
    for (variables, expected), msg in zip(REFUSED, messages):
        assert msg and expected in msg, (variables, expected, msg)
    assert ACCEPTED not in r.output and "Broker-Secret-9" not in r.output
    assert not list(tmp_path.glob("case*/flower")), "a refused case wrote files"
