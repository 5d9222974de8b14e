"""Secrets kept out of what is shown: one helper for messages, URLs and a module's no_log values."""

import pytest

from ansible_collections.callcenter.ops.plugins.module_utils import redact


def test_every_secret_in_a_message_is_masked():
    text = "AUTH failed for 'S3cret' (token tok-123, again S3cret)"
    assert redact.mask(text, "S3cret", "tok-123") == "AUTH failed for '***' (token ***, again ***)"


def test_empty_and_missing_secrets_change_nothing():
    assert redact.mask("nothing to hide", None, "", False) == "nothing to hide"
    assert redact.mask("nothing to hide") == "nothing to hide"


def test_a_secret_holding_another_is_masked_whole():
    """A password and a shorter one inside it: masked longest first, nothing of either shows."""
    assert redact.mask("pw=ab-cd-ef", "ab", "ab-cd-ef") == "pw=***"
    assert redact.mask("redis://:p%40ss@h and p@ss", "p@ss", "p%40ss") == "redis://:***@h and ***"


def test_an_exception_is_masked_as_its_message():
    assert redact.mask(OSError("connect to user:pw@db failed"), "pw") == "connect to user:***@db failed"


@pytest.mark.parametrize("url,clean", [
    ("http://ops:Secret-1@127.0.0.1:5555/", "http://127.0.0.1:5555/"),
    ("https://admin:p@ss@grafana.example/d/voice?x=a@b", "https://grafana.example/d/voice?x=a@b"),
    ("http://ops@flower.example/flower/", "http://flower.example/flower/"),
    ("redis://:pw@127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("http://flower.example/path@not-userinfo", "http://flower.example/path@not-userinfo"),
    ("", ""), (None, None), ("not a url", "not a url"),
])
def test_user_info_is_taken_out_of_every_url(url, clean):
    assert redact.strip_userinfo(url) == clean


def test_credentials_inside_a_url_are_split_off_and_decoded():
    assert redact.split_userinfo("http://ops:a%40b%3Ac@h:5555/") == ("http://h:5555/", "ops", "a@b:c")
    assert redact.split_userinfo("http://ops@h/") == ("http://h/", "ops", None)
    assert redact.split_userinfo("http://h/") == ("http://h/", None, None)


class FakeModule:
    def __init__(self):
        self.no_log_values = set()


def test_hide_makes_the_module_mask_each_given_secret():
    module = FakeModule()
    redact.hide(module, "pw1", None, "", "pw2")
    assert module.no_log_values == {"pw1", "pw2"}


def test_the_messages_of_every_client_go_through_the_one_helper(monkeypatch):
    """A URL's password in a Redis error, a token in an HTTP error: masked by redact.mask."""
    from ansible_collections.callcenter.ops.plugins.module_utils import app_api
    from ansible_collections.callcenter.ops.plugins.module_utils import redis_client

    url = redis_client.BrokerURL("redis://:Pw-1@127.0.0.1:6379/0")
    assert url.safe == "redis://:%s@127.0.0.1:6379/0" % redact.MASK
    assert "Pw-1" not in redis_client.describe_error(OSError("auth Pw-1 refused"), url, 1.0)
    client = app_api.AppClient("http://127.0.0.1:1", "tok-Secret", 1.0, True, None)
    assert client._clean(OSError("bad token tok-Secret")) == "bad token ***"
