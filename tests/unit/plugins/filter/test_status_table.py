import re
from pathlib import Path

import jinja2

from ansible_collections.callcenter.ops.plugins.filter import status_table as flt
from ansible_collections.callcenter.ops.plugins.filter.status_table import status_table


def test_table_shows_each_component_its_figures_and_the_overall_status():
    lines = status_table({
        "status": "down", "generated_at": "2026-11-25T13:00:00+00:00", "duration": 0.42,
        "components": {
            "redis": {"status": "ok", "reason": "", "used_memory": 1048576, "maxmemory": 0,
                      "mem_fragmentation_ratio": 1.2, "connected_clients": 5, "role": "master"},
            "app": {"status": "ok", "reason": "", "version": "1.8.2", "uptime_seconds": 90000, "active_calls": 3,
                    "ready": True},
            "postgres": {"status": "down", "reason": "127.0.0.1:5432 rejected the password for user postgres",
                         "dsn": "host=127.0.0.1 port=5432 dbname=postgres user=postgres", "duration": 0.01},
            "backup": {"status": "degraded", "reason": "last verification FAILED", "path": "/b/x.dump.gz",
                       "size": 2048, "age_seconds": 7200, "verified": False},
        }})
    assert lines[0].split() == ["COMPONENT", "STATUS", "FIGURES", "REASON"]
    assert lines[1].startswith("app        OK        v1.8.2, up 25.0h, 3 active call(s), ready")
    assert lines[2].startswith("redis      OK        mem 1.0 MiB / no limit, frag 1.2, 5 clients, master")
    assert "DOWN" in lines[3] and lines[3].endswith("127.0.0.1:5432 rejected the password for user postgres")
    assert "x.dump.gz 2.0 KiB, 2.0h old, verification FAILED" in lines[4]
    assert lines[-1] == "overall: DOWN (generated 2026-11-25T13:00:00+00:00, 0.42s)"
    # columns line up
    assert len({line.index("OK") for line in lines[1:3]}) == 1


def test_fleet_one_row_per_app_instance_shared_components_once():
    from ansible_collections.callcenter.ops.plugins.filter.status_table import status_fleet
    app = {"status": "ok", "reason": "", "version": "1.8.2", "uptime_seconds": 60, "active_calls": 1, "ready": True}
    shared = {"status": "ok", "generated_at": "2026-11-25T13:00:00+00:00", "duration": 0.3, "components": {
        "redis": {"status": "ok", "reason": "", "role": "master"}}}
    fleet = status_fleet(shared, {
        "app1": {"components": {"app": app}, "duration": 0.2},
        "app2": {"components": {"app": dict(app, ready=False, status="down", reason="not ready")}},
        "app3": {"unreachable": True, "msg": "ssh: connect refused"},
    })
    assert fleet["status"] == "down" and fleet["apps_ready"] == 1
    assert fleet["apps"]["app3"] == {"status": "down", "reason": "host unreachable: ssh: connect refused"}
    assert fleet["msg"].startswith("platform down (1 of 3 app instance(s) ready): app@app2 down: not ready")
    lines = status_table(fleet)
    assert [line.split()[0] for line in lines[:-1]] == ["COMPONENT", "app@app1", "app@app2", "app@app3", "redis"]
    assert lines[-1].startswith("overall: DOWN, 1 of 3 app instance(s) ready (generated 2026-11-25T13:00:00")


def test_fleet_without_shared_components():
    from ansible_collections.callcenter.ops.plugins.filter.status_table import status_fleet
    fleet = status_fleet({"failed": True, "msg": "nothing to check: ..."}, {"a": {"components": {"app": {
        "status": "ok", "reason": "", "ready": True}}}})
    assert fleet["status"] == "ok" and fleet["components"] == {} and fleet["apps_ready"] == 1


REPLICA = {"status": "degraded", "reason": "WAL replay is paused (pg_wal_replay_resume() continues it)",
           "dsn": "host=127.0.0.1 port=5433 dbname=postgres user=postgres", "role": "replica", "connections": 1,
           "max_connections": 100, "database_size": 7566147, "server_version": "15.14", "duration": 0.02,
           "replication": {"replay_lag_bytes": 52000, "replay_lag_seconds": 12.5, "replay_paused": True,
                           "wal_receiver": "streaming", "upstream": "127.0.0.1:5432"}}
PRIMARY = {"status": "ok", "reason": "", "role": "primary", "connections": 3, "max_connections": 100,
           "database_size": 7566147, "server_version": "15.14", "duration": 0.02,
           "replication": {"replicas": [{"name": "walreceiver", "client_addr": "127.0.0.1", "state": "streaming",
                                         "replay_lag_bytes": 52000, "replay_lag_seconds": 0.2}]}}


def replicated_result(**extra):
    comps = {"postgres@127.0.0.1:5433": REPLICA, "postgres": PRIMARY,
             "app": {"status": "ok", "reason": "", "ready": True},
             "postgres@127.0.0.1:5434": {"status": "degraded", "reason": "replica unreachable: refused",
                                         "dsn": "host=127.0.0.1 port=5434", "role": "replica", "duration": 0.001}}
    comps.update(extra)
    return {"status": "degraded", "generated_at": "2026-11-25T13:00:00+00:00", "duration": 0.3, "components": comps}


def test_replica_rows_follow_the_known_components_with_their_replay_lag():
    from ansible_collections.callcenter.ops.plugins.filter.status_table import status_components
    result = replicated_result(zz={"status": "ok", "reason": ""})
    names = ["app", "postgres", "postgres@127.0.0.1:5433", "postgres@127.0.0.1:5434", "zz"]
    assert status_components(result["components"]) == names
    lines = status_table(result)
    assert [line.split()[0] for line in lines[:-1]] == ["COMPONENT"] + names
    primary, replica, gone = lines[2], lines[3], lines[4]
    assert "3/100 connections, db 7.2 MiB, v15.14, 1 replica(s) streaming, max replay lag 50.8 KiB" in primary
    assert ("DEGRADED  1/100 connections, db 7.2 MiB, v15.14, replica of 127.0.0.1:5432, streaming, "
            "replay lag 50.8 KiB / 12s, replay PAUSED  WAL replay is paused") in replica
    assert gone.split()[1] == "DEGRADED" and gone.endswith("replica unreachable: refused")


def test_replica_figures_before_the_first_replayed_transaction_and_without_wal_receiver():
    from ansible_collections.callcenter.ops.plugins.filter.status_table import status_figures
    rep = dict(REPLICA, replication={"replay_lag_bytes": 0, "replay_lag_seconds": None, "replay_paused": False,
                                     "wal_receiver": None, "upstream": None})
    assert status_figures(rep, "postgres@db2:5432").endswith("replica of ?, not streaming, replay lag 0 B")
    assert status_figures(dict(PRIMARY, replication={"replicas": []}), "postgres") == \
        "3/100 connections, db 7.2 MiB, v15.14"


def test_redis_figures_show_replicas_and_the_sentinels_view():
    from ansible_collections.callcenter.ops.plugins.filter.status_table import status_figures
    redis = {"status": "ok", "reason": "", "used_memory": 1048576, "maxmemory": 0, "mem_fragmentation_ratio": 1.2,
             "connected_clients": 5, "role": "master",
             "replication": {"role": "master", "replicas": [{"address": "127.0.0.1:6380", "state": "online",
                                                             "lag_bytes": 2048}]},
             "sentinel": {"master": "127.0.0.1:6379", "sentinels": 3, "sentinels_answering": 2,
                          "quorum_reached": True}}
    assert status_figures(redis, "redis") == ("mem 1.0 MiB / no limit, frag 1.2, 5 clients, master, 1/1 replica(s) "
                                              "online, max lag 2.0 KiB, Sentinel: master 127.0.0.1:6379, 2/3 "
                                              "answering, quorum reached")
    down = {"status": "down", "reason": "no Sentinel answered", "duration": 0.1,
            "sentinel": {"master": None, "sentinels": 3, "sentinels_answering": 0, "quorum_reached": False}}
    assert status_figures(down, "redis") == "Sentinel: master ?, 0/3 answering, quorum NOT reached"


def render_page(result):
    """The playbook's status page, rendered with plain Jinja2 and the collection's filters."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(
        str(Path(__file__).resolve().parents[4] / "playbooks" / "templates")))
    for name, fn in flt.FilterModule().filters().items():
        env.filters["callcenter.ops.%s" % name] = fn
    env.tests["match"] = lambda value, pattern: re.match(pattern, value or "") is not None
    return env.get_template("status_page.html.j2").render(
        system_status=result, system_status_grafana_url="", system_status_flower_link="",
        system_status_prometheus_url="", system_status_reload_command="ansible-playbook callcenter.ops.config_reload")


def test_page_has_a_card_per_component_replicas_after_the_known_ones_escaped():
    hostile = 'postgres@<img src=x onerror="alert(1)">:5432'
    html = render_page(replicated_result(**{hostile: dict(REPLICA, reason="<script>x</script>")}))
    ids = re.findall(r'<section class="card[^"]*" id="component-([^"]*)"', html)
    assert ids == ["app", "postgres", "postgres@127.0.0.1:5433", "postgres@127.0.0.1:5434",
                   "postgres@&lt;img src=x onerror=&#34;alert(1)&#34;&gt;:5432"], ids
    assert "<h2>PostgreSQL replica 127.0.0.1:5433 " in html
    assert "replica of 127.0.0.1:5432, streaming, replay lag 50.8 KiB / 12s, replay PAUSED" in html
    assert "<img" not in html and "<script>x" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
