"""mod_md as the stapling engine, on every layout: switched to and back, and stapling through a responder outage.

mod_ssl fetches OCSP responses inside handshakes and loses them at a graceful reload; mod_md fetches in the
background and keeps them in its store. Switched to mod_md by the role, every lab host must keep stapling a
good response while a responder hangs, across graceful reloads and restarts. mod_md newly loaded starts its
fetcher only at the second reload, and OCSP Must-Staple vhosts are not moved while the store holds nothing for
them.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

from conftest import HOST_NAMES, RELOADED, expected_staples, run_adhoc
from playbook_runs import (
    assert_clients_see,
    assert_untouched,
    fleet_state,
    host_state,
    master_pid,
    promised_by_check_mode,
    run_playbook,
    written_since,
)
from playbook_runs import operator  # noqa: F401  (a fixture, found by name)  # pylint: disable=unused-import
from server_root import snapshot

PLAYBOOK = Path(__file__).resolve().parent / "playbooks" / "stapling_role.yml"
GRACEFUL = "SIGUSR1 received"  # what httpd logs for each graceful reload


def stored_responses(host: dict) -> list[Path]:
    return sorted((Path(host["server_root"]) / "md" / "ocsp" / "other").glob("ocsp-*.json"))


def graceful_reloads(host: dict) -> int:
    return Path(host["error_log"]).read_text(errors="replace").count(GRACEFUL)


def test_must_staple_vhosts_move_with_a_response_put_in_the_store_first_or_not_at_all(fleet):
    host = fleet.host("web1")  # serves an alpha Must-Staple certificate
    before = snapshot(Path(host["server_root"]))
    instance = {"ctl": host["ctl"], "config_file": host["config_file"], "state": "enabled", "engine": "mod_md"}

    succeeded, planned = run_adhoc(fleet.env, [fleet.lab.inventory], "web1", "fleet.stapling.apache_stapling",
                                   instance, check=True)

    assert succeeded, planned
    assert [entry["vhost"].split()[0] for entry in planned["store_seeded"]] == ["secure-alpha.web1.lab.test"]
    assert planned["store_seeded"][0]["file"].startswith(str(Path(host["server_root"]) / "md" / "ocsp" / "other"))
    assert snapshot(Path(host["server_root"])) == before  # check mode: fetched and checked, nothing written

    fleet.lab.cli("fault", "alpha", "down")
    try:
        completed = run_playbook(fleet, str(PLAYBOOK), ["web1"], {"stapling_engine": "mod_md"})
    finally:
        fleet.lab.cli("fault", "alpha", "ok")

    assert completed.returncode != 0, completed.stdout
    assert "Must-Staple" in completed.stdout and "none could be fetched" in completed.stdout, completed.stdout
    assert "secure-alpha.web1.lab.test" in completed.stdout, completed.stdout
    assert snapshot(Path(host["server_root"])) == before


def test_switched_to_mod_md_every_host_staples_through_a_hanging_responder(fleet, tmp_path):
    hosts = {name: fleet.host(name) for name in HOST_NAMES}
    before = {name: (graceful_reloads(host), master_pid(host)) for name, host in hosts.items()}

    # the store is empty: a good response for each Must-Staple vhost is fetched and put there first
    to_md = {"stapling_engine": "mod_md"}
    switched = run_playbook(fleet, str(PLAYBOOK), list(HOST_NAMES), to_md)

    assert switched.returncode == 0, switched.stdout[-4000:]
    for name, host in hosts.items():
        # mod_md newly loaded starts its fetcher at the second reload; the master (and its connections) stays
        assert graceful_reloads(host) == before[name][0] + 2, f"{name}: mod_md newly loaded needs two reloads"
        assert master_pid(host) == before[name][1]
        assert_clients_see(fleet, name, expected_staples(host))
        assert stored_responses(host), f"{name}: mod_md stored nothing"
    settled = {name: host_state(fleet, name) for name in HOST_NAMES}

    again = run_playbook(fleet, str(PLAYBOOK), list(HOST_NAMES), to_md)

    assert again.returncode == 0, again.stdout[-4000:]
    for name in HOST_NAMES:
        assert host_state(fleet, name) == settled[name], f"{name}: the second run changed something"

    # the incident playbook on a mod_md host whose store is fresh: nothing to do, and it says why
    only_web2 = {"stapling_target_hosts": "web2"}  # localhost runs the summary
    kept = run_playbook(fleet, "disable_stapling", ["web2", "localhost"], only_web2)

    assert kept.returncode == 0, kept.stdout[-4000:]
    assert "web2: unchanged - 0 vhost(s) switched, 0 file(s) written, not reloaded; 3 vhost(s) stapled from the " \
        "store, good until" in kept.stdout, kept.stdout[-4000:]
    assert host_state(fleet, "web2") == settled["web2"]  # nothing written, nothing reloaded

    # the responder and the store, side by side
    reports = tmp_path / "reports"
    probe = run_playbook(fleet, "probe_responders", ["web2", "localhost"],
                         dict(only_web2, stapling_report_dir=str(reports)))

    assert probe.returncode == 0, probe.stdout[-4000:]
    row = json.loads((reports / "probe_responders.json").read_text())["hosts"][0]
    assert "; mod_md store: 3 response(s), the first expiring at " in row["message"], row
    assert sorted((entry["vhost"], entry["status"], entry["at_risk"]) for entry in row["md_store"]) == [
        ("revoked-beta.web2.lab.test", "revoked", False), ("www-alpha.web2.lab.test", "good", False),
        ("www-beta.web2.lab.test", "good", False)], row

    fleet.lab.cli("fault", "all", "hang")
    try:
        for name, host in hosts.items():
            fleet.reload(name)  # mod_ssl would have lost its cached responses here
            assert_clients_see(fleet, name, expected_staples(host))
            restart = shlex.split(host["reload"].replace("-k graceful", "-k restart"))
            reloads = Path(host["error_log"]).read_text(errors="replace").count(RELOADED)
            subprocess.run(restart, check=True, timeout=60)
            fleet.wait_for_reloads(name, reloads + 1)
            assert_clients_see(fleet, name, expected_staples(host))
    finally:
        fleet.lab.cli("fault", "all", "ok")

    asked = run_playbook(fleet, "disable_stapling", ["web2", "localhost"],
                         dict(only_web2, stapling_keep_stored_staples=False))

    assert asked.returncode == 0, asked.stdout[-4000:]
    assert_clients_see(fleet, "web2", {vhost["server_name"]: None for vhost in hosts["web2"]["vhosts"]})


def test_enable_stapling_moves_whole_hosts_to_mod_md_in_batches_while_a_responder_hangs(fleet, tmp_path):
    """mod_md staples from the background: a responder down now is no reason to keep a host on mod_ssl. The
    playbook moves every vhost, one host per batch, each with its two reloads, expects staples only from the
    healthy responders, and says who is waiting. Switching back to mod_ssl takes one reload."""
    names = ["web1", "web2"]
    for name in names:
        fleet.reset(name)
    hosts = {name: fleet.host(name) for name in names}
    beta_sites = {name: {v["server_name"] for v in host["vhosts"] if v["ca"] == "beta"} for name, host in hosts.items()}
    before = {name: (graceful_reloads(host), master_pid(host)) for name, host in hosts.items()}
    reports = tmp_path / "reports"
    assert all(beta_sites.values()) and not any((Path(h["server_root"]) / "md").exists() for h in hosts.values())

    fleet.lab.cli("fault", "beta", "hang")
    try:
        enabled = run_playbook(fleet, "enable_stapling", names + ["localhost"], {
            "stapling_target_hosts": ",".join(names), "stapling_engine": "mod_md", "stapling_serial": 1,
            "stapling_probe_timeout": 2, "stapling_report_dir": str(reports)})

        assert enabled.returncode == 0, enabled.stdout[-4000:]
        assert enabled.stdout.count("PLAY [Switch OCSP stapling on") == 2, "not one batch per host"
        rows = {row["host"]: row for row in json.loads((reports / "enable_stapling.json").read_text())["hosts"]}
        for name, host in hosts.items():
            row = rows[name]
            assert row["status"] == "changed", row
            assert "; mod_md staples the rest once their responder answers: " in row["message"], row
            assert row["unhealthy_responders"] and all("//localhost:" in url for url in row["unhealthy_responders"])
            # mod_md newly loaded: two graceful reloads in the host's own batch, the master kept
            assert graceful_reloads(host) == before[name][0] + 2 and master_pid(host) == before[name][1], name
            # the alpha sites staple at once (web1's Must-Staple one from the store seeded before the switch)
            assert_clients_see(fleet, name, expected_staples(host, switched_off=beta_sites[name]))
            succeeded, info = run_adhoc(fleet.env, [fleet.lab.inventory], name, "fleet.stapling.apache_stapling_info",
                                        {"ctl": host["ctl"], "config_file": host["config_file"]})
            assert succeeded, info
            assert {v["stapling_engine"] for v in info["vhosts"] if v["certificate_file"]} == {"mod_md"}, name
            # the store was made by the module, open to the children, so it survives restarts
            store = (Path(host["server_root"]) / "md").stat()
            assert (store.st_uid, oct(store.st_mode & 0o777)) == (0, "0o755"), name

        # and back to mod_ssl once the responder answers: mod_md stays loaded, so one graceful reload
        fleet.lab.cli("fault", "all", "ok")
        back = run_playbook(fleet, "enable_stapling", ["web1", "localhost"], {
            "stapling_target_hosts": "web1", "stapling_engine": "mod_ssl"})

        assert back.returncode == 0, back.stdout[-4000:]
        web1 = hosts["web1"]
        assert graceful_reloads(web1) == before["web1"][0] + 3 and master_pid(web1) == before["web1"][1]
        assert_clients_see(fleet, "web1", expected_staples(web1))
        succeeded, info = run_adhoc(fleet.env, [fleet.lab.inventory], "web1", "fleet.stapling.apache_stapling_info",
                                    {"ctl": web1["ctl"], "config_file": web1["config_file"]})
        assert succeeded, info
        # mod_ssl staples every vhost with a responder again; new-beta, without an OCSP URL, is kept off
        engines = {v["server_name"]: v["stapling_engine"] for v in info["vhosts"] if v["certificate_file"]}
        assert {name for name, engine in engines.items() if engine != "mod_ssl"} == {
            v["server_name"] for v in web1["vhosts"] if v["kind"] == "no-ocsp-url"}, engines
        assert set(engines.values()) == {"mod_ssl", "none"}, engines
    finally:
        fleet.lab.cli("fault", "all", "ok")
        for name in names:
            fleet.reset(name)


def test_check_mode_promises_the_switch_to_mod_md_file_by_file(fleet, operator):
    """The diff of --check --diff is what the real switch writes: config files, the links that load mod_md, the
    store directory, and the response seeded for the Must-Staple vhost (fetched again by the real run, so only
    its place is compared). What mod_md then writes into its store itself is no part of the promise."""
    for name in HOST_NAMES:
        fleet.reset(name)
    before = fleet_state(fleet)

    check = operator.run("enable_stapling", check=True, stapling_engine="mod_md")

    assert check.returncode == 0, check.output
    for name in HOST_NAMES:
        assert_untouched(fleet, name, before[name])

    real = operator.run("enable_stapling", stapling_engine="mod_md")

    assert real.returncode == 0, real.output
    promised, written = promised_by_check_mode(fleet, check), written_since(fleet, before)
    for name in HOST_NAMES:
        in_store = sorted(path for path in promised[name] if path == "md" or path.startswith("md/"))
        assert promised[name].get("md") == ("dir",), (name, in_store)
        seeds = [path for path in in_store if path.startswith("md/ocsp/other/ocsp-")]
        must_staple = [v for v in fleet.host(name)["vhosts"] if v["kind"] == "must-staple"]
        assert len(seeds) == len(must_staple), (name, in_store)
        assert all(Path(fleet.host(name)["server_root"], path).exists() for path in in_store), (name, in_store)
        assert {path: entry for path, entry in promised[name].items() if path not in in_store} == \
            {path: entry for path, entry in written[name].items() if not path.startswith("md/")}, name
