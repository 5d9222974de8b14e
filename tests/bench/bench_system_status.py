"""Benchmark: system_status collects its components at the same time.

One run, one real stack (Redis, 2 Celery workers, PostgreSQL, a verified backup, Flower, the
application stand-in). Each component alone, then all together, several times; compares the
module's own `duration` (collection time, without Ansible's start-up) of all against the
slowest single component. Then one component blackholed at timeout T. Then the fleet: the
system_status playbook over 1, 5 and 20 app hosts (inventory hosts on loopback, each with its own
application stand-in, forks 20; shared components read once), wall time of each in the same run,
target 20 hosts <= 3x one host. Prints ratios.
    python tests/bench/bench_system_status.py            everything
    python tests/bench/bench_system_status.py --fleet    only the fleet part"""

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from conftest import BIN, CeleryCluster, FlowerServer, PostgresCluster, RedisServer  # noqa: E402
from fake_app import ADMIN_TOKEN, FakeApp  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
FLEET_RUNS = int(os.environ.get("BENCH_FLEET_RUNS", "3"))
FLEET_SIZES = (1, 5, 20)
T = 1.0


def module(args, home):
    tree = Path(tempfile.mkdtemp(dir=home))
    env = dict(os.environ, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.tree",
               ANSIBLE_CALLBACK_TREE_DIR=str(tree), ANSIBLE_HOME=str(home), ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, CALLCENTER_ADMIN_TOKEN=ADMIN_TOKEN,
               PATH="%s:%s" % (BIN, os.environ["PATH"]))
    subprocess.run([str(BIN / "ansible"), "localhost", "-m", "callcenter.ops.system_status", "-a", json.dumps(args)],
                   env=env, capture_output=True, check=False)
    result = json.loads((tree / "localhost").read_text())
    shutil.rmtree(tree, ignore_errors=True)
    return result


def fleet_playbook(n, apps, broker_url, work, home):
    """Wall time of ``ansible-playbook -f 20 callcenter.ops.system_status`` over ``n`` app hosts."""
    import time
    inv = work / ("fleet-%d.ini" % n)
    inv.write_text("[app]\n" + "".join(
        "app%02d ansible_connection=local ansible_python_interpreter=%s system_status_app_url=%s\n"
        % (i + 1, sys.executable, apps[i].url) for i in range(n)))
    extra = dict(system_status_hosts="app", system_status_broker_url=broker_url, system_status_expected_workers=2,
                 system_status_html_path=str(work / ("fleet-%d.html" % n)))
    env = dict(os.environ, ANSIBLE_HOME=str(home), ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_NOCOLOR="1",
               CALLCENTER_ADMIN_TOKEN=ADMIN_TOKEN, PATH="%s:%s" % (BIN, os.environ["PATH"]))
    started = time.monotonic()
    r = subprocess.run([str(BIN / "ansible-playbook"), "-f", "20", "-i", str(inv), "callcenter.ops.system_status",
                        "-e", json.dumps(extra)], env=env, capture_output=True, text=True, check=False,
                       stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - started
    if r.returncode != 0 or (n > 1 and r.stdout.count("app@app") < n):
        raise RuntimeError("fleet of %d failed (rc %d): %s" % (n, r.returncode, r.stdout[-2000:]))
    return seconds


def fleet(work, home, redis):
    """system_status over 1, 5 and 20 app hosts: wall time of each, in one run."""
    apps = [FakeApp().start() for _i in range(max(FLEET_SIZES))]
    try:
        times = dict((n, []) for n in FLEET_SIZES)
        fleet_playbook(1, apps, redis.url, work, home)  # warm-up, dropped
        for _run in range(FLEET_RUNS):
            for n in FLEET_SIZES:
                times[n].append(fleet_playbook(n, apps, redis.url, work, home))
        med = dict((n, statistics.median(v)) for n, v in times.items())
        print("system_status playbook over a fleet (forks 20, app stand-ins on loopback, shared Redis + 2 workers"
              " read once): median wall time of %d runs" % FLEET_RUNS)
        for n in FLEET_SIZES:
            print("  %2d app host(s)  %6.2f s  (%s)" % (n, med[n], ", ".join("%.2f" % t for t in times[n])))
        print("  ratio 20 hosts / 1 host: %.2fx  (target <= 3x)" % (med[20] / med[1]))
        print("  ratio  5 hosts / 1 host: %.2fx" % (med[5] / med[1]))
    finally:
        for a in apps:
            a.stop()


def main():
    if "--fleet" in sys.argv[1:]:
        return main_fleet()
    work = Path(tempfile.mkdtemp(prefix="ccops-bench-status-"))
    home = work / "home"
    home.mkdir()
    redis = RedisServer(work / "redis", password="bench-Pa55").start()
    cluster = CeleryCluster(redis.url, work / "celery")
    pg = PostgresCluster().start()
    app = FakeApp().start()
    flower = None
    lst = socket.socket()
    try:
        cluster.start_workers(["w1", "w2"])
        flower = FlowerServer(redis.url, work).start()
        backups = work / "backups"
        backups.mkdir()
        subprocess.run(["/usr/lib/postgresql/15/bin/pg_dump", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
                        "-Fc", "-f", str(backups / "db.dump.gz"), "postgres"],
                       env=dict(os.environ, PGPASSWORD=pg.password), check=True)
        parts = {
            "app": dict(app_url=app.url),
            "celery+redis": dict(broker_url=redis.url, expected_workers=2),
            "postgres": dict(pg_host="127.0.0.1", pg_port=pg.port, pg_password=pg.password),
            "backup": dict(backup_dir=str(backups)),
            "flower": dict(flower_url=flower.url),
        }
        everything = {}
        for a in parts.values():
            everything.update(a)
        alone = dict((k, []) for k in parts)
        together = []
        imports = []
        for _run in range(RUNS + 1):  # the first round warms caches and is dropped
            for name, a in parts.items():
                alone[name].append(module(a, home)["collect_duration"])
            res = module(everything, home)
            together.append(res["collect_duration"])
            imports.append(res["import_duration"])
        med = dict((k, statistics.median(v[1:])) for k, v in alone.items())
        all_med = statistics.median(together[1:])
        slowest = max(med.values())
        print("system_status benchmark: %d runs, medians of the module's collection time (collect_duration)" % RUNS)
        for name, v in sorted(med.items(), key=lambda kv: -kv[1]):
            print("  %-14s alone  %6.3f s" % (name, v))
        print("  all together         %6.3f s  (plus %.3f s importing celery/psycopg once, before)"
              % (all_med, statistics.median(imports[1:])))
        print("  ratio all / slowest single component: %.2fx  (target <= 1.2x)" % (all_med / slowest))
        print("  ratio all / sum of the components:    %.2fx  (1.0x would be one after another)"
              % (all_med / sum(med.values())))
        lst.bind(("127.0.0.1", 0))
        lst.listen(16)
        hole = dict(everything, app_url="http://127.0.0.1:%d" % lst.getsockname()[1], timeout=5,
                    component_timeouts={"app": T})
        holes = [module(hole, home) for _run in range(3)]
        worst = max(r["collect_duration"] for r in holes)
        worst_total = max(r["duration"] for r in holes)
        assert all(r["components"]["app"]["status"] == "down" for r in holes)
        print("  app blackholed at T=%.1fs: components %.3f s (worst of 3) = T + %.3f s  (target <= T + 0.5 s);"
              " whole module %.3f s" % (T, worst, worst - T, worst_total))
        fleet(work, home, redis)
    finally:
        lst.close()
        if flower:
            flower.stop()
        app.stop()
        cluster.stop()
        redis.stop()
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)


def main_fleet():
    work = Path(tempfile.mkdtemp(prefix="ccops-bench-fleet-"))
    home = work / "home"
    home.mkdir()
    redis = RedisServer(work / "redis", password="bench-Pa55").start()
    cluster = CeleryCluster(redis.url, work / "celery")
    try:
        cluster.start_workers(["w1", "w2"])
        fleet(work, home, redis)
    finally:
        cluster.stop()
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
