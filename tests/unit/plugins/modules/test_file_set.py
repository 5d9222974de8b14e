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


def test_absent_removes_the_named_files_in_the_same_run_and_only_those(module_run, tmp_path):
    for name in ("old.timer", "old.service", "keep.txt"):
        (tmp_path / name).write_text(name)
    os.symlink(tmp_path / "keep.txt", tmp_path / "old.link")
    args = dict(path=str(tmp_path), files={"new.conf": "x\n"}, absent=["old.timer", "old.service", "old.link", "gone"])
    check = module_run("file_set", dict(args, _ansible_check_mode=True, _ansible_diff=True))
    assert check["changed"] and check["removed"] == ["old.link", "old.service", "old.timer"], check
    assert (tmp_path / "old.timer").exists() and not (tmp_path / "new.conf").exists()
    assert {d["before_header"]: d["before"] for d in check["diff"]}[str(tmp_path / "old.timer")] == "old.timer"
    r = module_run("file_set", args)
    assert r["changed"] and r["written"] == ["new.conf"] and r["removed"] == ["old.link", "old.service", "old.timer"], r
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt", "new.conf"]
    again = module_run("file_set", args)
    assert not again["changed"] and again["removed"] == [] and again["unchanged"] == 1, again


def test_absent_alone_leaves_a_missing_directory_missing_and_refuses_directories_and_overlaps(module_run, tmp_path):
    r = module_run("file_set", dict(path=str(tmp_path / "none"), files={}, absent=["a.timer"]))
    assert not r["changed"] and r["removed"] == [] and not (tmp_path / "none").exists(), r
    (tmp_path / "sub").mkdir()
    r = module_run("file_set", dict(path=str(tmp_path), files={}, absent=["sub"]))
    assert r.failed and "is a directory" in r["msg"] and (tmp_path / "sub").is_dir(), r
    r = module_run("file_set", dict(path=str(tmp_path), files={"a": "x"}, absent=["a"]))
    assert r.failed and "in files and in absent: a" in r["msg"] and not (tmp_path / "a").exists(), r
    r = module_run("file_set", dict(path=str(tmp_path), files={}, absent=["../escape"]))
    assert r.failed and "must be plain names inside path" in r["msg"], r


def test_an_empty_set_creates_a_missing_directory_and_leaves_an_existing_one_as_it_is(module_run, tmp_path):
    r = module_run("file_set", dict(path=str(tmp_path / "lock"), files={}, directory_mode="0755"))
    assert r["changed"] and mode_of(tmp_path / "lock") == 0o755, r
    os.chmod(tmp_path / "lock", 0o1777)
    again = module_run("file_set", dict(path=str(tmp_path / "lock"), files={}, directory_mode="0755"))
    assert not again["changed"] and mode_of(tmp_path / "lock") == 0o1777, again


def test_validate_checks_every_changed_file_before_any_is_written(module_run, tmp_path):
    dest = tmp_path / "rules"
    ok = {"a.yml": "good: 1\n", "b.yml": "good: 2\n"}
    check = "/bin/sh -c 'grep -q good %s'"
    r = module_run("file_set", dict(path=str(dest), files=ok, validate=check))
    assert r["changed"] and r["written"] == ["a.yml", "b.yml"], r
    bad = module_run("file_set", dict(path=str(dest), files={"a.yml": "good: 3\n", "b.yml": "bad\n"}, validate=check))
    assert bad.failed and "failed to validate the new content of b.yml" in bad["msg"] and "no file was replaced" in bad["msg"], bad
    assert {p.name: p.read_text() for p in dest.iterdir()} == ok
    out = module_run("file_set", dict(path=str(tmp_path / "new"), files={"c.yml": "x"},
                                      validate="/bin/sh -c 'echo refused: $0 >&2; exit 3' %s"))
    assert out.failed and "exited with 3" in out["msg"] and "refused: " in out["msg"] and "c.yml" in out["msg"], out
    # what the command said, apart, as template's validate gives it (the alertmanager role's rescue reads it)
    assert out["invalid"] == "c.yml" and out["rc"] == 3 and out["stdout"] == "", out
    assert out["stderr"].startswith("refused: ") and out["stderr"].strip().endswith("c.yml"), out
    assert ".file_set." not in out["stderr"] + out["msg"], "the temporary file's path is shown as the file's name"
    assert not (tmp_path / "new").exists(), "the directory was created although the content was refused"
    again = module_run("file_set", dict(path=str(dest), files=ok, validate="/bin/false %s"))
    assert not again["changed"], "unchanged files are not validated"
    checked = module_run("file_set", dict(path=str(dest), files={"a.yml": "bad\n"}, validate=check, _ansible_check_mode=True))
    assert checked["changed"] and checked["written"] == ["a.yml"], checked
    r = module_run("file_set", dict(path=str(dest), files=ok, validate="promtool check rules"))
    assert r.failed and "validate must contain %s" in r["msg"], r
