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
'''

    # callcenter.ops.broker: the rest of the options of the modules that only talk to the broker.
    DOCUMENTATION = r'''
options:
  timeout:
    description:
      - Seconds to wait for Redis and for the workers' replies. Must be greater than 0 and at
        most 86400; C(nan) and C(inf) are refused.
      - Redis being down is reported at once (no retries); a worker that does not answer
        costs at most this long.
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
'''
