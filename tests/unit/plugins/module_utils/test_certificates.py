# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import datetime

import pytest

from ansible_collections.fleet.stapling.plugins.module_utils import certificates
from ansible_collections.fleet.stapling.tests.unit.plugins.module_utils.certificate_factory import TestCA, der, pem


def test_certificate_facts_read_ocsp_url_and_must_staple(tmp_path):
    ca = TestCA()
    leaf = ca.leaf("shop.test", "http://ocsp.test/", must_staple=True)
    path = tmp_path / "chain.pem"
    path.write_bytes(pem(leaf) + ca.pem)
    chain = certificates.load_certificates(str(path))
    facts = certificates.describe(chain[0])
    assert (facts["ocsp_url"], facts["must_staple"], facts["subject"]) == ("http://ocsp.test/", True, "CN=shop.test")
    assert certificates.find_issuer(chain[0], chain[1:]) is chain[1]


def test_certificate_without_ocsp_url_says_none(tmp_path):
    facts = certificates.describe(TestCA().leaf("new.test"))
    assert (facts["ocsp_url"], facts["must_staple"]) == (None, False)


def test_der_certificate_is_read(tmp_path):
    path = tmp_path / "ca.der"
    ca = TestCA()
    path.write_bytes(der(ca.certificate))
    assert certificates.load_certificates(str(path))[0].subject == ca.certificate.subject


def test_garbage_is_a_clear_error_naming_the_file(tmp_path):
    path = tmp_path / "broken.pem"
    path.write_bytes(b"<html>not a certificate</html>")
    with pytest.raises(certificates.CertificateError, match="broken.pem holds no readable certificate"):
        certificates.load_certificates(str(path))


def test_issuer_is_not_found_among_strangers():
    leaf = TestCA("A").leaf("x.test")
    assert certificates.find_issuer(leaf, [TestCA("B").certificate]) is None


def test_ca_problem_tells_a_server_certificate_from_a_ca():
    ca = TestCA()
    assert certificates.ca_problem(ca.certificate) is None
    assert certificates.ca_problem(ca.leaf("shop.test")) == "not a CA certificate"


def test_ca_problem_names_an_expired_ca():
    ca = TestCA()
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=400)
    assert certificates.ca_problem(ca.certificate, now=later).startswith("expired on ")
