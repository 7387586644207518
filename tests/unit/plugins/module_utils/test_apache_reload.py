"""apache_reload: what counts as a reload survived, and what happens when it was not (fake processes and clock)."""

from __future__ import annotations

import pytest

from ansible_collections.fleet.stapling.plugins.module_utils import apache_reload
from ansible_collections.fleet.stapling.plugins.module_utils.apache_reload import Reload, ReloadError

TARGET = {"address": "127.0.0.1", "port": 8443, "server_name": "shop.test"}


class FakeHost(object):
    """A master with children, a pid file, a clock; ``on_reload`` says what the reload command does to them."""

    def __init__(self, on_reload="graceful", answering=True):
        self.pids = {100: None, 101: 100}  # pid -> parent: master 100 with one child
        self.pid_file = 100
        self.on_reload = on_reload
        self.answering = answering
        self.commands = []
        self.undone = []
        self.now = 0.0
        self.next_pid = 200

    # ProcessTable
    def alive(self, pid):
        return pid in self.pids

    def children(self, pid):
        return {child for child, parent in self.pids.items() if parent == pid}

    # the reload and start commands
    def run(self, command):
        self.commands.append(command)
        action = self.on_reload if command[-1] in ("graceful", "restart") else "start"
        if action == "graceful":
            self.pids = {100: None, self._pid(): 100}
        elif action == "restart":
            master = self._pid()
            self.pids = {master: None, self._pid(): master}
            self.pid_file = master
        elif action == "dies":
            self.pids = {}
        elif action == "start":
            master = self._pid()
            self.pids = {master: None, self._pid(): master}
            self.pid_file = master
            self.answering = True
        return 0, "", ""

    def _pid(self):
        self.next_pid += 1
        return self.next_pid

    def handshake(self, addresses, port, server_name, timeout):
        return {"handshake": "ok" if self.answering and self.pids else "failed"}

    def sleep(self, seconds):
        self.now += seconds

    def reload(self, records=None, **options):
        return Reload(options.pop("command", "apachectl graceful"), options.pop("start_command", "apachectl start"),
                      options.pop("master_pid", 100), records if records is not None else [{"check_targets": [TARGET]}],
                      self.run, lambda: self.pid_file if self.pid_file in self.pids else None,
                      self.undone.append, processes=self, handshake=self.handshake, clock=lambda: self.now,
                      sleep=self.sleep, **options)


def test_a_graceful_reload_is_survived_when_new_children_run_and_the_vhosts_answer(tmp_path):
    config = tmp_path / "site.conf"
    backup = tmp_path / "site.conf.1.2026-12-03@10:00:00~"
    backup.write_text("old")
    host = FakeHost()

    result = host.reload([{"check_targets": [TARGET], "backups": {str(config): str(backup)}}])()

    assert result["reloaded"] and result["reloads"] == 1 and result["master_pid"] == 100
    assert result["removed_files"] == [str(backup)] and not backup.exists()
    assert host.undone == [] and host.now < 1  # no fixed wait: the new child was there at once


def test_backups_are_kept_when_asked(tmp_path):
    backup = tmp_path / "site.conf.1.2026-12-03@10:00:00~"
    backup.write_text("old")
    result = FakeHost().reload([{"backups": {str(tmp_path / "site.conf"): str(backup)}}], keep_backups=True)()
    assert result["removed_files"] == [] and backup.exists()


def test_a_record_naming_no_backup_copy_fails_clearly_after_a_survived_reload(tmp_path):
    host = FakeHost()
    with pytest.raises(ReloadError, match="survived the reload .* could not be removed"):
        host.reload([{"backups": {str(tmp_path / "site.conf"): str(tmp_path / "elsewhere")}}])()
    assert host.undone == []  # the server runs the new configuration: nothing to take back


def test_a_full_restart_is_followed_to_the_master_the_pid_file_names():
    host = FakeHost(on_reload="restart")
    result = host.reload(command="restartsrv_httpd restart")()
    assert result["master_pid"] == host.pid_file != 100


def test_a_reload_that_kills_the_master_is_undone_and_apache_started_again():
    host = FakeHost(on_reload="dies")
    records = [{"check_targets": [TARGET], "created_files": ["/x"]}]

    with pytest.raises(ReloadError) as raised:
        host.reload(records)()

    message = str(raised.value)
    assert "did not survive the reload" in message and "master gone" in message
    assert "previous configuration was restored" in message and "it answers TLS again" in message
    assert host.undone == [records]
    assert host.commands[-1] == ["apachectl", "start"]
    assert host.now <= apache_reload.NO_MASTER_GRACE + 1  # a dead master is not waited for past the grace


def test_a_master_that_lives_but_stops_answering_tls_is_undone_and_reloaded():
    host = FakeHost(answering=False)
    with pytest.raises(ReloadError) as raised:
        host.reload(attempts=3)()
    assert "master present, TLS not answering" in str(raised.value)
    assert host.undone and host.commands[-1] == ["apachectl", "graceful"]


def test_mod_md_newly_loaded_gets_a_second_graceful_reload():
    host = FakeHost()
    result = host.reload([{"check_targets": [TARGET], "reload_twice": True}])()
    assert result["reloads"] == 2 and len(host.commands) == 2


def test_a_failing_reload_command_on_a_surviving_server_is_reported_not_undone():
    host = FakeHost()
    host.run = lambda command: (host.commands.append(command), (1, "", "AH00526: Syntax error"))[1]
    with pytest.raises(ReloadError) as raised:
        host.reload()()
    assert "rc=1" in str(raised.value) and "AH00526" in str(raised.value) and host.undone == []


def test_no_reload_command_is_a_clear_error():
    with pytest.raises(ReloadError, match="no reload command"):
        FakeHost().reload(command="")()


def test_pid_files_and_check_targets_are_read_defensively(tmp_path):
    pid_file = tmp_path / "httpd.pid"
    assert apache_reload.pid_in(str(pid_file)) is None
    pid_file.write_text("4242\n")
    assert apache_reload.pid_in(str(pid_file)) == 4242
    pid_file.write_text("garbage")
    assert apache_reload.pid_in(str(pid_file)) is None
    many = [{"check_targets": [dict(TARGET, port=port) for port in range(8)]}, {"check_targets": [TARGET]}]
    assert len(apache_reload._targets(many)) == 5  # pylint: disable=protected-access


def test_the_process_table_reads_this_process_and_its_parent():
    import os  # pylint: disable=import-outside-toplevel

    table = apache_reload.ProcessTable()
    assert table.alive(os.getpid())
    assert os.getpid() in table.children(os.getppid())
    assert not table.alive(0)
