"""The playbooks of playbooks/ on the lab fleet: web1 (Debian layout), web2 (RHEL) and web3 (cPanel).

Each test runs ``ansible-playbook -i <lab inventory> playbooks/<name>.yml -e ...`` the way an operator does, with
the environment of ``make integration`` (the ``fleet`` fixture's), and checks what an operator would check: the
exit code, the fleet report the playbook writes to ``stapling_report_dir`` (JSON, and Markdown for the matrix),
what ``openssl s_client -status`` gets from each vhost, every byte under each ServerRoot, the Apache master pid
and the reloads in its error log. Playbook runs take most of the time, so each test makes one run prove many
things. After every test each host is back to its pristine config and each responder back to ``ok``.

The lab: CA alpha's responder is http://127.0.0.1:<port>/ and CA beta's http://localhost:<port>/. Every host serves
www-alpha, www-beta and new-beta (no OCSP URL); web1 also secure-alpha (Must-Staple), web2 revoked-beta and web3
secure-beta (Must-Staple).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import HOST_NAMES, expected_staples
from playbook_runs import (
    ALPHA_OCSP_HOST,
    assert_clients_see,
    assert_reloaded,
    assert_report_consistent,
    assert_untouched,
    fleet_state,
    host_state,
    names_of,
    server_names,
    stapling_names,
    switch_off_alpha_sites_with_the_module,
)
from playbook_runs import operator  # noqa: F401  (a fixture, found by name)  # pylint: disable=unused-import
from server_root import snapshot

INJECTED_COMPLAINT = "AH00526: Syntax error injected by the playbook test"


# ---------------------------------------------------------------- controlling the instance


def write_ctl(directory: Path, host: dict, passing_config_tests: int) -> Path:
    """The host's real ctl, except that every ``-t`` after the first ``passing_config_tests`` ones fails."""
    script = directory / f"apachectl-{host['name']}"
    count_file = directory / f"apachectl-{host['name']}.config-tests"
    script.write_text(
        "#!/bin/sh\n"
        'for arg in "$@"; do\n'
        '    if [ "$arg" = "-t" ]; then\n'
        f'        echo "-t" >> "{count_file}"\n'
        f'        if [ "$(wc -l < "{count_file}")" -gt {passing_config_tests} ]; then\n'
        f'            echo "{INJECTED_COMPLAINT}" >&2\n'
        "            exit 1\n"
        "        fi\n"
        "    fi\n"
        "done\n"
        f'exec {host["ctl"]} "$@"\n'
    )
    script.chmod(0o755)
    return script


def config_tests_run(ctl: Path) -> int:
    count_file = ctl.with_name(ctl.name + ".config-tests")
    return len(count_file.read_text().splitlines()) if count_file.exists() else 0


def task_outcomes(run, task: str) -> dict[str, str]:
    """What the default output says each host did in the task named ``task`` (ok, changed, skipping, ...)."""
    section = run.output.split(f"TASK [{task}]", 1)[1].split("TASK [", 1)[0]
    return {host: outcome for outcome, host in re.findall(r"^(\w+): \[(\w+)\]", section, re.MULTILINE)}


# the staple check's own ocsp_probe run, which the reload's staple check (the handler's check_staples) saves
PROBE_AFTER_RELOAD = "Ask the vhosts the reload could not settle for a staple"


def write_host_vars_inventory(path: Path, host_vars: dict[str, dict]) -> Path:
    """A second inventory source with host variables, as an operator's host_vars would give them."""
    path.write_text(json.dumps({"all": {"hosts": host_vars}}))  # JSON is YAML
    return path


# ---------------------------------------------------------------- disable_stapling.yml


def test_disable_for_one_ca_spares_the_must_staple_host_until_forced_and_a_second_run_changes_nothing(fleet, operator):
    hosts = {name: fleet.host(name) for name in HOST_NAMES}
    before = fleet_state(fleet)

    run = operator.run("disable_stapling", stapling_ocsp_hosts=[ALPHA_OCSP_HOST])

    assert run.returncode != 0, run.output
    rows = assert_report_consistent(run, "disable_stapling")
    assert rows["web1"]["status"] == "failed", rows["web1"]
    assert "secure-alpha.web1.lab.test" in rows["web1"]["message"], rows["web1"]
    assert "Must-Staple" in rows["web1"]["message"], rows["web1"]
    assert run.report["hosts_needing_attention"] == ["web1"]
    assert_untouched(fleet, "web1", before["web1"])
    assert_clients_see(fleet, "web1", expected_staples(hosts["web1"]))
    for name in ("web2", "web3"):
        alpha = server_names(hosts[name], ca="alpha")
        assert rows[name]["status"] == "changed", rows[name]
        assert names_of(rows[name]["vhosts_changed"]) == alpha, rows[name]
        assert set(rows[name]["vhosts_stapling"]) == stapling_names(hosts[name], ca="beta"), rows[name]
        assert_reloaded(fleet, name, before[name])
        assert_clients_see(fleet, name, expected_staples(hosts[name], switched_off=alpha))
    # the reload asked the vhosts itself, and what it saw settled the check: no separate probe ran there
    assert task_outcomes(run, PROBE_AFTER_RELOAD) == {"web2": "skipping", "web3": "skipping"}, run.output
    after_first = fleet_state(fleet)

    forced = operator.run("disable_stapling", stapling_ocsp_hosts=[ALPHA_OCSP_HOST], stapling_force=True)

    assert forced.returncode == 0, forced.output
    rows = assert_report_consistent(forced, "disable_stapling")
    assert {name: row["status"] for name, row in rows.items()} == {
        "web1": "changed", "web2": "unchanged", "web3": "unchanged"}, rows
    assert names_of(rows["web1"]["vhosts_changed"]) == {"www-alpha.web1.lab.test", "secure-alpha.web1.lab.test"}
    assert forced.report["hosts_needing_attention"] == []
    assert_reloaded(fleet, "web1", after_first["web1"])
    assert_clients_see(fleet, "web1", expected_staples(hosts["web1"], switched_off=server_names(hosts["web1"], ca="alpha")))
    for name in ("web2", "web3"):
        assert_untouched(fleet, name, after_first[name])
    settled = fleet_state(fleet)

    again = operator.run("disable_stapling", stapling_ocsp_hosts=[ALPHA_OCSP_HOST], stapling_force=True)

    assert again.returncode == 0, again.output
    assert_report_consistent(again, "disable_stapling")
    assert again.report["counts"] == {"unchanged": len(HOST_NAMES)}, again.report
    assert again.report["vhosts_changed"] == []
    # nothing was reloaded, so nothing was checked at a reload: the vhosts were asked by the probe
    assert task_outcomes(again, PROBE_AFTER_RELOAD) == {name: "ok" for name in HOST_NAMES}, again.output
    for name in HOST_NAMES:
        assert_untouched(fleet, name, settled[name])


def test_a_run_in_which_every_host_fails_still_writes_the_report(fleet, operator):
    before = host_state(fleet, "web1")

    run = operator.run("disable_stapling", stapling_target_hosts="web1")

    assert run.returncode != 0, run.output
    assert_untouched(fleet, "web1", before)
    rows = assert_report_consistent(run, "disable_stapling", hosts=("web1",))
    assert rows["web1"]["status"] == "failed"
    assert "secure-alpha.web1.lab.test" in rows["web1"]["message"]


# ---------------------------------------------------------------- a failing validate never reloads


def test_a_failing_validate_never_reloads_whether_the_module_or_the_handler_runs_it(fleet, operator, tmp_path):
    hosts = {name: fleet.host(name) for name in HOST_NAMES}
    # web2's config test always fails: the module itself must restore every byte. web3 also gets a CA bundle,
    # which the role writes and its validate handler checks: the config test passes the module's own check after
    # writing and fails at that handler, which must then not notify the reload.
    ctl_of = {"web2": write_ctl(tmp_path, hosts["web2"], 0), "web3": write_ctl(tmp_path, hosts["web3"], 1)}
    bundles = [str(fleet.lab.dir / "pki" / ca / "bundle.pem") for ca in ("alpha", "beta")]
    inventory = write_host_vars_inventory(tmp_path / "failing-ctl.yml", {
        "web2": {"stapling_apache_ctl": str(ctl_of["web2"])},
        "web3": {"stapling_apache_ctl": str(ctl_of["web3"]), "stapling_ca_bundle_sources": bundles}})
    www_beta = {name: {f"www-beta.{name}.lab.test"} for name in HOST_NAMES}
    before = fleet_state(fleet)

    run = operator.run("disable_stapling", inventories=(inventory,), stapling_vhosts=["www-beta.*"])

    assert run.returncode != 0, run.output
    rows = assert_report_consistent(run, "disable_stapling")
    assert {name: row["status"] for name, row in rows.items()} == {
        "web1": "changed", "web2": "failed", "web3": "failed"}, rows
    assert run.report["hosts_needing_attention"] == ["web2", "web3"]
    # web1 has the real ctl: the failures elsewhere do not hold it back
    assert names_of(rows["web1"]["vhosts_changed"]) == www_beta["web1"]
    assert_reloaded(fleet, "web1", before["web1"])
    assert_clients_see(fleet, "web1", expected_staples(hosts["web1"], switched_off=www_beta["web1"]))
    # web2: the module's config test failed and it restored everything (the backup copies it leaves behind are
    # test_a_failed_config_test_leaves_no_backup_copy_behind's concern)
    assert INJECTED_COMPLAINT in rows["web2"]["message"], rows["web2"]
    assert config_tests_run(ctl_of["web2"]) == 1
    assert_untouched(fleet, "web2", before["web2"], except_backup_copies=True)
    # web3: the module passed its config test, the handler's validate (for the bundle) failed
    assert config_tests_run(ctl_of["web3"]) == 2
    assert re.search(r'fatal: \[web3\]: FAILED! => \{.*"cmd": \[[^]]*"-t"\]', run.output), run.output
    after = host_state(fleet, "web3")
    assert (after.pid, after.reloads) == (before["web3"].pid, before["web3"].reloads), "web3 was reloaded"
    for name in ("web2", "web3"):
        assert_clients_see(fleet, name, expected_staples(hosts[name]))


def test_a_failed_config_test_leaves_no_backup_copy_behind(fleet, operator, tmp_path):
    failing_ctl = write_ctl(tmp_path, fleet.host("web2"), 0)
    before = host_state(fleet, "web2")

    run = operator.run("disable_stapling", stapling_target_hosts="web2", stapling_vhosts=["www-beta.*"],
                       stapling_apache_ctl=str(failing_ctl))

    assert run.returncode != 0, run.output
    assert INJECTED_COMPLAINT in run.output
    assert_untouched(fleet, "web2", before)


# ---------------------------------------------------------------- enable_stapling.yml


def test_enable_leaves_a_ca_with_a_bad_responder_off_then_switches_it_on_once_healthy(fleet, operator):
    hosts = {name: fleet.host(name) for name in HOST_NAMES}
    switch_off_alpha_sites_with_the_module(fleet, list(HOST_NAMES))
    alpha_url = operator.responder_url("alpha")
    operator.fault("alpha", "wrong-signer")

    left = operator.run("enable_stapling")

    rows = assert_report_consistent(left, "enable_stapling")
    for name, host in hosts.items():
        assert rows[name]["status"] == "left_off", rows[name]
        assert alpha_url in rows[name]["message"], rows[name]
        assert rows[name]["unhealthy_responders"] == [alpha_url], rows[name]
        # only new-beta changes: without an OCSP URL it is no responder's site, and goes off when stapling goes on
        assert names_of(rows[name]["vhosts_changed"]) == server_names(host, kind="no-ocsp-url"), rows[name]
        assert_clients_see(fleet, name, expected_staples(host, switched_off=server_names(host, ca="alpha")))
    assert left.report["hosts_needing_attention"] == list(HOST_NAMES)

    operator.fault("alpha", "ok")
    enabled = operator.run("enable_stapling")

    assert enabled.returncode == 0, enabled.output
    rows = assert_report_consistent(enabled, "enable_stapling")
    for name, host in hosts.items():
        assert rows[name]["status"] == "changed", rows[name]
        assert names_of(rows[name]["vhosts_changed"]) == server_names(host, ca="alpha"), rows[name]
        assert set(rows[name]["vhosts_stapling"]) == stapling_names(host), rows[name]
        assert_clients_see(fleet, name, expected_staples(host))  # revoked-beta staples "revoked"
    settled = fleet_state(fleet)

    again = operator.run("enable_stapling")

    assert again.returncode == 0, again.output
    assert_report_consistent(again, "enable_stapling")
    assert again.report["counts"] == {"unchanged": len(HOST_NAMES)}, again.report
    for name in HOST_NAMES:
        assert_untouched(fleet, name, settled[name])


def test_enable_for_one_ca_switches_it_on_while_another_cas_responder_is_down(fleet, operator):
    host = fleet.host("web2")
    alpha = server_names(host, ca="alpha")
    switch_off_alpha_sites_with_the_module(fleet, ["web2"])
    operator.fault("beta", "down")

    run = operator.run("enable_stapling", stapling_target_hosts="web2", stapling_ocsp_hosts=[ALPHA_OCSP_HOST])

    rows = assert_report_consistent(run, "enable_stapling", hosts=("web2",))
    assert rows["web2"]["status"] != "failed", rows["web2"]
    assert names_of(rows["web2"]["vhosts_changed"]) == alpha | server_names(host, kind="no-ocsp-url"), rows["web2"]
    assert_clients_see(fleet, "web2", {name: "good" for name in alpha})


def test_enable_on_a_pristine_host_reports_the_settings_it_wrote_and_reloaded_as_changed(fleet, operator):
    before = host_state(fleet, "web2")

    run = operator.run("enable_stapling", stapling_target_hosts="web2")

    assert run.returncode == 0, run.output
    assert "conf.d/fleet-stapling.conf" in snapshot(Path(fleet.host("web2")["server_root"]))
    assert_reloaded(fleet, "web2", before)
    rows = assert_report_consistent(run, "enable_stapling", hosts=("web2",))
    assert rows["web2"]["status"] == "changed", rows["web2"]


# ---------------------------------------------------------------- probe_responders.yml


def test_probe_responders_reports_the_hosts_by_responders_matrix_and_changes_nothing(fleet, operator):
    alpha_url, beta_url = operator.responder_url("alpha"), operator.responder_url("beta")
    operator.fault("beta", "down")
    before = fleet_state(fleet)

    run = operator.run("probe_responders")

    assert run.returncode == 0, run.output
    rows = assert_report_consistent(run, "probe_responders")
    for name in HOST_NAMES:
        row = rows[name]
        assert row["status"] == "unhealthy", row
        assert row["unhealthy_responders"] == [beta_url], row
        responders = {responder["url"]: responder for responder in row["responders"]}
        assert set(responders) == {alpha_url, beta_url}, row
        assert (responders[alpha_url]["healthy"], responders[alpha_url]["error_class"]) == (True, None)
        assert (responders[beta_url]["healthy"], responders[beta_url]["error_class"]) == (False, "connect_refused")
        ipv4 = {family["family"]: family for family in responders[beta_url]["families"]}["4"]
        assert (ipv4["healthy"], ipv4["error_class"]) == (False, "connect_refused"), responders[beta_url]
        assert_untouched(fleet, name, before[name])
    matrix = run.markdown.split("## Hosts x responders\n", 1)[1]
    assert f"| Host | {alpha_url} | {beta_url} |" in matrix, run.markdown
    for name in HOST_NAMES:
        (line,) = [line for line in matrix.splitlines() if line.startswith(f"| {name} |")]
        alpha_cell, beta_cell = [cell.strip() for cell in line.strip("|").split("|")[1:]]
        assert alpha_cell.startswith("ok v4:ok"), line
        assert beta_cell.startswith("connect_refused v4:connect_refused"), line


# ---------------------------------------------------------------- audit_stapling.yml


def test_audit_reports_drift_in_check_mode_and_passes_once_the_role_ran(fleet, operator):
    before = fleet_state(fleet)

    drift = operator.run("audit_stapling")

    assert drift.returncode != 0, drift.output
    rows = assert_report_consistent(drift, "audit_stapling")
    for name in HOST_NAMES:
        assert rows[name]["status"] == "drift", rows[name]
        # the tunables the role asks for are not set yet: the module would write them, and says where
        assert rows[name]["files"] and ", ".join(rows[name]["files"]) in rows[name]["message"], rows[name]
        assert_untouched(fleet, name, before[name])  # check mode: no byte, no reload
    assert "Stapling drift on: web1, web2, web3" in drift.output

    applied = operator.run("enable_stapling")
    assert applied.returncode == 0, applied.output
    settled = fleet_state(fleet)

    audit = operator.run("audit_stapling")

    assert audit.returncode == 0, audit.output
    rows = assert_report_consistent(audit, "audit_stapling")
    for name, host in ((name, fleet.host(name)) for name in HOST_NAMES):
        assert rows[name]["status"] == "in_line", rows[name]
        assert (rows[name]["message"], rows[name]["files"], rows[name]["vhosts_changed"]) == ("as desired", [], [])
        assert names_of(rows[name]["vhosts_stapling"]) == stapling_names(host), rows[name]  # not new-beta
        assert_untouched(fleet, name, settled[name])
    assert audit.report["hosts_needing_attention"] == []


# ---------------------------------------------------------------- auto_stapling.yml


def test_auto_stops_stapling_for_a_dead_responder_except_must_staple_and_staples_again_when_it_is_back(fleet, operator):
    hosts = {name: fleet.host(name) for name in HOST_NAMES}
    beta_netloc = operator.responder_netloc("beta")
    operator.fault("beta", "down")
    before = fleet_state(fleet)

    down = operator.run("auto_stapling")

    assert down.returncode != 0, down.output
    rows = assert_report_consistent(down, "auto_stapling")
    for name in ("web1", "web2"):
        beta = stapling_names(hosts[name], ca="beta")
        assert rows[name]["status"] == "changed", rows[name]
        assert names_of(rows[name]["vhosts_changed"]) == beta | server_names(hosts[name], kind="no-ocsp-url"), rows[name]
        assert rows[name]["unhealthy_responders"] == [beta_netloc], rows[name]
        assert_reloaded(fleet, name, before[name])
        assert_clients_see(fleet, name, expected_staples(hosts[name], switched_off=beta))
    assert rows["web3"]["status"] == "failed", rows["web3"]
    assert "secure-beta.web3.lab.test" in rows["web3"]["message"], rows["web3"]
    assert "Must-Staple" in rows["web3"]["message"], rows["web3"]
    assert down.report["hosts_needing_attention"] == ["web3"]
    assert_untouched(fleet, "web3", before["web3"])

    operator.fault("beta", "ok")
    back = operator.run("auto_stapling")

    assert back.returncode == 0, back.output
    rows = assert_report_consistent(back, "auto_stapling")
    # web3's refused run had put its settings file back; this first good run writes it, and its alpha pass
    # switches off new-beta (no OCSP URL), as the refused run's did before it was undone
    assert {name: row["status"] for name, row in rows.items()} == {
        "web1": "changed", "web2": "changed", "web3": "changed"}, rows
    assert names_of(rows["web3"]["vhosts_changed"]) == server_names(hosts["web3"], kind="no-ocsp-url"), rows["web3"]
    for name, host in hosts.items():
        assert rows[name]["unhealthy_responders"] == [], rows[name]
        assert_clients_see(fleet, name, expected_staples(host))
    settled = fleet_state(fleet)

    again = operator.run("auto_stapling")

    assert again.returncode == 0, again.output
    assert_report_consistent(again, "auto_stapling")
    assert again.report["counts"] == {"unchanged": len(HOST_NAMES)}, again.report
    for name in HOST_NAMES:
        assert_untouched(fleet, name, settled[name])
