"""Every playbook run as AWX runs jobs: through ``ansible-runner run`` with a private data dir
(project, inventory, env/extravars, env/envvars), under runner's pty with no person behind it.
A healthy platform ends ``successful``, an unhealthy one ``failed`` with the readable summary in
the job's stdout; bad extra vars stop a job at its first task with one sentence; the secrets a
job is given (as extra vars or in the environment, as the AWX credential injects them) appear in
no file of ``artifacts/`` (job_events/*.json, stdout, ...), with one exception ansible-runner
makes itself: ``artifacts/<id>/command`` (mode 0600) records the job's whole environment.

One stack for the module (Redis with a password, two workers, PostgreSQL with a backup, the
application stand-in, Flower with auth); each job runs against it."""

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, CeleryCluster, FlowerServer, RedisServer
from fake_app import ADMIN_TOKEN, FakeApp
from test_celery_health import publish

pytest.importorskip("ansible_runner")

HARD_TIMEOUT = 90  # a regression fails here instead of hanging the suite
REDIS_PASSWORD = "Runner-Redis-Pa55"
FLOWER_PASSWORD = "Runner-Flower-Pa55"
PLAYBOOKS = sorted(p.stem for p in (REPO / "playbooks").glob("*.yml"))
NOBODY_CONSUMES = "backlog"  # the purge jobs' queue: no worker listens there


@pytest.fixture(scope="module")
def deploy_job(ansible, tmp_path_factory):
    """The deploy job (one role by tag) is the slowest: started first, it runs beside the others."""
    tmp = tmp_path_factory.mktemp("awx-deploy")
    inv = ("[app]\nlocalhost ansible_connection=local ansible_become=false ansible_python_interpreter=%s\n"
           "[app:vars]\nrunbooks_dest=%s\ncallcenter_runbook_base_url=https://ops.example/doc/operations/runbooks\n"
           % (sys.executable, tmp / "runbooks"))
    job = Job(ansible, tmp, "deploy", inventory=inv, cmdline="--tags runbooks")
    job.dest = tmp / "runbooks"
    yield job
    if job.proc.poll() is None:
        job.wait(timeout=HARD_TIMEOUT)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, postgres, dumps, deploy_job):  # pylint: disable=unused-argument
    work = tmp_path_factory.mktemp("awx-stack")
    redis = RedisServer(work / "redis", REDIS_PASSWORD).start()
    celery = CeleryCluster(redis.url, work / "celery")
    app = FakeApp().start()
    flower = None
    try:
        nodes = celery.start_workers(["w1", "w2"])
        flower = FlowerServer(redis.url, work, password=FLOWER_PASSWORD).start()
        good, bad = work / "backups", work / "backups-bad"
        good.mkdir()
        bad.mkdir()
        shutil.copy(dumps / "callcenter-2026-11-25.dump.gz", good)
        data = (dumps / "callcenter-2026-11-25.dump.gz").read_bytes()
        (bad / "callcenter-2026-11-25.dump.gz").write_bytes(data[:len(data) // 2])
        yield dict(redis=redis, nodes=nodes, postgres=postgres, app=app, flower=flower, good=good, bad=bad,
                   secrets=(REDIS_PASSWORD, postgres.password, ADMIN_TOKEN, FLOWER_PASSWORD))
    finally:
        if flower:
            flower.stop()
        app.stop()
        celery.stop()
        redis.stop()


# --------------------------------------------------------------------------- jobs
def descendants(pid):
    """PIDs of every process below ``pid`` (read from /proc), deepest first."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return list(reversed(found))


class Job:
    """One AWX-style job: ``<pdd>/project/<playbook>.yml`` imports the collection's playbook;
    extra vars in env/extravars, environment in env/envvars, optional env/cmdline."""

    def __init__(self, ansible, tmp_path, playbook, extravars=None, envvars=None, inventory=None, cmdline=None):
        self.playbook = playbook
        self.pdd = tmp_path / ("job-%s-%d" % (playbook, len(list(tmp_path.glob("job-*")))))
        for sub in ("project", "inventory", "env"):
            (self.pdd / sub).mkdir(parents=True)
        (self.pdd / "project" / (playbook + ".yml")).write_text(
            "- ansible.builtin.import_playbook: callcenter.ops.%s\n" % playbook)
        (self.pdd / "inventory" / "hosts").write_text(inventory or (
            "localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable))
        env = dict((k, ansible.env[k]) for k in ("ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_HOME", "PATH"))
        # the test virtualenv's start-up caches (payload bytecode, parsed YAML: scripts/startup_cache.py), when on
        env.update((k, ansible.env[k]) for k in ("CCOPS_STARTUP_CACHE",) if k in ansible.env)
        env.update(ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_NOCOLOR="1", **(envvars or {}))
        (self.pdd / "env" / "envvars").write_text(json.dumps(env))
        (self.pdd / "env" / "extravars").write_text(json.dumps(extravars or {}))
        if cmdline:
            (self.pdd / "env" / "cmdline").write_text(cmdline)
        runner = str(Path(ansible.env["PATH"].split(":")[0]) / "ansible-runner")
        # Started from a clean environment, as AWX does: only what env/envvars gives reaches the job.
        base = dict((k, os.environ[k]) for k in ("HOME", "LANG", "LC_ALL") if k in os.environ)
        base.update(PATH=ansible.env["PATH"], TERM="xterm")  # as from a terminal: TERM alone must not decide
        self.started = time.monotonic()
        self.proc = subprocess.Popen([runner, "run", str(self.pdd), "-p", playbook + ".yml"], env=base,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait(self, timeout=HARD_TIMEOUT):
        if hasattr(self, "rc"):  # a job one fixture shares between tests: waited for once
            return self
        try:
            out = self.proc.communicate(timeout=timeout)[0]
        except subprocess.TimeoutExpired:
            # ansible-playbook runs in its own session under runner's pty and ignores SIGTERM
            for pid in descendants(self.proc.pid) + [self.proc.pid]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            out = self.proc.communicate(timeout=10)[0]
            out += b"\n[test] KILLED after %ds: the job hung" % timeout
        self.seconds = time.monotonic() - self.started
        self.rc = self.proc.returncode
        self.out = out.decode("utf-8", "replace")
        art = next(self.pdd.glob("artifacts/*"), None)
        self.status = (art / "status").read_text().strip() if art and (art / "status").exists() else None
        self.stdout = (art / "stdout").read_text() if art and (art / "stdout").exists() else ""
        self.artifacts = art
        return self

    def __repr__(self):
        return "Job(%s, rc=%s, status=%s, %.1fs):\n%s" % (self.playbook, self.rc, self.status,
                                                          getattr(self, "seconds", -1), self.out[-3000:])


def run_job(ansible, tmp_path, playbook, **kw):
    return Job(ansible, tmp_path, playbook, **kw).wait()


def assert_no_secret_in_artifacts(job, secrets, env_secrets=()):
    """No secret in any artifact file; a secret the job had in its environment is allowed only
    in ansible-runner's own ``command`` record, which must then be readable by its owner only."""
    files = [f for f in job.artifacts.rglob("*") if f.is_file()]
    assert any(f.parent.name == "job_events" for f in files), files
    leaks = []
    for f in files:
        data = f.read_bytes()
        for s in secrets:
            if s.encode() in data and not (f.name == "command" and any(s in v for v in env_secrets)):
                leaks.append((str(f.relative_to(job.pdd)), s))
    assert not leaks, leaks
    command = job.artifacts / "command"
    if command.exists():
        assert stat.S_IMODE(command.stat().st_mode) == 0o600
    for s in secrets:
        assert s not in job.out


def celery_vars(stack, **over):
    v = dict(celery_status_expected_workers=stack["nodes"], celery_status_queues=["quality", "stats"], celery_status_max_queue_length=50)
    v.update(over)
    return v


def status_vars(stack, **over):
    v = dict(system_status_app_url=stack["app"].url, system_status_expected_workers=2,
             system_status_pg_host="127.0.0.1", system_status_pg_port=stack["postgres"].port,
             system_status_backup_dir=str(stack["good"]), system_status_backup_max_age="10000d",
             system_status_flower_url=stack["flower"].url, system_status_flower_user="ops",
             system_status_fail_on="down")
    v.update(over)
    return v


def secret_env(stack):
    """The secrets in the environment, as the AWX credential injects them."""
    return dict(CELERY_BROKER_URL=stack["redis"].url, PGPASSWORD=stack["postgres"].password,
                CALLCENTER_ADMIN_TOKEN=ADMIN_TOKEN, FLOWER_USER="ops", FLOWER_PASSWORD=FLOWER_PASSWORD)


DIAGNOSE = ["diagnose_backup", "diagnose_generic", "diagnose_queue_backlog", "diagnose_worker_down"]


def test_every_playbook_is_covered_here():
    # a new playbook needs its AWX job test below (target_hosts is the first play of the others)
    assert PLAYBOOKS == sorted(["celery_purge", "celery_status", "config_reload", "deploy", "system_status",
                                "target_hosts", "verify_backup"] + DIAGNOSE), PLAYBOOKS


def main_play(playbook):
    """The playbook's own play: the first entry that is not an imported playbook."""
    text = (REPO / "playbooks" / (playbook + ".yml")).read_text()
    return next(p for p in yaml.safe_load(text) if "ansible.builtin.import_playbook" not in p)


# --------------------------------------------------------------------------- a host pattern that matches nothing
OPERATOR_PLAYBOOKS = [p for p in PLAYBOOKS if p not in ("deploy", "target_hosts")]


@pytest.mark.parametrize("playbook", OPERATOR_PLAYBOOKS)
def test_each_operator_playbook_first_refuses_a_host_pattern_that_matches_nothing(playbook):
    """Ansible skips a play whose hosts match nothing and the job passes: a cron or AWX job that
    checked or reloaded nothing. target_hosts.yml runs first, on the pattern the play uses."""
    plays = yaml.safe_load((REPO / "playbooks" / (playbook + ".yml")).read_text())
    hosts = main_play(playbook)["hosts"]
    guards = [p for p in plays if p.get("ansible.builtin.import_playbook") == "callcenter.ops.target_hosts"]
    assert plays[0] in guards and guards[0]["vars"]["target_hosts_pattern"] == hosts, (playbook, plays[0], hosts)
    assert guards[0]["vars"]["target_hosts_variable"] in hosts, playbook


@pytest.mark.parametrize("playbook, extra", [("celery_status", {"celery_status_hosts": "celery_nodes"}),
                                             ("config_reload", {})])  # its default pattern: group app
def test_a_job_whose_hosts_match_nothing_fails_and_says_so(ansible, playbook, extra):
    r = ansible.playbook("callcenter.ops." + playbook, extra_vars=extra)
    assert r.rc != 0, r
    variable, pattern = ("celery_status_hosts", "celery_nodes") if extra else ("config_reload_hosts", "app")
    assert "%s=%s matches no host of the inventory (localhost,)" % (variable, pattern) in r.output, r.output[-2000:]
    assert "Traceback" not in r.output


# --------------------------------------------------------------------------- celery_status
def test_celery_status_job_healthy_and_unhealthy(ansible, stack, tmp_path):
    ok = Job(ansible, tmp_path, "celery_status", extravars=celery_vars(stack), envvars=secret_env(stack))
    # the password as an extra var (from a vault) instead of inside the URL
    url = "redis://127.0.0.1:%d/0" % stack["redis"].port
    bad = Job(ansible, tmp_path, "celery_status",
              extravars=celery_vars(stack, celery_broker_url=url, celery_broker_password=REDIS_PASSWORD,
                                    celery_status_expected_workers=stack["nodes"] + ["w9@nowhere"]))
    ok.wait()
    bad.wait()
    assert ok.rc == 0 and ok.status == "successful", ok
    assert "Celery is healthy" in ok.stdout or "2 worker" in ok.stdout, ok.stdout[-2000:]
    assert bad.rc != 0 and bad.status == "failed", bad
    assert "Celery is unhealthy" in bad.stdout and "w9@nowhere" in bad.stdout, bad.stdout[-2000:]
    assert_no_secret_in_artifacts(ok, stack["secrets"], env_secrets=stack["secrets"])
    assert_no_secret_in_artifacts(bad, stack["secrets"])


# --------------------------------------------------------------------------- verify_backup
def test_verify_backup_job_valid_and_truncated(ansible, stack, tmp_path):
    ok = Job(ansible, tmp_path, "verify_backup", extravars=dict(verify_backup_path=str(stack["good"])))
    bad = Job(ansible, tmp_path, "verify_backup", extravars=dict(verify_backup_path=str(stack["bad"])))
    ok.wait()
    bad.wait()
    assert ok.rc == 0 and ok.status == "successful", ok
    assert bad.rc != 0 and bad.status == "failed", bad
    assert "truncated" in bad.stdout.lower(), bad.stdout[-2000:]
    assert "callcenter-2026-11-25.dump.gz" in bad.stdout


# --------------------------------------------------------------------------- system_status
@pytest.fixture(scope="module")
def status_job(ansible, stack, tmp_path_factory):
    """The healthy system_status job with the secrets in its environment exactly as the AWX
    credential type injects them (docs/awx/credential_type.yml): one job serves the healthy-job
    test and the credential test below (the injected environment is secret_env's)."""
    injected = credential_env(stack)
    job = Job(ansible, tmp_path_factory.mktemp("awx-status"), "system_status", extravars=status_vars(stack),
              envvars=injected)
    job.injected = injected
    yield job
    if job.proc.poll() is None:
        job.wait()


def test_system_status_job_healthy_and_unhealthy_with_secrets_in_env_and_extra_vars(ansible, stack, tmp_path,
                                                                                    status_job):
    env = secret_env(stack)
    ok = status_job
    assert ok.injected == env  # the credential injects the secrets this test gives in the environment
    # secrets as extra vars this time (an AWX survey's password fields, or a vault)
    extra = status_vars(stack, system_status_app_url="http://127.0.0.1:9", system_status_broker_url=stack["redis"].url,
                        system_status_pg_password=stack["postgres"].password, system_status_app_token=ADMIN_TOKEN,
                        system_status_flower_password=FLOWER_PASSWORD)
    bad = Job(ansible, tmp_path, "system_status", extravars=extra)
    ok.wait()
    bad.wait()
    assert ok.rc == 0 and ok.status == "successful", ok
    assert re.search(r"app\s+OK", ok.stdout) and re.search(r"flower\s+OK .*login accepted", ok.stdout), ok.stdout[-3000:]
    assert bad.rc != 0 and bad.status == "failed", bad
    assert re.search(r"app\s+DOWN .*refused", bad.stdout), bad.stdout[-3000:]
    assert "platform down" in bad.stdout and re.search(r"postgres\s+OK", bad.stdout)
    assert_no_secret_in_artifacts(ok, stack["secrets"], env_secrets=list(env.values()))
    assert_no_secret_in_artifacts(bad, stack["secrets"])


# --------------------------------------------------------------------------- config_reload
def test_config_reload_job_reloads_and_an_app_that_stays_unready_fails(ansible, stack, tmp_path):
    extra = dict(config_reload_hosts="localhost", config_reload_app_url=stack["app"].url,
                 config_reload_ready_timeout=2)
    ok = run_job(ansible, tmp_path, "config_reload", extravars=extra, envvars=dict(CALLCENTER_ADMIN_TOKEN=ADMIN_TOKEN))
    assert ok.rc == 0 and ok.status == "successful", ok
    assert stack["app"].reloads, "the app got no reload"
    stack["app"].ready_after_reload = False
    try:
        bad = run_job(ansible, tmp_path, "config_reload", extravars=dict(extra, config_reload_app_token=ADMIN_TOKEN))
    finally:
        stack["app"].ready_after_reload = True
        stack["app"].ready = True
    assert bad.rc != 0 and bad.status == "failed", bad
    assert "ready" in bad.stdout.lower(), bad.stdout[-2000:]
    assert_no_secret_in_artifacts(ok, [ADMIN_TOKEN], env_secrets=[ADMIN_TOKEN])
    assert_no_secret_in_artifacts(bad, [ADMIN_TOKEN])


# --------------------------------------------------------------------------- deploy
def test_deploy_job_runs_one_role_by_tag(deploy_job):
    job = deploy_job.wait()
    assert job.rc == 0 and job.status == "successful", job
    assert (job.dest / "index.html").exists()


# --------------------------------------------------------------------------- bad extra vars
BAD = {
    "celery_status": (dict(celery_status_timeout="soon"), "argument 'celery_status_timeout' is of type str and we were "
                                                          "unable to convert to float"),
    "celery_purge": (dict(celery_purge_queues=["stats"], celery_purge_interactive="sometimes"),
                     "celery_purge_interactive must be auto, true or false"),
    "verify_backup": (dict(verify_backup_mode="quick"), "verify_backup_mode"),
    "system_status": (dict(system_status_fail_on="sometimes"), "system_status_fail_on"),
    "config_reload": (dict(config_reload_hosts="localhost", config_reload_method="ssh"), "config_reload_method"),
}


# A name from before the rename to <playbook>_<option>, or a misspelt one, given beside the bad
# value: the job names it too (before, it was ignored and its threshold silently lost).
UNKNOWN = {
    "celery_status": dict(celery_expected_workers=2),
    "celery_purge": dict(confirm_purge=True),
    "verify_backup": dict(backup_path="/var/backups/callcenter"),
    "system_status": dict(system_status_expected_worker=2),
    "config_reload": dict(config_reload_token="Old-Token-Name-1"),
}


def test_bad_extra_vars_stop_each_job_at_once_with_one_sentence(ansible, stack, tmp_path):
    jobs = [Job(ansible, tmp_path, name, extravars=dict(extra, **UNKNOWN[name]), envvars=secret_env(stack))
            for name, (extra, _said) in sorted(BAD.items())]
    for job in jobs:
        job.wait()
        said = BAD[job.playbook][1]
        assert job.rc != 0 and job.status == "failed", job
        assert "Bad extra vars for callcenter.ops.%s: " % job.playbook in job.stdout, job.stdout[-2000:]
        assert said in job.stdout and "docs/playbooks.md" in job.stdout, job.stdout[-2000:]
        unknown = next(iter(UNKNOWN[job.playbook]))
        assert "unknown %s (misspelt, or a name from before the rename" % unknown in job.stdout, job.stdout[-2000:]
        assert "Old-Token-Name-1" not in job.stdout
        # nothing ran after the check (ok: target_hosts' check of the host pattern, and this one)
        assert "ok=2 " in job.stdout and "changed=0" in job.stdout, job.stdout[-1500:]
        assert_no_secret_in_artifacts(job, stack["secrets"], env_secrets=stack["secrets"])


# --------------------------------------------------------------------------- the AWX credential type
def render(template, inputs):
    """AWX renders injector values as Jinja over the credential's inputs; ours are plain {{ field }}."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: str(inputs.get(m.group(1), "")), template)


def env_names_read():
    """Environment variables the playbooks and modules read."""
    names = set()
    for f in list((REPO / "playbooks").glob("*.yml")):
        names.update(re.findall(r"lookup\('ansible\.builtin\.env', '([A-Z_]+)'\)", f.read_text()))
    for f in list((REPO / "plugins").rglob("*.py")):
        names.update(re.findall(r"env_fallback, \[\"([A-Z_]+)\"\]", f.read_text()))
    return names


def credential_env(stack):
    """The environment the credential type injects for the stack's secrets."""
    ctype = yaml.safe_load((REPO / "docs" / "awx" / "credential_type.yml").read_text())
    inputs = dict(broker_url=stack["redis"].url, pg_password=stack["postgres"].password, admin_token=ADMIN_TOKEN,
                  flower_user="ops", flower_password=FLOWER_PASSWORD)
    return dict((k, render(v, inputs)) for k, v in ctype["injectors"]["env"].items())


def test_credential_type_injects_what_the_playbooks_read_and_a_job_runs_with_exactly_that(stack, status_job):
    ctype = yaml.safe_load((REPO / "docs" / "awx" / "credential_type.yml").read_text())
    fields = dict((f["id"], f) for f in ctype["inputs"]["fields"])
    env_tpl = ctype["injectors"]["env"]
    assert set(env_tpl) == {"CELERY_BROKER_URL", "PGPASSWORD", "CALLCENTER_ADMIN_TOKEN", "FLOWER_USER",
                            "FLOWER_PASSWORD"}, env_tpl
    assert set(env_tpl) <= env_names_read(), set(env_tpl) - env_names_read()
    for name, tpl in env_tpl.items():
        used = re.findall(r"\{\{\s*(\w+)\s*\}\}", tpl)
        assert used and all(u in fields for u in used), (name, tpl)
    for secret in ("broker_url", "pg_password", "admin_token", "flower_password"):
        assert fields[secret].get("secret") is True, secret
    assert "extra_vars" not in ctype["injectors"]  # secrets only in the environment

    # the job (status_job, shared with the system_status test) ran with exactly what it injects
    injected = credential_env(stack)
    assert status_job.injected == injected and set(injected) == set(env_tpl)
    job = status_job.wait()
    assert job.rc == 0 and job.status == "successful", job
    for name in ("app", "celery", "redis", "postgres", "flower"):
        assert re.search(r"%s\s+OK" % name, job.stdout), (name, job.stdout[-3000:])
    assert "login accepted" in job.stdout
    assert_no_secret_in_artifacts(job, stack["secrets"], env_secrets=list(injected.values()))


# --------------------------------------------------------------------------- celery_purge
def depth(redis, queue):
    c = redis.client()
    return sum(c.llen(n) for n in [queue] + [queue + "\x06\x16%d" % p for p in (3, 6, 9)])


@pytest.fixture
def backlog(stack):
    """6 messages in a queue no worker consumes (4 plain, 2 high priority)."""
    redis = stack["redis"]
    redis.client().delete(*([NOBODY_CONSUMES] + [NOBODY_CONSUMES + "\x06\x16%d" % p for p in (3, 6, 9)]))
    publish(redis.url, NOBODY_CONSUMES, 4, task="callcenter_sample.daily_stats", args=[])
    publish(redis.url, NOBODY_CONSUMES, 2, priority=9, task="callcenter_sample.daily_stats", args=[])
    return redis


def purge_vars(redis, **over):
    v = dict(celery_broker_url=redis.url, celery_purge_queues=[NOBODY_CONSUMES])
    v.update(over)
    return v


def test_awx_job_without_confirmation_fails_fast_and_purges_nothing(ansible, backlog, tmp_path):
    job = run_job(ansible, tmp_path, "celery_purge", extravars=purge_vars(backlog))
    assert "KILLED" not in job.out and job.rc != 0 and job.status == "failed", job
    assert "Not purged: no person can answer a prompt here (ansible-runner" in job.stdout, job.stdout[-3000:]
    assert "celery_purge_confirm=true" in job.stdout
    assert job.seconds < 60, job.seconds
    assert depth(backlog, NOBODY_CONSUMES) == 6
    assert_no_secret_in_artifacts(job, [REDIS_PASSWORD])


def test_awx_job_with_celery_purge_confirm_purges(ansible, backlog, tmp_path):
    job = run_job(ansible, tmp_path, "celery_purge", extravars=purge_vars(backlog, celery_purge_confirm=True))
    assert job.rc == 0 and job.status == "successful", job
    assert "removed 6 message(s): %s=6" % NOBODY_CONSUMES in job.stdout
    assert depth(backlog, NOBODY_CONSUMES) == 0


def test_awx_job_forced_interactive_still_ends_by_itself(ansible, backlog, tmp_path):
    """Someone forces the prompt in a job: it runs out its time, nothing is purged."""
    job = run_job(ansible, tmp_path, "celery_purge",
                  extravars=purge_vars(backlog, celery_purge_interactive=True, celery_purge_prompt_seconds=3))
    assert "KILLED" not in job.out and job.rc != 0, job
    assert "Not purged: no confirmation (no answer within 3 s)" in job.stdout, job.stdout[-3000:]
    assert job.seconds < 60
    assert depth(backlog, NOBODY_CONSUMES) == 6


# --------------------------------------------------------------------------- extra vars in one place
# The diagnose_* playbooks import system_status (whose first task checks its extra vars) and then
# run the alert_actions role, whose meta/argument_specs.yml checks the alert_actions_* settings.
@pytest.mark.parametrize("playbook", [p for p in OPERATOR_PLAYBOOKS if p not in DIAGNOSE])
def test_each_extra_var_is_checked_and_documented_in_the_header_and_docs(playbook):
    text = (REPO / "playbooks" / (playbook + ".yml")).read_text()
    play = main_play(playbook)
    first = play["tasks"][0]
    assert "ansible.builtin.validate_argument_spec" in first, "the first task checks the extra vars"
    spec = first["ansible.builtin.validate_argument_spec"]["argument_spec"]
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    docs = (REPO / "docs" / "playbooks.md").read_text()
    section = docs.split("## `callcenter.ops.%s`" % playbook)[1].split("\n## ")[0]
    for name, opt in spec.items():
        assert opt.get("description"), name
        assert "`%s`" % name in section, (name, "docs/playbooks.md")
        assert name in header or name.rsplit("_", 1)[0] in header, (name, "playbook header")
    for secret in [n for n in spec if re.search("password|token", n)]:
        assert spec[secret].get("no_log") is True, secret


# docs/playbooks.md, "Naming": <playbook>_<module option>; only the broker's connection is shared.
SHARED_VARS = {"celery_broker_url", "celery_broker_password", "celery_sentinel_master_name", "celery_sentinel_password"}


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_extra_vars_carry_the_playbook_name_and_the_header_names_its_modules(playbook):
    text = (REPO / "playbooks" / (playbook + ".yml")).read_text()
    first = text.splitlines()[1]
    assert first.startswith("# %s.yml runs " % playbook), (playbook, first)
    header = " ".join(text.splitlines()[1:3])  # the first comment line and its continuation
    modules = set(re.findall(r"^\s+(callcenter\.ops\.[a-z_]+):\s*$", text, re.M))
    assert not [m for m in modules if m not in header], (playbook, modules, header)
    tasks = main_play(playbook).get("tasks") or [{}]
    spec = tasks[0].get("ansible.builtin.validate_argument_spec", {}).get("argument_spec", {})
    stray = [n for n in spec if n not in SHARED_VARS and not n.startswith(playbook + "_")]
    assert not stray, "%s: extra vars not named %s_*: %s" % (playbook, playbook, stray)


def test_job_templates_name_real_playbooks_and_their_schedules():
    data = yaml.safe_load((REPO / "docs" / "awx" / "job_templates.yml").read_text())
    names = set()
    for jt in data["job_templates"]:
        names.add(jt["name"])
        assert Path(jt["playbook"]).stem in PLAYBOOKS, jt["playbook"]
        assert jt["credentials"] == ["callcenter.ops"]
    every = dict((s["unified_job_template"], s["rrule"]) for s in data["schedules"])
    assert "FREQ=MINUTELY;INTERVAL=5" in every["callcenter.ops celery status"]
    assert "FREQ=MINUTELY;INTERVAL=1" in every["callcenter.ops system status page"]
    assert "FREQ=DAILY" in every["callcenter.ops verify backup"]
    assert set(every) <= names


# --------------------------------------------------------------------------- the alert actions
# ansible-rulebook runs them through ansible-runner (tests/integration/test_alert_loop.py); AWX may too.
@pytest.mark.parametrize("playbook", DIAGNOSE)
def test_diagnose_job_posts_its_findings_and_leaks_no_secret(ansible, stack, tmp_path, playbook):
    from telegram_stub import TelegramStub
    token = "4242:Awx-Telegram-Secret-Token"
    extra = dict(status_vars(stack), alert_actions_audit_log=str(tmp_path / "audit.jsonl"),
                 alert_actions_worker=stack["nodes"][0], alert_actions_queue="stats",
                 alert_actions_backup_path=str(stack["bad"]), alert_actions_timeout=3,
                 alert_actions_worker_status_command="echo ActiveState=active {unit}",
                 alert_actions_worker_log_command="echo last line of {short}",
                 alert_actions_alert={"labels": {"alertname": "HighLatency", "severity": "warning"}})
    with TelegramStub() as tg:
        env = dict(secret_env(stack), CALLCENTER_TELEGRAM_BOT_TOKEN=token, CALLCENTER_TELEGRAM_CHAT_ID="77",
                   TELEGRAM_API_URL=tg.url)
        job = run_job(ansible, tmp_path, playbook, extravars=extra, envvars=env)
        messages = list(tg.messages)
    assert job.rc == 0 and job.status == "successful", job
    assert messages and "Done automatically" in messages[-1]["text"], messages
    secrets = list(stack["secrets"]) + [token]
    assert not [s for s in secrets for m in messages if s in m["text"]]
    assert_no_secret_in_artifacts(job, secrets, env_secrets=[stack["redis"].url] + secrets)


def test_a_diagnosis_longer_than_telegram_takes_keeps_what_was_done_and_the_runbook(ansible, stack, tmp_path):
    """Telegram takes 4096 characters: the findings are cut to fit, never the line saying what was
    done automatically nor the runbook link; the job output keeps the whole diagnosis."""
    from telegram_stub import TelegramStub
    extra = dict(status_vars(stack), alert_actions_audit_log=str(tmp_path / "audit.jsonl"),
                 alert_actions_worker=stack["nodes"][0], alert_actions_timeout=3,
                 alert_actions_worker_status_command="echo ActiveState=failed {unit}",
                 # 40 log lines of 200 characters: twice what a message can hold
                 alert_actions_worker_log_command="python3 -c \"print(chr(10).join('log line %02d ' % i + 'x' * 186 "
                                                  "for i in range(40)))\"",
                 alert_actions_worker_log_lines=40,
                 alert_actions_alert={"labels": {"alertname": "CeleryWorkerDown", "severity": "critical"},
                                      "annotations": {"runbook_url": "http://runbooks.example/celery-worker-down.html"}})
    with TelegramStub() as tg:
        env = dict(secret_env(stack), CALLCENTER_TELEGRAM_BOT_TOKEN="4242:Long-Message-Token",
                   CALLCENTER_TELEGRAM_CHAT_ID="77", TELEGRAM_API_URL=tg.url)
        # the worker's host (w1@harness: harness) in the inventory, so its log is read
        inventory = "localhost ansible_connection=local ansible_python_interpreter={0}\n" \
                    "harness ansible_connection=local ansible_python_interpreter={0}\n".format(sys.executable)
        job = run_job(ansible, tmp_path, "diagnose_worker_down", extravars=extra, envvars=env, inventory=inventory)
        messages = list(tg.messages)
    assert job.rc == 0 and job.status == "successful", job
    text = messages[-1]["text"]
    assert len(text) <= 4000, len(text)
    assert "[... cut to fit Telegram; the whole diagnosis is in the job output]" in text, text[-600:]
    assert "log line 00 " in text and "log line 39 " not in text, text[-600:]
    lines = text.splitlines()
    assert lines[-2].startswith("Done automatically: read-only diagnosis.") and \
        lines[-1] == "Runbook: http://runbooks.example/celery-worker-down.html", lines[-3:]
    assert "log line 39 " in job.stdout, job.stdout[-2000:]
