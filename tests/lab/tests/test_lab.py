"""The lab fleet end to end, driven through its command line as a person or CI would drive it.

Real Apache processes, real OCSP over HTTP, checked with the OpenSSL command line: `s_client -status` for
what each vhost staples and `openssl ocsp` for what each fault mode answers.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from fleetlab import responder
from fleetlab.staple_check import check_staple
from fleetlab.testing import RunningLab, free_port_block, lab_cli

HOSTS = 3


def process_alive(pid: int) -> bool:
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())
    except OSError:
        return False


@pytest.fixture(scope="module")
def lab():
    running = RunningLab(HOSTS)
    yield {"dir": running.dir, "state": running.state}
    running.stop()


def bundle(lab: dict, ca: str) -> Path:
    return lab["dir"] / "pki" / ca / "bundle.pem"


def vhosts_of(lab: dict, kind: str | None = None):
    for host in lab["state"]["hosts"]:
        for vhost in host["vhosts"]:
            if kind is None or vhost["kind"] == kind:
                yield host, vhost


def test_each_host_is_its_own_apache_in_a_layout_of_its_own(lab):
    hosts = lab["state"]["hosts"]
    assert [h["layout"] for h in hosts] == ["debian", "rhel", "cpanel"]
    assert len({h["port"] for h in hosts}) == HOSTS
    for host in hosts:
        cmdline = Path(f"/proc/{host['pid']}/cmdline").read_bytes().split(b"\0")
        assert host["server_root"].encode() in cmdline
        assert int(Path(host["pid_file"]).read_text()) == host["pid"]


def test_normal_and_must_staple_vhosts_staple_a_good_response(lab):
    checked = 0
    for host, vhost in vhosts_of(lab):
        if vhost["kind"] not in ("normal", "must-staple"):
            continue
        result = check_staple(host["port"], vhost["server_name"], bundle(lab, vhost["ca"]))
        assert result.handshake_ok, result.output
        assert result.chain_verified, result.output
        assert (result.stapled, result.response_status, result.cert_status) == (True, "successful", "good"), \
            f"{host['name']} {vhost['server_name']}:\n{result.output}"
        checked += 1
    assert checked == HOSTS * 2 + 2  # two normal vhosts per host, must-staple on web1 and web3


def test_revoked_vhost_staples_revoked(lab):
    (host, vhost), = vhosts_of(lab, "revoked")
    result = check_staple(host["port"], vhost["server_name"], bundle(lab, vhost["ca"]))
    assert (result.stapled, result.cert_status) == (True, "revoked"), result.output


def test_certificate_without_ocsp_url_is_served_without_a_staple(lab):
    for host, vhost in vhosts_of(lab, "no-ocsp-url"):
        result = check_staple(host["port"], vhost["server_name"], bundle(lab, vhost["ca"]))
        assert result.handshake_ok and result.chain_verified, result.output
        assert not result.stapled, result.output
        assert "AH02218" in Path(host["error_log"]).read_text()


def test_inventory_carries_the_apache_contract_for_every_host(lab):
    inventory_cli = Path(sys.executable).with_name("ansible-inventory")
    if not inventory_cli.exists():
        pytest.skip("ansible-inventory is not installed beside this Python (run through make integration)")
    listed = subprocess.run([str(inventory_cli), "-i", str(lab["dir"] / "inventory.yml"), "--list"],
                            capture_output=True, text=True, check=True, timeout=60)
    hostvars = json.loads(listed.stdout)["_meta"]["hostvars"]
    assert sorted(hostvars) == ["web1", "web2", "web3"]
    for name, variables in hostvars.items():
        for key in ("stapling_apache_server_root", "stapling_apache_config_file", "stapling_apache_ctl",
                    "stapling_apache_reload_command"):
            assert variables.get(key), f"{name} lacks {key}"
        configtest = subprocess.run(shlex.split(variables["stapling_apache_ctl"]) + ["-t"],
                                    capture_output=True, text=True, check=False)
        assert configtest.returncode == 0 and "Syntax OK" in configtest.stderr, configtest.stderr


def ansible_on_lab(lab: dict, host: str, module: str, args: str) -> tuple[bool, dict]:
    """``ansible HOST -m MODULE -a ARGS`` through the lab's inventory, with nothing from this process's
    environment choosing the interpreter: (succeeded, result)."""
    ansible_cli = Path(sys.executable).with_name("ansible")
    if not ansible_cli.exists():
        pytest.skip("ansible is not installed beside this Python (run through make integration)")
    environment = {key: value for key, value in os.environ.items() if key != "ANSIBLE_PYTHON_INTERPRETER"}
    tree = Path(tempfile.mkdtemp(prefix="fleet-lab-ansible-"))
    environment.update(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.tree",
                       ANSIBLE_CALLBACK_TREE_DIR=str(tree))
    try:
        completed = subprocess.run([str(ansible_cli), host, "-i", str(lab["dir"] / "inventory.yml"), "-m", module,
                                    "-a", args], capture_output=True, text=True, timeout=120, check=False,
                                   env=environment)
        try:
            result = json.loads((tree / host).read_text())
        except (OSError, ValueError):
            raise AssertionError(f"no result from ansible:\n{completed.stdout}{completed.stderr}") from None
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    failed = result.get("failed") or result.get("unreachable") or result.get("rc", 0) != 0
    return not failed, result


def test_inventory_reaches_hosts_over_ssh_with_the_system_python(lab):
    for host in ("web1", "web3"):
        ok, result = ansible_on_lab(lab, host, "ansible.builtin.setup", "gather_subset=!all filter=ansible_python")
        assert ok, result
        python = result["ansible_facts"]["ansible_python"]
        assert python["executable"].startswith("/usr/bin/python3"), python
        assert result["ansible_facts"]["discovered_interpreter_python"].startswith("/usr/bin/python3")
        # what the modules import there: the distribution's cryptography, and no pyOpenSSL
        ok, result = ansible_on_lab(lab, host, "ansible.builtin.command", (
            "/usr/bin/python3 -c 'import cryptography; print(cryptography.__file__)'"))
        assert ok and result["stdout"].startswith("/usr/lib/python3/dist-packages/cryptography/"), result
        ok, result = ansible_on_lab(lab, host, "ansible.builtin.command", "/usr/bin/python3 -c 'import OpenSSL'")
        assert not ok and "No module named 'OpenSSL'" in result["stderr"], json.dumps(result)


def test_ssh_door_refuses_other_keys_and_listens_on_loopback_only(lab, tmp_path):
    ssh = lab["state"]["ssh"]
    stranger = tmp_path / "stranger_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    refused = subprocess.run(
        ["ssh", "-i", str(stranger), "-o", f"UserKnownHostsFile={ssh['known_hosts']}", "-o", "BatchMode=yes",
         "-o", "IdentitiesOnly=yes", "-p", str(ssh["port"]), f"{ssh['user']}@127.0.0.1", "true"],
        capture_output=True, text=True, timeout=30, check=False)
    assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused.stderr
    config = Path(ssh["config"]).read_text()
    assert "ListenAddress 127.0.0.1" in config and "PasswordAuthentication no" in config


def test_reload_command_reloads_in_place(lab):
    host = lab["state"]["hosts"][1]
    before = Path(host["error_log"]).read_text().count("resuming normal operations")
    subprocess.run(shlex.split(host["reload"]), check=True, capture_output=True)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if Path(host["error_log"]).read_text().count("resuming normal operations") > before:
            break
        time.sleep(0.1)
    assert Path(host["error_log"]).read_text().count("resuming normal operations") == before + 1
    assert int(Path(host["pid_file"]).read_text()) == host["pid"]  # graceful: the master stays
    vhost = host["vhosts"][0]
    assert check_staple(host["port"], vhost["server_name"], bundle(lab, vhost["ca"])).stapled


# What `openssl ocsp` prints for each fault mode of the responder: an independent client's view.
FAULT_EXPECTATIONS = {
    "ok": ["Response verify OK", ": good"],
    "hang": ["Error querying OCSP responder", "timeout"],
    "html": ["Error querying OCSP responder", "unexpected content type"],
    "http500": ["Error querying OCSP responder", "code=500"],
    "garbage": ["Error querying OCSP responder"],
    "trylater": ["Responder Error: trylater"],
    "unauthorized": ["Responder Error: unauthorized"],
    "wrong-signer": ["Response Verify Failure"],
    "expired": ["Status times invalid", "status expired"],
    "future": ["Status times invalid", "status not yet valid"],
}


def openssl_ocsp(lab: dict, ca: str, leaf_name: str, timeout: int = 2) -> str:
    ca_dir = lab["dir"] / "pki" / ca
    url = lab["state"]["responders"][ca]["url"]
    result = subprocess.run(
        ["openssl", "ocsp", "-issuer", str(ca_dir / "intermediate.pem"), "-cert",
         str(ca_dir / "leaves" / f"{leaf_name}.pem"), "-url", url, "-CAfile", str(ca_dir / "bundle.pem"),
         "-timeout", str(timeout)],
        capture_output=True, text=True, timeout=30, check=False)
    return result.stdout + result.stderr


@pytest.mark.parametrize("mode", sorted(FAULT_EXPECTATIONS))
def test_fault_mode_switched_by_the_cli_answers_as_named(lab, mode):
    try:
        lab_cli(lab["dir"], "fault", "alpha", mode)
        output = openssl_ocsp(lab, "alpha", "www-alpha.web1.lab.test")
    finally:
        lab_cli(lab["dir"], "fault", "alpha", "ok")
    for expected in FAULT_EXPECTATIONS[mode]:
        assert expected in output, f"mode {mode}: {expected!r} not in:\n{output}"
    # the other CA's responder is independent and still answers
    assert ": good" in openssl_ocsp(lab, "beta", "www-beta.web1.lab.test")


def test_down_refuses_connections_and_status_shows_the_mode(lab):
    port = lab["state"]["responders"]["alpha"]["port"]
    try:
        lab_cli(lab["dir"], "fault", "alpha", "down")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        report = json.loads(lab_cli(lab["dir"], "status", "--json", check=False).stdout)
        modes = {r["ca"]: r["mode"] for r in report["responders"]}
        assert modes == {"alpha": "down", "beta": "ok"}
    finally:
        lab_cli(lab["dir"], "fault", "alpha", "ok")
    socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_unknown_fault_mode_is_refused_with_the_valid_ones(lab):
    result = lab_cli(lab["dir"], "fault", "alpha", "sideways", check=False)
    assert result.returncode != 0
    assert "trylater" in result.stderr  # argparse lists the valid modes


def test_cut_responder_spoils_only_that_cas_staples_on_a_fresh_start(lab):
    host = lab["state"]["hosts"][1]  # RHEL layout: Apache's stapling defaults, FakeTryLater on
    try:
        lab_cli(lab["dir"], "fault", "alpha", "down")
        lab_cli(lab["dir"], "reset-host", host["name"])  # restart: the stapling cache starts empty
        alpha = check_staple(host["port"], f"www-alpha.{host['name']}.lab.test", bundle(lab, "alpha"))
        beta = check_staple(host["port"], f"www-beta.{host['name']}.lab.test", bundle(lab, "beta"))
        # with its defaults Apache staples a made-up tryLater instead of a real answer (Firefox rejects it)
        assert alpha.handshake_ok and alpha.response_status == "trylater" and alpha.cert_status is None, alpha.output
        assert beta.stapled and beta.cert_status == "good", beta.output
    finally:
        lab_cli(lab["dir"], "fault", "alpha", "ok")
        lab_cli(lab["dir"], "reset-host", host["name"])
    log = Path(host["error_log"]).read_text()
    assert "AH01974" in log or "AH01941" in log  # Apache itself saw the responder fail


def test_teardown_stops_only_what_the_lab_started(tmp_path):
    directory = Path(tempfile.mkdtemp(prefix="fleet-lab-small-"))
    base = free_port_block(20)
    try:
        lab_cli(directory, "up", "--hosts", "1", "--base-port", str(base))
        state = json.loads((directory / "lab.json").read_text())
        # a look-alike responder for the same CA that the lab did not start must survive the teardown
        ca = state["responders"]["alpha"]
        decoy = subprocess.Popen(
            responder.responder_command(Path(ca["ca_dir"]), base + 19, tmp_path / "decoy.mode"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            responder.wait_until_applied(tmp_path / "decoy.mode", "ok")
            pids = [h["pid"] for h in state["hosts"]] + [r["pid"] for r in state["responders"].values()]
            pids.append(state["ssh"]["pid"])
            assert all(process_alive(pid) for pid in pids)
            stopped = lab_cli(directory, "down").stdout
            assert "web1" in stopped and "responder alpha" in stopped and "sshd" in stopped
            assert not any(process_alive(pid) for pid in pids)
            assert decoy.poll() is None, "teardown killed a process the lab did not start"
        finally:
            decoy.terminate()
            decoy.wait(timeout=10)
    finally:
        lab_cli(directory, "down", check=False)
        shutil.rmtree(directory, ignore_errors=True)
