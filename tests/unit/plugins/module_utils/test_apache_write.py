# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest

from ansible_collections.fleet.stapling.plugins.module_utils import apache_edit, apache_write
from ansible_collections.fleet.stapling.plugins.module_utils.apache_config import parse_config


def test_failed_validation_restores_every_byte_and_removes_new_files(tmp_path):
    existing = tmp_path / "a.conf"
    existing.write_bytes(b"# caf\xe9\r\nSSLUseStapling on\r\n")
    os.chmod(str(existing), 0o640)
    new_file = tmp_path / "userdata" / "site" / "fleet_stapling.conf"
    rendered = {str(existing): (existing.read_bytes(), b"SSLUseStapling off\r\n"),
                str(new_file): (None, b"SSLUseStapling off\n")}
    with pytest.raises(apache_write.WriteError, match="AH00526: Syntax error"):
        apache_write.apply_changes(rendered, validate=lambda: (False, "AH00526: Syntax error on line 1"))
    assert existing.read_bytes() == b"# caf\xe9\r\nSSLUseStapling on\r\n"
    assert oct(os.stat(str(existing)).st_mode & 0o777) == oct(0o640)
    assert not (tmp_path / "userdata").exists()
    assert sorted(os.listdir(str(tmp_path))) == ["a.conf"]  # no temporary files left behind


def test_successful_write_keeps_mode_and_makes_backups(tmp_path):
    target = tmp_path / "ssl.conf"
    target.write_bytes(b"SSLUseStapling on\n")
    os.chmod(str(target), 0o600)
    backups = apache_write.apply_changes(
        {str(target): (b"SSLUseStapling on\n", b"SSLUseStapling off\n")},
        validate=lambda: (True, "Syntax OK"),
        backup=lambda path: _copy(path, path + ".bak"))
    assert target.read_bytes() == b"SSLUseStapling off\n"
    assert oct(os.stat(str(target)).st_mode & 0o777) == oct(0o600)
    assert open(backups[str(target)], "rb").read() == b"SSLUseStapling on\n"


def test_symlinked_site_is_edited_through_the_link(tmp_path):
    (tmp_path / "sites-available").mkdir()
    (tmp_path / "sites-enabled").mkdir()
    real = tmp_path / "sites-available" / "shop.conf"
    real.write_bytes(b"SSLUseStapling on\n")
    link = tmp_path / "sites-enabled" / "shop.conf"
    link.symlink_to("../sites-available/shop.conf")
    apache_write.apply_changes({str(link): (b"SSLUseStapling on\n", b"SSLUseStapling off\n")},
                               validate=lambda: (True, ""))
    assert link.is_symlink()
    assert real.read_bytes() == b"SSLUseStapling off\n"


def _copy(source, destination):
    with open(source, "rb") as reader, open(destination, "wb") as writer:
        writer.write(reader.read())
    return destination


def parsed(tmp_path, content):
    path = tmp_path / "httpd.conf"
    path.write_bytes(content)
    return parse_config(str(path)), str(path)


def test_replacing_arguments_keeps_indent_spelling_alignment_and_line_ending(tmp_path):
    config, path = parsed(tmp_path, b"  sslUseStapling\t\ton\r\nLogLevel warn\r\n")
    edit = apache_edit.replace_args(config, config.active("SSLUseStapling")[0], ["off"], "test")
    assert apache_edit.render_edits(config, [edit])[path][1] == b"  sslUseStapling\t\toff\r\nLogLevel warn\r\n"


def test_replacing_a_continued_directive_makes_one_line(tmp_path):
    config, path = parsed(tmp_path, b"SSLStaplingCache \\\n  shmcb:/a(1)\nLogLevel warn\n")
    edit = apache_edit.replace_args(config, config.active("SSLStaplingCache")[0], ["shmcb:/b(2)"], "test")
    assert apache_edit.render_edits(config, [edit])[path][1] == b"SSLStaplingCache shmcb:/b(2)\nLogLevel warn\n"


def test_appending_to_a_file_without_final_newline_keeps_the_last_line_whole(tmp_path):
    config, path = parsed(tmp_path, b"LogLevel warn")
    edit = apache_edit.append_to_file(config, path, [("SSLUseStapling", ["off"])], "test")
    assert apache_edit.render_edits(config, [edit])[path][1] == b"LogLevel warn\nSSLUseStapling off\n"


def test_arguments_with_spaces_are_quoted():
    assert apache_edit.quote_arg("shmcb:/run/x(1)") == "shmcb:/run/x(1)"
    assert apache_edit.quote_arg("/path with space/ca.pem") == '"/path with space/ca.pem"'


def test_unchanged_render_is_not_reported(tmp_path):
    config, _path = parsed(tmp_path, b"SSLUseStapling on\n")
    edit = apache_edit.replace_args(config, config.active("SSLUseStapling")[0], ["on"], "test")
    assert apache_edit.render_edits(config, [edit]) == {}


def test_unified_diff_shows_only_the_changed_line(tmp_path):
    diff = apache_edit.unified_diff("/etc/x.conf", b"a\nSSLUseStapling on\nb\n", b"a\nSSLUseStapling off\nb\n")
    assert [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))] == \
        ["-SSLUseStapling on", "+SSLUseStapling off"]


def test_rollback_removes_the_backups_it_made(tmp_path):
    target = tmp_path / "ssl.conf"
    target.write_bytes(b"SSLUseStapling on\n")
    with pytest.raises(apache_write.WriteError):
        apache_write.apply_changes({str(target): (b"SSLUseStapling on\n", b"SSLUseStapling off\n")},
                                   validate=lambda: (False, "AH00526"),
                                   backup=lambda path: _copy(path, path + ".bak"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ssl.conf"]
    assert target.read_bytes() == b"SSLUseStapling on\n"


def test_a_new_settings_file_and_its_link_go_away_together_when_validation_fails(tmp_path):
    (tmp_path / "conf-available").mkdir()
    (tmp_path / "conf-enabled").mkdir()
    settings = tmp_path / "conf-available" / "fleet-stapling.conf"
    link = tmp_path / "conf-enabled" / "fleet-stapling.conf"
    seen = []

    def validate():
        seen.append((link.is_symlink(), link.read_bytes()))
        return False, "AH00526: Syntax error"

    with pytest.raises(apache_write.WriteError):
        apache_write.apply_changes({str(settings): (None, b"SSLUseStapling on\n")}, validate=validate,
                                   links={str(link): "../conf-available/fleet-stapling.conf"})
    assert seen == [(True, b"SSLUseStapling on\n")]  # validation ran with the file enabled through the link
    assert sorted(os.listdir(str(tmp_path / "conf-available"))) == []
    assert not os.path.lexists(str(link))


def test_undo_puts_two_runs_back_newest_first(tmp_path):
    ssl_conf = tmp_path / "ssl.conf"
    original = b"SSLUseStapling on\r\n# caf\xe9\n"
    ssl_conf.write_bytes(original)

    def backup(path):
        return _copy(path, path + ".%d.bak" % len(os.listdir(str(tmp_path))))

    settings = tmp_path / "fleet-stapling.conf"
    first = apache_write.apply_changes({str(ssl_conf): (original, b"SSLUseStapling off\n"),
                                        str(settings): (None, b"SSLStaplingCache shmcb:x(128000)\n")},
                                       validate=lambda: (True, ""), backup=backup)
    second = apache_write.apply_changes({str(ssl_conf): (b"SSLUseStapling off\n", b"SSLUseStapling on\n")},
                                        validate=lambda: (True, ""), backup=backup)
    records = [{"backups": first, "created_files": [str(settings)], "created_links": []},
               {"backups": second, "created_files": [], "created_links": []}]

    planned = apache_write.undo_records(records, check_mode=True)
    assert ssl_conf.read_bytes() == b"SSLUseStapling on\n" and settings.exists()  # check mode touches nothing

    assert apache_write.undo_records(records) == planned == ([str(ssl_conf)], [str(settings)])
    assert ssl_conf.read_bytes() == original
    assert sorted(os.listdir(str(tmp_path))) == ["ssl.conf"]  # the settings file and the backup copies are gone


def test_undo_with_a_lost_backup_says_so_and_restores_the_rest(tmp_path):
    target = tmp_path / "a.conf"
    target.write_bytes(b"new\n")
    with pytest.raises(apache_write.WriteError, match="cannot be read"):
        apache_write.undo_records([{"backups": {str(target): str(tmp_path / "gone.bak")}}])
    assert target.read_bytes() == b"new\n"


def test_discarding_backups_removes_the_copies_of_every_run_in_one_go(tmp_path):
    site = tmp_path / "site.conf"
    site.write_text("SSLUseStapling off\n")
    copies = [tmp_path / ("site.conf.%d.2026-12-02@10:00:0%d~" % (pid, pid)) for pid in (1, 2)]
    for copy in copies:
        copy.write_text("SSLUseStapling on\n")
    records = [{"backups": {str(site): str(copies[0])}}, {"backups": {str(site): str(copies[1])}}, {"backups": {}}]

    assert apache_write.discard_backups(records, check_mode=True) == [str(c) for c in copies]
    assert all(copy.exists() for copy in copies)
    assert apache_write.discard_backups(records) == [str(c) for c in copies]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site.conf"]
    assert apache_write.discard_backups(records) == []  # a second run has nothing left to do


def test_a_record_cannot_make_discarding_remove_anything_but_a_backup_copy(tmp_path):
    site = tmp_path / "site.conf"
    other = tmp_path / "keys" / "server.key"
    other.parent.mkdir()
    for path in (site, other):
        path.write_text("x\n")

    for copy in (other, tmp_path / "site.conf", tmp_path / "other.conf.1.2026~"):
        with pytest.raises(apache_write.WriteError, match="not a backup copy"):
            apache_write.discard_backups([{"backups": {str(site): str(copy)}}])
    assert other.exists() and site.exists()
