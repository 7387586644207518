"""Lab PKI: independent test CAs, each with a delegated OCSP signer, and the leaves they issue.

Every CA lives in ``<pki_dir>/<ca>/``::

    ca.json                 name and OCSP URL the CA was built for (decides whether build_ca reuses it)
    root.pem  root.der  root.key                        self-signed root CA
    intermediate.pem  intermediate.der  intermediate.key  issues the leaves and the OCSP signer
    ocsp-signer.pem  ocsp-signer.key                    delegated OCSP signer (EKU OCSPSigning + ocsp-nocheck)
    rogue-signer.pem  rogue-signer.key                  self-signed, NOT authorised: the responder's wrong-signer mode
    bundle.pem              intermediate + root, PEM (a CAfile for clients)
    bundle-der/00-intermediate.der  bundle-der/01-root.der
                            DER holds one certificate per file, so the DER "bundle" is a directory,
                            in the same order as bundle.pem
    chain.pem               intermediate only (what SSLCertificateChainFile holds)
    index.json              serial (lowercase hex, no 0x) -> {"status", "revoked_at", "reason", "subject"}
    leaves/<leaf>.pem  .key  .fullchain.pem  .json   (.json records kind and names for idempotent reuse)
    .lock                   serialises builders and index updates across processes

Keys are unencrypted PEM (PKCS#8), mode 0600. Every file is written atomically (temp file + rename).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import ipaddress
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

LEAF_KINDS = ("normal", "must-staple", "no-ocsp-url", "revoked", "unknown")

CA_VALIDITY = datetime.timedelta(days=3650)
LEAF_VALIDITY = datetime.timedelta(days=90)
# Leaves are backdated so that small clock differences between lab hosts never make them "not yet valid";
# CAs are backdated a little more so that a leaf never starts before its issuer.
LEAF_BACKDATE = datetime.timedelta(days=1)
CA_BACKDATE = datetime.timedelta(days=2)
LEAF_RENEW_BEFORE = datetime.timedelta(days=7)
REVOKED_LEAF_AGE = datetime.timedelta(hours=1)

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class CaFiles:
    name: str
    dir: Path
    ocsp_url: str
    root_pem: Path
    intermediate_pem: Path
    bundle_pem: Path
    chain_pem: Path
    ocsp_signer_pem: Path
    ocsp_signer_key: Path
    root_der: Path
    root_key: Path
    intermediate_der: Path
    intermediate_key: Path
    bundle_der_dir: Path
    rogue_signer_pem: Path
    rogue_signer_key: Path
    index_json: Path
    leaves_dir: Path
    meta_json: Path
    lock_file: Path


@dataclass
class LeafFiles:
    name: str
    kind: str
    cert_pem: Path
    key_pem: Path
    fullchain_pem: Path
    serial: int
    ocsp_url: str | None
    must_staple: bool
    dns_names: list[str] = field(default_factory=list)
    issuer_pem: Path | None = None  # the intermediate: what an OCSP request needs besides the leaf
    meta_json: Path | None = None

    @property
    def serial_hex(self) -> str:
        return serial_to_hex(self.serial)


# ---------------------------------------------------------------------------------------------- small helpers


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def serial_to_hex(serial: int) -> str:
    """The index key for a serial; the responder uses the same spelling."""
    return format(serial, "x")


def cert_not_after(cert: x509.Certificate) -> datetime.datetime:
    # cryptography >= 42 deprecates the naive attribute; older releases (Debian's 38) only have that one.
    if hasattr(cert, "not_valid_after_utc"):
        return cert.not_valid_after_utc
    return cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write via a temp file in the same directory and rename, so readers never see half a file.

    mkstemp creates the temp file 0600, so a key is never readable by others, not even briefly.
    No fsync: lab files live for one test session and speed matters more than crash safety.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp_file:
            tmp_file.write(data)
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def write_if_changed(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Keep mtimes stable on a re-run, so idempotent builds do not look like changes."""
    with contextlib.suppress(OSError):
        if path.read_bytes() == data and (path.stat().st_mode & 0o777) == mode:
            return
    write_atomic(path, data, mode)


@contextlib.contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    """Serialise read-modify-write of a CA dir across processes (flock is released when the fd closes)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _check_name(what: str, name: str) -> None:
    if not _SAFE_NAME.match(name):
        raise ValueError(f"{what} {name!r} must match {_SAFE_NAME.pattern} (it becomes a file name)")


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} does not hold an EC private key")
    return key


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _subject(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fleetlab"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_matches(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return cert.public_key().public_bytes(serialization.Encoding.DER, spki) == key.public_key().public_bytes(
        serialization.Encoding.DER, spki
    )


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Name and key-identifier match; enough to notice that a CA was rebuilt with new keys."""
    if cert.issuer != issuer.subject:
        return False
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return False
    expected = x509.SubjectKeyIdentifier.from_public_key(issuer.public_key()).digest
    return aki.key_identifier == expected


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer_public_key: ec.EllipticCurvePublicKey,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> x509.CertificateBuilder:
    """The parts every lab certificate shares: names, validity, serial, SKI and AKI."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key), critical=False)
    )


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _signature_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


# ---------------------------------------------------------------------------------------------- CA certificates


def _make_root(name: str, key: ec.EllipticCurvePrivateKey, now: datetime.datetime) -> x509.Certificate:
    subject = _subject(f"fleetlab {name} root CA")
    builder = _builder(subject, subject, key.public_key(), key.public_key(), now - CA_BACKDATE, now + CA_VALIDITY)
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    builder = builder.add_extension(_ca_key_usage(), critical=True)
    return builder.sign(key, hashes.SHA256())


def _make_intermediate(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    root: x509.Certificate,
    root_key: ec.EllipticCurvePrivateKey,
    now: datetime.datetime,
) -> x509.Certificate:
    subject = _subject(f"fleetlab {name} intermediate CA")
    not_after = min(now + CA_VALIDITY, cert_not_after(root))
    builder = _builder(subject, root.subject, key.public_key(), root_key.public_key(), now - CA_BACKDATE, not_after)
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    builder = builder.add_extension(_ca_key_usage(), critical=True)
    return builder.sign(root_key, hashes.SHA256())


def _make_ocsp_signer(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    intermediate: x509.Certificate,
    intermediate_key: ec.EllipticCurvePrivateKey,
    now: datetime.datetime,
) -> x509.Certificate:
    """RFC 6960 4.2.2.2: a delegated responder is certified by the CA that issued the checked certificates."""
    subject = _subject(f"fleetlab {name} OCSP signer")
    not_after = cert_not_after(intermediate)
    builder = _builder(
        subject, intermediate.subject, key.public_key(), intermediate_key.public_key(), now - CA_BACKDATE, not_after
    )
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    builder = builder.add_extension(_signature_key_usage(), critical=True)
    builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
    # nocheck: clients must not ask OCSP about the signer itself (there is no CRL in the lab either).
    builder = builder.add_extension(x509.OCSPNoCheck(), critical=False)
    return builder.sign(intermediate_key, hashes.SHA256())


def _make_rogue_signer(name: str, key: ec.EllipticCurvePrivateKey, now: datetime.datetime) -> x509.Certificate:
    """Looks like an OCSP signer but chains to nothing the clients trust."""
    subject = _subject(f"fleetlab {name} rogue OCSP signer")
    builder = _builder(subject, subject, key.public_key(), key.public_key(), now - CA_BACKDATE, now + CA_VALIDITY)
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    builder = builder.add_extension(_signature_key_usage(), critical=True)
    builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
    return builder.sign(key, hashes.SHA256())


# ---------------------------------------------------------------------------------------------- CA directory


def _ca_files(pki_dir: Path, name: str, ocsp_url: str) -> CaFiles:
    ca_dir = Path(pki_dir) / name
    return CaFiles(
        name=name,
        dir=ca_dir,
        ocsp_url=ocsp_url,
        root_pem=ca_dir / "root.pem",
        intermediate_pem=ca_dir / "intermediate.pem",
        bundle_pem=ca_dir / "bundle.pem",
        chain_pem=ca_dir / "chain.pem",
        ocsp_signer_pem=ca_dir / "ocsp-signer.pem",
        ocsp_signer_key=ca_dir / "ocsp-signer.key",
        root_der=ca_dir / "root.der",
        root_key=ca_dir / "root.key",
        intermediate_der=ca_dir / "intermediate.der",
        intermediate_key=ca_dir / "intermediate.key",
        bundle_der_dir=ca_dir / "bundle-der",
        rogue_signer_pem=ca_dir / "rogue-signer.pem",
        rogue_signer_key=ca_dir / "rogue-signer.key",
        index_json=ca_dir / "index.json",
        leaves_dir=ca_dir / "leaves",
        meta_json=ca_dir / "ca.json",
        lock_file=ca_dir / ".lock",
    )


def _read_meta(meta_json: Path) -> dict[str, str]:
    try:
        meta = json.loads(meta_json.read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _existing_ca_is_usable(ca: CaFiles) -> bool:
    """True when the stored CA was built for the same URL and its certificates and keys still fit together."""
    meta = _read_meta(ca.meta_json)
    if meta.get("name") != ca.name or meta.get("ocsp_url") != ca.ocsp_url:
        return False
    try:
        root, root_key = load_cert(ca.root_pem), load_key(ca.root_key)
        intermediate, intermediate_key = load_cert(ca.intermediate_pem), load_key(ca.intermediate_key)
        signer, signer_key = load_cert(ca.ocsp_signer_pem), load_key(ca.ocsp_signer_key)
    except (OSError, ValueError):
        return False
    return (
        _key_matches(root, root_key)
        and _key_matches(intermediate, intermediate_key)
        and _key_matches(signer, signer_key)
        and _issued_by(intermediate, root)
        and _issued_by(signer, intermediate)
    )


def _create_ca(ca: CaFiles) -> None:
    """Fresh keys and certificates; leaves and index of an older CA are meaningless now, so they go."""
    now = utc_now()
    root_key, intermediate_key, signer_key = _new_key(), _new_key(), _new_key()
    root = _make_root(ca.name, root_key, now)
    intermediate = _make_intermediate(ca.name, intermediate_key, root, root_key, now)
    signer = _make_ocsp_signer(ca.name, signer_key, intermediate, intermediate_key, now)

    shutil.rmtree(ca.leaves_dir, ignore_errors=True)
    write_atomic(ca.index_json, b"{}\n")
    write_atomic(ca.root_key, _key_pem(root_key), 0o600)
    write_atomic(ca.intermediate_key, _key_pem(intermediate_key), 0o600)
    write_atomic(ca.ocsp_signer_key, _key_pem(signer_key), 0o600)
    write_atomic(ca.root_pem, _pem(root))
    write_atomic(ca.intermediate_pem, _pem(intermediate))
    write_atomic(ca.ocsp_signer_pem, _pem(signer))
    # ca.json last: it marks the set as complete, so a crash half-way makes the next build start over.
    meta = {"name": ca.name, "ocsp_url": ca.ocsp_url}
    write_atomic(ca.meta_json, (json.dumps(meta, indent=2) + "\n").encode())


def ensure_rogue_signer(ca: CaFiles) -> None:
    """Generated once per CA dir and then kept, so wrong-signer responses are stable across restarts."""
    try:
        if _key_matches(load_cert(ca.rogue_signer_pem), load_key(ca.rogue_signer_key)):
            return
    except (OSError, ValueError):
        pass
    key = _new_key()
    write_atomic(ca.rogue_signer_key, _key_pem(key), 0o600)
    write_atomic(ca.rogue_signer_pem, _pem(_make_rogue_signer(ca.name, key, utc_now())))


def _write_derived_files(ca: CaFiles) -> None:
    """Files computed from the certificates; rewritten only when their content would change."""
    root, intermediate = load_cert(ca.root_pem), load_cert(ca.intermediate_pem)
    write_if_changed(ca.root_der, _der(root))
    write_if_changed(ca.intermediate_der, _der(intermediate))
    write_if_changed(ca.bundle_pem, _pem(intermediate) + _pem(root))
    write_if_changed(ca.chain_pem, _pem(intermediate))
    write_if_changed(ca.bundle_der_dir / "00-intermediate.der", _der(intermediate))
    write_if_changed(ca.bundle_der_dir / "01-root.der", _der(root))
    if not ca.index_json.exists():
        write_atomic(ca.index_json, b"{}\n")


def build_ca(pki_dir: Path, name: str, ocsp_url: str) -> CaFiles:
    """Create the CA `name` under pki_dir, or reuse it (same keys) when it exists for the same OCSP URL.

    A different URL rebuilds the CA from scratch with new keys, and drops its leaves and index.
    """
    _check_name("CA name", name)
    if not ocsp_url.startswith("http://"):
        raise ValueError(f"ocsp_url {ocsp_url!r} must be an http:// URL (OCSP clients do not speak https to responders)")
    ca = _ca_files(Path(pki_dir), name, ocsp_url)
    with _locked(ca.lock_file):
        if not _existing_ca_is_usable(ca):
            _create_ca(ca)
        _write_derived_files(ca)
        ensure_rogue_signer(ca)
    return ca


def load_ca(pki_dir: Path, name: str) -> CaFiles:
    """The CA that build_ca made earlier; FileNotFoundError when there is none."""
    _check_name("CA name", name)
    ca_dir = Path(pki_dir) / name
    meta = _read_meta(ca_dir / "ca.json")
    if "ocsp_url" not in meta:
        raise FileNotFoundError(f"no lab CA in {ca_dir} (ca.json missing or unreadable): run build_ca first")
    ca = _ca_files(Path(pki_dir), name, meta["ocsp_url"])
    for required in (ca.root_pem, ca.intermediate_pem, ca.intermediate_key, ca.ocsp_signer_pem, ca.ocsp_signer_key):
        if not required.exists():
            raise FileNotFoundError(f"lab CA {name} is incomplete: {required} is missing; run build_ca again")
    return ca


# ---------------------------------------------------------------------------------------------- index


def read_index(ca: CaFiles) -> dict[str, dict[str, str | None]]:
    try:
        index = json.loads(ca.index_json.read_text())
    except FileNotFoundError:
        return {}
    if not isinstance(index, dict):
        raise ValueError(f"{ca.index_json} does not hold a JSON object")
    return index


def _write_index(ca: CaFiles, index: dict[str, dict[str, str | None]]) -> None:
    write_atomic(ca.index_json, (json.dumps(index, indent=2, sort_keys=True) + "\n").encode())


def _index_entry(subject: str, revoked_at: datetime.datetime | None, reason: str | None) -> dict[str, str | None]:
    if revoked_at is None:
        return {"status": "good", "revoked_at": None, "reason": None, "subject": subject}
    return {"status": "revoked", "revoked_at": revoked_at.isoformat(), "reason": reason, "subject": subject}


def mark_revoked(
    ca: CaFiles, serial: int, reason: str = "keyCompromise", revoked_at: datetime.datetime | None = None
) -> None:
    """Revoke a recorded serial; the running responder picks the change up on its next request."""
    valid_reasons = [flag.value for flag in x509.ReasonFlags]
    if reason not in valid_reasons:
        raise ValueError(f"reason {reason!r} is not one of {valid_reasons}")
    with _locked(ca.lock_file):
        index = read_index(ca)
        key = serial_to_hex(serial)
        if key not in index:
            raise KeyError(f"serial {key} is not in {ca.index_json}")
        index[key] = _index_entry(index[key].get("subject") or "", revoked_at or utc_now(), reason)
        _write_index(ca, index)


def _record_leaf(ca: CaFiles, serial: int, kind: str, subject: str) -> None:
    """Bring the index in line with the leaf's kind; keeps an earlier revocation time on reuse."""
    index = read_index(ca)
    key = serial_to_hex(serial)
    if kind == "unknown":
        # The point of this kind: the CA signed it but the responder has never heard of it.
        if index.pop(key, None) is not None:
            _write_index(ca, index)
        return
    if kind == "revoked":
        existing = index.get(key) or {}
        if existing.get("status") == "revoked":
            return
        entry = _index_entry(subject, utc_now() - REVOKED_LEAF_AGE, "keyCompromise")
    else:
        entry = _index_entry(subject, None, None)
    if index.get(key) != entry:
        index[key] = entry
        _write_index(ca, index)


# ---------------------------------------------------------------------------------------------- leaves


class LeafPaths(NamedTuple):
    cert_pem: Path
    key_pem: Path
    fullchain_pem: Path
    meta_json: Path


def _leaf_paths(ca: CaFiles, name: str) -> LeafPaths:
    return LeafPaths(
        ca.leaves_dir / f"{name}.pem",
        ca.leaves_dir / f"{name}.key",
        ca.leaves_dir / f"{name}.fullchain.pem",
        ca.leaves_dir / f"{name}.json",
    )


def _general_name(name: str) -> x509.GeneralName:
    """IP literals become iPAddress SANs, since clients never match an IP against a dNSName."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _leaf_ocsp_url(ca: CaFiles, kind: str) -> str | None:
    return None if kind == "no-ocsp-url" else ca.ocsp_url


def _make_leaf(
    ca: CaFiles, kind: str, dns_names: list[str], key: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    intermediate, intermediate_key = load_cert(ca.intermediate_pem), load_key(ca.intermediate_key)
    now = utc_now()
    not_after = min(now + LEAF_VALIDITY, cert_not_after(intermediate))
    builder = _builder(
        _subject(dns_names[0]), intermediate.subject, key.public_key(), intermediate_key.public_key(),
        now - LEAF_BACKDATE, not_after,
    )
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    builder = builder.add_extension(_signature_key_usage(), critical=True)
    builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    builder = builder.add_extension(
        x509.SubjectAlternativeName([_general_name(dns_name) for dns_name in dns_names]), critical=False
    )
    ocsp_url = _leaf_ocsp_url(ca, kind)
    if ocsp_url is not None:
        access = x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))
        builder = builder.add_extension(x509.AuthorityInformationAccess([access]), critical=False)
    if kind == "must-staple":
        builder = builder.add_extension(x509.TLSFeature([x509.TLSFeatureType.status_request]), critical=False)
    return builder.sign(intermediate_key, hashes.SHA256())


def _leaf_files(ca: CaFiles, name: str, kind: str, dns_names: list[str], serial: int) -> LeafFiles:
    paths = _leaf_paths(ca, name)
    return LeafFiles(
        name=name,
        kind=kind,
        cert_pem=paths.cert_pem,
        key_pem=paths.key_pem,
        fullchain_pem=paths.fullchain_pem,
        serial=serial,
        ocsp_url=_leaf_ocsp_url(ca, kind),
        must_staple=kind == "must-staple",
        dns_names=list(dns_names),
        issuer_pem=ca.intermediate_pem,
        meta_json=paths.meta_json,
    )


def _reusable_leaf(ca: CaFiles, name: str, kind: str, dns_names: list[str]) -> LeafFiles | None:
    """The stored leaf when it has the wanted kind and names, fits the current CA and is not about to expire."""
    paths = _leaf_paths(ca, name)
    meta = _read_meta(paths.meta_json)
    if meta.get("kind") != kind or sorted(meta.get("dns_names", [])) != sorted(dns_names):
        return None
    try:
        cert, key = load_cert(paths.cert_pem), load_key(paths.key_pem)
        intermediate = load_cert(ca.intermediate_pem)
        fullchain_ok = paths.fullchain_pem.read_bytes() == _pem(cert) + _pem(intermediate)
    except (OSError, ValueError):
        return None
    if not (fullchain_ok and _key_matches(cert, key) and _issued_by(cert, intermediate)):
        return None
    if meta.get("serial") != serial_to_hex(cert.serial_number):
        return None
    if cert_not_after(cert) - utc_now() < LEAF_RENEW_BEFORE:
        return None
    # The stored order, not the caller's: the first name is the CN of the certificate on disk.
    return _leaf_files(ca, name, kind, meta["dns_names"], cert.serial_number)


def issue_leaf(ca: CaFiles, name: str, dns_names: list[str], kind: str = "normal") -> LeafFiles:
    """Issue (or reuse) the server certificate `name` from the CA's intermediate; see LEAF_KINDS.

    Entries of dns_names that are IP literals become iPAddress SANs; the first entry is the subject CN.
    """
    _check_name("leaf name", name)
    if kind not in LEAF_KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(LEAF_KINDS)}")
    if not dns_names:
        raise ValueError("a leaf needs at least one DNS name")
    with _locked(ca.lock_file):
        leaf = _reusable_leaf(ca, name, kind, dns_names)
        if leaf is None:
            leaf = _write_new_leaf(ca, name, kind, dns_names)
        _record_leaf(ca, leaf.serial, kind, dns_names[0])
    return leaf


def _write_new_leaf(ca: CaFiles, name: str, kind: str, dns_names: list[str]) -> LeafFiles:
    key = _new_key()
    cert = _make_leaf(ca, kind, dns_names, key)
    intermediate = load_cert(ca.intermediate_pem)
    paths = _leaf_paths(ca, name)
    write_atomic(paths.key_pem, _key_pem(key), 0o600)
    write_atomic(paths.cert_pem, _pem(cert))
    write_atomic(paths.fullchain_pem, _pem(cert) + _pem(intermediate))
    meta = {"kind": kind, "dns_names": list(dns_names), "serial": serial_to_hex(cert.serial_number)}
    write_atomic(paths.meta_json, (json.dumps(meta, indent=2) + "\n").encode())
    return _leaf_files(ca, name, kind, dns_names, cert.serial_number)


def load_leaf(ca: CaFiles, name: str) -> LeafFiles:
    """A leaf issued earlier by issue_leaf; FileNotFoundError when there is none."""
    _check_name("leaf name", name)
    paths = _leaf_paths(ca, name)
    meta = _read_meta(paths.meta_json)
    if "kind" not in meta or not paths.cert_pem.exists():
        raise FileNotFoundError(f"no leaf {name!r} in {ca.leaves_dir}: run issue_leaf first")
    serial = load_cert(paths.cert_pem).serial_number
    return _leaf_files(ca, name, meta["kind"], meta.get("dns_names", []), serial)
