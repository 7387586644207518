# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.fleet.stapling.plugins.module_utils.apache_host import split_command


def argv(command):
    """A command given as a shell-quoted string (or already a list) as the argument list the modules would run, so
    that a task can run it with the command module's ``argv`` and no string is ever put together into a command."""
    try:
        return split_command(command)
    except ValueError as exc:
        raise AnsibleFilterError("argv: %r cannot be split into arguments: %s" % (command, exc))


class FilterModule(object):
    def filters(self):
        return {"argv": argv}
