"""A host reached over SSH, for tests: an sshd of Debian's openssh-server on 127.0.0.1:<free port>,
its own host key, one authorized key for the current user, nothing on any other address.

Ansible reaches it as a remote host would be reached (ssh connection, modules copied over sftp,
no environment of the controller), so a test sees what an operator's worker or app host sees:
a variable exported on the controller is not there.

sshd runs as the current user. As root it needs its privilege separation directory /run/sshd,
which only exists where the ssh service runs: it is then started in a mount namespace of its
own (``unshare --mount``) with a private tmpfs on /run, so nothing on the machine changes.
"""

import getpass
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness import _stop, free_port, wait_for

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


class SshHost:
    """``SshHost().start()``; ``inventory_vars()`` gives the ansible_* variables that reach it."""

    def __init__(self, workdir=None):
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="ccops-ssh-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.user = getpass.getuser()
        self.proc = None
        self.log = self.dir / "sshd.log"

    def _keygen(self, path, comment):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                       check=True, capture_output=True)

    def start(self):
        if not os.path.exists(SSHD):
            raise RuntimeError("sshd not found: install Debian's openssh-server (scripts/lib.sh does)")
        self._keygen(self.dir / "host_key", "ccops-test-host")
        self._keygen(self.dir / "client_key", "ccops-test-client")
        shutil.copy(self.dir / "client_key.pub", self.dir / "authorized_keys")
        host_pub = (self.dir / "host_key.pub").read_text().split()
        (self.dir / "known_hosts").write_text("[127.0.0.1]:%d %s %s\n" % (self.port, host_pub[0], host_pub[1]))
        (self.dir / "tmp").mkdir(exist_ok=True)
        (self.dir / "sshd_config").write_text("\n".join([
            "Port %d" % self.port,
            "ListenAddress 127.0.0.1",
            "HostKey %s" % (self.dir / "host_key"),
            "PidFile %s" % (self.dir / "sshd.pid"),
            "AuthorizedKeysFile %s" % (self.dir / "authorized_keys"),
            "AllowUsers %s" % self.user,
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "PermitRootLogin prohibit-password",
            "StrictModes no",
            "X11Forwarding no",
            "AllowTcpForwarding no",
            "PrintMotd no",
            "Subsystem sftp internal-sftp",
            "LogLevel VERBOSE",
            ""]))
        cmd = [SSHD, "-D", "-e", "-f", str(self.dir / "sshd_config")]
        if os.geteuid() == 0:
            cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                   'mount -t tmpfs -o mode=0755 ccops-sshd-run /run && mkdir -m 0755 /run/sshd && exec "$@"',
                   "sshd"] + cmd
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        wait_for(self._answers, 20, "sshd on 127.0.0.1:%d (log: %s)" % (self.port, self.log))
        return self

    def ssh_command(self):
        return ["ssh", "-i", str(self.dir / "client_key"), "-p", str(self.port), "-o", "BatchMode=yes",
                "-o", "UserKnownHostsFile=%s" % (self.dir / "known_hosts"), "-o", "StrictHostKeyChecking=yes",
                "%s@127.0.0.1" % self.user]

    def _answers(self):
        if self.proc.poll() is not None:
            raise RuntimeError("sshd exited (rc %s): %s" % (self.proc.returncode, self.log.read_text()[-2000:]))
        return subprocess.run(self.ssh_command() + ["true"], capture_output=True, timeout=10, check=False,
                              stdin=subprocess.DEVNULL).returncode == 0

    def inventory_vars(self, python):
        """Host variables of an Ansible inventory entry for this host."""
        return {
            "ansible_host": "127.0.0.1",
            "ansible_port": self.port,
            "ansible_user": self.user,
            "ansible_connection": "ssh",
            "ansible_ssh_private_key_file": str(self.dir / "client_key"),
            "ansible_ssh_common_args": "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes" % (
                self.dir / "known_hosts"),
            "ansible_python_interpreter": str(python),
            "ansible_remote_tmp": str(self.dir / "tmp"),
        }

    def stop(self):
        if self.proc:
            _stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)
