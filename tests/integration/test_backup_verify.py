"""backup_verify on real dumps made by pg_dump from a real PostgreSQL 15 cluster."""

import gzip
import hashlib
import os
import random
import shutil
import subprocess

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


def test_empty_file(ansible, tmp_path):
    f = tmp_path / "empty.dump.gz"
    f.write_bytes(b"")
    r = verify(ansible, f)
    assert r.rc != 0 and "is empty (0 bytes)" in r["msg"], r


def test_zero_length_gzip(ansible, tmp_path):
    f = tmp_path / "zero.dump.gz"
    f.write_bytes(gzip.compress(b""))
    r = verify(ansible, f)
    assert r.rc != 0 and "empty gzip stream" in r["msg"], r


def test_gzip_of_plain_sql_is_refused(ansible, dumps):
    r = verify(ansible, dumps / "plain.sql.gz")
    assert r.rc != 0 and "plain-SQL dump inside gzip" in r["msg"], r


def test_plain_sql_is_refused(ansible, dumps):
    r = verify(ansible, dumps / "plain.sql")
    assert r.rc != 0 and "plain-SQL dump" in r["msg"] and "pg_dump -Fc" in r["msg"], r


def test_random_bytes(ansible, tmp_path):
    f = tmp_path / "noise.dump.gz"
    f.write_bytes(random.Random(1).randbytes(100000))
    r = verify(ansible, f)
    assert r.rc != 0 and "not a pg_dump archive" in r["msg"], r


def test_directory_without_matching_file(ansible, tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    r = verify(ansible, tmp_path)
    assert r.rc != 0 and "no file matches *.dump.gz in %s" % tmp_path in r["msg"], r


def test_path_that_does_not_exist(ansible, tmp_path):
    r = verify(ansible, tmp_path / "nope.dump.gz")
    assert r.rc != 0 and "does not exist" in r["msg"], r


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
        from ansible_collections.callcenter.ops.plugins.module_utils import backup as bk
        rd, wr = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(rd)
            import pwd
            nobody = pwd.getpwnam("nobody")
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            res = bk.verify(f, pg_restore=os.path.join(PG_BIN, "pg_restore"))
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


def test_bad_max_age(ansible, tmp_path):
    r = verify(ansible, tmp_path, max_age="yesterday")
    assert r.rc != 0 and "max_age must be a number with an optional unit" in r["msg"], r


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
    promtool = shutil.which("promtool")
    if promtool:
        p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False)
        assert p.returncode == 0, p.stderr + p.stdout


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
    from ansible_collections.callcenter.ops.plugins.module_utils import backup as bk
    src = (dumps / "callcenter-2026-11-25.dump.gz").read_bytes()
    rng = random.Random(20261125)
    f = tmp_path / "m.dump.gz"
    for _mutation in range(int(os.environ.get("MUTATIONS", "120"))):
        # bytes 4-9 of the gzip header (mtime, flags, OS) carry no data: a change there is harmless
        offset = rng.randrange(10, len(src))
        f.write_bytes(flip(src, offset))
        res = bk.verify(str(f), pg_restore=os.path.join(PG_BIN, "pg_restore"), chunk_size=256 * 1024)
        assert not res["valid"], "mutation at byte %d of %d reported valid: %s" % (offset, len(src), res["checks"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.dump.gz"]
