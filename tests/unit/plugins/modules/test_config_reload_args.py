"""config_reload refuses unusable options before it sends anything (in-process; the reloads
against the stand-in and the signals, inside their own PID namespace where a signal could go
out, are in tests/integration/test_config_reload.py)."""

import pytest

from fake_app import ADMIN_TOKEN


@pytest.mark.parametrize("args, expected", [
    (dict(timeout="nan"), "timeout must be"), (dict(timeout="inf"), "timeout must be"),
    (dict(timeout="-1"), "timeout must be"), (dict(timeout="1e12"), "timeout must be"),
    (dict(ready_timeout="nan"), "ready_timeout must be"),
])
def test_timeouts_that_are_not_numbers_of_seconds_are_refused(module_run, fake_app, args, expected):
    app = fake_app()
    r = module_run("config_reload", dict(app_url=app.url, **args), env={"CALLCENTER_ADMIN_TOKEN": ADMIN_TOKEN})
    assert r.failed and r["msg"].startswith(expected), r
    assert "_PyTime_t" not in r["msg"]
    assert app.reloads == []


def test_signal_pidfile_too_long_or_a_directory(module_run, tmp_path):
    """Refused while reading the pidfile: no PID is ever taken from it, so no signal can go out."""
    big = tmp_path / "big.pid"
    big.write_text("1" * 100000)
    r = module_run("config_reload", dict(method="signal", pidfile=str(big), verify_ready=False))
    assert r.failed and "longer than 64 bytes" in r["msg"], r
    r = module_run("config_reload", dict(method="signal", pidfile=str(tmp_path), verify_ready=False))
    assert r.failed and "is a directory, not a regular file" in r["msg"], r
