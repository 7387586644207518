"""The OCSP side of the lab responder: what a CA's responder knows (its issuer, signers and status index) and the
DER answers it gives, in every mode that changes the answer itself (wrong signer, expired, future, unauthorized).

Pure functions over cryptography's OCSP builder; responder.py puts them behind HTTP.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import logging
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from fleetlab import pki

log = logging.getLogger("fleetlab.responder")


@dataclass
class Signer:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


class CaMaterial:
    """What the responder answers with: issuer, signers and the (reloadable) status index."""

    def __init__(self, ca_dir: Path) -> None:
        ca = pki.load_ca(ca_dir.parent, ca_dir.name)
        pki.ensure_rogue_signer(ca)
        self.ca = ca
        self.issuer = pki.load_cert(ca.intermediate_pem)
        self.signer = Signer(pki.load_cert(ca.ocsp_signer_pem), pki.load_key(ca.ocsp_signer_key))
        self.rogue = Signer(pki.load_cert(ca.rogue_signer_pem), pki.load_key(ca.rogue_signer_key))
        self._last_good_index: dict[str, dict] = {}

    def index_entry(self, serial: int) -> dict | None:
        """Read on every request: the file is tiny, and an mtime cache could miss two writes in one clock tick."""
        try:
            index = pki.read_index(self.ca)
        except ValueError as exc:
            # Keep answering from the last good index rather than failing every request.
            log.warning("ignoring unreadable %s: %s", self.ca.index_json, exc)
            index = self._last_good_index
        self._last_good_index = index
        return {key.lower(): value for key, value in index.items()}.get(pki.serial_to_hex(serial))

    def issuer_hashes(self, algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
        """CertID issuer hashes of our intermediate, computed with the algorithm the client chose."""
        name_der = self.issuer.subject.public_bytes()
        key_bits = _public_key_bits(self.issuer)
        return _digest(algorithm, name_der), _digest(algorithm, key_bits)


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    hasher = hashes.Hash(algorithm)
    hasher.update(data)
    return hasher.finalize()


def _public_key_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING contents: for EC keys that is the uncompressed point."""
    public_key = cert.public_key()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)


# ---------------------------------------------------------------------------------------------- OCSP logic


def parse_request_der(der: bytes) -> ocsp.OCSPRequest | None:
    """None for anything cryptography cannot read, including requests for several certificates at once."""
    try:
        request = ocsp.load_der_ocsp_request(der)
        request.hash_algorithm  # raises for hash algorithms cryptography does not know
        return request
    except Exception:  # noqa: BLE001 - any parse failure is the client's malformed request
        return None


def decode_get_path(path: str) -> bytes | None:
    """DER from a GET path: `{url}/{url-encoding of base64(DER)}` (RFC 6960 appendix A.1).

    The responder URL may itself have a path, and some clients leave '/' of the base64 unencoded, so try every
    suffix of the path, longest first, and accept standard or URL-safe base64 with or without padding.
    """
    raw_path = path.split("?", 1)[0].lstrip("/")
    segments = raw_path.split("/")
    for start in range(len(segments)):
        text = urllib.parse.unquote("/".join(segments[start:])).strip()
        der = _decode_base64(text)
        if der is not None and parse_request_der(der) is not None:
            return der
    return None


def _decode_base64(text: str) -> bytes | None:
    if not text:
        return None
    # Map the URL-safe alphabet onto the standard one, so one strict decode accepts either spelling.
    standard = text.replace("-", "+").replace("_", "/")
    padded = standard + "=" * (-len(standard) % 4)
    try:
        return base64.b64decode(padded.encode("ascii"), validate=True)
    except (binascii.Error, ValueError):  # UnicodeEncodeError is a ValueError too
        return None


def unsuccessful_response(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)


@dataclass
class CertAnswer:
    status: ocsp.OCSPCertStatus
    revocation_time: datetime.datetime | None = None
    revocation_reason: x509.ReasonFlags | None = None

    @property
    def label(self) -> str:
        return self.status.name.lower()


def look_up_status(material: CaMaterial, request: ocsp.OCSPRequest) -> CertAnswer:
    """good/revoked from the index; unknown when the serial is not there or the CertID names another issuer."""
    name_hash, key_hash = material.issuer_hashes(request.hash_algorithm)
    if (request.issuer_name_hash, request.issuer_key_hash) != (name_hash, key_hash):
        return CertAnswer(ocsp.OCSPCertStatus.UNKNOWN)
    entry = material.index_entry(request.serial_number)
    if entry is None:
        return CertAnswer(ocsp.OCSPCertStatus.UNKNOWN)
    if entry.get("status") != "revoked":
        return CertAnswer(ocsp.OCSPCertStatus.GOOD)
    return CertAnswer(ocsp.OCSPCertStatus.REVOKED, _revocation_time(entry), _reason_flag(entry.get("reason")))


def _revocation_time(entry: dict) -> datetime.datetime:
    try:
        revoked_at = datetime.datetime.fromisoformat(entry.get("revoked_at") or "")
    except ValueError:
        return pki.utc_now()
    if revoked_at.tzinfo is None:
        return revoked_at.replace(tzinfo=datetime.timezone.utc)
    return revoked_at


def _reason_flag(reason: str | None) -> x509.ReasonFlags | None:
    try:
        return x509.ReasonFlags(reason) if reason else None
    except ValueError:
        return None


def validity_window(mode: str, now: datetime.datetime) -> tuple[datetime.datetime, datetime.datetime]:
    """thisUpdate/nextUpdate: sane in ok mode, deliberately stale or early in the time fault modes."""
    if mode == "expired":
        return now - datetime.timedelta(days=2), now - datetime.timedelta(days=1)
    if mode == "future":
        return now + datetime.timedelta(days=1), now + datetime.timedelta(days=2)
    return now - datetime.timedelta(minutes=1), now + datetime.timedelta(hours=1)


def _naive_utc(moment: datetime.datetime | None) -> datetime.datetime | None:
    # Older cryptography (Debian's 38) wants naive UTC datetimes in the OCSP builder.
    if moment is None:
        return None
    return moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)


def _add_single_response(
    builder: ocsp.OCSPResponseBuilder,
    material: CaMaterial,
    request: ocsp.OCSPRequest,
    answer: CertAnswer,
    window: tuple[datetime.datetime, datetime.datetime],
) -> ocsp.OCSPResponseBuilder:
    this_update, next_update = window
    if hasattr(builder, "add_response_by_hash"):
        # Echo the client's CertID exactly, even for an issuer we do not know (answer: unknown).
        return builder.add_response_by_hash(
            issuer_name_hash=request.issuer_name_hash,
            issuer_key_hash=request.issuer_key_hash,
            serial_number=request.serial_number,
            algorithm=request.hash_algorithm,
            cert_status=answer.status,
            this_update=this_update,
            next_update=next_update,
            revocation_time=answer.revocation_time,
            revocation_reason=answer.revocation_reason,
        )
    # Older cryptography builds the CertID from certificates only: use a stand-in with the asked serial.
    return builder.add_response(
        cert=_stand_in_cert(material, request.serial_number),
        issuer=material.issuer,
        algorithm=request.hash_algorithm,
        cert_status=answer.status,
        this_update=_naive_utc(this_update),
        next_update=_naive_utc(next_update),
        revocation_time=_naive_utc(answer.revocation_time),
        revocation_reason=answer.revocation_reason,
    )


def _stand_in_cert(material: CaMaterial, serial: int) -> x509.Certificate:
    now = _naive_utc(pki.utc_now())
    return (
        x509.CertificateBuilder()
        .subject_name(material.issuer.subject)
        .issuer_name(material.issuer.subject)
        .public_key(material.rogue.key.public_key())
        .serial_number(serial)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(material.rogue.key, hashes.SHA256())
    )


def successful_response(material: CaMaterial, request: ocsp.OCSPRequest, mode: str) -> tuple[bytes, str]:
    """A signed BasicOCSPResponse for the request, and the status label for the log."""
    answer = look_up_status(material, request)
    signer = material.rogue if mode == "wrong-signer" else material.signer
    builder = ocsp.OCSPResponseBuilder()
    builder = _add_single_response(builder, material, request, answer, validity_window(mode, pki.utc_now()))
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, signer.cert).certificates([signer.cert])
    for extension in request.extensions:
        if isinstance(extension.value, x509.OCSPNonce):
            builder = builder.add_extension(extension.value, critical=False)
    response = builder.sign(signer.key, hashes.SHA256())
    return response.public_bytes(serialization.Encoding.DER), answer.label
