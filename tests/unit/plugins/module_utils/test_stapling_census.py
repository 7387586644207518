# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.fleet.stapling.plugins.module_utils import stapling_census, stapling_facts
from ansible_collections.fleet.stapling.plugins.module_utils.apache_config import parse_config
from ansible_collections.fleet.stapling.tests.unit.plugins.module_utils.certificate_factory import TestCA, pem

LETS_ENCRYPT = "CN=R11,O=Let's Encrypt,C=US"
DIGICERT = "CN=DigiCert Global G2 TLS RSA SHA256 2020 CA1,O=DigiCert Inc,C=US"


def vhost(issuer=LETS_ENCRYPT, fingerprint="aa", ocsp_url=None, must_staple=False, stapling=True, force_url=None):
    return {"stapling": stapling, "force_url": force_url,
            "certificate": {"issuer": issuer, "serial": fingerprint.upper(), "sha1_fingerprint": fingerprint,
                            "ocsp_url": ocsp_url, "must_staple": must_staple}}


def by_issuer(census):
    return {entry["issuer"]: entry for entry in census["issuers"]}


def test_a_certificate_shared_by_vhosts_counts_once_while_each_vhost_counts():
    census = stapling_census.host_census([
        vhost(fingerprint="aa"), vhost(fingerprint="aa", stapling=False), vhost(fingerprint="bb"),
    ])
    assert by_issuer(census)["R11"] == {
        "issuer": "R11", "certificates": 2, "with_ocsp_url": 0, "must_staple": 0, "vhosts": 3,
        "vhosts_stapling": 2, "vhosts_stapling_without_ocsp_url": 2}
    assert (census["vhosts"], census["vhosts_stapling"]) == (3, 2)


def test_a_mixed_host_is_split_per_issuing_ca_sorted_by_name():
    census = stapling_census.host_census([
        vhost(LETS_ENCRYPT, "aa"),
        vhost(DIGICERT, "cc", ocsp_url="http://ocsp.digicert.com", must_staple=True),
        vhost(DIGICERT, "dd", ocsp_url="http://ocsp.digicert.com", stapling=False),
    ])
    assert [entry["issuer"] for entry in census["issuers"]] == ["DigiCert Global G2 TLS RSA SHA256 2020 CA1", "R11"]
    digicert = census["issuers"][0]
    assert (digicert["certificates"], digicert["with_ocsp_url"], digicert["must_staple"]) == (2, 2, 1)
    assert (digicert["vhosts"], digicert["vhosts_stapling"], digicert["vhosts_stapling_without_ocsp_url"]) == (2, 1, 0)
    assert census["stapling_configured"] and not census["stapling_serves_nothing"]


def test_stapling_on_only_for_certificates_without_ocsp_url_serves_nothing():
    census = stapling_census.host_census([
        vhost(LETS_ENCRYPT, "aa"),
        vhost(DIGICERT, "cc", ocsp_url="http://ocsp.digicert.com", stapling=False),
    ])
    assert census["stapling_configured"] and census["stapling_serves_nothing"]


def test_a_forced_responder_url_makes_a_certificate_without_ocsp_url_staplable():
    census = stapling_census.host_census([vhost(force_url="http://ocsp.internal/")])
    assert not census["stapling_serves_nothing"]
    assert by_issuer(census)["R11"]["vhosts_stapling_without_ocsp_url"] == 0


def test_a_host_without_stapling_is_neither_configured_nor_serving_nothing():
    census = stapling_census.host_census([vhost(stapling=False), vhost(fingerprint="bb", stapling=False)])
    assert (census["stapling_configured"], census["stapling_serves_nothing"]) == (False, False)


def test_unreadable_certificates_are_counted_apart_and_cannot_be_stapled():
    unreadable = {"stapling": True, "force_url": None, "certificate": None, "certificate_error": "no such file"}
    census = stapling_census.host_census([unreadable])
    assert census["issuers"] == []
    assert (census["vhosts"], census["vhosts_unknown_certificate"], census["vhosts_stapling"]) == (1, 1, 1)
    assert census["stapling_serves_nothing"]


def test_an_empty_host_has_an_empty_census():
    assert stapling_census.host_census([]) == {
        "issuers": [], "vhosts": 0, "vhosts_stapling": 0, "vhosts_unknown_certificate": 0,
        "stapling_configured": False, "stapling_serves_nothing": False}


def test_issuer_is_named_by_its_common_name_with_escapes_undone():
    assert stapling_census.issuer_name("CN=Acme\\, Inc. CA,O=Acme\\, Inc.,C=US") == "Acme, Inc. CA"
    assert stapling_census.issuer_name("O=Org Only CA,C=DE") == "O=Org Only CA,C=DE"
    assert stapling_census.issuer_name("2.5.4.3=Dotted CA") == "Dotted CA"
    assert stapling_census.issuer_name(None) == "unknown"


def test_census_of_a_parsed_config_counts_real_certificates(tmp_path):
    alpha, beta = TestCA("Alpha CA"), TestCA("Beta CA")
    served = {
        "with-url": alpha.leaf("with-url.test", "http://ocsp.alpha.test/"),
        "must-staple": alpha.leaf("must-staple.test", "http://ocsp.alpha.test/", must_staple=True),
        "without-url": beta.leaf("without-url.test"),
    }
    blocks = []
    for name, leaf in served.items():
        cert = tmp_path / (name + ".pem")
        cert.write_bytes(pem(leaf))
        blocks.append("<VirtualHost *:443>\nServerName %s.test\nSSLEngine on\nSSLCertificateFile %s\n</VirtualHost>\n"
                      % (name, cert))
    # a second vhost serving the certificate without URL, stapling switched off for it alone
    blocks.append("<VirtualHost *:443>\nServerName www.without-url.test\nSSLEngine on\nSSLUseStapling off\n"
                  "SSLCertificateFile %s\n</VirtualHost>\n" % (tmp_path / "without-url.pem"))
    main = tmp_path / "httpd.conf"
    main.write_text("LoadModule ssl_module x\nSSLUseStapling on\n" + "".join(blocks))

    census = stapling_census.host_census(stapling_facts.stapling_facts(parse_config(str(main)))["vhosts"])

    assert by_issuer(census) == {
        "Alpha CA": {"issuer": "Alpha CA", "certificates": 2, "with_ocsp_url": 2, "must_staple": 1, "vhosts": 2,
                     "vhosts_stapling": 2, "vhosts_stapling_without_ocsp_url": 0},
        "Beta CA": {"issuer": "Beta CA", "certificates": 1, "with_ocsp_url": 0, "must_staple": 0, "vhosts": 2,
                    "vhosts_stapling": 1, "vhosts_stapling_without_ocsp_url": 1},
    }
    assert (census["vhosts"], census["vhosts_stapling"], census["stapling_serves_nothing"]) == (4, 3, False)
