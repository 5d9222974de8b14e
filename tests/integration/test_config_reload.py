"""config_reload against the contract stand-in (tests/fake_app.py), and the serial playbook.

Every run goes through the installed collection on the command line. The ad-hoc success case
runs through ``ansible -m``; the other HTTP cases are the tasks of ONE ansible-playbook run
(tests/modbatch.py: one Ansible start, a module execution per case), each against a stand-in
of its own; the signal cases are one run inside a PID namespace."""

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import yaml

from conftest import stop_all
from fake_app import ADMIN_TOKEN, USER_TOKEN
from modbatch import case, prepare, probe, run_batch


def reload(ansible, app, token=ADMIN_TOKEN, check=False, **args):
    params = dict(app_url=app.url, timeout=2)
    params.update(args)
    env = {"CALLCENTER_ADMIN_TOKEN": token} if token else {}
    return ansible.module("config_reload", params, check=check, env=env)


def reload_case(app, token=ADMIN_TOKEN, check=False, **args):
    params = dict(app_url=app.url, timeout=2)
    params.update(args)
    return case("config_reload", params, check=check, env={"CALLCENTER_ADMIN_TOKEN": token} if token else None)


@pytest.fixture(scope="module")
def http(ansible, tmp_path_factory):
    """Each HTTP case against a stand-in of its own, all in one ansible-playbook run; the tests
    below read what each run returned and what each stand-in received."""
    from fake_app import FakeApp, self_signed
    tmp = tmp_path_factory.mktemp("config-reload")
    apps = {}

    def app(name, tls=False, **attrs):
        cert, key = self_signed(tmp) if tls else (None, None)
        made = FakeApp(cert, key).start()
        made.cert = cert
        for key_, value in attrs.items():
            setattr(made, key_, value)
        apps[name] = made
        return made

    try:
        cases = {
            "nothing changed": reload_case(app("nothing", pending=set()), sections=["Quality"]),
            "check mode": reload_case(app("check"), check=True, sections=["Logging"]),
            "wrong token": reload_case(app("wrong"), token="not-a-valid-token-777"),
            "non-admin token": reload_case(app("user"), token=USER_TOKEN),
            "unknown section": reload_case(app("unknown"), sections=["Qualty"]),
            "app down": reload_case(app("down"), retries=1),
            "slow app": reload_case(app("slow", delay=60), timeout=1),  # without the timeout: a minute
            "non-JSON answer": reload_case(app("html", non_json=True)),
            "TLS without ca_path": reload_case(app("tls", tls=True)),
            "TLS with ca_path": reload_case(apps["tls"], ca_path=str(apps["tls"].cert)),
            "unhealthy afterwards": reload_case(app("unhealthy", ready_after_reload=False), ready_timeout=1),
            "no token": reload_case(app("notoken"), token=None),
            "restart-only sections": reload_case(app("restart"), sections=["Redis", "AudioSocket"]),
            "first reload": reload_case(app("twice"), sections=["Quality"]),
            "second reload": reload_case(apps["twice"], sections=["Quality"]),
        }
        apps["down"].stop()
        playbook, runs = run_batch(ansible, cases)
        yield SimpleNamespace(apps=apps, runs=runs, playbook=playbook)
    finally:
        stop_all(apps.values())


def test_reload_reports_sections_and_what_needs_a_restart(ansible, fake_app):
    app = fake_app()
    r = reload(ansible, app)
    assert r.rc == 0, r
    assert r["changed"] is True
    assert r["reloaded"] == ["Quality", "FeatureFlag", "Logging"]
    assert r["restart_required"] == ["Database"]
    assert r["ready"] is True and r["audit_id"] == "audit-1"
    assert "reloaded Quality, FeatureFlag, Logging; restart needed for Database" in r["msg"]
    assert ADMIN_TOKEN not in r.output


def test_the_batch_never_prints_a_token(http):
    for token in (ADMIN_TOKEN, "not-a-valid-token-777", USER_TOKEN):
        assert token not in http.playbook.output, token
    assert "Traceback" not in http.playbook.output


def test_nothing_changed_is_not_changed(http):
    r = http.runs["nothing changed"]
    assert r.rc == 0 and r["changed"] is False and r["reloaded"] == [] and r["unchanged"] == ["Quality"], r


def test_check_mode_sends_nothing(http):
    r, app = http.runs["check mode"], http.apps["check"]
    assert r.rc == 0 and r["changed"] is True, r
    assert "would POST %s/admin/config/reload to reload Logging" % app.url in r["msg"]
    assert app.reloads == []


def test_wrong_token_401(http):
    r = http.runs["wrong token"]
    assert r.rc != 0 and "rejected the token (401)" in r["msg"], r
    assert "not-a-valid-token-777" not in r.output


def test_non_admin_token_403(http):
    r = http.runs["non-admin token"]
    assert r.rc != 0 and "not an admin token" in r["msg"], r
    assert USER_TOKEN not in r.output


def test_unknown_section_400(http):
    r = http.runs["unknown section"]
    assert r.rc != 0 and "HTTP 400: unknown section: Qualty" in r["msg"], r


def test_app_down_is_retried_then_reported(http):
    r = http.runs["app down"]
    assert r.rc != 0 and "refused the connection (is the application running?)" in r["msg"], r
    assert r.duration < 10, r


def test_slow_app_times_out(http):
    r = http.runs["slow app"]
    assert r.rc != 0 and "did not answer within 1.0s" in r["msg"], r
    assert r.duration < 30, r


def test_non_json_answer(http):
    r = http.runs["non-JSON answer"]
    assert r.rc != 0 and "not JSON" in r["msg"], r


def test_tls_failure_then_ca_path(http):
    r = http.runs["TLS without ca_path"]
    assert r.rc != 0 and "TLS" in r["msg"] and "ca_path" in r["msg"], r
    ok = http.runs["TLS with ca_path"]
    assert ok.rc == 0 and ok["reloaded"], ok


def test_unhealthy_after_reload_fails(http):
    r = http.runs["unhealthy afterwards"]
    assert r.rc != 0
    assert "not healthy afterwards" in r["msg"] and "failing" in r["msg"], r


def test_missing_token_is_a_clear_error(http):
    r = http.runs["no token"]
    assert r.rc != 0 and "needs app_url and app_token" in r["msg"], r


def test_restart_only_sections_are_reported_as_such(http):
    r = http.runs["restart-only sections"]
    assert r.rc == 0 and r["changed"] is False, r
    assert r["reloaded"] == [] and r["not_reloadable"] == ["Redis", "AudioSocket"], r
    assert "Redis, AudioSocket cannot be reloaded" in r["msg"] and "Database" not in r["msg"], r
    assert "[WARNING]: Redis, AudioSocket cannot be reloaded while the application runs: restart it" in r.output, r


def test_second_reload_changes_nothing(http):
    first, again = http.runs["first reload"], http.runs["second reload"]
    assert first["changed"] is True and first["reloaded"] == ["Quality"], first
    assert again["changed"] is False and again["unchanged"] == ["Quality"], again


def test_playbook_reloads_one_host_at_a_time_and_stops_at_the_first_unhealthy(ansible, fake_app, tmp_path):
    good, bad, never = fake_app(), fake_app(), fake_app()
    bad.ready_after_reload = False
    inv = tmp_path / "inventory.yml"
    inv.write_text(yaml.safe_dump({"app": {"hosts": {
        name: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
               "config_reload_app_url": a.url, "config_reload_ready_timeout": 1}
        for name, a in (("app1", good), ("app2", bad), ("app3", never))}}}))
    r = ansible.playbook("callcenter.ops.config_reload", inventory=str(inv),
                         env={"CALLCENTER_ADMIN_TOKEN": ADMIN_TOKEN})
    assert r.rc != 0
    assert len(good.reloads) == 1 and len(bad.reloads) == 1
    assert never.reloads == []  # stopped before the third host
    assert "app1: reloaded Quality, FeatureFlag, Logging" in r.output
    assert "not healthy afterwards" in r.output
    assert ADMIN_TOKEN not in r.output


# --------------------------------------------------------------------------- signal safety
# Everything that signals a PID read from a file runs inside its own PID namespace: if the
# module ever sent SIGHUP to -1 or 0, only the namespace's processes would get it. Every signal
# case is a task of ONE ansible-playbook run started by the script below (each refusal in normal
# and in check mode); "self" is the PID of ansible-playbook itself.
NAMESPACE_SCRIPT = r"""
set -u
victim() {  # victim MARKER: a process that writes "hup" into MARKER on SIGHUP
    "$PY" -c 'import pathlib, signal, sys, time
signal.signal(signal.SIGHUP, lambda *a: pathlib.Path(sys.argv[1]).write_text("hup"))
time.sleep(900)' "$1" &
}
victim "$MARKER"; VICTIM=$!
victim "$MARKER2"; PLAIN=$!
echo "PLAIN=$PLAIN"
printf '%s' "-1" > "$PIDS/minus1"
printf '%s' "0" > "$PIDS/zero"
printf '%s' "1" > "$PIDS/init"
printf '%s' " -1 " > "$PIDS/spaced"
printf '%s' "12 34" > "$PIDS/two"
printf '%s' "0x10" > "$PIDS/hex"
printf '%s' "$VICTIM" > "$PIDS/wrongname"
printf '%s' "$VICTIM" > "$PIDS/rightname"
printf '%s' "$PLAIN" > "$PIDS/plain"
printf '%s' "999999" > "$PIDS/stale"
mkfifo "$PIDS/fifo"
sleep 0.5
( printf '%s' "$BASHPID" > "$PIDS/self"
  exec timeout 300 ansible-playbook -i localhost, -c local "$PLAYBOOK" 2>&1 )
echo "RC=$?"
sleep 0.5
kill "$VICTIM" "$PLAIN"
"""

REFUSED = dict(minus1="does not hold a PID", zero="only a single process with a PID greater than 1",
               init="only a single process with a PID greater than 1", self="Ansible itself",
               spaced="does not hold a PID", two="does not hold a PID", hex="does not hold a PID",
               wrongname="not gunicorn: refused")


@pytest.fixture(scope="module")
def signals(ansible, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("config-reload-signal")
    pids = tmp / "pids"
    pids.mkdir()
    pyname = os.path.basename(os.path.realpath(sys.executable))

    def sig(label, check=False, **over):
        args = dict(method="signal", pidfile=str(pids / label), verify_ready=False)
        args.update(over)
        return case("config_reload", args, check=check)

    cases = {}
    for label in ("minus1", "zero", "init", "self", "spaced", "two", "hex"):
        for check in (False, True):
            cases[label + ("--check" if check else "")] = sig(label, check)
    for check in (False, True):
        cases["wrongname" + ("--check" if check else "")] = sig("wrongname", check, process_name="gunicorn")
    cases["victim alive"] = probe("lookup('ansible.builtin.pipe', 'kill -0 $(cat %s) && echo VICTIM ALIVE || echo gone')"
                                  % (pids / "wrongname"))
    cases["victim untouched"] = probe("'%s' is exists" % (tmp / "hup"))
    cases["rightname--check"] = sig("rightname", True, process_name=pyname)
    cases["rightname"] = sig("rightname", False, process_name=pyname)
    cases["plain--check"] = sig("plain", True)
    cases["plain marker after check mode"] = probe("'%s' is exists" % (tmp / "hup2"))
    cases["plain"] = sig("plain")
    cases["stale"] = sig("stale")
    for check in (False, True):
        cases["fifo" + ("--check" if check else "")] = sig("fifo", check)
    cases["no target"] = case("config_reload", dict(method="signal", verify_ready=False))
    playbook, env, read = prepare(ansible, cases)
    run_env = dict(ansible.env, PY=sys.executable, PIDS=str(pids), MARKER=str(tmp / "hup"),
                   MARKER2=str(tmp / "hup2"), PLAYBOOK=str(playbook), **env)
    p = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "bash", "-c", NAMESPACE_SCRIPT], env=run_env,
                       capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, check=False)
    from conftest import Result
    runs = read(Result(0, p.stdout, p.stderr, 0))
    plain = int(p.stdout.split("PLAIN=", 1)[1].split()[0])
    return SimpleNamespace(runs=runs, out=p.stdout + p.stderr, tmp=tmp, plain=plain)


def test_signal_pidfile_never_reaches_all_processes_init_or_ansible_itself(signals):
    out, cases = signals.out, signals.runs
    for label, why in REFUSED.items():
        for suffix in ("", "--check"):
            r = cases[label + suffix]
            assert r.rc == 2 and why in r["msg"], (label + suffix, r)
    assert "FAILED" in out and "RC=0" in out, out  # the refusals failed their tasks, ignored to go on
    assert cases["victim alive"]["value"] == "VICTIM ALIVE", cases["victim alive"]
    assert cases["victim untouched"]["value"] is False, cases["victim untouched"]
    # The named, matching process is signalled; check mode sends nothing.
    assert "would send SIGHUP" in cases["rightname--check"]["msg"] and cases["rightname--check"].rc == 0, cases
    assert "sent SIGHUP" in cases["rightname"]["msg"] and cases["rightname"].rc == 0, cases
    assert (signals.tmp / "hup").read_text() == "hup"
    assert "Traceback" not in out


def test_signal_method_sends_sighup_to_the_pidfile_process(signals):
    check, r = signals.runs["plain--check"], signals.runs["plain"]
    assert check.rc == 0 and "would send SIGHUP to process %d" % signals.plain in check["msg"], check
    assert signals.runs["plain marker after check mode"]["value"] is False
    assert r.rc == 0 and r["pid"] == signals.plain and r["changed"], r
    assert (signals.tmp / "hup2").read_text() == "hup"


def test_signal_with_stale_pidfile(signals):
    r = signals.runs["stale"]
    assert r.rc != 0 and "stale pidfile" in r["msg"], r


def test_signal_pidfile_that_is_a_fifo_is_refused_at_once(signals):
    for label in ("fifo", "fifo--check"):
        r = signals.runs[label]
        assert r.rc != 0 and "is a FIFO, not a regular file: refused" in r["msg"], r
        assert r.duration < 30


def test_signal_needs_a_target(signals):
    r = signals.runs["no target"]
    assert r.rc != 0 and "needs unit or pidfile" in r["msg"], r
