"""module_utils/process.py: which PID may get a signal (pure logic, no signal is sent)."""

import os

import pytest

from ansible_collections.callcenter.ops.plugins.module_utils import process


@pytest.mark.parametrize("content", ["-1", "0x10", "12 34", "", "abc", "+5", "1e3", "12\n13"])
def test_pidfile_that_is_not_one_decimal_number_is_refused(tmp_path, content):
    f = tmp_path / "app.pid"
    f.write_text(content)
    with pytest.raises(process.ProcessError, match="does not hold a PID"):
        process.read_pidfile(str(f))


def test_pidfile_with_a_newline_is_read(tmp_path):
    f = tmp_path / "app.pid"
    f.write_text("4242\n")
    assert process.read_pidfile(str(f)) == 4242


def test_fifo_pidfile_is_refused_without_blocking(tmp_path):
    f = tmp_path / "app.pid"
    os.mkfifo(str(f))
    with pytest.raises(process.ProcessError, match="is a FIFO"):
        process.read_pidfile(str(f))


def test_missing_pidfile(tmp_path):
    with pytest.raises(process.ProcessError, match="does not exist"):
        process.read_pidfile(str(tmp_path / "nope.pid"))


@pytest.mark.parametrize("pid", [-1, 0, 1])
def test_pid_one_and_below_are_refused(pid):
    assert "greater than 1" in process.refusal(pid, protected=set())


def test_own_process_group_and_parents_are_refused():
    for pid in (os.getpid(), os.getpgrp(), os.getppid()):
        if pid > 1:
            assert "Ansible itself" in process.refusal(pid)


def test_parent_pid_reads_names_with_parentheses(tmp_path):
    (tmp_path / "77").mkdir()
    (tmp_path / "77" / "stat").write_text("77 (odd) name (x)) S 55 77 77 0 -1\n")
    assert process.parent_pid(77, proc=str(tmp_path)) == 55


def test_unit_of_reads_the_cgroup(tmp_path):
    (tmp_path / "9").mkdir()
    (tmp_path / "9" / "cgroup").write_text("0::/system.slice/callcenter.service\n")
    assert process.unit_of(9, proc=str(tmp_path)) == "callcenter.service"
