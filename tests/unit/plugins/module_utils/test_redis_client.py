"""Pure logic of the Redis helper for Sentinel and replication: no server needed."""

import pytest

from ansible_collections.callcenter.ops.plugins.module_utils import redis_client

URL = "sentinel://:M%40ster-pw@10.0.0.1:26379/2;sentinel://10.0.0.2:26380;sentinel://10.0.0.3"


def test_sentinel_url_in_kombu_form_lists_every_sentinel_and_keeps_the_master_password():
    u = redis_client.BrokerURL(URL, master_name="callcenter", sentinel_password="S-pw")
    assert u.is_sentinel and u.sentinels == [("10.0.0.1", 26379), ("10.0.0.2", 26380), ("10.0.0.3", 26379)]
    assert u.password == "M@ster-pw" and u.db == 2 and u.master_name == "callcenter"
    assert "M@ster-pw" not in u.safe and "S-pw" not in u.safe and u.safe.startswith("sentinel://:***@10.0.0.1:26379/2;")
    assert set(u.secrets()) >= {"M@ster-pw", "S-pw"}
    # kombu reads the master's password from the first entry; the Sentinels' own goes to sentinel_kwargs
    assert u.celery_url().startswith("sentinel://:M%40ster-pw@10.0.0.1:26379/2;sentinel://10.0.0.2:26380/2")
    opts = u.transport_options(1.5)
    assert opts["master_name"] == "callcenter" and opts["sentinel_kwargs"]["password"] == "S-pw"
    assert opts["socket_timeout"] == 1.5 and opts["sentinel_kwargs"]["socket_connect_timeout"] == 1.5


def test_broker_password_wins_over_the_one_in_the_sentinel_url():
    assert redis_client.BrokerURL(URL, password="other", master_name="m").celery_url().startswith("sentinel://:other@10.0.0.1")


@pytest.mark.parametrize("url,kwargs,words", [
    ("sentinel://10.0.0.1:26379", {}, "give sentinel_master_name (or CELERY_BROKER_SENTINEL_MASTER)"),
    ("sentinel://10.0.0.1:26379;redis://10.0.0.2:6379/0", {"master_name": "m"}, "mixes sentinel:// with redis://"),
    ("redis://a:6379/0;redis://b:6379/0", {}, "only sentinel:// URLs can be listed"),
    ("amqp://guest@h//", {}, "use redis://, rediss://, redis+socket://, unix:// or sentinel://"),
    ("sentinel://h:notaport", {"master_name": "m"}, "not a valid URL"),
])
def test_unusable_sentinel_urls_are_refused_with_a_sentence(url, kwargs, words):
    with pytest.raises(redis_client.BrokerError) as e:
        redis_client.BrokerURL(url, **kwargs)
    assert words in str(e.value)


def test_plain_redis_urls_are_unchanged():
    u = redis_client.BrokerURL("redis://:p%40ss@10.0.0.1:6380/2")
    assert not u.is_sentinel and (u.host, u.port, u.db, u.password) == ("10.0.0.1", 6380, 2, "p@ss")
    assert u.transport_options(2) == dict(socket_timeout=2, socket_connect_timeout=2, max_connections=2)


def view(addr, master, flags=("master",), quorum=2, replicas=1, answered=True):
    return dict(address=addr, answered=answered, knows_master=bool(master), error=None if master else "x",
                master=master, flags=list(flags), master_down="s_down" in flags or "o_down" in flags,
                quorum=quorum, num_other_sentinels=2, num_replicas=replicas)


def test_sentinel_summary_counts_who_sees_the_master_and_the_quorum():
    url = redis_client.BrokerURL("sentinel://a;sentinel://b;sentinel://c", master_name="m")
    s = redis_client.sentinel_summary(url, [view("a:26379", "10.0.0.5:6379"), view("b:26379", "10.0.0.5:6379"),
                                            view("c:26379", "10.0.0.5:6379", flags=("master", "s_down"))])
    assert s["master"] == "10.0.0.5:6379" and s["sentinels_naming_master"] == 3
    assert s["sentinels_seeing_master_up"] == 2 and s["quorum_reached"] is True and s["known_replicas"] == 1
    s = redis_client.sentinel_summary(url, [view("a:26379", "10.0.0.5:6379", flags=("master", "s_down", "o_down")),
                                            view("b:26379", "10.0.0.6:6379"),
                                            dict(address="c:26379", answered=False, knows_master=False, error="refused")])
    assert s["sentinels_answering"] == 2 and s["quorum_reached"] is False and s["disagree"]
    problems = redis_client.replication_problems(dict(replicas=[]), s)
    assert "2 of 3 Sentinels answered" in problems
    assert any(p.startswith("Sentinels disagree on the master") for p in problems)
    assert "only 0 of 3 Sentinels see the master up (quorum 2): they consider it down" in problems
    lonely = dict(s, sentinels_answering=1)
    assert any("fewer than the quorum of 2: no failover could be agreed" in p
               for p in redis_client.replication_problems(dict(replicas=[]), lonely))


def test_replication_figures_and_problems_from_info_replication():
    info = {"role": "master", "connected_slaves": 2, "master_repl_offset": 5000,
            "slave0": {"ip": "10.0.0.6", "port": 6379, "state": "online", "offset": 5000, "lag": 0},
            "slave1": {"ip": "10.0.0.7", "port": 6379, "state": "online", "offset": 1000, "lag": 3}}
    f = redis_client.replication_figures(info)
    assert f["connected_replicas"] == 2 and [r["lag_bytes"] for r in f["replicas"]] == [0, 4000]
    assert redis_client.replication_problems(f, expected_replicas=2, lag_bytes=10000) == []
    assert redis_client.replication_problems(f, lag_bytes=1000) == ["replica 10.0.0.7:6379 is 4000 bytes behind (max 1000)"]
    assert redis_client.replication_problems(f, expected_replicas=3) == ["2 of 3 replica(s) connected and online"]
    # the Sentinels know a replica that is not connected: a missing one without any option
    assert redis_client.replication_problems(redis_client.replication_figures({"role": "master", "connected_slaves": 0}),
                                             dict(known_replicas=1, sentinels=3, sentinels_answering=3, disagree=[],
                                                  quorum_reached=True)) == ["0 of 1 replica(s) connected and online"]


def test_kombu_gets_the_sentinels_that_answered_first_with_the_master_password():
    u = redis_client.BrokerURL("sentinel://:pw@dead:26379;sentinel://alive:26379", master_name="m")
    u.sentinel_views = [dict(address="dead:26379", knows_master=False), dict(address="alive:26379", knows_master=True)]
    assert u.celery_url() == "sentinel://:pw@alive:26379/0;sentinel://dead:26379/0"
