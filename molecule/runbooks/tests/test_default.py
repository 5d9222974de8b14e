"""The runbooks role's rendered pages, with the operator's own names."""

import os

ROOT = os.environ["CCOPS_MOLECULE_ROOT"] + "/opt/callcenter/doc/operations/runbooks"
NAMES = ["celery-worker-down", "celery-queue-backlog", "celery-beat-stale", "flower-down", "circuit-breaker-open",
         "high-transfer-rate", "high-latency", "operator-queue-overflow", "backup-failed"]
SECTIONS = ["What fired", "Symptoms", "Diagnosis", "Resolution", "Verify", "Silence", "Escalation"]


def test_every_runbook_rendered_as_markdown_and_html(host):
    for name in NAMES:
        for ext in ("md", "html"):
            f = host.file("%s/%s.%s" % (ROOT, name, ext))
            assert f.exists and f.mode == 0o644, (name, ext)


def test_pages_have_every_section(host):
    for name in NAMES:
        page = host.file("%s/%s.html" % (ROOT, name)).content_string
        for section in SECTIONS:
            assert '<h2 id="%s">%s</h2>' % (section.lower().replace(" ", "-"), section) in page, (name, section)
        assert "Seed" not in page and "PLACEHOLDER" not in page, name


def test_pages_use_the_operators_names(host):
    worker = host.file(ROOT + "/celery-worker-down.md").content_string
    assert "ansible-playbook -i /etc/voicedesk/inventory.yml " in worker
    assert "celery_status_hosts=celery_nodes[0]" in worker
    assert "systemctl restart voicedesk-celery" in worker
    assert "pg_main" in host.file(ROOT + "/backup-failed.html").content_string
    assert "Anna Petrova" in host.file(ROOT + "/backup-failed.html").content_string
    latency = host.file(ROOT + "/high-latency.html").content_string
    assert 'href="https://grafana.voicedesk.example/d/callcenter/call-center?viewPanel=2"' in latency
    assert "<strong>3 s</strong>" in latency  # the threshold the rules use


def test_numbered_steps_keep_counting_across_code_blocks(host):
    page = host.file(ROOT + "/celery-worker-down.html").content_string
    resolution = page.split('<h2 id="resolution">')[1].split("<h2")[0]
    assert resolution.count("<ol") == 1 and resolution.count("<li>") == 4, resolution


def test_index_links_every_runbook(host):
    index = host.file(ROOT + "/index.html").content_string
    assert "Voice Desk incident runbooks" in index
    for name in NAMES:
        assert 'href="%s.html"' % name in index
