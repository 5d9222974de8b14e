"""The host_file lookup: the path of a module_utils file, for the host_files role."""

from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleLookupError

from ansible_collections.callcenter.ops.plugins.lookup import host_file

REPO = Path(__file__).resolve().parents[4]


def test_every_listed_host_file_resolves_to_the_collections_module_utils():
    sets = yaml.safe_load((REPO / "roles" / "host_files" / "vars" / "main.yml").read_text())["host_files_sets"]
    for names in sets.values():
        for name in names:
            path = Path(host_file.module_utils_path(name))
            assert path.name == name + ".py" and path.parent.name == "module_utils" and path.is_file()


@pytest.mark.parametrize("name", ["nope", "../roles/x", "Backup", "", None])
def test_anything_else_is_refused_with_a_sentence(name):
    with pytest.raises(AnsibleLookupError, match="host_file: "):
        host_file.module_utils_path(name)
