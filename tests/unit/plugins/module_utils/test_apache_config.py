# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import gc
import random

import pytest

from ansible_collections.fleet.stapling.plugins.module_utils.apache_config import (
    ApacheConfigError,
    cycle_collection_paused,
    glob_path_matches,
    has_typographic_quotes,
    parse_config,
    split_args,
)
from ansible_collections.fleet.stapling.plugins.module_utils.apache_config_files import read_envvars


def write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def test_rendering_an_unchanged_tree_gives_back_every_byte(tmp_path):
    main = write(tmp_path / "httpd.conf", b"# caf\xe9 in Latin-1\r\nServerRoot " + str(tmp_path).encode() + b"\r\n"
                 b"Include sites/*.conf\r\n\r\n   \t\r\nLogLevel \\\r\n  warn\r\n")
    site = write(tmp_path / "sites" / "a.conf", b"<VirtualHost *:443>\n  SSLUseStapling on\n</VirtualHost>")
    config = parse_config(str(main))
    assert config.files[str(main)].render() == main.read_bytes()
    assert config.files[str(site)].render() == site.read_bytes()


def test_round_trip_over_generated_configs(tmp_path):
    pieces = [b"# comment\n", b"\n", b"  \t\n", b"SSLUseStapling on\n", b"sslusestapling  Off\r\n",
              b'SSLStaplingCache "shmcb:/run/x(1000)"\n', b"Options \\\n  -Indexes\n", b"LogLevel warn\xff\n",
              b"<IfModule ssl_module>\nSSLStaplingResponderTimeout 5\n</IfModule>\n",
              b"<VirtualHost *:443>\r\n ServerName a\r\n</VirtualHost>\r\n", b"Header set X \xe2\x80\x9cy\xe2\x80\x9d\n"]
    generator = random.Random(20261122)
    for case in range(200):
        body = b"".join(generator.choice(pieces) for _piece in range(generator.randint(0, 25)))
        if generator.random() < 0.3:
            body = body.rstrip(b"\r\n")  # no newline at the end of the file
        main = write(tmp_path / ("case%d.conf" % case), body)
        config = parse_config(str(main))
        assert config.files[str(main)].render() == body


def test_directive_names_are_case_insensitive(tmp_path):
    main = write(tmp_path / "httpd.conf", "sslusestapling On\nSSLSTAPLINGCACHE shmcb:x(1)\n")
    config = parse_config(str(main))
    assert [d.name for d in config.active("SSLUseStapling")] == ["sslusestapling"]
    assert config.server_value("SSLStaplingCache") == "shmcb:x(1)"


def test_continued_line_is_one_directive_spanning_two_lines(tmp_path):
    main = write(tmp_path / "httpd.conf", "SSLStaplingCache \\\n    shmcb:/run/c(512)\nLogLevel warn\n")
    config = parse_config(str(main))
    cache = config.active("sslstaplingcache")[0]
    assert (cache.start, cache.end, cache.args) == (0, 1, ["shmcb:/run/c(512)"])
    assert config.active("loglevel")[0].lineno == 3


def test_arguments_follow_httpd_quoting():
    assert split_args('"a b" c \'d e\' "f\\"g"') == ["a b", "c", "d e", 'f"g']
    assert split_args("  spaced\tout  ") == ["spaced", "out"]


def ap_getword_conf(text):
    """httpd's word splitting read one character at a time, as the parser once did: the reference for split_args."""
    words, index = [], 0
    while index < len(text):
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            break
        quote = text[index]
        if quote in "\"'":
            index += 1
            word = []
            while index < len(text) and text[index] != quote:
                if text[index] == "\\" and index + 1 < len(text) and text[index + 1] in (quote, "\\"):
                    index += 1
                word.append(text[index])
                index += 1
            index += 1
            words.append("".join(word))
            continue
        start = index
        while index < len(text) and not text[index].isspace():
            index += 1
        words.append(text[start:index])
    return words


def test_arguments_split_as_httpd_reads_them_one_character_at_a_time():
    edge_cases = ['"never closed', '"a"b', "'it''s'", 'back\\slash "\\\\x"', '"\\', "\u00a0nbsp\u00a0", ""]
    generator = random.Random(12)
    alphabet = ['a', ' ', '\t', '"', "'", "\\", "\u201c", "\u00a0", "$", "{"]
    generated = ["".join(generator.choice(alphabet) for _n in range(generator.randint(0, 12))) for _t in range(20000)]
    for text in edge_cases + generated:
        assert split_args(text) == ap_getword_conf(text), repr(text)


def test_a_glob_matches_within_path_parts_and_literal_parts_exactly():
    assert glob_path_matches("/etc/httpd/conf.d/a.conf", "/etc/httpd/conf.d/*.conf")
    assert glob_path_matches("/home/u1/site/fleet.conf", "/home/u?/s[a-i]te/*.conf")
    assert not glob_path_matches("/etc/httpd/conf.d/a.conf", "/etc/apache2/conf.d/*.conf")
    assert not glob_path_matches("/etc/httpd/conf.d/sub/a.conf", "/etc/httpd/conf.d/*.conf")
    assert not glob_path_matches("/etc/httpd/Conf.d/a.conf", "/etc/httpd/conf.d/*.conf")


def test_inside_finds_active_directives_at_any_depth_in_order(tmp_path):
    main = write(tmp_path / "httpd.conf", "<VirtualHost *:443>\n  ServerName a.test\n  <IfModule ssl_module>\n"
                 "    SSLUseStapling on\n  </IfModule>\n  <IfModule nothing_module>\n    SSLUseStapling off\n"
                 "  </IfModule>\n  <Location />\n    SSLUseStapling off\n  </Location>\n</VirtualHost>\n")
    config = parse_config(str(main), static_modules=["ssl"])
    vhost = config.virtual_hosts()[0]
    found = config.inside(vhost, "sslusestapling")
    assert [(d.lineno, d.args) for d in found] == [(4, ["on"]), (10, ["off"])]
    assert isinstance(found, tuple)  # the index's own, shared with every caller: it cannot be changed by one
    assert config.inside(vhost, "SSLUseStapling") is found
    assert config.inside(vhost, "SSLEngine") == ()


def test_typographic_quotes_are_not_quotes_and_are_detected():
    words = split_args(u"\u201cshmcb:logs/ssl_stapling(32768)\u201c")
    assert words == [u"\u201cshmcb:logs/ssl_stapling(32768)\u201c"]
    assert has_typographic_quotes(words[0])
    assert not has_typographic_quotes('"shmcb:logs/x"')


def test_includes_follow_globs_directories_and_server_root(tmp_path):
    write(tmp_path / "conf" / "httpd.conf", 'ServerRoot "%s"\nInclude conf.d/*.conf\nInclude extra\n'
          "IncludeOptional missing/*.conf\nIncludeOptional nothing.conf\n" % tmp_path)
    write(tmp_path / "conf.d" / "b.conf", "LogLevel b\n")
    write(tmp_path / "conf.d" / "a.conf", "LogLevel a\n")
    write(tmp_path / "conf.d" / "ignored.txt", "LogLevel ignored\n")
    write(tmp_path / "extra" / "sub" / "z.conf", "LogLevel z\n")
    config = parse_config(str(tmp_path / "conf" / "httpd.conf"))
    assert [d.first_arg() for d in config.active("loglevel")] == ["a", "b", "z"]
    assert len(config.missing_includes) == 2


def test_a_missing_plain_include_is_an_error(tmp_path):
    main = write(tmp_path / "httpd.conf", "Include nowhere.conf\n")
    with pytest.raises(ApacheConfigError, match="nowhere.conf does not exist"):
        parse_config(str(main))


def test_a_plain_include_wildcard_matching_nothing_is_an_error_like_httpd(tmp_path):
    main = write(tmp_path / "httpd.conf", "Include empty/*.conf\n")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ApacheConfigError, match="matches no file"):
        parse_config(str(main))


def test_include_loop_is_reported_not_followed_forever(tmp_path):
    main = write(tmp_path / "httpd.conf", "Include other.conf\n")
    write(tmp_path / "other.conf", "Include httpd.conf\n")
    with pytest.raises(ApacheConfigError, match="include loop"):
        parse_config(str(main), server_root=str(tmp_path))


def test_defines_and_envvars_resolve_variables(tmp_path):
    write(tmp_path / "envvars", "export APACHE_RUN_DIR=/var/run/apache2$SUFFIX\nexport APACHE_LOG_DIR=/var/log/apache2\n")
    main = write(tmp_path / "apache2.conf", "Define CACHE_DIR /run/cache\nSSLStaplingCache shmcb:${CACHE_DIR}/s(1)\n"
                 "ErrorLog ${APACHE_LOG_DIR}/error.log\nPidFile ${APACHE_RUN_DIR}/pid\n")
    config = parse_config(str(main))
    assert config.server_value("SSLStaplingCache") == "shmcb:/run/cache/s(1)"
    assert config.server_value("ErrorLog") == "/var/log/apache2/error.log"
    # a value computed by the shell is not guessed at: the variable stays unresolved and is reported
    assert config.server_value("PidFile") == "${APACHE_RUN_DIR}/pid"
    assert any("APACHE_RUN_DIR" in warning for warning in config.warnings)


def test_read_envvars_takes_plain_exports_only(tmp_path):
    path = write(tmp_path / "envvars", "export A=1\nB='two'\nexport C=$(hostname)\n# export D=4\n")
    assert read_envvars(str(path)) == {"A": "1", "B": "two"}


def test_ifmodule_follows_loadmodule_and_negation(tmp_path):
    main = write(tmp_path / "httpd.conf", "<IfModule mod_ssl.c>\nLogLevel before\n</IfModule>\n"
                 "LoadModule ssl_module modules/mod_ssl.so\n"
                 "<IfModule ssl_module>\nLogLevel after\n</IfModule>\n"
                 "<IfModule !mod_ssl.c>\nLogLevel negated\n</IfModule>\n")
    config = parse_config(str(main))
    assert [d.first_arg() for d in config.active("loglevel")] == ["after"]
    assert config.has_module("mod_ssl.c")


def test_ifdefine_uses_define_and_command_line_defines(tmp_path):
    main = write(tmp_path / "httpd.conf", "<IfDefine SSL>\nLogLevel ssl\n</IfDefine>\n"
                 "<IfDefine !FOREGROUND>\nLogLevel background\n</IfDefine>\n")
    assert [d.first_arg() for d in parse_config(str(main), defines=["SSL"]).active("loglevel")] == ["ssl", "background"]
    assert [d.first_arg() for d in parse_config(str(main), defines=["FOREGROUND"]).active("loglevel")] == []


def test_ifversion_compares_with_the_known_version(tmp_path):
    main = write(tmp_path / "httpd.conf", "<IfVersion >= 2.4.8>\nLogLevel new\n</IfVersion>\n"
                 "<IfVersion < 2.4>\nLogLevel old\n</IfVersion>\n")
    assert [d.first_arg() for d in parse_config(str(main), version=(2, 4, 62)).active("loglevel")] == ["new"]
    assert [d.first_arg() for d in parse_config(str(main), version=(2, 2, 34)).active("loglevel")] == ["old"]


def test_includes_inside_inactive_sections_are_not_followed(tmp_path):
    main = write(tmp_path / "httpd.conf", "<IfModule mod_absent.c>\nInclude does-not-exist.conf\n</IfModule>\n")
    config = parse_config(str(main))
    assert config.missing_includes == []
    assert not config.directives[1].active


def test_vhost_inherits_the_server_value_and_its_own_setting_wins(tmp_path):
    main = write(tmp_path / "httpd.conf", "<VirtualHost *:443>\nServerName a\n</VirtualHost>\n"
                 "<VirtualHost *:443>\nServerName b\nSSLUseStapling off\n</VirtualHost>\n"
                 "SSLUseStapling on\n")
    config = parse_config(str(main))
    first, second = config.virtual_hosts()
    # a server-scope directive after the vhosts still applies: httpd merges after reading everything
    assert config.vhost_value(first, "sslusestapling") == "on"
    assert config.vhost_value(second, "SSLUseStapling") == "off"


def test_directives_know_their_file_line_and_sections(tmp_path):
    main = write(tmp_path / "httpd.conf", "<IfModule ssl_module>\n<VirtualHost 10.0.0.1:443>\n"
                 "  SSLUseStapling on\n</VirtualHost>\n</IfModule>\n")
    config = parse_config(str(main), static_modules=["ssl"])
    stapling = config.active("sslusestapling")[0]
    assert stapling.location() == "%s:3" % main
    assert stapling.enclosing("virtualhost").args == ["10.0.0.1:443"]
    assert stapling.enclosing("ifmodule").close == 4


@pytest.mark.parametrize("text, message", [
    ("<VirtualHost *:443>\nServerName a\n", "never closed"),
    ("<VirtualHost *:443>\n</IfModule>\n", "does not close"),
    ("<VirtualHost *:443\n</VirtualHost>\n", "does not end with"),
])
def test_broken_sections_name_the_file_and_line(tmp_path, text, message):
    main = write(tmp_path / "httpd.conf", text)
    with pytest.raises(ApacheConfigError, match=message):
        parse_config(str(main))


@pytest.mark.parametrize("enabled", [True, False])
def test_the_cycle_collector_is_paused_while_a_tree_is_read_and_left_as_it_was(tmp_path, enabled):
    main = write(tmp_path / "httpd.conf", "<VirtualHost *:443>\n  ServerName a.test\n</VirtualHost>\n")
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        with cycle_collection_paused():
            assert not gc.isenabled()
        assert parse_config(str(main)).virtual_hosts()
        assert gc.isenabled() is enabled
        with pytest.raises(ValueError):
            with cycle_collection_paused():
                raise ValueError("a failed read")
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


def _shape(config):
    """Every directive of a tree as (file, first line, last line, name, args, active), in read order."""
    return [(d.path, d.start, d.end, d.name, d.args, d.active) for d in config.directives]


def test_a_second_read_with_known_sources_takes_the_unchanged_files_from_the_first(tmp_path):
    main = write(tmp_path / "httpd.conf", "ServerRoot %s\nDefine SITE a\nInclude sites/*.conf\n"
                 "<Macro Site $name>\n<VirtualHost *:443>\nServerName $name\n</VirtualHost>\n</Macro>\n"
                 "<IfDefine NOPE>\nSSLUseStapling on\n</IfDefine>\n" % tmp_path)
    site = write(tmp_path / "sites" / "a.conf", "<VirtualHost *:443>\n  ServerName ${SITE}.example \\\n"
                 "    alias.example\n  SSLUseStapling on\n</VirtualHost>\n")
    first = parse_config(str(main))
    planned = b"<VirtualHost *:443>\n  ServerName ${SITE}.example\n  SSLUseStapling off\n</VirtualHost>\n"
    new = write(tmp_path / "sites" / "b.conf", "SSLStaplingCache shmcb:/tmp/x(1)\n")
    new.unlink()  # a file the plan creates: only in the overrides

    second = parse_config(str(main), overrides={str(site): planned, str(new): b"LogLevel warn\n"},
                          known_sources=first.files)

    assert second.files[str(main)] is first.files[str(main)]  # not read from disk again
    assert second.files[str(site)] is not first.files[str(site)]
    assert [d.args for d in second.active("sslusestapling")] == [["off"]]
    assert [d.args for d in second.active("loglevel")] == [["warn"]]
    # a third read of the disk as it was gives exactly the first tree, however the files' statements were kept
    assert _shape(parse_config(str(main), known_sources=second.files)) != _shape(first)  # the planned site file
    assert _shape(parse_config(str(main), known_sources=first.files)) == _shape(first)
    assert _shape(parse_config(str(main))) == _shape(first)
    assert first.warnings == parse_config(str(main), known_sources=first.files).warnings  # the <Macro> vhost note


def test_the_args_of_a_directive_are_its_own_when_statements_are_shared(tmp_path):
    main = write(tmp_path / "httpd.conf", "<IfDefine NOPE>\nSSLUseStapling on\n</IfDefine>\nLogLevel warn\n")
    first = parse_config(str(main))
    second = parse_config(str(main), known_sources=first.files)
    inactive = [d for d in first.directives if d.name == "SSLUseStapling"][0]
    inactive.args.append("changed")
    assert [d.args for d in second.directives if d.name == "SSLUseStapling"] == [["on"]]
    assert [d.active for d in second.directives if d.name == "SSLUseStapling"] == [False]
