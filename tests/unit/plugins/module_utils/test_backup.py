"""The backup reader's pure parts: bounded decompression, regular-file-only opening, sentences
for file-system errors, metrics text. Real dumps and pg_restore are in tests/integration."""

import errno
import gzip
import os
import socket
import threading
import zlib

import pytest

from ansible_collections.callcenter.ops.plugins.module_utils import backup as bk
from ansible_collections.callcenter.ops.plugins.module_utils import textfile


def gzip_member(data, level=9):
    c = zlib.compressobj(level, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize("lib", ["zlib", "isal"])
def test_inflater_never_returns_more_than_max_out_of_a_bomb(lib):
    if lib == "isal" and not bk.HAS_ISAL:
        pytest.skip("isal not installed")
    member = gzip_member(b"\0" * (64 << 20))  # 64 MiB of zeros in ~64 KB
    inflater = bk.Inflater(bk.fast_zlib if lib == "isal" else zlib)
    total = biggest = 0
    for chunk in (member[i:i + 8192] for i in range(0, len(member), 8192)):
        for piece in inflater.pieces(chunk, 256 * 1024):
            biggest = max(biggest, len(piece))
            total += len(piece)
    assert biggest <= 256 * 1024
    assert total == 64 << 20 and inflater.eof


def test_inflater_reads_every_member_and_keeps_trailing_bytes():
    data = gzip.compress(b"a" * 100000) + gzip.compress(b"b" * 5) + b"junk"
    inflater = bk.Inflater(zlib)
    out = b"".join(inflater.pieces(data, 1000))
    assert out == b"a" * 100000 + b"b" * 5
    assert inflater.eof and inflater.extra == b"junk"


def test_inflater_output_is_complete_when_the_last_piece_fills_max_out():
    payload = os.urandom(4096)
    inflater = bk.Inflater(zlib)
    assert b"".join(inflater.pieces(gzip.compress(payload), 4096)) == payload
    assert inflater.eof


def test_inflater_raises_on_corrupt_data():
    data = bytearray(gzip.compress(os.urandom(50000)))
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(zlib.error):
        b"".join(bk.Inflater(zlib).pieces(bytes(data), 4096))


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
    with pytest.raises(bk.BackupError, match="is a FIFO, not a regular file: it was not opened"):
        run_with_alarm(lambda: bk.open_regular(str(fifo)))


def test_open_regular_refuses_sockets_and_devices(tmp_path):
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "s"))
    try:
        with pytest.raises(bk.BackupError, match="is a socket, not a regular file"):
            bk.open_regular(str(tmp_path / "s"))
    finally:
        sock.close()
    with pytest.raises(bk.BackupError, match="is a character device, not a regular file"):
        bk.open_regular("/dev/null")


def test_verify_of_a_fifo_returns_a_failed_check(tmp_path):
    fifo = tmp_path / "x.dump.gz"
    os.mkfifo(fifo)
    res = run_with_alarm(lambda: bk.verify(str(fifo)))
    assert res["valid"] is False
    assert res["checks"] == [dict(name="readable", ok=False, message=bk.not_regular_message(str(fifo), "a FIFO"))]


@pytest.mark.parametrize("code, words", [
    (errno.ELOOP, "too many levels of symbolic links"),
    (errno.ENAMETOOLONG, "file name too long"),
    (errno.ENOTDIR, "a component of the path is not a directory"),
    (errno.EIO, "input/output error"),
    (errno.ENOENT, "does not exist"),
    (errno.EROFS, "cannot be read: Read-only file system (EROFS)"),
])
def test_every_os_error_becomes_a_sentence_naming_the_path(code, words):
    message = bk.os_error_message("/b/x.dump.gz", OSError(code, os.strerror(code)))
    assert message.startswith("/b/x.dump.gz") and words in message


def test_a_very_long_path_is_shortened_in_messages():
    message = bk.os_error_message("/" + "x" * 5000, OSError(errno.ENAMETOOLONG, "File name too long"))
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
    res = bk.check_backup(str(path))
    assert res["valid"] is False and res["problems"] and res["problems"][0].startswith(str(path)[:100])


def test_check_backup_refuses_an_unusable_timeout():
    for value in (float("nan"), float("inf"), 1e12, 0):
        res = bk.check_backup("/nonexistent", timeout=value)
        assert res["valid"] is False and "timeout must be" in res["problems"][0]


def test_metrics_text_survives_a_newline_in_the_file_name_and_read_metrics_reads_it_back(tmp_path):
    result = dict(path='/b/night\nly "x"}.dump.gz', valid=False, verified_at=1700000000, duration=1.5,
                  checks=[dict(name="gzip", ok=False, message='CRC "bad"\nsecond line')])
    text = bk.metrics_text(result)
    assert 'callcenter_backup_verify_success{path="/b/night\\nly \\"x\\"}.dump.gz"} 0' in text
    assert 'reason="CRC \\"bad\\"\\nsecond line"} 1' in text
    assert all(line.startswith(("#", "callcenter_backup_")) for line in text.splitlines())
    f = tmp_path / "m.prom"
    textfile.write_atomically(str(f), text)
    detail = bk.read_metrics_detail(str(f))
    assert (detail["success"], detail["last_run"]) == (False, 1700000000.0)


def test_read_metrics_never_opens_a_fifo(tmp_path):
    fifo = tmp_path / "m.prom"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="is a FIFO"):
        run_with_alarm(lambda: bk.read_metrics_detail(str(fifo)))


def test_backup_writes_metrics_only_through_textfile():
    assert not hasattr(bk, "write_atomically") and not hasattr(bk, "_num")  # one writer: textfile


@pytest.mark.parametrize("result, mode, sha, gz, expected", [
    (dict(compressed=True), "full", None, True, "gzip_crc"),
    (dict(compressed=True), "toc", None, False, "none"),
    (dict(compressed=False, toc=dict(compression="-1"), data_read=True), "full", None, False, "pg_dump_compression"),
    (dict(compressed=False, toc=dict(compression="0"), data_read=True), "full", None, False, "none"),
    (dict(compressed=False, toc=dict(compression="gzip"), data_read=True), "full", None, False, "pg_dump_compression"),
    (dict(compressed=True, sha256="ab"), "full", "ab", True, "checksum_file"),
])
def test_integrity_names_what_protected_the_data(result, mode, sha, gz, expected):
    assert bk.integrity_of(result, mode, sha, gz) == expected


def test_metrics_detail_reads_back_why_a_verification_failed(tmp_path):
    from ansible_collections.callcenter.ops.plugins.module_utils import backup as bk
    result = dict(path='/b/x"1\n.dump.gz', valid=False, verified_at=1700000000, duration=0.5,
                  checks=[dict(name="gzip", ok=False, message='gzip CRC mismatch: "altered"\\x'),
                          dict(name="toc", ok=True, message="fine")])
    f = tmp_path / "m.prom"
    f.write_text(bk.metrics_text(result))
    detail = bk.read_metrics_detail(str(f))
    assert detail["success"] is False and detail["last_run"] == 1700000000
    assert detail["problems"] == ['gzip CRC mismatch: "altered"\\x']


def test_a_gzip_cut_at_half_is_protected_by_gzip_not_reported_as_unprotected():
    from ansible_collections.callcenter.ops.plugins.module_utils import backup as bk
    broken = dict(compressed=True, toc={"compression": "0"}, sha256=None, data_read=False)
    assert bk.integrity_of(broken, "full", None, gzip_checked=False) == "gzip_crc"
    assert bk.integrity_of(dict(compressed=False, toc={"compression": "0"}, data_read=True), "full", None, True) == "none"
