"""config_reload against the contract stand-in (tests/fake_app.py), and the serial playbook."""

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
    app.changed = False
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
    app.delay = 5
    r = reload(ansible, app, timeout=1)
    assert r.rc != 0 and "did not answer within 1.0s" in r["msg"], r
    assert r.duration < 5


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
