# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  flower_url:
    description:
      - Flower's URL, with its URL prefix, for example C(http://127.0.0.1:5555/) or
        C(https://ops.example/flower/). Enables the C(flower) component.
      - Flower must ask for credentials (C(/) answers 401 without them); one that does not is
        reported C(degraded), since anyone who reaches it sees every task and its arguments.
      - Give credentials with O(flower_user) and O(flower_password), not inside the URL. User
        info inside the URL (C(http://user:pass@host:5555/)) is still used, with a warning, and
        is taken out of every URL shown or returned.
    type: str
  flower_user:
    description:
      - User of Flower's basic auth (one of the role's C(flower_basic_auth) users). With
        O(flower_password), the check also logs in and reports credentials Flower rejects.
      - If not set, the C(FLOWER_USER) environment variable is used.
    type: str
  flower_password:
    description:
      - Password of O(flower_user). Never shown in any output.
      - If not set, the C(FLOWER_PASSWORD) environment variable is used. On an ad-hoc command
        line use the environment variable, since ansible-core prints a failed ad-hoc task's arguments.
    type: str
'''
