"""What `apachectl -t` cannot see, on the real lab: mod_md stapling behind SSLUseStapling's back, and what a
hanging responder does to every handshake until stapling is switched off for its sites."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from playbook_runs import run_playbook

from fleetlab.staple_check import check_staple


def restart(host: dict) -> None:
    """Stop the host's master and start it again with the same command line."""
    pid = int(Path(host["pid_file"]).read_text())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    subprocess.run(shlex.split(host["ctl"]) + ["-k", "start"], check=True, capture_output=True, timeout=60)
    while time.monotonic() < deadline + 15:
        try:
            socket.create_connection(("127.0.0.1", host["port"]), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{host['name']} did not come back after a restart")


@pytest.mark.parametrize("host_name", ["web2"])
def test_disabling_also_stops_mod_md_which_staples_despite_sslusestapling_off(fleet, host):
    ssl_conf = Path(host["server_root"]) / "conf.d" / "ssl.conf"
    text = ssl_conf.read_text().replace("SSLUseStapling          on", "SSLUseStapling          off")
    ssl_conf.write_text(text + "LoadModule md_module modules/mod_md.so\nMDStoreDir %s/run/md\nMDStapling on\n"
                        % host["server_root"])
    restart(host)  # mod_md sets up its stapling at a full start, not at a graceful reload
    www_alpha = f"www-alpha.{host['name']}.lab.test"
    # SSLUseStapling is off, yet clients are stapled: mod_md does it (AH10177)
    assert fleet.staples_until(host["name"], {www_alpha: "good"})[www_alpha].cert_status == "good"
    info = fleet.info([host["name"]])[host["name"]]
    assert {v["stapling_engine"] for v in info["vhosts"]} == {"mod_md"}

    # mod_md staples from a fresh store here, so a plain disable leaves it (see test_md_engine); asked, it stops
    kept = fleet.stapling(host["name"], state="disabled", check=True)
    assert kept["kept_from_store"] and not kept["vhost_changes"], kept

    result = fleet.stapling(host["name"], state="disabled", diff=True, keep_stored_staples=False)

    assert result["changed"], result
    assert "MDStapling off" in ssl_conf.read_text()
    fleet.reload(host["name"])
    seen = fleet.staples_until(host["name"], {v["server_name"]: None for v in host["vhosts"]})
    assert all(not check.stapled for check in seen.values()), {k: v.output[-300:] for k, v in seen.items()}


def handshake_seconds(host: dict, server_name: str, bundle: Path) -> float:
    started = time.monotonic()
    check = check_staple(host["port"], server_name, bundle, timeout=60)
    assert check.handshake_ok, check.output
    return time.monotonic() - started


@pytest.mark.parametrize("host_name", ["web3"])
def test_hanging_responder_slows_every_handshake_until_stapling_is_off_for_its_sites(fleet, host):
    # web3 is the cPanel-style host: SSLStaplingResponderTimeout 3, so each waiting handshake takes about 3 s
    www_alpha = f"www-alpha.{host['name']}.lab.test"
    bundle = fleet.lab.bundle("alpha")
    try:
        fleet.lab.cli("fault", "alpha", "hang")
        fleet.reset(host["name"])  # a fresh start: nothing cached, the next handshake asks the responder
        before = handshake_seconds(fleet.host(host["name"]), www_alpha, bundle)

        completed = run_playbook(fleet, "disable_stapling", [host["name"]],
                                 {"stapling_ocsp_hosts": ["127.0.0.1"], "stapling_probe_timeout": 2})
        assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-2000:]
        after = handshake_seconds(fleet.host(host["name"]), www_alpha, bundle)
    finally:
        fleet.lab.cli("fault", "alpha", "ok")

    assert before >= 2.5, f"the first handshake took {before:.2f} s; it should have waited for the responder"
    assert after < 1.0, f"after disable_stapling.yml a handshake still takes {after:.2f} s"
    beta = fleet.staple(host["name"], f"www-beta.{host['name']}.lab.test")
    assert beta.stapled and beta.cert_status == "good", "the other CA's sites must keep stapling"


def finding_codes(info: dict) -> set[str]:
    return {finding["code"] for finding in info["findings"]}


def test_info_flags_hosts_still_on_apaches_stapling_defaults(fleet):
    infos = fleet.info(["web2", "web3"])
    # web2 (RHEL layout) keeps Apache's defaults; web3 (cPanel) has the hardened block
    assert {"fake_try_later", "long_responder_timeout"} <= finding_codes(infos["web2"])
    assert finding_codes(infos["web3"]) == set()


@pytest.mark.parametrize("host_name", ["web2"])
def test_info_flags_a_stapling_cache_too_small_for_the_host(fleet, host):
    conf_d = Path(host["server_root"]) / "conf.d"
    ssl_conf = conf_d / "ssl.conf"
    ssl_conf.write_text(ssl_conf.read_text().replace("ssl_stapling(128000)", "ssl_stapling(8192)"))
    template = next(v for v in host["vhosts"] if v["server_name"].startswith("www-beta"))
    extra = []
    for number in range(8):
        extra += ["<VirtualHost 127.0.0.1:%d>" % host["port"],
                  "    ServerName extra%d.%s.lab.test" % (number, host["name"]), "    SSLEngine on", '    SSLCertificateFile "%s"' % template["cert_file"],
                  '    SSLCertificateKeyFile "%s"' % template["key_file"],
                  '    SSLCertificateChainFile "%s"' % template["chain_file"], "</VirtualHost>"]
    (conf_d / "zz-extra-sites.conf").write_text("\n".join(extra) + "\n")
    assert fleet.configtest(host["name"]).returncode == 0

    info = fleet.info([host["name"]])[host["name"]]

    too_small = [f for f in info["findings"] if f["code"] == "cache_too_small"]
    assert too_small and "8192 bytes" in too_small[0]["message"] and "12 stapling vhosts" in too_small[0]["message"]
