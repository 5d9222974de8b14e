#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: config_reload
short_description: Reload the call-center application's run-time settings
version_added: "0.1.0"
description:
  - Asks the application to reload the settings that can change while it runs (Quality,
    FeatureFlag, Logging) with C(POST /admin/config/reload) and an admin token, and reports
    what was reloaded and what needs a restart (Database, Redis, AudioSocket).
  - Or, with O(method=signal), sends C(SIGHUP) to the main process of a systemd unit or of
    a pidfile.
  - Optionally checks afterwards that the application still answers C(GET /health/ready).
  - In check mode nothing is sent; the result says what would be done.
author:
  - callcenter.ops maintainers (@callcenter-ops)
extends_documentation_fragment:
  - callcenter.ops.app_api
  - callcenter.ops.attributes
attributes:
  check_mode:
    support: full
    details: Sends nothing; reports what it would do (and C(changed=true)).
  diff_mode:
    support: none
    details: No diff is produced.
options:
  method:
    description:
      - V(http) calls the reload endpoint (needs O(app_url) and O(app_token)).
      - V(signal) sends SIGHUP to O(unit)'s main process or to the process in O(pidfile).
    type: str
    choices: [http, signal]
    default: http
  sections:
    description:
      - Sections to reload. Default, every reloadable section.
    type: list
    elements: str
  timeout:
    description:
      - Seconds to wait for each HTTP answer.
    type: float
    default: 10
  retries:
    description:
      - Retries when the application cannot be reached (connection refused, reset). Never
        retried after the application answered, so a reload is not sent twice.
    type: int
    default: 2
  verify_ready:
    description:
      - After the reload, check C(GET /health/ready) and fail if the application is not ready.
    type: bool
    default: true
  ready_timeout:
    description:
      - Seconds to keep asking C(/health/ready) before giving up.
    type: float
    default: 15
  unit:
    description:
      - systemd unit whose main process gets SIGHUP, for O(method=signal).
      - With O(pidfile) too, the PID read from the file must belong to this unit (its cgroup).
    type: str
  pidfile:
    description:
      - File holding the PID that gets SIGHUP, for O(method=signal) without systemd.
      - Must be a regular file holding one PID greater than 1 of a running process that is not
        this module, its process group or one of its parents; anything else is refused before any
        signal is sent, in check mode too.
    type: path
  process_name:
    description:
      - Name the process that gets SIGHUP must have (its C(/proc/PID/comm), the file name of
        its executable, or of its first or second command-line word, e.g. V(gunicorn),
        V(python3) or V(callcenter)). A pidfile left behind and its PID reused by another
        program is then refused instead of signalled. Recommended with O(pidfile).
    type: str
notes:
  - The HTTP contract is written down in the collection's C(docs/app-http-contract.md).
  - Sections that only take effect after a restart (Database, Redis, AudioSocket) cannot be
    reloaded; asking for them gives a warning and C(changed=false) for them.
seealso:
  - module: callcenter.ops.system_status
'''

EXAMPLES = r'''
- name: Reload quality and feature-flag settings, then check readiness
  callcenter.ops.config_reload:
    app_url: https://app1.internal:8443
    app_token: "{{ vault_admin_token }}"
    sections: [Quality, FeatureFlag]

- name: Reload through SIGHUP on a host without the HTTP endpoint
  callcenter.ops.config_reload:
    method: signal
    unit: callcenter.service
    verify_ready: false

# Ad hoc (token from the environment, not the command line):
# CALLCENTER_ADMIN_TOKEN=... ansible app -m callcenter.ops.config_reload -a app_url=https://app1.internal:8443
'''

RETURN = r'''
reloaded:
  description: Sections whose new values are in effect, as the application reports them.
  returned: method=http, not in check mode
  type: list
  elements: str
  sample: [Quality, FeatureFlag, Logging]
unchanged:
  description: Sections re-read without a change.
  returned: method=http, not in check mode
  type: list
  elements: str
  sample: []
restart_required:
  description: Sections that changed but take effect only after a restart.
  returned: method=http, not in check mode
  type: list
  elements: str
  sample: [Database]
not_reloadable:
  description: Requested sections that the application cannot reload while it runs (restart-only).
  returned: method=http, not in check mode
  type: list
  elements: str
  sample: [Redis]
status:
  description:
    - HTTP status of the application's answer when the reload failed.
    - V(null) when the application did not answer (refused, timed out, TLS failure).
  returned: when the HTTP reload failed (method=http)
  type: int
  sample: 403
audit_id:
  description: The application's audit log entry for this reload.
  returned: when the application gives one
  type: str
  sample: a1b2c3
pid:
  description: Process that got SIGHUP (or would get it, in check mode).
  returned: method=signal
  type: int
  sample: 1234
ready:
  description: Whether C(/health/ready) answered ready after the reload.
  returned: when O(verify_ready) is true and not in check mode
  type: bool
  sample: true
msg:
  description: What was (or would be) done.
  returned: always
  type: str
  sample: "reloaded Quality, FeatureFlag, Logging; restart needed for Database"
'''

import signal
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.callcenter.ops.plugins.module_utils import app_api, process
from ansible_collections.callcenter.ops.plugins.module_utils.params import check_timeouts


def wait_ready(client, timeout):
    """Poll /health/ready until ready or ``timeout``; returns (ready, last reason)."""
    deadline = time.monotonic() + timeout
    reason = ""
    while True:
        try:
            ready, body = client.ready()
            if ready:
                return True, ""
            reason = "not ready: %s" % (body.get("checks") or body.get("status"))
        except app_api.AppError as e:
            reason = str(e)
        if time.monotonic() >= deadline:
            return False, reason
        time.sleep(0.5)


def target_pid(module):
    """The PID that gets SIGHUP, checked (module_utils/process.py) before anything is sent."""
    p = module.params
    try:
        if p["pidfile"]:
            pid = process.read_pidfile(p["pidfile"])
        else:
            systemctl = module.get_bin_path("systemctl")
            if not systemctl:
                module.fail_json(msg="unit=%s needs systemctl, which is not on this host; give pidfile instead"
                                     % p["unit"])
            rc, out, err = module.run_command([systemctl, "show", "--property", "MainPID", "--value", p["unit"]])
            if rc != 0:
                module.fail_json(msg="systemctl could not tell the main PID of %s: %s" % (p["unit"], err.strip()))
            text = out.strip()
            if not text.isdigit() or int(text) == 0:
                module.fail_json(msg="unit %s has no running main process (is it started?)" % p["unit"])
            pid = int(text)
        process.check_target(pid, p["process_name"], p["unit"] if p["pidfile"] else None)
    except process.ProcessError as e:
        module.fail_json(msg=str(e))
    return pid


SECTION_RESTART_ONLY = ("Database", "Redis", "AudioSocket")  # docs/app-http-contract.md


def main():
    argument_spec = app_api.app_argument_spec()
    argument_spec.update(
        method=dict(type="str", choices=["http", "signal"], default="http"),
        sections=dict(type="list", elements="str"),
        timeout=dict(type="float", default=10),
        retries=dict(type="int", default=2),
        verify_ready=dict(type="bool", default=True),
        ready_timeout=dict(type="float", default=15),
        unit=dict(type="str"),
        pidfile=dict(type="path"),
        process_name=dict(type="str"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    check_timeouts(module, "timeout", "ready_timeout", allow_zero=("ready_timeout",))
    if p["retries"] < 0 or p["retries"] > 100:
        module.fail_json(msg="retries must be between 0 and 100 (got %d)" % p["retries"])
    if p["method"] == "http" and not (p["app_url"] and p["app_token"]):
        module.fail_json(msg="method=http needs app_url and app_token (or CALLCENTER_APP_URL and "
                             "CALLCENTER_ADMIN_TOKEN in the environment)")
    if p["method"] == "signal" and not (p["unit"] or p["pidfile"]):
        module.fail_json(msg="method=signal needs unit or pidfile")
    if p["method"] == "http" and (p["unit"] or p["pidfile"] or p["process_name"]):
        module.fail_json(msg="unit, pidfile and process_name are for method=signal")
    if p["verify_ready"] and not p["app_url"]:
        module.fail_json(msg="verify_ready needs app_url (or set verify_ready=false)")

    client = None
    if p["app_url"]:
        try:
            client = app_api.AppClient(p["app_url"], p["app_token"], p["timeout"], p["validate_certs"], p["ca_path"])
        except app_api.AppError as e:
            module.fail_json(msg=str(e))
    result = dict(changed=False)
    what = ", ".join(p["sections"]) if p["sections"] else "all reloadable sections"

    if p["method"] == "signal":
        pid = target_pid(module)
        result["pid"] = pid
        if module.check_mode:
            module.exit_json(changed=True, pid=pid, msg="would send SIGHUP to process %d" % pid)
        try:
            process.send_signal(pid, signal.SIGHUP, p["process_name"], p["unit"] if p["pidfile"] else None)
        except process.ProcessError as e:
            module.fail_json(msg=str(e), pid=pid)
        result.update(changed=True, msg="sent SIGHUP to process %d" % pid)
    else:
        if module.check_mode:
            module.exit_json(changed=True, msg="would POST %s%s to reload %s" % (
                client.base, app_api.RELOAD_PATH, what))
        try:
            data = client.reload(p["sections"], retries=p["retries"])
        except app_api.AppError as e:
            module.fail_json(msg="config reload failed: %s" % e, status=e.status)
        asked = p["sections"] or []
        not_reloadable = [s for s in asked if s in SECTION_RESTART_ONLY or s in data["restart_required"]]
        result.update(reloaded=data["reloaded"], unchanged=data["unchanged"],
                      restart_required=data["restart_required"], not_reloadable=not_reloadable,
                      changed=bool(data["reloaded"]) and bool(data["changed"]))
        if data.get("audit_id"):
            result["audit_id"] = data["audit_id"]
        msg = "reloaded %s" % (", ".join(data["reloaded"]) or "nothing")
        if not_reloadable:
            module.warn("%s cannot be reloaded while the application runs: restart it to apply %s"
                        % (", ".join(not_reloadable), "them" if len(not_reloadable) > 1 else "it"))
            msg += "; %s cannot be reloaded (restart-only)" % ", ".join(not_reloadable)
        others = [s for s in data["restart_required"] if s not in not_reloadable]
        if others:
            module.warn("changed settings wait for a restart: %s" % ", ".join(others))
            msg += "; restart needed for %s" % ", ".join(others)
        result["msg"] = msg

    if p["verify_ready"]:
        ready, reason = wait_ready(client, p["ready_timeout"])
        result["ready"] = ready
        if not ready:
            done = result.pop("msg")
            module.fail_json(msg="%s, but the application is not healthy afterwards: %s" % (done, reason), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
