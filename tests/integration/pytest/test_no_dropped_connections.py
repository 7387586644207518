"""No dropped connections: stapling flipped off and on five times with the playbooks while clients keep coming.

A bounded HTTPS load (fleetlab.tls_load: new connection, handshake, GET, close, over and over, on loopback) runs
against every vhost of one lab host before, during and after five ``disable_stapling.yml`` / ``enable_stapling.yml``
pairs on that host. Every request of every phase must succeed; the figures go to docs/reliability.md.
"""

from __future__ import annotations

import time

from conftest import record_reliability
from playbook_runs import assert_report_consistent, host_state
from playbook_runs import operator  # noqa: F401  (a fixture, found by name)  # pylint: disable=unused-import

from fleetlab.tls_load import TlsLoad, phase_figures

HOST = "web2"  # the RHEL layout: stapling at server scope, every vhost reloaded with it
FLIPS = 5
QUIET_SECONDS = 3.0  # load before the first and after the last flip


def _milliseconds(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def test_five_flips_off_and_on_drop_no_request(fleet, operator):
    host = fleet.host(HOST)
    targets = [(host["port"], vhost["server_name"]) for vhost in host["vhosts"]]
    before = host_state(fleet, HOST)
    outcomes = []

    with TlsLoad(targets) as load:
        time.sleep(QUIET_SECONDS)
        load.phase = "during"
        for _flip in range(FLIPS):
            for playbook in ("disable_stapling", "enable_stapling"):
                run = operator.run(playbook, stapling_target_hosts=HOST, stapling_force=True)
                rows = assert_report_consistent(run, playbook, hosts=(HOST,))
                assert run.returncode == 0 and rows[HOST]["status"] == "changed", run.output
                outcomes.append(rows[HOST]["status"])
        load.phase = "after"
        time.sleep(QUIET_SECONDS)
    requests = load.snapshot()

    figures = [phase_figures(requests, phase) for phase in ("before", "during", "after")]
    after = host_state(fleet, HOST)
    assert after.pid == before.pid, "the master was restarted, not reloaded"
    assert after.reloads - before.reloads >= 2 * FLIPS, (before.reloads, after.reloads)
    for phase in figures:
        assert phase["requests"] > 0, phase
        assert phase["failures"] == 0, phase
    table = ["## No dropped connections", "",
             f"`tests/integration/pytest/test_no_dropped_connections.py`: {FLIPS} runs of `disable_stapling.yml` and "
             f"{FLIPS} of `enable_stapling.yml` on {HOST} ({len(targets)} vhosts, {after.reloads - before.reloads} "
             "graceful reloads, the same master throughout) under a load of 4 clients, each request a new "
             "connection, TLS handshake and GET on loopback.", "",
             "| phase | requests | failed | handshake p50 (ms) | handshake p99 (ms) |", "|---|---|---|---|---|"]
    for phase in figures:
        table.append(f"| {phase['phase']} | {phase['requests']} | {phase['failures']} | {_milliseconds(phase['p50'])} "
                     f"| {_milliseconds(phase['p99'])} |")
    record_reliability(table[0], "\n".join(table) + "\n")
