# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # callcenter.ops.postgres: where PostgreSQL is and how to log in, matching
    # module_utils/postgres.py postgres_connection_spec() (the one declaration of these options).
    DOCUMENTATION = r'''
options:
  pg_host:
    description:
      - PostgreSQL host. In M(callcenter.ops.system_status) it enables the C(postgres) component.
    type: str
  pg_port:
    description:
      - PostgreSQL port.
    type: int
    default: 5432
  pg_user:
    description:
      - PostgreSQL user (any user may read pg_stat_activity counts).
    type: str
    default: postgres
  pg_password:
    description:
      - PostgreSQL password. If not set, the C(PGPASSWORD) environment variable is used.
    type: str
  pg_database:
    description:
      - Database to connect to; its size is shown.
    type: str
    default: postgres
'''
