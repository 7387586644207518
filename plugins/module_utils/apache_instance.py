# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One description of an Apache instance: how to drive it and which distribution's layout it follows.

The layout is read from what the parsed configuration includes, not from which directories exist: cPanel's
main config includes its hand-editable ``pre_virtualhost_global.conf``, Debian's includes the a2enconf and
a2ensite directories (``conf-enabled/``, ``sites-enabled/``), and everything else is treated like RHEL (one
main config and a ``conf.d/``). The reload and start commands follow from the control command, except that a
cPanel host is restarted through cPanel's own script when it has one, so that cPanel knows of the restart.
"""

from __future__ import annotations

import os
import shlex

from ansible_collections.fleet.stapling.plugins.module_utils import stapling_facts, stapling_plan

LAYOUTS = ("debian", "rhel", "cpanel")
CPANEL_RESTART_SCRIPT = "/scripts/restartsrv_httpd"
_DEBIAN_INCLUDE_DIRS = ("conf-enabled", "sites-enabled")


def layout_of(config):
    """"cpanel", "debian" or "rhel", from the Include lines of the parsed config."""
    if stapling_plan.cpanel_override_file(config):
        return "cpanel"
    for directive in config.active("include") + config.active("includeoptional"):
        target = stapling_facts.resolve_path(config, directive.first_arg(""))
        if any(part in _DEBIAN_INCLUDE_DIRS for part in target.split(os.sep)):
            return "debian"
    return "rhel"


def describe(host, config, is_executable=None):
    """What a role or playbook needs to drive the instance, as plain data (commands as shell-quoted strings)."""
    is_executable = is_executable or (lambda path: os.access(path, os.X_OK))
    layout = layout_of(config)
    if layout == "cpanel" and is_executable(CPANEL_RESTART_SCRIPT):
        reload_command = [CPANEL_RESTART_SCRIPT]
    else:
        reload_command = host.ctl + ["graceful"]
    return {
        "ctl": shlex.join(host.ctl),
        "config_file": host.config_file,
        "server_root": config.server_root,
        "layout": layout,
        "reload_command": shlex.join(reload_command),
        "start_command": shlex.join(host.ctl + ["start"]),
    }
