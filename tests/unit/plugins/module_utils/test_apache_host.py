# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest

from ansible_collections.fleet.stapling.plugins.module_utils import apache_host
from ansible_collections.fleet.stapling.plugins.module_utils.apache_config import parse_config

DASH_V = """Server version: Apache/2.4.62 (Debian)
Server built:   2024-07-01T00:00:00
Server compiled with....
 -D APR_HAS_SENDFILE
 -D HTTPD_ROOT="/etc/apache2"
 -D SERVER_CONFIG_FILE="apache2.conf"
"""

DASH_M = """Loaded Modules:
 core_module (static)
 so_module (static)
 version_module (static)
 mpm_event_module (shared)
 ssl_module (shared)
"""


def test_compile_settings_and_version_come_from_ctl_v():
    settings, version = apache_host.parse_compile_settings(DASH_V)
    assert settings["HTTPD_ROOT"] == "/etc/apache2"
    assert settings["SERVER_CONFIG_FILE"] == "apache2.conf"
    assert settings["APR_HAS_SENDFILE"] is True
    assert version == (2, 4, 62)


def test_only_static_modules_are_taken_from_ctl_m():
    assert apache_host.parse_static_modules(DASH_M) == ["core_module", "so_module", "version_module"]


DASH_L = """Compiled in modules:
  core.c
  mod_so.c
  http_core.c
  mod_version.c
"""


def test_compiled_in_modules_come_from_ctl_l_and_anything_else_is_not_that_list():
    assert apache_host.parse_compiled_in(DASH_L) == ["core.c", "mod_so.c", "http_core.c", "mod_version.c"]
    assert apache_host.parse_compiled_in(DASH_V) is None
    assert apache_host.parse_compiled_in("") is None


def test_static_modules_are_asked_with_ctl_l_which_reads_no_config(tmp_path):
    calls = []

    def run(command):
        calls.append(command[-1])
        return {"-V": (0, DASH_V.replace("/etc/apache2", str(tmp_path)), ""), "-l": (0, DASH_L, "")}[command[-1]]

    (tmp_path / "apache2.conf").write_text("LogLevel warn\n")
    host = apache_host.discover(run, "apache2ctl")
    assert calls == ["-V", "-l"]
    assert host.static_modules == ["core.c", "mod_so.c", "http_core.c", "mod_version.c"]
    assert host.parse().has_module("version") and not host.parse().has_module("ssl")


@pytest.mark.parametrize("answer_to_l", [(1, "", "unknown option -l"), (0, DASH_V, "")])
def test_a_ctl_that_does_not_pass_l_on_is_asked_ctl_m(answer_to_l):
    def run(command):
        return {"-l": answer_to_l, "-M": (0, DASH_M, "")}[command[-1]]

    assert apache_host.static_modules(run, ["apachectl"]) == ["core_module", "so_module", "version_module"]
    assert apache_host.static_modules(lambda command: (1, "", "no"), ["apachectl"]) is None


def test_the_tree_on_disk_is_read_once_until_it_is_forgotten(tmp_path):
    main = tmp_path / "httpd.conf"
    main.write_text("LogLevel warn\n")
    host = apache_host.ApacheHost(["apachectl"], str(main), str(tmp_path), None, None, {})
    first = host.parse()
    main.write_text("LogLevel debug\n")
    assert host.parse() is first
    assert host.parse({str(main): b"LogLevel info\n"}).server_value("LogLevel") == "info"  # planned contents
    host.forget_parsed()
    assert host.parse().server_value("LogLevel") == "debug"


def test_discover_prefers_d_and_f_given_in_the_ctl_command(tmp_path):
    main = tmp_path / "conf" / "httpd.conf"
    main.parent.mkdir()
    main.write_text("LogLevel warn\n")
    calls = []

    def run(command):
        calls.append(command)
        return (0, DASH_V, "") if command[-1] == "-V" else (0, DASH_M, "")

    host = apache_host.discover(run, "/usr/sbin/apache2 -d %s -f %s" % (tmp_path, main))
    assert (host.server_root, host.config_file, host.version_string) == (str(tmp_path), str(main), "2.4.62")
    assert calls[0] == ["/usr/sbin/apache2", "-d", str(tmp_path), "-f", str(main), "-V"]


def test_discover_explains_a_missing_main_config(tmp_path):
    def run(command):
        return 0, DASH_V.replace("/etc/apache2", str(tmp_path)), ""

    with pytest.raises(apache_host.ApacheHostError, match="does not exist; set config_file"):
        apache_host.discover(run, "apache2ctl")


def test_discover_reports_a_failing_ctl():
    with pytest.raises(apache_host.ApacheHostError, match="failed"):
        apache_host.discover(lambda command: (127, "", "not found"), "/nowhere/apachectl")


def test_pid_file_comes_from_pidfile_or_the_compiled_default(tmp_path):
    main = tmp_path / "httpd.conf"
    main.write_text("ServerRoot %s\n" % tmp_path)
    host = apache_host.ApacheHost(["apachectl"], str(main), str(tmp_path), None, None, {"DEFAULT_PIDLOG": "run/httpd.pid"})
    assert host.pid_file(parse_config(str(main))) == str(tmp_path / "run" / "httpd.pid")
    main.write_text("ServerRoot %s\nPidFile /var/run/apache2/apache2.pid\n" % tmp_path)
    assert host.pid_file(parse_config(str(main))) == "/var/run/apache2/apache2.pid"


def test_the_running_master_is_read_from_the_pid_file_and_must_exist(tmp_path):
    config = type("Config", (), {"server_root": str(tmp_path), "server_value": lambda self, name: "run/httpd.pid"})()
    host = apache_host.ApacheHost.__new__(apache_host.ApacheHost)
    host.compile_settings = {}
    (tmp_path / "run").mkdir()

    assert host.master_pid(config) is None  # no pid file: nothing runs
    (tmp_path / "run" / "httpd.pid").write_text("%d\n" % os.getpid())
    assert host.master_pid(config) == os.getpid()
    (tmp_path / "run" / "httpd.pid").write_text("4194304999\n")  # above any pid the kernel gives
    assert host.master_pid(config) is None
