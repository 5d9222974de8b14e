"""The roles' failure messages mask secrets with the modules' own helper."""

from ansible_collections.callcenter.ops.plugins.filter.redact import FilterModule
from ansible_collections.callcenter.ops.plugins.module_utils.redact import MASK

mask_secrets = FilterModule().filters()["mask_secrets"]


def test_the_token_is_masked_as_the_modules_mask_it():
    text = "POST https://api.telegram.org/bot123:tok-EN/sendMessage failed"
    assert mask_secrets(text, "123:tok-EN") == "POST https://api.telegram.org/bot%s/sendMessage failed" % MASK


def test_an_empty_secret_leaves_the_text_as_it_is():
    """Jinja's replace('', '***') would put the mask between every character."""
    assert mask_secrets("connection refused", "", None) == "connection refused"
