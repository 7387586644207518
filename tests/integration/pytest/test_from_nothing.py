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
    names_of,
    promised_by_check_mode,
    server_names,
    stapling_names,
    written_since,
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
        # the report says what the plan did: every SSL vhost with a responder switched (new-beta, without an
        # OCSP URL, stays off in its own scope), the files written, the reload
        switched = len(stapling_names(host))
        assert rows[name]["message"].startswith(f"{switched} vhost(s) switched, "), rows[name]
        assert names_of(rows[name]["off_without_url"]) == server_names(host, kind="no-ocsp-url"), rows[name]
        assert rows[name]["message"].endswith(", CA bundle deployed, reloaded"), rows[name]
        assert rows[name]["reloaded"] is True and rows[name]["files"], rows[name]
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

    audit = operator.run("audit_stapling", stapling_state="enabled", stapling_ca_bundle_sources=sources,
                         stapling_ca_bundle_path=BUNDLE_PATH_ON_THE_HOST)

    assert audit.returncode == 0, audit.output
    assert assert_report_consistent(audit, "audit_stapling")
    assert audit.report["counts"] == {"in_line": len(HOST_NAMES)}, audit.report
    for name in HOST_NAMES:
        assert_untouched(fleet, name, settled[name])


def test_audit_reports_the_drift_of_hosts_that_never_stapled_and_changes_no_byte(fleet, operator):
    before = fleet_state(fleet)

    audit = operator.run("audit_stapling", stapling_state="enabled")

    assert audit.returncode != 0, audit.output  # drift fails the pipeline
    rows = assert_report_consistent(audit, "audit_stapling")
    for name in HOST_NAMES:
        host = fleet.host(name)
        assert rows[name]["status"] == "drift", rows[name]
        # the server default goes on, so every SSL vhost with a responder would change; new-beta, without one,
        # would be kept off in its own scope
        assert names_of(rows[name]["vhosts_changed"]) == stapling_names(host), rows[name]
        assert_untouched(fleet, name, before[name])


@pytest.mark.parametrize("playbook, extra_vars", [
    ("enable_stapling", {"stapling_ca_bundle_path": BUNDLE_PATH_ON_THE_HOST}),
    ("disable_stapling", {"stapling_force": True}),
    ("auto_stapling", {}),
])
def test_check_mode_promises_exactly_what_the_real_run_writes(fleet, operator, playbook, extra_vars):
    """File by file and link by link: the diff of --check --diff is what the real run then writes."""
    pki = fleet.lab.dir / "pki"
    if playbook == "enable_stapling":
        sources = [str(pki / "alpha" / "bundle.pem"), str(pki / "beta" / "bundle.pem")]
        extra_vars = dict(extra_vars, stapling_ca_bundle_sources=sources)
    before = fleet_state(fleet)

    check = operator.run(playbook, check=True, **extra_vars)

    assert check.returncode == 0, check.output
    for name in HOST_NAMES:
        assert_untouched(fleet, name, before[name])

    real = operator.run(playbook, **extra_vars)

    assert real.returncode == 0, real.output
    written = written_since(fleet, before)
    assert all(written.values()), written  # every host had something to change
    assert promised_by_check_mode(fleet, check) == written
