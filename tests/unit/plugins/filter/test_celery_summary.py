from ansible_collections.callcenter.ops.plugins.filter.celery_summary import celery_summary


def test_summary_reads_like_a_status_report():
    lines = celery_summary({
        "healthy": False, "workers_online": 1, "broker": "redis://:***@h:6379/0",
        "workers": [{"name": "w1@h", "ping": True, "active": 2}, {"name": "w2@h", "ping": False, "active": None}],
        "queues": {"quality": 12, "stats": 0},
        "queue_details": {"quality": {"unacked": 1, "exists": True}, "stats": {"unacked": 0, "exists": False}},
        "beat": {"last_daily_stats": {"last_run_at": "2026-11-25T03:00:00+00:00", "age_seconds": 5400,
                                      "total_run_count": 7}},
        "problems": ["expected worker(s) not answering: w2@h"],
    })
    assert lines[0] == "Celery UNHEALTHY: 1 worker(s) online, broker redis://:***@h:6379/0"
    assert lines[1] == "  worker w1@h    ok       active 2"
    assert lines[2] == "  worker w2@h    NO PING  active -"
    assert lines[3] == "  queue  quality  waiting 12 (unacked 1)"
    assert lines[4] == "  queue  stats    waiting 0  [not declared by any worker]"
    assert lines[5] == "  beat   last_daily_stats  last run 2026-11-25T03:00:00+00:00 (90m ago, 7 runs)"
    assert lines[6] == "  PROBLEM: expected worker(s) not answering: w2@h"
