# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.fleet.stapling.plugins.module_utils import stapling_facts
from ansible_collections.fleet.stapling.plugins.module_utils.apache_config import parse_config
from ansible_collections.fleet.stapling.tests.unit.plugins.module_utils.certificate_factory import TestCA, pem


def facts_for(tmp_path, server_lines, vhost_count=2, chain=True, ca_file=False):
    ca = TestCA()
    vhosts = []
    for number in range(vhost_count):
        leaf = ca.leaf("site%d.test" % number, "http://ocsp.test/")
        cert = tmp_path / ("site%d.pem" % number)
        cert.write_bytes(pem(leaf) + (ca.pem if chain else b""))
        vhosts.append("<VirtualHost *:443>\nServerName site%d.test\nSSLEngine on\nSSLCertificateFile %s\n</VirtualHost>\n"
                      % (number, cert))
    if ca_file:
        (tmp_path / "bundle.pem").write_bytes(ca.pem)
        server_lines = server_lines + ["SSLCACertificateFile %s" % (tmp_path / "bundle.pem")]
    main = tmp_path / "httpd.conf"
    main.write_text("LoadModule ssl_module x\nLoadModule socache_shmcb_module y\n" + "\n".join(server_lines) + "\n"
                    + "".join(vhosts))
    return stapling_facts.stapling_facts(parse_config(str(main)))


def codes(facts):
    return sorted(finding["code"] for finding in facts["findings"])


def test_apache_defaults_are_flagged_when_stapling_is_on(tmp_path):
    facts = facts_for(tmp_path, ["SSLUseStapling on", "SSLStaplingCache shmcb:/run/s(128000)"])
    assert codes(facts) == ["fake_try_later", "long_responder_timeout"]


def test_hardened_settings_raise_nothing(tmp_path):
    facts = facts_for(tmp_path, ["SSLUseStapling on", "SSLStaplingCache shmcb:/run/s(128000)",
                                 "SSLStaplingReturnResponderErrors off", "SSLStaplingFakeTryLater off",
                                 "SSLStaplingResponderTimeout 3"])
    assert codes(facts) == []


def test_a_cache_too_small_for_the_vhosts_is_flagged(tmp_path):
    facts = facts_for(tmp_path, ["SSLUseStapling on", "SSLStaplingCache shmcb:/run/s(1000)",
                                 "SSLStaplingFakeTryLater off", "SSLStaplingResponderTimeout 3"], vhost_count=3)
    assert codes(facts) == ["cache_too_small"]
    assert "2700 bytes" in facts["findings"][0]["message"]


def test_stapling_without_a_cache_is_flagged(tmp_path):
    facts = facts_for(tmp_path, ["SSLUseStapling on", "SSLStaplingFakeTryLater off", "SSLStaplingResponderTimeout 3"])
    assert codes(facts) == ["no_cache"]


def test_nothing_is_flagged_when_nothing_staples(tmp_path):
    assert codes(facts_for(tmp_path, [])) == []


def test_issuer_is_told_apart_in_chain_and_in_the_ca_file(tmp_path):
    facts = facts_for(tmp_path, [], vhost_count=1, chain=False, ca_file=True)
    certificate = facts["vhosts"][0]["certificate"]
    assert (certificate["issuer_in_chain"], certificate["issuer_found"]) == (False, True)
    facts = facts_for(tmp_path, [], vhost_count=1, chain=False)
    assert facts["vhosts"][0]["certificate"]["issuer_found"] is False


def test_vhost_reports_where_its_stapling_is_decided(tmp_path):
    facts = facts_for(tmp_path, ["SSLUseStapling on", "SSLStaplingCache shmcb:/run/s(128000)"], vhost_count=1)
    vhost = facts["vhosts"][0]
    assert (vhost["stapling"], vhost["stapling_decided_by"], vhost["stapling_directive"]["line"]) == (True, "server", 3)
    assert vhost["server_name"] == "site0.test" and vhost["certificate"]["ocsp_url"] == "http://ocsp.test/"


def test_certificates_seen_in_one_read_are_not_read_again_in_the_next(tmp_path):
    main = tmp_path / "httpd.conf"
    facts_for(tmp_path, [])
    seen = {}
    first = stapling_facts.stapling_facts(parse_config(str(main)), seen_certificates=seen)
    for number in range(2):
        (tmp_path / ("site%d.pem" % number)).unlink()
    again = stapling_facts.stapling_facts(parse_config(str(main)), seen_certificates=seen)
    assert [v["certificate"] for v in again["vhosts"]] == [v["certificate"] for v in first["vhosts"]]
    assert all(v["certificate"]["issuer_in_chain"] for v in again["vhosts"])
    unseen = stapling_facts.stapling_facts(parse_config(str(main)))
    assert all(v["certificate_error"] for v in unseen["vhosts"])
