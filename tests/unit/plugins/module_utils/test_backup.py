"""The backup reader's pure parts: bounded decompression, regular-file-only opening, sentences
for file-system errors, metrics text. Real dumps and pg_restore are in tests/integration."""

import errno
import gzip
import os
import socket
import threading
import zlib

import pytest

from ansible_collections.callcenter.ops.plugins.module_utils import backup
from ansible_collections.callcenter.ops.plugins.module_utils import textfile


def gzip_member(data, level=9):
    c = zlib.compressobj(level, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize("lib", ["zlib", "isal"])
def test_inflater_never_returns_more_than_max_out_of_a_bomb(lib):
    if lib == "isal" and not backup.HAS_ISAL:
        pytest.skip("isal not installed")
    member = gzip_member(b"\0" * (64 << 20))  # 64 MiB of zeros in ~64 KB
    inflater = backup.Inflater(backup.fast_zlib if lib == "isal" else zlib)
    total = biggest = 0
    for chunk in (member[i:i + 8192] for i in range(0, len(member), 8192)):
        for piece in inflater.pieces(chunk, 256 * 1024):
            biggest = max(biggest, len(piece))
            total += len(piece)
    assert biggest <= 256 * 1024
    assert total == 64 << 20 and inflater.eof


def test_inflater_reads_every_member_and_keeps_trailing_bytes():
    data = gzip.compress(b"a" * 100000) + gzip.compress(b"b" * 5) + b"junk"
    inflater = backup.Inflater(zlib)
    out = b"".join(inflater.pieces(data, 1000))
    assert out == b"a" * 100000 + b"b" * 5
    assert inflater.eof and inflater.extra == b"junk"


def test_inflater_output_is_complete_when_the_last_piece_fills_max_out():
    payload = os.urandom(4096)
    inflater = backup.Inflater(zlib)
    assert b"".join(inflater.pieces(gzip.compress(payload), 4096)) == payload
    assert inflater.eof


def test_inflater_raises_on_corrupt_data():
    data = bytearray(gzip.compress(os.urandom(50000)))
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(zlib.error):
        b"".join(backup.Inflater(zlib).pieces(bytes(data), 4096))


def run_with_alarm(fn, seconds=5):
    """``fn()`` in a thread; fails the test instead of hanging when it blocks."""
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the test
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "blocked for %ss" % seconds
    if "error" in box:
        raise box["error"]
    return box["value"]


def test_open_regular_refuses_a_fifo_without_opening_it(tmp_path):
    fifo = tmp_path / "x.dump.gz"
    os.mkfifo(fifo)
    with pytest.raises(backup.BackupError, match="is a FIFO, not a regular file: it was not opened"):
        run_with_alarm(lambda: backup.open_regular(str(fifo)))


def test_open_regular_refuses_sockets_and_devices(tmp_path):
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "s"))
    try:
        with pytest.raises(backup.BackupError, match="is a socket, not a regular file"):
            backup.open_regular(str(tmp_path / "s"))
    finally:
        sock.close()
    with pytest.raises(backup.BackupError, match="is a character device, not a regular file"):
        backup.open_regular("/dev/null")


def test_verify_of_a_fifo_returns_a_failed_check(tmp_path):
    fifo = tmp_path / "x.dump.gz"
    os.mkfifo(fifo)
    res = run_with_alarm(lambda: backup.verify(str(fifo)))
    assert res["valid"] is False
    assert res["checks"] == [dict(name="readable", ok=False, message=backup.not_regular_message(str(fifo), "a FIFO"))]


@pytest.mark.parametrize("code, words", [
    (errno.ELOOP, "too many levels of symbolic links"),
    (errno.ENAMETOOLONG, "file name too long"),
    (errno.ENOTDIR, "a component of the path is not a directory"),
    (errno.EIO, "input/output error"),
    (errno.ENOENT, "does not exist"),
    (errno.EROFS, "cannot be read: Read-only file system (EROFS)"),
])
def test_every_os_error_becomes_a_sentence_naming_the_path(code, words):
    message = backup.os_error_message("/b/x.dump.gz", OSError(code, os.strerror(code)))
    assert message.startswith("/b/x.dump.gz") and words in message


def test_a_very_long_path_is_shortened_in_messages():
    message = backup.os_error_message("/" + "x" * 5000, OSError(errno.ENAMETOOLONG, "File name too long"))
    assert len(message) < 300 and "..." in message


@pytest.mark.parametrize("case", ["loop", "through_a_file", "too_long", "missing_dir"])
def test_check_backup_fails_closed_on_file_system_errors(tmp_path, case):
    if case == "loop":
        path = tmp_path / "l"
        os.symlink(path, path)
    elif case == "through_a_file":
        (tmp_path / "f").write_text("x")
        path = tmp_path / "f" / "x.dump.gz"
    elif case == "too_long":
        path = tmp_path / ("y" * 400)
    else:
        path = tmp_path / "nope" / "x.dump.gz"
    res = backup.check_backup(str(path))
    assert res["valid"] is False and res["problems"] and res["problems"][0].startswith(str(path)[:100])


def test_check_backup_refuses_an_unusable_timeout():
    for value in (float("nan"), float("inf"), 1e12, 0):
        res = backup.check_backup("/nonexistent", timeout=value)
        assert res["valid"] is False and "timeout must be" in res["problems"][0]


def test_metrics_text_survives_a_newline_in_the_file_name_and_read_metrics_reads_it_back(tmp_path):
    result = dict(path='/b/night\nly "x"}.dump.gz', valid=False, verified_at=1700000000, duration=1.5,
                  checks=[dict(name="gzip", ok=False, message='CRC "bad"\nsecond line')])
    text = backup.metrics_text(result)
    assert 'callcenter_backup_verify_success{path="/b/night\\nly \\"x\\"}.dump.gz"} 0' in text
    assert 'reason="CRC \\"bad\\"\\nsecond line"} 1' in text
    assert all(line.startswith(("#", "callcenter_backup_")) for line in text.splitlines())
    f = tmp_path / "m.prom"
    textfile.write_atomically(str(f), text)
    detail = backup.read_metrics_detail(str(f))
    assert (detail["success"], detail["last_run"]) == (False, 1700000000.0)


def test_read_metrics_never_opens_a_fifo(tmp_path):
    fifo = tmp_path / "m.prom"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="is a FIFO"):
        run_with_alarm(lambda: backup.read_metrics_detail(str(fifo)))


def test_backup_writes_metrics_only_through_textfile():
    assert not hasattr(backup, "write_atomically") and not hasattr(backup, "_num")  # one writer: textfile


@pytest.mark.parametrize("result, mode, sha, gz, expected", [
    (dict(compressed=True), "full", None, True, "gzip_crc"),
    (dict(compressed=True), "toc", None, False, "none"),
    (dict(compressed=False, toc=dict(compression="-1"), data_read=True), "full", None, False, "pg_dump_compression"),
    (dict(compressed=False, toc=dict(compression="0"), data_read=True), "full", None, False, "none"),
    (dict(compressed=False, toc=dict(compression="gzip"), data_read=True), "full", None, False, "pg_dump_compression"),
    (dict(compressed=True, sha256="ab"), "full", "ab", True, "checksum_file"),
])
def test_integrity_names_what_protected_the_data(result, mode, sha, gz, expected):
    assert backup.integrity_of(result, mode, sha, gz) == expected


def test_metrics_detail_reads_back_why_a_verification_failed(tmp_path):
    from ansible_collections.callcenter.ops.plugins.module_utils import backup
    result = dict(path='/b/x"1\n.dump.gz', valid=False, verified_at=1700000000, duration=0.5,
                  checks=[dict(name="gzip", ok=False, message='gzip CRC mismatch: "altered"\\x'),
                          dict(name="toc", ok=True, message="fine")])
    f = tmp_path / "m.prom"
    f.write_text(backup.metrics_text(result))
    detail = backup.read_metrics_detail(str(f))
    assert detail["success"] is False and detail["last_run"] == 1700000000
    assert detail["problems"] == ['gzip CRC mismatch: "altered"\\x']


def test_a_gzip_cut_at_half_is_protected_by_gzip_not_reported_as_unprotected():
    from ansible_collections.callcenter.ops.plugins.module_utils import backup
    broken = dict(compressed=True, toc={"compression": "0"}, sha256=None, data_read=False)
    assert backup.integrity_of(broken, "full", None, gzip_checked=False) == "gzip_crc"
    assert backup.integrity_of(dict(compressed=False, toc={"compression": "0"}, data_read=True), "full", None, True) == "none"


# --- open -> stream -> verdict: the pure parts on bytes and plain values ---

from ansible_collections.callcenter.ops.plugins.module_utils import backup_archive as arc  # noqa: E402

TOC_LISTING = """;
; Archive created at 2026-11-25 03:00:01 UTC
;     dbname: callcenter
;     TOC Entries: 42
;     Compression: 0
;     Dump Version: 1.15-0
;     Format: CUSTOM
;     Dumped from database version: 15.8 (Debian 15.8-0+deb12u1)
;     Dumped by pg_dump version: 15.8 (Debian 15.8-0+deb12u1)
;
; Selected TOC Entries:
;
3; 2615 2200 SCHEMA - public pg_database_owner
215; 1259 16390 TABLE public calls postgres
216; 1259 16399 TABLE public operators postgres
3350; 0 16390 TABLE DATA public calls postgres
"""


@pytest.mark.parametrize("head, kind", [
    (b"\x1f\x8b\x08\x00rest", "gzip"),
    (b"PGDMP\x01\x0e\x00", "custom"),
    (b"x" * 257 + b"ustar\x0000" + b"\0" * 20, "tar"),
    (b"\n\n-- PostgreSQL database dump\n", "plain-sql"),
    (b"SET statement_timeout = 0;\n", "plain-sql"),
    (b"create table calls (id int);", "plain-sql"),
    (b"\x00\x01\x02 random", "unknown"),
    (b"", "unknown"),
])
def test_sniff_tells_the_kind_from_the_first_bytes_not_the_name(head, kind):
    assert arc.sniff(head) == kind


def test_parse_toc_reads_the_header_and_the_tables():
    toc = arc.parse_toc(TOC_LISTING)
    assert toc["database"] == "callcenter" and toc["entries"] == 42
    assert toc["tables"] == ["public.calls", "public.operators"]  # TABLE DATA lines are not tables
    assert toc["dumped_at"] == "2026-11-25 03:00:01 UTC"
    assert toc["server_version"].startswith("15.8") and toc["pg_dump_version"].startswith("15.8")
    assert (toc["format"], toc["compression"], toc["dump_version"]) == ("CUSTOM", "0", "1.15-0")


def test_parse_toc_of_nothing_has_no_entries():
    toc = arc.parse_toc("")
    assert toc["entries"] is None and toc["tables"] == []


def test_open_archive_accepts_a_custom_dump_and_a_gzipped_one():
    raw = b"PGDMP" + os.urandom(100)
    plain = arc.open_archive(raw, "/b/x.dump")
    assert plain.compressed is False and plain.first == raw and [c.name for c in plain.checks] == ["format"]
    gz = arc.open_archive(gzip.compress(raw), "/b/x.dump.gz", lib=zlib)
    assert gz.compressed is True and gz.decompressor == "zlib" and gz.first == raw
    assert [c.name for c in gz.checks] == ["gzip_header", "format"]


REFUSED_HEADS = [
    (b"", "format", "is empty (0 bytes)"),
    (gzip.compress(b""), "gzip", "empty gzip stream"),
    (gzip.compress(b"PGDMP" + b"x" * 5000)[:12], "gzip", "ends before any data"),
    (gzip.compress(b"-- PostgreSQL database dump\nSET x;"), "format", "plain-SQL dump inside gzip"),
    (b"SET x = 1;", "format", "plain-SQL dump, not a pg_dump custom-format archive"),
    (b"y" * 257 + b"ustar" + b"\0" * 10, "format", "tar-format dump"),
    (gzip.compress(gzip.compress(b"PGDMP")), "format", "gzip'ed twice"),
    (gzip.compress(b"hello world"), "format", "no PGDMP signature inside the gzip stream"),
    (b"\x1f\x8b\x08\x00" + b"\xff" * 40, "gzip", "gzip"),
]


# ids from the words: gzip headers hold the time, and pytest-xdist needs the same ids in every worker
@pytest.mark.parametrize("head, check, words", REFUSED_HEADS, ids=["%d-%s" % (i, c[2]) for i, c in enumerate(REFUSED_HEADS)])
def test_open_archive_refuses_what_pg_restore_cannot_verify_with_a_sentence(head, check, words):
    with pytest.raises(arc.Refused) as e:
        arc.open_archive(head, "/b/x", lib=zlib)
    last = e.value.checks[-1]
    assert (last.name, last.ok) == (check, False) and words in last.message


def outcome(**kw):
    o = arc.Outcome("/b/x.dump.gz", mode=kw.pop("mode", "full"), compressed=kw.pop("compressed", True),
                    decompressor="isal", timeout=60, memory_limit=28 << 20)
    o.bytes_in, o.bytes_out, o.read_to_end, o.gzip_checked = 1000, 7000, True, True
    o.toc_rc, o.toc_listing, o.data_rc, o.data_err = 0, TOC_LISTING, 0, ""
    for k, v in kw.items():
        setattr(o, k, v)
    return o


def names(result, ok=None):
    return [c["name"] for c in result["checks"] if ok is None or c["ok"] is ok]


def test_verdict_of_a_good_gzipped_dump():
    r = arc.verdict(outcome(), [arc.Check("gzip_header", True, "gzip stream")])
    assert r["valid"] is True and names(r) == ["gzip_header", "gzip", "toc", "data"]
    assert r["uncompressed_size"] == 7000 and r["integrity"] == "gzip_crc" and r["toc"]["entries"] == 42
    assert r["decompressor"] == "isal" and r["warnings"] == []


def test_verdict_of_a_truncated_gzip_names_gzip_and_data():
    problem = "truncated after 1000 bytes: the gzip stream ends without its trailer"
    r = arc.verdict(outcome(gzip_checked=False, gzip_problem=problem, data_rc=None))
    assert r["valid"] is False and names(r, ok=False) == ["gzip", "data"]
    assert r["integrity"] == "gzip_crc"  # gzip's CRC protected it: it is what caught the damage


def test_verdict_of_a_timeout_says_so_first():
    r = arc.verdict(outcome(stop="timeout", read_to_end=False, toc_rc=None, data_rc=None))
    assert names(r, ok=False)[0] == "timeout" and "timeout of 60s" in r["checks"][0]["message"]
    assert r["uncompressed_size"] is None


def test_verdict_of_pg_restore_out_of_memory_gives_the_fix():
    r = arc.verdict(outcome(stop="pg_restore", read_to_end=False, data_rc=1,
                            data_err="pg_restore: error: out of memory\n"))
    msg = [c for c in r["checks"] if c["name"] == "data"][0]["message"]
    assert "limited to 28 MiB" in msg and "raise pg_restore_memory_limit" in msg and "rest was not read" in msg


def test_verdict_of_an_empty_toc_fails():
    r = arc.verdict(outcome(toc_listing=";\n;     TOC Entries: 0\n"))
    assert names(r, ok=False) == ["toc"]


def test_verdict_warns_when_nothing_protected_an_uncompressed_dump():
    r = arc.verdict(outcome(compressed=False, gzip_checked=False))
    assert r["valid"] is True and r["integrity"] == "none" and "pg_dump -Fc -Z0" in r["warnings"][0]


@pytest.mark.parametrize("sha, ok", [("AB" * 32, True), ("cd" * 32, False)])
def test_verdict_compares_the_checksum(sha, ok):
    r = arc.verdict(outcome(sha256="ab" * 32), expected_sha256=sha)
    check = [c for c in r["checks"] if c["name"] == "checksum"][0]
    assert check["ok"] is ok and r["valid"] is ok


def test_verdict_without_a_full_read_cannot_compare_the_checksum():
    r = arc.verdict(outcome(stop="timeout", read_to_end=False), expected_sha256="ab" * 32)
    assert "sha256 not computed" in [c for c in r["checks"] if c["name"] == "checksum"][0]["message"]


def test_inflater_end_problem_names_truncation_and_trailing_garbage():
    whole = gzip.compress(b"x" * 1000)
    inflater = backup.Inflater(zlib)
    b"".join(inflater.pieces(whole[:-4]))
    assert "without its trailer" in inflater.end_problem(len(whole) - 4)
    inflater = backup.Inflater(zlib)
    b"".join(inflater.pieces(whole + b"\0\0\0"))
    assert inflater.end_problem(len(whole)) is None  # zero padding (tape blocks) is fine
    inflater = backup.Inflater(zlib)
    b"".join(inflater.pieces(whole + b"garbage"))
    assert "trailing garbage" in inflater.end_problem(len(whole))


def test_children_get_their_limit_from_a_shell_not_from_preexec_fn():
    argv = backup.limited_argv(["/usr/bin/pg_restore", "--list"], 28 << 20)
    assert argv[:2] == ["/bin/sh", "-c"] and "ulimit -v" in argv[2] and argv[-2:] == ["/usr/bin/pg_restore", "--list"]
    assert argv[4] == str(28 << 10)  # KiB
    assert backup.limited_argv(["x"], None) == ["x"]


def test_a_child_runs_under_the_limit_in_its_own_session_and_kill_reaps_it():
    child = backup.Child(["/bin/sh", "-c", "ulimit -v; cat > /dev/null"], 64 << 20, capture_stdout=True)
    try:
        child.start_readers()
        assert os.getpgid(child.proc.pid) == child.proc.pid != os.getpgid(0)
        assert child.feed(b"x" * 100000)
        rc, out, _err = child.finish(10)
        assert rc == 0 and out.strip() == str(64 << 10)
    finally:
        child.kill()
    sleeper = backup.Child(["sleep", "60"], None)
    sleeper.kill()
    assert sleeper.proc.returncode is not None  # reaped, no zombie left


def test_stream_kills_and_reaps_both_children_whatever_happens(tmp_path, monkeypatch):
    started = []
    real = backup.Child

    def spy(*a, **kw):
        started.append(real(*a, **kw))
        return started[-1]

    def boom(*_a, **_kw):
        raise RuntimeError("boom")

    monkeypatch.setattr(backup, "Child", spy)
    monkeypatch.setattr(backup, "_pump", boom)
    fake = tmp_path / "pg_restore"
    fake.write_text("#!/bin/sh\nexec sleep 60\n")
    fake.chmod(0o755)
    data = b"PGDMP" + b"\0" * 100
    f = tmp_path / "x.dump"
    f.write_bytes(data)
    with open(f, "rb") as fh:
        a = arc.open_archive(fh.read(), str(f))
        with pytest.raises(RuntimeError):
            backup.stream(a, fh, arc.Outcome(str(f)), str(fake), 64 << 20, None, __import__("time").monotonic() + 30)
    assert len(started) == 2 and all(c.proc.returncode is not None for c in started)
