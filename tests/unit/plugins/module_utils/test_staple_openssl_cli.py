# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The stapled check through ``openssl s_client``: recorded outputs, the command, and a live s_server."""

from __future__ import annotations

import datetime
import os
import re
import shutil
import subprocess
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from ansible_collections.fleet.stapling.plugins.module_utils import ocsp_client, staple_openssl_cli, staple_probe
from ansible_collections.fleet.stapling.tests.unit.plugins.module_utils.ocsp_factory import OcspCA, response

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "s_client")
LEAF_SERIAL, CA_SERIAL = 0x2002, 0x1001
# Inside the recorded staple's validity (2026-01-01 to 2035-12-30).
RECORDED_NOW = datetime.datetime(2027, 6, 1, tzinfo=datetime.timezone.utc)
OPENSSL = shutil.which("openssl")


def recorded(case):
    with open(os.path.join(FIXTURES, case + ".stdout")) as stdout, open(os.path.join(FIXTURES, case + ".stderr")) as err:
        return stdout.read(), err.read()


def recorded_staple(name="staple.der"):
    with open(os.path.join(FIXTURES, name), "rb") as der:
        return der.read()


# ---------------------------------------------------------------------------------------------- recorded runs


@pytest.mark.parametrize("case, version, staple", [
    ("tls12_stapled", "TLSv1.2", "staple.der"),
    ("tls12_no_staple", "TLSv1.2", None),
    ("tls13_stapled", "TLSv1.3", "staple.der"),
    ("tls13_no_staple", "TLSv1.3", None),
    ("tls13_delegated_signer", "TLSv1.3", "staple_delegated.der"),
])
def test_completed_handshakes(case, version, staple):
    facts = staple_openssl_cli.parse_output(0, *recorded(case))
    assert (facts["handshake"], facts["handshake_error"], facts["tls_version"]) == ("ok", None, version)
    assert facts["stapled"] is (staple is not None) and facts["read_error"] is None
    assert facts["staple"] == (recorded_staple(staple) if staple else None)
    # only the -showcerts section: the delegated signer's PEM block in the staple's text is no part of the chain
    assert [cert.serial_number for cert in facts["chain"]] == [LEAF_SERIAL, CA_SERIAL]


def test_the_staple_text_of_a_delegated_signer_holds_a_pem_block_before_the_chain():
    stdout, _stderr = recorded("tls13_delegated_signer")
    assert stdout.count("-----BEGIN CERTIFICATE-----") == 3
    assert stdout.index("-----BEGIN CERTIFICATE-----") < stdout.index("Certificate chain")


@pytest.mark.parametrize("case", ["tls12_stapled", "tls13_stapled", "tls13_delegated_signer"])
def test_recovered_staple_is_the_servers_response_and_verifies(case):
    facts = staple_openssl_cli.parse_output(0, *recorded(case))
    leaf, issuer = facts["chain"]
    parsed = ocsp.load_der_ocsp_response(facts["staple"])
    assert parsed.serial_number == LEAF_SERIAL and parsed.certificate_status == ocsp.OCSPCertStatus.GOOD
    read = ocsp_client.read_response(facts["staple"], leaf, issuer, None, RECORDED_NOW)
    assert (read["cert_status"], read["signature_valid"], read["cert_id_matches"]) == ("good", True, True)
    assert read["signer"] == ("delegated" if case == "tls13_delegated_signer" else "issuer")


@pytest.mark.parametrize("case, error", [
    ("tls12_alert", "TLS error: sslv3 alert handshake failure"),
    ("plain_http", "TLS error: wrong version number"),
    ("refused", "connection error: Connection refused"),
])
def test_failed_handshakes(case, error):
    facts = staple_openssl_cli.parse_output(1, *recorded(case))
    assert (facts["handshake"], facts["handshake_error"]) == ("failed", error)
    assert (facts["stapled"], facts["staple"], facts["chain"], facts["tls_version"]) == (False, None, [], None)


def test_a_run_stopped_at_the_deadline_is_a_timeout():
    facts = staple_openssl_cli.parse_output(None, "CONNECTED(00000003)\n", "")
    assert (facts["handshake"], facts["stapled"]) == ("timeout", False)


def test_failure_without_any_known_line_still_says_something():
    facts = staple_openssl_cli.parse_output(1, "", "s_client: something odd\n")
    assert facts["handshake_error"] == "openssl s_client exited with status 1: s_client: something odd"


def test_only_messages_from_the_server_are_read():
    stdout, _stderr = recorded("tls12_stapled")
    kinds = [message[0] for message in staple_openssl_cli.received_handshake_messages(stdout)]
    # ServerHello, Certificate, CertificateStatus, ServerKeyExchange, ServerHelloDone, NewSessionTicket, Finished
    assert kinds == [2, 11, 22, 12, 14, 4, 20]


def test_old_openssl_header_format_is_read_too():
    stdout, stderr = recorded("tls12_stapled")
    old_style = stdout.replace("<<< TLS 1.2, Handshake [", "<<< TLS 1.2 Handshake [")
    assert old_style != stdout
    assert staple_openssl_cli.parse_output(0, old_style, stderr)["staple"] == recorded_staple()


def cut_hex_line_after(stdout, header_part):
    """The output with the last hex line of the first message whose header contains ``header_part`` removed."""
    lines = stdout.splitlines(True)
    start = next(index for index, line in enumerate(lines) if header_part in line)
    end = start + 1
    while end < len(lines) and re.match(r"^\s+[0-9a-f]{2}( |$)", lines[end]):
        end += 1
    return "".join(lines[:end - 1] + lines[end:])


@pytest.mark.parametrize("case, header", [("tls12_stapled", "CertificateStatus"), ("tls13_stapled", "], Certificate")])
def test_a_staple_the_dump_does_not_hold_whole_is_reported_not_guessed(case, header):
    stdout, stderr = recorded(case)
    facts = staple_openssl_cli.parse_output(0, cut_hex_line_after(stdout, header), stderr)
    assert (facts["handshake"], facts["stapled"], facts["staple"]) == ("ok", True, None)
    assert "not in its -msg dump" in facts["read_error"]


def test_lengths_inside_a_message_that_overrun_it_are_a_read_error():
    stdout, stderr = recorded("tls12_stapled")
    # CertificateStatus: "16 00 01 0b 01 00 01 07 30 82 ...": claim a longer response than the message holds.
    broken = stdout.replace("16 00 01 0b 01 00 01 07", "16 00 01 0b 01 00 ff 07", 1)
    assert broken != stdout
    facts = staple_openssl_cli.parse_output(0, broken, stderr)
    assert (facts["stapled"], facts["staple"]) == (True, None) and "ends early" in facts["read_error"]


# ---------------------------------------------------------------------------------------------- the command


def test_command_is_a_list_with_bracketed_ipv6_and_optional_sni():
    assert staple_openssl_cli.build_command("/usr/bin/openssl", "::1", 8443, "shop.test") == [
        "/usr/bin/openssl", "s_client", "-connect", "[::1]:8443", "-servername", "shop.test",
        "-status", "-msg", "-showcerts"]
    assert "-servername" not in staple_openssl_cli.build_command("openssl", "192.0.2.1", 443)
    assert staple_openssl_cli.build_command("openssl", "192.0.2.1", 443)[3] == "192.0.2.1:443"


def test_the_command_never_goes_through_a_shell(monkeypatch):
    calls = []

    def fake_run(*args, **kwargs):
        calls.append((args, kwargs))
        return subprocess.CompletedProcess(args[0], 0, b"", b"")

    monkeypatch.setattr(staple_openssl_cli.subprocess, "run", fake_run)
    staple_openssl_cli.fetch("127.0.0.1", 443, "shop.test; touch /tmp/x", 2, binary="/usr/bin/openssl")
    (args, kwargs), = calls
    assert isinstance(args[0], list) and "shop.test; touch /tmp/x" in args[0]
    assert not kwargs.get("shell") and kwargs["input"] == b"" and 0 < kwargs["timeout"] <= 2


def fake_openssl(tmp_path, body):
    script = tmp_path / "openssl"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return str(script)


def test_arguments_reach_the_program_unchanged(tmp_path):
    argv_file, marker = tmp_path / "argv", tmp_path / "marker"
    binary = fake_openssl(tmp_path, 'for arg in "$@"; do printf "%%s\\n" "$arg"; done > %s\n' % argv_file)
    hostile = "shop.test; touch %s" % marker
    staple_openssl_cli.fetch("127.0.0.1", 443, hostile, 5, binary=binary)
    expected = ["s_client", "-connect", "127.0.0.1:443", "-servername", hostile]
    assert argv_file.read_text().splitlines()[:5] == expected
    assert not marker.exists()


def test_a_hanging_s_client_is_stopped_at_the_deadline(tmp_path):
    binary = fake_openssl(tmp_path, "exec sleep 10\n")
    started = time.monotonic()
    facts = staple_openssl_cli.fetch("127.0.0.1", 443, None, 0.5, binary=binary)
    assert time.monotonic() - started < 3
    assert facts["handshake"] == "timeout"


def test_openssl_is_found_on_path_or_in_usr_bin(monkeypatch):
    monkeypatch.setattr(staple_openssl_cli.shutil, "which", lambda name: "/opt/ssl/bin/openssl")
    assert staple_openssl_cli.find_openssl() == "/opt/ssl/bin/openssl"
    monkeypatch.setattr(staple_openssl_cli.shutil, "which", lambda name: None)
    monkeypatch.setattr(staple_openssl_cli.os.path, "isfile", lambda path: path == "/usr/bin/openssl")
    monkeypatch.setattr(staple_openssl_cli.os, "access", lambda path, mode: True)
    assert staple_openssl_cli.find_openssl() == "/usr/bin/openssl"
    monkeypatch.setattr(staple_openssl_cli.os.path, "isfile", lambda path: False)
    assert staple_openssl_cli.find_openssl() is None


# ---------------------------------------------------------------------------------------------- a live s_server


class SServer(object):
    """``openssl s_server`` on a free loopback port with a fresh leaf; staples ``staple`` when given."""

    def __init__(self, directory, leaf, ca_certificate, staple=None, options=()):
        (directory / "leaf.pem").write_bytes(leaf.pem)
        (directory / "leaf.key").write_bytes(leaf.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        (directory / "ca.pem").write_bytes(ca_certificate.public_bytes(serialization.Encoding.PEM))
        command = [OPENSSL, "s_server", "-accept", "127.0.0.1:0", "-cert", str(directory / "leaf.pem"),
                   "-key", str(directory / "leaf.key"), "-cert_chain", str(directory / "ca.pem")] + list(options)
        if staple is not None:
            (directory / "staple.der").write_bytes(staple)
            command += ["-status_file", str(directory / "staple.der")]
        self.log = directory / "s_server.log"
        with open(str(self.log), "wb") as log:
            # stdin stays open: s_server quits at its end of input
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT)
        self.port = self._wait_for_port()

    def _wait_for_port(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for line in self.log.read_text(errors="replace").splitlines():
                if line.startswith("ACCEPT "):
                    return int(line.rsplit(":", 1)[1])
            time.sleep(0.05)
        self.close()
        raise AssertionError("s_server did not start: %s" % self.log.read_text(errors="replace"))

    def close(self):
        self.process.kill()
        self.process.wait(10)
        self.process.stdin.close()


@pytest.fixture
def s_server(tmp_path):
    if OPENSSL is None:
        pytest.skip("no openssl command")
    started = []

    def start(*args, **kwargs):
        server = SServer(tmp_path, *args, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_live_staple_through_s_client(s_server, version):
    ca = OcspCA()
    leaf = ca.leaf("shop.test")
    staple = response(leaf, ca.ca)
    server = s_server(leaf, ca.certificate, staple=staple, options=[version])
    facts = staple_probe.fetch_staple(["127.0.0.1"], server.port, "shop.test", 5, client="openssl-s_client")
    assert (facts["client"], facts["handshake"], facts["stapled"], facts["staple"]) == (
        "openssl-s_client", "ok", True, staple)
    assert facts["tls_version"] == {"-tls1_2": "TLSv1.2", "-tls1_3": "TLSv1.3"}[version]
    assert facts["connect"]["result"] == "ok" and facts["address"] == "127.0.0.1"
    assert [cert.serial_number for cert in facts["chain"]] == [leaf.certificate.serial_number,
                                                               ca.certificate.serial_number]


def test_live_handshake_only_against_s_server(s_server):
    ca = OcspCA()
    leaf = ca.leaf("shop.test")
    server = s_server(leaf, ca.certificate, staple=response(leaf, ca.ca))
    facts = staple_probe.check_handshake(["127.0.0.1"], server.port, "shop.test", 5)
    assert (facts["client"], facts["handshake"], facts["stapled"], facts["staple"]) == ("ssl", "ok", None, None)
    assert [cert.serial_number for cert in facts["chain"]] == [leaf.certificate.serial_number]
