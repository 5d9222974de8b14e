"""A bytecode cache for Python code imported from zip files, for the test and demo virtualenvs only.

Every Ansible module run executes an AnsiballZ payload: a zip with the module and the
module_utils it needs, imported with Python's zipimport. zipimport compiles each .py of the zip
on every import and never keeps the result, so each of the ~1,100 module runs of the test suite
compiled ansible.module_utils.basic and friends again: about 0.1 CPU-s of a ~0.25 CPU-s run.

scripts/lib.sh installs this file into its virtualenvs (site-packages/ccops_zipimport_cache.py,
loaded by a .pth file) and points CCOPS_ZIPIMPORT_CACHE at a directory under .work. With that
variable unset or not a directory, this does nothing. The cache is keyed by the SHA-256 of the
source and the interpreter's bytecode magic, so a changed file is simply compiled again; the code
objects get the zip's current path as their file name (tracebacks name the real payload). What
runs is byte for byte the code Ansible sent; only the compile step is skipped. Users' hosts never
see this: it lives in this checkout's virtualenvs.
"""

import os

_DIR = os.environ.get("CCOPS_ZIPIMPORT_CACHE", "")


def _install(directory):
    import hashlib
    import importlib.util
    import marshal
    import zipimport

    compile_source = zipimport._compile_source  # pylint: disable=protected-access
    magic = importlib.util.MAGIC_NUMBER.hex()
    code_type = type(_install.__code__)

    def retarget(code, filename):
        consts = tuple(retarget(c, filename) if isinstance(c, code_type) else c for c in code.co_consts)
        return code.replace(co_filename=filename, co_consts=consts)

    def cached_compile(pathname, source):
        path = os.path.join(directory, "%s-%s.marshal" % (hashlib.sha256(source).hexdigest(), magic))
        try:
            with open(path, "rb") as fh:
                return retarget(marshal.loads(fh.read()), pathname)
        except (OSError, ValueError, EOFError, TypeError):
            pass
        code = compile_source(pathname, source)
        tmp = "%s.%d.tmp" % (path, os.getpid())
        try:
            with open(tmp, "wb") as fh:
                fh.write(marshal.dumps(code))
            os.replace(tmp, path)  # atomic: a reader sees the whole file or none
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        return code

    zipimport._compile_source = cached_compile  # pylint: disable=protected-access


if _DIR and os.path.isdir(_DIR):
    try:
        _install(_DIR)
    except Exception:  # pylint: disable=broad-except  # never keep an interpreter from starting
        pass
