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
        # the text is escaped already: unescape the href once, so & in a query string stays one &amp;
        part = _LINK.sub(lambda m: '<a href="%s">%s</a>' % (html.escape(html.unescape(m.group(2))), m.group(1)), part)
        part = _BARE.sub(lambda m: '<a href="%s">%s</a>' % (m.group(1), m.group(1)), part)
        part = _BOLD.sub(r"<strong>\1</strong>", part)
        out.append(part)
    return "".join(out)


def markdown_html(text):
    """Convert the Markdown subset used by the runbooks to an HTML fragment.

    A fenced code block or a paragraph indented under a list item stays inside that item, so a
    numbered list keeps counting across it; an ordered list that restarts after other content
    carries ``start`` so its numbers are the ones written."""
    out = []
    para = []
    state = {"lst": None, "gap": False}
    code = None
    code_in_item = False
    code_indent = 0

    def close_list():
        if state["lst"]:
            out.append("</%s>" % state["lst"])
            state["lst"] = None
        state["gap"] = False

    def flush():
        if para:
            out.append("<p>%s</p>" % _inline(" ".join(para)))
            del para[:]
        close_list()

    for line in str(text).splitlines():
        if code is not None:
            if line.strip().startswith("```"):
                block = "<pre><code>%s</code></pre>" % html.escape("\n".join(code))
                out.append(block + ("</li>" if code_in_item else ""))
                code = None
            else:
                code.append(line[code_indent:] if line[:code_indent].strip() == "" else line.lstrip())
            continue
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if stripped.startswith("```"):
            if state["lst"] and indent >= 2:
                # a code block inside the last list item: the list goes on after it
                code_in_item = True
                state["gap"] = False
                if out and out[-1].endswith("</li>"):
                    out[-1] = out[-1][:-5]
            else:
                flush()
                code_in_item = False
            code = []
            code_indent = indent
            continue
        m = re.match(r"^(#{1,4})\s+(.*)$", stripped)
        if m and indent == 0:
            flush()
            level = len(m.group(1))
            anchor = re.sub(r"[^a-z0-9]+", "-", m.group(2).lower()).strip("-")
            out.append('<h%d id="%s">%s</h%d>' % (level, anchor, _inline(m.group(2)), level))
            continue
        m = re.match(r"^(-|(\d+)\.)\s+(.*)$", stripped)
        if m and indent < 2:
            kind = "ul" if m.group(1) == "-" else "ol"
            if para:
                out.append("<p>%s</p>" % _inline(" ".join(para)))
                del para[:]
            if state["lst"] != kind:
                close_list()
                number = int(m.group(2)) if kind == "ol" else 1
                out.append('<ol start="%d">' % number if kind == "ol" and number != 1 else "<%s>" % kind)
                state["lst"] = kind
            state["gap"] = False
            out.append("<li>%s</li>" % _inline(m.group(3)))
            continue
        if not stripped:
            if para:
                out.append("<p>%s</p>" % _inline(" ".join(para)))
                del para[:]
            if state["lst"]:
                state["gap"] = True  # the list ends only if what follows is not indented under it
            continue
        if state["lst"] and indent >= 2:
            if state["gap"]:
                out[-1] = out[-1][:-5] + "<p>%s</p></li>" % _inline(stripped) if out[-1].endswith("</li>") else out[-1]
                state["gap"] = False
            else:
                out[-1] = out[-1][:-5] + " " + _inline(stripped) + "</li>"
            continue
        if state["lst"]:
            close_list()
        para.append(stripped)
    if code is not None:
        out.append("<pre><code>%s</code></pre>%s" % (html.escape("\n".join(code)), "</li>" if code_in_item else ""))
    flush()
    return "\n".join(out)


class FilterModule(object):
    def filters(self):
        return {"markdown_html": markdown_html}
