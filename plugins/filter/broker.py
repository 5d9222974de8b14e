# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The roles check a broker URL with the modules' own parser (module_utils/redis_client.py): a
URL a role accepts is one its host script and the modules accept, refused in the same words."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.callcenter.ops.plugins.module_utils.redis_client import BrokerError, BrokerURL, ENV_SENTINEL_MASTER


def broker_url_problem(url, master_name="", prefix=""):
    """'' when ``url`` is a usable broker URL (a Sentinel one with ``master_name``), else why not,
    naming the caller's variables: ``prefix`` + ``broker_url`` / ``sentinel_master_name``."""
    try:
        BrokerURL(url, master_name=master_name)
    except BrokerError as e:
        said = str(e)
    else:
        return ""
    if prefix:  # the modules' option names (and their environment variable) become the role's variables
        said = said.replace("sentinel_master_name (or %s)" % ENV_SENTINEL_MASTER, prefix + "sentinel_master_name")
        said = said.replace("broker_url", prefix + "broker_url")
    return said


class FilterModule(object):
    def filters(self):
        return {"broker_url_problem": broker_url_problem}
