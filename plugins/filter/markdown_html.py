# -*- coding: utf-8 -*-
# Copyright: (c) 2026, callcenter.ops maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small Markdown subset to HTML, for the runbooks: headings, paragraphs, lists, fenced
code, inline code, bold and links. No dependency on the controller or the hosts."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import html
import re

_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_BARE = re.compile(r"(?<![\"'=>])\b(https?://[^\s<)]+)")
_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")


def _inline(text):
    parts = _CODE.split(text)
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append("<code>%s</code>" % html.escape(part))
            continue
        part = html.escape(part, quote=False)
        part = _LINK.sub(lambda m: '<a href="%s">%s</a>' % (html.escape(m.group(2)), m.group(1)), part)
        part = _BARE.sub(lambda m: '<a href="%s">%s</a>' % (m.group(1), m.group(1)), part)
        part = _BOLD.sub(r"<strong>\1</strong>", part)
        out.append(part)
    return "".join(out)


def markdown_html(text):
    """Convert the Markdown subset used by the runbooks to an HTML fragment."""
    out = []
    para = []
    lst = None
    code = None

    def flush():
        nonlocal lst
        if para:
            out.append("<p>%s</p>" % _inline(" ".join(para)))
            del para[:]
        if lst:
            out.append("</%s>" % lst)
            lst = None

    for line in str(text).splitlines():
        if code is not None:
            if line.strip().startswith("```"):
                out.append("<pre><code>%s</code></pre>" % html.escape("\n".join(code)))
                code = None
            else:
                code.append(line)
            continue
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            code = []
            continue
        m = re.match(r"^(#{1,4})\s+(.*)$", stripped)
        if m:
            flush()
            level = len(m.group(1))
            anchor = re.sub(r"[^a-z0-9]+", "-", m.group(2).lower()).strip("-")
            out.append('<h%d id="%s">%s</h%d>' % (level, anchor, _inline(m.group(2)), level))
            continue
        m = re.match(r"^(-|\d+\.)\s+(.*)$", stripped)
        if m:
            kind = "ul" if m.group(1) == "-" else "ol"
            if para:
                out.append("<p>%s</p>" % _inline(" ".join(para)))
                del para[:]
            if lst != kind:
                if lst:
                    out.append("</%s>" % lst)
                out.append("<%s>" % kind)
                lst = kind
            out.append("<li>%s</li>" % _inline(m.group(2)))
            continue
        if not stripped:
            flush()
            continue
        if lst and line.startswith("  "):
            out[-1] = out[-1][:-5] + " " + _inline(stripped) + "</li>"
            continue
        para.append(stripped)
    if code is not None:
        out.append("<pre><code>%s</code></pre>" % html.escape("\n".join(code)))
    flush()
    return "\n".join(out)


class FilterModule(object):
    def filters(self):
        return {"markdown_html": markdown_html}
