# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.fleet.stapling.plugins.module_utils.stapling_plan import derive_cache


def stapling_cache(session_cache, vhost_count, server_root="/"):
    """The SSLStaplingCache the collection would derive: same kind and directory as SSLSessionCache."""
    try:
        count = int(vhost_count)
    except (TypeError, ValueError):
        raise AnsibleFilterError("stapling_cache: the vhost count must be a number, got %r" % (vhost_count,))
    return derive_cache(server_root, session_cache or None, count)


class FilterModule(object):
    def filters(self):
        return {"stapling_cache": stapling_cache}
