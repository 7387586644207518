# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.fleet.stapling.plugins.module_utils import apache_host, apache_instance
from ansible_collections.fleet.stapling.plugins.module_utils.apache_config import parse_config

# The lines that tell the layouts apart, each in a main config of its own (the included files may be absent).
MAIN_CONFIGS = {
    "debian": "IncludeOptional mods-enabled/*.load\nIncludeOptional conf-enabled/*.conf\n",
    "debian-sites-only": "Include ports.conf\nIncludeOptional sites-enabled/*.conf\n",
    "rhel": "IncludeOptional conf.modules.d/*.conf\nIncludeOptional conf.d/*.conf\n",
    "cpanel": 'Include "conf/includes/pre_main_global.conf"\nInclude "conf/includes/pre_virtualhost_global.conf"\n',
    "bare": "Listen 443\n",
}
EXPECTED = {"debian": "debian", "debian-sites-only": "debian", "rhel": "rhel", "cpanel": "cpanel", "bare": "rhel"}


def instance(tmp_path, name):
    for line in MAIN_CONFIGS[name].splitlines():
        keyword, _space, target = line.partition(" ")
        if keyword.lower().startswith("include"):
            included = tmp_path / target.strip('"')
            included.parent.mkdir(parents=True, exist_ok=True)
            if "*" not in included.name:
                included.write_text("")  # Include (unlike IncludeOptional) wants its file
    main = tmp_path / "httpd.conf"
    main.write_text("ServerRoot \"%s\"\n%s" % (tmp_path, MAIN_CONFIGS[name]))
    host = apache_host.ApacheHost(["/usr/sbin/apachectl", "-f", str(main)], str(main), str(tmp_path), None, None, {})
    return host, parse_config(str(main))


@pytest.mark.parametrize("name", sorted(MAIN_CONFIGS))
def test_the_layout_comes_from_what_the_config_includes(tmp_path, name):
    _host, config = instance(tmp_path, name)
    assert apache_instance.layout_of(config) == EXPECTED[name]


def test_the_description_has_the_commands_as_quoted_strings(tmp_path):
    (tmp_path / "dir with space").mkdir()
    host, config = instance(tmp_path / "dir with space", "rhel")
    described = apache_instance.describe(host, config, is_executable=lambda path: True)
    main = str(tmp_path / "dir with space" / "httpd.conf")
    assert described["layout"] == "rhel"
    assert described["ctl"] == "/usr/sbin/apachectl -f '%s'" % main
    assert described["reload_command"] == "/usr/sbin/apachectl -f '%s' graceful" % main
    assert described["start_command"] == "/usr/sbin/apachectl -f '%s' start" % main
    assert (described["config_file"], described["server_root"]) == (main, str(tmp_path / "dir with space"))


@pytest.mark.parametrize("script_there, reload_command", [
    (True, "/usr/local/cpanel/scripts/restartsrv_httpd"),
    (False, "/usr/sbin/apachectl -f {main} graceful"),
])
def test_a_cpanel_host_reloads_through_cpanels_script_when_it_has_it(tmp_path, script_there, reload_command):
    host, config = instance(tmp_path, "cpanel")
    described = apache_instance.describe(host, config, is_executable=lambda path: script_there)
    assert described["layout"] == "cpanel"
    assert described["reload_command"] == reload_command.format(main=tmp_path / "httpd.conf")


@pytest.mark.parametrize("name, settings", [
    ("debian", ("conf-available/fleet-stapling.conf", "conf-enabled/fleet-stapling.conf")),
    ("rhel", ("conf.d/fleet-stapling.conf", None)),
    ("cpanel", ("conf/includes/pre_virtualhost_global.conf", None)),
    ("bare", None),
])
def test_each_layout_has_its_own_place_for_the_collections_settings(tmp_path, name, settings):
    (tmp_path / "conf-available").mkdir()
    _host, config = instance(tmp_path, name)
    found = apache_instance.settings_location(config)
    if settings is None:
        assert found is None
    else:
        assert found == (str(tmp_path / settings[0]), str(tmp_path / settings[1]) if settings[1] else None)


@pytest.mark.parametrize("banner, generated", [
    ("# built from /var/cpanel/templates/apache2_4/main.default\n", True),
    ("# run /usr/local/cpanel/bin/apache_conf_distiller --update\n", True),
    ("# hand-made, laid out like cPanel\n", False),
])
def test_only_cpanels_own_banner_or_install_makes_the_main_config_generated(tmp_path, banner, generated):
    _host, config = instance(tmp_path, "cpanel")
    main = tmp_path / "httpd.conf"
    main.write_text(banner + main.read_text())
    config = parse_config(str(main))
    assert apache_instance.generated_by_cpanel(config, cpanel_root=str(tmp_path / "no-cpanel")) is generated
    (tmp_path / "cpanel").mkdir()
    assert apache_instance.generated_by_cpanel(config, cpanel_root=str(tmp_path / "cpanel")) is True


def test_the_ca_bundle_goes_to_the_layouts_directory_or_under_server_root():
    assert apache_instance.ca_bundle_dir("rhel", "/etc/httpd", is_dir=lambda path: True) == "/etc/pki/tls/certs"
    assert apache_instance.ca_bundle_dir("rhel", "/etc/httpd", is_dir=lambda path: False) == "/etc/httpd/ssl"
    assert apache_instance.ca_bundle_dir("cpanel", "/usr/local/apache", is_dir=lambda path: True) == \
        "/usr/local/apache/ssl"
