"""scripts/startup_cache.py: the test virtualenvs' start-up caches. Bytecode of AnsiballZ
payloads: the code that runs is the zip's own (a changed source is compiled again, never an old
one served), a traceback names the zip it came from. Parsed YAML: the same objects a parse gives,
fresh ones per call, only for PyYAML's plain loaders, and a bad document fails as it would.
Without its directory it does nothing."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "startup_cache.py"
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


def python(code, arg, cache):
    """A new interpreter that loads the cache as the .pth file does (``cache`` None: no directory
    named), runs ``code`` with ``arg``, and returns what it printed."""
    env = dict(os.environ)
    env.pop("CCOPS_STARTUP_CACHE", None)
    if cache is not None:
        env["CCOPS_STARTUP_CACHE"] = str(cache)
    return subprocess.run([sys.executable, "-c", code, str(SCRIPT), str(arg)], env=env, capture_output=True,
                          text=True, check=True).stdout


def run(zip_path, cache):
    return python(RUN, zip_path, cache).splitlines()


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
    entry = next(cache.glob("*.marshal"))
    entry.write_bytes(b"\x00garbage")
    assert run(payload(tmp_path, "b.zip", "one"), cache)[0] == "one"


YAML_RUN = r"""
import json, runpy, sys
runpy.run_path(sys.argv[1])  # what the .pth file does, before anything imported yaml
import yaml
doc = open(sys.argv[2]).read()
out = {}
for name in ("CSafeLoader", "BaseLoader"):
    first = yaml.load(doc, Loader=getattr(yaml, name))
    second = yaml.load(doc, Loader=getattr(yaml, name))
    first["top"].append("changed by this caller")
    out[name] = [second, first is not second]
with open(sys.argv[2]) as fh:
    out["file"] = yaml.load(fh, Loader=yaml.CSafeLoader)["key00003"]
    out["file_left_at"] = fh.read(10)
try:
    yaml.load(doc + "\n  bad: [", Loader=yaml.CSafeLoader)
except yaml.YAMLError as exc:
    out["error"] = type(exc).__name__
print(json.dumps(out, default=str))
"""


def yaml_run(doc_path, cache):
    return json.loads(python(YAML_RUN, doc_path, cache))


def big_yaml(tmp_path, value):
    path = tmp_path / "big.yml"
    rows = "".join("key%05d: {when: 2026-11-27, n: %d, flag: yes, words: [a, b]}\n" % (i, i) for i in range(560))
    path.write_text("top: [%s]\n%s" % (value, rows))
    assert 32 * 1024 < path.stat().st_size < 40 * 1024
    return path


def test_yaml_is_parsed_once_and_each_caller_gets_its_own_objects(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    doc = big_yaml(tmp_path, "one")
    plain = yaml_run(doc, None)
    first = yaml_run(doc, cache)
    entries = sorted(p.name for p in cache.glob("*.yaml.pickle"))
    assert len(entries) == 2  # one per loader: BaseLoader reads every scalar as a string
    served = yaml_run(doc, cache)
    assert plain == first == served
    assert served["CSafeLoader"][0]["top"] == ["one"] and served["CSafeLoader"][1] is True
    assert served["CSafeLoader"][0]["key00007"] == {"when": "2026-11-27", "n": 7, "flag": True, "words": ["a", "b"]}
    assert served["BaseLoader"][0]["key00007"]["n"] == "7"
    assert served["file"]["n"] == 3 and served["file_left_at"] == ""
    assert served["error"] in ("ParserError", "ScannerError")
    assert sorted(p.name for p in cache.glob("*.yaml.pickle")) == entries  # a failed parse is not kept
    # a changed document is parsed again, never served from an old entry
    assert yaml_run(big_yaml(tmp_path, "two"), cache)["CSafeLoader"][0]["top"] == ["two"]


def test_a_corrupt_yaml_entry_is_parsed_again(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    doc = big_yaml(tmp_path, "one")
    yaml_run(doc, cache)
    for entry in cache.glob("*.yaml.pickle"):
        entry.write_bytes(b"\x80garbage")
    assert yaml_run(doc, cache)["CSafeLoader"][0]["top"] == ["one"]
