# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a certificate says about stapling: its OCSP URL, its issuer, its expiry and OCSP Must-Staple.

All parsing is done by ``cryptography``; when it is missing, ``HAS_CRYPTOGRAPHY`` is False and modules
report it with ``missing_required_lib``.
"""

from __future__ import annotations

import datetime
import re
import traceback

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID
except ImportError:  # pragma: no cover - reported by the modules
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None

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


def find_issuer(certificate, candidates):
    """The candidate that issued ``certificate`` (name match and a signature that verifies), or None."""
    for candidate in candidates:
        if candidate.subject != certificate.issuer:
            continue
        try:
            certificate.verify_directly_issued_by(candidate)
        except (InvalidSignature, ValueError, TypeError):
            continue
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
    }
