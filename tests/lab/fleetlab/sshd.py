"""The lab's SSH door: an sshd of its own on loopback, so that Ansible reaches lab hosts as it reaches real ones.

Real web servers are reached over SSH, and Ansible runs the modules there with the host's own Python (found by
interpreter discovery) and the libraries its distribution ships. The lab reproduces that: one sshd, started
from a config, host key and authorized key kept in ``<lab dir>/ssh``, listening on 127.0.0.1 only, and
stopped by pid at teardown. Every lab host is reached through it as the user running the lab.

The login session is what a minimal Debian host gives a root login, whatever this machine's shell start-up
files add: sshd runs the session through ``session.sh`` (ForceCommand), which starts the client's command with
the standard PATH and a clean environment. Without it, the pyenv shims that a developer machine's ``.bashrc``
puts first on PATH would win interpreter discovery, and the modules would run under a Python no real host
has. When this machine's system Python has pyOpenSSL (Debian's python3-openssl), the session hides it, since a
minimal host has none and that is the case the collection must handle; ``LAB_KEEP_PYOPENSSL=1`` in the
environment of ``lab.py up`` keeps it visible.
"""

from __future__ import annotations

import getpass
import os
import subprocess
import time
from pathlib import Path

from fleetlab.apache import LabError, port_answers
from fleetlab.processes import command_line

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/bin/sshd")
SFTP_SERVER_CANDIDATES = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
                          "/usr/lib/ssh/sftp-server")
# sshd refuses to start without its privilege separation directory, which systemd normally creates at boot.
PRIVSEP_DIR = Path("/run/sshd")
STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SYSTEM_PYTHON = "/usr/bin/python3"

SESSION_SCRIPT = """#!/bin/sh
# Written by the fleet.stapling lab (tests/lab/fleetlab/sshd.py): the login session of the lab's sshd.
# A clean environment and the standard PATH, as a minimal host gives a root login over SSH.
if [ -z "$SSH_ORIGINAL_COMMAND" ]; then
    set -- /bin/sh -l
else
    set -- /bin/sh -c "$SSH_ORIGINAL_COMMAND"
fi
exec /usr/bin/env -i HOME="$HOME" USER="$USER" LOGNAME="$LOGNAME" SHELL=/bin/sh LANG=C.UTF-8 \\
    PATH={path} {extra_env}"$@"
"""

# A package that shadows pyOpenSSL for the session's Pythons: importing it fails as a missing package does.
HIDDEN_PYOPENSSL = '''"""pyOpenSSL hidden by the fleet.stapling lab: a minimal managed host has none (tests/lab/fleetlab/sshd.py)."""
raise ImportError("No module named 'OpenSSL'", name="OpenSSL")
'''


def find_sshd() -> Path:
    for candidate in SSHD_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return Path(candidate)
    raise LabError("no sshd found; install Debian's openssh-server package (make deps does it)")


def _find_sftp_server() -> str:
    for candidate in SFTP_SERVER_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return "internal-sftp"


def system_python_has_pyopenssl() -> bool:
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return False
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import OpenSSL"], capture_output=True, check=False,
                           env={"PATH": STANDARD_PATH})
    return probe.returncode == 0


class SshDoor:
    """The files of the lab's sshd in ``<lab dir>/ssh`` and the process that serves them."""

    def __init__(self, lab_dir: Path):
        self.dir = lab_dir / "ssh"
        self.config = self.dir / "sshd_config"
        self.host_key = self.dir / "host_ed25519_key"
        self.client_key = self.dir / "client_ed25519_key"
        self.authorized_keys = self.dir / "authorized_keys"
        self.known_hosts = self.dir / "known_hosts"
        self.session = self.dir / "session.sh"
        self.log = self.dir / "sshd.log"
        self.hidden_packages = self.dir / "minimal-host-python"

    # ------------------------------------------------------------ set-up

    def ensure(self, port: int, old: dict) -> dict:
        """An sshd on 127.0.0.1:``port`` for this lab: the running one when it is ours, else a new one."""
        self._write_files(port)
        record = {"port": port, "user": getpass.getuser(), "pid": old.get("pid"),
                  "private_key": str(self.client_key), "known_hosts": str(self.known_hosts),
                  "config": str(self.config), "log": str(self.log),
                  "hides_pyopenssl": self.hidden_packages.exists()}
        if old.get("port") == port and self.alive(old.get("pid")):
            return record
        if port_answers(port):
            raise LabError(f"port {port} for the lab's sshd is already in use on 127.0.0.1")
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        with open(self.log, "ab") as log:
            process = subprocess.Popen([str(find_sshd()), "-D", "-e", "-f", str(self.config)],
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        record["pid"] = process.pid
        deadline = time.monotonic() + 10
        while not port_answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise LabError(f"the lab's sshd did not start on port {port}; see {self.log}")
            time.sleep(0.05)
        return record

    def _write_files(self, port: int) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for key in (self.host_key, self.client_key):
            if not key.exists():
                subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleet-stapling-lab",
                                "-f", str(key)], check=True, capture_output=True)
        self.authorized_keys.write_text(Path(f"{self.client_key}.pub").read_text())
        self.authorized_keys.chmod(0o600)
        host_public = Path(f"{self.host_key}.pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{port} {host_public[0]} {host_public[1]}\n")
        extra_env = ""
        if system_python_has_pyopenssl() and os.environ.get("LAB_KEEP_PYOPENSSL") != "1":
            package = self.hidden_packages / "OpenSSL"
            package.mkdir(parents=True, exist_ok=True)
            (package / "__init__.py").write_text(HIDDEN_PYOPENSSL)
            extra_env = f"PYTHONPATH={self.hidden_packages} "
        elif self.hidden_packages.exists():
            for path in sorted(self.hidden_packages.rglob("*"), reverse=True):
                path.rmdir() if path.is_dir() else path.unlink()
            self.hidden_packages.rmdir()
        self.session.write_text(SESSION_SCRIPT.format(path=STANDARD_PATH, extra_env=extra_env))
        self.session.chmod(0o755)
        self.config.write_text(self._config_text(port))

    def _config_text(self, port: int) -> str:
        # StrictModes is off because the lab directory lives under a world-writable /tmp. MaxSessions and
        # MaxStartups leave room for Ansible's forks multiplexed over one ControlMaster connection.
        return "\n".join([
            "# Written by the fleet.stapling lab (tests/lab/fleetlab/sshd.py).",
            f"Port {port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key}",
            f"PidFile {self.dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            f"AllowUsers {getpass.getuser()}",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "PrintMotd no",
            "MaxSessions 64",
            "MaxStartups 64:30:128",
            f"ForceCommand {self.session}",
            f"Subsystem sftp {_find_sftp_server()}",
            "LogLevel INFO",
            "",
        ])

    # ------------------------------------------------------------ the process

    def alive(self, pid: int | None) -> bool:
        """True when ``pid`` is an sshd started with this lab's config."""
        arguments = command_line(pid)
        # sshd rewrites its title ("sshd: /usr/sbin/sshd -D -e -f CONFIG [listener] ..."): look inside it.
        return arguments is not None and str(self.config).encode() in arguments

    def stop(self, pid: int | None, timeout: float = 5.0) -> bool:
        """Stop the lab's sshd and the connections it serves (an Ansible ControlMaster keeps one open for a
        minute); False when it was not running."""
        if not self.alive(pid):
            return False
        for child in _children(pid):  # type: ignore[arg-type]
            try:
                os.kill(child, 15)
            except ProcessLookupError:
                pass
        os.kill(pid, 15)  # type: ignore[arg-type]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive(pid):
            try:
                os.waitpid(pid, os.WNOHANG)  # type: ignore[arg-type]
            except ChildProcessError:
                pass
            time.sleep(0.05)
        if self.alive(pid):
            os.kill(pid, 9)  # type: ignore[arg-type]
        return True


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (sshd forks one per connection)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid):
            children.append(int(stat.parent.name))
    return children


def ssh_command(record: dict, command: list[str] | None = None) -> list[str]:
    """``ssh`` to the lab the way the inventory connects, for tests and the demo."""
    return ["ssh", *ssh_options(record), "-p", str(record["port"]), f"{record['user']}@127.0.0.1",
            *(command or [])]


def ssh_options(record: dict) -> list[str]:
    return ["-i", record["private_key"], "-o", f"UserKnownHostsFile={record['known_hosts']}",
            "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
