# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The stapled check against small pyOpenSSL TLS servers on loopback, and the run's view of it."""

from __future__ import annotations

import datetime
import socket
import threading
import time

import pytest

from ansible_collections.fleet.stapling.plugins.module_utils import ocsp_probe_run, staple_probe
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
        context.use_privatekey(OpenSSL_crypto.PKey.from_cryptography_key(leaf.key))
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
