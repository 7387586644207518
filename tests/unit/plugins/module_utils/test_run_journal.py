# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.fleet.stapling.plugins.module_utils import apache_write, run_journal, stapling_change

ORIGINAL = b"SSLUseStapling on\r\n# caf\xe9\n"


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs, no rollback, no cleanup."""


class FakeHost(object):
    cpanel_root = "/nonexistent/cpanel"

    def __init__(self, configtest=(True, "Syntax OK")):
        self.result = configtest
        self.tests = 0

    def configtest(self, _run):
        self.tests += 1
        return self.result

    def forget_parsed(self):
        pass


def killed_pass(tmp_path, journal, backup=None):
    """A pass killed during ctl -t: ssl.conf changed, a settings file and its link made, nothing undone."""
    ssl_conf = tmp_path / "conf" / "ssl.conf"
    ssl_conf.parent.mkdir(exist_ok=True)
    ssl_conf.write_bytes(ORIGINAL)
    settings = tmp_path / "conf" / "available" / "fleet-stapling.conf"
    link = tmp_path / "conf" / "enabled" / "fleet-stapling.conf"

    def killed_during_configtest():
        raise Killed()

    with pytest.raises(Killed):
        apache_write.apply_changes({str(ssl_conf): (ORIGINAL, b"SSLUseStapling off\n"),
                                    str(settings): (None, b"SSLStaplingCache shmcb:x(128000)\n")},
                                   validate=killed_during_configtest, backup=backup or journal.keep_copy,
                                   links={str(link): "../available/fleet-stapling.conf"}, journal=journal)
    return ssl_conf, settings, link


def test_the_journal_is_on_disk_before_the_first_file_is_replaced(tmp_path):
    journal = run_journal.Journal(str(tmp_path / "state"), "/etc/apache2/apache2.conf", doing="apache_stapling x")
    os.makedirs(journal.state_dir, 0o700)
    target = tmp_path / "ssl.conf"
    target.write_bytes(ORIGINAL)
    seen = []

    def validate():
        seen.append(json.loads(open(journal.path).read()))
        return True, "Syntax OK"

    apache_write.apply_changes({str(target): (ORIGINAL, b"SSLUseStapling off\n")}, validate=validate,
                               backup=journal.keep_copy, journal=journal)
    entry = seen[0]
    assert entry["stage"] == "written" and entry["pid"] == os.getpid() and entry["doing"] == "apache_stapling x"
    copy = entry["records"][0]["backups"][str(target)]
    assert copy.startswith(journal.copies_dir + "/") and open(copy, "rb").read() == ORIGINAL
    assert oct(os.stat(copy).st_mode & 0o777) == oct(0o600)
    assert oct(os.stat(journal.path).st_mode & 0o777) == oct(0o600)
    assert journal.leftover()["stage"] == "validated"  # ctl -t passed; the caller ends the pass
    journal.clear()
    assert os.listdir(journal.state_dir) == []


def test_a_rolled_back_pass_leaves_no_journal_and_no_copies(tmp_path):
    journal = run_journal.Journal(str(tmp_path / "state"), "/etc/httpd/conf/httpd.conf")
    os.makedirs(journal.state_dir, 0o700)
    target = tmp_path / "ssl.conf"
    target.write_bytes(ORIGINAL)
    with pytest.raises(apache_write.WriteError, match="restored"):
        apache_write.apply_changes({str(target): (ORIGINAL, b"SSLUseStapling off\n")},
                                   validate=lambda: (False, "AH00526"), backup=journal.keep_copy, journal=journal)
    assert target.read_bytes() == ORIGINAL
    assert os.listdir(journal.state_dir) == []


def test_the_next_run_restores_a_killed_pass_byte_for_byte(tmp_path):
    journal = run_journal.Journal(str(tmp_path / "state"), "/etc/apache2/apache2.conf", doing="apache_stapling y")
    os.makedirs(journal.state_dir, 0o700)
    ssl_conf, settings, link = killed_pass(tmp_path, journal)
    assert ssl_conf.read_bytes() == b"SSLUseStapling off\n" and link.is_symlink()

    host = FakeHost()
    later = run_journal.Journal(journal.state_dir, journal.config_file)
    repaired, warnings = stapling_change.repair_interrupted(host, later, run=None, check_mode=False)

    assert ssl_conf.read_bytes() == ORIGINAL
    assert not os.path.lexists(str(link)) and not settings.exists()
    assert not (tmp_path / "conf" / "available").exists() and not (tmp_path / "conf" / "enabled").exists()
    assert sorted(os.listdir(str(tmp_path / "conf"))) == ["ssl.conf"]
    assert host.tests == 1  # ctl -t on the restored tree
    assert os.listdir(journal.state_dir) == []  # journal and its copies gone, in that order
    assert repaired["stage"] == "written" and repaired["restored_files"] == [str(ssl_conf)]
    assert set(repaired["removed_files"]) >= {str(link), str(settings)}
    assert repaired["left_by"].startswith("pid %d (apache_stapling y, since " % os.getpid())
    assert "killed between writing and validating" in warnings[0]


def test_a_check_says_what_it_would_repair_and_touches_nothing(tmp_path):
    journal = run_journal.Journal(str(tmp_path / "state"), "/etc/apache2/apache2.conf")
    os.makedirs(journal.state_dir, 0o700)
    ssl_conf, _settings, link = killed_pass(tmp_path, journal)
    host = FakeHost()
    repaired, warnings = stapling_change.repair_interrupted(host, journal, run=None, check_mode=True)
    assert repaired["restored_files"] == [str(ssl_conf)] and "a real run first restores" in warnings[0]
    assert ssl_conf.read_bytes() == b"SSLUseStapling off\n" and link.is_symlink() and host.tests == 0
    assert os.path.exists(journal.path)


def test_the_users_own_backups_serve_the_journal_and_go_once_it_is_repaired(tmp_path):
    journal = run_journal.Journal(str(tmp_path / "state"), "/etc/apache2/apache2.conf")
    os.makedirs(journal.state_dir, 0o700)

    def beside(path):
        copy = path + ".1.2026-12-03@10:00:00~"
        with open(path, "rb") as source, open(copy, "wb") as stream:
            stream.write(source.read())
        return copy

    ssl_conf, _settings, _link = killed_pass(tmp_path, journal, backup=beside)
    assert os.path.exists(str(ssl_conf) + ".1.2026-12-03@10:00:00~")  # kept while the journal needs it
    stapling_change.repair_interrupted(FakeHost(), journal, run=None, check_mode=False)
    assert ssl_conf.read_bytes() == ORIGINAL
    assert sorted(os.listdir(str(ssl_conf.parent))) == ["ssl.conf"]


def test_a_pass_killed_after_validation_keeps_its_change_and_loses_only_the_journal(tmp_path):
    journal = run_journal.Journal(str(tmp_path / "state"), "/etc/apache2/apache2.conf")
    os.makedirs(journal.state_dir, 0o700)
    target = tmp_path / "ssl.conf"
    target.write_bytes(ORIGINAL)
    apache_write.apply_changes({str(target): (ORIGINAL, b"SSLUseStapling off\n")}, validate=lambda: (True, ""),
                               backup=journal.keep_copy, journal=journal)  # killed before the pass ended
    repaired, warnings = stapling_change.repair_interrupted(FakeHost(), journal, run=None, check_mode=False)
    assert repaired["stage"] == "validated" and "the change stays" in warnings[0]
    assert target.read_bytes() == b"SSLUseStapling off\n"
    assert os.listdir(journal.state_dir) == []


def test_a_restore_that_fails_keeps_the_journal_for_the_next_run(tmp_path):
    journal = run_journal.Journal(str(tmp_path / "state"), "/etc/apache2/apache2.conf")
    os.makedirs(journal.state_dir, 0o700)
    ssl_conf, _settings, _link = killed_pass(tmp_path, journal)
    for name in os.listdir(journal.copies_dir):
        os.unlink(os.path.join(journal.copies_dir, name))
    with pytest.raises(apache_write.WriteError, match="cannot be read.*stays for the next run"):
        stapling_change.repair_interrupted(FakeHost(), journal, run=None, check_mode=False)
    assert os.path.exists(journal.path)
    assert ssl_conf.read_bytes() == b"SSLUseStapling off\n"


def test_a_restored_tree_that_fails_ctl_t_is_reported_and_the_journal_goes(tmp_path):
    journal = run_journal.Journal(str(tmp_path / "state"), "/etc/apache2/apache2.conf")
    os.makedirs(journal.state_dir, 0o700)
    ssl_conf, _settings, _link = killed_pass(tmp_path, journal)
    with pytest.raises(apache_write.WriteError, match="back as they were before it, but ctl -t now fails: AH00526"):
        stapling_change.repair_interrupted(FakeHost((False, "AH00526")), journal, run=None, check_mode=False)
    assert ssl_conf.read_bytes() == ORIGINAL and not os.path.exists(journal.path)


def test_an_unreadable_journal_is_a_clear_error(tmp_path):
    journal = run_journal.Journal(str(tmp_path), "/etc/apache2/apache2.conf")
    with open(journal.path, "w") as stream:
        stream.write("{half")
    with pytest.raises(run_journal.JournalError, match="not readable JSON"):
        journal.leftover()


def test_copies_that_no_journal_names_are_swept(tmp_path):
    journal = run_journal.Journal(str(tmp_path), "/etc/apache2/apache2.conf")
    target = tmp_path / "a.conf"
    target.write_bytes(ORIGINAL)
    journal.keep_copy(str(target))
    assert stapling_change.repair_interrupted(FakeHost(), journal, run=None, check_mode=False) == (None, [])
    assert not os.path.exists(journal.copies_dir)


def test_a_file_changed_since_the_plan_was_read_stops_the_write(tmp_path):
    target = tmp_path / "ssl.conf"
    target.write_bytes(b"SSLUseStapling on\n# edited by an operator\n")
    settings = tmp_path / "fleet-stapling.conf"
    link = tmp_path / "enabled.conf"
    rendered = {str(target): (b"SSLUseStapling on\n", b"SSLUseStapling off\n"), str(settings): (None, b"x\n")}
    with pytest.raises(apache_write.WriteError, match="ssl.conf changed on disk after this run read it"):
        apache_write.check_unchanged(rendered, {str(link): "fleet-stapling.conf"})
    target.write_bytes(b"SSLUseStapling on\n")
    apache_write.check_unchanged(rendered, {str(link): "fleet-stapling.conf"})
    link.symlink_to("elsewhere.conf")
    with pytest.raises(apache_write.WriteError, match="enabled.conf changed on disk"):
        apache_write.check_unchanged(rendered, {str(link): "fleet-stapling.conf"})
    settings.write_bytes(b"")
    with pytest.raises(apache_write.WriteError, match="fleet-stapling.conf, .*enabled.conf changed"):
        apache_write.check_unchanged(rendered, {str(link): "fleet-stapling.conf"})
