"""The bootstrap of scripts/test.sh and scripts/demo.sh never stops or changes a service it
did not start (the machine's own redis-server, postgresql, prometheus keep running)."""

import os
import subprocess
from pathlib import Path

from conftest import REPO


def fake_bin(tmp_path, installed):
    """service, systemctl, apt-get and dpkg-query stand-ins that only record their calls."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "calls"
    for name in ("service", "systemctl", "apt-get", "invoke-rc.d"):
        (bindir / name).write_text('#!/bin/sh\necho "%s $*" >> %s\nexit 0\n' % (name, calls))
    (bindir / "dpkg-query").write_text(
        '#!/bin/sh\nfor p in %s; do [ "$p" = "$3" ] && { printf "install ok installed"; exit 0; }; done\nexit 1\n'
        % " ".join(installed))
    for f in bindir.iterdir():
        f.chmod(0o755)
    return bindir, calls


def bootstrap(tmp_path, bindir):
    env = dict(os.environ, PATH="%s:%s" % (bindir, os.environ["PATH"]), CALLCENTER_OPS_WORK=str(tmp_path / "work"))
    return subprocess.run(["bash", "-c", 'source "%s/scripts/lib.sh"; ensure_apt' % REPO], env=env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)


def all_packages():
    text = (REPO / "scripts" / "lib.sh").read_text()
    block = text.split("APT_PACKAGES=(", 1)[1].split(")", 1)[0]
    return block.split()


def test_bootstrap_with_everything_installed_touches_no_service(tmp_path):
    bindir, calls = fake_bin(tmp_path, all_packages())
    r = bootstrap(tmp_path, bindir)
    assert r.returncode == 0, r.stderr
    assert not calls.exists() or calls.read_text() == "", calls.read_text()


def test_bootstrap_installing_packages_stops_no_service(tmp_path):
    pkgs = all_packages()
    bindir, calls = fake_bin(tmp_path, [p for p in pkgs if p != "redis-server"])
    r = bootstrap(tmp_path, bindir)
    assert r.returncode == 0, r.stderr
    lines = calls.read_text().splitlines()
    assert any(line.startswith("apt-get install") and "redis-server" in line for line in lines), lines
    assert not [line for line in lines if line.startswith(("service", "systemctl", "invoke-rc.d"))], lines
    assert Path("/usr/sbin/policy-rc.d").exists() == POLICY_BEFORE


POLICY_BEFORE = Path("/usr/sbin/policy-rc.d").exists()


def test_only_the_test_and_molecule_runs_reinstall_the_collection_the_tests_read():
    """scripts/test.sh installs the collection into .work/collections and its pytest stage reads it
    for twenty minutes; a helper script reinstalling it there meanwhile (changelog.sh did, from
    test_changelog) made a parallel test's `callcenter.ops.system_status` "could not be found"."""
    for script in sorted((REPO / "scripts").glob("*.sh")):
        if script.name in ("test.sh", "molecule.sh"):
            continue  # they install it before any test reads it
        for line in script.read_text().splitlines():
            if line.strip().startswith("#"):
                continue
            assert not ("build_collection" in line and '"$COLLECTIONS"' in line), (script.name, line)
