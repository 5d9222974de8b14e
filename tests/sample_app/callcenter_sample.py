"""A small Celery app shaped like the call-center platform's: queues ``quality`` and
``stats`` and a beat schedule with ``last_daily_stats``. Used by the tests and the
local demo stack; the broker comes from ``CELERY_BROKER_URL``."""

import os
import time

from celery import Celery

app = Celery("callcenter_sample", broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_default_queue="quality",
    task_routes={
        "callcenter_sample.score_call": {"queue": "quality"},
        "callcenter_sample.sleep": {"queue": "quality"},
        "callcenter_sample.daily_stats": {"queue": "stats"},
    },
    broker_transport_options={"priority_steps": [0, 3, 6, 9], "queue_order_strategy": "priority"},
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    beat_schedule={
        "last_daily_stats": {
            "task": "callcenter_sample.daily_stats",
            "schedule": float(os.environ.get("SAMPLE_BEAT_INTERVAL", "5")),
        },
    },
    timezone="UTC",
    beat_sync_every=1,  # write the schedule file after every sent task, so checks see fresh data
)


@app.task(name="callcenter_sample.score_call")
def score_call(call_id):
    return {"call_id": call_id, "score": 0.9}


@app.task(name="callcenter_sample.daily_stats")
def daily_stats():
    return {"calls": 0}


@app.task(name="callcenter_sample.sleep")
def sleep(seconds):
    time.sleep(seconds)
    return seconds
