# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.fleet.stapling.plugins.module_utils import stapling_change


def vhost(name, address):
    return {"id": "%s (/x.conf:1)" % name, "server_name": name, "addresses": [address]}


def test_the_check_after_a_reload_goes_to_the_switched_vhosts_on_loopback_for_wildcards():
    vhosts = [vhost("a.test", "*:443"), vhost("b.test", "[::]:8443"), vhost("c.test", "192.0.2.7:443")]
    targets = stapling_change.check_targets(vhosts, ["b.test (/x.conf:1)", "c.test (/x.conf:1)"])
    assert targets == [{"address": "::1", "port": 8443, "server_name": "b.test"},
                       {"address": "192.0.2.7", "port": 443, "server_name": "c.test"}]


def test_without_a_switched_vhost_the_first_one_is_checked_and_at_most_five_ever():
    vhosts = [vhost("v%d.test" % n, "_default_:443") for n in range(9)]
    assert stapling_change.check_targets(vhosts, []) == [
        {"address": "127.0.0.1", "port": 443, "server_name": "v0.test"}]
    assert len(stapling_change.check_targets(vhosts, [v["id"] for v in vhosts])) == 5
    assert stapling_change.check_targets([], []) == []
