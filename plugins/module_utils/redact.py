# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place where secrets are kept out of what is shown: passwords and tokens in
messages, user info in URLs, and the values a module must never print.

STDLIB ONLY: host scripts import this file too (see roles/host_files/vars/main.yml)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from urllib.parse import unquote

# What a secret is replaced with, in messages and in URLs shown (redis://:***@host:6379/0).
MASK = "***"

# scheme://userinfo@ : everything up to the last "@" before the path is user info.
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")


def mask(text, *secrets):
    """``text`` with every non-empty secret replaced by MASK. The longest secrets go first, so
    a secret that contains another (a password and its percent-encoded form) is masked whole."""
    text = str(text)
    for secret in sorted(set(s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def strip_userinfo(url):
    """``url`` without the ``user:password@`` part: the form in which every URL is shown,
    returned or written anywhere (results, messages, pages). Anything else is kept as given."""
    if not isinstance(url, str):
        return url
    return _USERINFO.sub(r"\1", url, count=1)


def split_userinfo(url):
    """``(url without user info, user, password)``; user and password are percent-decoded,
    None when the URL holds none."""
    m = _USERINFO.match(url) if isinstance(url, str) else None
    if not m:
        return url, None, None
    user, sep, password = url[len(m.group(1)):m.end() - 1].partition(":")
    return m.group(1) + url[m.end():], unquote(user), (unquote(password) if sep else None)


def hide(module, *secrets):
    """Make an AnsibleModule mask each non-empty secret in everything it returns or logs
    (its ``no_log_values``), for secrets that did not come in a ``no_log`` option - a password
    inside a URL, say."""
    for secret in secrets:
        if secret:
            module.no_log_values.add(secret)
