"""system_status on a PostgreSQL primary with a streaming replica made by ``pg_basebackup -R``,
both real servers on loopback: the replica streams (ok, and has its card on the playbook's page),
lags when its replay is paused (``pg_wal_replay_pause()``: degraded, on both sides), and going
away is degraded, not down."""

import re
import time

import pytest

from conftest import wait_for
from replication import PostgresReplica, fresh_primary


@pytest.fixture
def pg_pair():
    primary = fresh_primary()
    replica = None
    try:
        replica = PostgresReplica(primary).start()
        yield primary, replica
    finally:
        if replica:
            replica.stop()
        primary.stop()


def status(ansible, primary, replica, **over):
    args = dict(pg_host="127.0.0.1", pg_port=primary.port, pg_password=primary.password,
                pg_replicas=["127.0.0.1:%d" % replica.port], timeout=3)
    args.update(over)
    return ansible.module("system_status", args)


def test_primary_and_streaming_replica_are_ok_with_their_figures(ansible, pg_pair, tmp_path):
    primary, replica = pg_pair
    r = status(ansible, primary, replica)
    assert r.rc == 0, r
    name = "postgres@127.0.0.1:%d" % replica.port
    pri, rep = r["components"]["postgres"], r["components"][name]
    assert r["status"] == "ok", r["msg"]
    assert pri["role"] == "primary" and len(pri["replication"]["replicas"]) == 1
    streaming = pri["replication"]["replicas"][0]
    assert streaming["state"] == "streaming" and streaming["client_addr"] == "127.0.0.1"
    assert streaming["replay_lag_bytes"] == 0 or streaming["replay_lag_bytes"] < 16 * 1024 * 1024
    assert rep["role"] == "replica" and rep["replication"]["wal_receiver"] == "streaming"
    assert rep["replication"]["upstream"] == "127.0.0.1:%d" % primary.port
    assert rep["replication"]["replay_paused"] is False
    assert primary.password not in r.output
    print("primary + replica: %.2fs wall, module %.3fs" % (r.duration, r["duration"]))

    # the playbook's table and page show the replica's card, after the primary, with its figures
    page = tmp_path / "status.html"
    r = ansible.playbook("callcenter.ops.system_status", extra_vars={
        "system_status_pg_host": "127.0.0.1", "system_status_pg_port": primary.port,
        "system_status_pg_password": primary.password, "system_status_pg_replicas": ["127.0.0.1:%d" % replica.port],
        "system_status_html_path": str(page)})
    assert r.rc == 0, r
    figures = "replica of 127.0.0.1:%d, streaming, replay lag " % primary.port
    row = next(line for line in r.output.splitlines() if (name + " ") in line and "OK" in line)
    assert figures in row, row
    html = page.read_text()
    cards = re.findall(r'<section class="card[^"]*" id="component-([^"]*)" data-status="([^"]*)"', html)
    assert cards == [("postgres", "ok"), (name, "ok")], cards
    assert "<h2>PostgreSQL replica 127.0.0.1:%d " % replica.port in html and figures in html
    assert primary.password not in html and primary.password not in r.output


def test_paused_replay_shows_lag_and_is_degraded_on_both_sides(ansible, pg_pair):
    primary, replica = pg_pair
    # one transaction replayed first: the replica's lag in seconds is measured from the last one
    primary.psql("CREATE TABLE operators (id int)")
    wait_for(lambda: replica.psql("SELECT pg_last_xact_replay_timestamp() IS NOT NULL").strip() == "t", 20,
             "a replayed transaction")
    replica.psql("SELECT pg_wal_replay_pause()")
    primary.psql("CREATE TABLE calls AS SELECT i, md5(i::text) AS transcript FROM generate_series(1, 20000) i")
    # the replica receives the WAL (flush) but does not replay it
    wait_for(lambda: int(primary.psql("SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), 0)"
                                      " FROM pg_stat_replication").strip() or 0) > 65536, 20, "replay lag on the primary")
    r = status(ansible, primary, replica, pg_replication_lag_bytes_degraded=65536)
    assert r.rc == 0, r
    name = "postgres@127.0.0.1:%d" % replica.port
    pri, rep = r["components"]["postgres"], r["components"][name]
    assert r["status"] == "degraded", r["msg"]
    assert rep["status"] == "degraded" and "WAL replay is paused" in rep["reason"], rep
    assert rep["replication"]["replay_paused"] is True
    assert rep["replication"]["replay_lag_bytes"] > 65536, rep
    assert rep["replication"]["replay_lag_seconds"] is not None
    assert "bytes behind (max 65536)" in rep["reason"], rep
    assert pri["status"] == "degraded" and "replays" in pri["reason"] and "bytes behind" in pri["reason"], pri
    print("paused replica: %s | %s" % (pri["reason"], rep["reason"]))

    replica.psql("SELECT pg_wal_replay_resume()")
    wait_for(lambda: int(primary.psql("SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), 0)"
                                      " FROM pg_stat_replication").strip() or 0) == 0, 20, "the replica catching up")
    r = status(ansible, primary, replica, pg_replication_lag_bytes_degraded=65536)
    assert r["status"] == "ok", r["msg"]


def test_replica_gone_is_degraded_not_down_on_both_sides(ansible, pg_pair):
    primary, replica = pg_pair
    port = replica.port
    replica.stop()
    wait_for(lambda: primary.psql("SELECT count(*) FROM pg_stat_replication").strip() == "0", 20,
             "the primary noticing the replica is gone")
    started = time.monotonic()
    r = status(ansible, primary, replica)
    assert r.rc == 0, r
    assert time.monotonic() - started < 10
    name = "postgres@127.0.0.1:%d" % port
    pri, rep = r["components"]["postgres"], r["components"][name]
    assert r["status"] == "degraded", r["msg"]
    assert rep["status"] == "degraded" and "replica unreachable" in rep["reason"] and "refused" in rep["reason"], rep
    assert pri["status"] == "degraded" and "0 of 1 expected replica(s) streaming" in pri["reason"], pri
    assert primary.password not in r.output
    r = status(ansible, primary, replica, fail_on="degraded")
    assert r.rc != 0 and "postgres degraded: 0 of 1 expected replica(s) streaming" in r["msg"], r
