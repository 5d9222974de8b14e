"""backup_verify on real dumps made by pg_dump from a real PostgreSQL 15 cluster.

Every run goes through the installed collection on the command line: the valid nightly dump
through ``ansible -m``, every other case as a task of ONE ansible-playbook run (tests/modbatch.py:
one Ansible start, a module execution per case), each on files of its own, built by the
``batch`` fixture; the tests below read what each run returned."""

import gzip
import hashlib
import os
import random
import shutil
import subprocess
import zlib

import pytest

from modbatch import case, run_batch

PG_BIN = "/usr/lib/postgresql/15/bin"  # pg_restore used directly by the property test


def copy(dumps, tmp_path, name, new=None):
    dst = tmp_path / (new or name)
    shutil.copy(dumps / name, dst)
    return dst


def verify(ansible, path, **args):
    return ansible.module("backup_verify", dict(path=str(path), **args))


def verify_case(path, check=False, **args):
    return case("backup_verify", dict(path=str(path), **args), check=check)


@pytest.fixture(scope="module")
def batch(ansible, dumps, tmp_path_factory):
    """Every backup_verify case but the first, in one ansible-playbook run. ``dirs[label]`` is
    the folder of the case's own files."""
    root = tmp_path_factory.mktemp("backup-verify")
    dirs, cases = {}, {}
    good_src = (dumps / "callcenter-2026-11-25.dump.gz").read_bytes()

    def folder(label):
        dirs[label] = root / ("case%d" % len(dirs))
        dirs[label].mkdir()
        return dirs[label]

    def add(label, path, check=False, **args):
        cases[label] = verify_case(path, check=check, **args)

    for name in ("raw.dump", "pgz.dump"):
        add("misleading extension " + name, copy(dumps, folder("misleading extension " + name), name, new=name + ".gz"))

    d = folder("newest")
    old = copy(dumps, d, "callcenter-2026-11-25.dump.gz", "callcenter-2026-11-24.dump.gz")
    os.utime(old, (1_700_000_000, 1_700_000_000))
    copy(dumps, d, "callcenter-2026-11-25.dump.gz")
    (d / "notes.txt").write_text("not a backup")
    add("newest", d)

    for fraction in (0.1, 0.5, 0.9, 0.999):
        f = folder("truncated %s" % fraction) / "cut.dump.gz"
        f.write_bytes(good_src[:int(len(good_src) * fraction)])
        add("truncated %s" % fraction, f)

    f = folder("truncated raw") / "cut.dump"
    raw_src = (dumps / "raw.dump").read_bytes()
    f.write_bytes(raw_src[:len(raw_src) // 2])
    add("truncated raw", f)

    for where, offset in (("toc", 40), ("middle", len(good_src) // 2), ("trailer", len(good_src) - 3)):
        f = folder("flipped " + where) / "flipped.dump.gz"
        f.write_bytes(flip(good_src, offset))
        add("flipped " + where, f)

    raw = bytearray(raw_src)
    pos = raw.find(b"hello operator", len(raw) // 2)
    raw[pos] ^= 0x01
    f = folder("bitrot") / "bitrot.dump.gz"
    good = gzip.compress(raw_src, mtime=0)
    bad = gzip.compress(bytes(raw), mtime=0)
    f.write_bytes(bad[:-8] + good[-8:])  # body of the damaged data, trailer of the original
    add("bitrot", f)

    add("gzip of plain SQL", dumps / "plain.sql.gz")
    add("plain SQL", dumps / "plain.sql")
    add("pg_restore missing", dumps / "callcenter-2026-11-25.dump.gz",
        pg_restore_path=str(folder("pg_restore missing") / "pg_restore"))

    f = copy(dumps, folder("old and small"), "callcenter-2026-11-25.dump.gz")
    os.utime(f, (1_700_000_000, 1_700_000_000))
    add("old and small", f, max_age="26h", min_size="1G")

    for label, right in (("checksum right", True), ("checksum wrong", False)):
        f = copy(dumps, folder(label), "callcenter-2026-11-25.dump.gz")
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        (f.parent / (f.name + ".sha256")).write_text("%s  %s\n" % (digest if right else "0" * 64, f.name))
        add(label, f, checksum_file="auto")

    assert len(good_src) > 3 * 1024 * 1024  # more than the module's 1 MiB reads, or toc mode would see the end
    f = folder("toc mode, cut") / "cut.dump.gz"
    f.write_bytes(good_src[:int(len(good_src) * 0.9)])
    add("toc mode, cut", f, mode="toc")
    add("full mode, cut", f)

    add("metrics, check mode", dumps / "callcenter-2026-11-25.dump.gz", check=True,
        metrics_file=str(folder("metrics, check mode") / "backup.prom"))
    add("metrics", dumps / "callcenter-2026-11-25.dump.gz", metrics_file=str(folder("metrics") / "backup.prom"))

    d = folder("empty file, metrics")
    (d / "b.dump.gz").write_bytes(b"")
    add("empty file, metrics", d / "b.dump.gz", metrics_file=str(d / "backup.prom"), fail_on_invalid=False)

    fifo = folder("fifo") / "latest.dump.gz"
    os.mkfifo(fifo)
    add("fifo", fifo, timeout=5)

    d = folder("newest is a fifo")
    good = copy(dumps, d, "callcenter-2026-11-25.dump.gz")
    os.utime(good, (1_700_000_000, 1_700_000_000))
    os.mkfifo(d / "callcenter-2026-11-26.dump.gz")
    add("newest is a fifo", d, timeout=10)
    d = folder("only a fifo")
    os.mkfifo(d / "callcenter-2026-11-26.dump.gz")
    add("only a fifo", d, timeout=10)

    d = folder("symlink loop")
    path = d / "a.dump.gz"
    os.symlink(d / "b.dump.gz", path)
    os.symlink(path, d / "b.dump.gz")
    add("symlink loop, metrics", path, fail_on_invalid=False, metrics_file=str(d / "m.prom"))
    add("symlink loop", path)

    cases["timeout nan"] = case("backup_verify", {"path": str(dumps / "raw.dump"), "timeout": "nan"})

    bomb = make_bomb(dumps / "raw.dump", folder("bomb") / "bomb.dump.gz")
    add("bomb", bomb, timeout=120)

    add("integrity gzip", dumps / "callcenter-2026-11-25.dump.gz")
    add("integrity pg_dump", dumps / "pgz.dump")
    add("integrity none", dumps / "raw.dump")
    raw_copy = copy(dumps, folder("integrity checksum"), "raw.dump")
    (raw_copy.parent / "raw.dump.sha256").write_text("%s  raw.dump\n" % hashlib.sha256(raw_copy.read_bytes()).hexdigest())
    add("integrity checksum", raw_copy, checksum_file="auto")
    add("integrity toc mode", dumps / "callcenter-2026-11-25.dump.gz", mode="toc")

    for i, (name, valid) in enumerate(METRICS_NAMES):
        d = folder("metrics name %d" % i)
        f = copy(dumps, d, "callcenter-2026-11-25.dump.gz", name)
        if not valid:
            f.write_bytes(f.read_bytes()[:3000])
        add("metrics name %d" % i, f, metrics_file=str(d / "m.prom"), fail_on_invalid=False)

    d = folder("newline name")
    f = copy(dumps, d, "callcenter-2026-11-25.dump.gz", 'night\nly "x".dump.gz')
    add("newline name", f, metrics_file=str(d / "m.prom"))

    f = folder("half, metrics") / "cut.dump.gz"
    f.write_bytes(good_src[:len(good_src) // 2])
    add("half, metrics", f, metrics_file=str(f.parent / "m.prom"), fail_on_invalid=False)

    d = folder("hung pg_restore")
    fake = d / "pg_restore"
    fake.write_text("#!/bin/sh\nexec sleep 600\n")
    fake.chmod(0o755)
    add("hung pg_restore", dumps / "raw.dump", pg_restore_path=str(fake), timeout=3)

    d = folder("symlinked backup")
    target = copy(dumps, d, "callcenter-2026-11-25.dump.gz")
    (d / "latest.dump.gz").symlink_to(target)
    add("symlinked backup", d / "latest.dump.gz")

    playbook, runs = run_batch(ansible, cases)
    return runs, dirs, playbook


METRICS_NAMES = [("callcenter-2026-11-25.dump.gz", True), ('night\nly "x".dump.gz', True), ("cut.dump.gz", False)]


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


def test_uncompressed_custom_dump_found_by_magic_not_name(batch):
    runs = batch[0]
    for name in ("raw.dump", "pgz.dump"):  # named *.gz: a misleading extension
        r = runs["misleading extension " + name]
        assert r.rc == 0, r
        assert r["compressed"] is False and r["valid"] is True


def test_newest_file_in_directory_is_verified(batch):
    runs, dirs, _unused = batch
    r = runs["newest"]
    assert r.rc == 0, r
    assert r["path"] == str(dirs["newest"] / "callcenter-2026-11-25.dump.gz")


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
def test_truncated_gzip_backup_is_rejected(batch, fraction):
    r = batch[0]["truncated %s" % fraction]
    assert r.rc != 0 and r["valid"] is False
    assert "truncated after" in r["msg"], r


def test_truncated_uncompressed_dump_is_rejected_though_toc_reads(batch):
    r = batch[0]["truncated raw"]
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
def test_flipped_byte_in_gzip_backup_is_rejected(batch, where):
    r = batch[0]["flipped " + where]
    assert r.rc != 0 and r["valid"] is False, r
    if where == "trailer":
        assert "gzip length check failed" in r["msg"] or "CRC" in r["msg"], r


def test_flipped_byte_inside_uncompressed_data_caught_only_by_crc(batch):
    """In a -Z0 dump, pg_restore copies table data through unchecked: only gzip's CRC sees it."""
    r = batch[0]["bitrot"]
    assert r.rc != 0
    assert "gzip CRC mismatch" in r["msg"], r


def test_gzip_of_plain_sql_is_refused(batch):
    r = batch[0]["gzip of plain SQL"]
    assert r.rc != 0 and "plain-SQL dump inside gzip" in r["msg"], r


def test_plain_sql_is_refused(batch):
    r = batch[0]["plain SQL"]
    assert r.rc != 0 and "plain-SQL dump" in r["msg"] and "pg_dump -Fc" in r["msg"], r


def test_pg_restore_missing(batch):
    r = batch[0]["pg_restore missing"]
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


def test_max_age_and_min_size(batch):
    r = batch[0]["old and small"]
    assert r.rc != 0
    assert "older than max_age" in r["msg"] and "smaller than min_size" in r["msg"], r


def test_checksum_sidecar(batch):
    runs, dirs, _unused = batch
    f = dirs["checksum right"] / "callcenter-2026-11-25.dump.gz"
    digest = hashlib.sha256(f.read_bytes()).hexdigest()
    r = runs["checksum right"]
    assert r.rc == 0 and r["sha256"] == digest, r
    r = runs["checksum wrong"]
    assert r.rc != 0 and "sha256 mismatch" in r["msg"], r


def test_toc_mode_is_fast_but_misses_truncation(batch):
    r = batch[0]["toc mode, cut"]  # the batch asserts the dump is more than 3 MiB (the module reads 1 MiB)
    assert r.rc == 0 and r["valid"] is True, r  # documented: toc mode does not read the body
    assert r["toc"]["database"] == "callcenter"
    assert batch[0]["full mode, cut"].rc != 0


def test_metrics_file_written_atomically_and_check_mode_writes_nothing(batch, dumps):
    runs, dirs, _unused = batch
    r = runs["metrics, check mode"]
    assert r.rc == 0 and r["changed"] is False and list(dirs["metrics, check mode"].iterdir()) == [], r
    r = runs["metrics"]
    metrics = dirs["metrics"] / "backup.prom"
    assert r.rc == 0 and r["changed"] is True and r["metrics_written"] is True
    text = metrics.read_text()
    assert 'callcenter_backup_verify_success{path="%s"} 1' % (dumps / "callcenter-2026-11-25.dump.gz") in text
    assert "callcenter_backup_age_seconds" in text and "callcenter_backup_size_bytes" in text
    assert [p.name for p in dirs["metrics"].iterdir()] == ["backup.prom"]  # no temp file left


def test_failed_verification_still_writes_metrics(batch):
    runs, dirs, _unused = batch
    metrics = dirs["empty file, metrics"] / "backup.prom"
    r = runs["empty file, metrics"]
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


def test_fifo_is_refused_at_once_not_opened(batch):
    runs, dirs, _unused = batch
    fifo = dirs["fifo"] / "latest.dump.gz"
    # the old module blocked in open() forever
    r = runs["fifo"]
    assert r.rc != 0 and r["valid"] is False, r
    assert "%s is a FIFO, not a regular file" % fifo in r["msg"], r
    assert r.duration < 30, r
    no_traceback(r)


def test_directory_whose_newest_match_is_a_fifo_verifies_the_newest_regular_file(batch):
    runs, dirs, _unused = batch
    r = runs["newest is a fifo"]
    assert r.rc == 0 and r["path"] == str(dirs["newest is a fifo"] / "callcenter-2026-11-25.dump.gz"), r
    assert "callcenter-2026-11-26.dump.gz is a FIFO, not a regular file" in r.own_output, r  # a warning
    assert "callcenter-2026-11-26.dump.gz is a FIFO, not a regular file" in r.output, r  # shown as one
    r = runs["only a fifo"]  # the same folder without the regular file
    assert r.rc != 0 and "no file matches *.dump.gz in %s (skipped: " % dirs["only a fifo"] in r["msg"], r
    assert "is a FIFO, not a regular file" in r["msg"], r


def test_file_system_errors_are_failed_checks_with_a_sentence(batch):
    """A symlink loop through the CLI (the other file-system errors run in-process in
    tests/unit/plugins/modules/test_backup_verify_args.py)."""
    runs, dirs, _unused = batch
    expected = "too many levels of symbolic links"
    r = runs["symlink loop, metrics"]
    no_traceback(r)
    assert r.rc == 0 and r["valid"] is False, r
    assert any(expected in p for p in r["problems"]), r
    assert "callcenter_backup_verify_success" in (dirs["symlink loop"] / "m.prom").read_text()
    r = runs["symlink loop"]
    assert r.rc != 0 and expected in r["msg"], r


@pytest.mark.parametrize("value, expected", [
    ("nan", "timeout must be a finite number of seconds"),  # the others: tests/unit/plugins/modules
])
def test_unusable_timeout_is_refused_with_a_sentence(batch, value, expected):
    r = batch[0]["timeout " + value]
    no_traceback(r)
    assert r.rc != 0 and expected in r["msg"], r


def test_gzip_bomb_behind_a_real_header_is_rejected_quickly(batch):
    bomb = batch[1]["bomb"] / "bomb.dump.gz"
    assert bomb.stat().st_size < 3 * 1024 * 1024
    r = batch[0]["bomb"]
    no_traceback(r)
    assert r.rc != 0 and r["valid"] is False, r
    data = [c for c in r["checks"] if c["name"] == "data"][0]
    assert data["ok"] is False and "pg_restore could not read the archive" in data["message"], r
    assert r.duration < 60, r


def test_integrity_says_what_protected_the_data(batch):
    runs = batch[0]
    r = runs["integrity gzip"]
    assert r.rc == 0 and r["integrity"] == "gzip_crc" and "nothing protects" not in r.own_output, r
    r = runs["integrity pg_dump"]
    assert r.rc == 0 and r["integrity"] == "pg_dump_compression" and "nothing protects" not in r.own_output, r
    r = runs["integrity none"]
    assert r.rc == 0 and r["valid"] is True and r["integrity"] == "none", r
    assert "[WARNING]" in r.own_output and "nothing protects its data blocks" in r.own_output, r
    assert "nothing protects its data blocks" in r.output, r  # and the playbook showed it
    r = runs["integrity checksum"]
    assert r.rc == 0 and r["integrity"] == "checksum_file" and "nothing protects" not in r.own_output, r
    r = runs["integrity toc mode"]
    assert r.rc == 0 and r["integrity"] == "none" and "nothing protects" not in r.own_output, r  # toc mode reads no data


def test_backup_name_with_a_newline_keeps_the_metrics_file_valid(batch):
    runs, dirs, _unused = batch
    r = runs["newline name"]
    assert r.rc == 0, r
    text = (dirs["newline name"] / "m.prom").read_text()
    assert 'path="%s/night\\nly \\"x\\".dump.gz"} 1' % dirs["newline name"] in text, text
    assert all(line.startswith(("#", "callcenter_backup_")) for line in text.splitlines()), text


@pytest.mark.parametrize("name, valid", [("callcenter-2026-11-25.dump.gz", True), ('night\nly "x".dump.gz', True),
                                         ("cut.dump.gz", False)])
def test_metrics_file_passes_promtool_check_metrics(batch, promtool, name, valid):
    runs, dirs, _unused = batch
    i = METRICS_NAMES.index((name, valid))
    r = runs["metrics name %d" % i]
    assert r.rc == 0 and r["valid"] is valid, r
    metrics = dirs["metrics name %d" % i] / "m.prom"
    p = promtool(["check", "metrics"], metrics.read_text())
    assert p.returncode == 0, p.stderr + p.stdout


def test_failed_verification_says_why_in_the_metrics(batch):
    runs, dirs, _unused = batch
    f = dirs["half, metrics"] / "cut.dump.gz"
    r = runs["half, metrics"]
    assert r.rc == 0 and r["valid"] is False, r
    text = (dirs["half, metrics"] / "m.prom").read_text()
    assert 'callcenter_backup_verify_success{path="%s"} 0' % f in text
    assert 'callcenter_backup_verify_failure{check="gzip",path="%s",reason="truncated after' % f in text, text


def test_timeout_covers_a_pg_restore_that_stops_reading(batch):
    """A pg_restore that hangs without reading: the write to it blocks; the deadline still ends it."""
    r = batch[0]["hung pg_restore"]
    no_traceback(r)
    assert r.rc != 0 and "stopped by its timeout of 3.0s" in r["msg"], r
    assert r.duration < 30, r


def test_a_symlinked_backup_reports_the_size_of_the_backup_not_of_the_link(batch):
    runs, dirs, _unused = batch
    target = dirs["symlinked backup"] / "callcenter-2026-11-25.dump.gz"
    r = runs["symlinked backup"]
    assert r.rc == 0, r
    assert r["path"] == str(dirs["symlinked backup"] / "latest.dump.gz") and r["size"] == target.stat().st_size
    assert "owner" not in r.result and "state" not in r.result  # a report on a backup, not a managed file
