"""Stapling switched on across hosts that serve certificates with and without an OCSP URL.

Every lab host serves new-beta, whose certificate has no OCSP URL (as Let's Encrypt's have had since May 2025),
beside www-alpha and www-beta, which name their CA's responder. With stapling on for all of them, as the lab's
pristine configs have it, httpd logs AH02218 and AH02604 for new-beta at each start. ``enable_stapling`` with the
default ``stapling_without_ocsp_url=off`` must leave new-beta off in its own scope on the Debian, RHEL and cPanel
layouts, so that a full restart logs none of AH02218, AH02604 and AH02814 while every vhost with an OCSP URL
still staples; ``leave`` must bring the old behaviour (and the errors) back.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from conftest import HOST_NAMES, error_log_reloads, expected_staples, lab_fleet
from playbook_runs import assert_clients_see, assert_report_consistent, assert_untouched, fleet_state, server_names
from playbook_runs import operator  # noqa: F401  (a fixture, found by name)  # pylint: disable=unused-import

NO_URL_ERRORS = re.compile(r"AH02218|AH02604|AH02814")


@pytest.fixture(scope="module")
def fleet():
    with lab_fleet("fleet-stapling-without-url-") as running:
        yield running


def restart_and_read_log(fleet, name: str) -> str:
    """A full restart (``-k restart``, every certificate set up again) and what the error log got from it."""
    host = fleet.host(name)
    log = Path(host["error_log"])
    offset = log.stat().st_size
    before = error_log_reloads(host)
    completed = subprocess.run(shlex.split(host["ctl"]) + ["-k", "restart"], capture_output=True, text=True,
                               timeout=60, check=False)
    assert completed.returncode == 0, f"{name}: restart failed:\n{completed.stdout}{completed.stderr}"
    fleet.wait_for_reloads(name, before + 1)
    with log.open("rb") as stream:
        stream.seek(offset)
        return stream.read().decode("utf-8", "replace")


def test_enable_keeps_sites_without_an_ocsp_url_off_so_a_restart_logs_no_stapling_error(fleet, operator):
    hosts = {name: fleet.host(name) for name in HOST_NAMES}
    without_url = {name: server_names(host, kind="no-ocsp-url") for name, host in hosts.items()}
    # the lab reproduces the complaint first: stapling on for every vhost, as the pristine configs have it
    for name in HOST_NAMES:
        assert "AH02218" in restart_and_read_log(fleet, name), f"{name}: the lab should log AH02218 before the fix"

    run = operator.run("enable_stapling")

    assert run.returncode == 0, run.output
    rows = assert_report_consistent(run, "enable_stapling")
    for name, host in hosts.items():
        assert rows[name]["status"] == "changed", rows[name]
        log = restart_and_read_log(fleet, name)
        assert not NO_URL_ERRORS.findall(log), f"{name}: stapling errors after the restart:\n{log}"
        # www-alpha, www-beta and the host's special vhost still staple their true status; new-beta sends none
        assert_clients_see(fleet, name, expected_staples(host))
    # in the config too: new-beta off in its own scope, every other vhost on
    for name, info in fleet.info(list(HOST_NAMES)).items():
        configured = {v["server_name"]: v["stapling"] for v in info["vhosts"]}
        assert {server for server, on in configured.items() if not on} == without_url[name], (name, configured)
        assert all(v["stapling_decided_by"] == "vhost" for v in info["vhosts"]
                   if v["server_name"] in without_url[name]), info["vhosts"]
    settled = fleet_state(fleet)

    again = operator.run("enable_stapling")

    assert again.returncode == 0, again.output
    assert again.report["counts"] == {"unchanged": len(HOST_NAMES)}, again.report
    for name in HOST_NAMES:
        assert_untouched(fleet, name, settled[name])

    # "leave" switches them on like the others: the restart complains again, and the sites still staple
    left = operator.run("enable_stapling", stapling_without_ocsp_url="leave")

    assert left.returncode == 0, left.output
    for name, host in hosts.items():
        assert "AH02218" in restart_and_read_log(fleet, name), name
        assert_clients_see(fleet, name, expected_staples(host))
