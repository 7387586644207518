# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The stapled check against small pyOpenSSL TLS servers on loopback, and the run's view of it.

Both staple clients (pyOpenSSL, openssl s_client) and the standard library's handshake-only check are run.
"""

from __future__ import annotations

import datetime
import socket
import threading
import time

import pytest
from cryptography.hazmat.primitives import serialization

from ansible_collections.fleet.stapling.plugins.module_utils import ocsp_probe_run, staple_openssl_cli, staple_probe
from ansible_collections.fleet.stapling.tests.unit.plugins.module_utils.ocsp_factory import (
    NOW,
    OcspCA,
    closed_port,
    response,
    rogue_signer,
    unsuccessful,
)

SSL = pytest.importorskip("OpenSSL.SSL")
OpenSSL_crypto = pytest.importorskip("OpenSSL.crypto")


def load_identity(context, leaf, chain):
    """pyOpenSSL >= 24.3 takes cryptography objects; older releases want their own X509 and PKey."""
    try:
        context.use_certificate(leaf.certificate)
        context.use_privatekey(leaf.key)
        for extra in chain:
            context.add_extra_chain_cert(extra)
    except TypeError:
        context.use_certificate(OpenSSL_crypto.X509.from_cryptography(leaf.certificate))
        # PKey.from_cryptography_key of pyOpenSSL 21-22 takes RSA and DSA keys only; PEM suits every key type.
        key_pem = leaf.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())
        context.use_privatekey(OpenSSL_crypto.load_privatekey(OpenSSL_crypto.FILETYPE_PEM, key_pem))
        for extra in chain:
            context.add_extra_chain_cert(OpenSSL_crypto.X509.from_cryptography(extra))


class TlsServer(object):
    """Serves one certificate on 127.0.0.1; staples ``staple`` (bytes) when a client asks, or nothing."""

    def __init__(self, leaf, chain=(), staple=None, handshake=True):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.context = SSL.Context(SSL.TLS_SERVER_METHOD)
        load_identity(self.context, leaf, chain)
        self.server_names = []
        self.context.set_tlsext_servername_callback(self._note_name)
        if staple is not None:
            self.context.set_ocsp_server_callback(lambda connection, data: staple)
        self.handshake = handshake
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _note_name(self, connection):
        self.server_names.append(connection.get_servername())

    def _serve(self):
        self.listener.settimeout(0.1)
        while not self.stop.is_set():
            try:
                client, _address = self.listener.accept()
            except OSError:
                continue
            if not self.handshake:
                self.stop.wait(10)  # accept, then say nothing
                client.close()
                continue
            client.setblocking(True)  # pyOpenSSL's blocking handshake cannot work on a socket with a timeout
            connection = SSL.Connection(self.context, client)
            connection.set_accept_state()
            try:
                connection.do_handshake()
                connection.shutdown()
            except (SSL.Error, OSError):
                pass
            client.close()

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.listener.close()


@pytest.fixture(scope="module")
def ca():
    return OcspCA()


@pytest.fixture(scope="module")
def leaf(ca):
    return ca.leaf("shop.test", ocsp_url="http://127.0.0.1:9/")


@pytest.fixture
def tls():
    started = []

    def start(*args, **kwargs):
        server = TlsServer(*args, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def test_staple_sent_by_the_server_is_received_with_the_served_chain(tls, ca, leaf):
    staple = response(leaf, ca.ca)
    server = tls(leaf, chain=[ca.certificate], staple=staple)
    facts = staple_probe.fetch_staple(["127.0.0.1"], server.port, "shop.test", 3)
    assert (facts["handshake"], facts["stapled"], facts["staple"]) == ("ok", True, staple)
    assert [cert.serial_number for cert in facts["chain"]] == [leaf.certificate.serial_number,
                                                               ca.certificate.serial_number]
    assert server.server_names == [b"shop.test"]
    assert facts["tls_version"].startswith("TLSv1")


def test_server_that_staples_nothing(tls, leaf):
    server = tls(leaf)
    facts = staple_probe.fetch_staple(["127.0.0.1"], server.port, None, 3)
    assert (facts["handshake"], facts["stapled"], facts["staple"]) == ("ok", False, None)
    assert server.server_names == [None]


def test_refused_port():
    facts = staple_probe.fetch_staple(["127.0.0.1"], closed_port(), "shop.test", 1)
    assert (facts["handshake"], facts["connect"]["result"]) == ("not_tried", "refused")


def test_server_that_never_answers_the_handshake_times_out(tls, leaf):
    server = tls(leaf, handshake=False)
    started = time.monotonic()
    facts = staple_probe.fetch_staple(["127.0.0.1"], server.port, "shop.test", 0.5)
    assert time.monotonic() - started < 1.5
    assert facts["handshake"] == "timeout"


def test_plain_http_port_is_a_failed_handshake():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def answer_http():
        client, _address = listener.accept()
        client.recv(4096)
        client.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
        client.close()

    worker = threading.Thread(target=answer_http, daemon=True)
    worker.start()
    facts = staple_probe.fetch_staple(["127.0.0.1"], listener.getsockname()[1], "shop.test", 2)
    worker.join(5)
    listener.close()
    assert facts["handshake"] == "failed" and facts["handshake_error"]


# ---------------------------------------------------------------------------------------------- through the run


def run_stapled(server, expected=None, candidates=()):
    target = ocsp_probe_run.StapleTarget("127.0.0.1", server.port, "shop.test", ["shop vhost"], expected,
                                         list(candidates))
    return ocsp_probe_run.run([], ocsp_probe_run.Settings(timeout=3), [target])


def test_good_staple_is_judged_good(tls, ca, leaf):
    report = run_stapled(tls(leaf, chain=[ca.certificate], staple=response(leaf, ca.ca)))
    entry = report["stapled"][0]
    assert (entry["status"], entry["healthy"], entry["error_class"]) == ("good", True, None)
    assert entry["ocsp"]["cert_status"] == "good" and entry["ocsp"]["nonce"] == "not_sent"
    assert entry["certificate"]["serial"] == "%X" % leaf.certificate.serial_number
    assert report["summary"]["stapling_good"] == 1 and report["summary"]["healthy"] is True


def test_issuer_missing_from_the_served_chain_comes_from_the_known_candidates(tls, ca, leaf):
    server = tls(leaf, staple=response(leaf, ca.ca))
    assert run_stapled(server)["stapled"][0]["error_class"] == "no_issuer"
    assert run_stapled(server, candidates=[ca.certificate])["stapled"][0]["status"] == "good"


@pytest.mark.parametrize("kind, error_class", [
    ("revoked", "revoked"),
    ("rogue", "bad_signature"),
    ("expired", "stale"),
    ("trylater", "try_later"),  # what Apache staples with SSLStaplingFakeTryLater when its responder fails
])
def test_bad_staples_are_judged_bad(tls, ca, leaf, kind, error_class):
    staples = {
        "revoked": lambda: response(leaf, ca.ca, status="revoked"),
        "rogue": lambda: response(leaf, ca.ca, signer=rogue_signer()),
        "expired": lambda: response(leaf, ca.ca, this_update=NOW - datetime.timedelta(days=3),
                                    next_update=NOW - datetime.timedelta(days=2)),
        "trylater": lambda: unsuccessful("try_later"),
    }
    entry = run_stapled(tls(leaf, chain=[ca.certificate], staple=staples[kind]()))["stapled"][0]
    assert (entry["status"], entry["healthy"], entry["error_class"]) == ("bad", False, error_class)


def test_no_staple_counts_against_health_only_when_stapling_is_expected(tls, ca, leaf):
    server = tls(leaf, chain=[ca.certificate])
    expected = run_stapled(server, expected=True)
    switched_off = run_stapled(server, expected=False)
    assert (expected["stapled"][0]["healthy"], expected["summary"]["healthy"]) == (False, False)
    assert (switched_off["stapled"][0]["healthy"], switched_off["summary"]["healthy"]) == (None, True)
    assert switched_off["summary"]["not_stapling"] == 1


def test_unreachable_vhost_is_counted_as_such():
    target = ocsp_probe_run.StapleTarget("127.0.0.1", closed_port(), "shop.test")
    report = ocsp_probe_run.run([], ocsp_probe_run.Settings(timeout=1), [target])
    assert report["stapled"][0]["status"] == "unreachable"
    assert report["stapled"][0]["error_class"] == "connect_refused"
    assert report["summary"]["stapled_unreachable"] == 1


# ---------------------------------------------------------------------------------------------- without pyOpenSSL


needs_openssl = pytest.mark.skipif(staple_openssl_cli.find_openssl() is None, reason="no openssl command")


@pytest.fixture
def no_pyopenssl(monkeypatch):
    """A host whose Python has no pyOpenSSL: what the module sees when the import failed."""
    monkeypatch.setattr(staple_probe, "HAS_PYOPENSSL", False)


@needs_openssl
def test_without_pyopenssl_the_staple_comes_through_s_client(no_pyopenssl, tls, ca, leaf):
    staple = response(leaf, ca.ca)
    server = tls(leaf, chain=[ca.certificate], staple=staple)
    assert staple_probe.staple_client() == "openssl-s_client"
    facts = staple_probe.fetch_staple(["127.0.0.1"], server.port, "shop.test", 3)
    assert (facts["client"], facts["handshake"], facts["stapled"], facts["staple"]) == (
        "openssl-s_client", "ok", True, staple)
    assert [cert.serial_number for cert in facts["chain"]] == [leaf.certificate.serial_number,
                                                               ca.certificate.serial_number]
    assert b"shop.test" in server.server_names


@needs_openssl
@pytest.mark.parametrize("kind", ["good", "revoked", "none"])
def test_both_clients_reach_the_same_verdict(tls, ca, leaf, kind):
    staple = {"good": response(leaf, ca.ca), "revoked": response(leaf, ca.ca, status="revoked"), "none": None}[kind]
    server = tls(leaf, chain=[ca.certificate], staple=staple)
    entries = {}
    for client in ("pyopenssl", "openssl-s_client"):
        target = ocsp_probe_run.StapleTarget("127.0.0.1", server.port, "shop.test", expected=True)
        report = ocsp_probe_run.run([], ocsp_probe_run.Settings(timeout=3, staple_client=client), [target])
        entries[client] = report["stapled"][0]
    assert [entry["client"] for entry in entries.values()] == ["pyopenssl", "openssl-s_client"]
    first, second = entries["pyopenssl"], entries["openssl-s_client"]
    for key in ("handshake", "stapled", "status", "healthy", "error_class", "ocsp", "certificate"):
        assert first[key] == second[key], key
    assert first["status"] == {"good": "good", "revoked": "bad", "none": "not_stapled"}[kind]


@needs_openssl
def test_s_client_failures_map_to_the_same_handshake_values(no_pyopenssl, tls, leaf):
    server = tls(leaf, handshake=False)
    started = time.monotonic()
    hanging = staple_probe.fetch_staple(["127.0.0.1"], server.port, "shop.test", 0.8)
    assert time.monotonic() - started < 2.5
    refused = staple_probe.fetch_staple(["127.0.0.1"], closed_port(), "shop.test", 1)
    assert (hanging["client"], hanging["handshake"]) == ("openssl-s_client", "timeout")
    assert (refused["handshake"], refused["connect"]["result"]) == ("not_tried", "refused")


@needs_openssl
def test_s_client_against_plain_http_is_a_failed_handshake(no_pyopenssl):
    port, worker, listener = plain_http_server(connections=2)  # the connect check, then s_client's own
    facts = staple_probe.fetch_staple(["127.0.0.1"], port, "shop.test", 3)
    worker.join(5)
    listener.close()
    assert (facts["handshake"], facts["handshake_error"]) == ("failed", "TLS error: wrong version number")


def test_without_any_staple_client_the_check_says_so(no_pyopenssl, monkeypatch):
    monkeypatch.setattr(staple_openssl_cli, "find_openssl", lambda: None)
    assert staple_probe.staple_client() is None
    with pytest.raises(staple_probe.StapleProbeError, match="needs pyOpenSSL .* or the openssl command"):
        staple_probe.fetch_staple(["127.0.0.1"], closed_port(), None, 1)
    target = ocsp_probe_run.StapleTarget("127.0.0.1", closed_port(), None)
    with pytest.raises(staple_probe.StapleProbeError, match="stapled_check: handshake"):
        ocsp_probe_run.run([], ocsp_probe_run.Settings(timeout=1), [target])
    # the handshake check needs neither
    report = ocsp_probe_run.run([], ocsp_probe_run.Settings(timeout=1, stapled_check="handshake"), [target])
    assert (report["stapled"][0]["client"], report["stapled"][0]["status"]) == ("ssl", "unreachable")


# ---------------------------------------------------------------------------------------------- the handshake alone


def plain_http_server(connections=1):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(connections)

    def answer_http():
        for _connection in range(connections):
            client, _address = listener.accept()
            client.settimeout(2)
            try:
                client.recv(4096)
                client.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
            except OSError:
                pass
            client.close()

    worker = threading.Thread(target=answer_http, daemon=True)
    worker.start()
    return listener.getsockname()[1], worker, listener


def test_handshake_only_with_the_standard_library(no_pyopenssl, tls, ca, leaf):
    server = tls(leaf, chain=[ca.certificate], staple=response(leaf, ca.ca))
    facts = staple_probe.check_handshake(["127.0.0.1"], server.port, "shop.test", 3)
    assert (facts["client"], facts["handshake"], facts["stapled"], facts["staple"]) == ("ssl", "ok", None, None)
    assert facts["tls_version"].startswith("TLSv1") and facts["latency"] is not None
    assert [cert.serial_number for cert in facts["chain"]] == [leaf.certificate.serial_number]
    assert server.server_names == [b"shop.test"]


def test_handshake_only_failures(tls, leaf):
    server = tls(leaf, handshake=False)
    started = time.monotonic()
    hanging = staple_probe.check_handshake(["127.0.0.1"], server.port, "shop.test", 0.5)
    assert time.monotonic() - started < 1.5
    refused = staple_probe.check_handshake(["127.0.0.1"], closed_port(), "shop.test", 1)
    port, worker, listener = plain_http_server()
    plain = staple_probe.check_handshake(["127.0.0.1"], port, "shop.test", 2)
    worker.join(5)
    listener.close()
    assert hanging["handshake"] == "timeout"
    assert (refused["handshake"], refused["connect"]["result"]) == ("not_tried", "refused")
    assert (plain["handshake"], plain["handshake_error"]) == ("failed", "TLS error: wrong version number")


def test_handshake_only_through_the_run(tls, ca, leaf):
    server = tls(leaf, chain=[ca.certificate])  # staples nothing: not asked, so not held against it
    alive = ocsp_probe_run.StapleTarget("127.0.0.1", server.port, "shop.test", expected=True)
    dead = ocsp_probe_run.StapleTarget("127.0.0.1", closed_port(), "shop.test", expected=True)
    report = ocsp_probe_run.run([], ocsp_probe_run.Settings(timeout=2, stapled_check="handshake"), [alive, dead])
    up, down = report["stapled"]
    assert (up["client"], up["handshake"], up["stapled"], up["status"], up["healthy"]) == (
        "ssl", "ok", None, "not_checked", True)
    assert up["ocsp"] is None and up["certificate"]["serial"] == "%X" % leaf.certificate.serial_number
    assert "not checked" in up["message"]
    assert (down["status"], down["healthy"], down["error_class"]) == ("unreachable", False, "connect_refused")
    assert (report["summary"]["staple_not_checked"], report["summary"]["stapled_unreachable"]) == (1, 1)


def test_stapled_check_must_be_known():
    with pytest.raises(ocsp_probe_run.ProbeInputError, match="stapled_check"):
        ocsp_probe_run.Settings(stapled_check="ocsp")


def test_a_staple_the_client_could_not_read_is_not_judged(monkeypatch):
    facts = {"handshake": "ok", "stapled": True, "staple": None, "chain": [], "client": "openssl-s_client",
             "read_error": "openssl s_client printed a staple whose bytes are not in its -msg dump",
             "connect": {"result": "ok", "address": "127.0.0.1"}, "address": "127.0.0.1"}
    monkeypatch.setattr(staple_probe, "fetch_staple", lambda *args, **kwargs: dict(facts))
    target = ocsp_probe_run.StapleTarget("127.0.0.1", 443, None, expected=True)
    entry = ocsp_probe_run.run([], ocsp_probe_run.Settings(timeout=1, staple_client="openssl-s_client"),
                               [target])["stapled"][0]
    assert (entry["status"], entry["healthy"], entry["error_class"]) == ("not_checked", None, None)
    assert "-msg dump" in entry["message"]
