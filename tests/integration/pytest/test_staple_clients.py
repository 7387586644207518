"""The stapled check's clients against the lab's real Apache hosts: pyOpenSSL, openssl s_client, and ssl.

Under this venv both staple clients are available, so each vhost is checked with each and the answers must be
the same (the same staple bytes, the same verdict). Through the lab inventory the module runs over SSH with the
system Python, where pyOpenSSL is hidden as on a minimal host: there the staple must come through
``openssl s_client``, and the handshake-only liveness check through the standard library's ``ssl``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conftest import COLLECTIONS_ROOT, run_adhoc, running_lab
from ansible_collections.fleet.stapling.plugins.module_utils import ocsp_probe_run, staple_probe
from fleetlab.testing import RunningLab, free_port_block

HOSTS = ("web1", "web2")  # web2 serves a revoked certificate, web1 a Must-Staple one
CLIENTS = ("pyopenssl", "openssl-s_client")
# What every client must conclude per kind of lab certificate: (status, error_class).
EXPECTED = {
    "normal": ("good", None),
    "must-staple": ("good", None),
    "revoked": ("bad", "revoked"),
    "no-ocsp-url": ("not_stapled", "no_ocsp_url"),
}
COMPARED = ("handshake", "handshake_error", "tls_version", "stapled", "status", "healthy", "error_class",
            "certificate", "ocsp")

pytestmark = pytest.mark.skipif(not staple_probe.HAS_PYOPENSSL or shutil.which("openssl") is None,
                                reason="comparing the clients needs pyOpenSSL in this venv and the openssl command")


class ClientsLab:
    """The running lab, and the module run through Ansible on it."""

    def __init__(self, lab: RunningLab, scratch: Path):
        self.lab = lab
        self.scratch = scratch
        # Loopback only: a proxy from the environment must not come between; the inventory picks the Python.
        self.env = {key: value for key, value in os.environ.items()
                    if key.lower() != "http_proxy" and key != "ANSIBLE_PYTHON_INTERPRETER"}
        self.env.update(ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT, ANSIBLE_NOCOLOR="1",
                        ANSIBLE_LOCAL_TEMP=str(scratch / "ansible-tmp"), ANSIBLE_RETRY_FILES_ENABLED="0")

    def vhosts(self, name: str) -> list[dict]:
        return self.lab.host(name)["vhosts"]

    def targets(self, name: str) -> list[dict]:
        port = self.lab.host(name)["port"]
        return [{"address": "127.0.0.1", "port": port, "server_name": v["server_name"]} for v in self.vhosts(name)]

    def run_direct(self, name: str, client: str) -> dict[str, dict]:
        """The module's orchestration in this venv, with the staple client forced: stapled entries by name."""
        targets = [ocsp_probe_run.StapleTarget(t["address"], t["port"], t["server_name"], expected=True)
                   for t in self.targets(name)]
        report = ocsp_probe_run.run([], ocsp_probe_run.Settings(timeout=5, staple_client=client), targets)
        return {entry["server_name"]: entry for entry in report["stapled"]}

    def module(self, args: dict, host: str) -> tuple[bool, dict]:
        """``ansible HOST -m fleet.stapling.ocsp_probe`` over the lab's SSH: (succeeded, result)."""
        return run_adhoc(self.env, [self.lab.inventory], host, "fleet.stapling.ocsp_probe", args, cwd=self.scratch)


@pytest.fixture(scope="module")
def lab():
    with running_lab(len(HOSTS), "fleet-staple-clients-") as (running, scratch):
        yield ClientsLab(running, scratch)


# ---------------------------------------------------------------------------------------------- in this venv


@pytest.mark.parametrize("name", HOSTS)
def test_both_clients_get_the_same_staple_bytes(lab, name):
    port = lab.lab.host(name)["port"]
    for vhost in lab.vhosts(name):
        found = {client: staple_probe.fetch_staple(["127.0.0.1"], port, vhost["server_name"], 5, client=client)
                 for client in CLIENTS}
        pyopenssl, s_client = found["pyopenssl"], found["openssl-s_client"]
        assert (pyopenssl["client"], s_client["client"]) == CLIENTS
        assert pyopenssl["handshake"] == s_client["handshake"] == "ok", (pyopenssl, s_client)
        assert pyopenssl["stapled"] is s_client["stapled"] is (vhost["kind"] != "no-ocsp-url"), vhost
        # byte for byte: what s_client's -msg dump gives back is exactly what Apache stapled
        assert pyopenssl["staple"] == s_client["staple"], vhost["server_name"]
        assert [c.serial_number for c in pyopenssl["chain"]] == [c.serial_number for c in s_client["chain"]]
        assert len(s_client["chain"]) >= 2, "the served chain holds the intermediate"


@pytest.mark.parametrize("name", HOSTS)
def test_both_clients_reach_the_same_verdicts(lab, name):
    reports = {client: lab.run_direct(name, client) for client in CLIENTS}
    for vhost in lab.vhosts(name):
        entries = {client: reports[client][vhost["server_name"]] for client in CLIENTS}
        for client, entry in entries.items():
            assert entry["client"] == client
            assert (entry["status"], entry["error_class"]) == EXPECTED[vhost["kind"]], (client, entry["message"])
        pyopenssl, s_client = entries["pyopenssl"], entries["openssl-s_client"]
        for key in COMPARED:
            assert pyopenssl[key] == s_client[key], (vhost["server_name"], key, pyopenssl[key], s_client[key])
    revoked = [v for v in lab.vhosts(name) if v["kind"] == "revoked"]
    for vhost in revoked:
        assert reports["openssl-s_client"][vhost["server_name"]]["ocsp"]["cert_status"] == "revoked"


# ---------------------------------------------------------------------------------------------- over SSH, no pyOpenSSL


@pytest.mark.parametrize("name", HOSTS)
def test_module_on_a_host_without_pyopenssl_staples_through_s_client(lab, name):
    succeeded, result = lab.module({"stapled": True, "stapled_targets": lab.targets(name), "timeout": 5}, name)
    assert succeeded, result
    assert "pyOpenSSL" not in result.get("msg", "")
    by_name = {entry["server_name"]: entry for entry in result["stapled"]}
    direct = lab.run_direct(name, "pyopenssl")
    for vhost in lab.vhosts(name):
        entry = by_name[vhost["server_name"]]
        # pyOpenSSL would be preferred: seeing s_client proves the host's Python has none
        assert entry["client"] == "openssl-s_client", entry
        assert (entry["status"], entry["error_class"]) == EXPECTED[vhost["kind"]], entry["message"]
        reference = direct[vhost["server_name"]]
        assert (entry["stapled"], (entry["ocsp"] or {}).get("cert_status")) == (
            reference["stapled"], (reference["ocsp"] or {}).get("cert_status"))


def test_handshake_only_liveness_over_ssh(lab):
    dead_port = free_port_block(1)  # nothing listens there
    targets = lab.targets("web1") + [{"address": "127.0.0.1", "port": dead_port, "server_name": "gone.lab.test"}]
    succeeded, result = lab.module({"stapled": True, "stapled_check": "handshake", "stapled_targets": targets,
                                    "timeout": 3}, "web1")
    assert succeeded, result
    *alive, dead = result["stapled"]
    assert len(alive) == len(lab.vhosts("web1"))
    for entry in alive:
        assert (entry["client"], entry["handshake"], entry["stapled"], entry["status"], entry["healthy"]) == (
            "ssl", "ok", None, "not_checked", True), entry
        assert entry["ocsp"] is None and entry["tls_version"].startswith("TLSv1")
        assert "CN=%s" % entry["server_name"] in entry["certificate"]["subject"]
    assert (dead["client"], dead["handshake"], dead["status"], dead["error_class"]) == (
        "ssl", "not_tried", "unreachable", "connect_refused")
    summary = result["summary"]
    assert (summary["staple_not_checked"], summary["stapled_unreachable"], summary["healthy"]) == (
        len(alive), 1, False)
