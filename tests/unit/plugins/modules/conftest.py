"""Modules run in-process for the checks that need no server: the argument handling and the
sentences a bad input gets. What a module does against the real programs is tested in
tests/integration through `ansible -m`, the way users run it; one case of each kind below stays
there too, so the path from the command line is covered."""

import importlib
import io
import json
from contextlib import redirect_stdout

import pytest
from ansible.module_utils.testing import patch_module_args


class ModuleResult(dict):
    """The module's JSON result; ``failed`` is True when it ended with fail_json."""

    @property
    def failed(self):
        return bool(self.get("failed"))


def run_module(name, args, env=None, monkeypatch=None):
    """Run ``callcenter.ops.<name>``'s main() with ``args`` as `ansible -m` would pass them, and
    return what it printed (parsed). Environment variables of ``env`` are set for the run only."""
    module = importlib.import_module("ansible_collections.callcenter.ops.plugins.modules." + name)
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in (env or {}).items():
            if value is None:
                mp.delenv(key, raising=False)
            else:
                mp.setenv(key, value)
        with patch_module_args(args), redirect_stdout(out):
            with pytest.raises(SystemExit) as ended:
                module.main()
    result = ModuleResult(json.loads(out.getvalue()))
    assert ended.value.code == (1 if result.failed else 0), (ended.value.code, result)
    return result


@pytest.fixture
def module_run():
    return run_module
