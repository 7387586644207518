# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.fleet.stapling.plugins.module_utils import apache_host, stapling_change, stapling_plan
from ansible_collections.fleet.stapling.tests.unit.plugins.module_utils.certificate_factory import TestCA, pem


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


def test_a_real_run_reports_the_config_as_written_not_as_first_read(tmp_path):
    ca = TestCA()
    (tmp_path / "site.pem").write_bytes(pem(ca.leaf("site.test", "http://ocsp.test/")) + ca.pem)
    main = tmp_path / "httpd.conf"
    main.write_text("LoadModule ssl_module x\nLoadModule socache_shmcb_module y\nSSLStaplingCache shmcb:/run/s(128000)\n"
                    "SSLUseStapling on\n<VirtualHost *:443>\nServerName site.test\nSSLEngine on\n"
                    "SSLCertificateFile %s\n</VirtualHost>\n" % (tmp_path / "site.pem"))
    host = apache_host.ApacheHost(["apachectl"], str(main), str(tmp_path), None, None, {})
    before = host.parse()
    result = stapling_change.change_stapling(host, stapling_plan.Desired(state="disabled"), run=lambda c: (0, "", ""),
                                             check_mode=False)
    assert result["changed"] and b"SSLUseStapling off" in main.read_bytes()
    assert host.parse() is not before
    (vhost,) = result["stapling"]["vhosts"]
    assert vhost["stapling"] is False and vhost["certificate"]["ocsp_url"] == "http://ocsp.test/"


def test_many_switched_vhosts_give_the_first_five_as_targets_quickly():
    vhosts = [vhost("v%d.test" % n, "*:443") for n in range(20000)]
    assert [t["server_name"] for t in stapling_change.check_targets(vhosts, [v["id"] for v in vhosts[10:]])] == [
        "v%d.test" % n for n in range(10, 15)]
