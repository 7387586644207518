# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""An OCSP client that reports what happened at every step, instead of just an answer.

* ``build_request``: the DER request for one certificate (SHA-1 CertID, as Apache and most responders use),
  optionally with a nonce.
* ``Resolver``: DNS per address family, once per host name, bounded by a timeout.
* ``exchange``: one HTTP round trip to one address (or through a proxy) with an explicit deadline; redirects
  are reported, never followed.
* ``read_response``: parse the DER answer and check it: CertID, nonce, signature (issuer or a delegated
  responder certified by the issuer with the OCSP-signing EKU), times and status.

All OCSP work is done by ``cryptography``; nothing here shells out or decodes ASN.1 by hand. Importable without
Ansible; results are plain dicts ready for a module's return value.
"""

from __future__ import annotations

import base64
import datetime
import errno
import http.client
import os
import re
import socket
import threading
import time
import traceback
from urllib.parse import quote, urlsplit

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp
    from cryptography.x509.oid import ExtendedKeyUsageOID
except ImportError:  # pragma: no cover - reported by the module through certificates.HAS_CRYPTOGRAPHY
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None

from ansible_collections.fleet.stapling.plugins.module_utils import certificates, signatures
from ansible_collections.fleet.stapling.plugins.module_utils.ocsp_verdict import MAX_BODY_BYTES, format_time

FAMILIES = {"4": socket.AF_INET, "6": socket.AF_INET6}
FAMILY_NAMES = {socket.AF_INET: "4", socket.AF_INET6: "6"}
REQUEST_CONTENT_TYPE = "application/ocsp-request"
NONCE_BYTES = 16  # RFC 8954: 1 to 32 octets
USER_AGENT = "fleet.stapling-ocsp_probe"
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class OcspClientError(Exception):
    """Bad input to the client (an unusable URL, a proxy that is not http://); the message says which."""


def describe_error(exc):
    """An exception in words: strerror for OS errors, else its text, else its type."""
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


# ---------------------------------------------------------------------------------------------- URLs and proxies


class Endpoint(object):
    """Where to connect: a host name or address literal and a port."""

    def __init__(self, host, port):
        self.host = host
        self.port = port

    def __repr__(self):
        return "Endpoint(%r, %r)" % (self.host, self.port)


def parse_url(url, what="OCSP URL"):
    """(scheme, Endpoint, path) of an http:// URL; OcspClientError for anything else."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise OcspClientError("%s %r cannot be parsed: %s" % (what, url, exc))
    if parts.scheme.lower() != "http":
        raise OcspClientError("%s %r is not an http:// URL; Apache's OCSP client (and so stapling) speaks plain "
                              "HTTP only" % (what, url))
    if not parts.hostname:
        raise OcspClientError("%s %r names no host" % (what, url))
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme.lower(), Endpoint(parts.hostname, port or 80), path


def _no_proxy_matches(host, port, no_proxy):
    for entry in (item.strip().lower() for item in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        entry_host, sep, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if sep and entry_port.isdigit():
            if int(entry_port) != port:
                continue
            entry = entry_host
        entry = entry.strip("[]")
        if host == entry or host.endswith("." + entry.lstrip(".")):
            return True
    return False


def proxy_for(url, proxy=None, use_proxy=True, environ=None):
    """The proxy URL to use for an OCSP URL, or None.

    ``proxy`` (the module option) wins; else ``http_proxy``/``HTTP_PROXY`` from the managed host's
    environment, unless ``no_proxy``/``NO_PROXY`` lists the responder's host (exact name, domain suffix,
    optional :port, or ``*``). ``use_proxy=False`` ignores the environment.
    """
    if proxy:
        return proxy
    if not use_proxy:
        return None
    environ = os.environ if environ is None else environ
    from_env = environ.get("http_proxy") or environ.get("HTTP_PROXY")
    if not from_env:
        return None
    endpoint = parse_url(url)[1]
    no_proxy = environ.get("no_proxy") or environ.get("NO_PROXY") or ""
    if _no_proxy_matches(endpoint.host.lower(), endpoint.port, no_proxy):
        return None
    return from_env


def proxy_endpoint(proxy):
    """The Endpoint of an http://host:port proxy (a bare host:port is accepted too)."""
    text = proxy if "://" in proxy else "http://" + proxy
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise OcspClientError("proxy %r cannot be parsed: %s" % (proxy, exc))
    if parts.scheme.lower() != "http" or not parts.hostname:
        raise OcspClientError("proxy %r must be an http://host:port URL" % proxy)
    return Endpoint(parts.hostname, port or 80)


# ---------------------------------------------------------------------------------------------- DNS


def _getaddrinfo_bounded(host, port, family, timeout):
    """getaddrinfo has no timeout of its own: run it in a daemon thread that may be abandoned."""
    outcome = {}

    def look_up():
        try:
            outcome["answers"] = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=look_up, name="ocsp-dns-%s" % host, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return None, "no DNS answer within %.3g s" % timeout
    if "error" in outcome:
        error = outcome["error"]
        return None, describe_error(error)
    return outcome["answers"], None


def resolve(host, port, family, timeout):
    """Addresses of ``host`` per family, in the resolver's order, as {"4": [...], "6": [...], "error": ...}.

    ``family`` is "4", "6" or None (both, one lookup, the system's preference order kept in ``order``).
    """
    answers, error = _getaddrinfo_bounded(host, port, FAMILIES.get(family, socket.AF_UNSPEC), timeout)
    facts = {"host": host, "4": [], "6": [], "order": [], "error": error}
    for found_family, _type, _proto, _canon, sockaddr in answers or ():
        name = FAMILY_NAMES.get(found_family)
        if name is None or sockaddr[0] in facts[name]:
            continue
        facts[name].append(sockaddr[0])
        facts["order"].append(sockaddr[0])
    return facts


class Resolver(object):
    """Resolves each host name once per family setting, whatever the number of threads asking."""

    def __init__(self, timeout):
        self.timeout = timeout
        self._answers = {}
        self._locks = {}
        self._guard = threading.Lock()

    def lookup(self, host, port, family=None):
        key = (host.lower(), family)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._answers:
                self._answers[key] = resolve(host, port, family, self.timeout)
            return self._answers[key]


# ---------------------------------------------------------------------------------------------- TCP


def _remaining(deadline):
    return max(deadline - time.monotonic(), 0.001)


def connect(addresses, port, deadline):
    """Connect to the first address that accepts, in order, all within the deadline.

    Returns (socket or None, facts): facts has ``result`` (ok, refused, failed, timeout), ``address``,
    ``latency`` of the successful connect, ``error`` and every ``attempts`` entry.
    """
    attempts = []
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        started = time.monotonic()
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(_remaining(deadline))
        try:
            sock.connect((address, port))
        except (socket.timeout, TimeoutError) as exc:
            attempts.append(_attempt(address, "timeout", started, str(exc) or "timed out"))
            sock.close()
            break  # the deadline is spent: no time left for another address
        except ConnectionRefusedError as exc:
            attempts.append(_attempt(address, "refused", started, describe_error(exc)))
            sock.close()
        except OSError as exc:
            result = "timeout" if exc.errno == errno.ETIMEDOUT else "failed"
            attempts.append(_attempt(address, result, started, describe_error(exc)))
            sock.close()
        else:
            attempts.append(_attempt(address, "ok", started, None))
            return sock, dict(attempts[-1], attempts=attempts)
        if time.monotonic() >= deadline:
            break
    if not attempts:
        return None, {"result": "failed", "address": None, "latency": None, "error": "no address to connect to",
                      "attempts": []}
    return None, dict(attempts[-1], attempts=attempts)


def _attempt(address, result, started, error):
    return {"address": address, "result": result, "latency": round(time.monotonic() - started, 4), "error": error}


# ---------------------------------------------------------------------------------------------- OCSP request


def build_request(certificate, issuer, nonce=None):
    """The OCSPRequest object and its DER for ``certificate``; ``nonce`` (bytes) adds the nonce extension."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1())
    if nonce is None:
        request = builder.build()
        return request, request.public_bytes(serialization.Encoding.DER)
    request = builder.add_extension(x509.OCSPNonce(nonce), critical=False).build()
    der = request.public_bytes(serialization.Encoding.DER)
    if _octet_string(_octet_string(nonce)) not in der:
        # Older cryptography (3.4.8 among them) writes the nonce bytes as the extension value itself, where
        # RFC 8954 wants them inside an OCTET STRING; hand such a release the inner OCTET STRING ready made.
        request = builder.add_extension(x509.OCSPNonce(_octet_string(nonce)), critical=False).build()
        der = request.public_bytes(serialization.Encoding.DER)
    return request, der


def _octet_string(value):
    """DER OCTET STRING of a short value (a nonce: at most 32 bytes, so a one-byte length)."""
    return b"\x04" + bytes([len(value)]) + value


def new_nonce():
    return os.urandom(NONCE_BYTES)


def get_path(path, request_der):
    """RFC 6960 appendix A.1: the URL path, a slash, and the URL-encoded base64 of the DER request."""
    encoded = quote(base64.b64encode(request_der).decode("ascii"), safe="")
    return path.rstrip("/") + "/" + encoded


# ---------------------------------------------------------------------------------------------- HTTP


def body_kind(content_type, body):
    """What a body looks like: der (starts like a DER SEQUENCE), html, text, empty or binary."""
    if not body:
        return "empty"
    head = body[:512].lstrip().lower()
    if "html" in (content_type or "").lower() or head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "html"
    if body[:1] == b"\x30":
        return "der"
    try:
        body[:512].decode("utf-8")
    except UnicodeDecodeError:
        return "binary"
    return "text"


def page_title(body):
    match = _TITLE.search(body[:65536])
    if not match:
        return None
    return " ".join(match.group(1).decode("utf-8", "replace").split())[:120] or None


class _DeadlineSocket(socket.socket):
    """A socket whose every send and receive is bounded by what is left of one overall deadline.

    A plain socket timeout bounds each read: a responder that trickles its answer a byte at a time never trips
    it, and would hold the probe as long as it likes. Here the time left shrinks with every read, so the whole
    exchange, headers included, ends at the deadline. ``received`` counts the bytes that came, which tells a
    responder that never answered from one that answered too slowly.
    """

    deadline = 0.0
    received = 0

    @classmethod
    def adopt(cls, sock, deadline):
        adopted = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        adopted.deadline = deadline
        return adopted

    def _arm(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("the answer did not arrive within the timeout")
        self.settimeout(left)

    def recv_into(self, buffer, nbytes=0, flags=0):
        self._arm()
        count = socket.socket.recv_into(self, buffer, nbytes, flags)
        self.received += count
        return count

    def sendall(self, data, flags=0):
        self._arm()
        return socket.socket.sendall(self, data, flags)


class _PreConnected(http.client.HTTPConnection):
    """http.client over a socket we connected ourselves (to choose the address family and time the connect)."""

    def __init__(self, sock, host, port, timeout):
        http.client.HTTPConnection.__init__(self, host, port, timeout=timeout)
        self.sock = sock

    def connect(self):
        raise OSError("the connection was closed before the request was sent")


class BodyTooLarge(Exception):
    """The answer is larger than MAX_BODY_BYTES: it is dropped, not read to its end."""


def http_round_trip(sock, endpoint, target, method, request_der, deadline):
    """Send one OCSP request over a connected socket; (facts, body). Never follows redirects.

    ``deadline`` bounds the whole exchange, not each read. A body larger than MAX_BODY_BYTES (declared in
    Content-Length, or found while reading a chunked or close-delimited body) is refused: ``too_large`` is set,
    the body returned is empty, and the connection is closed without reading the rest.
    """
    facts = {"method": method.upper(), "status": None, "reason": None, "content_type": None, "location": None,
             "length": 0, "body_kind": None, "title": None, "error": None, "timed_out": False, "received": 0,
             "too_large": False}
    sock = _DeadlineSocket.adopt(sock, deadline)
    connection = _PreConnected(sock, endpoint.host, endpoint.port, _remaining(deadline))
    headers = {"User-Agent": USER_AGENT, "Connection": "close", "Accept": "application/ocsp-response"}
    body = b""
    try:
        if method == "get":
            connection.request("GET", target, headers=headers)
        else:
            headers["Content-Type"] = REQUEST_CONTENT_TYPE
            connection.request("POST", target, body=request_der, headers=headers)
        response = connection.getresponse()
        facts.update(status=response.status, reason=response.reason,
                     content_type=response.getheader("Content-Type"), location=response.getheader("Location"))
        body = _read_body(response)
    except BodyTooLarge:
        facts["too_large"] = True
    except (socket.timeout, TimeoutError):
        facts["timed_out"] = True
    except http.client.RemoteDisconnected:
        facts["error"] = "the responder closed the connection without an HTTP answer"
    except (http.client.HTTPException, OSError) as exc:
        facts["error"] = "broken HTTP exchange: %s" % describe_error(exc)
    finally:
        connection.close()
        facts["received"] = sock.received
        sock.close()
    facts["length"] = len(body)
    facts["body_kind"] = body_kind(facts["content_type"], body)
    if facts["body_kind"] == "html":
        facts["title"] = page_title(body)
    return facts, body


def _declared_length(response):
    try:
        return int(response.getheader("Content-Length") or "")
    except ValueError:
        return None


def _read_body(response):
    """The whole body, or BodyTooLarge as soon as it is known to exceed MAX_BODY_BYTES.

    A Content-Length over the bound is refused before a byte of the body is read; a chunked or close-delimited
    body is read one block at a time and dropped once it passes the bound. The socket's deadline bounds the time.
    """
    declared = _declared_length(response)
    if declared is not None and declared > MAX_BODY_BYTES:
        raise BodyTooLarge()
    chunks = []
    size = 0
    while True:
        chunk = response.read(min(65536, MAX_BODY_BYTES + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge()
    return b"".join(chunks)


def exchange(url, addresses, request_der, method, timeout, proxy=None, port=None):
    """One OCSP round trip: connect to the first working address, send, read. Plain facts and the body.

    ``addresses`` are those of the responder's host, or of the proxy's when ``proxy`` is set (then DNS and
    connect facts are the proxy's, and the request line carries the absolute URL). ``timeout`` bounds the
    whole exchange, connect included.
    """
    started = time.monotonic()
    deadline = started + timeout
    endpoint, path = parse_url(url)[1:]
    connect_port = port or (proxy_endpoint(proxy).port if proxy else endpoint.port)
    facts = {"url": url, "proxy": proxy, "port": connect_port, "timeout": timeout, "latency": None, "http": None}
    sock, facts["connect"] = connect(addresses, connect_port, deadline)
    facts["address"] = facts["connect"]["address"]
    if sock is None:
        return facts, b""
    target = get_path(path, request_der) if method == "get" else path
    if proxy:
        target = "http://%s%s" % (_netloc(endpoint), target)
    facts["http"], body = http_round_trip(sock, endpoint, target, method, request_der, deadline)
    facts["latency"] = round(time.monotonic() - started, 4)
    return facts, body


def _netloc(endpoint):
    host = "[%s]" % endpoint.host if ":" in endpoint.host else endpoint.host
    return host if endpoint.port == 80 else "%s:%d" % (host, endpoint.port)


# ---------------------------------------------------------------------------------------------- the response

RESPONSE_STATUS_NAMES = {
    "SUCCESSFUL": "successful",
    "MALFORMED_REQUEST": "malformed_request",
    "INTERNAL_ERROR": "internal_error",
    "TRY_LATER": "try_later",
    "SIG_REQUIRED": "sig_required",
    "UNAUTHORIZED": "unauthorized",
}


def _utc(obj, name):
    """obj.<name>_utc, or the naive UTC attribute of cryptography < 43."""
    if hasattr(obj, name + "_utc"):
        return getattr(obj, name + "_utc")
    naive = getattr(obj, name)
    return naive.replace(tzinfo=datetime.timezone.utc) if naive is not None else None


def _valid_at(certificate, now):
    return _utc(certificate, "not_valid_before") <= now <= _utc(certificate, "not_valid_after")


def _same_certificate(one, other):
    return one.public_bytes(serialization.Encoding.DER) == other.public_bytes(serialization.Encoding.DER)


def _key_hash(certificate):
    """SHA-1 of the subjectPublicKey bits: what a ResponderID byKey holds (RFC 6960 4.2.1)."""
    return x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest


def find_signer(response, issuer):
    """The certificate the ResponderID names: the issuer, or one of the certificates in the response."""
    candidates = [issuer] + list(response.certificates)
    key_hash = response.responder_key_hash
    for candidate in candidates:
        if key_hash is not None and _key_hash(candidate) == key_hash:
            return candidate
        if key_hash is None and candidate.subject == response.responder_name:
            return candidate
    return None


def check_signature(response, issuer, now):
    """(valid, signer kind, signer subject, problem): who signed the response, and may they?

    Signer kinds: issuer, delegated (issued by the issuer, OCSP-signing EKU), unauthorized (a certificate
    the issuer did not certify for OCSP), unknown (the ResponderID matches no certificate at hand).
    """
    signer = find_signer(response, issuer)
    if signer is None:
        named = response.responder_name.rfc4514_string() if response.responder_name is not None else \
            "key hash %s" % response.responder_key_hash.hex()
        return False, "unknown", named, "signed by %s, which is neither the issuer nor a certificate in the " \
                                        "response" % named
    subject = signer.subject.rfc4514_string()
    kind = "issuer" if _same_certificate(signer, issuer) else "delegated"
    if kind == "delegated":
        problem = _delegation_problem(signer, issuer, now)
        if problem:
            return False, "unauthorized", subject, "signed by %s, %s" % (subject, problem)
    try:
        hash_algorithm, pss = signatures.signature_parameters(response)
        signatures.verify_signature(signer.public_key(), response.signature, response.tbs_response_bytes,
                                    hash_algorithm, response.signature_algorithm_oid, pss)
    except InvalidSignature:
        return False, kind, subject, "the signature by %s does not verify" % subject
    except (TypeError, ValueError, UnsupportedAlgorithm) as exc:
        return False, kind, subject, "the signature by %s cannot be checked: %s" % (subject, exc)
    return True, kind, subject, None


def _delegation_problem(signer, issuer, now):
    """Why a delegated responder certificate may not sign for ``issuer`` (RFC 6960 4.2.2.2), or None."""
    if signer.issuer != issuer.subject:
        return "which the issuer did not certify (it was issued by %s)" % signer.issuer.rfc4514_string()
    if not certificates.is_issued_by(signer, issuer):
        return "whose certificate does not verify against the issuer's key"
    try:
        usages = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = []
    if ExtendedKeyUsageOID.OCSP_SIGNING not in usages:
        return "whose certificate lacks the OCSP-signing extended key usage"
    if not _valid_at(signer, now):
        return "whose certificate is outside its validity period"
    return None


def _cert_id_problem(single, certificate, issuer):
    """Compare the answer's CertID with the one asked for, hashed with the answer's own algorithm."""
    if single.serial_number != certificate.serial_number:
        return "serial %X instead of %X" % (single.serial_number, certificate.serial_number)
    try:
        expected = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, single.hash_algorithm).build()
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return "the CertID uses a hash algorithm that cannot be checked"
    if single.issuer_name_hash != expected.issuer_name_hash or single.issuer_key_hash != expected.issuer_key_hash:
        return "the CertID names another issuer"
    return None


def _pick_single(response, certificate):
    """The SingleResponse for our serial when the response holds several; else the only one."""
    singles = list(getattr(response, "responses", []) or [])
    for single in singles:
        if single.serial_number == certificate.serial_number:
            return single
    return singles[0] if singles else response


def _nonce_state(response, nonce):
    if nonce is None:
        return "not_sent"
    try:
        echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return "not_echoed"
    # Older cryptography reads the echoed value without unwrapping its OCTET STRING (see build_request).
    return "echoed" if echoed in (nonce, _octet_string(nonce)) else "mismatch"


def read_response(der, certificate, issuer, nonce=None, now=None):
    """Everything a DER OCSP response says about ``certificate``, checked, as plain data.

    ``issuer`` may be None (then only the envelope is read, and the signature is reported unchecked).
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    facts = {"parse_error": None, "response_status": None}
    try:
        response = ocsp.load_der_ocsp_response(der)
        status = response.response_status
    except ValueError as exc:
        facts["parse_error"] = str(exc) or "not a DER OCSP response"
        return facts
    facts["response_status"] = RESPONSE_STATUS_NAMES.get(status.name, status.name.lower())
    if status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return facts
    try:
        facts.update(_successful_facts(response, certificate, issuer, nonce, now))
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        facts["parse_error"] = "the response cannot be read: %s" % exc
    return facts


def _successful_facts(response, certificate, issuer, nonce, now):
    single = _pick_single(response, certificate)
    facts = {
        "serial": "%X" % single.serial_number,
        "cert_status": single.certificate_status.name.lower(),
        "revocation_time": format_time(_utc(single, "revocation_time")),
        "revocation_reason": single.revocation_reason.value if single.revocation_reason is not None else None,
        "this_update": format_time(_utc(single, "this_update")),
        "next_update": format_time(_utc(single, "next_update")),
        "produced_at": format_time(_utc(response, "produced_at")),
        "nonce": _nonce_state(response, nonce),
        "responder_certificates": len(response.certificates),
    }
    if issuer is None:
        facts.update(cert_id_matches=None, cert_id_problem=None, signature_valid=None, signer=None,
                     signer_subject=None, signature_error="the issuer is unknown, so the signature cannot be checked")
        return facts
    problem = _cert_id_problem(single, certificate, issuer)
    valid, signer, signer_subject, signature_error = check_signature(response, issuer, now)
    facts.update(cert_id_matches=problem is None, cert_id_problem=problem, signature_valid=valid, signer=signer,
                 signer_subject=signer_subject, signature_error=signature_error)
    return facts
