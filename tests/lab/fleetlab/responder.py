"""A real OCSP responder (RFC 6960) for one lab CA, with faults that can be switched while it runs.

Start it as a process (script path or ``python3 -m fleetlab.responder`` with tests/lab on sys.path)::

    responder.py --ca-dir PKI/alpha --port 8801 --mode-file RUN/alpha.mode [--listen 127.0.0.1 --listen ::1] [--log F]

The mode file holds one word from MODES (missing file = ``ok``). The responder polls it every 0.1 s; once a new
mode is in effect it writes ``<mode-file>.applied`` with that word. The first ``.applied`` is written after the
listening sockets are open, so it doubles as a readiness signal. Controllers use ``set_mode()``.

Answers come from ``<ca-dir>/index.json`` (re-read whenever it changes); the signer is the CA's delegated OCSP
signer, named in the response by key hash, and its certificate is included.
"""

from __future__ import annotations

import argparse
import errno
import http.server
import logging
import os
import signal
import socket
import socketserver
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from cryptography.x509 import ocsp

if __package__ in (None, ""):
    # Run as a script path: make the fleetlab package importable the same way `-m` would.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleetlab import pki  # noqa: E402  (needs the path fix above when run as a script)
from fleetlab.ocsp_answers import (  # noqa: E402
    CaMaterial,
    decode_get_path,
    parse_request_der,
    successful_response,
    unsuccessful_response,
)

MODES = (
    "ok",
    "down",
    "hang",
    "html",
    "http500",
    "garbage",
    "trylater",
    "unauthorized",
    "wrong-signer",
    "expired",
    "future",
    # The modes below test a client's bounds: a total deadline, a size limit, no redirects followed.
    "drip",  # a good answer, status line and headers included, one byte per DRIP_SECONDS
    "huge",  # HUGE_BODY_BYTES announced in Content-Length and streamed
    "huge-chunked",  # the same, chunked, with no length
    "huge-close",  # the same, ended only by closing the connection
    "redirect-other-host",  # 302 to OTHER_HOST_NAME (which reaches this responder again)
    "redirect-same-host",  # 301 to the host the client named
)
DEFAULT_LISTEN = ("127.0.0.1", "::1")
MODE_POLL_SECONDS = 0.1
HANG_MAX_SECONDS = 300.0
DRIP_SECONDS = 1.0  # mode drip: one byte of the answer (status line and headers too) per DRIP_SECONDS
# The huge modes stream this many body bytes, far beyond any OCSP response, unless the client hangs up first;
# the log line says how many went out, which shows whether a client read it all.
HUGE_BODY_BYTES = 64 * 1024 * 1024
HUGE_BLOCK_BYTES = 64 * 1024
# Where the redirect modes send clients. A request that arrives there was a redirect followed: it is answered
# as in mode ok (so a following client would look healthy) and logged as status=followed-redirect.
FOLLOWED_PATH = "/followed/"
# Another host name for the same responder: a client that follows the redirect reaches us again and is seen.
OTHER_HOST_NAME = "localhost"
MAX_REQUEST_BYTES = 64 * 1024
OCSP_RESPONSE_TYPE = "application/ocsp-response"

CAPTIVE_PORTAL_HTML = b"""<!DOCTYPE html>
<html><head><title>Guest Wi-Fi - Sign in</title></head>
<body><h1>Welcome to FleetNet Guest Wi-Fi</h1>
<p>Please accept the terms of use to continue browsing.</p>
<form method="post" action="/login"><input name="email" placeholder="E-mail">
<button type="submit">Accept and connect</button></form></body></html>
"""

log = logging.getLogger("fleetlab.responder")


# ---------------------------------------------------------------------------------------------- controller side


def applied_file(mode_file: Path) -> Path:
    return Path(f"{mode_file}.applied")


def read_applied_mode(mode_file: Path) -> str | None:
    try:
        return applied_file(mode_file).read_text().strip()
    except FileNotFoundError:
        return None


def wait_until_applied(mode_file: Path, mode: str, timeout: float = 5) -> None:
    """Block until the responder reports `mode` in effect; TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while read_applied_mode(mode_file) != mode:
        if time.monotonic() > deadline:
            found = read_applied_mode(mode_file)
            raise TimeoutError(
                f"OCSP responder did not apply mode {mode!r} within {timeout} s "
                f"({applied_file(mode_file)} says {found!r}); is it running with --mode-file {mode_file}?"
            )
        time.sleep(0.02)


def set_mode(mode_file: Path, mode: str, timeout: float = 5) -> None:
    """Switch a running responder to `mode` and return once it is in effect."""
    if mode not in MODES:
        raise ValueError(f"unknown OCSP responder mode {mode!r}; valid modes: {', '.join(MODES)}")
    pki.write_atomic(Path(mode_file), f"{mode}\n".encode())
    wait_until_applied(Path(mode_file), mode, timeout)


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def find_free_port(addresses: tuple[str, ...] = DEFAULT_LISTEN) -> int:
    """A port that is free on every address (unavailable IPv6 is ignored), found by binding port 0.

    The port is released again before returning, so another process could take it first; fine for a lab.
    """
    families = {address: socket.AF_INET6 if ":" in address else socket.AF_INET for address in addresses}
    usable = [a for a in addresses if families[a] == socket.AF_INET or ipv6_loopback_available()]
    for _attempt in range(50):
        with socket.socket(families[usable[0]], socket.SOCK_STREAM) as first:
            first.bind((usable[0], 0))
            port = first.getsockname()[1]
            if all(_port_free(address, families[address], port) for address in usable[1:]):
                return port
    raise OSError(f"no port is free on all of {', '.join(usable)}")


def _port_free(address: str, family: int, port: int) -> bool:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((address, port))
        return True
    except OSError:
        return False


def responder_command(
    ca_dir: Path, port: int, mode_file: Path, listen: list[str] | None = None, log_file: Path | None = None
) -> list[str]:
    """The argv that starts a responder with the current interpreter."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--ca-dir", str(ca_dir), "--port", str(port)]
    argv += ["--mode-file", str(mode_file)]
    for address in listen or []:
        argv += ["--listen", address]
    if log_file is not None:
        argv += ["--log", str(log_file)]
    return argv


# ---------------------------------------------------------------------------------------------- state


class ModeState:
    """The mode in effect; hanging handlers wait on it so that a switch releases them at once."""

    def __init__(self) -> None:
        self._mode = "ok"
        self._changed = threading.Condition()

    @property
    def mode(self) -> str:
        with self._changed:
            return self._mode

    def set(self, mode: str) -> None:
        with self._changed:
            self._mode = mode
            self._changed.notify_all()

    def wait_while(self, mode: str, timeout: float) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._mode != mode, timeout=timeout)


# ---------------------------------------------------------------------------------------------- HTTP side


@dataclass
class HttpAnswer:
    code: int
    content_type: str
    body: bytes
    log_status: str
    location: str | None = None


UNSUCCESSFUL_MODES = {
    "trylater": ocsp.OCSPResponseStatus.TRY_LATER,
    "unauthorized": ocsp.OCSPResponseStatus.UNAUTHORIZED,
}


def answer_for(material: CaMaterial, mode: str, request: ocsp.OCSPRequest | None) -> HttpAnswer:
    """What to send back for a request (None: did not parse) that arrived in `mode` (not down or hang)."""
    if mode == "html":
        return HttpAnswer(200, "text/html; charset=utf-8", CAPTIVE_PORTAL_HTML, "html")
    if mode == "http500":
        return HttpAnswer(500, "text/plain; charset=utf-8", b"500 Internal Server Error: OCSP backend down\n", "http500")
    if mode == "garbage":
        # Never starts with 0x30 (SEQUENCE), so no DER parser can mistake it for a response.
        return HttpAnswer(200, OCSP_RESPONSE_TYPE, b"\xff" + os.urandom(255), "garbage")
    if mode in UNSUCCESSFUL_MODES:
        return HttpAnswer(200, OCSP_RESPONSE_TYPE, unsuccessful_response(UNSUCCESSFUL_MODES[mode]), mode)
    if request is None:
        body = unsuccessful_response(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        return HttpAnswer(200, OCSP_RESPONSE_TYPE, body, "malformed")
    body, label = successful_response(material, request, mode)
    return HttpAnswer(200, OCSP_RESPONSE_TYPE, body, label)


class OcspHandler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, which is what OCSP clients (Apache's included) send.
    protocol_version = "HTTP/1.0"
    # The base class answers an unparsable request line HTTP/0.9-style (a bare body, no status line);
    # clients deserve a real "HTTP/1.0 400" instead.
    default_request_version = "HTTP/1.0"
    server_version = "fleetlab-ocsp/1"
    timeout = 30  # a silent client must not hold a thread forever

    server: "OcspServer"

    def do_POST(self) -> None:  # noqa: N802 - name fixed by BaseHTTPRequestHandler
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._send_plain(400, "a POST needs a numeric Content-Length")
            return
        if not 0 <= length <= MAX_REQUEST_BYTES:
            self._send_plain(400, f"Content-Length must be 0..{MAX_REQUEST_BYTES}")
            return
        self._serve(self.rfile.read(length))

    def do_GET(self) -> None:  # noqa: N802
        self._serve(decode_get_path(self.path))

    def _serve(self, request_der: bytes | None) -> None:
        mode = self.server.modes.mode
        # Parsed in every mode, so that the log names the serial a client asked about even during faults.
        request = parse_request_der(request_der) if request_der is not None else None
        serial = pki.serial_to_hex(request.serial_number) if request is not None else "-"
        if urllib.parse.urlsplit(self.path).path.startswith(FOLLOWED_PATH):
            self._answer("ok", request, serial, "followed-redirect")
        elif mode == "hang":
            self._hang(serial)
        elif mode == "drip":
            self._drip(request, serial)
        elif mode.startswith("huge"):
            self._stream_huge(mode, serial)
        elif mode.startswith("redirect-"):
            self._redirect(mode, serial)
        else:
            self._answer(mode, request, serial)

    def _answer(self, mode: str, request: ocsp.OCSPRequest | None, serial: str, log_status: str | None = None) -> None:
        answer = self._answer_for(mode, request)
        self._log_request(self.server.modes.mode, serial, log_status or answer.log_status)
        self._send(answer.code, answer.content_type, answer.body)

    def _answer_for(self, mode: str, request: ocsp.OCSPRequest | None) -> HttpAnswer:
        try:
            return answer_for(self.server.material, mode, request)
        except Exception as exc:  # noqa: BLE001 - keep serving whatever went wrong with one request
            log.exception("failed to answer a request")
            return HttpAnswer(500, "text/plain", f"responder error: {exc}\n".encode(), "error")

    def _redirect(self, mode: str, serial: str) -> None:
        """301 to this very host (as the client named it), or 302 to another host name that reaches us too."""
        if mode == "redirect-same-host":
            code, host = 301, self.headers.get("Host") or f"127.0.0.1:{self.server.server_port}"
        else:
            code, host = 302, f"{OTHER_HOST_NAME}:{self.server.server_port}"
        location = f"http://{host}{FOLLOWED_PATH}"
        self._log_request(mode, serial, f"redirect-{code}")
        self.send_response(code)
        self.send_header("Location", location)
        body = f"moved to {location}\n".encode()
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drip(self, request: ocsp.OCSPRequest | None, serial: str) -> None:
        """A good answer, status line and headers included, one byte per DRIP_SECONDS until sent, the client
        hangs up, or the mode changes."""
        answer = self._answer_for("ok", request)
        head = (f"HTTP/1.0 {answer.code} OK\r\nContent-Type: {answer.content_type}\r\n"
                f"Content-Length: {len(answer.body)}\r\nCache-Control: no-store\r\n\r\n").encode()
        whole = head + answer.body
        self.close_connection = True
        sent = 0
        try:
            while sent < len(whole) and self.server.modes.mode == "drip":
                self.wfile.write(whole[sent:sent + 1])
                sent += 1
                self.server.modes.wait_while("drip", DRIP_SECONDS)
        except OSError:
            pass  # the client gave up: what a bounded client does
        self._log_request("drip", serial, f"dripped sent={sent}/{len(whole)}")

    def _stream_huge(self, mode: str, serial: str) -> None:
        """HUGE_BODY_BYTES of a body that starts like a DER SEQUENCE: with a Content-Length (huge), chunked
        (huge-chunked) or ended only by closing the connection (huge-close)."""
        self.close_connection = True
        if mode == "huge-chunked":
            head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
        elif mode == "huge-close":
            head = "HTTP/1.0 200 OK\r\nConnection: close\r\n"
        else:
            head = f"HTTP/1.0 200 OK\r\nContent-Length: {HUGE_BODY_BYTES}\r\n"
        head += f"Content-Type: {OCSP_RESPONSE_TYPE}\r\nCache-Control: no-store\r\n\r\n"
        block = bytearray(HUGE_BLOCK_BYTES)
        block[:6] = b"\x30\x84" + (HUGE_BODY_BYTES - 6).to_bytes(4, "big")  # SEQUENCE of the whole length
        sent = 0
        try:
            self.wfile.write(head.encode())
            while sent < HUGE_BODY_BYTES and self.server.modes.mode == mode:
                data = bytes(block) if sent == 0 else bytes(HUGE_BLOCK_BYTES)
                if mode == "huge-chunked":
                    data = b"%x\r\n%s\r\n" % (len(data), data)
                self.wfile.write(data)
                sent += HUGE_BLOCK_BYTES
            if mode == "huge-chunked":
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client hung up: how much it took is in the log line
        self._log_request(mode, serial, f"streamed sent={sent}/{HUGE_BODY_BYTES}")

    def _hang(self, serial: str) -> None:
        """Read the request (done), then say nothing until the mode changes; the connection then just closes."""
        self._log_request("hang", serial, "no-answer")
        self.close_connection = True
        self.server.modes.wait_while("hang", HANG_MAX_SECONDS)

    def _send(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")  # the lab's faults must reach clients, not caches
        self.end_headers()
        self.wfile.write(body)

    def _send_plain(self, code: int, text: str) -> None:
        self._log_request(self.server.modes.mode, "-", f"http{code}")
        self._send(code, "text/plain; charset=utf-8", f"{text}\n".encode())

    def _log_request(self, mode: str, serial: str, status: str) -> None:
        log.info("client=%s method=%s mode=%s serial=%s status=%s",
                 self.client_address[0], self.command, mode, serial, status)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature fixed by the base class
        # The base class logs every request and error to stderr; only errors are worth a line here
        # (e.g. a non-HTTP request line answered with 400), requests get our own line above.
        if args and str(args[0]).isdigit() and int(str(args[0])) >= 400:
            log.info("client=%s http-error %s", self.client_address[0], format % args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class OcspServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # A hanging request must not make closing the listener (mode down, SIGTERM) wait for it.
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], family: int, material: CaMaterial, modes: ModeState) -> None:
        self.address_family = family
        self.material = material
        self.modes = modes
        super().__init__(address, OcspHandler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        # Skip HTTPServer.server_bind: its getfqdn() can stall on a host without working reverse DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[0], self.server_address[1]

    def handle_error(self, request: object, client_address: tuple) -> None:
        log.warning("client=%s connection error: %s", client_address[0], sys.exc_info()[1])


class Listeners:
    """The listening sockets on every address; closed in mode down so connections are refused."""

    def __init__(self, addresses: list[str], port: int, material: CaMaterial, modes: ModeState) -> None:
        self.addresses = addresses
        self.port = port
        self.material = material
        self.modes = modes
        self.servers: list[OcspServer] = []

    @property
    def is_open(self) -> bool:
        return bool(self.servers)

    def open(self) -> None:
        for address in self.addresses:
            server = self._bind(address)
            if server is None:
                continue
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            self.servers.append(server)
        if not self.servers:
            raise OSError(f"could not listen on any of {', '.join(self.addresses)} port {self.port}")

    def _bind(self, address: str) -> OcspServer | None:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            server = OcspServer((address, self.port), family, self.material, self.modes)
        except OSError as exc:
            if family == socket.AF_INET6 and exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                log.info("IPv6 unavailable, not listening on [%s]:%d: %s", address, self.port, exc)
                return None
            raise
        log.info("listening on %s port %d", f"[{address}]" if family == socket.AF_INET6 else address, self.port)
        return server

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
        self.servers = []
        log.info("listeners closed (port %d refuses connections)", self.port)


# ---------------------------------------------------------------------------------------------- main loop


def read_mode_file(mode_file: Path) -> str:
    try:
        return mode_file.read_text().strip().lower() or "ok"
    except FileNotFoundError:
        return "ok"


class ModeController:
    """Follows the mode file: applies a new mode (closing or reopening listeners), then confirms it."""

    def __init__(self, mode_file: Path, listeners: Listeners, modes: ModeState) -> None:
        self.mode_file = mode_file
        self.listeners = listeners
        self.modes = modes
        self.applied: str | None = None
        self.last_rejected: str | None = None  # so an unknown word is logged once, not ten times a second

    def poll(self) -> None:
        wanted = read_mode_file(self.mode_file)
        if wanted == self.applied:
            return
        if wanted not in MODES:
            if wanted != self.last_rejected:
                log.warning("mode file %s holds unknown mode %r; keeping %s", self.mode_file, wanted, self.applied)
            self.last_rejected = wanted
            return
        self._apply(wanted)

    def _apply(self, mode: str) -> None:
        if mode == "down" and self.listeners.is_open:
            self.listeners.close()
        if mode != "down" and not self.listeners.is_open:
            self.listeners.open()
        self.modes.set(mode)
        self.applied = mode
        pki.write_atomic(applied_file(self.mode_file), f"{mode}\n".encode())
        log.info("mode %s applied", mode)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="fleetlab OCSP responder with switchable faults")
    parser.add_argument("--ca-dir", required=True, type=Path, help="CA directory made by fleetlab.pki.build_ca")
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--listen", action="append", help="address to listen on (repeatable; default 127.0.0.1 and ::1)")
    parser.add_argument("--mode-file", required=True, type=Path, help=f"holds one of: {', '.join(MODES)}")
    parser.add_argument("--log", type=Path, help="append the request log here instead of stderr")
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error("--port must be between 1 and 65535")
    return args


def _setup_logging(log_file: Path | None) -> None:
    handler: logging.Handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter("%(asctime)s.%(msecs)03dZ %(message)s", datefmt="%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    log.addHandler(handler)
    log.setLevel(logging.INFO)


def _stop_on_signals(stop: threading.Event) -> None:
    def handle(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    _setup_logging(args.log)
    try:
        material = CaMaterial(args.ca_dir.resolve())
    except (OSError, ValueError) as exc:
        log.error("cannot load CA from %s: %s", args.ca_dir, exc)
        return 2
    modes = ModeState()
    listeners = Listeners(args.listen or list(DEFAULT_LISTEN), args.port, material, modes)
    controller = ModeController(args.mode_file, listeners, modes)
    stop = threading.Event()
    _stop_on_signals(stop)
    try:
        controller.poll()
        while not stop.wait(MODE_POLL_SECONDS):
            controller.poll()
    except OSError as exc:
        log.error("responder for %s cannot listen: %s", material.ca.name, exc)
        return 1
    if listeners.is_open:
        listeners.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
