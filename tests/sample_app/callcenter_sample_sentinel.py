"""The sample app with its broker behind Redis Sentinel, configured as kombu wants it:
``CELERY_BROKER_URL=sentinel://h1:26379;sentinel://h2:26379`` plus ``master_name`` (and the
Sentinels' password, if any) in ``broker_transport_options``. Same tasks and queues as
``callcenter_sample``."""

import os

from callcenter_sample import app

options = dict(app.conf.broker_transport_options or {})
options["master_name"] = os.environ.get("CELERY_BROKER_SENTINEL_MASTER", "mymaster")
if os.environ.get("CELERY_BROKER_SENTINEL_PASSWORD"):
    options["sentinel_kwargs"] = {"password": os.environ["CELERY_BROKER_SENTINEL_PASSWORD"]}
app.conf.broker_transport_options = options
