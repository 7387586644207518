# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509.oid import SignatureAlgorithmOID

from ansible_collections.fleet.stapling.plugins.module_utils import certificates, signatures
from ansible_collections.fleet.stapling.tests.unit.plugins.module_utils.certificate_factory import (
    KEY_TYPES,
    TestCA,
    der,
    pem,
    pss_certificate,
)


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


# ------------------------------------------------------------------------- cryptography floor and fallbacks


@pytest.mark.parametrize("found", ["3.3.2", "3.4", "2.8", "1.0.0"])
def test_cryptography_older_than_the_floor_is_a_problem_naming_both_versions(found):
    problem = certificates.cryptography_problem(found)
    assert problem is not None
    assert "cryptography %s is too old" % found in problem and ">= 3.4.8" in problem


@pytest.mark.parametrize("found", ["3.4.8", "3.4.9", "36.0.2", "42.0.0rc1", "50.0.2", "100.0.0.dev1"])
def test_cryptography_at_or_above_the_floor_is_fine(found):
    assert certificates.cryptography_problem(found) is None


def test_the_cryptography_these_tests_run_with_is_usable():
    assert certificates.cryptography_problem() is None


class WithoutIssuerCheck(object):
    """A certificate as cryptography before 40 shows it: no ``verify_directly_issued_by``."""

    def __init__(self, certificate):
        self._certificate = certificate

    def __getattr__(self, name):
        if name == "verify_directly_issued_by":
            raise AttributeError(name)
        return getattr(self._certificate, name)


def native_answer(certificate, issuer):
    """What cryptography >= 40 says about the issuer, or None where it cannot say."""
    if not hasattr(certificate, "verify_directly_issued_by"):
        return None
    try:
        certificate.verify_directly_issued_by(issuer)
    except Exception:  # pylint: disable=broad-except
        return False  # any refusal counts as "not issued by"
    return True


ISSUERS = [(key_type, False) for key_type in KEY_TYPES] + [("rsa-pss", True)]
ISSUER_IDS = ["%s%s" % (key_type, " by hand" if by_hand else "") for key_type, by_hand in ISSUERS]


@pytest.mark.parametrize("key_type, by_hand", ISSUERS, ids=ISSUER_IDS)
def test_issuer_is_found_with_and_without_verify_directly_issued_by(key_type, by_hand):
    ca = TestCA("Issuer %s" % key_type, key_type=key_type, pss_by_hand=by_hand)
    leaf = ca.leaf("shop.test")
    assert certificates.is_issued_by(leaf, ca.certificate)
    assert certificates.is_issued_by(WithoutIssuerCheck(leaf), ca.certificate)
    assert certificates.find_issuer(WithoutIssuerCheck(leaf), [TestCA("Other").certificate, ca.certificate]) \
        is ca.certificate
    assert native_answer(leaf, ca.certificate) in (True, None)


@pytest.mark.parametrize("key_type, by_hand", ISSUERS, ids=ISSUER_IDS)
def test_impostor_with_the_same_name_is_refused_with_and_without_verify_directly_issued_by(key_type, by_hand):
    ca = TestCA("Issuer %s" % key_type, key_type=key_type, pss_by_hand=by_hand)
    impostor = TestCA("Issuer %s" % key_type, key_type=key_type, pss_by_hand=by_hand)
    leaf = ca.leaf("shop.test")
    assert leaf.issuer == impostor.certificate.subject
    assert not certificates.is_issued_by(leaf, impostor.certificate)
    assert not certificates.is_issued_by(WithoutIssuerCheck(leaf), impostor.certificate)
    assert certificates.find_issuer(WithoutIssuerCheck(leaf), [impostor.certificate]) is None
    assert native_answer(leaf, impostor.certificate) in (False, None)


@pytest.mark.parametrize("hash_algorithm, salt_length, mgf_hash", [
    (hashes.SHA256(), 32, None),
    (hashes.SHA256(), 0, None),
    (hashes.SHA384(), 200, None),
    (hashes.SHA512(), 64, hashes.SHA256()),
    (hashes.SHA256(), 32, hashes.SHA1()),
])
def test_pss_parameters_are_read_from_the_certificate(hash_algorithm, salt_length, mgf_hash):
    ca = TestCA("PSS CA", key_type="rsa")
    builder = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca.certificate.subject)
               .public_key(ca.key.public_key()).serial_number(7)
               .not_valid_before(datetime.datetime(2025, 1, 1)).not_valid_after(datetime.datetime(2035, 1, 1)))
    signed = pss_certificate(builder, ca.key, hash_algorithm, salt_length, mgf_hash, by_hand=True)
    found_hash, (found_mgf_hash, found_salt) = signatures.signature_parameters(signed)
    assert (found_hash.name, found_mgf_hash.name, found_salt) == \
        (hash_algorithm.name, (mgf_hash or hash_algorithm).name, salt_length)
    assert certificates.is_issued_by(WithoutIssuerCheck(signed), ca.certificate)
    assert native_answer(signed, ca.certificate) in (True, None)
    impostor = TestCA("PSS CA", key_type="rsa")
    assert not certificates.is_issued_by(WithoutIssuerCheck(signed), impostor.certificate)


@pytest.mark.parametrize("parameters", [b"", b"\x30\x00"], ids=["absent", "empty"])
def test_pss_parameters_left_out_take_the_rfc_4055_defaults(parameters):
    pss_oid = bytes.fromhex("06092a864886f70d01010a")  # 1.2.840.113549.1.1.10
    hash_algorithm, mgf_hash, salt_length = signatures._pss_parameters(pss_oid + parameters)
    assert (hash_algorithm.name, mgf_hash.name, salt_length) == ("sha1", "sha1", 20)


@pytest.mark.parametrize("garbage", [b"\x30", b"\x30\x05\x06", b"\x30\x85\x01\x02\x03\x04\x05\x00"])
def test_broken_der_is_a_value_error(garbage):
    with pytest.raises(ValueError):
        signatures._der_elements(garbage)


@pytest.mark.parametrize("salt_length", [32, "max"])
def test_pss_without_parameters_or_auto_tries_the_usual_salt_lengths(monkeypatch, salt_length):
    ca = TestCA("PSS CA", key_type="rsa")
    data = b"to be signed"
    salt = padding.PSS.MAX_LENGTH if salt_length == "max" else salt_length
    signature = ca.key.sign(data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt), hashes.SHA256())
    monkeypatch.delattr(padding.PSS, "AUTO", raising=False)  # as before cryptography 37
    pss_oid = SignatureAlgorithmOID.RSASSA_PSS
    signatures.verify_signature(ca.key.public_key(), signature, data, hashes.SHA256(), pss_oid)
    with pytest.raises(InvalidSignature):
        signatures.verify_signature(TestCA("PSS CA", key_type="rsa").key.public_key(), signature, data,
                                    hashes.SHA256(), pss_oid)


def test_pem_blocks_are_found_in_order_between_other_text():
    ca = TestCA()
    first, second = pem(ca.leaf("a.test")), ca.pem
    text = b"subject=CN = a.test\n" + first + b"# the issuer\n" + second + b"-----BEGIN CERTIFICATE-----\nnever ended\n"
    assert certificates.pem_blocks(text) == [first.strip(), second.strip()]
    assert certificates.pem_blocks(b"no certificate here") == []


def test_the_reader_gives_what_load_certificates_gives(tmp_path):
    ca = TestCA()
    chain_file = tmp_path / "chain.pem"
    chain_file.write_bytes(pem(ca.leaf("shop.test", "http://ocsp.test/")) + ca.pem)
    der_file = tmp_path / "leaf.der"
    der_file.write_bytes(der(ca.leaf("der.test")))
    reader = certificates.CertificateReader()
    for path in (str(chain_file), str(der_file)):
        assert reader.certificate_file(path) == certificates.load_certificates(path)
        assert reader.shared_file(path) == certificates.load_certificates(path)


def test_the_reader_parses_an_intermediate_once_however_many_files_carry_it(tmp_path):
    ca = TestCA()
    reader = certificates.CertificateReader()
    chains = []
    for name in ("a.test", "b.test"):
        path = tmp_path / ("%s.pem" % name)
        path.write_bytes(pem(ca.leaf(name)) + ca.pem)
        chains.append(reader.certificate_file(str(path)))
    assert chains[0][1] is chains[1][1]
    assert chains[0][0] is not chains[1][0]
    assert reader.find_issuer(chains[1][0], chains[1][1:]) is chains[1][1]


def test_the_reader_reads_a_shared_file_once_and_remembers_its_error(tmp_path):
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(TestCA().pem)
    broken = tmp_path / "broken.pem"
    broken.write_bytes(b"<html>not a certificate</html>")
    reader = certificates.CertificateReader()
    first = reader.shared_file(str(bundle))
    bundle.unlink()
    assert reader.shared_file(str(bundle)) == first
    for _attempt in range(2):
        with pytest.raises(certificates.CertificateError, match="broken.pem holds no readable certificate"):
            reader.shared_file(str(broken))


@pytest.mark.parametrize("key_type, by_hand", ISSUERS, ids=ISSUER_IDS)
def test_the_reader_finds_the_issuer_and_refuses_an_impostor_without_verify_directly_issued_by(tmp_path, key_type,
                                                                                               by_hand):
    ca = TestCA("Issuer %s" % key_type, key_type=key_type, pss_by_hand=by_hand)
    impostor = TestCA("Issuer %s" % key_type, key_type=key_type, pss_by_hand=by_hand)
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(impostor.pem + ca.pem)
    reader = certificates.CertificateReader()
    candidates = reader.shared_file(str(bundle))
    for name in ("a.test", "b.test"):  # the second leaf uses the keys loaded for the first
        leaf = WithoutIssuerCheck(ca.leaf(name))
        assert reader.find_issuer(leaf, candidates) is candidates[1]
        assert reader.find_issuer(leaf, candidates[:1]) is None


EPOCH = datetime.datetime(2024, 1, 1)


def _with_key_identifiers(ca, leaf_authority_key):
    """A CA certificate carrying its subject key identifier, and a leaf of it naming ``leaf_authority_key``."""
    from cryptography.hazmat.primitives.asymmetric import ec  # pylint: disable=import-outside-toplevel

    ca_certificate = (x509.CertificateBuilder().subject_name(ca.certificate.subject).issuer_name(ca.certificate.subject)
                      .public_key(ca.key.public_key()).serial_number(1)
                      .not_valid_before(EPOCH).not_valid_after(EPOCH + datetime.timedelta(days=3650))
                      .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca.key.public_key()), critical=False)
                      .sign(ca.key, hashes.SHA256()))
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(ca.certificate.subject).issuer_name(ca.certificate.subject)
            .public_key(leaf_key.public_key()).serial_number(2)
            .not_valid_before(EPOCH).not_valid_after(EPOCH + datetime.timedelta(days=3650))
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(leaf_authority_key), critical=False)
            .sign(ca.key, hashes.SHA256()))
    return ca_certificate, leaf


def test_finds_issuer_decides_as_httpds_lookup_does_by_name_and_key_identifiers():
    ca = TestCA("Lookup CA")
    reader = certificates.CertificateReader()
    leaf = ca.leaf("shop.test")
    # no key identifiers: the name decides, as in OpenSSL's X509_check_issued
    assert reader.finds_issuer(leaf, [TestCA("Other CA").certificate, ca.certificate])
    assert not reader.finds_issuer(leaf, [TestCA("Other CA").certificate])
    # both identifiers present: they must agree (a CA whose key was replaced under the same name is not found)
    with_ids, matching_leaf = _with_key_identifiers(ca, ca.key.public_key())
    _unused, stale_leaf = _with_key_identifiers(ca, TestCA("Lookup CA").key.public_key())
    assert reader.finds_issuer(matching_leaf, [with_ids])
    assert not reader.finds_issuer(stale_leaf, [with_ids])
