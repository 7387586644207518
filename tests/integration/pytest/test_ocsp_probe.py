"""ocsp_probe against the lab's real OCSP responders and Apache hosts.

Most cases call the module's own orchestration (``ocsp_probe_run.run``) for speed. Every kind of input also
goes through Ansible once (``ansible HOST -m fleet.stapling.ocsp_probe``, JSON results), including discovery
and the stapled check on a lab host. The verdicts are compared with what ``openssl ocsp`` says about the same
certificate and responder. Every fault mode switched on a responder is switched back to ``ok`` afterwards,
and every Apache host that is edited is reset.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from conftest import COLLECTIONS_ROOT, FAULT_CLASSES, run_adhoc, running_lab
from ansible_collections.fleet.stapling.plugins.module_utils import ocsp_probe_run
from ansible_collections.fleet.stapling.plugins.module_utils.ocsp_probe_run import Settings
from fleetlab import pki, responder
from fleetlab.testing import RunningLab

RELOADED = "resuming normal operations"


class OcspLab:
    """The running lab plus the paths and runs the tests need."""

    def __init__(self, lab: RunningLab, scratch: Path):
        self.lab = lab
        self.scratch = scratch
        self.pki = lab.dir / "pki"
        # The lab is on loopback: a proxy from the environment of the machine running the tests must not interfere.
        environ = {key: value for key, value in os.environ.items() if key.lower() != "http_proxy"}
        self.env = dict(environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT, ANSIBLE_NOCOLOR="1",
                        ANSIBLE_LOCAL_TEMP=str(scratch / "ansible-tmp"), ANSIBLE_RETRY_FILES_ENABLED="0")
        self.env.pop("ANSIBLE_PYTHON_INTERPRETER", None)  # the lab inventory's discovery decides
        alpha = pki.load_ca(self.pki, "alpha")
        # CA alpha signed it, but its responder has never heard of it.
        self.unknown_leaf = pki.issue_leaf(alpha, "ghost-alpha", ["ghost.alpha.lab.test"], "unknown")

    def responder(self, ca: str) -> dict:
        return self.lab.state["responders"][ca]

    def leaf(self, ca: str, name: str, chain: bool = False) -> str:
        suffix = ".fullchain.pem" if chain else ".pem"
        return str(self.pki / ca / "leaves" / f"{name}{suffix}")

    def fault(self, ca: str, mode: str) -> None:
        self.lab.cli("fault", ca, mode)

    def run(self, specs: list[dict], bundle: str | None = None, targets=(), **settings) -> dict:
        """The module's orchestration, called directly."""
        bundle_certs = ocsp_probe_run.load_ca_bundle(bundle)
        items = ocsp_probe_run.load_certificate_items(specs, bundle_certs, settings.pop("url", None))
        settings.setdefault("environ", {})  # no proxy from the environment unless a test gives one
        return ocsp_probe_run.run(items, Settings(**settings), targets, ca_bundle_certs=bundle_certs)

    def module(self, args: dict, host: str = "web1", check: bool = False) -> tuple[bool, dict]:
        """``ansible HOST -m fleet.stapling.ocsp_probe -a JSON`` over the lab's SSH: (succeeded, the result)."""
        return run_adhoc(self.env, [self.lab.inventory], host, "fleet.stapling.ocsp_probe", args, check, self.scratch)


@pytest.fixture(scope="module")
def lab():
    with running_lab(3, "fleet-ocsp-probe-") as (running, scratch):
        yield OcspLab(running, scratch)


@pytest.fixture
def alpha_fault(lab):
    """Switch alpha's responder to a fault mode for one test; always back to ok afterwards."""
    yield lambda mode: lab.fault("alpha", mode)
    lab.fault("alpha", "ok")


def instance_args(lab: OcspLab, name: str) -> dict:
    host = lab.lab.host(name)
    return {"ctl": host["ctl"], "config_file": host["config_file"], "server_root": host["server_root"]}


def openssl_ocsp(lab: OcspLab, ca: str, cert: str, url: str | None = None) -> str:
    """What ``openssl ocsp`` says about one certificate: an independent client's view."""
    ca_dir = lab.pki / ca
    result = subprocess.run(
        ["openssl", "ocsp", "-issuer", str(ca_dir / "intermediate.pem"), "-cert", cert,
         "-url", url or lab.responder(ca)["url"], "-CAfile", str(ca_dir / "bundle.pem"), "-timeout", "3"],
        capture_output=True, text=True, timeout=30, check=False)
    return result.stdout + result.stderr


def requests_logged(lab: OcspLab, ca: str, mode: str) -> int:
    return Path(lab.responder(ca)["log"]).read_text().count(f"mode={mode} ")


# ---------------------------------------------------------------------------------------------- fault modes


@pytest.mark.parametrize("mode", list(FAULT_CLASSES))
def test_each_fault_mode_of_the_responder_gets_its_error_class(lab, alpha_fault, mode):
    alpha_fault(mode)
    report = lab.run([{"path": lab.leaf("alpha", "www-alpha.web1.lab.test", chain=True)},
                      {"path": lab.leaf("beta", "www-beta.web1.lab.test", chain=True)}], timeout=1.5)
    alpha, beta = report["certificates"]
    assert alpha["error_class"] == FAULT_CLASSES[mode], alpha["message"]
    assert alpha["healthy"] is (mode == "ok")
    assert report["responders"][0]["error_class"] == FAULT_CLASSES[mode]
    assert beta["healthy"] is True, "the other CA's responder is independent"
    assert report["summary"]["unhealthy_urls"] == ([] if mode == "ok" else [lab.responder("alpha")["url"]])


def test_captive_portal_and_redirect_facts_are_reported(lab, alpha_fault):
    alpha_fault("html")
    probe = lab.run([{"path": lab.leaf("alpha", "www-alpha.web1.lab.test", chain=True)}])["responders"][0]["probes"][0]
    assert probe["http"]["status"] == 200 and probe["http"]["body_kind"] == "html"
    assert probe["http"]["title"] == "Guest Wi-Fi - Sign in"
    assert "Guest Wi-Fi" in probe["message"]


def test_a_hanging_responder_costs_one_timeout_while_the_rest_is_probed(lab, alpha_fault):
    alpha_certificates = [{"path": lab.leaf("alpha", f"www-alpha.web{n}.lab.test", chain=True)} for n in (1, 2, 3)]
    alpha_certificates.append({"path": lab.leaf("alpha", "secure-alpha.web1.lab.test", chain=True)})
    beta_certificates = [{"path": lab.leaf("beta", f"www-beta.web{n}.lab.test", chain=True)} for n in (1, 2, 3)]
    alpha_fault("hang")
    before = requests_logged(lab, "alpha", "hang")
    started = time.monotonic()
    report = lab.run(alpha_certificates + beta_certificates, timeout=2)
    elapsed = time.monotonic() - started
    assert elapsed < 3.5, f"took {elapsed:.1f} s for a 2 s timeout"
    assert requests_logged(lab, "alpha", "hang") - before == 1, "the dead responder is asked once, not per certificate"
    classes = [entry["error_class"] for entry in report["certificates"]]
    assert classes == ["timeout"] * 4 + [None] * 3
    assert [entry["probed"] for entry in report["certificates"][:4]] == [True, False, False, False]
    assert report["summary"]["error_classes"] == {"timeout": 4}


def test_a_staples_only_check_asks_no_responder_and_does_not_wait_for_a_hanging_one(lab, alpha_fault):
    """The check after a reload (ask_responders: false): what web1's vhosts staple, judged, and no request to the
    responders, so that the one that hangs in an incident costs nothing."""
    args = dict(instance_args(lab, "web1"), discover=True, stapled=True, ask_responders=False, timeout=5)
    succeeded, result = lab.module(args)  # Apache fetches and caches its staples while alpha answers
    assert succeeded and result["summary"]["stapling_good"] >= 2, result
    alpha_fault("hang")
    before = requests_logged(lab, "alpha", "hang")
    succeeded, result = lab.module(args)
    elapsed = result["summary"]["elapsed"]  # the module's own time: Ansible's start-up varies with the machine's load
    assert succeeded, result
    assert requests_logged(lab, "alpha", "hang") == before, "a responder was asked"
    assert result["responders"] == [] and result["certificates"] == []
    assert {entry["server_name"] for entry in result["stapled"]} >= {"www-alpha.web1.lab.test", "www-beta.web1.lab.test"}
    assert result["summary"]["message"].startswith("no responder asked")
    assert elapsed < 5, f"took {elapsed:.1f} s: it waited for the hanging responder (timeout 5 s)"


# ---------------------------------------------------------------------------------------------- certificate statuses


def test_revoked_and_unknown_certificates(lab):
    report = lab.run([{"path": lab.leaf("beta", "revoked-beta.web2.lab.test", chain=True)},
                      {"path": str(lab.unknown_leaf.cert_pem), "issuer": str(lab.unknown_leaf.issuer_pem)}])
    revoked, unknown = report["certificates"]
    assert (revoked["error_class"], revoked["ocsp"]["cert_status"]) == ("revoked", "revoked")
    assert revoked["ocsp"]["revocation_reason"] == "keyCompromise" and revoked["ocsp"]["revocation_time"]
    assert (unknown["error_class"], unknown["ocsp"]["cert_status"]) == ("unknown_cert", "unknown")
    # correct answers: both responders are healthy, the certificates are not
    assert [r["healthy"] for r in report["responders"]] == [True, True]
    assert report["summary"]["healthy"] is False


@pytest.mark.parametrize("ca, name, openssl_says, status", [
    ("alpha", "www-alpha.web1.lab.test", ": good", "good"),
    ("beta", "revoked-beta.web2.lab.test", ": revoked", "revoked"),
    ("alpha", "ghost-alpha", ": unknown", "unknown"),
])
def test_cert_status_agrees_with_openssl_ocsp(lab, ca, name, openssl_says, status):
    cert = lab.leaf(ca, name)
    assert openssl_says in openssl_ocsp(lab, ca, cert)
    entry = lab.run([{"path": cert, "issuer": str(lab.pki / ca / "intermediate.pem")}])["certificates"][0]
    assert entry["ocsp"]["cert_status"] == status
    assert entry["ocsp"]["signature_valid"] is True and entry["ocsp"]["signer"] == "delegated"


def test_wrong_signer_fails_verification_as_openssl_says(lab, alpha_fault):
    alpha_fault("wrong-signer")
    cert = lab.leaf("alpha", "www-alpha.web2.lab.test")
    assert "Response Verify Failure" in openssl_ocsp(lab, "alpha", cert)
    entry = lab.run([{"path": cert}], bundle=str(lab.pki / "alpha" / "chain.pem"))["certificates"][0]
    assert entry["error_class"] == "bad_signature"
    assert entry["ocsp"]["signer"] == "unauthorized" and "rogue" in entry["ocsp"]["signer_subject"]


def test_certificate_without_ocsp_url_is_reported_not_failed(lab):
    report = lab.run([{"path": lab.leaf("beta", "new-beta.web1.lab.test", chain=True)},
                      {"path": lab.leaf("beta", "www-beta.web1.lab.test", chain=True)}])
    no_url = report["certificates"][0]
    assert (no_url["ocsp_url"], no_url["error_class"], no_url["healthy"]) == (None, "no_ocsp_url", None)
    summary = report["summary"]
    assert (summary["healthy"], summary["without_ocsp_url"], summary["unhealthy_urls"]) == (True, 1, [])


def test_get_requests_work_against_the_lab_responder(lab):
    entry = lab.run([{"path": lab.leaf("alpha", "www-alpha.web3.lab.test", chain=True)}],
                    method="get")["certificates"][0]
    assert entry["healthy"] is True and entry["ocsp"]["nonce"] == "echoed"


# ---------------------------------------------------------------------------------------------- issuers, families, proxies


def test_issuer_from_a_der_bundle_directory_and_a_single_der_file(lab):
    leaf_only = lab.leaf("alpha", "www-alpha.web2.lab.test")
    from_dir = lab.run([{"path": leaf_only}], bundle=str(lab.pki / "alpha" / "bundle-der"))["certificates"][0]
    from_file = lab.run([{"path": leaf_only}], bundle=str(lab.pki / "alpha" / "intermediate.der"))["certificates"][0]
    assert (from_dir["issuer_source"], from_dir["healthy"]) == ("ca_bundle", True)
    assert (from_file["issuer_source"], from_file["healthy"]) == ("ca_bundle", True)
    without = lab.run([{"path": leaf_only}])["certificates"][0]
    assert without["error_class"] == "no_issuer"


@pytest.mark.skipif(not responder.ipv6_loopback_available(), reason="no IPv6 loopback on this machine")
def test_ipv6_loopback_responder(lab):
    port = lab.responder("alpha")["port"]
    report = lab.run([{"path": lab.leaf("alpha", "www-alpha.web1.lab.test", chain=True)}],
                     url=f"http://[::1]:{port}/", ip_version="6")
    entry = report["certificates"][0]
    assert (entry["healthy"], entry["family"], entry["address"]) == (True, "6", "::1")
    assert report["responders"][0]["dns"]["ipv6"] == ["::1"]


def test_both_families_of_an_ipv4_responder(lab):
    report = lab.run([{"path": lab.leaf("alpha", "www-alpha.web1.lab.test", chain=True)}], ip_version="both")
    probes = report["responders"][0]["probes"]
    assert [(probe["family"], probe["healthy"]) for probe in probes] == [("4", True), ("6", None)]
    assert "no IPv6 address" in probes[1]["message"]
    assert report["summary"]["healthy"] is True


def test_asking_ipv6_of_an_ipv4_only_responder_is_a_dns_failure(lab):
    entry = lab.run([{"path": lab.leaf("alpha", "www-alpha.web1.lab.test", chain=True)}],
                    ip_version="6")["certificates"][0]
    assert entry["error_class"] == "dns_failure"


def test_through_a_proxy_dns_and_connect_are_the_proxys(lab):
    # The lab responder serves an absolute-URI request like a forward proxy would pass it on, so the
    # responder doubles as the proxy; the URL's own host name does not even resolve.
    proxy = lab.responder("alpha")["url"].rstrip("/")
    report = lab.run([{"path": lab.leaf("alpha", "www-alpha.web1.lab.test", chain=True)}],
                     url="http://ocsp.alpha.invalid/", proxy=proxy)
    responder_entry = report["responders"][0]
    assert responder_entry["proxy"] == proxy and responder_entry["healthy"] is True
    assert responder_entry["dns"]["host"] == "127.0.0.1"
    direct = lab.run([{"path": lab.leaf("alpha", "www-alpha.web1.lab.test", chain=True)}],
                     url="http://ocsp.alpha.invalid/", environ={"no_proxy": "*", "http_proxy": proxy})
    assert direct["certificates"][0]["error_class"] == "dns_failure", "no_proxy must bypass http_proxy"


# ---------------------------------------------------------------------------------------------- through Ansible


def test_module_over_ssh_reports_in_check_mode_and_never_changes(lab):
    args = {"certificates": [{"path": lab.leaf("alpha", "www-alpha.web1.lab.test")},
                             {"path": lab.leaf("beta", "new-beta.web2.lab.test")}],
            "ca_bundle": str(lab.pki / "alpha" / "bundle-der"), "timeout": 3}
    succeeded, result = lab.module(args, check=True)
    assert succeeded and result["changed"] is False
    first, second = result["certificates"]
    assert (first["healthy"], first["issuer_source"], first["ocsp"]["cert_status"]) == (True, "ca_bundle", "good")
    assert second["error_class"] == "no_ocsp_url"
    assert result["summary"]["healthy"] is True


def test_module_fails_on_unhealthy_only_when_asked_and_still_reports(lab):
    args = {"certificates": [{"path": lab.leaf("beta", "revoked-beta.web2.lab.test", chain=True)}]}
    succeeded, result = lab.module(args)
    assert succeeded and result["summary"]["healthy"] is False
    succeeded, result = lab.module(dict(args, fail_on_unhealthy=True))
    assert not succeeded and "revoked: 1" in result["msg"]
    assert result["certificates"][0]["error_class"] == "revoked"


def test_module_bad_input_is_a_clear_failure(lab):
    succeeded, result = lab.module({"certificates": [{"path": "/nonexistent/leaf.pem"}]})
    assert not succeeded and result["msg"].startswith("certificates[0]: cannot read certificate file")
    assert "Traceback" not in json.dumps(result)


def test_discover_and_stapled_on_a_lab_host(lab):
    succeeded, result = lab.module(dict(instance_args(lab, "web3"), discover=True, stapled=True), host="web3")
    assert succeeded, result
    by_name = {entry["server_name"]: entry for entry in result["stapled"]}
    assert by_name["www-alpha.web3.lab.test"]["status"] == "good"
    assert by_name["secure-beta.web3.lab.test"]["status"] == "good"
    assert by_name["new-beta.web3.lab.test"]["error_class"] == "no_ocsp_url"
    summary = result["summary"]
    assert (summary["stapling_good"], summary["not_stapling"], summary["without_ocsp_url"]) == (3, 1, 1)
    # web3 is the cPanel layout, whose hardened block sets SSLStaplingResponderTimeout 3
    assert {entry["responder_timeout"] for entry in result["responders"]} == {3.0}
    assert {entry["url_source"] for entry in result["certificates"] if entry["ocsp_url"]} == {"certificate"}


def test_discover_and_stapled_with_the_responder_down(lab, alpha_fault):
    alpha_fault("down")
    lab.lab.reset_host("web2")  # an empty stapling cache: Apache must ask the dead responder itself
    try:
        succeeded, result = lab.module(dict(instance_args(lab, "web2"), discover=True, stapled=True), host="web2")
    finally:
        lab.fault("alpha", "ok")
        lab.lab.reset_host("web2")
    assert succeeded
    certificates = {entry["sources"][0].split(" ")[0]: entry for entry in result["certificates"]}
    assert certificates["www-alpha.web2.lab.test"]["error_class"] == "connect_refused"
    assert certificates["revoked-beta.web2.lab.test"]["error_class"] == "revoked"
    staples = {entry["server_name"]: entry for entry in result["stapled"]}
    # RHEL layout: Apache's defaults fake a tryLater staple when its responder fails
    assert staples["www-alpha.web2.lab.test"]["error_class"] == "try_later"
    assert staples["www-beta.web2.lab.test"]["status"] == "good"
    assert staples["revoked-beta.web2.lab.test"]["error_class"] == "revoked"
    assert result["summary"]["unhealthy_urls"] == [lab.responder("alpha")["url"]]


def reload_host(lab: OcspLab, name: str) -> None:
    host = lab.lab.host(name)
    log = Path(host["error_log"])
    before = log.read_text(errors="replace").count(RELOADED)
    subprocess.run(shlex.split(host["reload"]), check=True, capture_output=True, timeout=60)
    deadline = time.monotonic() + 10
    while log.read_text(errors="replace").count(RELOADED) == before:
        assert time.monotonic() < deadline, f"{name} did not reload"
        time.sleep(0.1)


def staple_states(lab: OcspLab, name: str, server_names: list[str]) -> dict[str, str]:
    port = lab.lab.host(name)["port"]
    targets = [ocsp_probe_run.StapleTarget("127.0.0.1", port, server_name) for server_name in server_names]
    report = ocsp_probe_run.run([], Settings(timeout=3), targets)
    return {entry["server_name"]: entry["status"] for entry in report["stapled"]}


def test_stapled_check_sees_stapling_switched_off(lab):
    host = lab.lab.host("web1")  # Debian layout: SSLUseStapling on in each site file
    sites = Path(host["server_root"]) / "sites-available"
    switched = ["www-alpha.web1.lab.test", "secure-alpha.web1.lab.test"]
    try:
        for server_name in switched:
            site = sites / f"{server_name}.conf"
            site.write_text(site.read_text().replace("SSLUseStapling on", "SSLUseStapling off"))
        reload_host(lab, "web1")
        deadline = time.monotonic() + 10  # old workers may answer for a moment after a graceful reload
        while set(staple_states(lab, "web1", switched).values()) != {"not_stapled"}:
            assert time.monotonic() < deadline, "web1 still staples after switching stapling off"
            time.sleep(0.5)
        succeeded, result = lab.module(dict(instance_args(lab, "web1"), discover=True, stapled=True), host="web1")
    finally:
        lab.lab.reset_host("web1")
    assert succeeded
    staples = {entry["server_name"]: entry for entry in result["stapled"]}
    plain, must_staple = staples["www-alpha.web1.lab.test"], staples["secure-alpha.web1.lab.test"]
    assert (plain["status"], plain["stapling_expected"], plain["healthy"]) == ("not_stapled", False, None)
    # Must-Staple without a staple breaks Firefox: unhealthy whatever the config says
    assert (must_staple["status"], must_staple["stapling_expected"], must_staple["healthy"]) == (
        "not_stapled", True, False)
    assert staples["www-beta.web1.lab.test"]["status"] == "good"
    assert result["summary"]["healthy"] is False and result["summary"]["not_stapling"] == 3
    assert staple_states(lab, "web1", switched) == {name: "good" for name in switched}, "reset restores stapling"
