"""The lab PKI: chains that verify, the extensions each kind promises, the index, and idempotent rebuilds."""

from __future__ import annotations

import datetime
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from fleetlab import pki

URL = "http://127.0.0.1:9/"


def load_pem_chain(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def aia_ocsp_urls(cert: x509.Certificate) -> list[str]:
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return []
    return [d.access_location.value for d in aia if d.access_method == AuthorityInformationAccessOID.OCSP]


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------------------------------------- CA


def test_chain_verifies_root_intermediate_signer_and_leaf(pki_alpha, pki_alpha_leaves):
    root, intermediate = pki.load_cert(pki_alpha.root_pem), pki.load_cert(pki_alpha.intermediate_pem)
    root.verify_directly_issued_by(root)
    intermediate.verify_directly_issued_by(root)
    pki.load_cert(pki_alpha.ocsp_signer_pem).verify_directly_issued_by(intermediate)
    for leaf in pki_alpha_leaves.values():
        pki.load_cert(leaf.cert_pem).verify_directly_issued_by(intermediate)


def test_root_and_intermediate_are_constrained_cas(pki_alpha):
    root, intermediate = pki.load_cert(pki_alpha.root_pem), pki.load_cert(pki_alpha.intermediate_pem)
    for cert, path_length in ((root, None), (intermediate, 0)):
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert constraints.critical and constraints.value.ca and constraints.value.path_length == path_length
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
        cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    aki = intermediate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest


def test_root_lives_ten_years(pki_alpha):
    root = pki.load_cert(pki_alpha.root_pem)
    lifetime = root.not_valid_after_utc - root.not_valid_before_utc
    assert lifetime >= datetime.timedelta(days=3650)


def test_ocsp_signer_has_ocsp_signing_eku_and_nocheck(pki_alpha):
    signer = pki.load_cert(pki_alpha.ocsp_signer_pem)
    eku = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    signer.extensions.get_extension_for_class(x509.OCSPNoCheck)
    assert signer.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert not signer.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_rogue_signer_is_not_issued_by_the_ca(pki_alpha):
    rogue = pki.load_cert(pki_alpha.rogue_signer_pem)
    with pytest.raises(ValueError):  # issuer name differs, so cryptography refuses before checking the signature
        rogue.verify_directly_issued_by(pki.load_cert(pki_alpha.intermediate_pem))


def test_bundle_is_intermediate_then_root_and_chain_is_intermediate(pki_alpha):
    root, intermediate = pki.load_cert(pki_alpha.root_pem), pki.load_cert(pki_alpha.intermediate_pem)
    assert load_pem_chain(pki_alpha.bundle_pem) == [intermediate, root]
    assert load_pem_chain(pki_alpha.chain_pem) == [intermediate]


def test_der_files_parse_and_match_pem(pki_alpha):
    root, intermediate = pki.load_cert(pki_alpha.root_pem), pki.load_cert(pki_alpha.intermediate_pem)
    assert x509.load_der_x509_certificate(pki_alpha.root_der.read_bytes()) == root
    assert x509.load_der_x509_certificate(pki_alpha.intermediate_der.read_bytes()) == intermediate
    bundle_der = sorted(pki_alpha.bundle_der_dir.glob("*.der"))
    assert [x509.load_der_x509_certificate(p.read_bytes()) for p in bundle_der] == [intermediate, root]


def test_keys_are_private_and_unencrypted(pki_alpha, pki_alpha_leaves):
    keys = [pki_alpha.root_key, pki_alpha.intermediate_key, pki_alpha.ocsp_signer_key, pki_alpha.rogue_signer_key]
    keys += [leaf.key_pem for leaf in pki_alpha_leaves.values()]
    for key in keys:
        assert file_mode(key) == 0o600, key
        pki.load_key(key)


def test_load_ca_finds_what_build_ca_made(pki_dir, pki_alpha):
    assert pki.load_ca(pki_dir, "alpha") == pki_alpha


def test_load_ca_without_ca_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="build_ca"):
        pki.load_ca(tmp_path, "alpha")


def test_build_ca_rejects_names_that_are_not_file_names(tmp_path):
    with pytest.raises(ValueError):
        pki.build_ca(tmp_path, "../evil", URL)


# ---------------------------------------------------------------------------------------------- leaves


def test_normal_leaf_has_ocsp_url_san_eku_and_key_usage(pki_alpha, pki_alpha_leaves):
    leaf = pki_alpha_leaves["normal"]
    cert = pki.load_cert(leaf.cert_pem)
    assert aia_ocsp_urls(cert) == [pki_alpha.ocsp_url] == [leaf.ocsp_url]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["normal.alpha.lab.test"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.TLSFeature)


def test_leaf_lives_ninety_days_backdated_one(pki_alpha_leaves):
    cert = pki.load_cert(pki_alpha_leaves["normal"].cert_pem)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(days=91)
    assert pki.utc_now() - cert.not_valid_before_utc >= datetime.timedelta(hours=23)


def test_fullchain_is_leaf_then_intermediate(pki_alpha, pki_alpha_leaves):
    leaf = pki_alpha_leaves["normal"]
    expected = [pki.load_cert(leaf.cert_pem), pki.load_cert(pki_alpha.intermediate_pem)]
    assert load_pem_chain(leaf.fullchain_pem) == expected


def test_must_staple_leaf_has_tls_feature_status_request(pki_alpha_leaves):
    leaf = pki_alpha_leaves["must-staple"]
    cert = pki.load_cert(leaf.cert_pem)
    feature = cert.extensions.get_extension_for_class(x509.TLSFeature).value
    assert list(feature) == [x509.TLSFeatureType.status_request]
    assert leaf.must_staple and aia_ocsp_urls(cert)


def test_no_ocsp_url_leaf_has_no_aia_ocsp(pki_alpha_leaves):
    leaf = pki_alpha_leaves["no-ocsp-url"]
    assert aia_ocsp_urls(pki.load_cert(leaf.cert_pem)) == []
    assert leaf.ocsp_url is None


def test_revoked_leaf_is_revoked_an_hour_ago_for_key_compromise(pki_alpha, pki_alpha_leaves):
    entry = pki.read_index(pki_alpha)[pki_alpha_leaves["revoked"].serial_hex]
    assert entry["status"] == "revoked" and entry["reason"] == "keyCompromise"
    age = pki.utc_now() - datetime.datetime.fromisoformat(entry["revoked_at"])
    assert datetime.timedelta(minutes=55) < age < datetime.timedelta(minutes=70)


def test_unknown_leaf_is_signed_but_not_in_index(pki_alpha, pki_alpha_leaves):
    leaf = pki_alpha_leaves["unknown"]
    pki.load_cert(leaf.cert_pem).verify_directly_issued_by(pki.load_cert(pki_alpha.intermediate_pem))
    assert leaf.serial_hex not in pki.read_index(pki_alpha)


def test_index_records_good_leaves_with_subject(pki_alpha, pki_alpha_leaves):
    index = json.loads(pki_alpha.index_json.read_text())
    for kind in ("normal", "must-staple", "no-ocsp-url"):
        entry = index[format(pki_alpha_leaves[kind].serial, "x")]
        assert entry == {"status": "good", "revoked_at": None, "reason": None, "subject": f"{kind}.alpha.lab.test"}


def test_issue_leaf_rejects_unknown_kind(pki_alpha):
    with pytest.raises(ValueError, match="must-staple"):
        pki.issue_leaf(pki_alpha, "bad-kind", ["x.lab.test"], "bogus")


def test_mark_revoked_changes_the_index(tmp_path):
    ca = pki.build_ca(tmp_path, "gamma", URL)
    leaf = pki.issue_leaf(ca, "later-revoked", ["later.lab.test"])
    pki.mark_revoked(ca, leaf.serial, reason="superseded")
    entry = pki.read_index(ca)[leaf.serial_hex]
    assert (entry["status"], entry["reason"]) == ("revoked", "superseded")


# ---------------------------------------------------------------------------------------------- idempotency


def test_second_build_reuses_keys_and_leaves(tmp_path):
    ca = pki.build_ca(tmp_path, "gamma", URL)
    leaf = pki.issue_leaf(ca, "www", ["www.gamma.lab.test"], "revoked")
    key_bytes = ca.intermediate_key.read_bytes()
    index_before = ca.index_json.read_bytes()
    bundle_mtime = ca.bundle_pem.stat().st_mtime_ns

    again = pki.build_ca(tmp_path, "gamma", URL)
    leaf_again = pki.issue_leaf(again, "www", ["www.gamma.lab.test"], "revoked")

    assert again.intermediate_key.read_bytes() == key_bytes
    assert leaf_again.serial == leaf.serial
    assert ca.index_json.read_bytes() == index_before  # revocation time kept
    assert ca.bundle_pem.stat().st_mtime_ns == bundle_mtime


def test_changed_kind_or_names_reissue_the_leaf(tmp_path):
    ca = pki.build_ca(tmp_path, "gamma", URL)
    first = pki.issue_leaf(ca, "www", ["www.gamma.lab.test"])
    as_must_staple = pki.issue_leaf(ca, "www", ["www.gamma.lab.test"], "must-staple")
    renamed = pki.issue_leaf(ca, "www", ["www.gamma.lab.test", "alt.gamma.lab.test"], "must-staple")
    assert len({first.serial, as_must_staple.serial, renamed.serial}) == 3


def test_changed_url_rebuilds_the_ca_and_drops_its_leaves(tmp_path):
    ca = pki.build_ca(tmp_path, "gamma", URL)
    leaf = pki.issue_leaf(ca, "www", ["www.gamma.lab.test"])
    old_root_key = ca.root_key.read_bytes()
    rebuilt = pki.build_ca(tmp_path, "gamma", "http://127.0.0.1:10/")
    assert rebuilt.root_key.read_bytes() != old_root_key
    assert not leaf.cert_pem.exists()
    assert pki.read_index(rebuilt) == {}
    assert pki.load_ca(tmp_path, "gamma").ocsp_url == "http://127.0.0.1:10/"


def test_leaf_near_expiry_is_reissued(tmp_path, monkeypatch):
    ca = pki.build_ca(tmp_path, "gamma", URL)
    leaf = pki.issue_leaf(ca, "www", ["www.gamma.lab.test"])
    # Widen the renewal window past the leaf's whole life instead of waiting 83 days.
    monkeypatch.setattr(pki, "LEAF_RENEW_BEFORE", datetime.timedelta(days=91))
    assert pki.issue_leaf(ca, "www", ["www.gamma.lab.test"]).serial != leaf.serial


def test_damaged_ca_is_rebuilt(tmp_path):
    ca = pki.build_ca(tmp_path, "gamma", URL)
    ca.intermediate_key.write_text("not a key")
    rebuilt = pki.build_ca(tmp_path, "gamma", URL)
    pki.load_cert(rebuilt.intermediate_pem).verify_directly_issued_by(pki.load_cert(rebuilt.root_pem))
    assert pki.load_key(rebuilt.intermediate_key)
