# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  app_url:
    description:
      - Base URL of the call-center application, for example C(https://app1.internal:8443).
      - If not set, the C(CALLCENTER_APP_URL) environment variable is used.
      - The endpoints it must serve are written down in the collection's C(docs/app-http-contract.md).
    type: str
  app_token:
    description:
      - Admin bearer token of the application.
      - If not set, the C(CALLCENTER_ADMIN_TOKEN) environment variable is used (preferred on
        an ad-hoc command line).
    type: str
  validate_certs:
    description:
      - Verify the application's TLS certificate. Only switch off for test systems.
    type: bool
    default: true
  ca_path:
    description:
      - CA bundle to verify the application's certificate with.
    type: path
'''
