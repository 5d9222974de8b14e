"""backup_verify's refusals of bad input that end before pg_restore runs: empty, noise, missing,
non-regular files, file-system errors, unusable options (in-process; real dumps and pg_restore
are in tests/integration/test_backup_verify.py, which keeps one case of each kind on the
command line)."""

import gzip
import os
import random
import socket

import pytest


def verify(module_run, path, **args):
    return module_run("backup_verify", dict(path=str(path), **args))


def test_empty_file(module_run, tmp_path):
    f = tmp_path / "empty.dump.gz"
    f.write_bytes(b"")
    r = verify(module_run, f)
    assert r.failed and "is empty (0 bytes)" in r["msg"], r


def test_zero_length_gzip(module_run, tmp_path):
    f = tmp_path / "zero.dump.gz"
    f.write_bytes(gzip.compress(b""))
    r = verify(module_run, f)
    assert r.failed and "empty gzip stream" in r["msg"], r


def test_random_bytes(module_run, tmp_path):
    f = tmp_path / "noise.dump.gz"
    f.write_bytes(random.Random(1).randbytes(100000))
    r = verify(module_run, f)
    assert r.failed and "not a pg_dump archive" in r["msg"], r


def test_directory_without_matching_file(module_run, tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    r = verify(module_run, tmp_path)
    assert r.failed and "no file matches *.dump.gz in %s" % tmp_path in r["msg"], r


def test_path_that_does_not_exist(module_run, tmp_path):
    r = verify(module_run, tmp_path / "nope.dump.gz")
    assert r.failed and "does not exist" in r["msg"], r


def test_bad_max_age(module_run, tmp_path):
    r = verify(module_run, tmp_path, max_age="yesterday")
    assert r.failed and "max_age must be a number with an optional unit" in r["msg"], r


def test_socket_is_refused(module_run, tmp_path):
    sock = socket.socket(socket.AF_UNIX)
    path = tmp_path / "s.dump.gz"
    sock.bind(str(path))
    try:
        r = verify(module_run, path)
    finally:
        sock.close()
    assert r.failed and "is a socket, not a regular file" in r["msg"], r


@pytest.mark.parametrize("case", ["symlink_loop", "name_too_long", "through_a_file", "loop_in_directory"])
def test_file_system_errors_are_failed_checks_with_a_sentence(module_run, tmp_path, case):
    if case == "symlink_loop":
        path = tmp_path / "a.dump.gz"
        os.symlink(tmp_path / "b.dump.gz", path)
        os.symlink(path, tmp_path / "b.dump.gz")
        expected = "too many levels of symbolic links"
    elif case == "name_too_long":
        path = tmp_path / ("x" * 300 + ".dump.gz")
        expected = "file name too long"
    elif case == "through_a_file":
        (tmp_path / "plain").write_text("x")
        path = tmp_path / "plain" / "b.dump.gz"
        expected = "a component of the path is not a directory"
    else:
        path = tmp_path / "loop"
        os.symlink(path, path)
        expected = "too many levels of symbolic links"
    r = verify(module_run, path, fail_on_invalid=False, metrics_file=str(tmp_path / "m.prom"))
    assert not r.failed and r["valid"] is False, r
    assert any(expected in p for p in r["problems"]), r
    assert "callcenter_backup_verify_success" in (tmp_path / "m.prom").read_text()
    r = verify(module_run, path)
    assert r.failed and expected in r["msg"], r


@pytest.mark.parametrize("value, expected", [
    ("nan", "timeout must be a finite number of seconds"),
    ("inf", "timeout must be a finite number of seconds"),
    ("1e12", "timeout must be at most 86400 seconds"),
    ("0", "timeout must be greater than 0"),
])
def test_unusable_timeout_is_refused_with_a_sentence(module_run, tmp_path, value, expected):
    f = tmp_path / "raw.dump"
    f.write_bytes(b"PGDMP")
    r = module_run("backup_verify", {"path": str(f), "timeout": value})
    assert r.failed and expected in r["msg"], r
