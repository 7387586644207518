# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Check a signature made with a certificate's key: on a certificate (is this the issuer?) or an OCSP response.

cryptography verifies; what this adds is the choice of padding and hash for each key type, and for RSASSA-PSS
the parameters the signer used, which older cryptography releases do not expose (see ``signature_parameters``).
"""

from __future__ import annotations

try:
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa
    from cryptography.x509.oid import SignatureAlgorithmOID
except ImportError:  # pragma: no cover - reported by the modules through certificates.cryptography_problem
    pass


def verify_signature(public_key, signature, data, hash_algorithm, signature_oid=None, pss=None):
    """Check ``signature`` over ``data`` with ``public_key``; raises InvalidSignature when it does not verify.

    RSA (PKCS#1 v1.5, or PSS when ``signature_oid`` says so), ECDSA, DSA, Ed25519 and Ed448. ``pss`` is
    (MGF1 hash, salt length) from the signature's parameters (``signature_parameters``); without it a PSS
    salt length is found from the signature (cryptography >= 37) or tried with the usual values. Raises
    TypeError, ValueError or UnsupportedAlgorithm for a key or algorithm it cannot use.
    """
    if isinstance(public_key, rsa.RSAPublicKey):
        if signature_oid == SignatureAlgorithmOID.RSASSA_PSS:
            _verify_rsa_pss(public_key, signature, data, hash_algorithm, pss)
        else:
            public_key.verify(signature, data, padding.PKCS1v15(), hash_algorithm)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, data, ec.ECDSA(hash_algorithm))
    elif isinstance(public_key, dsa.DSAPublicKey):
        public_key.verify(signature, data, hash_algorithm)
    else:  # Ed25519 and Ed448 sign the data itself
        public_key.verify(signature, data)


def _verify_rsa_pss(public_key, signature, data, hash_algorithm, pss=None):
    if pss is not None:
        mgf_hash, salt_length = pss
        public_key.verify(signature, data, padding.PSS(mgf=padding.MGF1(mgf_hash), salt_length=salt_length),
                          hash_algorithm)
        return
    auto = getattr(padding.PSS, "AUTO", None)  # cryptography >= 37 reads the salt length from the signature
    if auto is not None:
        salt_lengths = [auto]
    else:
        # Older releases need the salt length. CAs use the digest length (RFC 4055's recommendation);
        # the longest possible salt is the other value signers choose.
        salt_lengths = [hash_algorithm.digest_size, padding.PSS.MAX_LENGTH]
    for salt_length in salt_lengths[:-1]:
        try:
            public_key.verify(signature, data, padding.PSS(mgf=padding.MGF1(hash_algorithm), salt_length=salt_length),
                              hash_algorithm)
            return
        except InvalidSignature:
            continue
    public_key.verify(signature, data, padding.PSS(mgf=padding.MGF1(hash_algorithm), salt_length=salt_lengths[-1]),
                      hash_algorithm)


# RSASSA-PSS parameters (RFC 4055 section 3.1) are read here from the DER: signature_hash_algorithm raises
# UnsupportedAlgorithm for a PSS signature on certificates before cryptography 41 and on OCSP responses in
# every release so far, and the parameters give the exact MGF1 hash and salt length everywhere.
_HASH_NAMES_BY_OID = {
    "1.3.14.3.2.26": "SHA1",
    "2.16.840.1.101.3.4.2.4": "SHA224",
    "2.16.840.1.101.3.4.2.1": "SHA256",
    "2.16.840.1.101.3.4.2.2": "SHA384",
    "2.16.840.1.101.3.4.2.3": "SHA512",
}
_MGF1_OID = "1.2.840.113549.1.1.8"
_DER_SEQUENCE = 0x30
_DER_OID = 0x06
_DER_INTEGER = 0x02
_DER_OCTET_STRING = 0x04


def _der_elements(data):
    """[(tag, contents)] of the DER elements that follow one another in ``data`` (single-byte tags only)."""
    elements = []
    offset = 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise ValueError("truncated DER")
        tag, length = data[offset], data[offset + 1]
        offset += 2
        if length & 0x80:
            size = length & 0x7F
            if not 0 < size <= 4 or offset + size > len(data):
                raise ValueError("unsupported DER length")
            length = int.from_bytes(data[offset:offset + size], "big")
            offset += size
        if offset + length > len(data):
            raise ValueError("truncated DER")
        elements.append((tag, data[offset:offset + length]))
        offset += length
    return elements


def _der_only(data, tag):
    """The contents of ``data`` when it is exactly one element with ``tag``."""
    elements = _der_elements(data)
    if len(elements) != 1 or elements[0][0] != tag:
        raise ValueError("unexpected DER structure")
    return elements[0][1]


def _der_oid(contents):
    arcs = []
    value = 0
    for byte in bytearray(contents):
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if not arcs:
        raise ValueError("empty object identifier")
    first = min(arcs[0] // 40, 2)
    return ".".join(str(arc) for arc in [first, arcs[0] - 40 * first] + arcs[1:])


def _hash_of(algorithm_identifier):
    """The hash object an AlgorithmIdentifier (SEQUENCE contents) names."""
    elements = _der_elements(algorithm_identifier)
    if not elements or elements[0][0] != _DER_OID:
        raise ValueError("unexpected DER structure")
    dotted = _der_oid(elements[0][1])
    if dotted not in _HASH_NAMES_BY_OID:
        raise UnsupportedAlgorithm("RSASSA-PSS with hash algorithm %s is not supported" % dotted)
    return getattr(hashes, _HASH_NAMES_BY_OID[dotted])()


def _pss_parameters(algorithm_identifier):
    """(hash, MGF1 hash, salt length) from an RSASSA-PSS AlgorithmIdentifier (SEQUENCE contents).

    Absent fields take the defaults of RFC 4055 (SHA-1, MGF1 with SHA-1, 20 bytes of salt).
    """
    elements = _der_elements(algorithm_identifier)
    hash_algorithm, mgf_hash, salt_length = hashes.SHA1(), hashes.SHA1(), 20
    if len(elements) > 1 and elements[1][0] == _DER_SEQUENCE:
        for tag, wrapped in _der_elements(elements[1][1]):
            if tag == 0xA0:  # [0] hashAlgorithm
                hash_algorithm = _hash_of(_der_only(wrapped, _DER_SEQUENCE))
            elif tag == 0xA1:  # [1] maskGenAlgorithm: MGF1 and its hash
                mgf = _der_elements(_der_only(wrapped, _DER_SEQUENCE))
                if len(mgf) != 2 or mgf[0][0] != _DER_OID or _der_oid(mgf[0][1]) != _MGF1_OID:
                    raise UnsupportedAlgorithm("RSASSA-PSS with a mask generation function other than MGF1")
                mgf_hash = _hash_of(mgf[1][1])
            elif tag == 0xA2:  # [2] saltLength
                salt_length = int.from_bytes(_der_only(wrapped, _DER_INTEGER), "big")
    return hash_algorithm, mgf_hash, salt_length


def _signature_algorithm_der(signed):
    """The signatureAlgorithm (SEQUENCE contents) of a certificate or of a successful OCSP response."""
    der = signed.public_bytes(serialization.Encoding.DER)
    if hasattr(signed, "tbs_response_bytes"):
        # OCSPResponse ::= SEQUENCE { responseStatus, responseBytes [0] EXPLICIT SEQUENCE { responseType,
        # response OCTET STRING holding the BasicOCSPResponse } }
        response_bytes = _der_elements(_der_only(der, _DER_SEQUENCE))[1][1]
        tag, der = _der_elements(_der_only(response_bytes, _DER_SEQUENCE))[1]
        if tag != _DER_OCTET_STRING:
            raise ValueError("unexpected DER structure")
    # Certificate and BasicOCSPResponse: SEQUENCE { to-be-signed, signatureAlgorithm, signature, ... }
    tag, algorithm = _der_elements(_der_only(der, _DER_SEQUENCE))[1]
    if tag != _DER_SEQUENCE:
        raise ValueError("unexpected DER structure")
    return algorithm


def signature_parameters(signed):
    """(hash algorithm, PSS parameters) of the signature on a certificate or an OCSP response.

    The PSS parameters are (MGF1 hash, salt length) for RSASSA-PSS, for ``verify_signature``; else None.
    The hash is None for Ed25519 and Ed448. Raises ValueError or UnsupportedAlgorithm when unreadable.
    """
    if signed.signature_algorithm_oid != SignatureAlgorithmOID.RSASSA_PSS:
        return signed.signature_hash_algorithm, None
    try:
        hash_algorithm, mgf_hash, salt_length = _pss_parameters(_signature_algorithm_der(signed))
    except (IndexError, TypeError) as exc:
        raise ValueError("unreadable RSASSA-PSS parameters: %s" % exc)
    return hash_algorithm, (mgf_hash, salt_length)
