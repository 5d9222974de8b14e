"""The runbooks role's rendered pages, with the operator's own names."""

import os

ROOT = os.environ["CCOPS_MOLECULE_ROOT"] + "/opt/callcenter/doc/operations/runbooks"
NAMES = ["celery-worker-down", "celery-queue-backlog", "flower-down", "circuit-breaker-open", "high-transfer-rate",
         "high-latency", "operator-queue-overflow", "backup-failed"]


def test_every_runbook_rendered_as_markdown_and_html(host):
    for name in NAMES:
        for ext in ("md", "html"):
            f = host.file("%s/%s.%s" % (ROOT, name, ext))
            assert f.exists and f.mode == 0o644, (name, ext)


def test_pages_have_the_four_sections(host):
    for name in NAMES:
        page = host.file("%s/%s.html" % (ROOT, name)).content_string
        for section in ("Symptoms", "Diagnosis", "Resolution", "Escalation"):
            assert '<h2 id="%s">%s</h2>' % (section.lower(), section) in page, (name, section)


def test_pages_use_the_operators_names(host):
    assert "ansible celery_nodes -m callcenter.ops.celery_health" in host.file(ROOT + "/celery-worker-down.md").content_string
    assert "systemctl restart voicedesk-celery" in host.file(ROOT + "/celery-worker-down.md").content_string
    assert "pg-main-01" in host.file(ROOT + "/backup-failed.html").content_string
    assert "Anna Petrova" in host.file(ROOT + "/backup-failed.html").content_string
    assert 'href="https://grafana.voicedesk.example/d/calls"' in host.file(ROOT + "/high-latency.html").content_string


def test_index_links_every_runbook(host):
    index = host.file(ROOT + "/index.html").content_string
    assert "Voice Desk incident runbooks" in index
    for name in NAMES:
        assert 'href="%s.html"' % name in index
