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
