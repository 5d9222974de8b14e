# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # callcenter.ops.broker.connection: where the broker is and its password. Every module that
    # reads the broker uses it (celery_health, celery_queue_purge, system_status), matching
    # redis_client.broker_connection_spec().
    CONNECTION = r'''
options:
  broker_url:
    description:
      - URL of the Celery broker (Redis), for example C(redis://127.0.0.1:6379/0),
        C(redis://:password@redis.internal:6379/0), C(rediss://user:password@host:6380/0)
        or C(redis+socket:///run/redis/redis.sock).
      - Redis behind Sentinel, in kombu's form (the same string the app uses) - the Sentinels joined by C(;),
        for example C(sentinel://10.0.0.1:26379;sentinel://10.0.0.2:26379;sentinel://10.0.0.3:26379/0),
        with O(sentinel_master_name). A password in the first entry (C(sentinel://:password@10.0.0.1:26379))
        is the Redis master's, as in kombu; the Sentinels' own password is O(sentinel_password).
        The module asks every Sentinel at once which server is the master, checks that it answers as
        one, and gives Celery the same transport options as the app (C(master_name), C(sentinel_kwargs)).
        Failures say what failed - no Sentinel answered, the Sentinels do not know the master name, or
        the master they name is down (during a failover) - within O(timeout). TLS to a Sentinel-managed
        master is not supported.
      - If not set, the C(CELERY_BROKER_URL) environment variable is used. M(callcenter.ops.celery_health)
        and M(callcenter.ops.celery_queue_purge) need one of the two; in M(callcenter.ops.system_status)
        it enables the C(celery) and C(redis) components.
      - A password inside the URL is masked in every output of the module.
      - On an ad-hoc command line (C(ansible -m ... -a ...)) put the URL or the password only
        into the environment (C(CELERY_BROKER_URL), C(CELERY_BROKER_PASSWORD)) of the host that
        runs the module, never into C(-a). ansible-core 2.19 and later print a failed ad-hoc
        task's arguments whatever the module masks, so a password typed into C(-a) (in
        O(broker_url) or O(broker_password)) is shown when the task fails.
      - In a playbook take it from a vault; C(no_log) keeps it masked there, also at C(-vvv).
    type: str
  broker_password:
    description:
      - Password for Redis, instead of putting it into O(broker_url). Takes precedence over a
        password in O(broker_url).
      - If not set, the C(CELERY_BROKER_PASSWORD) environment variable is used, which is the only
        safe place for it on an ad-hoc command line (see O(broker_url)).
    type: str
  sentinel_master_name:
    description:
      - For a C(sentinel://) O(broker_url), the name the Sentinels monitor the master under - the
        C(master_name) of the app's C(broker_transport_options) (C(sentinel monitor <name> ...) in
        C(sentinel.conf)). Required with a C(sentinel://) URL, ignored otherwise.
      - If not set, the C(CELERY_BROKER_SENTINEL_MASTER) environment variable is used.
    type: str
  sentinel_password:
    description:
      - For a C(sentinel://) O(broker_url), the password of the Sentinels themselves (C(requirepass)
        in C(sentinel.conf); the app's C(broker_transport_options.sentinel_kwargs.password)), when
        they have one. The master's password is O(broker_password) or the one in O(broker_url).
      - If not set, the C(CELERY_BROKER_SENTINEL_PASSWORD) environment variable is used.
    type: str
'''

    # callcenter.ops.broker: the rest of the options of the modules that only talk to the broker.
    DOCUMENTATION = r'''
options:
  timeout:
    description:
      - Seconds to wait for Redis and for the workers' replies. Must be greater than 0 and at
        most 86400; C(nan) and C(inf) are refused.
      - Redis being down is reported at once (no retries); a worker that does not answer
        costs at most this long. A Celery call whose broker connection breaks meanwhile (a
        Sentinel master killed mid-call, which kombu keeps retrying) is abandoned after this
        long plus 1 second, with a sentence.
    type: float
    default: 2.0
  validate_certs:
    description:
      - For C(rediss://) URLs, whether the server certificate is verified.
    type: bool
    default: true
  ca_path:
    description:
      - For C(rediss://) URLs, a CA bundle to verify the server certificate with.
    type: path
requirements:
  - redis (redis-py) >= 4.2 on the host that runs the module
notes:
  - Flower and Sentinel (read from Flower 2.2's code) - its workers and tasks pages follow Celery's
    events, which work through any broker URL Celery accepts. Its broker page and queue lengths
    (C(/broker), C(/api/queues/length)) read C(sentinel://) URLs with C(master_name) from the app's
    C(broker_transport_options) (also C(sentinel_kwargs)), but connect only to the first Sentinel
    of the URL, and count the default priority steps (0, 3, 6, 9) unless the app sets
    C(priority_steps). Use M(callcenter.ops.celery_health) or the celery_metrics role for queue depths.
'''
