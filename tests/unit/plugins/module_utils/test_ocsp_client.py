# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The OCSP client: requests, responses and their checks, and real HTTP exchanges on loopback."""

from __future__ import annotations

import base64
import datetime
import socket
import time
from urllib.parse import unquote

import pytest
from cryptography.x509 import ocsp

from ansible_collections.fleet.stapling.plugins.module_utils import ocsp_client
from ansible_collections.fleet.stapling.tests.unit.plugins.module_utils.certificate_factory import (
    new_key,
    pss_ocsp_response,
)
from ansible_collections.fleet.stapling.tests.unit.plugins.module_utils.ocsp_factory import (
    NOW,
    LocalResponder,
    OcspCA,
    Reply,
    closed_port,
    nonce_of,
    response,
    rogue_signer,
    unsuccessful,
)


@pytest.fixture(scope="module")
def ca():
    return OcspCA()


@pytest.fixture(scope="module")
def leaf(ca):
    return ca.leaf("shop.test")


@pytest.fixture
def responder():
    server = LocalResponder()
    yield server
    server.close()


def read(der, leaf, ca, nonce=None):
    return ocsp_client.read_response(der, leaf.certificate, ca.certificate, nonce, NOW)


# ---------------------------------------------------------------------------------------------- requests


def test_request_names_the_serial_and_issuer_with_sha1_and_carries_the_nonce(ca, leaf):
    nonce = ocsp_client.new_nonce()
    request, der = ocsp_client.build_request(leaf.certificate, ca.certificate, nonce)
    parsed = ocsp.load_der_ocsp_request(der)
    assert parsed.serial_number == leaf.certificate.serial_number
    assert parsed.hash_algorithm.name == "sha1"
    assert parsed.issuer_key_hash == request.issuer_key_hash
    assert len(nonce) == 16
    # RFC 8954 on the wire, whatever the cryptography release: extnValue = OCTET STRING { OCTET STRING nonce }
    assert b"\x04\x12\x04\x10" + nonce in der


def test_an_echo_of_the_nonce_is_recognised_as_such_by_any_cryptography_release(ca, leaf):
    nonce = ocsp_client.new_nonce()
    _request, der = ocsp_client.build_request(leaf.certificate, ca.certificate, nonce)
    # What a responder (here one using this same cryptography release) reads from the request and echoes.
    answer = response(leaf, ca.ca, nonce=nonce_of(der))
    assert read(answer, leaf, ca, nonce)["nonce"] == "echoed"
    assert read(answer, leaf, ca, ocsp_client.new_nonce())["nonce"] == "mismatch"


def test_request_without_nonce_has_no_extension(ca, leaf):
    assert nonce_of(ocsp_client.build_request(leaf.certificate, ca.certificate)[1]) is None


def test_get_path_is_the_url_encoded_base64_request():
    der = bytes(range(256))  # base64 of this holds '+' and '/', which must be encoded
    path = ocsp_client.get_path("/ocsp/", der)
    assert path.startswith("/ocsp/") and "/" not in path[len("/ocsp/"):]
    assert base64.b64decode(unquote(path[len("/ocsp/"):])) == der


# ---------------------------------------------------------------------------------------------- responses


def test_answer_signed_by_the_issuer_verifies(ca, leaf):
    facts = read(response(leaf, ca.ca), leaf, ca)
    assert facts["response_status"] == "successful"
    assert (facts["signature_valid"], facts["signer"], facts["cert_status"]) == (True, "issuer", "good")
    assert facts["cert_id_matches"] is True
    assert facts["serial"] == "%X" % leaf.certificate.serial_number


def test_answer_of_a_delegated_responder_with_the_ocsp_signing_eku_verifies(ca, leaf):
    facts = read(response(leaf, ca.ca, signer=ca.signer()), leaf, ca)
    assert (facts["signature_valid"], facts["signer"]) == (True, "delegated")
    assert facts["signer_subject"] == "CN=Unit OCSP signer"


def test_responder_named_by_name_instead_of_key_hash_is_found(ca, leaf):
    facts = read(response(leaf, ca.ca, signer=ca.signer(), by_name=True), leaf, ca)
    assert (facts["signature_valid"], facts["signer"]) == (True, "delegated")


def test_delegate_without_the_eku_is_not_authorised(ca, leaf):
    facts = read(response(leaf, ca.ca, signer=ca.signer(with_eku=False)), leaf, ca)
    assert (facts["signature_valid"], facts["signer"]) == (False, "unauthorized")
    assert "extended key usage" in facts["signature_error"]


def test_expired_delegate_is_not_authorised(ca, leaf):
    facts = read(response(leaf, ca.ca, signer=ca.signer(expired=True)), leaf, ca)
    assert facts["signature_valid"] is False and "validity" in facts["signature_error"]


def test_signer_the_issuer_never_certified_is_rejected(ca, leaf):
    facts = read(response(leaf, ca.ca, signer=rogue_signer()), leaf, ca)
    assert (facts["signature_valid"], facts["signer"]) == (False, "unauthorized")
    assert "did not certify" in facts["signature_error"]


def test_delegate_of_another_ca_with_the_same_name_is_rejected(ca, leaf):
    impostor = OcspCA(ca.certificate.subject.rfc4514_string()[3:]).signer()  # same CA name, other key
    facts = read(response(leaf, ca.ca, signer=impostor), leaf, ca)
    assert facts["signature_valid"] is False and "does not verify against the issuer" in facts["signature_error"]


def test_responder_id_matching_no_certificate_at_hand_is_unknown(ca, leaf):
    facts = read(response(leaf, ca.ca, signer=ca.signer(), include_signer=False), leaf, ca)
    assert (facts["signature_valid"], facts["signer"]) == (False, "unknown")


@pytest.mark.parametrize("salt_length", [32, 0, 222])
def test_answer_signed_with_rsa_pss_verifies_on_every_cryptography(salt_length):
    # No cryptography release signs an OCSP response with PSS or names the hash of one that is (its
    # signature_hash_algorithm raises); the parameters are read from the DER instead, on every release.
    rsa_ca = OcspCA("Unit RSA CA", key=new_key("rsa"))
    rsa_leaf = rsa_ca.leaf("rsa.test")
    der = pss_ocsp_response(response(rsa_leaf, rsa_ca.ca), rsa_ca.ca.key, salt_length=salt_length)
    assert ocsp.load_der_ocsp_response(der).signature_algorithm_oid.dotted_string == "1.2.840.113549.1.1.10"
    facts = read(der, rsa_leaf, rsa_ca)
    assert (facts["parse_error"], facts["signature_valid"], facts["signer"]) == (None, True, "issuer")
    forged = pss_ocsp_response(response(rsa_leaf, rsa_ca.ca), new_key("rsa"), salt_length=salt_length)
    facts = read(forged, rsa_leaf, rsa_ca)
    assert facts["signature_valid"] is False and "does not verify" in facts["signature_error"]


def test_tampered_signature_does_not_verify(ca, leaf):
    der = bytearray(response(leaf, ca.ca))
    der[-3] ^= 0x01  # inside the ECDSA signature, the last element of the response
    facts = read(bytes(der), leaf, ca)
    assert facts["parse_error"] is None
    assert facts["signature_valid"] is False and "does not verify" in facts["signature_error"]


def test_answer_about_another_serial_is_a_cert_id_mismatch(ca, leaf):
    other = ca.leaf("other.test")
    facts = read(response(leaf, ca.ca, about=other.certificate), leaf, ca)
    assert facts["cert_id_matches"] is False and "serial" in facts["cert_id_problem"]


def test_answer_naming_another_issuer_is_a_cert_id_mismatch(ca, leaf):
    other_ca = OcspCA("Other CA")
    twin = other_ca.leaf("twin.test")
    # same serial as our leaf, but a CertID built from another issuer
    facts = ocsp_client.read_response(response(twin, other_ca.ca), twin.certificate, ca.certificate, None, NOW)
    assert facts["cert_id_matches"] is False and "another issuer" in facts["cert_id_problem"]


def test_revoked_answer_reports_time_and_reason(ca, leaf):
    facts = read(response(leaf, ca.ca, status="revoked"), leaf, ca)
    assert facts["cert_status"] == "revoked"
    assert facts["revocation_reason"] == "keyCompromise"
    assert facts["revocation_time"] == (NOW - datetime.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_unknown_answer(ca, leaf):
    assert read(response(leaf, ca.ca, status="unknown"), leaf, ca)["cert_status"] == "unknown"


def test_times_are_utc_iso_strings(ca, leaf):
    facts = read(response(leaf, ca.ca, this_update=NOW, next_update=NOW + datetime.timedelta(hours=1)), leaf, ca)
    assert facts["this_update"] == NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert facts["next_update"] == (NOW + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert facts["produced_at"].endswith("Z")


def test_answer_without_next_update(ca, leaf):
    assert read(response(leaf, ca.ca, next_update=None), leaf, ca)["next_update"] is None


@pytest.mark.parametrize("sent, echoed, state", [
    (b"n" * 16, b"n" * 16, "echoed"),
    (b"n" * 16, b"m" * 16, "mismatch"),
    (b"n" * 16, None, "not_echoed"),
    (None, None, "not_sent"),
])
def test_nonce_states(ca, leaf, sent, echoed, state):
    assert read(response(leaf, ca.ca, nonce=echoed), leaf, ca, nonce=sent)["nonce"] == state


@pytest.mark.parametrize("status, name", [
    ("try_later", "try_later"),
    ("unauthorized", "unauthorized"),
    ("malformed_request", "malformed_request"),
    ("internal_error", "internal_error"),
    ("sig_required", "sig_required"),
])
def test_unsuccessful_statuses_are_named(ca, leaf, status, name):
    facts = read(unsuccessful(status), leaf, ca)
    assert facts == {"parse_error": None, "response_status": name}


@pytest.mark.parametrize("body", [b"", b"\xff" * 64, b"<html>portal</html>", b"\x30\x03\x0a\x01"])
def test_unreadable_bodies_give_a_parse_error_never_an_exception(ca, leaf, body):
    assert read(body, leaf, ca)["parse_error"]


def test_without_the_issuer_the_envelope_is_read_but_the_signature_unchecked(ca, leaf):
    facts = ocsp_client.read_response(response(leaf, ca.ca), leaf.certificate, None, None, NOW)
    assert facts["cert_status"] == "good" and facts["signature_valid"] is None
    assert "issuer is unknown" in facts["signature_error"]


# ---------------------------------------------------------------------------------------------- bodies, URLs, proxies


@pytest.mark.parametrize("content_type, body, kind", [
    ("application/ocsp-response", b"\x30\x82\x01", "der"),
    ("text/html", b"anything", "html"),
    ("application/ocsp-response", b"  <!DOCTYPE html><html>", "html"),
    ("text/plain", b"Service Unavailable", "text"),
    ("application/ocsp-response", b"\xff\xfe\x00\x81", "binary"),
    ("application/ocsp-response", b"", "empty"),
])
def test_body_kinds(content_type, body, kind):
    assert ocsp_client.body_kind(content_type, body) == kind


def test_page_title_is_read_from_html():
    assert ocsp_client.page_title(b"<html><head><TITLE>\n Sign in\n</TITLE></head>") == "Sign in"
    assert ocsp_client.page_title(b"<html>no title</html>") is None


@pytest.mark.parametrize("url, host, port, path", [
    ("http://ocsp.test", "ocsp.test", 80, "/"),
    ("http://ocsp.test:8080/a/b?x=1", "ocsp.test", 8080, "/a/b?x=1"),
    ("http://[::1]:8801/", "::1", 8801, "/"),
])
def test_http_urls_parse(url, host, port, path):
    _scheme, endpoint, found_path = ocsp_client.parse_url(url)
    assert (endpoint.host, endpoint.port, found_path) == (host, port, path)


@pytest.mark.parametrize("url, words", [
    ("https://ocsp.test/", "plain HTTP only"),
    ("ldap://ocsp.test/", "plain HTTP only"),
    ("http:///path", "names no host"),
    ("http://ocsp.test:99999/", "cannot be parsed"),
])
def test_unusable_urls_are_refused_with_a_reason(url, words):
    with pytest.raises(ocsp_client.OcspClientError, match=words):
        ocsp_client.parse_url(url)


def test_proxy_option_wins_over_the_environment():
    environ = {"http_proxy": "http://env-proxy:3128"}
    assert ocsp_client.proxy_for("http://ocsp.test/", "http://option:8080", True, environ) == "http://option:8080"


@pytest.mark.parametrize("environ, expected", [
    ({"http_proxy": "http://p:3128"}, "http://p:3128"),
    ({"HTTP_PROXY": "http://P:3128"}, "http://P:3128"),
    ({"http_proxy": "http://p:3128", "no_proxy": "ocsp.test"}, None),
    ({"http_proxy": "http://p:3128", "no_proxy": "other.test, .test"}, None),
    ({"http_proxy": "http://p:3128", "NO_PROXY": "test"}, None),
    ({"http_proxy": "http://p:3128", "no_proxy": "*"}, None),
    ({"http_proxy": "http://p:3128", "no_proxy": "ocsp.test:8080"}, "http://p:3128"),
    ({"http_proxy": "http://p:3128", "no_proxy": "ocsp.test:80"}, None),
    ({"http_proxy": "http://p:3128", "no_proxy": "sp.test"}, "http://p:3128"),
    ({}, None),
])
def test_proxy_from_the_environment_and_no_proxy(environ, expected):
    assert ocsp_client.proxy_for("http://ocsp.test/", None, True, environ) == expected


def test_use_proxy_false_ignores_the_environment():
    assert ocsp_client.proxy_for("http://ocsp.test/", None, False, {"http_proxy": "http://p:3128"}) is None


def test_proxy_must_be_http():
    with pytest.raises(ocsp_client.OcspClientError):
        ocsp_client.proxy_endpoint("socks5://p:1080")
    assert ocsp_client.proxy_endpoint("p.test:3128").port == 3128


# ---------------------------------------------------------------------------------------------- DNS and TCP


def test_resolver_looks_each_host_up_once(monkeypatch):
    calls = []
    real = socket.getaddrinfo

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    resolver = ocsp_client.Resolver(2)
    first = resolver.lookup("127.0.0.1", 80)
    second = resolver.lookup("127.0.0.1", 80)
    assert first is second and first["4"] == ["127.0.0.1"] and first["6"] == []
    assert calls == ["127.0.0.1"]


def test_a_hanging_dns_lookup_is_bounded_by_the_timeout(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args: time.sleep(5))
    started = time.monotonic()
    facts = ocsp_client.resolve("slow.test", 80, None, 0.3)
    assert time.monotonic() - started < 1.5
    assert "no DNS answer within" in facts["error"]


def test_name_that_does_not_resolve_reports_the_resolver_error():
    facts = ocsp_client.resolve("does-not-exist.invalid", 80, None, 5)
    assert facts["error"] and facts["order"] == []


def test_connect_tries_addresses_in_order_until_one_accepts(responder):
    # the responder listens on 127.0.0.1 only, so the same port on 127.0.0.2 refuses
    sock, facts = ocsp_client.connect(["127.0.0.2", "127.0.0.1"], responder.port, time.monotonic() + 3)
    sock.close()
    assert facts["result"] == "ok" and facts["address"] == "127.0.0.1"
    assert [attempt["result"] for attempt in facts["attempts"]] == ["refused", "ok"]


def test_connect_to_a_closed_port_is_refused():
    sock, facts = ocsp_client.connect(["127.0.0.1"], closed_port(), time.monotonic() + 2)
    assert sock is None and facts["result"] == "refused"


# ---------------------------------------------------------------------------------------------- HTTP exchanges


def post(responder, ca, leaf, method="post", timeout=2.0, proxy=None, port=None, url=None):
    _request, der = ocsp_client.build_request(leaf.certificate, ca.certificate)
    return ocsp_client.exchange(url or responder.url, ["127.0.0.1"], der, method, timeout, proxy=proxy, port=port)


def test_post_sends_the_der_request_with_the_ocsp_content_type(responder, ca, leaf):
    responder.set(Reply(body=response(leaf, ca.ca)))
    facts, body = post(responder, ca, leaf)
    sent = responder.requests[0]
    assert sent["method"] == "POST" and sent["headers"]["Content-Type"] == "application/ocsp-request"
    assert ocsp.load_der_ocsp_request(sent["body"]).serial_number == leaf.certificate.serial_number
    assert (facts["connect"]["result"], facts["http"]["status"], facts["http"]["body_kind"]) == ("ok", 200, "der")
    assert read(body, leaf, ca)["cert_status"] == "good"
    assert facts["latency"] >= facts["connect"]["latency"]


def test_get_puts_the_request_in_the_path(responder, ca, leaf):
    responder.set(Reply(body=response(leaf, ca.ca)))
    facts = post(responder, ca, leaf, method="get")[0]
    sent = responder.requests[0]
    assert sent["method"] == "GET" and facts["http"]["method"] == "GET"
    der = base64.b64decode(unquote(sent["path"].lstrip("/")))
    assert ocsp.load_der_ocsp_request(der).serial_number == leaf.certificate.serial_number


def test_redirect_is_reported_and_not_followed(responder, ca, leaf):
    responder.set(Reply(status=302, body=b"", content_type="text/html",
                        headers={"Location": "http://portal.test/login"}))
    facts = post(responder, ca, leaf)[0]
    assert (facts["http"]["status"], facts["http"]["location"]) == (302, "http://portal.test/login")
    assert len(responder.requests) == 1


def test_captive_portal_page_is_seen_as_html_with_its_title(responder, ca, leaf):
    responder.set(Reply(body=b"<!DOCTYPE html><title>Hotel Wi-Fi</title>", content_type="text/html"))
    facts = post(responder, ca, leaf)[0]
    assert (facts["http"]["body_kind"], facts["http"]["title"]) == ("html", "Hotel Wi-Fi")


def test_a_hanging_responder_times_out_after_the_timeout(responder, ca, leaf):
    responder.set("hang")
    started = time.monotonic()
    facts = post(responder, ca, leaf, timeout=0.5)[0]
    assert 0.4 < time.monotonic() - started < 1.5
    assert facts["connect"]["result"] == "ok" and facts["http"]["timed_out"] is True


def test_connection_closed_without_an_answer_is_an_http_error(responder, ca, leaf):
    responder.set("close")
    facts = post(responder, ca, leaf)[0]
    assert "without an HTTP answer" in facts["http"]["error"] or "broken HTTP" in facts["http"]["error"]


def test_refused_connection_has_no_http_facts(ca, leaf):
    _request, der = ocsp_client.build_request(leaf.certificate, ca.certificate)
    facts, body = ocsp_client.exchange("http://127.0.0.1:%d/" % closed_port(), ["127.0.0.1"], der, "post", 1.0)
    assert (facts["connect"]["result"], facts["http"], body) == ("refused", None, b"")


def test_through_a_proxy_the_request_line_carries_the_absolute_url(responder, ca, leaf):
    responder.set(Reply(body=response(leaf, ca.ca)))
    proxy = "http://127.0.0.1:%d" % responder.port
    facts = post(responder, ca, leaf, url="http://ocsp.far-away.test/", proxy=proxy, port=responder.port)[0]
    sent = responder.requests[0]
    assert sent["path"] == "http://ocsp.far-away.test/"
    assert sent["headers"]["Host"] == "ocsp.far-away.test"
    assert (facts["proxy"], facts["http"]["status"]) == (proxy, 200)


# ---------------------------------------------------------------------------------------------- bounds: time, size, redirects


def raw_answer(parts, pause=0.0):
    """An answer for LocalResponder that writes ``parts`` (bytes) itself, ``pause`` seconds apart, until the
    client hangs up."""
    def write(handler):
        try:
            for part in parts:
                handler.wfile.write(part)
                time.sleep(pause)
        except OSError:
            pass  # the client closed: what a bounded client does
        return "close"
    return write


def dripped(data):
    return [data[index:index + 1] for index in range(len(data))]


GOOD_HEAD = b"HTTP/1.0 200 OK\r\nContent-Type: application/ocsp-response\r\nContent-Length: 300\r\n\r\n"


@pytest.mark.parametrize("what, parts", [
    ("headers dripped", dripped(GOOD_HEAD)),
    ("body dripped", [GOOD_HEAD] + dripped(b"\x30" * 300)),
])
def test_a_trickled_answer_is_cut_at_the_timeout_as_a_whole_not_per_read(responder, ca, leaf, what, parts):
    # Each byte comes well within the timeout, so only a deadline for the whole exchange ends this early.
    responder.set(raw_answer(parts, pause=0.1))
    started = time.monotonic()
    facts = post(responder, ca, leaf, timeout=0.6)[0]
    elapsed = time.monotonic() - started
    assert elapsed < 1.5, "%s: took %.1f s for a 0.6 s timeout" % (what, elapsed)
    assert facts["http"]["timed_out"] is True and 0 < facts["http"]["received"] < len(b"".join(parts))


def test_a_hanging_responder_received_nothing(responder, ca, leaf):
    responder.set("hang")
    facts = post(responder, ca, leaf, timeout=0.3)[0]
    assert (facts["http"]["timed_out"], facts["http"]["received"]) == (True, 0)


def huge_body_parts(head, blocks, chunked=False):
    block = b"\x30" + b"\x00" * 65535
    if chunked:
        return [head] + [b"%x\r\n%s\r\n" % (len(block), block)] * blocks + [b"0\r\n\r\n"]
    return [head] + [block] * blocks


HUGE_BLOCKS = 8 * ocsp_client.MAX_BODY_BYTES // 65536  # eight times the bound


@pytest.mark.parametrize("framing, head", [
    ("chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/ocsp-response\r\n\r\n"),
    ("close-delimited", b"HTTP/1.0 200 OK\r\nContent-Type: application/ocsp-response\r\n\r\n"),
])
def test_a_body_without_a_length_is_dropped_once_past_the_bound(responder, ca, leaf, framing, head):
    responder.set(raw_answer(huge_body_parts(head, HUGE_BLOCKS, chunked=framing == "chunked")))
    facts, body = post(responder, ca, leaf, timeout=5)
    assert (facts["http"]["too_large"], body, facts["http"]["length"]) == (True, b"", 0)
    # Read past the bound by a buffer at most, never the eight megabytes sent.
    assert ocsp_client.MAX_BODY_BYTES < facts["http"]["received"] < ocsp_client.MAX_BODY_BYTES + 256 * 1024


def test_a_declared_length_over_the_bound_is_refused_before_the_body_is_read(responder, ca, leaf):
    head = (b"HTTP/1.0 200 OK\r\nContent-Type: application/ocsp-response\r\nContent-Length: %d\r\n\r\n"
            % (HUGE_BLOCKS * 65536))
    responder.set(raw_answer(huge_body_parts(head, HUGE_BLOCKS)))
    facts, body = post(responder, ca, leaf, timeout=5)
    assert (facts["http"]["too_large"], facts["http"]["status"], body) == (True, 200, b"")
    assert facts["http"]["received"] <= 64 * 1024, "no more than one buffer of the body"


def test_a_body_of_exactly_the_bound_is_read(responder, ca, leaf):
    responder.set(Reply(body=b"\x30" + b"\x00" * (ocsp_client.MAX_BODY_BYTES - 1)))
    facts, body = post(responder, ca, leaf)
    assert (facts["http"]["too_large"], len(body)) == (False, ocsp_client.MAX_BODY_BYTES)


@pytest.mark.parametrize("status", [301, 302, 307])
@pytest.mark.parametrize("where", ["same host", "other host"])
def test_no_redirect_is_followed_to_the_same_host_or_another(responder, ca, leaf, status, where):
    host = "127.0.0.1" if where == "same host" else "localhost"
    location = "http://%s:%d/moved" % (host, responder.port)
    responder.set(Reply(status=status, body=b"moved", content_type="text/plain", headers={"Location": location}))
    facts = post(responder, ca, leaf)[0]
    assert (facts["http"]["status"], facts["http"]["location"]) == (status, location)
    assert [request["path"] for request in responder.requests] == ["/"], "only the first request was sent"
