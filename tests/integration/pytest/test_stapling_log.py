"""apache_stapling_log against error logs the lab's real Apache writes.

Every error is produced for real: a responder switched to ``down``, ``hang`` or ``garbage`` while a freshly restarted
host (empty stapling cache) is asked for a staple, a certificate without its issuer, a revoked certificate, and
the certificate without an OCSP URL that every lab host serves. Each case runs the module through Ansible
(``ansible HOST -m fleet.stapling.apache_stapling_log``) with the lab's inventory, and counts only what was logged
after the case began (``since`` set to its start), so cases do not see each other's lines.

The fetch cases use web3, the cPanel-style host, because its responder timeout is 3 s (Apache's default is 10).
Responders are switched back to ``ok`` and changed hosts are reset afterwards.
"""

from __future__ import annotations

import datetime
import json
import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from conftest import COLLECTIONS_ROOT, run_adhoc, running_lab
from fleetlab.staple_check import check_staple
from fleetlab.testing import RunningLab

MODULE = "fleet.stapling.apache_stapling_log"
WAIT_SECONDS = 20.0
# The module options every run passes on from the lab inventory's host variables.
INSTANCE_ARGS = {"ctl": "{{ stapling_apache_ctl }}", "config_file": "{{ stapling_apache_config_file }}",
                 "server_root": "{{ stapling_apache_server_root }}"}


def local_now() -> str:
    """The host's local time as an ISO string: what the module compares Apache's timestamps with."""
    return datetime.datetime.now().isoformat(timespec="microseconds")


class LogLab:
    """The running lab, and the module run on its hosts through Ansible."""

    def __init__(self, lab: RunningLab, scratch: Path):
        self.lab = lab
        self.scratch = scratch
        self.env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT, ANSIBLE_NOCOLOR="1",
                        ANSIBLE_LOCAL_TEMP=str(scratch / "ansible-tmp"), ANSIBLE_RETRY_FILES_ENABLED="0")
        self.env.pop("ANSIBLE_PYTHON_INTERPRETER", None)  # the lab inventory's discovery decides

    def host(self, name: str) -> dict:
        return self.lab.host(name)

    def responder_name(self, ca: str) -> str:
        """The responder as Apache names it in AH01974: host:port of its URL."""
        return self.lab.state["responders"][ca]["url"].split("://", 1)[1].rstrip("/")

    def fault(self, ca: str, mode: str) -> None:
        self.lab.cli("fault", ca, mode)

    def module(self, host: str, check: bool = False, **args) -> tuple[bool, dict]:
        """``ansible HOST -m fleet.stapling.apache_stapling_log -a JSON``: (succeeded, the module's result)."""
        return run_adhoc(self.env, [self.lab.inventory], host, MODULE, dict(INSTANCE_ARGS, **args), check,
                         self.scratch)

    def diagnose(self, host: str, **args) -> dict:
        succeeded, result = self.module(host, **args)
        assert succeeded, json.dumps(result, indent=2)
        return result

    # ------------------------------------------------------------ making Apache log

    def log_size(self, host: str) -> int:
        return Path(self.host(host)["error_log"]).stat().st_size

    def wait_for_codes(self, host: str, offset: int, codes: list[str]) -> str:
        """What the host logged after ``offset``, once every one of ``codes`` is in it."""
        path = Path(self.host(host)["error_log"])
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            with open(path, "rb") as handle:
                handle.seek(offset)
                logged = handle.read().decode("utf-8", "replace")
            if all(code + ":" in logged for code in codes) or time.monotonic() > deadline:
                assert all(code + ":" in logged for code in codes), f"{host} did not log {codes}:\n{logged}"
                return logged
            time.sleep(0.1)

    def fetch_with_empty_cache(self, host: str, server_name: str, codes: list[str]) -> str:
        """Restart the host (empty stapling cache), ask one vhost for a staple, wait until ``codes`` are logged."""
        self.lab.reset_host(host)
        offset = self.log_size(host)
        vhost = next(v for v in self.host(host)["vhosts"] if v["server_name"] == server_name)
        check = check_staple(self.host(host)["port"], server_name, self.lab.bundle(vhost["ca"]))
        assert check.handshake_ok, check.output
        return self.wait_for_codes(host, offset, codes)

    def reload(self, host: str) -> None:
        completed = subprocess.run(shlex.split(self.host(host)["reload"]), capture_output=True, text=True,
                                   timeout=60, check=False)
        assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.fixture(scope="module")
def lab():
    with running_lab(3, "fleet-stapling-log-", faults_back_to_ok=True) as (running, scratch):
        yield LogLab(running, scratch)


@pytest.fixture
def alpha_fault(lab):
    """Switch CA alpha's responder to a fault mode for one test; back to ok and web3 reset afterwards."""
    try:
        yield lambda mode: lab.fault("alpha", mode)
    finally:
        lab.fault("alpha", "ok")
        lab.lab.reset_host("web3")


def code_entry(result: dict, code: str) -> dict:
    found = [entry for entry in result["codes"] if entry["code"] == code]
    assert found, f"{code} not reported; codes: {[entry['code'] for entry in result['codes']]}"
    return found[0]


# ------------------------------------------------------------------ start-up: a certificate without OCSP URL


def test_every_start_logs_ah02218_for_the_certificate_without_ocsp_url(lab):
    host = lab.host("web1")
    succeeded, result = lab.module("web1", check=True, since="1h")
    assert succeeded and result["changed"] is False
    log = result["logs"][0]
    assert log["path"] == host["error_log"] and log["readable"] and log["kind"] == "file"
    assert log["declared_by"][0]["scope"] == "server"
    assert sorted(log["vhosts"]) == sorted(vhost["server_name"] for vhost in host["vhosts"])
    assert log["unparsed_lines"] == 0 and log["covers_since"]
    no_url = code_entry(result, "AH02218")
    assert no_url["count"] >= 1 and no_url["phase"] == "startup"
    assert no_url["vhosts"] == ["new-beta.web1.lab.test:443"]
    assert no_url["certificates"][0]["subject"].startswith("CN=new-beta.web1.lab.test")
    assert no_url["certificates"][0]["vhosts"] == ["new-beta.web1.lab.test"]
    assert "SSLStaplingForceURL" in no_url["remedy"]
    assert code_entry(result, "AH02604")["vhosts"] == ["new-beta.web1.lab.test:443"]
    assert result["summary"]["stapling_errors_recent"] is True
    assert result["summary"]["responder_errors_recent"] is False
    assert result["summary"]["vhosts"] == ["new-beta.web1.lab.test"]


def test_since_excludes_lines_logged_before_it(lab):
    before = lab.diagnose("web1", since="1d")["summary"]["counts"]["AH02218"]
    time.sleep(1.1)
    cut = local_now()
    offset = lab.log_size("web1")
    lab.lab.reset_host("web1")
    lab.wait_for_codes("web1", offset, ["AH02218", "AH00489"])
    logged_after_cut = Path(lab.host("web1")["error_log"]).read_bytes()[offset:].decode().count("AH02218:")
    after = lab.diagnose("web1", since=cut, recent=cut)
    assert after["summary"]["counts"]["AH02218"] == logged_after_cut
    assert lab.diagnose("web1", since="1d")["summary"]["counts"]["AH02218"] == before + logged_after_cut
    assert after["window"]["since"].startswith(cut[:19])


# ------------------------------------------------------------------ fetch: the responder fails


def test_responder_down_names_the_responder_its_vhosts_and_the_remedy(lab, alpha_fault):
    started = local_now()
    alpha_fault("down")
    lab.fetch_with_empty_cache("web3", "www-alpha.web3.lab.test", ["AH01974", "AH01941"])
    result = lab.diagnose("web3", since=started)
    responder = lab.responder_name("alpha")
    refused = code_entry(result, "AH01974")
    assert refused["count"] == 1
    assert refused["responders"] == [responder]
    assert refused["reasons"] == ["(111) Connection refused"]
    assert "ping6" in refused["remedy"] and "disable_stapling" in refused["remedy"]
    renew = code_entry(result, "AH01941")
    assert renew["count"] == 1 and renew["responders"] == [responder]
    assert result["summary"]["counts"]["AH01974"] == 1
    assert result["summary"]["responders"] == [responder]
    assert result["summary"]["stapling_errors_recent"] is True
    assert result["summary"]["responder_errors_recent"] is True
    assert result["summary"]["last_error"]["code"] == "AH01941"
    entry = result["responders"][0]
    assert entry["name"] == responder and entry["codes"] == ["AH01974", "AH01941"]
    # the vhosts whose certificates point at that responder, read from the config's certificates
    assert "www-alpha.web3.lab.test" in entry["vhosts"]
    assert not any("beta" in vhost for vhost in entry["vhosts"])

    # Nothing failed after this point: a window starting now sees nothing, and nothing is "recent".
    time.sleep(0.05)
    now = local_now()
    quiet = lab.diagnose("web3", since=now, recent=now)
    assert "AH01974" not in quiet["summary"]["counts"]
    assert quiet["summary"]["stapling_errors_recent"] is False


def test_responder_hang_times_out_with_ah01977_after_the_responder_timeout(lab, alpha_fault):
    started = local_now()
    alpha_fault("hang")
    began = time.monotonic()
    logged = lab.fetch_with_empty_cache("web3", "www-alpha.web3.lab.test", ["AH01977", "AH01980", "AH01941"])
    assert time.monotonic() - began >= 2.5  # SSLStaplingResponderTimeout 3 on the cPanel-style host
    # What Apache 2.4 really logs for a responder that accepts and never answers: no status line (AH01977,
    # then AH01980 "(none)"), not AH01985, which is a timeout after the headers.
    assert "AH01985:" not in logged
    result = lab.diagnose("web3", since=started)
    timeout = code_entry(result, "AH01977")
    assert timeout["reasons"] == ["(70007) The timeout specified has expired"]
    assert "SSLStaplingResponderTimeout" in timeout["remedy"]
    assert code_entry(result, "AH01980")["last_message"].endswith("bad response from OCSP server: (none)")
    assert code_entry(result, "AH01941")["count"] == 1
    # At LogLevel warn Apache names no responder for a hang: the module does not invent one.
    assert result["summary"]["responders"] == []
    assert result["summary"]["responder_errors_recent"] is True


def test_garbage_from_the_responder_is_ah01988_with_openssls_reason(lab, alpha_fault):
    started = local_now()
    alpha_fault("garbage")
    lab.fetch_with_empty_cache("web3", "www-alpha.web3.lab.test", ["AH01988", "AH01941"])
    result = lab.diagnose("web3", since=started)
    decode = code_entry(result, "AH01988")
    assert decode["count"] == 1
    assert any(detail.startswith("SSL Library Error:") for detail in decode["details"])
    assert "proxy" in decode["cause"]
    assert set(result["summary"]["counts"]) >= {"AH01988", "AH01941"}
    assert result["summary"]["responder_errors_recent"] is True


# ------------------------------------------------------------------ a revoked certificate, an issuer missing


def test_revoked_certificate_and_missing_issuer_name_their_vhosts(lab):
    host = lab.host("web2")
    try:
        lab.lab.reset_host("web2")
        started = local_now()
        offset = lab.log_size("web2")
        check = check_staple(host["port"], "revoked-beta.web2.lab.test", lab.lab.bundle("beta"))
        assert check.cert_status == "revoked"
        lab.wait_for_codes("web2", offset, ["AH02969"])

        # The lab's leaf-only PEM: the issuer is nowhere in the vhost's files (RHEL layout, no SSLCACertificateFile).
        site = Path(host["server_root"]) / "conf.d" / "www-alpha.web2.lab.test.conf"
        site.write_text(site.read_text().replace("www-alpha.web2.lab.test.fullchain.pem", "www-alpha.web2.lab.test.pem"))
        offset = lab.log_size("web2")
        lab.reload("web2")
        lab.wait_for_codes("web2", offset, ["AH02217", "AH00489"])

        result = lab.diagnose("web2", since=started)
        revoked = code_entry(result, "AH02969")
        assert revoked["certificates"][0]["vhosts"] == ["revoked-beta.web2.lab.test"]
        assert "replace the certificate" in revoked["remedy"]
        issuer = code_entry(result, "AH02217")
        assert issuer["count"] == 1
        assert issuer["vhosts"] == ["www-alpha.web2.lab.test:443"]
        assert issuer["certificates"][0]["subject"].startswith("CN=www-alpha.web2.lab.test")
        assert "intermediate" in issuer["remedy"]
        assert "www-alpha.web2.lab.test:443" in code_entry(result, "AH02604")["vhosts"]
        summary = result["summary"]
        assert {"www-alpha.web2.lab.test", "revoked-beta.web2.lab.test"} <= set(summary["vhosts"])
        assert summary["stapling_errors_recent"] is True
        # a revoked certificate and a missing issuer are no responder failures
        assert summary["responder_errors_recent"] is False
    finally:
        lab.lab.reset_host("web2")


# ------------------------------------------------------------------ options and errors


def test_bad_since_fails_with_a_message_not_a_traceback(lab):
    succeeded, result = lab.module("web1", since="yesterday")
    assert not succeeded
    assert result["msg"].startswith("since: 'yesterday' is neither a duration")
    assert "Traceback" not in json.dumps(result)


def test_explicit_logs_without_the_config_and_a_small_max_bytes(lab):
    host = lab.host("web1")
    result = lab.diagnose("web1", discover=False, logs=[host["error_log"], "/nonexistent/error_log"], since="1d",
                          max_bytes=300)
    assert result["config_file"] is None
    first, missing = result["logs"]
    assert first["origin"] == "option" and first["files"][0]["bytes_read"] <= 300
    assert missing["readable"] is False and missing["reason"].startswith("does not exist")
    assert result["summary"]["unreadable_logs"] == ["/nonexistent/error_log"]
    assert "/nonexistent/error_log: not read" in result["stderr"] + json.dumps(result.get("warnings", []))
