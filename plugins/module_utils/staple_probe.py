# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a TLS client gets stapled by a server: connect, ask for certificate status, keep the DER staple.

Python's ``ssl`` module cannot send the status_request extension, so this uses pyOpenSSL
(``Connection.request_ocsp`` and ``Context.set_ocsp_client_callback``). pyOpenSSL is optional: only the
stapled check needs it, and ``HAS_PYOPENSSL`` tells whether it is there. The staple itself is parsed and
checked by ``ocsp_client.read_response`` (cryptography), exactly like an answer fetched from a responder.
"""

from __future__ import annotations

import select
import time
import traceback

try:
    from OpenSSL import SSL
except ImportError:
    HAS_PYOPENSSL = False
    PYOPENSSL_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_PYOPENSSL = True
    PYOPENSSL_IMPORT_ERROR = None

from ansible_collections.fleet.stapling.plugins.module_utils import ocsp_client


class StapleProbeError(Exception):
    """The TLS client could not be set up (not a server problem: those are reported as facts)."""


def _client_context():
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


def _handshake(connection, sock, deadline):
    """Drive a non-blocking handshake until done or the deadline; returns None, "timeout" or an error text."""
    while True:
        try:
            connection.do_handshake()
            return None
        except SSL.WantReadError:
            wanted = ([sock], [], [])
        except SSL.WantWriteError:
            wanted = ([], [sock], [])
        except SSL.Error as exc:
            return "TLS error: %s" % tls_error_text(exc)
        except OSError as exc:
            return "connection error: %s" % ocsp_client.describe_error(exc)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "timeout"
        ready = select.select(wanted[0], wanted[1], wanted[2], remaining)
        if not any(ready):
            return "timeout"


def fetch_staple(addresses, port, server_name, timeout):
    """Connect to the first working address, handshake with SNI ``server_name`` asking for a staple.

    Returns plain facts: ``connect`` (as ocsp_client.connect reports it), ``handshake`` ("ok", "timeout" or
    "failed" with ``handshake_error``), ``stapled``, ``latency``, ``tls_version``, and the non-serialisable
    ``staple`` (DER bytes or None) and ``chain`` (cryptography certificates), which the caller pops.
    """
    if not HAS_PYOPENSSL:
        raise StapleProbeError("pyOpenSSL is not installed")
    started = time.monotonic()
    deadline = started + timeout
    facts = {"port": port, "server_name": server_name, "timeout": timeout, "handshake": None,
             "handshake_error": None, "stapled": False, "latency": None, "tls_version": None,
             "staple": None, "chain": []}
    sock, facts["connect"] = ocsp_client.connect(addresses, port, deadline)
    facts["address"] = facts["connect"]["address"]
    if sock is None:
        facts["handshake"] = "not_tried"
        return facts
    received = []

    def keep_staple(_connection, staple, _data):
        received.append(bytes(staple or b""))
        return True  # judge the staple afterwards; never abort the handshake over it

    context = _client_context()
    context.set_ocsp_client_callback(keep_staple)
    connection = SSL.Connection(context, sock)
    try:
        if server_name:
            connection.set_tlsext_host_name(server_name.encode("idna"))
        connection.request_ocsp()
        connection.set_connect_state()
        sock.setblocking(False)
        problem = _handshake(connection, sock, deadline)
        facts["latency"] = round(time.monotonic() - started, 4)
        if problem is None:
            facts["handshake"] = "ok"
            facts["tls_version"] = connection.get_protocol_version_name()
            facts["chain"] = _peer_chain(connection)
            facts["staple"] = received[0] if received and received[0] else None
            facts["stapled"] = facts["staple"] is not None
        elif problem == "timeout":
            facts["handshake"] = "timeout"
        else:
            facts["handshake"] = "failed"
            facts["handshake_error"] = problem
    finally:
        _close(connection, sock)
    return facts


def _close(connection, sock):
    try:
        connection.shutdown()
    except (SSL.Error, OSError):
        pass  # the server may be gone already; the socket is closed below either way
    sock.close()
