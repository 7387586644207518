"""What a TLS client sees: ``openssl s_client -status`` against a lab vhost, read the way an operator reads it."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StapleCheck:
    handshake_ok: bool
    stapled: bool
    response_status: str | None  # "successful", "trylater", ... as openssl prints it
    cert_status: str | None  # "good", "revoked", "unknown"
    chain_verified: bool
    output: str


def check_staple(port: int, server_name: str, ca_file: Path | None = None, address: str = "127.0.0.1",
                 timeout: float = 20.0) -> StapleCheck:
    command = ["openssl", "s_client", "-connect", f"{address}:{port}", "-servername", server_name, "-status"]
    if ca_file:
        command += ["-CAfile", str(ca_file), "-verify_hostname", server_name]
    result = subprocess.run(command, input="", capture_output=True, text=True, timeout=timeout, check=False)
    output = result.stdout + result.stderr
    return parse_s_client(output, handshake_ok=result.returncode == 0)


def parse_s_client(output: str, handshake_ok: bool) -> StapleCheck:
    response_status = _first(r"OCSP Response Status:\s*(\w+)", output)
    return StapleCheck(
        handshake_ok=handshake_ok and "Cipher is" in output,
        stapled="OCSP response: no response sent" not in output and response_status is not None,
        response_status=response_status,
        cert_status=_first(r"Cert Status:\s*(\w+)", output),
        chain_verified="Verify return code: 0 (ok)" in output,
        output=output,
    )


def _first(pattern: str, text: str) -> str | None:
    match = re.search(pattern, text)
    return match.group(1).lower() if match else None
