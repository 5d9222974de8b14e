"""Benchmark: backup_verify full mode against plain `gzip -dc` and the naive pipeline.

Makes (once, cached in .work/bench) real pg_dump -Fc -Z0 archives gzip'ed to >= 100 MB from a
PostgreSQL 15 cluster of the harness (BENCH_DUMPS=hex,transcripts, see DUMPS), then times in
one run, median of several, each dump:
  gzip -dc file > /dev/null                       the baseline (1.00x): just decompressing
  gzip -dc file | pg_restore -f /dev/null         the naive full check
  isal -d file | pg_restore -f /dev/null          the floor measured in FACTS.md
  rapidgzip -P 1/2 file | pg_restore              when rapidgzip is installed (optional)
  backup_verify (module_utils, isal and zlib)     what the module does
  ansible -m callcenter.ops.backup_verify         the whole ad-hoc call
and prints ratios, the verifier's peak RSS and the bytes it wrote to disk. Then the peak RSS of
the whole verification (verifier + both pg_restore children, VmRSS summed, /proc polled every
2 ms) on the normal dump and on a gzip bomb (2.3 MB of gzip: a real header and TOC, then 2.3 GB
of zeros), against the 64 MB target. Benchmarks print; they never fail on figures."""

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))
from conftest import BIN, PostgresCluster  # noqa: E402

PG_BIN = "/usr/lib/postgresql/15/bin"
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
CACHE = Path(os.environ.get("BENCH_DIR", REPO / ".work" / "bench"))
TARGET_MB = int(os.environ.get("BENCH_DUMP_MB", "100"))
RSS_TARGET_MB = 64

RUNNER = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
import zlib
import ccops_backup as backup
t = time.monotonic()
res = backup.verify(sys.argv[2], mode="full", pg_restore=sys.argv[4], lib=zlib if sys.argv[3] == "zlib" else None)
elapsed = time.monotonic() - t
status = open("/proc/self/status").read()
hwm = int([l for l in status.splitlines() if l.startswith("VmHWM")][0].split()[1])
io = dict(l.split(": ") for l in open("/proc/self/io").read().splitlines())
print(json.dumps(dict(valid=res["valid"], elapsed=elapsed, rss_kb=hwm, write_bytes=int(io["write_bytes"]),
                      decompressor=res["decompressor"], bytes=res["uncompressed_size"] or 0)))
"""


# Two dumps, both pg_dump -Fc -Z0 gzip'ed to >= TARGET_MB: "hex" (md5 text, ~1.9:1, the
# historical bench file) and "transcripts" (~7:1 like a real call-center dump, FACTS.md's
# 119 MB -> 836 MB): the second puts 4x more bytes through pg_restore per gzip'ed byte.
DUMPS = {
    "hex": ("bench.dump.gz", 18000,
            "md5(i::text) || md5((i*3)::text) || md5((i*7)::text)"),
    "transcripts": ("bench-transcripts.dump.gz", 31000,
                    "md5(i::text) || ' agent ' || (i % 97) || ': thank you for calling the call center, my name "
                    "is operator ' || (i % 13) || ', how can I help you today? caller: I would like to check "
                    "the status of my order, it was placed last week and has not arrived yet. ' || md5((i*3)::text)"),
}


def make_dump(kind="hex"):
    CACHE.mkdir(parents=True, exist_ok=True)
    name, rows_per_mb, expr = DUMPS[kind]
    gz = CACHE / name
    if gz.exists() and gz.stat().st_size >= TARGET_MB * 1024 * 1024:
        return gz
    print("making a >= %d MB gzip'ed pg_dump archive (%s; once, cached in %s)..." % (TARGET_MB, kind, CACHE),
          flush=True)
    pg = PostgresCluster().start()
    try:
        pg.psql("CREATE DATABASE bench")
        pg.psql("CREATE TABLE calls (id bigserial PRIMARY KEY, transcript text);"
                "INSERT INTO calls (transcript) SELECT %s FROM generate_series(1, %d) i;"
                % (expr, TARGET_MB * rows_per_mb), db="bench")
        raw = CACHE / (name[:-3] + ".tmp")
        subprocess.run([PG_BIN + "/pg_dump", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-Fc", "-Z0",
                        "-f", str(raw), "bench"], env=dict(os.environ, PGPASSWORD=pg.password), check=True)
        with open(gz, "wb") as out:
            subprocess.run(["gzip", "-6", "-c", str(raw)], stdout=out, check=True)
        raw.unlink()
    finally:
        pg.stop()
    return gz


def rapidgzip_cli():
    """rapidgzip's command line if installed (optional: PyPI rapidgzip, not a requirement)."""
    found = shutil.which("rapidgzip") or os.environ.get("BENCH_RAPIDGZIP")
    local = Path(sys.executable).parent / "rapidgzip"
    return found or (str(local) if local.exists() else None)


def timed(cmd, shell=False, env=None):
    t = time.monotonic()
    p = subprocess.run(cmd, shell=shell, env=env, capture_output=True, text=True, check=False)
    if p.returncode != 0:
        raise SystemExit("failed: %s\n%s%s" % (cmd, p.stdout[-2000:], p.stderr[-2000:]))
    return time.monotonic() - t, p.stdout


def host_copy():
    """The reader as the backup_verify role installs it on a host: ccops_*.py in one directory."""
    d = Path(tempfile.mkdtemp(prefix="ccops-bench-lib-"))
    import yaml
    names = yaml.safe_load((REPO / "roles" / "host_files" / "vars" / "main.yml").read_text())["host_files_sets"]
    for name in names["backup_verify"]:
        shutil.copy(REPO / "plugins" / "module_utils" / ("%s.py" % name), d / ("ccops_%s.py" % name))
    shutil.copy(REPO / "roles" / "backup_verify" / "files" / "callcenter-backup-verify", d)
    return d


def make_bomb(dest):
    """A real -Fc -Z0 header and TOC (a tiny dump made once), then 2.3 GB of zeros as gzip."""
    if dest.exists():
        return dest
    pg = PostgresCluster().start()
    try:
        pg.psql("CREATE DATABASE bomb")
        pg.psql("CREATE TABLE calls (id serial PRIMARY KEY, transcript text);"
                "INSERT INTO calls (transcript) SELECT md5(i::text) FROM generate_series(1, 100) i;", db="bomb")
        raw = subprocess.run([PG_BIN + "/pg_dump", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-Fc",
                              "-Z0", "bomb"], env=dict(os.environ, PGPASSWORD=pg.password), check=True,
                             capture_output=True).stdout
    finally:
        pg.stop()
    start = next(i for i in range(len(raw) - 16)
                 if raw[i] == 1 and raw[i + 1] == 0 and raw[i + 6] == 0 and raw[i + 11:i + 13] == b"1\t")

    def member(data):
        c = zlib.compressobj(9, zlib.DEFLATED, 31)
        return c.compress(data) + c.flush()

    zeros = member(b"\0" * (100 << 20))
    with open(dest, "wb") as out:
        out.write(member(raw[:start]))
        for _round in range(23):
            out.write(zeros)
    return dest


def _children(pid):
    found = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as fh:
                found += [int(x) for x in fh.read().split()]
    except OSError:
        pass
    return found


def _rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_peak(cmd):
    """Run ``cmd``; (peak of the summed VmRSS of it and all its descendants in MB, seconds, rc)."""
    started = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while p.poll() is None:
        todo, total = [p.pid], 0
        while todo:
            pid = todo.pop()
            total += _rss_kb(pid)
            todo += _children(pid)
        peak = max(peak, total)
        time.sleep(0.002)
    return peak / 1024.0, time.monotonic() - started, p.returncode


def memory_figures(lib, gz, pg_restore):
    bomb = make_bomb(CACHE / "bomb.dump.gz")
    script = str(lib / "callcenter-backup-verify")
    print("peak RSS of the whole verification (verifier + pg_restore children, summed), target <= %d MB:"
          % RSS_TARGET_MB)
    for label, path in (("normal dump (%s)" % gz.name, gz), ("gzip bomb (%.1f MB -> 2.3 GB)" % (
            bomb.stat().st_size / 1048576.0), bomb)):
        for python, kind in ((sys.executable, "venv python"), ("/usr/bin/python3", "system python3")):
            if not os.path.exists(python):
                continue
            peak, secs, rc = tree_peak([python, script, str(path), "--pg-restore", pg_restore])
            print("  %-34s %-15s %6.1f MB %s  %6.2f s  exit %d" % (
                label, kind, peak, "ok  " if peak <= RSS_TARGET_MB else "OVER", secs, rc))


def bench_dump(gz, pg_restore, mu, env):
    """Every case on one dump, interleaved run by run; prints medians and ratios to gzip -dc
    measured in the same run."""
    size = gz.stat().st_size
    cases = {
        "gzip -dc > /dev/null (baseline)": lambda: timed("gzip -dc %s > /dev/null" % gz, shell=True)[0],
        "gzip -dc | pg_restore -f /dev/null (naive)": lambda: timed(
            ["bash", "-c", "set -o pipefail; gzip -dc %s | %s -f /dev/null" % (gz, pg_restore)])[0],
        "isal -d | pg_restore -f /dev/null (floor, FACTS.md)": lambda: timed(
            ["bash", "-c", "set -o pipefail; %s -m isal.igzip -d -c %s | %s -f /dev/null" % (
                sys.executable, gz, pg_restore)])[0],
    }
    rapid = rapidgzip_cli()
    if rapid:
        for par in (1, 2):
            cases["rapidgzip -P %d | pg_restore -f /dev/null" % par] = (lambda par=par: timed(
                ["bash", "-c", "set -o pipefail; %s -d -c -P %d %s | %s -f /dev/null" % (
                    rapid, par, gz, pg_restore)])[0])
    runner_out = {}

    def runner(kind):
        def run():
            elapsed, out = timed([sys.executable, "-c", RUNNER, mu, str(gz), kind, pg_restore])
            runner_out[kind] = json.loads(out)
            assert runner_out[kind]["valid"], runner_out[kind]
            return elapsed
        return run

    cases["backup_verify full, isal (module_utils)"] = runner("isal")
    cases["backup_verify full, zlib fallback (module_utils)"] = runner("zlib")
    cases["ansible -m callcenter.ops.backup_verify (whole ad-hoc call)"] = lambda: timed(
        [str(BIN / "ansible"), "localhost", "-m", "callcenter.ops.backup_verify", "-a", "path=%s" % gz], env=env)[0]
    cases["ansible -m ping (Ansible's fixed cost, for reference)"] = lambda: timed(
        [str(BIN / "ansible"), "localhost", "-m", "ansible.builtin.ping"], env=env)[0]
    samples = dict((k, []) for k in cases)
    for _run in range(RUNS):
        for name, fn in cases.items():
            samples[name].append(fn())
    med = dict((k, statistics.median(v)) for k, v in samples.items())
    floor = med["gzip -dc > /dev/null (baseline)"]
    inside = runner_out["isal"]["bytes"] / 1048576.0
    print("backup_verify benchmark: %s, %.1f MB gzip'ed, %.1f MB inside, %d runs each, medians (the machine may be "
          "shared: compare ratios, not seconds)" % (gz.name, size / 1048576.0, inside, RUNS))
    for name, v in med.items():
        print("  %-62s %7.2f s  %5.2fx gzip -dc" % (name, v, v / floor))
    if not rapid:
        print("  (rapidgzip not installed: pip install rapidgzip, or BENCH_RAPIDGZIP=/path/to/rapidgzip)")
    adhoc = med["ansible -m callcenter.ops.backup_verify (whole ad-hoc call)"]
    ping = med["ansible -m ping (Ansible's fixed cost, for reference)"]
    print("  ad-hoc call minus Ansible's fixed cost: %.2f s = %.2fx gzip -dc" % (adhoc - ping, (adhoc - ping) / floor))
    print("  verifier peak RSS: isal %.1f MB, zlib %.1f MB (target < 100 MB); pg_restore children not included"
          % (runner_out["isal"]["rss_kb"] / 1024.0, runner_out["zlib"]["rss_kb"] / 1024.0))
    print("  bytes the verifier wrote to disk: %d" % runner_out["isal"]["write_bytes"])


def main():
    kinds = os.environ.get("BENCH_DUMPS", "hex,transcripts").split(",")
    dumps = [make_dump(kind) for kind in kinds]
    pg_restore = PG_BIN + "/pg_restore"
    lib = host_copy()
    env = dict(os.environ, ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_HOME=tempfile.mkdtemp(prefix="ccops-bench-home-"), PATH="%s:%s" % (BIN, os.environ["PATH"]))
    for gz in dumps:
        bench_dump(gz, pg_restore, str(lib), env)
    print("  largest child process of the whole bench (RUSAGE_CHILDREN: gzip, rapidgzip, pg_restore, ...): %.1f MB"
          % (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0))
    memory_figures(lib, dumps[0], pg_restore)
    shutil.rmtree(str(lib), ignore_errors=True)


if __name__ == "__main__":
    main()
