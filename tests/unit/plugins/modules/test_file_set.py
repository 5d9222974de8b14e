"""file_set writes a set of files in one step: only what differs, atomically, nothing in check
mode, and refuses names outside its directory (in-process; the runbooks role writes its pages
with it through ansible-playbook in tests/integration/test_runbooks.py)."""

import os
import stat

import pytest


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_writes_every_file_then_nothing_then_only_what_differs(module_run, tmp_path):
    dest = tmp_path / "pages"
    files = {"a.md": "# A\n", "b.html": "<p>b</p>\n", "ü.md": "Grüße\n"}
    r = module_run("file_set", dict(path=str(dest), files=files))
    assert r["changed"] and r["written"] == sorted(files) and r["unchanged"] == 0, r
    assert {p.name: p.read_text(encoding="utf-8") for p in dest.iterdir()} == files
    assert mode_of(dest / "a.md") == 0o644 and mode_of(dest) == 0o755
    again = module_run("file_set", dict(path=str(dest), files=files))
    assert not again["changed"] and again["written"] == [] and again["unchanged"] == 3, again
    (dest / "keep.txt").write_text("not ours")
    one = module_run("file_set", dict(path=str(dest), files=dict(files, **{"b.html": "<p>B</p>\n"})))
    assert one["changed"] and one["written"] == ["b.html"] and one["unchanged"] == 2, one
    assert (dest / "b.html").read_text() == "<p>B</p>\n" and (dest / "keep.txt").read_text() == "not ours"
    assert not [p for p in dest.iterdir() if p.name.startswith(".file_set.")], "a temporary file was left"


def test_a_wrong_mode_alone_is_set_and_reported(module_run, tmp_path):
    module_run("file_set", dict(path=str(tmp_path), files={"a": "x"}, mode="0644"))
    os.chmod(tmp_path / "a", 0o600)
    r = module_run("file_set", dict(path=str(tmp_path), files={"a": "x"}, mode="0644"))
    assert r["changed"] and r["written"] == [] and r["attributes_set"] == ["a"], r
    assert mode_of(tmp_path / "a") == 0o644


def test_check_mode_names_what_it_would_write_and_writes_nothing(module_run, tmp_path):
    (tmp_path / "a").write_text("old\n")
    r = module_run("file_set", dict(path=str(tmp_path), files={"a": "new\n", "b": "b\n"},
                                    _ansible_check_mode=True, _ansible_diff=True))
    assert r["changed"] and r["written"] == ["a", "b"], r
    assert (tmp_path / "a").read_text() == "old\n" and not (tmp_path / "b").exists()
    assert {d["after_header"]: (d["before"], d["after"]) for d in r["diff"]} == {
        str(tmp_path / "a"): ("old\n", "new\n"), str(tmp_path / "b"): ("", "b\n")}
    missing = module_run("file_set", dict(path=str(tmp_path / "none"), files={"a": "x"}, _ansible_check_mode=True))
    assert missing["changed"] and missing["written"] == ["a"] and not (tmp_path / "none").exists(), missing


@pytest.mark.parametrize("name", ["../escape", "sub/dir", "..", ".", ""])
def test_a_name_outside_the_directory_is_refused_before_anything_is_written(module_run, tmp_path, name):
    r = module_run("file_set", dict(path=str(tmp_path / "d"), files={"ok": "x", name: "y"}))
    assert r.failed and "must be plain names inside path" in r["msg"], r
    assert not (tmp_path / "d").exists() and not (tmp_path / "escape").exists()


def test_content_that_is_not_text_and_a_path_that_is_a_file_are_refused(module_run, tmp_path):
    r = module_run("file_set", dict(path=str(tmp_path), files={"a": {"not": "text"}}))
    assert r.failed and "must be text (not for: a)" in r["msg"], r
    (tmp_path / "f").write_text("")
    r = module_run("file_set", dict(path=str(tmp_path / "f"), files={"a": "x"}))
    assert r.failed and "exists and is not a directory" in r["msg"], r
    r = module_run("file_set", dict(path=str(tmp_path / "f" / "sub"), files={"a": "x"}))
    assert r.failed and r["msg"].startswith("could not create the directory"), r
