#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: celery_queue_purge
short_description: Remove the waiting messages of Celery queues on a Redis broker
version_added: "0.1.0"
description:
  - Deletes every message waiting in the named Celery queues, in all of Celery's Redis
    priority sub-queues (C(<queue>) and C(<queue>\x06\x16<1..9>), whatever the app's
    C(priority_steps)), and returns how many were removed per queue.
  - Needs only redis-py, not Celery.
  - Each queue is counted and emptied in one Redis transaction, so the count is exactly
    what was removed.
  - Messages already reserved by a worker (prefetched, not yet acknowledged) are not
    touched, the same as C(celery purge).
  - In check mode nothing is removed; the result says how many messages would be.
author:
  - callcenter.ops maintainers (@callcenter-ops)
extends_documentation_fragment:
  - callcenter.ops.broker.connection
  - callcenter.ops.broker
  - callcenter.ops.attributes
attributes:
  check_mode:
    support: full
    details: Counts the messages that would be removed and removes none.
  diff_mode:
    support: none
    details: No diff is produced.
options:
  queues:
    description:
      - Names of the queues to purge.
    type: list
    elements: str
    required: true
  priority_steps:
    description:
      - Not needed for any usual app. Every priority sub-queue kombu can use for a queue
        (steps 0 to 9) is always purged, whatever the app's
        C(broker_transport_options.priority_steps).
      - Only for an app whose steps include values outside 0 to 9; those are purged too.
    type: list
    elements: int
  fail_on_unknown:
    description:
      - Fail, before purging anything, when a queue is empty and no worker has declared it
        (most often a typo in the name). With V(false) such a queue is reported and skipped.
    type: bool
    default: true
seealso:
  - module: callcenter.ops.celery_health
'''

EXAMPLES = r'''
- name: See how many messages a purge would remove
  callcenter.ops.celery_queue_purge:
    broker_url: redis://127.0.0.1:6379/0
    queues: [stats]
  check_mode: true

- name: Purge the stats queue
  callcenter.ops.celery_queue_purge:
    broker_url: "{{ celery_broker_url }}"
    broker_password: "{{ vault_redis_password }}"
    queues: [stats]
  register: purge

# For a purge with a confirmation prompt (a person is asked; an AWX job or ansible-runner
# fails at once unless it passes celery_purge_confirm=true), use the playbook:
# ansible-playbook callcenter.ops.celery_purge -e celery_purge_queues=stats
'''

RETURN = r'''
purged:
  description: Messages removed per queue (in check mode, messages that would be removed).
  returned: always
  type: dict
  sample: {"stats": 120}
total:
  description: Sum of RV(purged).
  returned: always
  type: int
  sample: 120
unknown_queues:
  description: Queues that were empty and not declared by any worker.
  returned: always
  type: list
  elements: str
  sample: []
broker:
  description: The broker URL with the password masked.
  returned: always
  type: str
  sample: redis://127.0.0.1:6379/0
broker_master:
  description:
    - For a C(sentinel://) O(broker_url), the master the Sentinels named (C(host:port)), which the
      queues were purged on.
  returned: when O(broker_url) names Sentinels and they named a master
  type: str
  sample: 10.0.0.2:6379
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.callcenter.ops.plugins.module_utils import celery_client
from ansible_collections.callcenter.ops.plugins.module_utils import redis_client
from ansible_collections.callcenter.ops.plugins.module_utils.params import check_timeouts


def main():
    argument_spec = redis_client.broker_argument_spec()
    argument_spec.update(
        queues=dict(type="list", elements="str", required=True),
        priority_steps=dict(type="list", elements="int"),
        fail_on_unknown=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if not redis_client.HAS_REDIS:
        module.fail_json(msg=missing_required_lib("redis"), exception=redis_client.REDIS_IMP_ERR)
    p = module.params
    check_timeouts(module, "timeout")
    queues = []
    for q in p["queues"]:
        q = q.strip()
        if not q:
            module.fail_json(msg="queues must not contain an empty name")
        if q not in queues:
            queues.append(q)
    if not queues:
        module.fail_json(msg="queues is empty: name at least one queue to purge")
    url = redis_client.broker_from_params(module)

    result = dict(changed=False, purged={}, total=0, unknown_queues=[], broker=url.safe)
    try:
        client = redis_client.open_checked(url, p["timeout"], p["validate_certs"], p["ca_path"])
        if url.master_where:
            result["broker_master"] = url.master_where
        details = celery_client.queue_depths(client, queues, p["priority_steps"])
        unknown = [q for q in queues if not details[q]["exists"]]
        result["unknown_queues"] = unknown
        if unknown and p["fail_on_unknown"]:
            module.fail_json(msg="unknown queue(s): %s (empty and not declared by any worker; check the name, "
                                 "or set fail_on_unknown=false); nothing was purged" % ", ".join(unknown), **result)
        for q in unknown:
            module.warn("queue %s is empty and no worker has declared it: skipped" % q)
        known = [q for q in queues if q not in unknown]
        purged = celery_client.purge_queues(client, known, p["priority_steps"], check_mode=module.check_mode)
    except redis_client.BrokerError as e:
        module.fail_json(msg=str(e), **result)
    except redis_client.redis.RedisError as e:
        module.fail_json(msg=redis_client.describe_error(e, url, p["timeout"]), **result)

    for q in unknown:
        purged[q] = 0
    result["purged"] = purged
    result["total"] = sum(purged.values())
    result["changed"] = result["total"] > 0
    verb = "would remove" if module.check_mode else "removed"
    result["msg"] = "%s %d message(s): %s" % (verb, result["total"],
                                              ", ".join("%s=%d" % (q, n) for q, n in sorted(purged.items())))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
