"""scripts/zipimport_cache.py: the test virtualenvs' bytecode cache for AnsiballZ payloads. The
code that runs is the zip's own (a changed source is compiled again, never an old one served),
a traceback names the zip it came from, and without its directory it does nothing."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "zipimport_cache.py"
RUN = r"""
import runpy, sys, traceback
runpy.run_path(sys.argv[1])  # what the .pth file does: import the cache module
sys.path.insert(0, sys.argv[2])
import payload_mod
print(payload_mod.VALUE)
try:
    payload_mod.boom()
except RuntimeError:
    print([line for line in traceback.format_exc().splitlines() if line.strip().startswith("File")][-1])
"""


def payload(tmp_path, name, value):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("payload_mod.py", "VALUE = %r\n\ndef boom():\n    raise RuntimeError('x')\n" % value)
    return path


def run(zip_path, cache):
    env = dict(os.environ)
    env.pop("CCOPS_ZIPIMPORT_CACHE", None)
    if cache is not None:
        env["CCOPS_ZIPIMPORT_CACHE"] = str(cache)
    p = subprocess.run([sys.executable, "-c", RUN, str(SCRIPT), str(zip_path)], env=env, capture_output=True,
                       text=True, check=True)
    return p.stdout.splitlines()


def test_cached_code_is_the_zips_own_and_names_the_zip_it_came_from(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    first = run(payload(tmp_path, "a.zip", "one"), cache)
    assert first[0] == "one"
    assert len(list(cache.iterdir())) == 1
    # the same source in another zip (each module run has its own): served from the cache,
    # with the new zip's path in tracebacks
    second = run(payload(tmp_path, "b.zip", "one"), cache)
    assert second[0] == "one" and "b.zip" in second[1] and "a.zip" not in second[1], second
    assert len(list(cache.iterdir())) == 1
    # a changed source is compiled again: never an old entry for it
    third = run(payload(tmp_path, "c.zip", "two"), cache)
    assert third[0] == "two"
    assert len(list(cache.iterdir())) == 2


def test_without_its_directory_nothing_is_cached_or_broken(tmp_path):
    assert run(payload(tmp_path, "a.zip", "one"), None)[0] == "one"
    assert run(payload(tmp_path, "b.zip", "one"), tmp_path / "missing")[0] == "one"
    assert not (tmp_path / "missing").exists()


def test_a_corrupt_entry_is_compiled_again(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    run(payload(tmp_path, "a.zip", "one"), cache)
    entry = next(cache.iterdir())
    entry.write_bytes(b"\x00garbage")
    assert run(payload(tmp_path, "b.zip", "one"), cache)[0] == "one"
