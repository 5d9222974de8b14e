"""Pure logic of the PostgreSQL helper's replication view: no server needed."""

from ansible_collections.callcenter.ops.plugins.module_utils import postgres


def streaming(**over):
    r = dict(name="walreceiver", client_addr="10.0.0.6", state="streaming", sync_state="async",
             replay_lag_bytes=0, replay_lag_seconds=0.01)
    r.update(over)
    return r


def test_primary_problems_missing_lagging_and_not_streaming_replicas():
    assert postgres.replication_problems(dict(role="primary", replicas=[streaming()]), 1, 1024, 30) == []
    assert postgres.replication_problems(dict(role="primary", replicas=[]), 1) == ["0 of 1 expected replica(s) streaming"]
    assert postgres.replication_problems(dict(role="primary", replicas=[]), None) == []  # no expectation given
    lag = postgres.replication_problems(dict(role="primary", replicas=[streaming(replay_lag_bytes=5000,
                                                                                 replay_lag_seconds=45.0)]), 1, 1024, 30)
    assert lag == ["replica walreceiver (10.0.0.6) replays 5000 bytes behind (max 1024)",
                   "replica walreceiver (10.0.0.6) replays 45.0s behind (max 30s)"]
    assert postgres.replication_problems(dict(role="primary", replicas=[streaming(state="catchup")]), 1) == [
        "0 of 1 expected replica(s) streaming",
        "replica walreceiver (10.0.0.6) is catchup, not streaming"]


def test_replica_problems_paused_cut_off_and_lagging():
    ok = dict(role="replica", replay_lag_bytes=0, replay_lag_seconds=0, replay_paused=False, wal_receiver="streaming")
    assert postgres.replication_problems(ok, None, 1024, 30) == []
    assert postgres.replication_problems(dict(ok, replay_paused=True, replay_lag_bytes=4096), None, 1024) == [
        "WAL replay is paused (pg_wal_replay_resume() continues it)", "replay 4096 bytes behind (max 1024)"]
    assert postgres.replication_problems(dict(ok, wal_receiver=None)) == [
        "not streaming from a primary (WAL receiver not running)"]
    # a replica that has not replayed any transaction yet has no lag in seconds: not a problem by itself
    assert postgres.replication_problems(dict(ok, replay_lag_seconds=None), None, 1024, 30) == []
