"""Stapling set up on hosts that never had it: the second runbook, on every layout at once.

The lab starts here with ``--start-state never``: SSL vhosts in the Debian, RHEL and cPanel layouts and not one
SSLUseStapling, SSLStaplingCache or SSLCACertificateFile anywhere, as on most servers before anyone thought of
stapling. ``enable_stapling`` with a CA bundle assembled from PEM and DER files must then make every vhost
whose certificate names a responder staple its true status, with no AH02217 (issuer not found) in the error
log, and a second run must change nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import HOST_NAMES, expected_staples, lab_fleet
from playbook_runs import (
    assert_clients_see,
    assert_report_consistent,
    assert_untouched,
    fleet_state,
)
from playbook_runs import operator  # noqa: F401  (a fixture, found by name)  # pylint: disable=unused-import

STAPLING_DIRECTIVE = re.compile(rb"(?im)^\s*(SSLUseStapling|SSLStaplingCache|SSLCACertificateFile)\b")
BUNDLE_PATH_ON_THE_HOST = "{{ stapling_apache_server_root }}/fleet-stapling-ca-bundle.pem"


@pytest.fixture(scope="module")
def fleet():
    """This module's own lab, whose hosts have never had stapling (it replaces conftest's ``fleet``)."""
    with lab_fleet("fleet-stapling-from-nothing-", start_state="never") as running:
        yield running


def stapling_lines(server_root: Path) -> list[str]:
    found = []
    for path in sorted(server_root.rglob("*.conf")):
        if path.is_file():
            found += [f"{path}: {match.group(0).strip().decode()}" for match in STAPLING_DIRECTIVE.finditer(
                path.read_bytes())]
    return found


def test_the_hosts_start_with_no_stapling_directive_and_staple_nothing(fleet):
    for name in HOST_NAMES:
        host = fleet.host(name)
        assert stapling_lines(Path(host["server_root"])) == [], name
        assert_clients_see(fleet, name, {vhost["server_name"]: None for vhost in host["vhosts"]})


def test_enable_with_a_bundle_from_pem_and_der_makes_every_vhost_with_a_responder_staple(fleet, operator):
    pki = fleet.lab.dir / "pki"
    sources = sorted(str(path) for path in (pki / "alpha" / "bundle-der").glob("*.der"))
    sources.append(str(pki / "beta" / "bundle.pem"))

    run = operator.run("enable_stapling", stapling_ca_bundle_sources=sources,
                       stapling_ca_bundle_path=BUNDLE_PATH_ON_THE_HOST)

    assert run.returncode == 0, run.output
    rows = assert_report_consistent(run, "enable_stapling")
    for name in HOST_NAMES:
        host = fleet.host(name)
        assert rows[name]["status"] == "changed", rows[name]
        assert fleet.configtest(name).returncode == 0
        assert_clients_see(fleet, name, expected_staples(host))
        written = stapling_lines(Path(host["server_root"]))
        assert any("SSLStaplingCache" in line for line in written), written
        assert any("SSLCACertificateFile" in line for line in written), written
        error_log = Path(host["error_log"]).read_text(errors="replace")
        assert "AH02217" not in error_log, f"{name}: the bundle lacks an issuer:\n{error_log[-2000:]}"
    settled = fleet_state(fleet)

    again = operator.run("enable_stapling", stapling_ca_bundle_sources=sources,
                         stapling_ca_bundle_path=BUNDLE_PATH_ON_THE_HOST)

    assert again.returncode == 0, again.output
    assert assert_report_consistent(again, "enable_stapling")
    assert again.report["counts"] == {"unchanged": len(HOST_NAMES)}, again.report
    for name in HOST_NAMES:
        assert_untouched(fleet, name, settled[name])
