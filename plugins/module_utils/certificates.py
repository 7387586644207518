# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a certificate says about stapling: its OCSP URL, its issuer, its expiry and OCSP Must-Staple.

All parsing is done by ``cryptography``. Modules run on the managed host with whatever cryptography its
distribution ships, so the floor is old (cryptography_floor: Ubuntu 22.04's) and newer APIs are used
only when present, with a fallback that gives the same answer. ``cryptography_problem()`` (from
cryptography_floor) says why the host's library cannot be used (missing, or older than the floor).
"""

from __future__ import annotations

import binascii
import datetime
import traceback

try:
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
from ansible_collections.fleet.stapling.plugins.module_utils.cryptography_floor import CertificateError
# re-exported for the modules, which ask it before anything else
from ansible_collections.fleet.stapling.plugins.module_utils.cryptography_floor import cryptography_problem  # noqa: F401 pylint: disable=unused-import

_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
_PEM_END = b"-----END CERTIFICATE-----"


def load_certificates(path):
    """Every certificate in a PEM file (a chain is fine) or a single DER certificate, in file order."""
    return parse_certificates(_read(path), path)


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except (IOError, OSError) as exc:
        raise CertificateError("cannot read certificate file %s: %s" % (path, exc))


def parse_certificates(data, origin="<data>"):
    blocks = pem_blocks(data)
    if blocks:
        return [_parse(x509.load_pem_x509_certificate, block, origin) for block in blocks]
    return [_parse(x509.load_der_x509_certificate, data, origin)]


def _parse(loader, data, origin):
    try:
        return loader(data)
    except ValueError as exc:
        raise CertificateError("%s holds no readable certificate: %s" % (origin, exc))


def pem_blocks(data):
    """Each ``BEGIN CERTIFICATE`` ... ``END CERTIFICATE`` block of ``data``, in order, markers included."""
    blocks = []
    position = 0
    while True:
        start = data.find(_PEM_BEGIN, position)
        if start == -1:
            return blocks
        # at least one byte between the markers, as in a real block
        end = data.find(_PEM_END, start + len(_PEM_BEGIN) + 1)
        if end == -1:
            return blocks
        position = end + len(_PEM_END)
        blocks.append(data[start:position])


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


def is_issued_by(certificate, issuer, public_key_of=None):
    """True when ``issuer`` names and signed ``certificate`` (its key verifies the signature).

    ``public_key_of(issuer)`` may give the issuer's key from a cache (see ``CertificateReader``).
    """
    if certificate.issuer != issuer.subject:
        return False
    try:
        if hasattr(certificate, "verify_directly_issued_by"):  # cryptography >= 40
            certificate.verify_directly_issued_by(issuer)
        else:
            hash_algorithm, pss = signatures.signature_parameters(certificate)
            public_key = public_key_of(issuer) if public_key_of else issuer.public_key()
            signatures.verify_signature(public_key, certificate.signature,
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


class CertificateReader(object):
    """Reads the certificates of many vhosts, parsing each distinct CA certificate and loading its key once.

    On a shared host thousands of certificate files end with the same few intermediates, and chain and CA files
    are named by many vhosts; before cryptography 40, loading an issuer's public key alone took 0.1 ms, which
    made it most of the time a large host took. Leaves are parsed afresh: each differs, and keeping them would
    only hold memory. Files are taken to stay as they are while the reader is in use (one module run).
    """

    def __init__(self):
        self._ca_certificates = {}  # PEM block or DER bytes -> the certificate parsed from it
        self._held = set()  # id() of the certificates above, which stay alive as long as the reader
        self._files = {}  # chain or CA file -> its certificates, or the CertificateError reading it gave
        self._public_keys = {}  # id() of a held certificate -> its public key
        self._subject_key_ids = {}  # id() of a held certificate -> its subject key identifier

    def certificate_file(self, path):
        """Every certificate of a served certificate file, as ``load_certificates``: the leaf, then its chain."""
        data = _read(path)
        blocks = pem_blocks(data)
        if not blocks:
            return [_parse(x509.load_der_x509_certificate, data, path)]
        leaf = _parse(x509.load_pem_x509_certificate, blocks[0], path)
        return [leaf] + [self._ca_certificate(x509.load_pem_x509_certificate, block, path) for block in blocks[1:]]

    def shared_file(self, path):
        """The certificates of a chain or CA file, as ``load_certificates``, read once whoever names it."""
        if path not in self._files:
            try:
                data = _read(path)
                blocks = pem_blocks(data)
                if blocks:
                    found = [self._ca_certificate(x509.load_pem_x509_certificate, b, path) for b in blocks]
                else:
                    found = [self._ca_certificate(x509.load_der_x509_certificate, data, path)]
            except CertificateError as exc:
                found = exc
            self._files[path] = found
        found = self._files[path]
        if isinstance(found, CertificateError):
            raise found
        return list(found)

    def find_issuer(self, certificate, candidates):
        """``find_issuer``, with the keys of the certificates this reader parsed loaded once."""
        for candidate in candidates:
            if is_issued_by(certificate, candidate, self._public_key):
                return candidate
        return None

    def finds_issuer(self, certificate, candidates):
        """Whether httpd's own issuer lookup for stapling (AH02217 when it fails) finds a candidate: OpenSSL's
        X509_check_issued, that is the issuer's name and, where both carry one, the key identifier agree. No
        signature is verified, as httpd verifies none there; on a host with thousands of certificates that would
        be a third of the time spent reading them. Responder authorisation keeps ``is_issued_by``.
        """
        authority = key_identifier(certificate, "authority")
        for candidate in candidates:
            if certificate.issuer != candidate.subject:
                continue
            subject = self._subject_key_identifier(candidate)
            if authority is None or subject is None or authority == subject:
                return True
        return False

    def _subject_key_identifier(self, certificate):
        if id(certificate) not in self._held:
            return key_identifier(certificate, "subject")
        if id(certificate) not in self._subject_key_ids:
            self._subject_key_ids[id(certificate)] = key_identifier(certificate, "subject")
        return self._subject_key_ids[id(certificate)]

    def _ca_certificate(self, loader, data, origin):
        certificate = self._ca_certificates.get(data)
        if certificate is None:
            certificate = self._ca_certificates[data] = _parse(loader, data, origin)
            self._held.add(id(certificate))
        return certificate

    def _public_key(self, certificate):
        if id(certificate) not in self._held:
            return certificate.public_key()
        key = self._public_keys.get(id(certificate))
        if key is None:
            key = self._public_keys[id(certificate)] = certificate.public_key()
        return key
