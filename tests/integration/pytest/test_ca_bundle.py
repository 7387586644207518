"""The role's CA bundle on the lab fleet: assembled on the controller from PEM and DER files, checked against
the vhosts' certificates (a missing issuer means AH02217 and no staple), deployed where the host has room for it.

Every test runs one of playbooks/ the way an operator does (see test_playbooks.py for the lab's hosts and CAs).
"""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from cryptography import x509

from conftest import HOST_NAMES, expected_staples
from playbook_runs import (
    assert_clients_see,
    assert_report_consistent,
    assert_untouched,
    host_state,
)
from playbook_runs import operator  # noqa: F401  (a fixture, found by name)  # pylint: disable=unused-import
from server_root import snapshot

# Inside the ServerRoot, so that the snapshots see it and the lab's reset removes it; templated per host by Ansible.
BUNDLE_PATH_ON_THE_HOST = "{{ stapling_apache_server_root }}/fleet-stapling-ca-bundle.pem"


def test_ca_bundle_from_der_and_pem_files_is_deployed_without_duplicates_and_stapling_keeps_working(fleet, operator):
    pki = fleet.lab.dir / "pki"
    sources = sorted(str(path) for path in (pki / "alpha" / "bundle-der").glob("*.der"))
    sources += [str(pki / "beta" / "bundle.pem")] * 2  # the second copy adds nothing
    expected_subjects = {
        x509.load_der_x509_certificate(Path(path).read_bytes()).subject for path in sources if path.endswith(".der")
    } | {certificate.subject for certificate in x509.load_pem_x509_certificates((pki / "beta" / "bundle.pem").read_bytes())}
    assert len(expected_subjects) == 4

    run = operator.run("enable_stapling", stapling_ca_bundle_sources=sources,
                       stapling_ca_bundle_path=BUNDLE_PATH_ON_THE_HOST)

    assert run.returncode == 0, run.output
    rows = assert_report_consistent(run, "enable_stapling")
    for name, host in ((name, fleet.host(name)) for name in HOST_NAMES):
        assert rows[name]["status"] != "failed", rows[name]
        bundle = Path(host["server_root"]) / "fleet-stapling-ca-bundle.pem"
        certificates = x509.load_pem_x509_certificates(bundle.read_bytes())
        assert len(certificates) == 4, [c.subject.rfc4514_string() for c in certificates]
        assert {certificate.subject for certificate in certificates} == expected_subjects
        entries = snapshot(Path(host["server_root"]))
        pointing = [path for path, entry in entries.items()
                    if entry[0] == "file" and f"SSLCACertificateFile {bundle}".encode() in entry[1]]
        assert pointing, f"{name}: no config file names the bundle"
        configtest = fleet.configtest(name)
        assert configtest.returncode == 0, configtest.stderr
        assert_clients_see(fleet, name, expected_staples(host))


def test_ca_bundle_without_the_issuer_of_a_leaf_only_vhost_is_refused_naming_it_and_nothing_is_deployed(
        fleet, operator):
    host = fleet.host("web2")
    site = Path(host["server_root"]) / "conf.d" / "www-beta.web2.lab.test.conf"
    leaf_only = re.sub(rb"(?m)^[ \t]*SSLCertificateChainFile[ \t].*\n", b"", site.read_bytes())
    assert leaf_only != site.read_bytes()
    site.write_bytes(leaf_only)  # www-beta's chain now lacks its issuer, beta's intermediate
    before = host_state(fleet, "web2")

    run = operator.run("enable_stapling", stapling_target_hosts="web2",
                       stapling_ca_bundle_sources=[str(fleet.lab.dir / "pki" / "alpha" / "bundle.pem")],
                       stapling_ca_bundle_path=BUNDLE_PATH_ON_THE_HOST)

    assert run.returncode != 0, run.output
    failures = [line for line in run.output.splitlines() if line.startswith("fatal: [web2]")]
    assert any("www-beta.web2.lab.test" in line and "no issuer" in line for line in failures), run.output
    assert_untouched(fleet, "web2", before)


# The RHEL layout's usual place; absent on the Debian machines the lab runs on, as on a trimmed RHEL host.
RHEL_BUNDLE_DIRECTORY = Path("/etc/pki/tls/certs")


def test_a_bundle_whose_usual_directory_is_missing_goes_under_the_server_root_in_a_directory_made_for_it(
        fleet, operator):
    if RHEL_BUNDLE_DIRECTORY.exists():
        pytest.skip(f"{RHEL_BUNDLE_DIRECTORY} exists on this machine: the layout's own directory would be used")
    host = fleet.host("web2")  # the RHEL layout
    server_root = Path(host["server_root"])
    bundle = server_root / "ssl" / "fleet-stapling-ca-bundle.pem"
    sources = [str(fleet.lab.dir / "pki" / ca / "bundle.pem") for ca in ("alpha", "beta")]
    before = host_state(fleet, "web2")

    preview = operator.run("enable_stapling", stapling_target_hosts="web2", stapling_ca_bundle_sources=sources,
                           check=True)

    assert preview.returncode == 0, preview.output
    assert_untouched(fleet, "web2", before)
    assert not RHEL_BUNDLE_DIRECTORY.exists()
    assert f"{bundle.parent}" in preview.output and '"state": "directory"' in preview.output, preview.output

    run = operator.run("enable_stapling", stapling_target_hosts="web2", stapling_ca_bundle_sources=sources)

    assert run.returncode == 0, run.output
    rows = assert_report_consistent(run, "enable_stapling", hosts=("web2",))
    assert rows["web2"]["status"] == "changed", rows["web2"]
    assert not RHEL_BUNDLE_DIRECTORY.exists()
    assert stat.S_IMODE(bundle.parent.stat().st_mode) == 0o755
    assert len(x509.load_pem_x509_certificates(bundle.read_bytes())) == 4
    pointing = [path for path, entry in snapshot(server_root).items()
                if entry[0] == "file" and f"SSLCACertificateFile {bundle}".encode() in entry[1]]
    assert pointing, "no config file names the bundle"
    assert_clients_see(fleet, "web2", expected_staples(host))
    settled = host_state(fleet, "web2")

    again = operator.run("enable_stapling", stapling_target_hosts="web2", stapling_ca_bundle_sources=sources)

    assert again.returncode == 0, again.output
    assert assert_report_consistent(again, "enable_stapling", hosts=("web2",))["web2"]["status"] == "unchanged"
    assert_untouched(fleet, "web2", settled)
