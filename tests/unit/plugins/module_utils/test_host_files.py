"""The module_utils files installed on hosts (roles/host_files names them, once) import there only
what their docstring declares: ``STDLIB ONLY``, ``STDLIB ONLY (isal optional)`` or
``STDLIB + <modules> ONLY``, each other as ``ccops_<name>``, and Ansible only behind an
``except ImportError`` that falls back to those siblings."""

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[4]
SETS = yaml.safe_load((REPO / "roles/host_files/vars/main.yml").read_text())["host_files_sets"]
PACKAGE = "ansible_collections.callcenter.ops.plugins.module_utils"
DECLARED = re.compile(r"STDLIB (?:\+ (?P<plus>[\w, ]+) )?ONLY(?: \((?P<optional>\w+) optional\))?")


def imports(tree):
    """(module, names, guarded): every import, and whether an ``except ImportError`` guards it."""
    guarded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id == "ImportError" for h in node.handlers):
            guarded.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], id(node) in guarded
        elif isinstance(node, ast.ImportFrom):
            yield node.module, [a.name for a in node.names], id(node) in guarded


@pytest.mark.parametrize("role, name", [(role, name) for role, names in sorted(SETS.items()) for name in names])
def test_a_host_file_imports_only_what_its_docstring_declares(role, name):
    tree = ast.parse((REPO / "plugins" / "module_utils" / ("%s.py" % name)).read_text())
    declared = DECLARED.search(ast.get_docstring(tree) or "")
    assert declared, "%s.py (installed by %s) does not say what it may import on hosts" % (name, role)
    allowed = set(sys.stdlib_module_names) | {"__future__"}
    allowed |= set(m.strip() for m in (declared.group("plus") or "").split(",") if m.strip())
    allowed |= {declared.group("optional")} - {None}
    siblings = set(SETS[role])
    for module, names, guarded in imports(tree):
        top = module.split(".")[0]
        if module == PACKAGE:
            assert set(names) <= siblings, (name, names)
        elif top in ("ansible", "ansible_collections"):
            assert guarded, "%s.py imports %s without a fallback for hosts" % (name, module)
            assert not module.startswith(PACKAGE + ".") or module.rsplit(".", 1)[1] in siblings, (name, module)
        elif top.startswith("ccops_"):
            assert top[len("ccops_"):] in siblings, (name, module)
        else:
            assert top in allowed, "%s.py imports %s, not declared in its docstring" % (name, module)
