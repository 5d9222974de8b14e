"""The collection as it is shipped: the Galaxy tarball, the Galaxy importer, an execution
environment built with ansible-builder, and the `ops` action group as module_defaults use it.

ansible-builder and galaxy-importer live in their own virtualenv (galaxy-importer pins
attrs<24, which the test venv's pins do not allow), made once per work dir and reused.
"""

import os
import re
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import yaml

from conftest import BIN, REPO, free_port

# The packaging tools, pinned (with what pip resolved for them next to ansible-core 2.19).
TOOLS = ["ansible-builder==3.2.0", "galaxy-importer==0.4.44", "ansible-core==2.19.14", "ansible-lint==26.10.1",
         "attrs==23.2.0", "bindep==2.14.0", "Parsley==1.3", "pbr==7.1.3", "flake8==6.1.0", "Markdown==3.11.3",
         "nh3==0.3.8", "requests==2.34.2", "semantic-version==2.10.0"]
WORK = Path(os.environ.get("CALLCENTER_OPS_WORK", REPO / ".work"))
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
TARBALL_NAME = "callcenter-ops-%s.tar.gz" % GALAXY["version"]

# Development output that must never reach the tarball (galaxy.yml build_ignore). Paths relative
# to the test's own copy of the checkout (fixture tarball), none under the machine's /tmp.
JUNK = [".ansible/collections/x.txt", "roles/flower/.ansible/tmp/x.txt", "molecule/flower/.ansible/x.txt",
        ".venv/bin/python", "tests/output/junit.xml", "tests/unit/.pytest_cache/v/x", ".pytest_cache/v/x",
        "changelogs/.plugin-cache.yaml", "molecule/flower/.molecule/state.yml", "context/Containerfile",
        "plugins/modules/__pycache__/x.pyc"]


def run(cmd, timeout=300, **kwargs):
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, check=False, **kwargs)


def make_venv(venv, requirements, *pip_options):
    """A virtualenv without a pip of its own: the test venv's pip installs ``requirements`` into
    it (`pip --python`; ensurepip and its setuptools cost ~6 CPU-s more). Returns pip's run."""
    r = run(["/usr/bin/python3", "-m", "venv", "--without-pip", venv])
    assert r.returncode == 0, r.stderr
    return run([BIN / "python", "-m", "pip", "--python", Path(venv) / "bin/python", "install", "-q",
                "--disable-pip-version-check"] + list(pip_options) + list(requirements), timeout=600)


@pytest.fixture(scope="module")
def tools():
    """bin/ of the virtualenv with ansible-builder and galaxy-importer, made on first use by
    scripts/lib.sh's ensure_venv (its lock and stamp: two suites on one machine share it), filled
    by this test venv's pip."""
    venv = WORK / "venv-packaging"
    req = WORK / "packaging-requirements.txt"
    WORK.mkdir(parents=True, exist_ok=True)
    wanted = "".join(t + "\n" for t in TOOLS)
    if not req.exists() or req.read_text() != wanted:
        new = req.with_name(req.name + ".%d" % os.getpid())
        new.write_text(wanted)
        new.replace(req)  # whole, for another suite reading it now
    r = run(["bash", "-c", 'source "$1/scripts/lib.sh"; ensure_venv "$2" /usr/bin/python3 "$3" "$VENV"', "venv",
             REPO, venv, req], timeout=900, env=dict(os.environ, CALLCENTER_OPS_VENV=str(BIN.parent)))
    if r.returncode != 0:
        pytest.skip("could not install %s from PyPI: %s" % (", ".join(TOOLS[:2]), (r.stdout + r.stderr).strip()[-500:]))
    return venv / "bin"


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    """The Galaxy tarball, built from a copy of this checkout salted with development output."""
    src = tmp_path_factory.mktemp("src") / "ops"
    src.mkdir()
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout
    tar = subprocess.run(["tar", "--ignore-failed-read", "-cf", "-", "--null", "-T", "-"], cwd=REPO, input=files,
                         capture_output=True, check=False)
    subprocess.run(["tar", "-xf", "-"], cwd=src, input=tar.stdout, check=True)
    for junk in JUNK:
        (src / junk).parent.mkdir(parents=True, exist_ok=True)
        (src / junk).write_text("development output\n")
    out = tmp_path_factory.mktemp("dist")
    r = run([BIN / "ansible-galaxy", "collection", "build", "--output-path", out, src])
    assert r.returncode == 0, r.stdout + r.stderr
    return out / TARBALL_NAME


@pytest.fixture(scope="module")
def importer(tools, tarball, tmp_path_factory):
    """galaxy-importer on the tarball, offline (no ansible-test: it needs a container engine;
    no ansible-lint of its own: the lint stage of scripts/test.sh runs ansible-lint over the same
    files with the stricter production profile, and twice cost half a minute of CPU)."""
    d = tmp_path_factory.mktemp("importer")
    cfg = d / "galaxy-importer.cfg"
    cfg.write_text("[galaxy-importer]\nRUN_ANSIBLE_TEST = False\nRUN_ANSIBLE_LINT = False\n")
    env = dict(os.environ, GALAXY_IMPORTER_CONFIG=str(cfg), HOME=str(d), ANSIBLE_HOME=str(d / "ansible"),
               PATH="%s:%s" % (tools, os.environ["PATH"]))
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    start = time.monotonic()
    r = run([tools / "python", "-m", "galaxy_importer.main", tarball], cwd=d, env=env, timeout=600)
    print("galaxy-importer: %.1f s" % (time.monotonic() - start))
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if not ln.startswith("WARNING: Location")]
    return r, lines


def test_tarball_leaves_out_development_output(tarball):
    with tarfile.open(tarball) as t:
        names = t.getnames()
    dev_dirs = {".ansible", ".venv", ".pytest_cache", ".molecule", "__pycache__"}
    leaked = [n for n in names if dev_dirs & set(n.split("/")) or n.startswith(("tests/output", "context"))
              or n == "changelogs/.plugin-cache.yaml"]
    assert not leaked, leaked
    for wanted in ("LICENSE", "meta/execution-environment.yml", "meta/requirements.txt", "meta/bindep.txt",
                   "meta/runtime.yml", "README.md"):
        assert wanted in names
    roles = sorted({n.split("/")[1] for n in names if n.startswith("roles/") and n.count("/") >= 2})
    assert roles and all("roles/%s/README.md" % r in names for r in roles), roles


def test_galaxy_importer_accepts_the_tarball(importer):
    r, lines = importer
    assert r.returncode == 0, "\n".join(lines)
    assert "Importer processing completed successfully" in lines, "\n".join(lines)
    # ansible-doc's complaints are the next test's; every other ERROR fails here.
    errors = [ln for ln in lines if ln.startswith("ERROR") and "Error running ansible-doc" not in ln]
    assert not errors, "\n".join(errors)
    print("\n".join(ln for ln in lines if ln.startswith("WARNING")) or "importer: no warnings")


def test_galaxy_importer_reads_every_plugin_doc(importer):
    lines = importer[1]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    assert not errors, "\n".join(errors)


def test_execution_environment_build_context_holds_the_dependencies(tools, tarball, tmp_path):
    # As a user does it: the EE file next to meta/ and the tarball built with `collection build .`.
    ee = tmp_path / "checkout"
    (ee / "meta").mkdir(parents=True)
    for name in ("execution-environment.yml", "meta/requirements.txt", "meta/bindep.txt"):
        (ee / name).write_text((REPO / name).read_text())
    (ee / TARBALL_NAME).write_bytes(tarball.read_bytes())
    definition = yaml.safe_load((ee / "execution-environment.yml").read_text())
    assert definition["version"] == 3
    assert [c["name"] for c in definition["dependencies"]["galaxy"]["collections"]] == ["collections/" + TARBALL_NAME], \
        "execution-environment.yml must name the tarball of galaxy.yml's version"
    start = time.monotonic()
    r = run([tools / "ansible-builder", "create", "-f", ee / "execution-environment.yml", "-c", tmp_path / "context"],
            cwd=tmp_path)
    print("ansible-builder create: %.2f s" % (time.monotonic() - start))
    assert r.returncode == 0, r.stdout + r.stderr
    build = tmp_path / "context" / "_build"
    pip = requirement_names((build / "requirements.txt").read_text())
    assert {"redis", "celery", "psycopg", "isal"} <= pip, pip
    bindep = (build / "bindep.txt").read_text()
    assert re.search(r"^postgresql-client \[platform:dpkg\]", bindep, re.M), bindep
    assert re.search(r"^postgresql \[platform:rpm\]", bindep, re.M), bindep
    assert (build / "collections" / TARBALL_NAME).is_file()
    containerfile = next(p for p in (tmp_path / "context").iterdir() if p.name in ("Containerfile", "Dockerfile"))
    assert "introspect" in containerfile.read_text()


def test_introspect_finds_the_installed_collections_requirements(tools, tarball, tmp_path):
    r = run([BIN / "ansible-galaxy", "collection", "install", "--offline", "-p", tmp_path / "collections", tarball],
            env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "collections"), ANSIBLE_HOME=str(tmp_path)))
    assert r.returncode == 0, r.stdout + r.stderr
    start = time.monotonic()
    r = run([tools / "ansible-builder", "introspect", tmp_path / "collections"])
    print("ansible-builder introspect: %.2f s" % (time.monotonic() - start))
    assert r.returncode == 0, r.stdout + r.stderr
    found = yaml.safe_load(r.stdout)
    python = [line for line in found["python"] if line.endswith("# from collection callcenter.ops")]
    assert {"redis", "celery", "psycopg", "isal"} <= requirement_names("\n".join(python)), found
    assert any(line.startswith("postgresql-client ") for line in found["system"]), found


def test_meta_requirements_let_every_module_utils_import(tmp_path):
    """What an EE (or a managed host) gets from meta/requirements.txt is enough for every
    module_utils file: a fresh virtualenv, pip install -r, then import them all the way a module
    does (AnsiballZ ships ansible.module_utils and the collection's module_utils with it)."""
    venv = tmp_path / "venv"
    start = time.monotonic()
    # imported once: no bytecode compiled ahead (pip's compile of celery, kombu... ~3 CPU-s)
    r = make_venv(venv, ["-r", REPO / "meta/requirements.txt"], "--no-compile")
    if r.returncode != 0 and "No matching distribution" in r.stderr + r.stdout and "redis" not in r.stderr:
        pytest.skip("PyPI not reachable: %s" % r.stderr[-300:])
    assert r.returncode == 0, r.stdout + r.stderr
    print("fresh venv from meta/requirements.txt: %.1f s" % (time.monotonic() - start))
    root = tmp_path / "payload"
    (root / "ansible_collections" / "callcenter").mkdir(parents=True)
    (root / "ansible_collections" / "callcenter" / "ops").symlink_to(REPO)
    import ansible  # pylint: disable=import-outside-toplevel
    (root / "ansible").symlink_to(Path(ansible.__file__).parent)
    names = sorted(p.stem for p in (REPO / "plugins/module_utils").glob("*.py") if p.stem != "__init__")
    code = "\n".join(["import importlib"] + [
        "importlib.import_module('ansible_collections.callcenter.ops.plugins.module_utils.%s')" % n for n in names] + [
        "from ansible_collections.callcenter.ops.plugins.module_utils import redis_client, celery_client, postgres, backup",
        "assert redis_client.HAS_REDIS and celery_client.HAS_CELERY and postgres.HAS_PSYCOPG and backup.HAS_ISAL",
        "import celery, kombu.transport.redis, psycopg",
        "print('imported', %d)" % len(names)])
    r = run([venv / "bin/python", "-c", code], cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(root)))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "imported %d" % len(names) in r.stdout


def test_ops_group_defaults_reach_only_modules_that_take_them(ansible, tmp_path):
    """module_defaults for group/callcenter.ops.ops with a broker_url: backup_verify (no broker)
    runs, celery_health (in the group) gets the broker_url, config_reload gets its own group's app_url."""
    port = free_port()  # nothing listens: the broker check fails fast, naming this address
    not_a_dump = tmp_path / "nightly.dump.gz"
    not_a_dump.write_bytes(b"not a dump")
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False,
        "module_defaults": {
            "group/callcenter.ops.ops": {"broker_url": "redis://127.0.0.1:%d/0" % port, "timeout": 1},
            "group/callcenter.ops.app": {"app_url": "http://127.0.0.1:%d" % port, "timeout": 1},
        },
        "tasks": [
            {"name": "verify", "callcenter.ops.backup_verify": {"path": str(not_a_dump), "fail_on_invalid": False},
             "register": "verify"},
            {"name": "health", "callcenter.ops.celery_health": {}, "register": "health", "ignore_errors": True},
            {"name": "reload", "callcenter.ops.config_reload": {"app_token": "t", "retries": 0}, "register": "reload",
             "ignore_errors": True},
            {"name": "show", "ansible.builtin.debug": {"msg": "VERIFY={{ verify.valid }} HEALTH={{ health.msg }}"}},
        ]}]))
    r = ansible.playbook(playbook)
    assert "Unsupported parameters" not in r.output, r
    assert r.rc == 0, r
    assert "VERIFY=False" in r.output, r
    assert "127.0.0.1:%d" % port in r.output.split("TASK [reload]", 1)[1], r
    assert "127.0.0.1:%d" % port in r.output.split("HEALTH=", 1)[1], r
    runtime = yaml.safe_load((REPO / "meta/runtime.yml").read_text())
    assert "backup_verify" not in sum(runtime["action_groups"].values(), [])


def requirement_names(text):
    """Distribution names of a requirements file's lines (comments, extras and versions off)."""
    names = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[\[<>=!~; ]", line, 1)[0].lower())
    return names
