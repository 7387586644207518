"""Helpers for test suites that run a lab of their own: free ports, the CLI, a lab fixture's life cycle."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from fleetlab import responder
from fleetlab.fleet import HOST_PORT_OFFSET

LAB_PY = Path(__file__).resolve().parent.parent / "lab.py"


def free_port_block(size: int) -> int:
    """A base port whose next ``size`` ports are free on IPv4 loopback (and IPv6 where there is one)."""
    for base in range(21000 + (os.getpid() % 50) * 40, 40000, 40):
        if all(_port_free(port) for port in range(base, base + size)):
            return base
    raise RuntimeError("no free block of loopback ports")


def _port_free(port: int) -> bool:
    families = [(socket.AF_INET, "127.0.0.1")]
    if responder.ipv6_loopback_available():
        families.append((socket.AF_INET6, "::1"))
    for family, address in families:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((address, port))
            except OSError:
                return False
    return True


def lab_cli(directory: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``lab.py --dir DIRECTORY ARGS`` with this Python; fail with the lab's own output when it fails."""
    result = subprocess.run([sys.executable, str(LAB_PY), "--dir", str(directory), *args],
                            capture_output=True, text=True, timeout=120, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"lab.py {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


class RunningLab:
    """A lab started in a fresh temporary directory on free ports; ``stop`` tears it down and removes it."""

    def __init__(self, hosts: int, prefix: str = "fleet-lab-test-", start_state: str = "stapling"):
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.base_port = free_port_block(HOST_PORT_OFFSET + max(hosts, 10))  # a host's port is offset + index
        lab_cli(self.dir, "up", "--hosts", str(hosts), "--base-port", str(self.base_port),
                "--start-state", start_state)
        self.state = json.loads((self.dir / "lab.json").read_text())

    @property
    def inventory(self) -> Path:
        return self.dir / "inventory.yml"

    def host(self, name: str) -> dict:
        return next(h for h in self.state["hosts"] if h["name"] == name)

    def bundle(self, ca: str) -> Path:
        return self.dir / "pki" / ca / "bundle.pem"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return lab_cli(self.dir, *args, check=check)

    def reset_host(self, name: str) -> None:
        """Pristine config and a restarted server; the state file keeps the new pid."""
        self.cli("reset-host", name)
        self.state = json.loads((self.dir / "lab.json").read_text())

    def stop(self) -> None:
        lab_cli(self.dir, "down", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
