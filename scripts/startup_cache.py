"""Start-up caches for the test and demo virtualenvs only: bytecode of zip imports, parsed YAML.

Two things every Ansible run of the test suite repeated, with the same input each time:

- Every module run executes an AnsiballZ payload: a zip with the module and the module_utils it
  needs, imported with Python's zipimport. zipimport compiles each .py of the zip on every import
  and never keeps the result, so each of the ~1,100 module runs of the suite compiled
  ansible.module_utils.basic and friends again: about 0.1 CPU-s of a ~0.25 CPU-s run.
- Every start of ansible, ansible-playbook, ansible-doc, ansible-lint and molecule parses
  ansible-core's own data files with PyYAML: the routing table of ansible.builtin (376 KB,
  ansible_builtin_runtime.yml) and the configuration definitions (base.yml), ~0.2 CPU-s of a
  ~1 CPU-s start, ~400 starts per suite.

scripts/lib.sh installs this file into its virtualenvs (site-packages/ccops_startup_cache.py,
loaded by a .pth file) and points CCOPS_STARTUP_CACHE at a directory under .work. With that
variable unset or not a directory, this does nothing.

- Bytecode: keyed by the SHA-256 of the source and the interpreter's bytecode magic, so a changed
  file is simply compiled again; the code objects get the zip's current path as their file name
  (tracebacks name the real payload). What runs is byte for byte the code Ansible sent; only the
  compile step is skipped.
- YAML: only ``yaml.load`` with PyYAML's own plain loaders (BaseLoader, SafeLoader and their C
  twins; never a subclass such as Ansible's playbook loader, whose objects carry their origin)
  on a document of 32 KB or more. Keyed by the SHA-256 of the document, the loader and PyYAML's
  version; only a successful parse is kept; each call gets objects of its own (a fresh unpickle),
  as a parse would give. A document that does not parse raises the same error as without the
  cache.

Entries are written atomically (a reader sees a whole file or none) and a corrupt one is ignored.
Users' hosts never see this: it lives in this checkout's virtualenvs.
"""

import os
import sys

_DIR = os.environ.get("CCOPS_STARTUP_CACHE", "")
_YAML_MIN = 32 * 1024


def _read(path):
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _write(path, data):
    tmp = "%s.%d.tmp" % (path, os.getpid())
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)  # atomic: a reader sees the whole file or none
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _install_zipimport(directory):
    import hashlib
    import importlib.util
    import marshal
    import zipimport

    compile_source = zipimport._compile_source  # pylint: disable=protected-access
    magic = importlib.util.MAGIC_NUMBER.hex()
    code_type = type(_install_zipimport.__code__)

    def retarget(code, filename):
        consts = tuple(retarget(c, filename) if isinstance(c, code_type) else c for c in code.co_consts)
        return code.replace(co_filename=filename, co_consts=consts)

    def cached_compile(pathname, source):
        path = os.path.join(directory, "%s-%s.marshal" % (hashlib.sha256(source).hexdigest(), magic))
        data = _read(path)
        if data is not None:
            try:
                return retarget(marshal.loads(data), pathname)
            except (ValueError, EOFError, TypeError):
                pass
        code = compile_source(pathname, source)
        _write(path, marshal.dumps(code))
        return code

    zipimport._compile_source = cached_compile  # pylint: disable=protected-access


def _patch_yaml(yaml, directory):
    """Wrap ``yaml.load`` (called by ``safe_load`` and by ansible-core as ``yaml.load``)."""
    import hashlib
    import pickle

    plain = {getattr(yaml, name) for name in ("BaseLoader", "SafeLoader", "CBaseLoader", "CSafeLoader")
             if hasattr(yaml, name)}
    load = yaml.load

    def cached_load(stream, Loader=None):  # pylint: disable=invalid-name  # PyYAML's own argument name
        if Loader not in plain:
            return load(stream, Loader)
        start = None
        if isinstance(stream, (str, bytes)):
            text = stream
        else:
            # a file: read it only when it is big; on a hit it is left read to its end, as a parse
            # leaves it; on a miss it is handed back where it was (its name then appears in a
            # parse error, as without the cache)
            try:
                if os.fstat(stream.fileno()).st_size < _YAML_MIN:
                    return load(stream, Loader)
                start = stream.tell()
                text = stream.read()
            except (AttributeError, OSError, ValueError):
                return load(stream, Loader)
        if len(text) < _YAML_MIN:
            if start is not None:
                stream.seek(start)
            return load(stream, Loader)
        raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
        key = hashlib.sha256(raw + b"\0" + ("%s %s %s" % (Loader.__name__, yaml.__version__, isinstance(text, str))).encode())
        path = os.path.join(directory, "%s.yaml.pickle" % key.hexdigest())
        data = _read(path)
        if data is not None:
            try:
                return pickle.loads(data)
            except Exception:  # pylint: disable=broad-except  # a corrupt entry: parse again
                pass
        if start is not None:
            stream.seek(start)
        result = load(stream, Loader)
        try:
            _write(path, pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
        except Exception:  # pylint: disable=broad-except  # something unpicklable: just not cached
            pass
        return result

    yaml.load = cached_load


class _YamlImportHook:
    """Patches PyYAML right after it is imported (importing it at every interpreter start,
    module runs included, would cost more than it saves)."""

    def __init__(self, directory):
        self.directory = directory

    def find_spec(self, fullname, path=None, target=None):  # pylint: disable=unused-argument
        if fullname != "yaml":
            return None
        from importlib.machinery import PathFinder
        spec = PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module
        directory = self.directory

        def exec_and_patch(module):
            exec_module(module)
            try:
                _patch_yaml(module, directory)
            except Exception:  # pylint: disable=broad-except  # never break `import yaml`
                pass

        spec.loader.exec_module = exec_and_patch
        return spec


if _DIR and os.path.isdir(_DIR):
    try:
        _install_zipimport(_DIR)
        if "yaml" in sys.modules:
            _patch_yaml(sys.modules["yaml"], _DIR)
        else:
            sys.meta_path.insert(0, _YamlImportHook(_DIR))
    except Exception:  # pylint: disable=broad-except  # never keep an interpreter from starting
        pass
