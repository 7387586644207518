"""ocsp_probe over SSH against every fault of a lab responder, and the probe's security properties.

Every fault mode of the lab responder (tests/lab/fleetlab/responder.py MODES) is switched on in turn, and
``fleet.stapling.ocsp_probe`` runs on a lab host the way an operator runs it (``ansible HOST -m``, over the lab's
sshd). Each must give its documented error_class, never ``healthy`` for a fault, no traceback, and finish within
the timeout: a responder that drips its answer a byte a second included (a total deadline, not one per read).
The responder's log is the evidence of what the client did: how much of a huge answer went out before the
client hung up, and whether a redirect was followed (the redirect target logs ``followed-redirect``).

The security part of the probe: signatures and the responder's authorisation are checked (modes wrong-signer
and unauthorized), no redirect is followed, what is read is bounded (huge, drip), and proxies from the managed
host's environment and the module's option are honoured while no_proxy bypasses them (a loopback proxy made
here records what it forwarded). That no private key is read or returned is test_secrets_and_permissions.py's.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
from cryptography.x509 import ocsp

from conftest import COLLECTIONS_ROOT, FAULT_CLASSES, record_reliability, run_adhoc, running_lab
from fleetlab import pki, responder
from fleetlab.testing import RunningLab

TIMEOUT = 2.0
# The module's own run (summary.elapsed) may pass the timeout by this much: thread start-up and the report.
MODULE_MARGIN = 1.0
# The whole ad-hoc command adds Ansible's start-up and the SSH round trips, which vary with the machine's load.
ANSIBLE_MARGIN = 25.0
HOST = "web1"

# Every mode of the lab responder, and the class ocsp_probe must give a good certificate asked there.
EXPECTED = dict(
    FAULT_CLASSES,
    **{
        "drip": "slow_response",
        "huge": "too_large",
        "huge-chunked": "too_large",
        "huge-close": "too_large",
        "redirect-other-host": "http_error",
        "redirect-same-host": "http_error",
    },
)
_SENT = re.compile(r"sent=(\d+)/(\d+)")


def test_every_responder_mode_has_an_expected_class():
    assert set(EXPECTED) == set(responder.MODES)


class FaultsLab:
    """A one-host lab, alpha's responder and its log, and the module run on the host over SSH."""

    def __init__(self, lab: RunningLab, scratch: Path):
        self.lab = lab
        self.scratch = scratch
        # The lab is on loopback: proxies of the machine running the tests must not interfere.
        environ = {key: value for key, value in os.environ.items() if key.lower() not in ("http_proxy", "no_proxy")}
        self.env = dict(environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT, ANSIBLE_NOCOLOR="1",
                        ANSIBLE_LOCAL_TEMP=str(scratch / "ansible-tmp"), ANSIBLE_RETRY_FILES_ENABLED="0")
        self.env.pop("ANSIBLE_PYTHON_INTERPRETER", None)
        self.alpha = lab.state["responders"]["alpha"]
        self.pki = lab.dir / "pki"
        self.leaf = str(self.pki / "alpha" / "leaves" / f"www-alpha.{HOST}.lab.test.fullchain.pem")

    def set_mode(self, mode: str) -> None:
        responder.set_mode(Path(self.alpha["mode_file"]), mode)

    def log_lines(self) -> list[str]:
        return Path(self.alpha["log"]).read_text(errors="replace").splitlines()

    def probe(self, args: dict) -> tuple[bool, dict, float]:
        """(succeeded, result, wall seconds of the whole ad-hoc command)."""
        started = time.monotonic()
        succeeded, result = run_adhoc(self.env, [self.lab.inventory], HOST, "fleet.stapling.ocsp_probe", args,
                                      cwd=self.scratch)
        return succeeded, result, time.monotonic() - started

    def playbook(self, tasks: list[dict]) -> dict:
        """Run ``tasks`` on the host in one play; each task registers under its ``register`` name."""
        result_file = self.scratch / "playbook-result.json"
        registered = ", ".join(f"'{task['register']}': {task['register']}" for task in tasks)
        save = {"name": "Save the results for the test", "ansible.builtin.copy": {
            "content": "{{ {%s} | to_json }}" % registered, "dest": str(result_file), "mode": "0644"}}
        play = [{"name": "Probe", "hosts": HOST, "gather_facts": False, "tasks": tasks + [save]}]
        playbook = self.scratch / "play.yml"
        playbook.write_text(json.dumps(play, indent=1))  # JSON is YAML
        command = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(self.lab.inventory),
                   str(playbook)]
        completed = subprocess.run(command, env=self.env, cwd=self.scratch, capture_output=True, text=True,
                                   timeout=300, check=False)
        assert completed.returncode == 0, completed.stdout + completed.stderr
        return json.loads(result_file.read_text())


def wait_for_line(lab: FaultsLab, since: int, word: str, seconds: float = 10) -> str:
    """The first responder log line after line ``since`` holding ``word``; waits for the responder to write it."""
    deadline = time.monotonic() + seconds
    while True:
        found = [line for line in lab.log_lines()[since:] if word in line]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no {word!r} in the responder log"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def lab():
    with running_lab(1, "faults-") as (running, scratch):
        yield FaultsLab(running, scratch)


@pytest.fixture(scope="module")
def table():
    """Rows gathered by the mode tests, written to docs/reliability.md when every mode gave one."""
    rows: dict[str, tuple] = {}
    yield rows
    if set(rows) != set(EXPECTED):
        return  # a partial run (-k, or a mode that failed) keeps the last full table
    lines = ["## Responder faults", "",
             "`tests/integration/pytest/test_responder_faults.py`: "
             f"`ocsp_probe` run over SSH on one lab host against the lab responder in each fault mode, with "
             f"`timeout: {TIMEOUT:g}`. Seconds are the module's own run (`summary.elapsed`); the whole ad-hoc "
             "command adds Ansible's start-up.", "",
             "| mode | error_class | healthy | seconds |", "|---|---|---|---|"]
    for mode in EXPECTED:
        error_class, healthy, seconds = rows[mode]
        lines.append(f"| {mode} | {error_class or '-'} | {str(healthy).lower()} | {seconds:.2f} |")
    record_reliability(lines[0], "\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------- every fault mode


def check_evidence(lab: FaultsLab, mode: str, since: int) -> None:
    """What the responder's log says the client did, for the modes where that is the point."""
    if mode.startswith("huge"):
        sent, whole = map(int, _SENT.search(wait_for_line(lab, since, "status=streamed")).groups())
        assert sent < whole // 4, f"{mode}: the client took {sent} of {whole} bytes"
    elif mode == "drip":
        sent, whole = map(int, _SENT.search(wait_for_line(lab, since, "status=dripped")).groups())
        assert sent <= TIMEOUT / responder.DRIP_SECONDS + 2 < whole
    elif mode.startswith("redirect-"):
        wait_for_line(lab, since, "status=redirect-")
        assert not [line for line in lab.log_lines()[since:] if "followed-redirect" in line], "a redirect was followed"


@pytest.mark.parametrize("mode", list(EXPECTED))
def test_each_fault_gives_its_class_never_healthy_no_traceback_in_bounded_time(lab, table, mode):
    since = len(lab.log_lines())
    lab.set_mode(mode)
    try:
        succeeded, result, wall = lab.probe({"certificates": [{"path": lab.leaf}], "timeout": TIMEOUT})
        if succeeded:
            check_evidence(lab, mode, since)
    finally:
        lab.set_mode("ok")  # also releases a hanging or dripping handler
    assert succeeded, result
    entry = result["certificates"][0]
    elapsed = result["summary"]["elapsed"]
    table[mode] = (entry["error_class"], entry["healthy"], elapsed)
    assert "Traceback" not in json.dumps(result) and "Traceback" not in result["stderr"]
    assert entry["error_class"] == EXPECTED[mode], entry["message"]
    assert entry["healthy"] is (mode == "ok"), entry["message"]
    assert result["responders"][0]["error_class"] == EXPECTED[mode]
    assert elapsed < TIMEOUT + MODULE_MARGIN, f"{mode}: the probe took {elapsed:.1f} s for a {TIMEOUT:g} s timeout"
    assert wall < TIMEOUT + ANSIBLE_MARGIN, f"{mode}: the ad-hoc command took {wall:.1f} s"


# ---------------------------------------------------------------------------------------------- proxies


class RecordingProxy:
    """A forward HTTP proxy on loopback that records the URL and OCSP serial of every request it passes on."""

    def __init__(self):
        self.forwarded: list[dict] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_POST(self):  # noqa: N802 - name fixed by BaseHTTPRequestHandler
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.forward(self, body)

            def log_message(self, format, *args):  # noqa: A002  pylint: disable=redefined-builtin
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def forward(self, handler, body: bytes) -> None:
        target = urllib.parse.urlsplit(handler.path)
        if not target.scheme:
            handler.send_error(400, "a proxy needs an absolute URL")
            return
        serial = ocsp.load_der_ocsp_request(body).serial_number
        self.forwarded.append({"url": handler.path, "serial": serial})
        upstream = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=5)
        try:
            upstream.request("POST", target.path or "/", body=body,
                             headers={"Content-Type": handler.headers.get("Content-Type", "")})
            reply = upstream.getresponse()
            answer = reply.read()
        finally:
            upstream.close()
        handler.send_response(reply.status)
        handler.send_header("Content-Type", reply.getheader("Content-Type", ""))
        handler.send_header("Content-Length", str(len(answer)))
        handler.end_headers()
        handler.wfile.write(answer)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_proxy_from_the_environment_and_the_option_is_used_and_no_proxy_bypasses_it(lab):
    """One play, four probes, each about its own certificate so that the proxy's record says which went through."""
    alpha = pki.load_ca(lab.pki, "alpha")
    leaves = {case: pki.issue_leaf(alpha, f"proxy-{case}", [f"{case}.proxy.alpha.lab.test"])
              for case in ("env", "no-proxy", "option", "use-proxy-false")}
    proxy = RecordingProxy()
    try:
        def probe(case, register, environment=None, **options):
            task = {"name": case, "register": register, "fleet.stapling.ocsp_probe": dict(
                certificates=[{"path": str(leaves[case].fullchain_pem)}], timeout=TIMEOUT, **options)}
            if environment:
                task["environment"] = environment
            return task

        results = lab.playbook([
            probe("env", "from_env", {"http_proxy": proxy.url}),
            probe("no-proxy", "bypassed", {"http_proxy": proxy.url, "no_proxy": "localhost,127.0.0.1"}),
            probe("option", "from_option", proxy=proxy.url),
            probe("use-proxy-false", "ignored", {"http_proxy": proxy.url}, use_proxy=False),
        ])
    finally:
        proxy.close()
    assert {entry["serial"] for entry in proxy.forwarded} == {leaves["env"].serial, leaves["option"].serial}
    assert {entry["url"] for entry in proxy.forwarded} == {lab.alpha["url"]}, "the absolute URL of the responder"
    for register in ("from_env", "bypassed", "from_option", "ignored"):
        assert results[register]["summary"]["healthy"] is True, results[register]["summary"]["message"]
    assert results["from_env"]["responders"][0]["proxy"] == proxy.url
    assert results["from_option"]["responders"][0]["proxy"] == proxy.url
    assert results["bypassed"]["responders"][0]["proxy"] is None
    assert results["ignored"]["responders"][0]["proxy"] is None
