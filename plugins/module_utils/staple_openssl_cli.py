# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The stapled check without pyOpenSSL: ``openssl s_client -status`` and its protocol dump.

Most managed hosts have the ``openssl`` command but not pyOpenSSL. ``s_client -status`` asks for the staple, yet
prints it only as text, and no s_client option (1.1.1 to 3.x) writes the raw response. The DER is therefore taken
from the ``-msg`` dump, which shows every handshake message received, in hex and whole (reassembled):

* TLS 1.2 sends the staple in a CertificateStatus message (type 22): status_type 1 (ocsp), a 3-byte length and
  the DER OCSPResponse.
* TLS 1.3 puts the same CertificateStatus structure in the status_request extension (type 5) of the first
  CertificateEntry of the Certificate message (type 11).

The served chain comes from the PEM blocks of ``-showcerts``. The command is always an argument list, never a
shell string, and its standard input is empty, so s_client ends once the handshake is done.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from ansible_collections.fleet.stapling.plugins.module_utils import certificates

CLIENT_NAME = "openssl-s_client"
FALLBACK_BINARY = "/usr/bin/openssl"
# s_client needs a moment to start even when the server answers at once.
MIN_TIMEOUT = 0.2

HANDSHAKE_CERTIFICATE = 11
HANDSHAKE_CERTIFICATE_STATUS = 22
EXTENSION_STATUS_REQUEST = 5
STATUS_TYPE_OCSP = 1

# "<<< TLS 1.2, Handshake [length 010f], CertificateStatus" (1.1.1 and 3.x), "<<< TLS 1.2 Handshake [length ...]"
# (1.0.2): a message received from the server, followed by its bytes in hex, 16 to a line.
_RECEIVED_HANDSHAKE = re.compile(r"^<<< .*\bHandshake \[length ([0-9a-fA-F]+)\]")
_HEX_LINE = re.compile(r"^\s+((?:[0-9a-fA-F]{2}\s*)+)$")
_SESSION_PROTOCOL = re.compile(r"^\s*Protocol\s*:\s*(\S+)", re.MULTILINE)
_CIPHER_LINE = re.compile(r"^(?:New|Reused), (\S+), Cipher is (\S+)", re.MULTILINE)
# "40B7FE5C2A7F0000:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../ssl/record/...": the
# reason is the sixth field in OpenSSL 1.1.1 and 3.x alike.
_ERROR_LINE = re.compile(r"^[^:\s]*:error:[^:]*:[^:]*:[^:]*:([^:]+):", re.MULTILINE)
_ERRNO_LINE = re.compile(r"^(?:connect|read|write):errno=(\d+)", re.MULTILINE)
_STAPLE_TEXT = re.compile(r"^OCSP response:\s*$", re.MULTILINE)
# The -showcerts section. The staple's text dump before it may hold PEM blocks too (a delegated signer's
# certificate), so the chain is read from this section only.
_CHAIN_SECTION = re.compile(r"^Certificate chain\s*$(.*?)^---\s*$", re.MULTILINE | re.DOTALL)


class ParseError(ValueError):
    """A handshake message is shorter than its own length fields say."""


def find_openssl():
    """The openssl command to run: the one on PATH, else /usr/bin/openssl; None when there is none."""
    found = shutil.which("openssl")
    if found:
        return found
    if os.path.isfile(FALLBACK_BINARY) and os.access(FALLBACK_BINARY, os.X_OK):
        return FALLBACK_BINARY
    return None


def build_command(binary, address, port, server_name=None):
    """The s_client argument list; an IPv6 address is bracketed, as s_client's host:port parsing wants."""
    host = "[%s]" % address if ":" in address else address
    command = [binary, "s_client", "-connect", "%s:%d" % (host, int(port))]
    if server_name:
        command += ["-servername", server_name]
    # -status asks for the staple, -msg dumps the messages it comes in, -showcerts prints the served chain.
    command += ["-status", "-msg", "-showcerts"]
    return command


def run_command(command, timeout):
    """(exit status or None on timeout, stdout text, stderr text); never through a shell."""
    try:
        completed = subprocess.run(command, input=b"", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   timeout=max(timeout, MIN_TIMEOUT), check=False)
    except subprocess.TimeoutExpired as exc:
        return None, _text(exc.stdout), _text(exc.stderr)
    return completed.returncode, _text(completed.stdout), _text(completed.stderr)


def _text(data):
    if data is None:
        return ""
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


# ---------------------------------------------------------------------------------------------- the -msg dump


def received_handshake_messages(stdout):
    """Every handshake message the server sent, as bytes (4-byte header included), in order."""
    messages = []
    lines = stdout.splitlines()
    position = 0
    while position < len(lines):
        header = _RECEIVED_HANDSHAKE.match(lines[position])
        position += 1
        if not header:
            continue
        data = bytearray()
        while position < len(lines):
            hex_line = _HEX_LINE.match(lines[position])
            if not hex_line:
                break
            data.extend(bytes.fromhex(hex_line.group(1)))
            position += 1
        # Only a complete dump is of use; a cut one (an old s_client shortening long messages) is left out.
        if len(data) == int(header.group(1), 16) and len(data) >= 4:
            messages.append(bytes(data))
    return messages


def _take(data, offset, size):
    if offset + size > len(data):
        raise ParseError("handshake message ends early")
    return data[offset:offset + size], offset + size


def _number(data, offset, size):
    raw, offset = _take(data, offset, size)
    return int.from_bytes(raw, "big"), offset


def _certificate_status(body):
    """The DER OCSPResponse of a CertificateStatus structure, or None when it is not of type ocsp."""
    status_type, offset = _number(body, 0, 1)
    if status_type != STATUS_TYPE_OCSP:
        return None
    size, offset = _number(body, offset, 3)
    der, _offset = _take(body, offset, size)
    return der


def _tls13_staple(body):
    """The status_request extension of the first CertificateEntry (the leaf's) of a TLS 1.3 Certificate."""
    context_size, offset = _number(body, 0, 1)
    offset += context_size
    list_size, offset = _number(body, offset, 3)
    if list_size == 0:
        return None
    certificate_size, offset = _number(body, offset, 3)
    offset += certificate_size
    extensions_size, offset = _number(body, offset, 2)
    extensions, _offset = _take(body, offset, extensions_size)
    position = 0
    while position < len(extensions):
        extension_type, position = _number(extensions, position, 2)
        extension_size, position = _number(extensions, position, 2)
        extension, position = _take(extensions, position, extension_size)
        if extension_type == EXTENSION_STATUS_REQUEST:
            return _certificate_status(extension)
    return None


def _looks_like_tls13_certificate(body):
    """A TLS 1.2 Certificate starts with a 3-byte list length; a TLS 1.3 one with a 1-byte context length."""
    try:
        context_size, offset = _number(body, 0, 1)
        list_size, offset = _number(body, offset + context_size, 3)
    except ParseError:
        return False
    return offset + list_size == len(body)


def staple_from_messages(messages):
    """The DER staple found in the server's handshake messages, or None when none was sent."""
    for message in messages:
        kind, body = message[0], message[4:]
        if kind == HANDSHAKE_CERTIFICATE_STATUS:
            return _certificate_status(body)
        if kind == HANDSHAKE_CERTIFICATE and _looks_like_tls13_certificate(body):
            staple = _tls13_staple(body)
            if staple:
                return staple
    return None


# ---------------------------------------------------------------------------------------------- the rest of the output


def handshake_error(returncode, stdout, stderr):
    """Why s_client got no session: the system's words for a broken connection, else OpenSSL's reasons."""
    output = stderr + "\n" + stdout
    errors = [int(number) for number in _ERRNO_LINE.findall(output) if int(number)]
    if errors:
        return "connection error: %s" % os.strerror(errors[0])
    reasons = []
    for reason in _ERROR_LINE.findall(output):
        reason = reason.strip()
        if reason and reason not in reasons:
            reasons.append(reason)
    if reasons:
        return "TLS error: %s" % ", ".join(reasons)
    last = [line.strip() for line in stderr.splitlines() if line.strip()]
    return "openssl s_client exited with status %s%s" % (returncode, ": %s" % last[-1] if last else "")


def served_chain(stdout):
    """The certificates -showcerts printed, leaf first; [] when the section or its PEM blocks are missing."""
    section = _CHAIN_SECTION.search(stdout)
    if section is None or "-----BEGIN CERTIFICATE-----" not in section.group(1):
        return []
    return certificates.parse_certificates(section.group(1).encode("utf-8"), "the -showcerts output")


def parse_output(returncode, stdout, stderr):
    """The facts of one finished s_client run (``returncode`` None means it was stopped at the deadline)."""
    facts = {"handshake": None, "handshake_error": None, "tls_version": None, "stapled": False,
             "staple": None, "chain": [], "read_error": None}
    if returncode is None:
        facts["handshake"] = "timeout"
        return facts
    # The cipher line is printed once the handshake is over: "(NONE)" when it failed. The exit status alone
    # says little, since a connection reset after a complete handshake also ends in status 1.
    cipher = _CIPHER_LINE.search(stdout)
    if cipher is None or cipher.group(2) == "(NONE)":
        facts["handshake"] = "failed"
        facts["handshake_error"] = handshake_error(returncode, stdout, stderr)
        return facts
    facts["handshake"] = "ok"
    # TLS 1.3 sessions are printed only when a ticket comes, so the cipher line is the fallback; that line
    # names the cipher's own minimum version, which for TLS 1.3 ciphers is TLSv1.3.
    protocol = _SESSION_PROTOCOL.search(stdout)
    facts["tls_version"] = protocol.group(1) if protocol else cipher.group(1)
    try:
        facts["chain"] = served_chain(stdout)
    except certificates.CertificateError as exc:
        facts["read_error"] = "the served chain cannot be read: %s" % exc
    try:
        facts["staple"] = staple_from_messages(received_handshake_messages(stdout)) or None
    except ParseError as exc:
        facts["read_error"] = "the staple cannot be taken out of the -msg dump: %s" % exc
    facts["stapled"] = facts["staple"] is not None
    if not facts["stapled"] and _STAPLE_TEXT.search(stdout):
        # s_client printed a response whose bytes the dump did not give back: never guess, say so.
        facts["stapled"] = True
        facts["read_error"] = (facts["read_error"]
                               or "openssl s_client printed a staple whose bytes are not in its -msg dump")
    return facts


def fetch(address, port, server_name, timeout, binary=None):
    """Handshake with ``address`` asking for a staple; the facts of ``parse_output`` plus ``command``."""
    binary = binary or find_openssl()
    command = build_command(binary, address, port, server_name)
    returncode, stdout, stderr = run_command(command, timeout)
    facts = parse_output(returncode, stdout, stderr)
    facts["command"] = command
    return facts
