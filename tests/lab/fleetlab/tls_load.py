"""A bounded HTTPS load on lab vhosts: a few client threads, each doing connect, TLS handshake, one GET and close,
over and over, with every request's outcome kept so that a test can count failures per phase.

Loopback only. Each request is a new connection (and so a new handshake), as a browser's first visit is: a graceful
reload that dropped connections or stalled handshakes would show here first.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Request:
    phase: str
    handshake_seconds: float | None  # None: the handshake did not complete
    error: str | None  # None: status 200 read back


@dataclass
class TlsLoad:
    """``workers`` threads requesting ``targets`` ((port, server name) pairs) in turn until ``stop``."""

    targets: list[tuple[int, str]]
    workers: int = 4
    timeout: float = 10.0
    pause: float = 0.01  # between a worker's requests: a steady load that leaves the runs under test some CPU
    phase: str = "before"
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self):
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, args=(index,), daemon=True)
                         for index in range(self.workers)]
        # The lab's certificates come from its own CAs; what is measured here is availability, not trust.
        self._context = ssl.create_default_context()
        self._context.check_hostname = False
        self._context.verify_mode = ssl.CERT_NONE

    def __enter__(self) -> "TlsLoad":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)

    def _work(self, index: int) -> None:
        turn = index
        while not self._stop.is_set():
            port, server_name = self.targets[turn % len(self.targets)]
            turn += 1
            phase = self.phase
            request = self.request(port, server_name, phase)
            with self._lock:
                self.requests.append(request)
            self._stop.wait(self.pause)

    def request(self, port: int, server_name: str, phase: str) -> Request:
        started = time.monotonic()
        handshake = None
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=self.timeout) as raw:
                with self._context.wrap_socket(raw, server_hostname=server_name) as tls:
                    handshake = time.monotonic() - started
                    tls.sendall(f"GET / HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n".encode())
                    status_line = tls.recv(64).split(b"\r\n", 1)[0]
            if not status_line.startswith(b"HTTP/1.1 200"):
                return Request(phase, handshake, f"status {status_line[:40]!r}")
            return Request(phase, handshake, None)
        except (OSError, ssl.SSLError) as exc:
            return Request(phase, handshake, f"{type(exc).__name__}: {exc}")

    def snapshot(self) -> list[Request]:
        with self._lock:
            return list(self.requests)


def percentile(values: list[float], fraction: float) -> float | None:
    """The value below which ``fraction`` of ``values`` lie (nearest rank); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(int(round(fraction * len(ordered) + 0.5)) - 1, 0)
    return ordered[min(rank, len(ordered) - 1)]


def phase_figures(requests: list[Request], phase: str) -> dict:
    """Requests, failures and the p50/p99 handshake time (seconds) of one phase."""
    mine = [request for request in requests if request.phase == phase]
    handshakes = [request.handshake_seconds for request in mine if request.handshake_seconds is not None]
    return {
        "phase": phase,
        "requests": len(mine),
        "failures": sum(1 for request in mine if request.error),
        "errors": sorted({request.error for request in mine if request.error})[:5],
        "p50": percentile(handshakes, 0.50),
        "p99": percentile(handshakes, 0.99),
    }
