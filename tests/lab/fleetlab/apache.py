"""Run one lab host: Debian's apache2 binary with the host's own ServerRoot, config, pid file and port."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from fleetlab.layouts import HostPlan
from fleetlab.processes import command_line

BINARY_CANDIDATES = ("/usr/sbin/apache2", "/usr/sbin/httpd")
MODULE_DIR_CANDIDATES = ("/usr/lib/apache2/modules", "/usr/lib64/httpd/modules", "/usr/lib/httpd/modules")


class LabError(RuntimeError):
    """A lab operation failed; the message is meant for the person running the lab."""


def find_binary() -> Path:
    for candidate in (*BINARY_CANDIDATES, shutil.which("apache2"), shutil.which("httpd")):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise LabError("no apache2/httpd binary found; install Debian's apache2 package (make deps does it)")


def find_modules_dir() -> Path:
    for candidate in MODULE_DIR_CANDIDATES:
        if Path(candidate, "mod_ssl.so").exists():
            return Path(candidate)
    raise LabError("Apache's mod_ssl.so not found in " + ", ".join(MODULE_DIR_CANDIDATES))


def ctl_command(binary: Path, host: HostPlan) -> list[str]:
    """The command prefix that runs -t, -V, -M, -S and -k for this instance only."""
    return [str(binary), "-d", str(host.server_root), "-f", str(host.config_file)]


def ctl_string(binary: Path, host: HostPlan) -> str:
    return shlex.join(ctl_command(binary, host))


def reload_string(binary: Path, host: HostPlan) -> str:
    return shlex.join([*ctl_command(binary, host), "-k", "graceful"])


def configtest(binary: Path, host: HostPlan) -> tuple[bool, str]:
    result = subprocess.run([*ctl_command(binary, host), "-t"], capture_output=True, text=True, check=False)
    return result.returncode == 0, (result.stdout + result.stderr).strip()


def read_pid(host: HostPlan) -> int | None:
    try:
        return int(host.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def is_our_process(pid: int | None, host: HostPlan) -> bool:
    """True when pid is alive and is an Apache master started for this host's ServerRoot."""
    arguments = command_line(pid)
    return arguments is not None and str(host.server_root).encode() in arguments.split(b"\0")


def port_answers(port: int, address: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def start(binary: Path, host: HostPlan, timeout: float = 15.0) -> int:
    """Start the instance and return the master pid; fails with Apache's own words when it cannot."""
    ok, output = configtest(binary, host)
    if not ok:
        raise LabError(f"{host.name}: apache config test failed:\n{output}")
    if port_answers(host.port):
        raise LabError(f"{host.name}: port {host.port} is already in use on 127.0.0.1")
    result = subprocess.run([*ctl_command(binary, host), "-k", "start"], capture_output=True, text=True, check=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = read_pid(host)
        if is_our_process(pid, host) and port_answers(host.port):
            return pid  # type: ignore[return-value]
        time.sleep(0.1)
    raise LabError(f"{host.name}: apache did not come up on port {host.port}.\n"
                   f"{(result.stdout + result.stderr).strip()}\n{tail(host.error_log)}")


def current_master(recorded_pid: int | None, host: HostPlan) -> int | None:
    """The master of this host's instance: the pid the lab recorded, or, when something (a test, the role's
    recovery after a failed reload) started the instance again, the pid its pid file names; either way a
    process running with this host's own ServerRoot, never anything else."""
    for pid in (recorded_pid, read_pid(host)):
        if is_our_process(pid, host):
            return pid
    return None


def stop(recorded_pid: int | None, host: HostPlan, timeout: float = 10.0) -> bool:
    """Stop this host's master; returns False when it was not running."""
    pid = current_master(recorded_pid, host)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_our_process(pid, host):
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    return True


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} not readable)"
