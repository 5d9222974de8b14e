"""The runbooks' Markdown subset: numbered steps keep counting across the code blocks under them."""

import re

from ansible_collections.callcenter.ops.plugins.filter.markdown_html import markdown_html

STEPS = """1. Restart the worker:

   ```sh
   # needs: systemd
   sudo systemctl restart callcenter-celery
   ```

2. Lower its concurrency.
3. Check again:

   ```sh
   ansible-playbook -i inv.yml callcenter.ops.celery_status
   ```

4. Done.
"""


def test_numbered_steps_survive_code_blocks_under_them():
    html = markdown_html(STEPS)
    assert html.count("<ol") == 1 and html.count("</ol>") == 1, html
    assert html.count("<li>") == 4 and html.count("</li>") == 4, html
    # each code block sits inside its step
    assert re.search(r"<li>Restart the worker:\s*<pre><code># needs: systemd\nsudo systemctl restart "
                     r"callcenter-celery</code></pre></li>", html), html
    assert "<li>Done.</li>" in html


def test_code_lines_lose_only_the_list_indent():
    html = markdown_html("1. a\n\n   ```sh\n   if x; then\n     y\n   fi\n   ```\n")
    assert "<pre><code>if x; then\n  y\nfi</code></pre>" in html


def test_a_list_restarted_after_a_paragraph_keeps_its_numbers():
    html = markdown_html("1. one\n2. two\n\nA note between the steps.\n\n3. three\n")
    assert '<ol start="3">' in html
    assert "<p>A note between the steps.</p>" in html


def test_top_level_code_block_ends_the_list():
    html = markdown_html("- a\n- b\n\n```sh\ncmd\n```\n\ntext\n")
    assert html.index("</ul>") < html.index("<pre>")
    assert "<p>text</p>" in html


def test_link_with_a_query_string_is_escaped_once():
    html = markdown_html("[graph](http://prom:9090/graph?g0.expr=up%7Bjob%3D%22flower%22%7D&g0.tab=0)")
    assert 'href="http://prom:9090/graph?g0.expr=up%7Bjob%3D%22flower%22%7D&amp;g0.tab=0"' in html


def test_indented_paragraph_after_a_blank_line_stays_in_the_item():
    html = markdown_html("1. step\n\n   more about the step\n2. next\n")
    assert html.count("<ol") == 1
    assert "<li>step<p>more about the step</p></li>" in html


def test_inline_code_and_html_are_escaped():
    html = markdown_html("Run `grep -x 'a<b'` & go")
    assert "<code>grep -x &#x27;a&lt;b&#x27;</code>" in html and "&amp; go" in html
