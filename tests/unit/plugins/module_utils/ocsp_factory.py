# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""OCSP material for unit tests: a CA with delegated signers, signed responses, and a tiny HTTP responder.

The responder listens on loopback only and answers each request with whatever the test put in ``answer``
(a fixed reply or a function of the request), so every transport and protocol fault can be produced
without the lab.
"""

from __future__ import annotations

import datetime
import http.server
import socket
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class Issued(object):
    """A certificate and its private key."""

    def __init__(self, certificate, key):
        self.certificate = certificate
        self.key = key

    @property
    def pem(self):
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self):
        return self.certificate.public_bytes(serialization.Encoding.DER)


def _sign(subject, issuer_name, public_key, signing_key, extensions, not_before=None, not_after=None):
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name).public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before or NOW - datetime.timedelta(days=1))
               .not_valid_after(not_after or NOW + datetime.timedelta(days=30)))
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signing_key, hashes.SHA256())


class OcspCA(object):
    """A CA that issues leaves and OCSP signers, and signs OCSP responses."""

    def __init__(self, common_name="Unit OCSP CA", key=None):
        """``key``: the CA's private key (ECDSA P-256 unless given; RSA for RSA-PSS responses)."""
        key = key or ec.generate_private_key(ec.SECP256R1())
        certificate = _sign(name(common_name), name(common_name), key.public_key(), key,
                            [(x509.BasicConstraints(ca=True, path_length=None), True)])
        self.ca = Issued(certificate, key)

    @property
    def certificate(self):
        return self.ca.certificate

    def leaf(self, common_name, ocsp_url="http://127.0.0.1:9/", must_staple=False):
        key = ec.generate_private_key(ec.SECP256R1())
        extensions = [(x509.SubjectAlternativeName([x509.DNSName(common_name)]), False)]
        if ocsp_url:
            access = x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                            x509.UniformResourceIdentifier(ocsp_url))
            extensions.append((x509.AuthorityInformationAccess([access]), False))
        if must_staple:
            extensions.append((x509.TLSFeature([x509.TLSFeatureType.status_request]), False))
        return Issued(_sign(name(common_name), self.certificate.subject, key.public_key(), self.ca.key, extensions),
                      key)

    def signer(self, with_eku=True, expired=False):
        """A delegated responder certificate issued by this CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        extensions = []
        if with_eku:
            extensions.append((x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), False))
        not_after = NOW - datetime.timedelta(hours=1) if expired else None
        not_before = NOW - datetime.timedelta(days=2) if expired else None
        return Issued(_sign(name("Unit OCSP signer"), self.certificate.subject, key.public_key(), self.ca.key,
                            extensions, not_before, not_after), key)


def rogue_signer():
    """Self-signed, with the OCSP-signing EKU: looks the part, certified by nobody."""
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = _sign(name("Rogue signer"), name("Rogue signer"), key.public_key(), key,
                        [(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), False)])
    return Issued(certificate, key)


STATUSES = {"good": ocsp.OCSPCertStatus.GOOD, "revoked": ocsp.OCSPCertStatus.REVOKED,
            "unknown": ocsp.OCSPCertStatus.UNKNOWN}


def response(leaf, issuer, signer=None, status="good", this_update=None, next_update="default", nonce=None,
             by_name=False, include_signer=True, about=None):
    """A signed OCSP response (DER) about ``about`` (default ``leaf``), signed by ``signer`` (default: issuer)."""
    signer = signer or issuer
    this_update = this_update or NOW - datetime.timedelta(minutes=5)
    if next_update == "default":
        next_update = NOW + datetime.timedelta(days=1)
    revoked = status == "revoked"
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=about or leaf.certificate, issuer=issuer.certificate, algorithm=hashes.SHA1(),
        cert_status=STATUSES[status], this_update=this_update, next_update=next_update,
        revocation_time=NOW - datetime.timedelta(hours=2) if revoked else None,
        revocation_reason=x509.ReasonFlags.key_compromise if revoked else None)
    encoding = ocsp.OCSPResponderEncoding.NAME if by_name else ocsp.OCSPResponderEncoding.HASH
    builder = builder.responder_id(encoding, signer.certificate)
    if include_signer and signer is not issuer:
        builder = builder.certificates([signer.certificate])
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.sign(signer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def unsuccessful(status_name):
    status = getattr(ocsp.OCSPResponseStatus, status_name.upper())
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)


def nonce_of(request_der):
    """The nonce a DER request carries, or None."""
    request = ocsp.load_der_ocsp_request(request_der)
    try:
        return request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return None


# ---------------------------------------------------------------------------------------------- HTTP responder


class Reply(object):
    def __init__(self, status=200, body=b"", content_type="application/ocsp-response", headers=None):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_POST(self):  # noqa: N802 - fixed by BaseHTTPRequestHandler
        length = int(self.headers.get("Content-Length") or 0)
        self._answer(self.rfile.read(length))

    def do_GET(self):  # noqa: N802
        self._answer(None)

    def _answer(self, body):
        server = self.server
        # An answer function reads this request's body here: requests[-1] may already be a request that
        # arrived on another thread meanwhile.
        self.request_body = body
        server.requests.append({"method": self.command, "path": self.path, "body": body,
                                "headers": dict(self.headers.items())})
        answer = server.answer(self) if callable(server.answer) else server.answer
        if answer == "hang":
            server.release.wait(30)
            return
        if answer == "close":
            return
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for key, value in answer.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def server_bind(self):
        socket.socket.bind(self.socket, self.server_address)
        self.server_address = self.socket.getsockname()
        self.server_port = self.server_address[1]


class LocalResponder(object):
    """An HTTP server on 127.0.0.1 (or ::1) whose ``answer`` is a Reply, a function of the handler, "hang" or
    "close". ``requests`` records what arrived."""

    def __init__(self, answer=None, address="127.0.0.1"):
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        server_class = type("_FamilyServer", (_Server,), {"address_family": family})
        self.server = server_class((address, 0), _Handler)
        self.server.answer = answer or Reply()
        self.server.requests = []
        self.server.release = threading.Event()
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        host = "[%s]" % address if ":" in address else address
        self.url = "http://%s:%d/" % (host, self.server.server_port)
        self.port = self.server.server_port

    @property
    def requests(self):
        return self.server.requests

    def set(self, answer):
        self.server.answer = answer

    def close(self):
        self.server.release.set()
        self.server.shutdown()
        self.server.server_close()


def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class CaResponder(object):
    """An ``answer`` for LocalResponder that answers like a real responder for one CA.

    ``statuses`` maps a leaf's serial to good/revoked; serials it does not hold are unknown. The nonce of the
    request is echoed. ``asked`` counts requests per serial.
    """

    def __init__(self, ca, leaves, statuses=None, signer=None):
        self.ca = ca
        self.leaves = {issued.certificate.serial_number: issued for issued in leaves}
        self.statuses = statuses or {}
        self.signer = signer
        self.asked = {}

    def __call__(self, handler):
        body = handler.request_body
        request = ocsp.load_der_ocsp_request(body)
        serial = request.serial_number
        self.asked[serial] = self.asked.get(serial, 0) + 1
        leaf = self.leaves.get(serial)
        if leaf is None:
            return Reply(body=unsuccessful("unauthorized"))
        status = self.statuses.get(serial, "good")
        return Reply(body=response(leaf, self.ca.ca, signer=self.signer, status=status, nonce=nonce_of(body)))
