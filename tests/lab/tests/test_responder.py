"""The lab OCSP responder as a client sees it: a real process, real HTTP, every fault mode."""

from __future__ import annotations

import base64
import datetime
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from fleetlab import pki, responder

CLIENT_TIMEOUT = 2.0
HANG_TIMEOUT = 1.0
IPV6 = responder.ipv6_loopback_available()
needs_ipv6 = pytest.mark.skipif(not IPV6, reason="no IPv6 loopback on this host")


@dataclass
class Responder:
    process: subprocess.Popen
    port: int
    mode_file: Path
    log_file: Path

    def set_mode(self, mode: str) -> None:
        responder.set_mode(self.mode_file, mode)

    def log_lines(self) -> list[str]:
        return self.log_file.read_text().splitlines()


@dataclass
class HttpReply:
    status: int
    content_type: str
    body: bytes


# ---------------------------------------------------------------------------------------------- process fixtures


def start_responder(ca: pki.CaFiles, port: int, run_dir: Path) -> Responder:
    """Start a responder and wait for its readiness signal (the first `.applied`)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    mode_file, log_file = run_dir / "mode", run_dir / "responder.log"
    responder.applied_file(mode_file).unlink(missing_ok=True)
    argv = responder.responder_command(ca.dir, port, mode_file, log_file=log_file)
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True, cwd=run_dir)
    try:
        responder.wait_until_applied(mode_file, "ok", timeout=10)
    except TimeoutError:
        stop_responder(process)
        raise
    return Responder(process, port, mode_file, log_file)


def stop_responder(process: subprocess.Popen) -> int:
    """SIGTERM by pid, SIGKILL if it does not go; returns the exit code."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
    try:
        return process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        return process.wait(timeout=5)


@pytest.fixture(scope="module")
def responder_alpha(
    pki_alpha: pki.CaFiles, pki_alpha_leaves: dict, pki_alpha_ocsp_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Responder]:
    running = start_responder(pki_alpha, pki_alpha_ocsp_port, tmp_path_factory.mktemp("responder-alpha"))
    yield running
    stop_responder(running.process)


@pytest.fixture
def responder_ok(responder_alpha: Responder) -> Iterator[Responder]:
    """The shared responder, in mode ok before and after the test whatever the test switched to."""
    responder_alpha.set_mode("ok")
    yield responder_alpha
    responder_alpha.set_mode("ok")


# ---------------------------------------------------------------------------------------------- client helpers


def build_request(leaf: pki.LeafFiles, nonce: bytes | None = None, issuer_pem: Path | None = None) -> bytes:
    """DER OCSPRequest with a SHA-1 CertID, as Apache's and OpenSSL's clients send by default."""
    cert = pki.load_cert(leaf.cert_pem)
    issuer = pki.load_cert(issuer_pem or leaf.issuer_pem)
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def host_for(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def http_exchange(port: int, method: str, path: str, body: bytes | None, address: str = "127.0.0.1",
                  timeout: float = CLIENT_TIMEOUT) -> HttpReply:
    connection = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/ocsp-request"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        reply = connection.getresponse()
        return HttpReply(reply.status, reply.getheader("Content-Type", ""), reply.read())
    finally:
        connection.close()


def post(port: int, der: bytes, address: str = "127.0.0.1", timeout: float = CLIENT_TIMEOUT) -> HttpReply:
    return http_exchange(port, "POST", "/", der, address, timeout)


def ocsp_post(port: int, der: bytes, address: str = "127.0.0.1") -> ocsp.OCSPResponse:
    reply = post(port, der, address)
    assert (reply.status, reply.content_type) == (200, "application/ocsp-response")
    return ocsp.load_der_ocsp_response(reply.body)


def signature_valid(response: ocsp.OCSPResponse, public_key: ec.EllipticCurvePublicKey) -> bool:
    try:
        public_key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(response.signature_hash_algorithm))
    except InvalidSignature:
        return False
    return True


def assert_connection_refused(port: int, address: str) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((address, port), timeout=CLIENT_TIMEOUT).close()


def raw_post(port: int, der: bytes) -> socket.socket:
    """Send a complete POST and leave the socket open, to watch what the responder does with it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=HANG_TIMEOUT)
    head = f"POST / HTTP/1.0\r\nContent-Type: application/ocsp-request\r\nContent-Length: {len(der)}\r\n\r\n"
    sock.sendall(head.encode() + der)
    return sock


# ---------------------------------------------------------------------------------------------- mode ok


def test_ok_answers_good_signed_by_delegated_signer(responder_ok, pki_alpha, pki_alpha_leaves):
    leaf = pki_alpha_leaves["normal"]
    response = ocsp_post(responder_ok.port, build_request(leaf))
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert response.serial_number == leaf.serial
    signer = response.certificates[0]
    assert signer == pki.load_cert(pki_alpha.ocsp_signer_pem)
    signer.verify_directly_issued_by(pki.load_cert(pki_alpha.intermediate_pem))
    assert signature_valid(response, signer.public_key())
    assert response.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(signer.public_key()).digest


def test_ok_validity_window_brackets_now(responder_ok, pki_alpha_leaves):
    response = ocsp_post(responder_ok.port, build_request(pki_alpha_leaves["normal"]))
    now = pki.utc_now()
    assert response.this_update_utc <= now < response.next_update_utc
    assert response.next_update_utc - now > datetime.timedelta(minutes=50)


def test_ok_answers_revoked_with_time_and_reason(responder_ok, pki_alpha, pki_alpha_leaves):
    leaf = pki_alpha_leaves["revoked"]
    response = ocsp_post(responder_ok.port, build_request(leaf))
    assert response.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_reason == x509.ReasonFlags.key_compromise
    recorded = datetime.datetime.fromisoformat(pki.read_index(pki_alpha)[leaf.serial_hex]["revoked_at"])
    assert abs(response.revocation_time_utc - recorded) < datetime.timedelta(seconds=1)


def test_ok_answers_unknown_for_leaf_missing_from_index(responder_ok, pki_alpha_leaves):
    response = ocsp_post(responder_ok.port, build_request(pki_alpha_leaves["unknown"]))
    assert response.certificate_status == ocsp.OCSPCertStatus.UNKNOWN


def test_ok_answers_unknown_for_another_cas_certificate(responder_ok, tmp_path):
    other_ca = pki.build_ca(tmp_path, "beta", "http://127.0.0.1:9/")
    other_leaf = pki.issue_leaf(other_ca, "www", ["www.beta.lab.test"])
    response = ocsp_post(responder_ok.port, build_request(other_leaf))
    assert response.certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    assert response.serial_number == other_leaf.serial  # the client's CertID is echoed


def test_ok_follows_index_changes_without_restart(responder_ok, pki_alpha):
    leaf = pki.issue_leaf(pki_alpha, "revoked-while-running", ["later.alpha.lab.test"])
    assert ocsp_post(responder_ok.port, build_request(leaf)).certificate_status == ocsp.OCSPCertStatus.GOOD
    pki.mark_revoked(pki_alpha, leaf.serial)
    assert ocsp_post(responder_ok.port, build_request(leaf)).certificate_status == ocsp.OCSPCertStatus.REVOKED


def test_nonce_is_echoed(responder_ok, pki_alpha_leaves):
    nonce = os.urandom(16)
    response = ocsp_post(responder_ok.port, build_request(pki_alpha_leaves["normal"], nonce=nonce))
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce


def test_no_nonce_without_one_asked(responder_ok, pki_alpha_leaves):
    response = ocsp_post(responder_ok.port, build_request(pki_alpha_leaves["normal"]))
    with pytest.raises(x509.ExtensionNotFound):
        response.extensions.get_extension_for_class(x509.OCSPNonce)


@pytest.mark.parametrize("spelling", ["standard-percent-encoded", "urlsafe-unpadded", "standard-raw-slashes"])
def test_get_request_is_answered(responder_ok, pki_alpha_leaves, spelling):
    der = build_request(pki_alpha_leaves["normal"])
    paths = {
        "standard-percent-encoded": "/" + urllib.parse.quote(base64.b64encode(der).decode(), safe=""),
        "urlsafe-unpadded": "/" + base64.urlsafe_b64encode(der).decode().rstrip("="),
        "standard-raw-slashes": "/ocsp/" + base64.b64encode(der).decode(),
    }
    reply = http_exchange(responder_ok.port, "GET", paths[spelling], None)
    assert reply.status == 200
    assert ocsp.load_der_ocsp_response(reply.body).certificate_status == ocsp.OCSPCertStatus.GOOD


@pytest.mark.parametrize("address", ["127.0.0.1", pytest.param("::1", marks=needs_ipv6)])
def test_both_address_families_answer(responder_ok, pki_alpha_leaves, address):
    response = ocsp_post(responder_ok.port, build_request(pki_alpha_leaves["normal"]), address=address)
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD


def test_request_log_names_client_mode_serial_and_status(responder_ok, pki_alpha_leaves):
    leaf = pki_alpha_leaves["revoked"]
    ocsp_post(responder_ok.port, build_request(leaf))
    last = responder_ok.log_lines()[-1]
    for part in ("client=127.0.0.1", "method=POST", "mode=ok", f"serial={leaf.serial_hex}", "status=revoked"):
        assert part in last


# ---------------------------------------------------------------------------------------------- bad input


def test_malformed_post_gets_malformed_request_and_server_lives_on(responder_ok, pki_alpha_leaves):
    response = ocsp_post(responder_ok.port, b"\x30\x03\x02\x01\x05 this is no OCSP request")
    assert response.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    empty = ocsp_post(responder_ok.port, b"")
    assert empty.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert ocsp_post(responder_ok.port, build_request(pki_alpha_leaves["normal"])).certificate_status.name == "GOOD"


def test_malformed_get_gets_malformed_request(responder_ok):
    reply = http_exchange(responder_ok.port, "GET", "/%%%not-base64!!", None)
    assert ocsp.load_der_ocsp_response(reply.body).response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_non_http_bytes_get_400_and_server_lives_on(responder_ok, pki_alpha_leaves):
    with socket.create_connection(("127.0.0.1", responder_ok.port), timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(b"\x16\x03\x01 definitely not HTTP\r\n\r\n")
        assert sock.recv(200).startswith(b"HTTP/1.0 400 ")
    assert ocsp_post(responder_ok.port, build_request(pki_alpha_leaves["normal"])).certificate_status.name == "GOOD"


# ---------------------------------------------------------------------------------------------- fault modes


def test_down_refuses_connections_and_ok_reopens(responder_ok, pki_alpha_leaves):
    responder_ok.set_mode("down")
    assert_connection_refused(responder_ok.port, "127.0.0.1")
    if IPV6:
        assert_connection_refused(responder_ok.port, "::1")
    responder_ok.set_mode("ok")
    assert ocsp_post(responder_ok.port, build_request(pki_alpha_leaves["normal"])).certificate_status.name == "GOOD"


def test_hang_times_out_without_blocking_others(responder_ok, pki_alpha_leaves):
    leaf = pki_alpha_leaves["normal"]
    der = build_request(leaf)
    responder_ok.set_mode("hang")
    hung = raw_post(responder_ok.port, der)
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            post(responder_ok.port, der, timeout=HANG_TIMEOUT)  # what a client with a 1 s timeout sees
        assert time.monotonic() - started < HANG_TIMEOUT + 0.5
        hung.settimeout(0.2)
        with pytest.raises(TimeoutError):
            hung.recv(1)  # the first connection is still unanswered

        responder_ok.set_mode("ok")
        assert ocsp_post(responder_ok.port, der).certificate_status == ocsp.OCSPCertStatus.GOOD
        hung.settimeout(CLIENT_TIMEOUT)
        assert hung.recv(1) == b""  # released by the switch: closed, never answered
    finally:
        hung.close()
    # The log proves the request arrived and which certificate it was about.
    assert f"mode=hang serial={leaf.serial_hex} status=no-answer" in "\n".join(responder_ok.log_lines())


def test_html_is_a_login_page_not_ocsp(responder_ok, pki_alpha_leaves):
    responder_ok.set_mode("html")
    reply = post(responder_ok.port, build_request(pki_alpha_leaves["normal"]))
    assert reply.status == 200 and reply.content_type.startswith("text/html")
    assert b"<html" in reply.body
    with pytest.raises(ValueError):
        ocsp.load_der_ocsp_response(reply.body)


def test_http500(responder_ok, pki_alpha_leaves):
    responder_ok.set_mode("http500")
    reply = post(responder_ok.port, build_request(pki_alpha_leaves["normal"]))
    assert reply.status == 500 and reply.content_type.startswith("text/plain")


def test_garbage_is_labelled_ocsp_but_does_not_parse(responder_ok, pki_alpha_leaves):
    responder_ok.set_mode("garbage")
    reply = post(responder_ok.port, build_request(pki_alpha_leaves["normal"]))
    assert (reply.status, reply.content_type) == (200, "application/ocsp-response")
    with pytest.raises(ValueError):
        ocsp.load_der_ocsp_response(reply.body)


@pytest.mark.parametrize(
    "mode, status",
    [("trylater", ocsp.OCSPResponseStatus.TRY_LATER), ("unauthorized", ocsp.OCSPResponseStatus.UNAUTHORIZED)],
)
def test_unsuccessful_statuses(responder_ok, pki_alpha_leaves, mode, status):
    responder_ok.set_mode(mode)
    assert ocsp_post(responder_ok.port, build_request(pki_alpha_leaves["normal"])).response_status == status


def test_wrong_signer_response_does_not_verify(responder_ok, pki_alpha, pki_alpha_leaves):
    responder_ok.set_mode("wrong-signer")
    response = ocsp_post(responder_ok.port, build_request(pki_alpha_leaves["normal"]))
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
    intermediate = pki.load_cert(pki_alpha.intermediate_pem)
    assert not signature_valid(response, pki.load_cert(pki_alpha.ocsp_signer_pem).public_key())
    assert not signature_valid(response, intermediate.public_key())
    with pytest.raises(ValueError):
        response.certificates[0].verify_directly_issued_by(intermediate)


def test_expired_response_has_next_update_in_the_past(responder_ok, pki_alpha, pki_alpha_leaves):
    responder_ok.set_mode("expired")
    response = ocsp_post(responder_ok.port, build_request(pki_alpha_leaves["normal"]))
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert response.next_update_utc < pki.utc_now()
    assert signature_valid(response, pki.load_cert(pki_alpha.ocsp_signer_pem).public_key())


def test_future_response_has_this_update_ahead(responder_ok, pki_alpha_leaves):
    responder_ok.set_mode("future")
    response = ocsp_post(responder_ok.port, build_request(pki_alpha_leaves["normal"]))
    assert response.this_update_utc > pki.utc_now() + datetime.timedelta(hours=23)
    assert response.next_update_utc > response.this_update_utc


def test_set_mode_rejects_unknown_mode_and_lists_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="wrong-signer"):
        responder.set_mode(tmp_path / "mode", "offline")
    assert not (tmp_path / "mode").exists()


def test_every_mode_can_be_applied(responder_ok):
    for mode in responder.MODES:
        responder_ok.set_mode(mode)
        assert responder.read_applied_mode(responder_ok.mode_file) == mode


# ---------------------------------------------------------------------------------------------- interoperability


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
@pytest.mark.parametrize("kind, verdict", [("normal", "good"), ("revoked", "revoked"), ("unknown", "unknown")])
def test_openssl_cli_accepts_the_response(responder_ok, pki_alpha, pki_alpha_leaves, kind, verdict):
    leaf = pki_alpha_leaves[kind]
    result = subprocess.run(
        ["openssl", "ocsp", "-issuer", str(pki_alpha.intermediate_pem), "-cert", str(leaf.cert_pem),
         "-url", leaf.ocsp_url, "-CAfile", str(pki_alpha.bundle_pem), "-resp_text", "-timeout", "5"],
        capture_output=True, text=True, timeout=15, check=False,
    )
    output = result.stdout + result.stderr
    assert "Response verify OK" in output, output
    assert f"{leaf.cert_pem}: {verdict}" in output, output


# ---------------------------------------------------------------------------------------------- process life


def test_runs_as_module_and_exits_zero_on_sigterm(pki_alpha, tmp_path):
    port = responder.find_free_port()
    run_dir = tmp_path / "run"
    argv = [sys.executable, "-m", "fleetlab.responder", "--ca-dir", str(pki_alpha.dir), "--port", str(port),
            "--listen", "127.0.0.1", "--mode-file", str(run_dir / "mode"), "--log", str(run_dir / "responder.log")]
    lab_dir = str(Path(pki.__file__).resolve().parent.parent)
    process_env = {**os.environ, "PYTHONPATH": lab_dir}
    run_dir.mkdir()
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True, env=process_env)
    try:
        responder.wait_until_applied(run_dir / "mode", "ok", timeout=10)
        reply = post(port, b"junk")
        assert reply.status == 200
    finally:
        exit_code = stop_responder(process)
    assert exit_code == 0
    assert_connection_refused(port, "127.0.0.1")


def test_missing_ca_dir_fails_fast(tmp_path):
    argv = responder.responder_command(tmp_path / "nope", responder.find_free_port(), tmp_path / "mode")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=15, check=False)
    assert result.returncode != 0
    assert "cannot load CA" in result.stderr
