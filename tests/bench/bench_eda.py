"""Benchmark: an alert firing in Alertmanager -> the rulebook's diagnosis in Telegram.

One run, one real stack (tests/harness.py with Event-Driven Ansible, tests/eda.py): Prometheus,
Alertmanager (group_wait 2 s, the demo's timings), ansible-rulebook with the collection's
rulebook and event source, Celery, Redis, PostgreSQL, Flower, the Telegram stand-in.

Each run POSTs a CeleryWorkerDown for a worker that does not exist (so the ping waits its
timeout, as for a dead one) with its own instance label (its own Alertmanager group), waits
until Alertmanager lists it as firing, then until the diagnosis message arrives. Target: 15 s.
Also the rulebook's memory at rest (ansible-rulebook runs its Drools engine in a JVM inside
the same process, through jpy: the process's RSS is Python + JVM)."""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import eda  # noqa: E402
from harness import Stack  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
TARGET = 15.0


def tree_rss_kib(pid):
    """RSS of ``pid`` and its children (a playbook run in flight would count too: measure at rest)."""
    total = eda.rss_kib(pid)
    for child in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(child.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                total += eda.rss_kib(int(child.parent.name))
        except (OSError, ValueError, IndexError):
            pass
    return total


def main():
    root = Path(tempfile.mkdtemp(prefix="ccops-bench-eda-"))
    os.chmod(str(root), 0o711)
    stack = Stack(root / "stack", host="bench")
    eda.enable(stack)
    try:
        started = time.monotonic()
        stack.up()
        print("stack with ansible-rulebook up in %.0f s (cold start %s s)"
              % (time.monotonic() - started, stack.state["cold_start_seconds"]))
        time.sleep(10)
        pid = stack.state["pids"]["rulebook"]["pid"]
        rest = tree_rss_kib(pid)
        print("ansible-rulebook (Python + JVM) RSS at rest: %.0f MiB" % (rest / 1024.0))
        seconds = []
        for i in range(RUNS):
            mark = len(stack.telegram_messages())
            node = "w9x%d@bench" % i
            stack_am = eda.AlertmanagerClient(stack)
            stack_am.post(node, "bench-%d-%d" % (os.getpid(), i))
            firing = time.monotonic()
            msg = eda.wait_message(stack, lambda t, n=node: t.startswith("Diagnosis: Celery worker %s" % n), 120,
                                   since=mark, what="diagnosis of %s" % node)
            took = time.monotonic() - firing
            seconds.append(took)
            print("run %d: firing in Alertmanager -> diagnosis in Telegram %.1f s" % (i + 1, took))
            assert "does NOT answer ping" in msg["text"]
        busy = tree_rss_kib(pid)
        med = statistics.median(seconds)
        floor = []
        for _i in range(3):   # Ansible's own floor on this machine now, in the same run
            t = time.monotonic()
            subprocess.run([str(eda.EDA_VENV / "bin" / "ansible"), "localhost", "-m", "ping"], env=stack.env,
                           capture_output=True, check=False, stdin=subprocess.DEVNULL)
            floor.append(time.monotonic() - t)
        print("baseline now: ansible localhost -m ping %.1f s; the diagnosis took %.0fx that (load average %s)"
              % (statistics.median(floor), med / statistics.median(floor), os.getloadavg()[0]))
        print("alert -> diagnosis: median %.1f s, max %.1f s over %d runs; target %.0f s: ratio %.2f (%s)"
              % (med, max(seconds), RUNS, TARGET, med / TARGET, "met" if med <= TARGET else "NOT met"))
        print("  (includes Alertmanager's group_wait %s; the machine is shared, so figures vary)"
              % stack.timings["group_wait"])
        print("ansible-rulebook RSS after the runs: %.0f MiB (at rest %.0f MiB)" % (busy / 1024.0, rest / 1024.0))
    finally:
        eda.reload_state(stack)
        stack.stop()
        shutil.rmtree(str(root), ignore_errors=True)


if __name__ == "__main__":
    main()
