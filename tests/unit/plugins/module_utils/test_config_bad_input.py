# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Odd and broken configs through the module's whole path: each is handled as httpd handles it, or refused
with a message naming the file, and a refused run leaves every byte as it was.

httpd's own verdict (``apache2 -t``) is asserted beside ours where it is the reference.
"""

from __future__ import annotations

import os
import signal
import tracemalloc

import pytest

from ansible_collections.fleet.stapling.plugins.module_utils.apache_config import ApacheConfigError, parse_config

from ansible_collections.fleet.stapling.tests.unit.plugins.module_utils.config_trees import (
    httpd_says,
    refused_without_change,
    run_stapling,
    server_head,
    snapshot,
    vhost,
    write,
)

STAPLING_ON = b"SSLUseStapling on\n"


def tree(tmp_path, *pieces):
    return write(tmp_path / "httpd.conf", server_head(tmp_path) + STAPLING_ON + b"".join(pieces))


# ------------------------------------------------------------------ refused, as httpd refuses them


@pytest.mark.parametrize("body, ours, httpds", [
    (b"<VirtualHost *:58443>\nServerName a\n", "httpd.conf: <VirtualHost> opened at line 12 is never closed",
     "was not closed"),
    (b"</VirtualHost>\n", r"httpd.conf:12: </VirtualHost> does not close no open section", "without matching"),
    (b"<VirtualHost *:58443>\n</IfModule>\n</VirtualHost>\n", r"</IfModule> does not close <VirtualHost> opened at",
     "Expected </VirtualHost> but saw </IfModule>"),
    (b"<VirtualHost *:58443>\n</VirtualHost\n", r"httpd.conf:13: </VirtualHost directive missing closing '>'",
     "missing closing '>'"),
    (b'<If "true">\n<VirtualHost *:58443>\n</VirtualHost>\n</If>\n', r"httpd.conf:13: <VirtualHost> is not allowed "
     r"in <If> context", "not allowed in <If> context"),
    (b"<Directory /srv>\n<VirtualHost *:58443>\n</VirtualHost>\n</Directory>\n", "not allowed in <Directory>",
     "not allowed in <Directory> context"),
    (b"<VirtualHost *:58443>\n<VirtualHost *:58443>\n</VirtualHost>\n</VirtualHost>\n",
     "cannot occur within <VirtualHost>", "cannot occur within <VirtualHost>"),
    (b"<Macro Site $name>\nServerAdmin $name\n", "<Macro> opened at line 12 is never closed", ""),
])
def test_unbalanced_or_misplaced_sections_are_refused_with_file_and_line(tmp_path, body, ours, httpds):
    main = tree(tmp_path, body)
    ok, said = httpd_says(main, tmp_path)
    assert not ok and httpds in said
    refused_without_change(main, tmp_path, ours)


def test_an_include_loop_is_refused_and_names_the_chain(tmp_path):
    main = tree(tmp_path, b"Include a.conf\n")
    write(tmp_path / "a.conf", b"Include b.conf\n")
    write(tmp_path / "b.conf", vhost(tmp_path) + b"Include a.conf\n")
    ok, said = httpd_says(main, tmp_path)
    assert not ok and "Syntax error on line 6 of %s" % (tmp_path / "b.conf") in said  # its recursion message
    message = refused_without_change(main, tmp_path, "include loop")
    assert message.endswith("(%s -> %s -> %s)" % (tmp_path / "a.conf", tmp_path / "b.conf", tmp_path / "a.conf"))


def test_an_include_loop_through_a_link_is_refused_too(tmp_path):
    main = tree(tmp_path, b"Include a.conf\n")
    write(tmp_path / "a.conf", b"Include b.conf\n")
    os.symlink("a.conf", str(tmp_path / "b.conf"))
    assert not httpd_says(main, tmp_path)[0]
    refused_without_change(main, tmp_path, r"include loop: .*b.conf includes itself \(.*a.conf -> .*b.conf\)")


@pytest.mark.parametrize("depth, accepted", [(120, True), (130, False)])
def test_includes_nest_as_deep_as_httpd_allows_and_no_deeper(tmp_path, depth, accepted):
    for level in range(depth):
        write(tmp_path / ("level%d.conf" % level), b"Include level%d.conf\n" % (level + 1))
    write(tmp_path / ("level%d.conf" % depth), vhost(tmp_path))
    main = tree(tmp_path, b"Include level0.conf\n")
    assert httpd_says(main, tmp_path)[0] is accepted
    if accepted:
        assert run_stapling(main, tmp_path, state="disabled", force=True)["changed"]
    else:
        refused_without_change(main, tmp_path, "includes nest more than 128 deep at")


def test_a_missing_include_file_is_refused_with_the_line_that_names_it(tmp_path):
    main = tree(tmp_path, vhost(tmp_path), b"Include conf.d/gone.conf\n")
    ok, said = httpd_says(main, tmp_path)
    assert not ok and "gone.conf" in said
    refused_without_change(main, tmp_path, r"httpd.conf:17: Include file .*conf.d/gone.conf does not exist")


def test_a_plain_include_wildcard_matching_nothing_is_refused_like_httpd(tmp_path):
    (tmp_path / "conf.d").mkdir()
    main = tree(tmp_path, b"Include conf.d/*.conf\n")
    ok, said = httpd_says(main, tmp_path)
    assert not ok and "No matches for the wildcard" in said
    refused_without_change(main, tmp_path, "matches no file")


def test_a_dangling_link_in_a_plain_include_is_refused_and_skipped_by_includeoptional(tmp_path):
    write(tmp_path / "conf.d" / "a.conf", vhost(tmp_path))
    os.symlink("removed.conf", str(tmp_path / "conf.d" / "b.conf"))
    main = tree(tmp_path, b"Include conf.d/*.conf\n")
    assert not httpd_says(main, tmp_path)[0]
    refused_without_change(main, tmp_path, r"cannot read .*b.conf: No such file")
    main = tree(tmp_path, b"IncludeOptional conf.d/*.conf\n")
    assert httpd_says(main, tmp_path)[0]
    assert run_stapling(main, tmp_path, state="disabled", force=True)["changed"]


def test_a_directory_as_the_main_config_is_refused_as_such(tmp_path):
    (tmp_path / "httpd.conf").mkdir()
    with pytest.raises(ApacheConfigError, match="httpd.conf is a directory where a config file is expected"):
        parse_config(str(tmp_path / "httpd.conf"))


def test_a_directory_as_the_settings_file_is_refused_before_any_write(tmp_path):
    main = tree(tmp_path, vhost(tmp_path))
    (tmp_path / "stapling.conf").mkdir()
    refused_without_change(main, tmp_path, "stapling.conf is a directory", state="enabled",
                           server_file=str(tmp_path / "stapling.conf"), tunables={"responder_timeout": 5})


def test_a_fifo_where_a_config_file_should_be_is_refused_at_once(tmp_path):
    # httpd -t itself blocks forever on this one; the module must not
    os.mkfifo(str(tmp_path / "sites.conf"))
    main = tree(tmp_path, b"Include sites.conf\n")
    previous = signal.signal(signal.SIGALRM, lambda *_args: pytest.fail("reading a FIFO blocked"))
    signal.alarm(30)
    try:
        refused_without_change(main, tmp_path, "sites.conf is not a regular file")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_a_100_mb_file_is_refused_with_its_size_without_being_read(tmp_path):
    big = tmp_path / "conf.d" / "access_log.conf"
    big.parent.mkdir()
    with open(str(big), "wb") as stream:
        stream.truncate(100 * 1000 * 1000)  # sparse: no disk used, and never read if the size is checked first
    main = tree(tmp_path, vhost(tmp_path), b"IncludeOptional conf.d/*.conf\n")
    tracemalloc.start()
    try:
        message = refused_without_change(main, tmp_path, r"access_log.conf is 95.4 MiB, more than the 32.0 MiB")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "Include wildcard" in message
    assert peak < 1048576  # the refusal came from the size alone: not even a buffer for the file was set aside
    assert big.stat().st_size == 100 * 1000 * 1000


# ------------------------------------------------------------------ handled, as httpd handles them


def test_includeoptional_of_nothing_is_fine_and_reported(tmp_path):
    main = tree(tmp_path, vhost(tmp_path), b"IncludeOptional gone.conf\nIncludeOptional nodir/*.conf\n"
                b"IncludeOptional /dev/null\nInclude /dev/null\n")
    assert httpd_says(main, tmp_path)[0]
    result = run_stapling(main, tmp_path, state="disabled", force=True)
    assert result["changed_files"] == [str(main)]
    config = parse_config(str(main))
    assert sorted(config.missing_includes) == [str(tmp_path / "gone.conf"), str(tmp_path / "nodir" / "*.conf")]


def test_an_empty_included_file_and_a_wildcard_matching_a_directory_are_read_like_httpd(tmp_path):
    write(tmp_path / "conf.d" / "empty.conf", b"")
    write(tmp_path / "conf.d" / "nested.conf" / "site.conf", vhost(tmp_path))
    main = tree(tmp_path, b"Include conf.d/*.conf\n")
    assert httpd_says(main, tmp_path)[0]
    (site,) = parse_config(str(main)).virtual_hosts()
    assert site.path == str(tmp_path / "conf.d" / "nested.conf" / "site.conf")
    run_stapling(main, tmp_path, state="disabled", force=True)
    assert (tmp_path / "conf.d" / "empty.conf").read_bytes() == b""


def test_an_empty_main_config_gets_a_clear_refusal_not_a_traceback(tmp_path):
    main = write(tmp_path / "httpd.conf", b"")
    refused_without_change(main, tmp_path, "mod_socache_shmcb, which is not loaded", state="enabled")


def test_non_utf8_bytes_survive_an_edit_untouched(tmp_path):
    main = tree(tmp_path, b"# caf\xe9 cr\xe8me (Latin-1)\nServerAdmin \xe9t\xe9@example.test\n",
                vhost(tmp_path, extra=b"    # \xff\xfe not text\n    SSLUseStapling on\n"))
    before = main.read_bytes()
    result = run_stapling(main, tmp_path, state="disabled", force=True)
    after = main.read_bytes()
    assert after == before.replace(b"SSLUseStapling on", b"SSLUseStapling off")
    assert "caf\ufffd" in result["diff"][0]["before"]
    assert httpd_says(main, tmp_path)[0]


def test_crlf_files_keep_crlf_on_every_line_an_edit_writes(tmp_path):
    write(tmp_path / "sites.conf", vhost(tmp_path, newline=b"\r\n"))
    main = write(tmp_path / "httpd.conf", server_head(tmp_path) + b"Include sites.conf\n")
    run_stapling(main, tmp_path, state="enabled", vhosts=["shop.test"])
    lines = (tmp_path / "sites.conf").read_bytes().split(b"\n")
    assert b"    SSLUseStapling on\r" in lines
    assert all(line.endswith(b"\r") for line in lines[:-1]) and lines[-1] == b""
    run_stapling(main, tmp_path, state="disabled", vhosts=["shop.test"], force=True)
    assert b"    SSLUseStapling off\r\n" in (tmp_path / "sites.conf").read_bytes()
    assert httpd_says(main, tmp_path)[0]


def test_mixed_case_directives_and_tags_are_read_and_keep_their_spelling(tmp_path):
    main = write(tmp_path / "httpd.conf", server_head(tmp_path) + b"sslUSEstapling ON\n"
                 + vhost(tmp_path).replace(b"<VirtualHost", b"<virtualHOST").replace(b"</VirtualHost>", b"</VIRTUALHOST>"))
    assert httpd_says(main, tmp_path)[0]
    result = run_stapling(main, tmp_path, state="disabled", force=True)
    assert result["vhost_changes"] == [{"vhost": "shop.test (%s:12)" % main, "stapling": False}]
    assert b"\nsslUSEstapling off\n" in main.read_bytes()
    assert not run_stapling(main, tmp_path, state="disabled", force=True)["changed"]


@pytest.mark.parametrize("quoted", [u"\u201con\u201d", u"\u201don\u201d", u"\u201eon\u201c"])
def test_typographic_quotes_pasted_from_a_runbook_are_rewritten_with_a_warning(tmp_path, quoted):
    main = tree(tmp_path, vhost(tmp_path, extra=b"    SSLUseStapling " + quoted.encode("utf-8") + b"\n"))
    ok, said = httpd_says(main, tmp_path)
    assert not ok and "SSLUseStapling must be On or Off" in said
    result = run_stapling(main, tmp_path, state="enabled")
    assert any("typographic quotes" in warning for warning in result["warnings"])
    assert b"    SSLUseStapling on\n" in main.read_bytes()
    assert httpd_says(main, tmp_path)[0]


def test_a_continued_directive_is_rewritten_as_one_line_and_the_rest_left_alone(tmp_path):
    main = tree(tmp_path, vhost(tmp_path, extra=b"    SSLUseStapling \\\n        on\n    ServerAlias \\\n"
                                b"        www.shop.test\n"))
    assert httpd_says(main, tmp_path)[0]
    run_stapling(main, tmp_path, state="disabled", force=True)
    text = main.read_bytes()
    assert b"    SSLUseStapling off\n    ServerAlias \\\n        www.shop.test\n" in text
    assert httpd_says(main, tmp_path)[0]


def test_a_lone_cr_is_not_a_line_end_as_for_httpd(tmp_path):
    main = tree(tmp_path, b"ServerAdmin a@example.test\rServerName b\n")
    ok, said = httpd_says(main, tmp_path)
    assert not ok and "ServerAdmin takes one argument" in said
    (admin,) = parse_config(str(main)).active("ServerAdmin")
    assert admin.args == ["a@example.test", "ServerName", "b"]


def test_a_symlinked_include_is_edited_at_its_target_and_stays_a_link(tmp_path):
    write(tmp_path / "sites-available" / "shop.conf", vhost(tmp_path, extra=b"    SSLUseStapling on\n"))
    (tmp_path / "sites-enabled").mkdir()
    os.symlink("../sites-available/shop.conf", str(tmp_path / "sites-enabled" / "shop.conf"))
    main = tree(tmp_path, b"IncludeOptional sites-enabled/*.conf\n")
    result = run_stapling(main, tmp_path, state="disabled", vhosts=["shop.test"], force=True)
    link = tmp_path / "sites-enabled" / "shop.conf"
    assert os.readlink(str(link)) == "../sites-available/shop.conf"
    assert b"SSLUseStapling off" in (tmp_path / "sites-available" / "shop.conf").read_bytes()
    assert result["changed_files"] == [str(link)]
    assert httpd_says(main, tmp_path)[0]


def test_vhosts_in_a_macro_are_not_taken_for_real_ones_and_the_use_is_reported(tmp_path):
    body = vhost(tmp_path).replace(b"ServerName shop.test", b"ServerName $name")
    main = tree(tmp_path, b"<Macro Site $name>\n" + body + b"</Macro>\nUse Site shop.test\n", vhost(tmp_path, "b.test"))
    assert httpd_says(main, tmp_path)[0]
    config = parse_config(str(main))
    assert [v.args for v in config.virtual_hosts()] == [["*:58443"]]
    assert any("<Macro Site>" in warning for warning in config.warnings)
    assert any("Use Site" in warning for warning in config.warnings)
    result = run_stapling(main, tmp_path, state="disabled", force=True)
    assert result["changed_files"] == [str(main)] and b"</Macro>" in main.read_bytes()
    # the change itself tells the operator what it could not see
    assert any("Use Site" in warning for warning in result["warnings"]), result["warnings"]
    assert httpd_says(main, tmp_path)[0]


def test_an_unbalanced_macro_body_is_left_to_mod_macro_as_httpd_does(tmp_path):
    main = tree(tmp_path, b"<Macro Half $name>\n<VirtualHost *:58443>\nServerName $name\n</Macro>\n")
    assert httpd_says(main, tmp_path)[0]
    assert parse_config(str(main)).virtual_hosts() == []


def test_a_section_line_with_a_trailing_comment_is_read_like_httpd(tmp_path):
    site = vhost(tmp_path).replace(b":58443>", b":58443> # the shop").replace(b"</VirtualHost>", b"</VirtualHost> # end")
    main = tree(tmp_path, site)
    assert httpd_says(main, tmp_path)[0]
    (section,) = parse_config(str(main)).virtual_hosts()
    assert section.args == ["*:58443"]
    run_stapling(main, tmp_path, state="disabled", vhosts=["shop.test"], force=True)
    assert b"    SSLUseStapling off\n</VirtualHost> # end\n" in main.read_bytes()


def test_define_loops_end_with_the_literal_text_and_a_warning_like_httpd(tmp_path):
    main = tree(tmp_path, b"Define SELF ${SELF}x\nDefine PING ${PONG}\nDefine PONG ${PING}\n",
                vhost(tmp_path, extra=b"    ServerAlias ${SELF} ${PING} ${PONG}\n"))
    ok, said = httpd_says(main, tmp_path)
    assert ok and "${PONG} is not defined" in said
    config = parse_config(str(main), environment={})
    (alias,) = config.active("ServerAlias")
    assert alias.args == ["${SELF}x", "${PONG}", "${PONG}"]
    assert sorted(set(config.warnings)) == ["variable ${PONG} is not defined", "variable ${SELF} is not defined"]
    before = snapshot(tmp_path)
    assert run_stapling(main, tmp_path, check_mode=True, state="disabled", force=True)["changed"]
    assert snapshot(tmp_path) == before


def test_a_byte_order_mark_is_refused_with_its_cause_where_httpd_gives_a_puzzle(tmp_path):
    write(tmp_path / "sites.conf", b"\xef\xbb\xbf" + vhost(tmp_path))
    main = tree(tmp_path, b"Include sites.conf\n")
    ok, said = httpd_says(main, tmp_path)
    assert not ok and "</VirtualHost> without matching <VirtualHost> section" in said
    refused_without_change(main, tmp_path, r"sites.conf:1: the file starts with a UTF-8 byte order mark")


def test_a_file_edited_through_two_names_is_refused_not_written_twice(tmp_path):
    write(tmp_path / "sites-available" / "shop.conf", vhost(tmp_path, extra=b"    SSLUseStapling on\n"))
    (tmp_path / "sites-enabled").mkdir()
    os.symlink("../sites-available/shop.conf", str(tmp_path / "sites-enabled" / "shop.conf"))
    main = tree(tmp_path, b"Include sites-available/shop.conf\nInclude sites-enabled/shop.conf\n")
    refused_without_change(main, tmp_path, r"sites-available/shop.conf and .*sites-enabled/shop.conf are the same "
                           r"file .* Include it once")
