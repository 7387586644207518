"""The responder's HTTP-level faults as a client sees them: a dripped answer, huge bodies, redirects.

These modes test a client's bounds (a total deadline, a body size limit, no redirects followed), so each test
also proves the evidence that a client test relies on: the log line saying how much was sent, and the
``followed-redirect`` line that only a client following the redirect can cause.
"""

from __future__ import annotations

import http.client
import re
import time
import urllib.parse

from cryptography.x509 import ocsp

from fleetlab import responder
from test_responder import build_request, raw_post
# Fixtures, found by name: the responder process of test_responder.py, started once for this module too.
from test_responder import responder_alpha, responder_ok  # noqa: F401  # pylint: disable=unused-import

READ_BYTES = 2 * 1024 * 1024  # what a bounded client might read before hanging up: far below HUGE_BODY_BYTES
_SENT = re.compile(r"sent=(\d+)/(\d+)")


def sent_in_log(running, status_word: str) -> tuple[int, int]:
    """(sent, whole) from the last log line of a streamed or dripped answer, waiting for it a moment."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [line for line in running.log_lines() if f"status={status_word}" in line]
        if lines:
            found = _SENT.search(lines[-1])
            return int(found.group(1)), int(found.group(2))
        time.sleep(0.05)
    raise AssertionError(f"no status={status_word} line in the responder log")


def open_post(port: int, der: bytes, timeout: float = 5.0) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    connection.request("POST", "/", body=der, headers={"Content-Type": "application/ocsp-request"})
    return connection, connection.getresponse()


def hang_up(connection: http.client.HTTPConnection, reply: http.client.HTTPResponse) -> None:
    """Close for real: the response holds its own reference to the socket."""
    reply.close()
    connection.close()


def test_drip_sends_one_byte_a_second_and_stops_when_the_client_goes(responder_ok, pki_alpha_leaves):
    responder_ok.set_mode("drip")
    sock = raw_post(responder_ok.port, build_request(pki_alpha_leaves["normal"]))
    try:
        sock.settimeout(3)
        started = time.monotonic()
        received = sock.recv(10) + sock.recv(10)
        elapsed = time.monotonic() - started
    finally:
        sock.close()
    assert received == b"HT", "one byte at a time, from the status line on"
    assert elapsed >= 0.8 * responder.DRIP_SECONDS
    sent, whole = sent_in_log(responder_ok, "dripped")
    assert 2 <= sent < whole, "the responder stopped once the client hung up"


def test_drip_carries_a_whole_answer_and_a_mode_switch_ends_it(responder_ok, pki_alpha_leaves):
    """The drip carries a real answer, so only the time it takes is at fault (checked with the log's length)."""
    responder_ok.set_mode("drip")
    sock = raw_post(responder_ok.port, build_request(pki_alpha_leaves["normal"]))
    try:
        sock.settimeout(3)
        assert sock.recv(1) == b"H"
        responder_ok.set_mode("ok")  # releases the drip at once
    finally:
        sock.close()
    sent, whole = sent_in_log(responder_ok, "dripped")
    assert sent < whole and whole > 500, "status line, headers and a signed OCSP response"


def test_huge_declares_a_content_length_beyond_any_ocsp_response(responder_ok, pki_alpha_leaves):
    responder_ok.set_mode("huge")
    connection, reply = open_post(responder_ok.port, build_request(pki_alpha_leaves["normal"]))
    try:
        assert int(reply.getheader("Content-Length")) == responder.HUGE_BODY_BYTES
        assert reply.read(6)[:2] == b"\x30\x84", "the body starts like a DER SEQUENCE"
    finally:
        hang_up(connection, reply)
    sent, whole = sent_in_log(responder_ok, "streamed")
    assert (whole, sent < whole) == (responder.HUGE_BODY_BYTES, True)


def test_huge_chunked_has_no_length_and_is_chunked(responder_ok, pki_alpha_leaves):
    responder_ok.set_mode("huge-chunked")
    connection, reply = open_post(responder_ok.port, build_request(pki_alpha_leaves["normal"]))
    try:
        assert reply.getheader("Content-Length") is None and reply.chunked
        assert len(reply.read(READ_BYTES)) == READ_BYTES
    finally:
        hang_up(connection, reply)
    sent, whole = sent_in_log(responder_ok, "streamed")
    assert READ_BYTES <= sent < whole


def test_huge_close_is_delimited_only_by_closing(responder_ok, pki_alpha_leaves):
    responder_ok.set_mode("huge-close")
    connection, reply = open_post(responder_ok.port, build_request(pki_alpha_leaves["normal"]))
    try:
        assert reply.getheader("Content-Length") is None and not reply.chunked and reply.will_close
        assert len(reply.read(READ_BYTES)) == READ_BYTES
    finally:
        hang_up(connection, reply)
    sent, whole = sent_in_log(responder_ok, "streamed")
    assert READ_BYTES <= sent < whole


def test_redirect_modes_point_where_a_followed_request_is_seen(responder_ok, pki_alpha_leaves):
    der = build_request(pki_alpha_leaves["normal"])
    for mode, code, host in (("redirect-same-host", 301, "127.0.0.1"),
                             ("redirect-other-host", 302, responder.OTHER_HOST_NAME)):
        responder_ok.set_mode(mode)
        connection, reply = open_post(responder_ok.port, der)
        location = reply.getheader("Location")
        hang_up(connection, reply)
        target = urllib.parse.urlsplit(location)
        assert (reply.status, target.hostname, target.port) == (code, host, responder_ok.port)
        # Following it by hand reaches the responder again, which answers and logs it: the canary for clients.
        follower = http.client.HTTPConnection(target.hostname, target.port, timeout=5)
        try:
            follower.request("POST", target.path, body=der, headers={"Content-Type": "application/ocsp-request"})
            answer = follower.getresponse()
            assert ocsp.load_der_ocsp_response(answer.read()).certificate_status == ocsp.OCSPCertStatus.GOOD
        finally:
            follower.close()
        followed = [line for line in responder_ok.log_lines() if f"mode={mode} " in line]
        statuses = [line.rsplit(" ", 1)[-1] for line in followed][-2:]
        assert statuses == [f"status=redirect-{code}", "status=followed-redirect"]
