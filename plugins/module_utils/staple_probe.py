# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a TLS client gets from a server: the stapled OCSP response, or just whether a handshake completes.

Python's ``ssl`` module cannot send the status_request extension, so asking for a staple takes one of two
clients. pyOpenSSL (``Connection.request_ocsp``) is used when importable; otherwise the ``openssl s_client``
command (``staple_openssl_cli``), which nearly every host has while pyOpenSSL is rare. Both report the same
facts, plus ``client`` naming the one used. The staple itself is parsed and checked by
``ocsp_client.read_response`` (cryptography), exactly like an answer fetched from a responder.

``check_handshake`` only proves that a TLS handshake completes, with the standard library alone: that is the
liveness check after a reload, which must never depend on an optional library.

Every client connects through ``ocsp_client.connect``, so connection facts (refused, timeout, the address that
worked) are the same whichever client did the handshake.
"""

from __future__ import annotations

import re
import select
import ssl
import time
import traceback

try:
    from OpenSSL import SSL
except (ImportError, AttributeError):  # AttributeError: a pyOpenSSL too old for the installed cryptography
    HAS_PYOPENSSL = False
    PYOPENSSL_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_PYOPENSSL = True
    PYOPENSSL_IMPORT_ERROR = None

from ansible_collections.fleet.stapling.plugins.module_utils import certificates, ocsp_client, staple_openssl_cli

PYOPENSSL = "pyopenssl"
OPENSSL_CLI = staple_openssl_cli.CLIENT_NAME
STDLIB_SSL = "ssl"
STAPLE_CLIENTS = (PYOPENSSL, OPENSSL_CLI)
NO_CLIENT_MESSAGE = (
    "the stapled check needs pyOpenSSL (python3-openssl) or the openssl command (on PATH or %s) on the managed "
    "host, and neither is there; install one of them, or use stapled_check: handshake to check only that TLS "
    "handshakes complete" % staple_openssl_cli.FALLBACK_BINARY)


class StapleProbeError(Exception):
    """The TLS client could not be set up (not a server problem: those are reported as facts)."""


def staple_client():
    """The client the stapled check would use here: pyOpenSSL first, then openssl s_client; None without both."""
    if HAS_PYOPENSSL:
        return PYOPENSSL
    if staple_openssl_cli.find_openssl():
        return OPENSSL_CLI
    return None


def _ascii_name(server_name):
    """The SNI name as sent on the wire (IDNA), for clients that take text."""
    try:
        return server_name.encode("idna").decode("ascii")
    except UnicodeError:
        return server_name


def _connect(addresses, port, server_name, timeout, client):
    """The common start of every check: the facts skeleton and a TCP connection (or None) within the deadline."""
    started = time.monotonic()
    deadline = started + timeout
    facts = {"port": port, "server_name": server_name, "timeout": timeout, "client": client, "handshake": None,
             "handshake_error": None, "stapled": False, "latency": None, "tls_version": None, "staple": None,
             "chain": [], "read_error": None}
    sock, facts["connect"] = ocsp_client.connect(addresses, port, deadline)
    facts["address"] = facts["connect"]["address"]
    if sock is None:
        facts["handshake"] = "not_tried"
    return facts, sock, started, deadline


def _drive(step, sock, deadline, want_read, want_write, tls_errors, describe_tls):
    """Run a non-blocking handshake ``step`` until done or the deadline: None, "timeout" or an error text."""
    while True:
        try:
            step()
            return None
        except want_read:
            wanted = ([sock], [])
        except want_write:
            wanted = ([], [sock])
        except tls_errors as exc:  # before OSError: ssl.SSLError is one
            return "TLS error: %s" % describe_tls(exc)
        except OSError as exc:
            return "connection error: %s" % ocsp_client.describe_error(exc)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "timeout"
        ready = select.select(wanted[0], wanted[1], [], remaining)
        if not any(ready):
            return "timeout"


def _record_outcome(facts, problem, started):
    facts["latency"] = round(time.monotonic() - started, 4)
    if problem is None:
        facts["handshake"] = "ok"
    elif problem == "timeout":
        facts["handshake"] = "timeout"
    else:
        facts["handshake"] = "failed"
        facts["handshake_error"] = problem


# ---------------------------------------------------------------------------------------------- the staple


def fetch_staple(addresses, port, server_name, timeout, client=None):
    """Connect to the first working address, handshake with SNI ``server_name`` asking for a staple.

    ``client`` forces ``pyopenssl`` or ``openssl-s_client``; by default ``staple_client()`` picks. Returns plain
    facts: ``client``, ``connect`` (as ocsp_client.connect reports it), ``handshake`` ("ok", "timeout",
    "failed" with ``handshake_error``, or "not_tried" without a connection), ``stapled``, ``latency``,
    ``tls_version``, ``read_error`` (the client's output could not be read), and the non-serialisable
    ``staple`` (DER bytes or None) and ``chain`` (cryptography certificates), which the caller pops.
    """
    client = client or staple_client()
    if client is None:
        raise StapleProbeError(NO_CLIENT_MESSAGE)
    if client not in STAPLE_CLIENTS:
        raise StapleProbeError("unknown staple client %r (use %s)" % (client, " or ".join(STAPLE_CLIENTS)))
    if client == PYOPENSSL and not HAS_PYOPENSSL:
        raise StapleProbeError("pyOpenSSL is not installed")
    binary = staple_openssl_cli.find_openssl() if client == OPENSSL_CLI else None
    if client == OPENSSL_CLI and binary is None:
        raise StapleProbeError("no openssl command on PATH or at %s" % staple_openssl_cli.FALLBACK_BINARY)
    facts, sock, started, deadline = _connect(addresses, port, server_name, timeout, client)
    if sock is None:
        return facts
    if client == PYOPENSSL:
        _pyopenssl_staple(facts, sock, server_name, started, deadline)
    else:
        # s_client makes its own connection, to the address that just accepted this one.
        sock.close()
        found = staple_openssl_cli.fetch(facts["address"], port, server_name and _ascii_name(server_name),
                                         deadline - time.monotonic(), binary)
        facts["latency"] = round(time.monotonic() - started, 4)
        for key in ("handshake", "handshake_error", "tls_version", "stapled", "staple", "chain", "read_error"):
            facts[key] = found[key]
    return facts


def _pyopenssl_context():
    method = getattr(SSL, "TLS_CLIENT_METHOD", None) or SSL.SSLv23_METHOD
    context = SSL.Context(method)
    # We want the staple whatever the chain: trust is judged on the staple's signature, not the handshake.
    context.set_verify(SSL.VERIFY_NONE, lambda *args: True)
    return context


def _peer_chain(connection):
    """The certificates the server sent, as cryptography objects, leaf first."""
    try:
        chain = connection.get_peer_cert_chain(as_cryptography=True)
    except TypeError:  # pyOpenSSL < 24.3
        chain = [item.to_cryptography() for item in connection.get_peer_cert_chain() or []]
    return list(chain or [])


def tls_error_text(exc):
    """OpenSSL's reasons ("wrong version number"), or the system call's complaint ("Unexpected EOF")."""
    if isinstance(exc, SSL.SysCallError) and len(exc.args) > 1:
        return str(exc.args[1])
    details = exc.args[0] if exc.args else None
    if isinstance(details, list):
        reasons = [entry[-1] for entry in details if isinstance(entry, tuple) and entry]
        if reasons:
            return ", ".join(str(reason) for reason in reasons)
    return str(exc) or type(exc).__name__


def _pyopenssl_staple(facts, sock, server_name, started, deadline):
    received = []

    def keep_staple(_connection, staple, _data):
        received.append(bytes(staple or b""))
        return True  # judge the staple afterwards; never abort the handshake over it

    context = _pyopenssl_context()
    context.set_ocsp_client_callback(keep_staple)
    connection = SSL.Connection(context, sock)
    try:
        if server_name:
            connection.set_tlsext_host_name(server_name.encode("idna"))
        connection.request_ocsp()
        connection.set_connect_state()
        sock.setblocking(False)
        problem = _drive(connection.do_handshake, sock, deadline, SSL.WantReadError, SSL.WantWriteError,
                         SSL.Error, tls_error_text)
        _record_outcome(facts, problem, started)
        if problem is None:
            facts["tls_version"] = connection.get_protocol_version_name()
            facts["chain"] = _peer_chain(connection)
            facts["staple"] = received[0] if received and received[0] else None
            facts["stapled"] = facts["staple"] is not None
    finally:
        try:
            connection.shutdown()
        except (SSL.Error, OSError):
            pass  # the server may be gone already; the socket is closed below either way
        sock.close()


# ---------------------------------------------------------------------------------------------- the handshake alone


def ssl_error_text(exc):
    """"[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)" -> "wrong version number"."""
    text = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], str) else str(exc)
    text = re.sub(r"^\[[^\]]*\]\s*", "", text)
    return re.sub(r"\s*\(_ssl\.c:\d+\)$", "", text) or type(exc).__name__


def _client_ssl_context():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # Liveness, not trust: any certificate will do, as with the stapled check.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def check_handshake(addresses, port, server_name, timeout):
    """Connect and complete a TLS handshake (SNI ``server_name``, no verification) with the standard library.

    The facts are those of ``fetch_staple`` with ``client`` "ssl" and ``stapled`` None: no staple is asked
    for. ``chain`` holds the served leaf only (the ``ssl`` module of Python < 3.13 shows no more).
    """
    facts, sock, started, deadline = _connect(addresses, port, server_name, timeout, STDLIB_SSL)
    facts["stapled"] = None
    if sock is None:
        return facts
    sock.setblocking(False)
    try:
        tls = _client_ssl_context().wrap_socket(sock, server_hostname=server_name or None,
                                                do_handshake_on_connect=False)
    except (ssl.SSLError, ValueError, UnicodeError) as exc:  # e.g. a server_name the IDNA codec refuses
        sock.close()
        _record_outcome(facts, "TLS error: %s" % exc, started)
        return facts
    try:
        problem = _drive(tls.do_handshake, tls, deadline, ssl.SSLWantReadError, ssl.SSLWantWriteError,
                         ssl.SSLError, ssl_error_text)
        _record_outcome(facts, problem, started)
        if problem is None:
            facts["tls_version"] = tls.version()
            served = tls.getpeercert(binary_form=True)
            facts["chain"] = certificates.parse_certificates(served) if served else []
    except certificates.CertificateError as exc:
        facts["read_error"] = str(exc)
    finally:
        _close_quietly(tls)
    return facts


def _close_quietly(tls):
    try:
        tls.unwrap()  # a close_notify, so that the server logs no aborted connection; no wait for its reply
    except (OSError, ValueError):  # ssl.SSLWantReadError (no reply yet) is an OSError
        pass
    tls.close()
