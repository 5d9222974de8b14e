"""The verdicts of system_status's probes, on figures as the servers give them: no server needed."""

import errno

import pytest

from ansible_collections.callcenter.ops.plugins.module_utils import app_api
from ansible_collections.callcenter.ops.plugins.module_utils import status_probes

HOUR = 3600.0


def params(**over):
    """The module's defaults for the options the verdicts read."""
    p = dict(redis_memory_ratio_degraded=0.9, redis_expected_replicas=None, redis_replication_lag_bytes_degraded=1048576,
             max_queue_length=500, pg_connections_ratio_degraded=0.8, pg_replicas=[], pg_expected_replicas=None,
             pg_replication_lag_bytes_degraded=16777216, pg_replication_lag_seconds_degraded=30.0,
             validate_certs=True, ca_path=None)
    p.update(over)
    return p


# --------------------------------------------------------------------------- redis
def redis_info(used, maxmemory, **extra):
    info = dict(used_memory=used, used_memory_human="%dB" % used, maxmemory=maxmemory, mem_fragmentation_ratio=1.1,
                connected_clients=4, role="master", redis_version="7.2.4", master_repl_offset=1000, connected_slaves=0)
    info.update(extra)
    return info


def test_redis_above_the_memory_ratio_is_degraded_with_the_percentage():
    c = status_probes.redis_verdict(redis_info(950, 1000), params())
    assert c["status"] == "degraded" and c["reason"] == "memory 95 % of maxmemory"
    assert c["used_memory"] == 950 and c["maxmemory"] == 1000 and c["replication"]["role"] == "master"


def test_redis_at_or_below_the_ratio_or_without_maxmemory_is_ok():
    assert status_probes.redis_verdict(redis_info(900, 1000), params())["status"] == "ok"
    assert status_probes.redis_verdict(redis_info(10 ** 9, 0), params())["status"] == "ok"  # no limit set
    assert status_probes.redis_verdict(redis_info(500, 1000), params(redis_memory_ratio_degraded=0.4))["status"] == "degraded"


def test_redis_with_fewer_replicas_online_than_expected_is_degraded():
    info = redis_info(1, 0, connected_slaves=1, slave0=dict(ip="10.0.0.6", port=6379, state="wait_bgsave", offset=0))
    c = status_probes.redis_verdict(info, params(redis_expected_replicas=2))
    assert c["status"] == "degraded" and c["reason"] == "0 of 2 replica(s) connected and online"


def test_redis_replica_lagging_more_than_the_bytes_allowed_is_degraded_and_named():
    info = redis_info(1, 0, connected_slaves=1, master_repl_offset=5000,
                      slave0=dict(ip="10.0.0.6", port=6379, state="online", offset=1000))
    assert status_probes.redis_verdict(info, params(redis_expected_replicas=1))["status"] == "ok"
    c = status_probes.redis_verdict(info, params(redis_expected_replicas=1, redis_replication_lag_bytes_degraded=100))
    assert c["status"] == "degraded" and c["reason"] == "replica 10.0.0.6:6379 is 4000 bytes behind (max 100)"


def test_redis_memory_and_replication_reasons_are_both_given():
    c = status_probes.redis_verdict(redis_info(990, 1000), params(redis_expected_replicas=1))
    assert c["reason"] == "memory 99 % of maxmemory; 0 of 1 replica(s) connected and online"


def test_redis_sentinel_view_is_shown_and_its_known_replicas_are_expected():
    sentinel = dict(sentinel=dict(known_replicas=1, sentinels=3, sentinels_answering=3, disagree=[], quorum=2,
                                  quorum_reached=True, master="10.0.0.5:6379"))
    c = status_probes.redis_verdict(redis_info(1, 0), params(), sentinel)
    assert c["sentinel"]["master"] == "10.0.0.5:6379"
    assert c["status"] == "degraded" and c["reason"] == "0 of 1 replica(s) connected and online"


# --------------------------------------------------------------------------- celery
def test_celery_without_a_worker_is_down_and_still_shows_the_queues():
    c = status_probes.celery_verdict([], {"quality": 3}, params(), None)
    assert c["status"] == "down" and c["reason"] == "no Celery worker answered ping"
    assert c["queues"] == {"quality": 3} and c["workers_online"] == 0


def test_celery_with_a_missing_worker_or_a_long_queue_is_degraded():
    c = status_probes.celery_verdict(["w1@app1"], {"quality": 0}, params(), ["w1@app1", "w2@app2"])
    assert c["status"] == "degraded" and "1 Celery worker(s) answered ping, 2 needed" in c["reason"]
    c = status_probes.celery_verdict(["w1@app1"], {"quality": 501}, params(), None)
    assert c["status"] == "degraded" and c["reason"] == "queue quality has 501 messages waiting (max 500)"


def test_celery_with_every_expected_worker_and_short_queues_is_ok():
    c = status_probes.celery_verdict(["w1@app1", "w2@app2"], {"quality": 500}, params(), 2)
    assert c["status"] == "ok" and c["workers"] == ["w1@app1", "w2@app2"] and c["workers_online"] == 2


# --------------------------------------------------------------------------- postgres
def load(connections, max_connections=100):
    return dict(connections=connections, max_connections=max_connections, database_size=1 << 20,
                server_version="16.4", dsn="host=db1 port=5432 dbname=postgres user=postgres")


def streaming(name="r1", lag_bytes=0, lag_seconds=0.0):
    return dict(name=name, client_addr="10.0.0.6", state="streaming", replay_lag_bytes=lag_bytes,
                replay_lag_seconds=lag_seconds)


def test_postgres_above_the_connections_ratio_is_degraded():
    primary = dict(role="primary", replicas=[])
    c = status_probes.postgres_verdict(load(81), primary, params())
    assert c["status"] == "degraded" and c["reason"] == "81 of 100 connections in use"
    assert c["role"] == "primary" and c["replication"] == {"replicas": []}
    assert status_probes.postgres_verdict(load(80), primary, params())["status"] == "ok"


def test_postgres_primary_expects_as_many_replicas_as_pg_replicas_names():
    primary = dict(role="primary", replicas=[streaming()])
    assert status_probes.postgres_verdict(load(1), primary, params(pg_replicas=["db2"]))["status"] == "ok"
    c = status_probes.postgres_verdict(load(1), primary, params(pg_replicas=["db2", "db3"]))
    assert c["status"] == "degraded" and c["reason"] == "1 of 2 expected replica(s) streaming"
    c = status_probes.postgres_verdict(load(1), dict(role="primary", replicas=[]), params(pg_expected_replicas=1))
    assert c["reason"] == "0 of 1 expected replica(s) streaming"
    # pg_expected_replicas wins over the count of pg_replicas
    assert status_probes.pg_expected_replicas(params(pg_replicas=["db2", "db3"], pg_expected_replicas=0)) == 0
    assert status_probes.pg_expected_replicas(params()) is None


def test_postgres_replication_lag_beyond_bytes_or_seconds_is_degraded():
    primary = dict(role="primary", replicas=[streaming(lag_bytes=20 << 20, lag_seconds=45.0)])
    c = status_probes.postgres_verdict(load(1), primary, params())
    assert c["status"] == "degraded"
    assert c["reason"] == ("replica r1 (10.0.0.6) replays 20971520 bytes behind (max 16777216); "
                           "replica r1 (10.0.0.6) replays 45.0s behind (max 30.0s)")


def test_postgres_given_as_replica_but_promoted_is_degraded():
    c = status_probes.postgres_verdict(load(1), dict(role="primary", replicas=[]), params(pg_replicas=["db2"]),
                                       replica=True)
    assert c["status"] == "degraded" and "was it promoted? Two primaries split the data" in c["reason"]
    # a replica expects no replicas of its own, whatever pg_replicas says
    assert "expected replica" not in c["reason"]


def test_postgres_replica_streaming_in_time_is_ok_and_one_paused_is_degraded():
    replica = dict(role="replica", replay_lag_bytes=0, replay_lag_seconds=0.0, replay_paused=False,
                   wal_receiver="streaming", upstream="db1:5432")
    c = status_probes.postgres_verdict(load(1), replica, params(), replica=True)
    assert c["status"] == "ok" and c["role"] == "replica" and c["replication"]["upstream"] == "db1:5432"
    c = status_probes.postgres_verdict(load(1), dict(replica, replay_paused=True), params(), replica=True)
    assert c["status"] == "degraded" and c["reason"] == "WAL replay is paused (pg_wal_replay_resume() continues it)"


def test_postgres_verdict_leaves_the_figures_it_was_given_alone():
    replication = dict(role="primary", replicas=[])
    status_probes.postgres_verdict(load(1), replication, params())
    assert replication == dict(role="primary", replicas=[])


# --------------------------------------------------------------------------- backup
FACTS = dict(size=1 << 20, mtime="2026-11-26T03:00:00+00:00", age_seconds=2 * HOUR)


def detail(success, problems=(), last_run=1764126000):
    return lambda _path: dict(success=success, last_run=last_run, problems=list(problems))


def test_backup_fresh_and_verified_is_ok():
    c = status_probes.backup_verdict("/b/x.dump.gz", FACTS, 26 * HOUR, "/m.prom", detail(True))
    assert c["status"] == "ok" and c["verified"] is True and c["verified_at"] == "2025-11-26T03:00:00+00:00"


def test_backup_older_than_max_age_is_degraded_with_its_age_in_hours():
    c = status_probes.backup_verdict("/b/x.dump.gz", dict(FACTS, age_seconds=30 * HOUR), 26 * HOUR)
    assert c["status"] == "degraded" and c["reason"] == "newest backup is 30.0h old"
    assert c["verified"] is None and c["verified_at"] is None  # no metrics file: not read


def test_backup_whose_last_verification_failed_is_degraded_with_the_checks_that_failed():
    c = status_probes.backup_verdict("/b/x.dump.gz", FACTS, 26 * HOUR, "/m.prom",
                                     detail(False, ["gzip CRC mismatch", "TOC unreadable"]))
    assert c["status"] == "degraded" and c["verified"] is False
    assert c["reason"] == "last verification FAILED: gzip CRC mismatch; TOC unreadable"
    assert c["verification_problems"] == ["gzip CRC mismatch", "TOC unreadable"]
    c = status_probes.backup_verdict("/b/x.dump.gz", FACTS, 26 * HOUR, "/m.prom", detail(False))
    assert c["reason"] == "last verification FAILED"


def test_backup_without_a_verification_result_is_degraded():
    c = status_probes.backup_verdict("/b/x.dump.gz", FACTS, 26 * HOUR, "/m.prom", detail(None, last_run=None))
    assert c["status"] == "degraded" and c["reason"] == "no verification result in /m.prom"
    assert c["verified"] is None and c["verified_at"] is None


def test_backup_with_unreadable_metrics_is_degraded_and_says_why():
    def unreadable(path):
        raise OSError(errno.EACCES, "Permission denied", path)

    c = status_probes.backup_verdict("/b/x.dump.gz", dict(FACTS, age_seconds=27 * HOUR), 26 * HOUR, "/m.prom",
                                     unreadable)
    assert c["status"] == "degraded"
    assert c["reason"] == "verification metrics unreadable (Permission denied); newest backup is 27.0h old"


def test_backup_metrics_read_from_a_real_file(tmp_path):
    from ansible_collections.callcenter.ops.plugins.module_utils import backup
    metrics = tmp_path / "backup.prom"
    metrics.write_text(backup.metrics_text(dict(path="/b/x.dump.gz", valid=True, verified_at=1764126000,
                                                duration=0.5, checks=[dict(name="gzip", ok=True, message="")])))
    c = status_probes.backup_verdict("/b/x.dump.gz", FACTS, 26 * HOUR, str(metrics))
    assert c["status"] == "ok" and c["verified"] is True


# --------------------------------------------------------------------------- flower
class FakeFlower:
    """Answers http_status() from a table {(path, auth): HTTP status or an AppError}."""

    def __init__(self, answers):
        self.answers = answers
        self.asked = []

    def http_status(self, path, auth=False):
        self.asked.append((path, auth))
        answer = self.answers[(path, auth)]
        if isinstance(answer, Exception):
            raise answer
        return answer


URL = "http://127.0.0.1:5555/"


def flower(answers, credentials=None, client=None):
    client = client or FakeFlower(answers)
    return status_probes.probe_flower(params(), URL, credentials, 1.0, client=client)


def test_flower_open_without_credentials_is_degraded_and_says_who_can_see_what():
    c = flower({("/", False): 200, ("/api/workers", False): 401})
    assert c["status"] == "degraded" and c["auth"] is False and c["credentials"] == "not checked"
    assert "answers %s without credentials" % URL in c["reason"] and "/api/workers" not in c["reason"]
    c = flower({("/", False): 200, ("/api/workers", False): 200})
    assert "through /api/workers shut workers down and revoke tasks" in c["reason"]
    c = flower({("/", False): 200, ("/api/workers", False): app_api.AppError("timed out")})
    assert c["status"] == "degraded" and "/api/workers" not in c["reason"]


def test_flower_asking_for_credentials_is_ok_and_checks_the_ones_given():
    client = FakeFlower({("/", False): 401})
    c = flower(None, client=client)
    assert c["status"] == "ok" and c["auth"] is True and c["credentials"] == "not given"
    assert client.asked == [("/", False)]
    client = FakeFlower({("/", False): 401, ("/", True): 200})
    c = flower(None, ("ops", "pw"), client=client)
    assert c["status"] == "ok" and c["reason"] == "" and c["credentials"] == "accepted"
    assert client.asked == [("/", False), ("/", True)]


def test_flower_rejecting_the_credentials_is_degraded_and_names_the_user_not_the_password():
    c = flower({("/", False): 401, ("/", True): 401}, ("ops", "S3cret-pw"))
    assert c["status"] == "degraded" and c["credentials"] == "rejected"
    assert "'ops'" in c["reason"] and "S3cret-pw" not in str(c)


def test_flower_answering_something_else_is_down():
    c = flower({("/", False): 404})
    assert c["status"] == "down" and c["http_status"] == 404
    assert c["reason"] == "%s answered HTTP 404 (is flower_url Flower's address, with its url_prefix?)" % URL
    c = flower({("/", False): 401, ("/", True): 500}, ("ops", "pw"))
    assert c["status"] == "down" and c["reason"] == "%s answered HTTP 500 to the credentials given" % URL
    c = flower({("/", False): app_api.AppError("%s refused the connection (is Flower running?)" % URL)})
    assert c == {"status": "down", "reason": "%s refused the connection (is Flower running?)" % URL, "url": URL}


@pytest.mark.parametrize("anonymous, with_credentials, expected", [
    (200, None, "degraded"), (401, None, "ok"), (401, 200, "ok"), (401, 401, "degraded"), (401, 403, "down"),
    (302, None, "down"), (500, None, "down"),
])
def test_flower_status_by_what_it_answers(anonymous, with_credentials, expected):
    answers = {("/", False): anonymous, ("/api/workers", False): 401, ("/", True): with_credentials}
    c = flower(answers, ("ops", "pw") if with_credentials else None)
    assert c["status"] == expected
