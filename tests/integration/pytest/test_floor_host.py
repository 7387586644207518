"""The incident playbooks on hosts at the collection's floor: Python 3.8, cryptography 3.4.8, no pyOpenSSL.

Ubuntu 22.04's system Python has that cryptography; RHEL 9's is barely newer. The lab's hosts run Debian 12's
system Python, so here every host gets a second inventory that points ``ansible_python_interpreter`` at a
virtual environment with exactly the floor (``tests/tools/compat_venv.sh``, the same one the compatibility
matrix uses), reached over the lab's SSH like any other interpreter. A probe, a disable scoped to one CA and an
enable must then do what they do on the system Python.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import HOST_NAMES, REPO_ROOT, expected_staples, run_adhoc
from playbook_runs import (
    ALPHA_OCSP_HOST,
    Operator,
    assert_clients_see,
    assert_reloaded,
    assert_report_consistent,
    assert_untouched,
    fleet_state,
    names_of,
    server_names,
)

FLOOR_PYTHON = "3.8"
FLOOR_CRYPTOGRAPHY = "3.4.8"
BELOW_FLOOR_CRYPTOGRAPHY = "3.3.2"  # Debian 11's
MODULES_NEEDING_CRYPTOGRAPHY = ("apache_stapling_info", "apache_stapling", "ocsp_probe")


def compat_python(cryptography_version: str) -> str:
    """The python of the compatibility matrix's venv: Python 3.8 with that cryptography and no pyOpenSSL."""
    completed = subprocess.run(
        [str(REPO_ROOT / "tests" / "tools" / "compat_venv.sh"), FLOOR_PYTHON, cryptography_version, "no-pyopenssl"],
        capture_output=True, text=True, timeout=900, check=False)
    assert completed.returncode == 0, f"no such interpreter:\n{completed.stdout}{completed.stderr}"
    return completed.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def floor_python() -> str:
    return compat_python(FLOOR_CRYPTOGRAPHY)


def run_module(fleet, inventory: Path, module: str, arguments: str) -> tuple[bool, dict]:
    """One module on web1 in check mode, through the lab inventory plus ``inventory``: (succeeded, its result)."""
    return run_adhoc(fleet.env, [fleet.lab.inventory, inventory], "web1", module, arguments, check=True)


def floor_inventory(directory: Path, floor_python: str) -> Path:
    """A second inventory source that gives every lab host the floor interpreter (a host variable, as an
    operator's host_vars would: the lab inventory's own host variable would win over a group variable)."""
    inventory = directory / "floor-interpreter.json"
    hosts = {name: {"ansible_python_interpreter": floor_python} for name in HOST_NAMES}
    inventory.write_text(json.dumps({"all": {"hosts": hosts}}))  # JSON is YAML
    return inventory


@pytest.fixture
def floor_operator(fleet, tmp_path, floor_python):
    """An operator whose inventory sends every host's modules to the floor interpreter."""
    inventory = floor_inventory(tmp_path, floor_python)
    try:
        yield Operator(fleet, tmp_path), (inventory,)
    finally:
        fleet.lab.cli("fault", "all", "ok")
        for name in HOST_NAMES:
            fleet.reset(name)


def test_the_floor_interpreter_is_what_the_modules_get_over_ssh(fleet, floor_python, tmp_path):
    inventory = floor_inventory(tmp_path, floor_python)
    completed = subprocess.run(
        [floor_python, "-c",
         "import cryptography, importlib.util; print(cryptography.__version__, "
         "importlib.util.find_spec('OpenSSL') is not None)"],
        capture_output=True, text=True, timeout=60, check=True)
    assert completed.stdout.split() == [FLOOR_CRYPTOGRAPHY, "False"]
    succeeded, facts = run_module(fleet, inventory, "ansible.builtin.setup", "gather_subset=!all,!min,python")
    assert succeeded, facts
    python = facts["ansible_facts"]["ansible_python"]
    assert (python["version"]["major"], python["version"]["minor"]) == (3, 8), python
    assert python["executable"] == floor_python, python


def test_probe_then_scoped_disable_then_enable_work_at_the_floor(fleet, floor_operator):
    operator, inventories = floor_operator
    hosts = {name: fleet.host(name) for name in HOST_NAMES}
    alpha_url, beta_url = operator.responder_url("alpha"), operator.responder_url("beta")
    operator.fault("alpha", "down")
    before = fleet_state(fleet)

    probe = operator.run("probe_responders", inventories)

    assert probe.returncode == 0, probe.output
    rows = assert_report_consistent(probe, "probe_responders")
    for name in HOST_NAMES:
        responders = {responder["url"]: responder for responder in rows[name]["responders"]}
        assert (responders[alpha_url]["healthy"], responders[alpha_url]["error_class"]) == (False, "connect_refused")
        assert (responders[beta_url]["healthy"], responders[beta_url]["error_class"]) == (True, None)
        assert_untouched(fleet, name, before[name])

    disable = operator.run("disable_stapling", inventories, stapling_ocsp_hosts=[ALPHA_OCSP_HOST])

    # web1 serves an alpha Must-Staple certificate: the guard holds it back, as on any Python.
    assert disable.returncode != 0, disable.output
    rows = assert_report_consistent(disable, "disable_stapling")
    assert rows["web1"]["status"] == "failed" and "Must-Staple" in rows["web1"]["message"], rows["web1"]
    assert_untouched(fleet, "web1", before["web1"])
    for name in ("web2", "web3"):
        alpha = server_names(hosts[name], ca="alpha")
        assert rows[name]["status"] == "changed", rows[name]
        assert names_of(rows[name]["vhosts_changed"]) == alpha, rows[name]
        assert_reloaded(fleet, name, before[name])
        assert_clients_see(fleet, name, expected_staples(hosts[name], switched_off=alpha))
    operator.fault("alpha", "ok")
    switched_off = fleet_state(fleet)

    enable = operator.run("enable_stapling", inventories, stapling_ocsp_hosts=[ALPHA_OCSP_HOST])

    assert enable.returncode == 0, enable.output
    rows = assert_report_consistent(enable, "enable_stapling")
    for name in ("web2", "web3"):
        assert rows[name]["status"] == "changed", rows[name]
        # new-beta, without an OCSP URL, is no responder's site: an enabling run switches it off as well
        assert names_of(rows[name]["vhosts_changed"]) == server_names(hosts[name], ca="alpha") | server_names(
            hosts[name], kind="no-ocsp-url"), rows[name]
        assert_reloaded(fleet, name, switched_off[name])
    for name in HOST_NAMES:
        assert_clients_see(fleet, name, expected_staples(hosts[name]))


def test_below_the_floor_every_module_that_needs_cryptography_says_so_without_a_traceback(fleet, tmp_path):
    below_floor_python = compat_python(BELOW_FLOOR_CRYPTOGRAPHY)
    inventory = floor_inventory(tmp_path, below_floor_python)
    instance = "ctl='{{ stapling_apache_ctl }}' config_file='{{ stapling_apache_config_file }}'"
    for module in MODULES_NEEDING_CRYPTOGRAPHY:
        options = instance + (" discover=true" if module == "ocsp_probe" else "")
        options += " state=disabled" if module == "apache_stapling" else ""
        succeeded, result = run_module(fleet, inventory, f"fleet.stapling.{module}", options)
        assert not succeeded, (module, result)
        message = result["msg"]
        assert f"cryptography {BELOW_FLOOR_CRYPTOGRAPHY} is too old" in message, (module, message)
        assert f">= {FLOOR_CRYPTOGRAPHY}" in message and below_floor_python in message, (module, message)
        assert "Traceback" not in json.dumps(result) and not result.get("module_stderr"), (module, result)
    # apache_stapling_log reads no certificate's signature: it still works there, certificates or not.
    succeeded, result = run_module(fleet, inventory, "fleet.stapling.apache_stapling_log", instance)
    assert succeeded, result
