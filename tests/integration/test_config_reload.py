"""config_reload against the contract stand-in (tests/fake_app.py), and the serial playbook."""

import os
import signal
import subprocess
import sys
import time

import yaml

from fake_app import ADMIN_TOKEN, USER_TOKEN


def reload(ansible, app, token=ADMIN_TOKEN, check=False, **args):
    params = dict(app_url=app.url, timeout=2)
    params.update(args)
    env = {"CALLCENTER_ADMIN_TOKEN": token} if token else {}
    return ansible.module("config_reload", params, check=check, env=env)


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


def test_nothing_changed_is_not_changed(ansible, fake_app):
    app = fake_app()
    app.pending = set()
    r = reload(ansible, app, sections=["Quality"])
    assert r.rc == 0 and r["changed"] is False and r["reloaded"] == [] and r["unchanged"] == ["Quality"], r


def test_check_mode_sends_nothing(ansible, fake_app):
    app = fake_app()
    r = reload(ansible, app, check=True, sections=["Logging"])
    assert r.rc == 0 and r["changed"] is True, r
    assert "would POST %s/admin/config/reload to reload Logging" % app.url in r["msg"]
    assert app.reloads == []


def test_wrong_token_401(ansible, fake_app):
    r = reload(ansible, fake_app(), token="not-a-valid-token-777")
    assert r.rc != 0 and "rejected the token (401)" in r["msg"], r
    assert "not-a-valid-token-777" not in r.output


def test_non_admin_token_403(ansible, fake_app):
    r = reload(ansible, fake_app(), token=USER_TOKEN)
    assert r.rc != 0 and "not an admin token" in r["msg"], r
    assert USER_TOKEN not in r.output


def test_unknown_section_400(ansible, fake_app):
    r = reload(ansible, fake_app(), sections=["Qualty"])
    assert r.rc != 0 and "HTTP 400: unknown section: Qualty" in r["msg"], r


def test_app_down_is_retried_then_reported(ansible, fake_app):
    app = fake_app()
    app.stop()
    t0 = time.monotonic()
    r = reload(ansible, app, retries=1)
    assert r.rc != 0 and "refused the connection (is the application running?)" in r["msg"], r
    assert time.monotonic() - t0 < 10


def test_slow_app_times_out(ansible, fake_app):
    app = fake_app()
    app.delay = 60  # without the timeout the run would take a minute
    r = reload(ansible, app, timeout=1)
    assert r.rc != 0 and "did not answer within 1.0s" in r["msg"], r
    assert r.duration < 30


def test_non_json_answer(ansible, fake_app):
    app = fake_app()
    app.non_json = True
    r = reload(ansible, app)
    assert r.rc != 0 and "not JSON" in r["msg"], r


def test_tls_failure_then_ca_path(ansible, fake_app, tmp_path):
    app = fake_app(tls=True)
    r = reload(ansible, app)
    assert r.rc != 0 and "TLS" in r["msg"] and "ca_path" in r["msg"], r
    ok = reload(ansible, app, ca_path=str(app.cert))
    assert ok.rc == 0 and ok["reloaded"], ok


def test_unhealthy_after_reload_fails(ansible, fake_app):
    app = fake_app()
    app.ready_after_reload = False
    r = reload(ansible, app, ready_timeout=1)
    assert r.rc != 0
    assert "not healthy afterwards" in r["msg"] and "failing" in r["msg"], r


def test_missing_token_is_a_clear_error(ansible, fake_app):
    r = reload(ansible, fake_app(), token=None)
    assert r.rc != 0 and "needs app_url and app_token" in r["msg"], r


def test_signal_method_sends_sighup_to_the_pidfile_process(ansible, tmp_path):
    marker = tmp_path / "hup"
    code = ("import signal, time, pathlib\n"
            "signal.signal(signal.SIGHUP, lambda *a: pathlib.Path(%r).write_text('reloaded'))\n"
            "time.sleep(30)\n") % str(marker)
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        time.sleep(0.3)
        pidfile = tmp_path / "app.pid"
        pidfile.write_text(str(proc.pid))
        check = ansible.module("config_reload", dict(method="signal", pidfile=str(pidfile), verify_ready=False),
                               check=True)
        assert check.rc == 0 and "would send SIGHUP to process %d" % proc.pid in check["msg"], check
        assert not marker.exists()
        r = ansible.module("config_reload", dict(method="signal", pidfile=str(pidfile), verify_ready=False))
        assert r.rc == 0 and r["pid"] == proc.pid and r["changed"], r
        for _poll in range(50):
            if marker.exists():
                break
            time.sleep(0.05)
        assert marker.read_text() == "reloaded"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_signal_with_stale_pidfile(ansible, tmp_path):
    pidfile = tmp_path / "app.pid"
    pidfile.write_text("999999")
    r = ansible.module("config_reload", dict(method="signal", pidfile=str(pidfile), verify_ready=False))
    assert r.rc != 0 and "stale pidfile" in r["msg"], r


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
# module ever sent SIGHUP to -1 or 0, only the namespace's processes would get it.
NAMESPACE_SCRIPT = r'''
set -u
"$PY" -c 'import pathlib, signal, sys, time
signal.signal(signal.SIGHUP, lambda *a: pathlib.Path(sys.argv[1]).write_text("hup"))
time.sleep(900)' "$MARKER" &
VICTIM=$!
sleep 0.5
run() {  # run LABEL CONTENT [extra module args as a JSON fragment]; CONTENT "self" = the PID running ansible
    for check in "" "--check"; do
        echo "CASE $1$check"
        ( if [ "$2" = self ]; then printf '%s' "$BASHPID" > "$PIDFILE"; else printf '%s' "$2" > "$PIDFILE"; fi
          exec timeout 60 ansible localhost -o $check -m callcenter.ops.config_reload \
            -a "{\"method\": \"signal\", \"pidfile\": \"$PIDFILE\", \"verify_ready\": false ${3:-}}" 2>&1 )
        echo "RC=$?"
    done
}
run minus1 "-1"
run zero "0"
run init "1"
run self self
run spaced " -1 "
run two "12 34"
run hex "0x10"
run wrongname "$VICTIM" ', "process_name": "gunicorn"'
kill -0 "$VICTIM" && echo "VICTIM ALIVE"
run rightname "$VICTIM" ', "process_name": "'"$PYNAME"'"'
sleep 0.5
kill "$VICTIM"
'''


def in_pid_namespace(ansible, tmp_path, script, **env):
    run_env = dict(ansible.env, PY=sys.executable, PYNAME=os.path.basename(os.path.realpath(sys.executable)),
                   PIDFILE=str(tmp_path / "app.pid"), MARKER=str(tmp_path / "hup"), **env)
    return subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "bash", "-c", script], env=run_env,
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, check=False)


def test_signal_pidfile_never_reaches_all_processes_init_or_ansible_itself(ansible, tmp_path):
    p = in_pid_namespace(ansible, tmp_path, NAMESPACE_SCRIPT)
    out = p.stdout
    cases = dict((c.split("\n", 1)[0], c) for c in out.split("CASE ")[1:])
    assert len(cases) == 18, out + p.stderr
    refused = dict(minus1="does not hold a PID", zero="only a single process with a PID greater than 1",
                   init="only a single process with a PID greater than 1", self="Ansible itself",
                   spaced="does not hold a PID", two="does not hold a PID", hex="does not hold a PID",
                   wrongname="not gunicorn: refused")
    for label, why in refused.items():
        for suffix in ("", "--check"):
            text = cases[label + suffix]
            assert "RC=2" in text and "FAILED" in text and why in text, text
    assert "VICTIM ALIVE" in out, out
    # The named, matching process is signalled; check mode sends nothing.
    assert "would send SIGHUP" in cases["rightname--check"] and "RC=0" in cases["rightname--check"], cases
    assert "sent SIGHUP" in cases["rightname"] and "RC=0" in cases["rightname"], cases
    assert (tmp_path / "hup").read_text() == "hup"
    assert "Traceback" not in out


def test_signal_pidfile_that_is_a_fifo_is_refused_at_once(ansible, tmp_path):
    fifo = tmp_path / "app.pid"
    os.mkfifo(str(fifo))
    for check in (False, True):
        r = ansible.module("config_reload", dict(method="signal", pidfile=str(fifo), verify_ready=False),
                           check=check, timeout=60)
        assert r.rc != 0 and "is a FIFO, not a regular file: refused" in r["msg"], r
        assert r.duration < 30


def test_signal_needs_a_target(ansible):
    r = ansible.module("config_reload", dict(method="signal", verify_ready=False))
    assert r.rc != 0 and "needs unit or pidfile" in r["msg"], r


def test_restart_only_sections_are_reported_as_such(ansible, fake_app):
    app = fake_app()
    r = reload(ansible, app, sections=["Redis", "AudioSocket"])
    assert r.rc == 0 and r["changed"] is False, r
    assert r["reloaded"] == [] and r["not_reloadable"] == ["Redis", "AudioSocket"], r
    assert "Redis, AudioSocket cannot be reloaded" in r["msg"] and "Database" not in r["msg"], r
    assert "[WARNING]: Redis, AudioSocket cannot be reloaded while the application runs: restart it" in r.output, r


def test_second_reload_changes_nothing(ansible, fake_app):
    app = fake_app()
    first = reload(ansible, app, sections=["Quality"])
    again = reload(ansible, app, sections=["Quality"])
    assert first["changed"] is True and first["reloaded"] == ["Quality"], first
    assert again["changed"] is False and again["unchanged"] == ["Quality"], again
