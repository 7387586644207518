"""The role after a reload: a server that does not survive it is put back and started again, loudly.

httpd checks some settings only after "Syntax OK", when it starts the new configuration: a dbm stapling cache in a
directory that does not exist passes `apachectl -t` and then kills Apache at the reload (AH01872). The role must
notice (no master, no TLS), restore every file it changed, start Apache with the previous configuration and fail.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from playbook_runs import run_playbook
from server_root import snapshot

PLAYBOOK = Path(__file__).resolve().parent / "playbooks" / "stapling_role.yml"


def config_files(server_root: Path) -> dict[str, tuple]:
    """The ServerRoot's entries, leaving out the backup copies the role keeps after a failure."""
    return {path: entry for path, entry in snapshot(server_root).items() if not path.endswith("~")}


@pytest.mark.parametrize("host_name", ["web2"])
def test_reload_that_kills_apache_is_undone_and_fails_loudly(fleet, host):
    server_root = Path(host["server_root"])
    # a host that has mod_socache_dbm, so that a dbm stapling cache passes every check made before the reload
    (server_root / "conf.modules.d" / "01-socache-dbm.conf").write_text(
        "LoadModule socache_dbm_module modules/mod_socache_dbm.so\n")
    fleet.reload(host["name"])
    before = config_files(server_root)
    old_master = int(Path(host["pid_file"]).read_text())

    completed = run_playbook(fleet, str(PLAYBOOK), [host["name"]], {
        "stapling_state": "enabled",
        "stapling_cache": "dbm:/nonexistent/fleet-stapling/ssl_stapling",
        "stapling_apache_start_command": host["ctl"] + " -k start",
    })
    output = completed.stdout + completed.stderr

    assert completed.returncode != 0, output
    assert "Apache did not survive the reload" in output and "previous configuration was restored" in output
    assert "AH01872" in Path(host["error_log"]).read_text()  # it really died of the new configuration
    assert config_files(server_root) == before, "a config file differs from before the run"
    assert int(Path(host["pid_file"]).read_text()) != old_master  # started again
    www_alpha = f"www-alpha.{host['name']}.lab.test"
    assert fleet.staples_until(host["name"], {www_alpha: "good"})[www_alpha].cert_status == "good"


@pytest.mark.parametrize("host_name", ["web3"])
def test_cpanel_host_reloads_through_cpanels_own_restart_script_when_it_is_there(fleet, host, tmp_path):
    # stands in for /scripts/restartsrv_httpd: notes the call, then reloads this lab host
    calls = tmp_path / "calls"
    (tmp_path / "scripts").mkdir()
    script = tmp_path / "scripts" / "restartsrv_httpd"
    script.write_text("#!/bin/sh\necho restart >> %s\nexec %s\n" % (shlex.quote(str(calls)), host["reload"]))
    script.chmod(0o755)

    completed = run_playbook(fleet, str(PLAYBOOK), [host["name"]], {
        "stapling_state": "disabled",
        "stapling_force": True,
        "stapling_apache_reload_command": "",  # no reload command given: the layout decides
        "stapling_apache_cpanel_root": str(tmp_path),
    })

    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-2000:]
    assert calls.read_text().splitlines() == ["restart"]
    seen = fleet.staples_until(host["name"], {v["server_name"]: None for v in host["vhosts"]})
    assert not any(check.stapled for check in seen.values())


@pytest.mark.parametrize("host_name", ["web2"])
def test_a_switch_to_mod_md_that_kills_apache_is_undone_with_the_store_it_made(fleet, host):
    """mod_md newly loaded, its store made, then the reload dies: every file, link and directory goes back,
    including the store mod_md may have started to fill, and the old server staples again."""
    server_root = Path(host["server_root"])
    (server_root / "conf.modules.d" / "01-socache-dbm.conf").write_text(
        "LoadModule socache_dbm_module modules/mod_socache_dbm.so\n")
    fleet.reload(host["name"])
    before = config_files(server_root)
    assert not (server_root / "md").exists()

    completed = run_playbook(fleet, str(PLAYBOOK), [host["name"]], {
        "stapling_state": "enabled",
        "stapling_engine": "mod_md",
        "stapling_cache": "dbm:/nonexistent/fleet-stapling/ssl_stapling",
        "stapling_apache_start_command": host["ctl"] + " -k start",
    })
    output = completed.stdout + completed.stderr

    assert completed.returncode != 0, output
    assert "Apache did not survive the reload" in output and "previous configuration was restored" in output
    assert "AH01872" in Path(host["error_log"]).read_text()
    assert config_files(server_root) == before, "a file, link or directory differs from before the run"
    www_alpha = f"www-alpha.{host['name']}.lab.test"
    assert fleet.staples_until(host["name"], {www_alpha: "good"})[www_alpha].cert_status == "good"
