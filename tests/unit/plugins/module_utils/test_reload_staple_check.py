# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The staple check a survived reload makes never fails that reload: what stops it is reported as not checked.
(Its real run, against the lab's Apache, is in the integration tests of the playbooks.)"""

from __future__ import annotations

from ansible_collections.fleet.stapling.plugins.module_utils import reload_staple_check, staple_probe
from ansible_collections.fleet.stapling.plugins.module_utils.apache_host import ApacheHostError


def test_without_any_staple_client_the_check_is_not_made_and_says_why(monkeypatch):
    monkeypatch.setattr(staple_probe, "staple_client", lambda: None)

    def host():
        raise AssertionError("the host is not read when no client can ask for a staple")

    found = reload_staple_check.check_staples(host, 3.0, 10.0)
    assert found["checked"] is False
    assert found["problem"] == staple_probe.NO_CLIENT_MESSAGE
    assert found["stapled"] == [] and found["summary"] is None


def test_a_host_that_cannot_be_read_now_is_reported_not_raised(monkeypatch):
    monkeypatch.setattr(staple_probe, "staple_client", lambda: staple_probe.OPENSSL_CLI)

    def host():
        raise ApacheHostError("cannot run /usr/sbin/apache2ctl -V: gone")

    found = reload_staple_check.check_staples(host, 3.0, 10.0)
    assert found["checked"] is False
    assert found["problem"] == "the staples were not checked after the reload: cannot run /usr/sbin/apache2ctl -V: gone"


def test_bad_settings_are_reported_not_raised(monkeypatch):
    monkeypatch.setattr(staple_probe, "staple_client", lambda: staple_probe.OPENSSL_CLI)
    found = reload_staple_check.check_staples(lambda: None, 0, 10.0)
    assert found["checked"] is False
    assert "timeout must be a positive number" in found["problem"]
