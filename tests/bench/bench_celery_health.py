"""Benchmark: the ad-hoc celery_health call against the celery CLI an operator would use.

One run, one stack (real redis-server, 2 prefork workers of the sample app), each command
several times, medians compared. Prints ratios; asserts nothing (machines differ).
Run through scripts/bench.sh, which builds and installs the collection first.

It also times the libraries the module cannot do without (redis-py, celery with its control API,
kombu's Redis transport: what any ping through Celery imports) against ansible's module_utils
alone: the difference added to ``ansible -m ping`` is the floor of the module / ping ratio."""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from conftest import BIN, SAMPLE_APP, CeleryCluster, RedisServer  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "9"))
# What celery_health imports that ansible.builtin.ping does not, and no ping through Celery avoids.
LIBRARIES = ("import ansible.module_utils.basic, redis; from celery import Celery; "
             "import celery.app.control, kombu.transport.redis")


def timed(cmd, env, cwd=None):
    start = time.monotonic()
    p = subprocess.run(cmd, env=env, cwd=cwd, check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - start
    if p.returncode != 0:
        raise SystemExit("benchmark command failed: %s\n%s%s" % (" ".join(cmd), p.stdout, p.stderr))
    return elapsed


def main():
    work = Path(tempfile.mkdtemp(prefix="ccops-bench-"))
    redis = RedisServer(work / "redis", password="bench-Pa55").start()
    cluster = CeleryCluster(redis.url, work / "celery")
    try:
        cluster.start_workers(["w1", "w2"])
        env = dict(os.environ, CELERY_BROKER_URL=redis.url, PYTHONPATH=str(SAMPLE_APP),
                   ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_LOCALHOST_WARNING="false",
                   ANSIBLE_HOME=str(work / "ansible-home"), PATH="%s:%s" % (BIN, os.environ["PATH"]))
        commands = {
            "celery CLI (celery -A app inspect ping)": (
                [str(BIN / "celery"), "-A", "callcenter_sample", "inspect", "ping"], str(SAMPLE_APP)),
            "ansible -m callcenter.ops.celery_health expected_workers=2": (
                [str(BIN / "ansible"), "localhost", "-m", "callcenter.ops.celery_health", "-a",
                 "expected_workers=2 queues=quality,stats"], None),
            "ansible -m ping (Ansible's own floor)": (
                [str(BIN / "ansible"), "localhost", "-m", "ansible.builtin.ping"], None),
            "python: import ansible.module_utils.basic": (
                [sys.executable, "-c", "import ansible.module_utils.basic"], None),
            "python: the same + redis, celery, its control API, kombu redis": (
                [sys.executable, "-c", LIBRARIES], None),
        }
        samples = dict((name, []) for name in commands)
        for name, (cmd, cwd) in commands.items():  # warm-up: page cache, .pyc files
            timed(cmd, env, cwd)
        for _run in range(RUNS):
            for name, (cmd, cwd) in commands.items():  # interleaved, so drift hits all alike
                samples[name].append(timed(cmd, env, cwd))
        med = dict((name, statistics.median(v)) for name, v in samples.items())
        cli, mod, floor, basic, libs = list(med.values())
        print("celery_health benchmark: %d runs each, 2 workers up, medians" % RUNS)
        for name, v in med.items():
            print("  %-66s %6.3f s  (min %.3f, max %.3f)" % (name, v, min(samples[name]), max(samples[name])))
        print("  ratio module / celery CLI        : %.2fx  (target <= 0.60x)" % (mod / cli))
        print("  ratio module / ansible -m ping   : %.2fx  (target <= 1.20x; what the module adds on top of Ansible)"
              % (mod / floor))
        print("  ratio ansible -m ping / celery CLI: %.2fx  (Ansible's floor on this machine)" % (floor / cli))
        print("  libraries alone                  : +%.3f s, so module / ping >= %.2fx  (the imports any Celery "
              "ping needs, before any work)" % (libs - basic, (floor + libs - basic) / floor))
        # Each round runs every command back to back: its own module / ping ratio is less moved by
        # the load of a shared machine than the ratio of two medians taken over the whole run.
        names = list(commands)
        paired = statistics.median(m / f for m, f in zip(samples[names[1]], samples[names[2]]))
        print("  module / ping, median of rounds  : %.2fx  (each round's own ratio)" % paired)
    finally:
        cluster.stop()
        redis.stop()
        import shutil
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
