"""The sample app as many real apps configure it: ``priority_steps=list(range(10))`` (what
Celery's docs suggest for Redis priorities), so messages sit in up to ten lists per queue,
``<queue>`` and ``<queue>\\x06\\x16<1..9>``. Same tasks and queues as ``callcenter_sample``."""

from callcenter_sample import app

app.conf.broker_transport_options = {"priority_steps": list(range(10)), "queue_order_strategy": "priority"}
