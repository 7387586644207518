"""The role after a reload: a server that does not survive it is put back and started again, loudly.

httpd notices some broken setups only after "Syntax OK", at the reload itself, and dies. The reload here is a
wrapper that stops the master the way such a failure does; the role must notice (no master, no TLS), restore
every file it changed, start Apache with the previous configuration and fail the host.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from playbook_runs import run_playbook
from server_root import snapshot

PLAYBOOK = Path(__file__).resolve().parent / "playbooks" / "stapling_role.yml"


def config_files(server_root: Path) -> dict[str, tuple]:
    """The ServerRoot's entries, leaving out the backup copies the role may keep after a failure."""
    return {path: entry for path, entry in snapshot(server_root).items() if not path.endswith("~")}


def write_killing_reload(directory: Path, pid_file: str) -> Path:
    script = directory / "reload-that-kills.sh"
    script.write_text("#!/bin/sh\n# stands in for a reload that httpd does not survive\nkill -TERM \"$(cat %s)\"\n"
                      % shlex.quote(pid_file))
    script.chmod(0o755)
    return script


@pytest.mark.parametrize("host_name", ["web2"])
def test_reload_that_kills_apache_is_undone_and_fails_loudly(fleet, host, tmp_path):
    server_root = Path(host["server_root"])
    before = config_files(server_root)
    old_master = int(Path(host["pid_file"]).read_text())
    reload_script = write_killing_reload(tmp_path, host["pid_file"])
    extra_vars = {
        "stapling_state": "disabled",
        "stapling_apache_reload_command": str(reload_script),
        "stapling_apache_start_command": host["ctl"] + " -k start",
    }
    completed = run_playbook(fleet, str(PLAYBOOK), [host["name"]], extra_vars)
    output = completed.stdout + completed.stderr

    assert completed.returncode != 0, output
    assert "Apache did not survive the reload" in output and "previous configuration was restored" in output
    assert config_files(server_root) == before, "a config file differs from before the run"
    new_master = int(Path(host["pid_file"]).read_text())
    assert new_master != old_master  # started again
    # the previous configuration staples, as before the run
    seen = fleet.staples_until(host["name"], {f"www-alpha.{host['name']}.lab.test": "good"})
    assert seen[f"www-alpha.{host['name']}.lab.test"].cert_status == "good"
