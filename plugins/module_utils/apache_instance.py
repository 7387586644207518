# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One description of an Apache instance: how to drive it, which layout it follows, where our settings go.

The layout is read from what the parsed configuration includes, not from which directories exist: cPanel's
main config includes its hand-editable ``pre_virtualhost_global.conf``, Debian's includes the a2enconf and
a2ensite directories (``conf-enabled/``, ``sites-enabled/``), and everything else is treated like RHEL (one
main config and a ``conf.d/``).

A cPanel-shaped tree is not proof of cPanel. Only a real install (``/usr/local/cpanel``) or the banner
cPanel writes at the top of the ``httpd.conf`` it generates makes that file off limits; on a host that merely
looks like cPanel, httpd.conf is edited like any other file.
"""

from __future__ import annotations

import os
import shlex

from ansible_collections.fleet.stapling.plugins.module_utils import apache_config, stapling_facts

LAYOUTS = ("debian", "rhel", "cpanel")
CPANEL_ROOT = "/usr/local/cpanel"
CPANEL_RESTART_SCRIPT = "scripts/restartsrv_httpd"
CPANEL_REBUILD_SCRIPT = "scripts/rebuildhttpdconf"
CPANEL_OVERRIDE_FILE = "pre_virtualhost_global.conf"
# Words of the comment block cPanel puts at the top of the httpd.conf it generates from its templates.
CPANEL_BANNER_MARKS = (b"/var/cpanel/templates/apache", b"apache_conf_distiller")
BANNER_LINES = 40
# The file the collection keeps its own server-scope settings in, where the layout has a place for one.
SETTINGS_FILE = "fleet-stapling.conf"
# Where each layout keeps CA bundles; when that directory is missing, bundles go under ServerRoot.
BUNDLE_DIRS = {"debian": "/etc/ssl/certs", "rhel": "/etc/pki/tls/certs"}
_DEBIAN_INCLUDE_DIRS = ("conf-enabled", "sites-enabled")


def _includes(config):
    return config.derived("include_targets", _resolve_includes)


def _resolve_includes(config):
    return [stapling_facts.resolve_path(config, d.first_arg(""))
            for d in config.active("include") + config.active("includeoptional")]


def cpanel_override_file(config):
    """cPanel's hand-editable include for global settings, when the config includes one."""
    for target in _includes(config):
        if os.path.basename(target) == CPANEL_OVERRIDE_FILE:
            return target
    return None


def layout_of(config):
    """"cpanel", "debian" or "rhel", from the Include lines of the parsed config."""
    return config.derived("layout", _layout)


def _layout(config):
    if cpanel_override_file(config):
        return "cpanel"
    for target in _includes(config):
        if any(part in _DEBIAN_INCLUDE_DIRS for part in target.split(os.sep)):
            return "debian"
    return "rhel"


def has_cpanel_banner(main_file_bytes):
    head = b"".join(main_file_bytes.splitlines(True)[:BANNER_LINES])
    return any(mark in head for mark in CPANEL_BANNER_MARKS)


def generated_by_cpanel(config, cpanel_root=CPANEL_ROOT):
    """True when cPanel regenerates the main config: a real cPanel install, or the banner of its generator."""
    if os.path.isdir(cpanel_root):
        return True
    source = config.files.get(config.main_file)
    # the banner is at the top: the first lines, not the whole file (megabytes on a host with thousands of vhosts)
    return bool(source) and has_cpanel_banner(b"".join(source.lines[:BANNER_LINES]))


def is_included(config, path):
    """Whether a file at ``path`` would be read: some Include names it or has a wildcard that matches it."""
    for target in _includes(config):
        if target == path or apache_config.glob_path_matches(path, target):
            return True
        if os.path.isdir(target) and os.path.dirname(path) == target:
            return True
    return False


def settings_location(config):
    """(file, link) for the collection's own server-scope settings on this layout, or None where it has none.

    Debian: a conf-available file enabled by a conf-enabled link, the a2enconf way (link is that link's
    path). RHEL: a file in conf.d. cPanel: the hand-editable global include. Anything else: None, and new
    server-scope lines go beside what the config already has.
    """
    layout = layout_of(config)
    root = config.server_root
    if layout == "cpanel":
        return cpanel_override_file(config), None
    if layout == "debian":
        link = os.path.join(root, "conf-enabled", SETTINGS_FILE)
        if is_included(config, link) and os.path.isdir(os.path.join(root, "conf-available")):
            return os.path.join(root, "conf-available", SETTINGS_FILE), link
        return None
    candidate = os.path.join(root, "conf.d", SETTINGS_FILE)
    return (candidate, None) if is_included(config, candidate) else None


def ca_bundle_dir(layout, server_root, is_dir=os.path.isdir):
    usual = BUNDLE_DIRS.get(layout)
    return usual if usual and is_dir(usual) else os.path.join(server_root, "ssl")


def describe(host, config, is_executable=None, is_dir=os.path.isdir):
    """What a role or playbook needs to drive the instance, as plain data (commands as shell-quoted strings)."""
    is_executable = is_executable or (lambda path: os.access(path, os.X_OK))
    layout = layout_of(config)
    restart_script = os.path.join(host.cpanel_root, CPANEL_RESTART_SCRIPT)
    if layout == "cpanel" and is_executable(restart_script):
        reload_command = [restart_script]
    else:
        reload_command = host.ctl + ["graceful"]
    return {
        "ctl": shlex.join(host.ctl),
        "config_file": host.config_file,
        "server_root": config.server_root,
        "layout": layout,
        "reload_command": shlex.join(reload_command),
        "start_command": shlex.join(host.ctl + ["start"]),
        "ca_bundle_dir": ca_bundle_dir(layout, config.server_root, is_dir),
        "generated_main_config": layout == "cpanel" and generated_by_cpanel(config, host.cpanel_root),
    }
