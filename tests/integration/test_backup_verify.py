"""backup_verify on real dumps made by pg_dump from a real PostgreSQL 15 cluster."""

import gzip
import hashlib
import os
import random
import shutil
import subprocess
import zlib

import pytest

PG_BIN = "/usr/lib/postgresql/15/bin"  # pg_restore used directly by the property test


def copy(dumps, tmp_path, name, new=None):
    dst = tmp_path / (new or name)
    shutil.copy(dumps / name, dst)
    return dst


def verify(ansible, path, **args):
    return ansible.module("backup_verify", dict(path=str(path), **args))


def test_valid_gzipped_dump_is_valid_with_its_toc(ansible, dumps):
    r = verify(ansible, dumps / "callcenter-2026-11-25.dump.gz")
    assert r.rc == 0, r
    assert r["valid"] is True and r["changed"] is False
    assert r["compressed"] is True and r["format"] == "custom"
    toc = r["toc"]
    assert toc["database"] == "callcenter"
    assert "public.calls" in toc["tables"] and "public.operators" in toc["tables"]
    assert toc["server_version"].startswith("15") and toc["entries"] > 5
    assert {c["name"] for c in r["checks"]} >= {"gzip", "toc", "data"}
    assert r["uncompressed_size"] == os.path.getsize(dumps / "raw.dump")


def test_uncompressed_custom_dump_found_by_magic_not_name(ansible, dumps, tmp_path):
    for name in ("raw.dump", "pgz.dump"):
        f = copy(dumps, tmp_path, name, new=name + ".gz")  # misleading extension
        r = verify(ansible, f)
        assert r.rc == 0, r
        assert r["compressed"] is False and r["valid"] is True


def test_newest_file_in_directory_is_verified(ansible, dumps, tmp_path):
    old = copy(dumps, tmp_path, "callcenter-2026-11-25.dump.gz", "callcenter-2026-11-24.dump.gz")
    os.utime(old, (1_700_000_000, 1_700_000_000))
    new = copy(dumps, tmp_path, "callcenter-2026-11-25.dump.gz")
    (tmp_path / "notes.txt").write_text("not a backup")
    r = verify(ansible, tmp_path)
    assert r.rc == 0, r
    assert r["path"] == str(new)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
def test_truncated_gzip_backup_is_rejected(ansible, dumps, tmp_path, fraction):
    src = (dumps / "callcenter-2026-11-25.dump.gz").read_bytes()
    f = tmp_path / "cut.dump.gz"
    f.write_bytes(src[:int(len(src) * fraction)])
    r = verify(ansible, f)
    assert r.rc != 0 and r["valid"] is False
    assert "truncated after" in r["msg"], r


def test_truncated_uncompressed_dump_is_rejected_though_toc_reads(ansible, dumps, tmp_path):
    src = (dumps / "raw.dump").read_bytes()
    f = tmp_path / "cut.dump"
    f.write_bytes(src[:len(src) // 2])
    r = verify(ansible, f)
    assert r.rc != 0
    toc = [c for c in r["checks"] if c["name"] == "toc"][0]
    assert toc["ok"] is True  # what pg_restore --list alone would have said
    data = [c for c in r["checks"] if c["name"] == "data"][0]
    assert data["ok"] is False


def flip(data, offset):
    b = bytearray(data)
    b[offset] ^= 0x5A
    return bytes(b)


@pytest.mark.parametrize("where", ["toc", "middle", "trailer"])
def test_flipped_byte_in_gzip_backup_is_rejected(ansible, dumps, tmp_path, where):
    src = (dumps / "callcenter-2026-11-25.dump.gz").read_bytes()
    offset = {"toc": 40, "middle": len(src) // 2, "trailer": len(src) - 3}[where]
    f = tmp_path / "flipped.dump.gz"
    f.write_bytes(flip(src, offset))
    r = verify(ansible, f)
    assert r.rc != 0 and r["valid"] is False, r
    if where == "trailer":
        assert "gzip length check failed" in r["msg"] or "CRC" in r["msg"], r


def test_flipped_byte_inside_uncompressed_data_caught_only_by_crc(ansible, dumps, tmp_path):
    """In a -Z0 dump, pg_restore copies table data through unchecked: only gzip's CRC sees it."""
    raw = bytearray((dumps / "raw.dump").read_bytes())
    pos = raw.find(b"hello operator", len(raw) // 2)
    raw[pos] ^= 0x01
    f = tmp_path / "bitrot.dump.gz"
    good = gzip.compress((dumps / "raw.dump").read_bytes(), mtime=0)
    bad = gzip.compress(bytes(raw), mtime=0)
    f.write_bytes(bad[:-8] + good[-8:])  # body of the damaged data, trailer of the original
    r = verify(ansible, f)
    assert r.rc != 0
    assert "gzip CRC mismatch" in r["msg"], r


def test_gzip_of_plain_sql_is_refused(ansible, dumps):
    r = verify(ansible, dumps / "plain.sql.gz")
    assert r.rc != 0 and "plain-SQL dump inside gzip" in r["msg"], r


def test_plain_sql_is_refused(ansible, dumps):
    r = verify(ansible, dumps / "plain.sql")
    assert r.rc != 0 and "plain-SQL dump" in r["msg"] and "pg_dump -Fc" in r["msg"], r


def test_pg_restore_missing(ansible, dumps, tmp_path):
    r = verify(ansible, dumps / "callcenter-2026-11-25.dump.gz", pg_restore_path=str(tmp_path / "pg_restore"))
    assert r.rc != 0 and "pg_restore_path" in r["msg"] and "not executable" in r["msg"], r


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as another user")
def test_unreadable_file_says_permission_denied(ansible, dumps, tmp_path):
    import tempfile
    folder = tempfile.mkdtemp(prefix="ccops-bk-")
    try:
        os.chmod(folder, 0o755)
        f = os.path.join(folder, "secret.dump.gz")
        shutil.copy(dumps / "callcenter-2026-11-25.dump.gz", f)
        os.chmod(f, 0o600)
        p = subprocess.run(["runuser", "-u", "nobody", "--", "sh", "-c", "cat %s >/dev/null" % f],
                           capture_output=True, text=True, check=False)
        assert p.returncode != 0  # the premise: nobody cannot read it
        from ansible_collections.callcenter.ops.plugins.module_utils import backup
        rd, wr = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(rd)
            import pwd
            nobody = pwd.getpwnam("nobody")
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            res = backup.verify(f, pg_restore=os.path.join(PG_BIN, "pg_restore"))
            os.write(wr, res["checks"][0]["message"].encode())
            os._exit(0)
        os.close(wr)
        os.waitpid(pid, 0)
        assert "permission denied" in os.read(rd, 4096).decode()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_max_age_and_min_size(ansible, dumps, tmp_path):
    f = copy(dumps, tmp_path, "callcenter-2026-11-25.dump.gz")
    os.utime(f, (1_700_000_000, 1_700_000_000))
    r = verify(ansible, f, max_age="26h", min_size="1G")
    assert r.rc != 0
    assert "older than max_age" in r["msg"] and "smaller than min_size" in r["msg"], r


def test_checksum_sidecar(ansible, dumps, tmp_path):
    f = copy(dumps, tmp_path, "callcenter-2026-11-25.dump.gz")
    digest = hashlib.sha256(f.read_bytes()).hexdigest()
    (tmp_path / (f.name + ".sha256")).write_text("%s  %s\n" % (digest, f.name))
    r = verify(ansible, f, checksum_file="auto")
    assert r.rc == 0 and r["sha256"] == digest, r
    (tmp_path / (f.name + ".sha256")).write_text("%s  %s\n" % ("0" * 64, f.name))
    r = verify(ansible, f, checksum_file="auto")
    assert r.rc != 0 and "sha256 mismatch" in r["msg"], r


def test_toc_mode_is_fast_but_misses_truncation(ansible, dumps, tmp_path):
    src = (dumps / "callcenter-2026-11-25.dump.gz").read_bytes()
    assert len(src) > 3 * 1024 * 1024  # more than the module's 1 MiB reads, or toc mode would see the end
    f = tmp_path / "cut.dump.gz"
    f.write_bytes(src[:int(len(src) * 0.9)])
    r = verify(ansible, f, mode="toc")
    assert r.rc == 0 and r["valid"] is True, r  # documented: toc mode does not read the body
    assert r["toc"]["database"] == "callcenter"
    assert verify(ansible, f).rc != 0


def test_metrics_file_written_atomically_and_check_mode_writes_nothing(ansible, dumps, tmp_path):
    metrics = tmp_path / "backup.prom"
    r = ansible.module("backup_verify", dict(path=str(dumps / "callcenter-2026-11-25.dump.gz"),
                                             metrics_file=str(metrics)), check=True)
    assert r.rc == 0 and r["changed"] is False and not metrics.exists(), r
    r = verify(ansible, dumps / "callcenter-2026-11-25.dump.gz", metrics_file=str(metrics))
    assert r.rc == 0 and r["changed"] is True and r["metrics_written"] is True
    text = metrics.read_text()
    assert 'callcenter_backup_verify_success{path="%s"} 1' % (dumps / "callcenter-2026-11-25.dump.gz") in text
    assert "callcenter_backup_age_seconds" in text and "callcenter_backup_size_bytes" in text
    assert [p.name for p in tmp_path.iterdir()] == ["backup.prom"]  # no temp file left


def test_failed_verification_still_writes_metrics(ansible, tmp_path):
    metrics = tmp_path / "backup.prom"
    (tmp_path / "b.dump.gz").write_bytes(b"")
    r = verify(ansible, tmp_path / "b.dump.gz", metrics_file=str(metrics), fail_on_invalid=False)
    assert r.rc == 0 and r["valid"] is False
    assert "callcenter_backup_verify_success" in metrics.read_text()
    assert "} 0" in metrics.read_text()


def test_random_single_byte_mutations_are_never_valid(dumps, tmp_path):
    """Property-style: many random one-byte changes of a valid backup, none reported valid in
    full mode. Runs the module_utils directly (hundreds of ansible runs would take minutes)."""
    from ansible_collections.callcenter.ops.plugins.module_utils import backup
    src = (dumps / "callcenter-2026-11-25.dump.gz").read_bytes()
    rng = random.Random(20261125)
    f = tmp_path / "m.dump.gz"
    for _mutation in range(int(os.environ.get("MUTATIONS", "120"))):
        # bytes 4-9 of the gzip header (mtime, flags, OS) carry no data: a change there is harmless
        offset = rng.randrange(10, len(src))
        f.write_bytes(flip(src, offset))
        res = backup.verify(str(f), pg_restore=os.path.join(PG_BIN, "pg_restore"), chunk_size=256 * 1024)
        assert not res["valid"], "mutation at byte %d of %d reported valid: %s" % (offset, len(src), res["checks"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.dump.gz"]


# --------------------------------------------------------------------------- fail closed, never hang


def data_start(raw):
    """Offset of the first data block of a -Fc -Z0 archive (block type 1, dump id, length, a row
    starting "1<TAB>"): everything before it is the real header and table of contents."""
    for i in range(len(raw) - 16):
        if raw[i] == 1 and raw[i + 1] == 0 and raw[i + 6] == 0 and raw[i + 11:i + 13] == b"1\t":
            return i
    raise AssertionError("no data block found in the dump")


def gzip_member(data, level=9):
    c = zlib.compressobj(level, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def make_bomb(raw_dump, dest, zeros_mb=2300):
    """A 2.3 MB gzip file that expands to ~2.3 GB: a real dump header and TOC, then zeros
    (gzip members of 100 MB of zeros each, so building it takes a second, not a minute)."""
    raw = raw_dump.read_bytes()
    zeros = gzip_member(b"\0" * (100 << 20))
    with open(dest, "wb") as out:
        out.write(gzip_member(raw[:data_start(raw)]))
        for _round in range(zeros_mb // 100):
            out.write(zeros)
    return dest


def no_traceback(r):
    assert "Traceback" not in r.output and "MODULE FAILURE" not in r.output, r


def test_fifo_is_refused_at_once_not_opened(ansible, tmp_path):
    fifo = tmp_path / "latest.dump.gz"
    os.mkfifo(fifo)
    # the old module blocked in open() forever: the CLI is given 60 s before the test fails
    r = ansible.module("backup_verify", dict(path=str(fifo), timeout=5), timeout=60)
    assert r.rc != 0 and r["valid"] is False, r
    assert "%s is a FIFO, not a regular file" % fifo in r["msg"], r
    assert r.duration < 30, r
    no_traceback(r)


def test_directory_whose_newest_match_is_a_fifo_verifies_the_newest_regular_file(ansible, dumps, tmp_path):
    good = copy(dumps, tmp_path, "callcenter-2026-11-25.dump.gz")
    os.utime(good, (1_700_000_000, 1_700_000_000))
    os.mkfifo(tmp_path / "callcenter-2026-11-26.dump.gz")
    r = verify(ansible, tmp_path, timeout=10)
    assert r.rc == 0 and r["path"] == str(good), r
    assert "callcenter-2026-11-26.dump.gz is a FIFO, not a regular file" in r.output, r  # a warning
    os.unlink(good)
    r = verify(ansible, tmp_path, timeout=10)
    assert r.rc != 0 and "no file matches *.dump.gz in %s (skipped: " % tmp_path in r["msg"], r
    assert "is a FIFO, not a regular file" in r["msg"], r


def test_file_system_errors_are_failed_checks_with_a_sentence(ansible, tmp_path):
    """A symlink loop through `ansible -m` (the other file-system errors run in-process in
    tests/unit/plugins/modules/test_backup_verify_args.py)."""
    path = tmp_path / "a.dump.gz"
    os.symlink(tmp_path / "b.dump.gz", path)
    os.symlink(path, tmp_path / "b.dump.gz")
    expected = "too many levels of symbolic links"
    r = verify(ansible, path, fail_on_invalid=False, metrics_file=str(tmp_path / "m.prom"))
    no_traceback(r)
    assert r.rc == 0 and r["valid"] is False, r
    assert any(expected in p for p in r["problems"]), r
    assert "callcenter_backup_verify_success" in (tmp_path / "m.prom").read_text()
    r = verify(ansible, path)
    no_traceback(r)
    assert r.rc != 0 and expected in r["msg"], r


@pytest.mark.parametrize("value, expected", [
    ("nan", "timeout must be a finite number of seconds"),  # the others: tests/unit/plugins/modules
])
def test_unusable_timeout_is_refused_with_a_sentence(ansible, dumps, value, expected):
    r = ansible.module("backup_verify", {"path": str(dumps / "raw.dump"), "timeout": value})
    no_traceback(r)
    assert r.rc != 0 and expected in r["msg"], r


def test_gzip_bomb_behind_a_real_header_is_rejected_quickly(ansible, dumps, tmp_path):
    bomb = make_bomb(dumps / "raw.dump", tmp_path / "bomb.dump.gz")
    assert bomb.stat().st_size < 3 * 1024 * 1024
    r = verify(ansible, bomb, timeout=120)
    no_traceback(r)
    assert r.rc != 0 and r["valid"] is False, r
    data = [c for c in r["checks"] if c["name"] == "data"][0]
    assert data["ok"] is False and "pg_restore could not read the archive" in data["message"], r
    assert r.duration < 60, r


def test_integrity_says_what_protected_the_data(ansible, dumps, tmp_path):
    r = verify(ansible, dumps / "callcenter-2026-11-25.dump.gz")
    assert r.rc == 0 and r["integrity"] == "gzip_crc" and "nothing protects" not in r.output, r
    r = verify(ansible, dumps / "pgz.dump")
    assert r.rc == 0 and r["integrity"] == "pg_dump_compression" and "nothing protects" not in r.output, r
    r = verify(ansible, dumps / "raw.dump")
    assert r.rc == 0 and r["valid"] is True and r["integrity"] == "none", r
    assert "[WARNING]" in r.output and "nothing protects its data blocks" in r.output, r
    raw = copy(dumps, tmp_path, "raw.dump")
    (tmp_path / "raw.dump.sha256").write_text("%s  raw.dump\n" % hashlib.sha256(raw.read_bytes()).hexdigest())
    r = verify(ansible, raw, checksum_file="auto")
    assert r.rc == 0 and r["integrity"] == "checksum_file" and "nothing protects" not in r.output, r
    r = verify(ansible, dumps / "callcenter-2026-11-25.dump.gz", mode="toc")
    assert r.rc == 0 and r["integrity"] == "none" and "nothing protects" not in r.output, r  # toc mode reads no data


def test_backup_name_with_a_newline_keeps_the_metrics_file_valid(ansible, dumps, tmp_path):
    f = copy(dumps, tmp_path, "callcenter-2026-11-25.dump.gz", 'night\nly "x".dump.gz')
    metrics = tmp_path / "m.prom"
    r = verify(ansible, f, metrics_file=str(metrics))
    assert r.rc == 0, r
    text = metrics.read_text()
    assert 'path="%s/night\\nly \\"x\\".dump.gz"} 1' % tmp_path in text, text
    assert all(line.startswith(("#", "callcenter_backup_")) for line in text.splitlines()), text


@pytest.fixture(scope="module")
def promtool():
    """promtool (Debian: prometheus); the test is skipped, not silently passed, without it."""
    tool = shutil.which("promtool")
    if not tool:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return tool


@pytest.mark.parametrize("name, valid", [("callcenter-2026-11-25.dump.gz", True), ('night\nly "x".dump.gz', True),
                                         ("cut.dump.gz", False)])
def test_metrics_file_passes_promtool_check_metrics(ansible, dumps, tmp_path, promtool, name, valid):
    f = copy(dumps, tmp_path, "callcenter-2026-11-25.dump.gz", name)
    if not valid:
        f.write_bytes(f.read_bytes()[:3000])
    metrics = tmp_path / "m.prom"
    r = verify(ansible, f, metrics_file=str(metrics), fail_on_invalid=False)
    assert r.rc == 0 and r["valid"] is valid, r
    p = subprocess.run([promtool, "check", "metrics"], input=metrics.read_text(), capture_output=True, text=True,
                       check=False)
    assert p.returncode == 0, p.stderr + p.stdout


def test_failed_verification_says_why_in_the_metrics(ansible, dumps, tmp_path):
    src = (dumps / "callcenter-2026-11-25.dump.gz").read_bytes()
    f = tmp_path / "cut.dump.gz"
    f.write_bytes(src[:len(src) // 2])
    metrics = tmp_path / "m.prom"
    r = verify(ansible, f, metrics_file=str(metrics), fail_on_invalid=False)
    assert r.rc == 0 and r["valid"] is False, r
    text = metrics.read_text()
    assert 'callcenter_backup_verify_success{path="%s"} 0' % f in text
    assert 'callcenter_backup_verify_failure{check="gzip",path="%s",reason="truncated after' % f in text, text


def test_timeout_covers_a_pg_restore_that_stops_reading(ansible, dumps, tmp_path):
    """A pg_restore that hangs without reading: the write to it blocks; the deadline still ends it."""
    fake = tmp_path / "pg_restore"
    fake.write_text("#!/bin/sh\nexec sleep 600\n")
    fake.chmod(0o755)
    r = ansible.module("backup_verify", dict(path=str(dumps / "raw.dump"), pg_restore_path=str(fake), timeout=3),
                       timeout=90)
    no_traceback(r)
    assert r.rc != 0 and "stopped by its timeout of 3.0s" in r["msg"], r
    assert r.duration < 30, r


def test_a_symlinked_backup_reports_the_size_of_the_backup_not_of_the_link(ansible, dumps, tmp_path):
    target = copy(dumps, tmp_path, "callcenter-2026-11-25.dump.gz")
    link = tmp_path / "latest.dump.gz"
    link.symlink_to(target)
    r = verify(ansible, link)
    assert r.rc == 0, r
    assert r["path"] == str(link) and r["size"] == target.stat().st_size
    assert "owner" not in r.result and "state" not in r.result  # a report on a backup, not a managed file
