# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a certificate says about stapling: its OCSP URL, its issuer, its expiry and OCSP Must-Staple.

All parsing is done by ``cryptography``. Modules run on the managed host with whatever cryptography its
distribution ships, so the floor is old (``CRYPTOGRAPHY_FLOOR``, Ubuntu 22.04's) and newer APIs are used
only when present, with a fallback that gives the same answer. ``cryptography_problem()`` says why the
host's library cannot be used (missing, or older than the floor), for the modules to report.
"""

from __future__ import annotations

import binascii
import datetime
import re
import sys
import traceback

try:
    import cryptography
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID
except ImportError:  # pragma: no cover - reported by the modules
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None

from ansible_collections.fleet.stapling.plugins.module_utils import signatures

# The oldest cryptography the modules are tested with (tests/tools/compat.sh): Ubuntu 22.04 ships it.
CRYPTOGRAPHY_FLOOR = "3.4.8"


def _release(version):
    """(3, 4, 8) from "3.4.8", "38.0.4" or "42.0.0rc1": the leading numbers only."""
    numbers = []
    for part in version.split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        numbers.append(int(digits.group()))
    return tuple(numbers)


def cryptography_problem(found=None):
    """Why the modules cannot use this Python's cryptography (missing, too old), or None when they can."""
    if found is None:
        if not HAS_CRYPTOGRAPHY:
            return ("the Python library cryptography (>= %s) is not installed for %s on the managed host; install "
                    "the distribution's python3-cryptography or point ansible_python_interpreter at a Python "
                    "that has it" % (CRYPTOGRAPHY_FLOOR, sys.executable))
        found = cryptography.__version__
    if _release(found) < _release(CRYPTOGRAPHY_FLOOR):
        return ("cryptography %s is too old: fleet.stapling needs cryptography >= %s on the managed host (found "
                "for %s); upgrade the distribution's python3-cryptography or point ansible_python_interpreter "
                "at a Python with a newer one" % (found, CRYPTOGRAPHY_FLOOR, sys.executable))
    return None


_PEM_BLOCK = re.compile(b"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


class CertificateError(Exception):
    """A certificate file could not be read or parsed; the message names the file."""


def load_certificates(path):
    """Every certificate in a PEM file (a chain is fine) or a single DER certificate, in file order."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except (IOError, OSError) as exc:
        raise CertificateError("cannot read certificate file %s: %s" % (path, exc))
    return parse_certificates(data, path)


def parse_certificates(data, origin="<data>"):
    blocks = _PEM_BLOCK.findall(data)
    try:
        if blocks:
            return [x509.load_pem_x509_certificate(block) for block in blocks]
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise CertificateError("%s holds no readable certificate: %s" % (origin, exc))


def ocsp_url(certificate):
    """The first OCSP responder URL in the AIA extension, or None (as in most certificates since 2025)."""
    try:
        aia = certificate.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value
    except x509.ExtensionNotFound:
        return None
    for description in aia:
        if description.access_method == AuthorityInformationAccessOID.OCSP:
            return description.access_location.value
    return None


def is_must_staple(certificate):
    """True when the certificate carries the TLS Feature extension asking for status_request (RFC 7633)."""
    try:
        features = certificate.extensions.get_extension_for_oid(ExtensionOID.TLS_FEATURE).value
    except x509.ExtensionNotFound:
        return False
    return x509.TLSFeatureType.status_request in features


def not_after(certificate):
    moment = getattr(certificate, "not_valid_after_utc", None)
    if moment is None:  # cryptography < 42
        moment = certificate.not_valid_after
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def is_issued_by(certificate, issuer):
    """True when ``issuer`` names and signed ``certificate`` (its key verifies the signature)."""
    if certificate.issuer != issuer.subject:
        return False
    try:
        if hasattr(certificate, "verify_directly_issued_by"):  # cryptography >= 40
            certificate.verify_directly_issued_by(issuer)
        else:
            hash_algorithm, pss = signatures.signature_parameters(certificate)
            signatures.verify_signature(issuer.public_key(), certificate.signature,
                                        certificate.tbs_certificate_bytes, hash_algorithm,
                                        certificate.signature_algorithm_oid, pss)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def find_issuer(certificate, candidates):
    """The candidate that issued ``certificate`` (name match and a signature that verifies), or None."""
    for candidate in candidates:
        if is_issued_by(certificate, candidate):
            return candidate
    return None


def key_identifier(certificate, which):
    """The subject ('subject') or authority ('authority') key identifier as hex, or None when absent."""
    try:
        if which == "subject":
            value = certificate.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_KEY_IDENTIFIER).value.digest
        else:
            value = certificate.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value
            value = value.key_identifier
    except x509.ExtensionNotFound:
        return None
    return value.hex() if value else None


def ca_problem(certificate, now=None):
    """Why a certificate does not belong in a CA bundle (not a CA, expired), or None when it does."""
    try:
        constraints = certificate.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        return "not a CA certificate"
    moment = now or datetime.datetime.now(datetime.timezone.utc)
    expiry = getattr(certificate, "not_valid_after_utc", None)
    if expiry is None:  # cryptography < 42 gives naive UTC
        expiry = certificate.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    if expiry < moment:
        return "expired on %s" % not_after(certificate)
    return None


def describe(certificate):
    """The stapling-relevant facts of one certificate, as plain data for a module result."""
    return {
        "subject": certificate.subject.rfc4514_string(),
        "issuer": certificate.issuer.rfc4514_string(),
        "serial": "%X" % certificate.serial_number,
        "not_after": not_after(certificate),
        "ocsp_url": ocsp_url(certificate),
        "must_staple": is_must_staple(certificate),
        "subject_key_id": key_identifier(certificate, "subject"),
        "authority_key_id": key_identifier(certificate, "authority"),
        # how mod_md names the certificate's response in its store
        "sha1_fingerprint": binascii.hexlify(certificate.fingerprint(hashes.SHA1())).decode("ascii"),
    }
