"""The fleet census and the certbot renewal traps, as the audit and probe reports show them, on the real lab.

The lab's hosts serve a mix: every host has www-alpha and www-beta (certificates with an OCSP URL) and new-beta
(no OCSP URL, as Let's Encrypt issues since May 2025); web1 also has secure-alpha and web3 secure-beta (both
Must-Staple), web2 revoked-beta. Here web2 keeps stapling on only for new-beta, so it staples nothing at all,
and web1 has a certbot renewal file that still asks for Must-Staple, next to one that does not.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import HOST_NAMES, lab_fleet
from playbook_runs import operator  # noqa: F401  (a fixture, found by name)  # pylint: disable=unused-import
from playbook_runs import assert_untouched, fleet_state

ISSUERS = {"alpha": "fleetlab alpha intermediate CA", "beta": "fleetlab beta intermediate CA"}
# The host whose stapling is left on only for its certificate without an OCSP URL.
NOTHING_TO_STAPLE_HOST = "web2"

# What certbot writes for a lineage issued with --must-staple; the option is on line MUST_STAPLE_LINE.
RENEWAL_FILE = """\
# renew_before_expiry = 30 days
version = 2.11.0
archive_dir = /etc/letsencrypt/archive/{name}
cert = /etc/letsencrypt/live/{name}/cert.pem
privkey = /etc/letsencrypt/live/{name}/privkey.pem
chain = /etc/letsencrypt/live/{name}/chain.pem
fullchain = /etc/letsencrypt/live/{name}/fullchain.pem

# Options used in the renewal process
[renewalparams]
account = 0123456789abcdef0123456789abcdef
authenticator = apache
{must_staple}installer = apache
server = https://acme-v02.api.letsencrypt.org/directory
"""
MUST_STAPLE_LINE = 13


@pytest.fixture(scope="module")
def fleet():
    """This module's own lab (prefix census15), so that it never collides with another suite's."""
    with lab_fleet("census15-") as running:
        yield running


def keep_stapling_only_without_ocsp_url(host: dict) -> set[str]:
    """Switch stapling off in every vhost of a RHEL-layout lab host whose certificate has an OCSP URL; returns
    the names of the vhosts that still staple (the host's reset puts the files back)."""
    still_stapling = set()
    for vhost in host["vhosts"]:
        if vhost["kind"] == "no-ocsp-url":
            still_stapling.add(vhost["server_name"])
            continue
        path = Path(host["server_root"]) / "conf.d" / f"{vhost['server_name']}.conf"
        text = path.read_text()
        assert text.count("</VirtualHost>") == 1, text
        path.write_text(text.replace("</VirtualHost>", "    SSLUseStapling off\n</VirtualHost>"))
    return still_stapling


def write_renewal_dirs(base: Path) -> tuple[dict[str, str], Path]:
    """A certbot renewal directory per host: web1 with a Must-Staple lineage and a plain one, web2 with a plain
    one, web3 none at all (the directory does not exist). Returns the host variables and the trap's file."""
    host_vars = {}
    trap_file = None
    for name in HOST_NAMES:
        renewal_dir = base / name / "renewal"
        host_vars[name] = {"stapling_certbot_renewal_dir": str(renewal_dir)}
        if name == "web3":
            continue
        renewal_dir.mkdir(parents=True)
        plain = f"plain.{name}.example.test"
        (renewal_dir / f"{plain}.conf").write_text(RENEWAL_FILE.format(name=plain, must_staple=""))
        if name == "web1":
            trap_file = renewal_dir / "must.web1.example.test.conf"
            trap_file.write_text(RENEWAL_FILE.format(name="must.web1.example.test", must_staple="must_staple = True\n"))
    assert trap_file.read_text().splitlines()[MUST_STAPLE_LINE - 1] == "must_staple = True"
    return host_vars, trap_file


def expected_census(fleet, stapling_off: set[str]) -> list[dict]:
    """The per-CA totals the report must give, counted from the lab's own record of what each vhost serves."""
    totals = {}
    for name in HOST_NAMES:
        for vhost in fleet.host(name)["vhosts"]:
            entry = totals.setdefault(vhost["ca"], {
                "issuer": ISSUERS[vhost["ca"]], "hosts": set(), "certificates": 0, "with_ocsp_url": 0,
                "must_staple": 0, "vhosts": 0, "vhosts_stapling": 0, "vhosts_stapling_without_ocsp_url": 0})
            staples = vhost["server_name"] not in stapling_off
            entry["hosts"].add(name)
            entry["certificates"] += 1  # every lab vhost has its own certificate
            entry["vhosts"] += 1
            entry["with_ocsp_url"] += vhost["kind"] != "no-ocsp-url"
            entry["must_staple"] += vhost["kind"] == "must-staple"
            entry["vhosts_stapling"] += staples
            entry["vhosts_stapling_without_ocsp_url"] += staples and vhost["kind"] == "no-ocsp-url"
    return [dict(entry, hosts=len(entry["hosts"])) for _ca, entry in sorted(totals.items())]


@pytest.mark.parametrize("playbook", ["audit_stapling", "probe_responders"])
def test_report_counts_certificates_per_ca_and_names_the_host_with_nothing_to_staple_and_the_trap(
        fleet, operator, tmp_path, playbook):
    web2 = fleet.host(NOTHING_TO_STAPLE_HOST)
    still_stapling = keep_stapling_only_without_ocsp_url(web2)
    stapling_off = {v["server_name"] for v in web2["vhosts"]} - still_stapling
    host_vars, trap_file = write_renewal_dirs(Path(fleet.lab.dir) / f"census15-letsencrypt-{playbook}")
    inventory = tmp_path / "certbot-dirs.yml"
    inventory.write_text(json.dumps({"all": {"hosts": host_vars}}))  # JSON is YAML
    before = fleet_state(fleet)

    run = operator.run(playbook, inventories=(inventory,))

    assert run.report is not None, run.output
    rows = run.rows()
    census = run.report["census"]
    assert census["hosts"] == list(HOST_NAMES), census
    assert census["by_ca"] == expected_census(fleet, stapling_off), census
    # the lab's fleet holds both CAs with and without OCSP URLs and Must-Staple: the numbers are not trivial
    alpha, beta = census["by_ca"]
    assert (alpha["must_staple"], beta["must_staple"]) == (1, 1), census
    assert beta["with_ocsp_url"] < beta["certificates"], census
    assert census["hosts_stapling_serves_nothing"] == [NOTHING_TO_STAPLE_HOST], census
    assert rows[NOTHING_TO_STAPLE_HOST]["census"]["stapling_serves_nothing"] is True
    assert rows["web1"]["census"]["stapling_serves_nothing"] is False

    assert run.report["renewal_traps"] == [{"host": "web1", "traps": [{
        "file": str(trap_file), "line": MUST_STAPLE_LINE, "certificate": "must.web1.example.test", "error": None}]}]
    assert rows["web2"]["renewal_traps"] == [] and rows["web3"]["renewal_traps"] == []

    # what an operator reads: the printed summary and the Markdown report
    assert f"web1: {trap_file}:{MUST_STAPLE_LINE} (must.web1.example.test)" in run.output, run.output
    assert f"Stapling on, but no certificate it could staple: {NOTHING_TO_STAPLE_HOST}" in run.output, run.output
    assert f"| web1 | {trap_file} | {MUST_STAPLE_LINE} | must.web1.example.test |" in run.markdown, run.markdown
    for ca in census["by_ca"]:
        row = (f"| {ca['issuer']} | {ca['hosts']} | {ca['certificates']} | {ca['with_ocsp_url']} | {ca['must_staple']} "
               f"| {ca['vhosts']} | {ca['vhosts_stapling']} | {ca['vhosts_stapling_without_ocsp_url']} |")
        assert row in run.markdown, run.markdown
    assert re.search(rf"\*\*Stapling on, but no certificate it could staple:\*\* {NOTHING_TO_STAPLE_HOST}\n",
                     run.markdown), run.markdown
    for name in HOST_NAMES:  # read-only: neither playbook changes a host, and the renewal files are only read
        assert_untouched(fleet, name, before[name])
    assert "must_staple = True" in trap_file.read_text()
