"""Replicated servers for the tests, built on the components of tests/harness.py: a Redis
master with a replica watched by three Sentinels (``redis-server --sentinel``), and a
PostgreSQL streaming replica made with ``pg_basebackup -R``. Everything on 127.0.0.1, free
ports, directories of its own; nothing here touches a process it did not start."""

import os
import subprocess
import time
from pathlib import Path

from harness import PG_BIN, PostgresCluster, RedisServer, _stop, free_port, wait_for

MASTER_NAME = "ccops-master"


class RedisNode(RedisServer):
    """A redis-server that may replicate another one (``replicaof``); every node knows the
    password as ``masterauth`` too, so any of them can become a replica after a failover."""

    def __init__(self, workdir, password=None, replicaof=None):
        super().__init__(workdir, password)
        self.replicaof = replicaof

    def command(self):
        cmd = super().command()
        if self.password:
            cmd += ["--masterauth", self.password]
        if self.replicaof:
            cmd += ["--replicaof", "127.0.0.1", str(self.replicaof)]
        return cmd


class Sentinel:
    """``redis-server <conf> --sentinel`` watching one master, with a short down-after."""

    def __init__(self, workdir, master_port, password=None, sentinel_password=None, quorum=2, down_after_ms=1000,
                 failover_timeout_ms=6000):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.password = sentinel_password
        lines = ["port %d" % self.port, "bind 127.0.0.1", "daemonize no", "dir %s" % self.dir,
                 "logfile %s" % (self.dir / "sentinel.log"),
                 "sentinel monitor %s 127.0.0.1 %d %d" % (MASTER_NAME, master_port, quorum),
                 "sentinel down-after-milliseconds %s %d" % (MASTER_NAME, down_after_ms),
                 "sentinel failover-timeout %s %d" % (MASTER_NAME, failover_timeout_ms),
                 "sentinel parallel-syncs %s 1" % MASTER_NAME]
        if password:
            lines.append("sentinel auth-pass %s %s" % (MASTER_NAME, password))
        if sentinel_password:
            lines += ["requirepass %s" % sentinel_password, "sentinel sentinel-pass %s" % sentinel_password]
        self.conf = self.dir / "sentinel.conf"  # Sentinel rewrites it: one file per Sentinel
        self.conf.write_text("\n".join(lines) + "\n")
        os.chmod(self.conf, 0o600)
        self.proc = None

    def client(self):
        import redis
        return redis.Redis(port=self.port, password=self.password, socket_timeout=5, decode_responses=True)

    def start(self):
        self.proc = subprocess.Popen(["redis-server", str(self.conf), "--sentinel"], start_new_session=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self.client().ping(), 10, "redis-sentinel on port %d" % self.port)
        return self

    def stop(self):
        if self.proc:
            _stop(self.proc)


class RedisSentinelSet:
    """A master, ``replicas`` replicas and ``sentinels`` Sentinels (quorum 2). ``url`` is the
    kombu broker URL (``sentinel://...;sentinel://...``); the master name is MASTER_NAME."""

    def __init__(self, workdir, password=None, sentinel_password=None, replicas=1, sentinels=3, down_after_ms=1000):
        self.dir = Path(workdir).resolve()  # redis-server opens its files after chdir to --dir
        self.password = password
        self.sentinel_password = sentinel_password
        self.master_name = MASTER_NAME
        self.master = RedisNode(self.dir / "node0", password)
        self.replicas = [RedisNode(self.dir / ("node%d" % (i + 1)), password, replicaof=self.master.port)
                         for i in range(replicas)]
        self.nodes = [self.master] + self.replicas
        self.sentinels = [Sentinel(self.dir / ("sentinel%d" % i), self.master.port, password, sentinel_password,
                                   down_after_ms=down_after_ms) for i in range(sentinels)]

    @property
    def url(self):
        auth = ":%s@" % self.password if self.password else ""
        return ";".join("sentinel://%s127.0.0.1:%d/0" % (auth if i == 0 else "", s.port)
                        for i, s in enumerate(self.sentinels))

    def start(self):
        self.master.start()
        for r in self.replicas:
            r.start()
        wait_for(lambda: all(r.client().info("replication").get("master_link_status") == "up" for r in self.replicas),
                 20, "Redis replicas in sync")
        for s in self.sentinels:
            s.start()
        # Sentinels find the replicas and each other through the master (hello messages every 2 s)
        wait_for(lambda: all(int(s.client().sentinel_master(MASTER_NAME)["num-other-sentinels"]) == len(self.sentinels) - 1
                             and int(s.client().sentinel_master(MASTER_NAME)["num-slaves"]) == len(self.replicas)
                             for s in self.sentinels), 30, "Sentinels that know each other and the replicas")
        return self

    def master_port(self):
        """The master's port as the first Sentinel that answers names it."""
        for s in self.sentinels:
            try:
                return int(s.client().sentinel_get_master_addr_by_name(MASTER_NAME)[1])
            except Exception:  # a stopped Sentinel: ask the next
                continue
        return None

    def node_on(self, port):
        return next(n for n in self.nodes if n.port == port)

    def kill_master(self):
        """SIGKILL the current master (a process this set started, through its Popen handle)."""
        node = self.node_on(self.master_port())
        node.kill()
        return node

    def wait_failover(self, old_port, timeout=30):
        """Wait until every Sentinel names a new master that answers as one; returns the seconds."""
        started = time.monotonic()

        def promoted():
            ports = set(int(s.client().sentinel_get_master_addr_by_name(MASTER_NAME)[1]) for s in self.sentinels
                        if s.proc.poll() is None)
            if len(ports) != 1 or old_port in ports:
                return False
            return self.node_on(ports.pop()).client().info("replication")["role"] == "master"
        wait_for(promoted, timeout, "a Sentinel failover away from port %d" % old_port)
        return round(time.monotonic() - started, 2)

    def stop(self):
        for s in self.sentinels:
            s.stop()
        for n in self.nodes:
            n.stop()


class PostgresReplica(PostgresCluster):
    """A streaming replica of ``primary`` made with ``pg_basebackup -R`` (standby.signal and
    primary_conninfo written by it), on a port and in a directory of its own."""

    def __init__(self, primary):
        super().__init__(password=primary.password)
        self.primary = primary

    def start(self):
        env = dict(os.environ, PGPASSWORD=self.primary.password)
        self.run(str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres",
                 "-D", str(self.dir / "data"), "-R", "-X", "stream", "-c", "fast", "--no-sync", env=env)
        opts = "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off" % (self.port, self.dir)
        self.run(str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-o", opts, "-l", str(self.dir / "log"),
                 "-w", "start")
        wait_for(lambda: self.primary.psql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
                 .strip() == "1", 30, "the replica streaming from the primary")
        return self


def fresh_primary():
    """A PostgreSQL primary of its own (the session-wide ``postgres`` fixture is shared)."""
    return PostgresCluster().start()
