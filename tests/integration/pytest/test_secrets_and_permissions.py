"""What the modules may not do on a host: read a private key, loosen a file's owner or mode, or leave a backup that
more people can read than the file it copies.

Every open() the module processes make on the lab host is recorded by a Python audit hook (``sitecustomize`` on the
PYTHONPATH the play gives the modules, the way an operator's ``environment:`` would), while every module of the
collection runs: info, a check-mode change, a real change with backups, and the probe with its staple check.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import record_reliability

HOST = "web1"
SITE = "sites-available/www-beta.web1.lab.test.conf"
AUDIT_HOOK = '''"""Records every file a module process opens (fleet.stapling's secrets test)."""
import os
import sys

_LOG = os.environ.get("FLEET_STAPLING_OPEN_LOG")
if _LOG:
    _fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _record(event, arguments):
        if event == "open" and arguments and isinstance(arguments[0], (str, bytes)):
            path = os.fsdecode(arguments[0])
            os.write(_fd, (os.path.realpath(path) + "\\n").encode("utf-8", "surrogateescape"))

    sys.addaudithook(_record)
'''
PLAY = """
- name: Every module of the collection, with its opens recorded
  hosts: {host}
  gather_facts: false
  environment:
    PYTHONPATH: "{pythonpath}"
    FLEET_STAPLING_OPEN_LOG: "{log}"
  module_defaults:
    group/fleet.stapling.apache_instance:
      ctl: "{{{{ stapling_apache_ctl }}}}"
      config_file: "{{{{ stapling_apache_config_file }}}}"
      server_root: "{{{{ stapling_apache_server_root }}}}"
  tasks:
    - name: Read
      fleet.stapling.apache_stapling_info:
      register: info
    - name: Plan in check mode
      fleet.stapling.apache_stapling:
        state: disabled
        vhosts: ["www-beta.*"]
      check_mode: true
      register: planned
    - name: Change, keeping backups
      fleet.stapling.apache_stapling:
        state: disabled
        vhosts: ["www-beta.*"]
        backup: true
      register: changed
    - name: Probe the responders and what each vhost staples
      fleet.stapling.ocsp_probe:
        discover: true
        stapled: true
        ctl: "{{{{ stapling_apache_ctl }}}}"
        config_file: "{{{{ stapling_apache_config_file }}}}"
        server_root: "{{{{ stapling_apache_server_root }}}}"
      register: probed
    - name: Save the results
      delegate_to: localhost
      ansible.builtin.copy:
        content: "{{{{ {{'info': info, 'planned': planned, 'changed': changed, 'probed': probed}} | to_json }}}}"
        dest: "{results}"
        mode: "0600"
"""


def key_files(server_root: Path) -> set[str]:
    found = set()
    for path in server_root.rglob("*.conf"):
        if path.is_file():
            found.update(os.path.realpath(key) for key in
                         re.findall(r'SSLCertificateKeyFile\s+"?([^"\s]+)', path.read_text(errors="replace")))
    return found


def test_no_module_reads_a_private_key_and_writes_keep_owner_mode_and_backup_privacy(fleet, tmp_path):
    host = fleet.host(HOST)
    root = Path(host["server_root"])
    site = root / SITE
    os.chown(site, 0, 65534)  # root:nogroup, 0640: a file only root and one group may read
    site.chmod(0o640)
    keys = key_files(root)
    assert keys, "the lab host names no key file: nothing to check"
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(AUDIT_HOOK)
    hidden = Path(fleet.lab.state["ssh"]["config"]).parent / "minimal-host-python"
    pythonpath = ":".join([str(hooks)] + ([str(hidden)] if hidden.is_dir() else []))
    opened_log, results = tmp_path / "opened.log", tmp_path / "results.json"
    playbook = tmp_path / "every_module.yml"
    playbook.write_text(PLAY.format(host=HOST, pythonpath=pythonpath, log=opened_log, results=results))

    completed = subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(fleet.lab.inventory),
                                str(playbook)], env=fleet.env, capture_output=True, text=True, timeout=300, check=False)

    try:
        assert completed.returncode == 0, completed.stdout + completed.stderr
        opened = set(opened_log.read_text().splitlines())
        assert str(site.resolve()) in opened, "the audit hook recorded nothing useful"
        assert opened & keys == set(), f"private keys opened: {sorted(opened & keys)}"
        returned = results.read_text()
        assert "PRIVATE KEY" not in returned
        changed = json.loads(returned)["changed"]
        assert changed["changed"], changed
        stat = site.stat()
        assert (stat.st_uid, stat.st_gid, stat.st_mode & 0o7777) == (0, 65534, 0o640)
        assert "SSLUseStapling off" in site.read_text() or "SSLUseStapling Off" in site.read_text()
        backups = changed["backups"]
        assert str(site.resolve()) in backups, backups
        for original, copy in backups.items():
            before, kept = os.stat(original), os.stat(copy)
            assert kept.st_mode & 0o7777 & ~(before.st_mode & 0o7777) == 0, f"{copy} is more readable than {original}"
            assert (kept.st_uid, kept.st_gid) == (before.st_uid, before.st_gid), copy
    finally:
        fleet.reset(HOST)
    record_reliability("## Secrets and permissions", "\n".join([
        "## Secrets and permissions", "",
        "`tests/integration/pytest/test_secrets_and_permissions.py`: apache_stapling_info, apache_stapling (check mode,",
        "then a real change with backups) and ocsp_probe (responders and staples) on a lab host over SSH, with every",
        f"open() of the module processes recorded by a Python audit hook: {len(opened)} distinct files opened, "
        f"0 of the host's {len(keys)} private keys; no private key material in any result. A changed file kept its",
        "owner, group and mode (root:nogroup 0640), and its backup copy is no more readable than the file.", ""]))
