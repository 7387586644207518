# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Small certificates for unit tests, made with cryptography: a CA and leaves with or without OCSP bits.

The CA signs with ECDSA unless asked for another key type (``KEY_TYPES``). RSA-PSS signatures are made by
cryptography itself when it can (41 and later); older releases cannot sign a certificate with PSS, so the
PKCS#1 v1.5 certificate is then re-signed here by rewriting its DER (``pss_certificate``). The same is done
for OCSP responses (``pss_ocsp_response``), which no cryptography release signs with PSS.
"""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject, issuer, public_key):
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)))


# How a CA signs: key type -> signature scheme.
KEY_TYPES = ("ecdsa", "rsa", "rsa-pss", "ed25519")


# Making an RSA key takes up to half a second, so a few are made once and handed out in turn: keys asked
# for one after another (a CA and its impostor) still differ.
_RSA_KEYS = []
_RSA_POOL_SIZE = 4


def _rsa_key():
    if len(_RSA_KEYS) < _RSA_POOL_SIZE:
        _RSA_KEYS.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        return _RSA_KEYS[-1]
    _RSA_KEYS.append(_RSA_KEYS.pop(0))
    return _RSA_KEYS[-1]


def new_key(key_type="ecdsa"):
    if key_type == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type in ("rsa", "rsa-pss"):
        return _rsa_key()
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError("unknown key type %s" % key_type)


def sign(builder, key, key_type="ecdsa", by_hand=False):
    """``builder`` signed by ``key`` the way ``key_type`` says; ``by_hand`` makes RSA-PSS by rewriting DER."""
    if key_type == "ed25519":
        return builder.sign(key, None)
    if key_type == "rsa-pss":
        return pss_certificate(builder, key, by_hand=by_hand)
    return builder.sign(key, hashes.SHA256())


class TestCA(object):
    """A self-signed CA that issues leaves; PEM bytes of everything are at hand.

    ``key_type`` (one of ``KEY_TYPES``) is how it signs; ``key`` reuses a private key (of that type), e.g. to
    make an impostor with the same name as another CA. ``pss_by_hand`` signs RSA-PSS by rewriting DER even
    where cryptography could do it.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, name="Unit Test CA", key_type="ecdsa", key=None, pss_by_hand=False):
        self.key_type = key_type
        self.pss_by_hand = pss_by_hand
        self.key = key or new_key(key_type)
        builder = _builder(_name(name), _name(name), self.key.public_key())
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        self.certificate = sign(builder, self.key, key_type, pss_by_hand)

    @property
    def pem(self):
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def leaf(self, common_name, ocsp_url=None, must_staple=False):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = _builder(_name(common_name), self.certificate.subject, key.public_key())
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
        if ocsp_url:
            access = x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))
            builder = builder.add_extension(x509.AuthorityInformationAccess([access]), critical=False)
        if must_staple:
            builder = builder.add_extension(x509.TLSFeature([x509.TLSFeatureType.status_request]), critical=False)
        return sign(builder, self.key, self.key_type, self.pss_by_hand)


def pem(certificate):
    return certificate.public_bytes(serialization.Encoding.PEM)


def der(certificate):
    return certificate.public_bytes(serialization.Encoding.DER)


# ------------------------------------------------------------------------------------- RSA-PSS by hand (DER)

_PSS_OID = "1.2.840.113549.1.1.10"
_MGF1_OID = "1.2.840.113549.1.1.8"
_HASH_OIDS = {"sha1": "1.3.14.3.2.26", "sha256": "2.16.840.1.101.3.4.2.1", "sha384": "2.16.840.1.101.3.4.2.2",
              "sha512": "2.16.840.1.101.3.4.2.3"}


def _der(tag, contents):
    size = len(contents)
    if size < 0x80:
        head = bytes([size])
    else:
        width = (size.bit_length() + 7) // 8
        head = bytes([0x80 | width]) + size.to_bytes(width, "big")
    return bytes([tag]) + head + contents


def _der_split(data):
    """The DER elements that follow one another in ``data``, each as its full encoding (tag and length too)."""
    elements = []
    offset = 0
    while offset < len(data):
        start = offset
        size = data[offset + 1]
        offset += 2
        if size & 0x80:
            width = size & 0x7F
            size = int.from_bytes(data[offset:offset + width], "big")
            offset += width
        offset += size
        elements.append(data[start:offset])
    return elements


def _der_contents(element):
    """The contents of one full DER element."""
    size = element[1]
    return element[2 + (size & 0x7F if size & 0x80 else 0):]


def _oid(dotted):
    arcs = [int(arc) for arc in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return _der(0x06, bytes(body))


def _integer(value):
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def pss_algorithm_identifier(hash_algorithm, salt_length, mgf_hash=None):
    """DER of an RSASSA-PSS AlgorithmIdentifier (RFC 4055 3.1); DER leaves out fields that hold the default
    (SHA-1, MGF1 with SHA-1, 20 bytes of salt)."""
    def hash_id(algorithm):
        return _der(0x30, _oid(_HASH_OIDS[algorithm.name]) + _der(0x05, b""))
    mgf_hash = mgf_hash or hash_algorithm
    parameters = b""
    if hash_algorithm.name != "sha1":
        parameters += _der(0xA0, hash_id(hash_algorithm))
    if mgf_hash.name != "sha1":
        parameters += _der(0xA1, _der(0x30, _oid(_MGF1_OID) + hash_id(mgf_hash)))
    if salt_length != 20:
        parameters += _der(0xA2, _integer(salt_length))
    return _der(0x30, _oid(_PSS_OID) + _der(0x30, parameters))


def _pss_sign(key, data, hash_algorithm, salt_length, mgf_hash=None):
    scheme = padding.PSS(mgf=padding.MGF1(mgf_hash or hash_algorithm), salt_length=salt_length)
    return _der(0x03, b"\x00" + key.sign(data, scheme, hash_algorithm))


def pss_certificate(builder, key, hash_algorithm=None, salt_length=None, mgf_hash=None, by_hand=False):
    """``builder`` signed with RSA-PSS (salt as long as the digest unless told), as a certificate object."""
    hash_algorithm = hash_algorithm or hashes.SHA256()
    salt_length = hash_algorithm.digest_size if salt_length is None else salt_length
    if not by_hand and mgf_hash is None:
        scheme = padding.PSS(mgf=padding.MGF1(hash_algorithm), salt_length=salt_length)
        try:
            return builder.sign(key, hash_algorithm, rsa_padding=scheme)  # cryptography >= 41
        except TypeError:
            pass
    # Sign with PKCS#1 v1.5, then swap the algorithm inside the TBSCertificate (its third element, after
    # version and serial) and the signature outside it.
    draft = builder.sign(key, hash_algorithm)
    algorithm = pss_algorithm_identifier(hash_algorithm, salt_length, mgf_hash)
    parts = _der_split(_der_contents(draft.tbs_certificate_bytes))
    tbs = _der(0x30, b"".join(parts[:2] + [algorithm] + parts[3:]))
    signature = _pss_sign(key, tbs, hash_algorithm, salt_length, mgf_hash)
    return x509.load_der_x509_certificate(_der(0x30, tbs + algorithm + signature))


def pss_ocsp_response(response_der, key, hash_algorithm=None, salt_length=None):
    """A successful DER OCSP response re-signed by ``key`` (RSA) with RSA-PSS; the rest stays as it was."""
    hash_algorithm = hash_algorithm or hashes.SHA256()
    salt_length = hash_algorithm.digest_size if salt_length is None else salt_length
    status, wrapped = _der_split(_der_contents(response_der))
    response_type, octets = _der_split(_der_contents(_der_contents(wrapped)))
    basic = _der_split(_der_contents(_der_contents(octets)))  # tbsResponseData, algorithm, signature, [certs]
    algorithm = pss_algorithm_identifier(hash_algorithm, salt_length)
    basic = _der(0x30, b"".join([basic[0], algorithm, _pss_sign(key, basic[0], hash_algorithm, salt_length)]
                                + basic[3:]))
    return _der(0x30, status + _der(0xA0, _der(0x30, response_type + _der(0x04, basic))))
