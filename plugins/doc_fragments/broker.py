# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  broker_url:
    description:
      - URL of the Celery broker (Redis), for example C(redis://127.0.0.1:6379/0),
        C(redis://:password@redis.internal:6379/0), C(rediss://user:password@host:6380/0)
        or C(redis+socket:///run/redis/redis.sock).
      - A password inside the URL is masked in every output of the module.
      - If not set, the C(CELERY_BROKER_URL) environment variable is used.
      - On an ad-hoc command line (C(ansible -m ... -a ...)) prefer the environment variable
        or O(broker_password), because ansible-core 2.19 and later print an ad-hoc task's
        arguments when the task fails, and a password typed into C(-a) is shown there.
    type: str
    required: true
  broker_password:
    description:
      - Password for Redis, instead of putting it into O(broker_url).
      - Takes precedence over a password in O(broker_url).
      - If not set, the C(CELERY_BROKER_PASSWORD) environment variable is used.
    type: str
  timeout:
    description:
      - Seconds to wait for Redis and for the workers' replies. Must be greater than 0.
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
