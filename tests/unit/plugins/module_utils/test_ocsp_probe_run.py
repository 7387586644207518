# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The whole run: input to items, grouping by responder, fan-out, concurrency, deadline and the report."""

from __future__ import annotations

import threading
import time

import pytest
from cryptography.x509 import ocsp

from ansible_collections.fleet.stapling.plugins.module_utils import (
    apache_config,
    ocsp_client,
    ocsp_probe_run,
    stapling_facts,
)
from ansible_collections.fleet.stapling.plugins.module_utils.ocsp_probe_run import (
    ProbeInputError,
    Settings,
    load_ca_bundle,
    load_certificate_items,
)
from ansible_collections.fleet.stapling.tests.unit.plugins.module_utils.ocsp_factory import (
    CaResponder,
    LocalResponder,
    OcspCA,
    Reply,
    closed_port,
)


@pytest.fixture
def ca():
    return OcspCA()


@pytest.fixture
def servers():
    started = []

    def start(answer=None):
        server = LocalResponder(answer)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def write(tmp_path, file_name, *issued):
    path = tmp_path / file_name
    path.write_bytes(b"".join(item.pem for item in issued))
    return str(path)


def by_path(report):
    return {entry["path"].rsplit("/", 1)[-1]: entry for entry in report["certificates"]}


# ---------------------------------------------------------------------------------------------- input


def test_issuer_comes_from_the_issuer_file_then_the_chain_then_the_bundle(tmp_path, ca):
    leaf = ca.leaf("shop.test")
    specs = [
        {"path": write(tmp_path, "own.pem", leaf), "issuer": write(tmp_path, "issuer.pem", ca.ca)},
        {"path": write(tmp_path, "chain.pem", leaf, ca.ca)},
        {"path": write(tmp_path, "alone.pem", leaf)},
    ]
    items = load_certificate_items(specs, [ca.certificate])
    assert [item.issuer_source.split(" ")[0] for item in items] == ["issuer", "the", "ca_bundle"]
    assert all(item.issuer == ca.certificate for item in items)


def test_issuer_found_nowhere_says_where_it_looked(tmp_path, ca):
    item, = load_certificate_items([{"path": write(tmp_path, "alone.pem", ca.leaf("shop.test"))}])
    assert item.issuer is None and "give ca_bundle" in item.issuer_problem


def test_url_precedence_item_then_option_then_certificate(tmp_path, ca):
    path = write(tmp_path, "leaf.pem", ca.leaf("shop.test", ocsp_url="http://aia.test/"), ca.ca)
    own, = load_certificate_items([{"path": path, "url": "http://own.test/"}], url_override="http://all.test/")
    overridden, = load_certificate_items([{"path": path}], url_override="http://all.test/")
    plain, = load_certificate_items([{"path": path}])
    assert [(i.url, i.url_source) for i in (own, overridden, plain)] == [
        ("http://own.test/", "item"), ("http://all.test/", "url"), ("http://aia.test/", "certificate")]


@pytest.mark.parametrize("spec, words", [
    ({"path": "/nonexistent/leaf.pem"}, "cannot read"),
    ({"path": "LEAF", "url": "https://ocsp.test/"}, "plain HTTP only"),
    ({"path": "LEAF", "issuer": "/nonexistent/ca.pem"}, "cannot read"),
])
def test_bad_input_is_a_probe_input_error_naming_the_entry(tmp_path, ca, spec, words):
    spec = {key: (write(tmp_path, "leaf.pem", ca.leaf("x.test")) if value == "LEAF" else value)
            for key, value in spec.items()}
    with pytest.raises(ProbeInputError, match=words) as raised:
        load_certificate_items([spec])
    assert "certificates[0]" in str(raised.value)


def test_url_option_must_be_http(tmp_path, ca):
    with pytest.raises(ProbeInputError, match="url"):
        load_certificate_items([], url_override="ftp://ocsp.test/")


def test_ca_bundle_in_pem_der_or_a_directory(tmp_path, ca):
    other = OcspCA("Other CA")
    (tmp_path / "bundle.pem").write_bytes(ca.ca.pem + other.ca.pem)
    (tmp_path / "one.der").write_bytes(ca.ca.der)
    directory = tmp_path / "dir"
    directory.mkdir()
    (directory / "00.der").write_bytes(ca.ca.der)
    (directory / "01.pem").write_bytes(other.ca.pem)
    (directory / "README").write_text("not a certificate")
    assert len(load_ca_bundle(str(tmp_path / "bundle.pem"))) == 2
    assert load_ca_bundle(str(tmp_path / "one.der")) == [ca.certificate]
    assert load_ca_bundle(str(directory)) == [ca.certificate, other.certificate]


def test_ca_bundle_that_is_missing_or_empty_is_refused(tmp_path):
    with pytest.raises(ProbeInputError, match="does not exist"):
        load_ca_bundle(str(tmp_path / "nope.pem"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ProbeInputError, match="no readable certificate"):
        load_ca_bundle(str(tmp_path / "empty"))


@pytest.mark.parametrize("text, expected", [
    ("*:443", ("*", 443)),
    ("127.0.0.1:8443", ("127.0.0.1", 8443)),
    ("[::1]:9443", ("::1", 9443)),
    ("_default_", ("_default_", 443)),
    ("shop.test:*", ("shop.test", 443)),
])
def test_vhost_addresses(text, expected):
    assert ocsp_probe_run.split_vhost_address(text) == expected


def test_wildcard_vhost_addresses_are_reached_on_loopback_of_the_family_asked():
    assert ocsp_probe_run.connect_address("*", "any") == "127.0.0.1"
    assert ocsp_probe_run.connect_address("_default_", "6") == "::1"
    assert ocsp_probe_run.connect_address("192.0.2.1", "6") == "192.0.2.1"


def test_bad_settings_are_refused():
    with pytest.raises(ProbeInputError):
        Settings(ip_version="5")
    with pytest.raises(ProbeInputError):
        Settings(timeout=0)
    with pytest.raises(ProbeInputError):
        Settings(proxy="socks5://proxy:1080")


@pytest.mark.parametrize("configured, answers, asked, stapled", [
    # switched off: old workers staple twice more, then the new config answers
    (False, [True, True, False], 3, False),
    # switched on: the first answer already agrees, one ask
    (True, [True], 1, True),
    # never agrees within the settle time: the last answer is what is reported
    (False, [True] * 100, None, True),
])
def test_a_vhost_that_disagrees_with_its_config_is_asked_again_until_it_settles(monkeypatch, configured, answers, asked,
                                                                                stapled):
    calls = []

    def fetch(addresses, port, server_name, timeout, client=None):
        calls.append(server_name)
        return {"handshake": "ok", "stapled": answers[min(len(calls), len(answers)) - 1], "chain": []}

    monkeypatch.setattr(ocsp_probe_run.staple_probe, "fetch_staple", fetch)
    monkeypatch.setattr(ocsp_probe_run, "SETTLE_INTERVAL", 0.01)
    target = ocsp_probe_run.StapleTarget("127.0.0.1", 443, "shop.test", expected=configured, configured=configured,
                                         ocsp_url="http://ocsp.test/")
    runner = ocsp_probe_run.Runner([], Settings(timeout=1, settle=0.3, staple_client="openssl"), [target])

    found = runner._fetch_settled(["127.0.0.1"], target)  # pylint: disable=protected-access

    assert found["stapled"] is stapled
    assert len(calls) == asked if asked else len(calls) > 3


def test_without_a_settle_time_or_a_config_a_vhost_is_asked_once(monkeypatch):
    calls = []
    monkeypatch.setattr(ocsp_probe_run.staple_probe, "fetch_staple",
                        lambda *args, **kwargs: calls.append(1) or {"handshake": "ok", "stapled": True, "chain": []})
    for settings, configured in ((Settings(settle=0), False), (Settings(settle=5), None)):
        target = ocsp_probe_run.StapleTarget("127.0.0.1", 443, "shop.test", configured=configured)
        ocsp_probe_run.Runner([], settings, [target])._fetch_settled(["127.0.0.1"], target)  # pylint: disable=protected-access
    assert len(calls) == 2


def test_a_must_staple_vhost_switched_off_is_not_waited_for(monkeypatch):
    # a staple is owed to its clients (expected), but the config says off: no staple is the settled answer
    calls = []
    monkeypatch.setattr(ocsp_probe_run.staple_probe, "fetch_staple",
                        lambda *args, **kwargs: calls.append(1) or {"handshake": "ok", "stapled": False, "chain": []})
    target = ocsp_probe_run.StapleTarget("127.0.0.1", 443, "secure.test", expected=True, configured=False,
                                         ocsp_url="http://ocsp.test/")
    found = ocsp_probe_run.Runner([], Settings(settle=5), [target])._fetch_settled(["127.0.0.1"], target)  # pylint: disable=protected-access
    assert len(calls) == 1
    assert found["stapled"] is False
    with pytest.raises(ProbeInputError):
        Settings(settle=-1)


# ---------------------------------------------------------------------------------------------- grouping


def test_certificates_sharing_a_responder_and_issuer_are_one_responder_each_asked_once(tmp_path, ca, servers):
    server = servers()
    leaves = [ca.leaf("site%d.test" % n, ocsp_url=server.url) for n in range(3)]
    answer = CaResponder(ca, leaves, {leaves[2].certificate.serial_number: "revoked"})
    server.set(answer)
    specs = [{"path": write(tmp_path, "site%d.pem" % n, leaf, ca.ca)} for n, leaf in enumerate(leaves)]
    specs.append({"path": specs[0]["path"]})  # the same certificate named twice: asked once
    report = ocsp_probe_run.run(load_certificate_items(specs), Settings(timeout=2))
    assert len(report["responders"]) == 1
    responder = report["responders"][0]
    assert (responder["healthy"], responder["certificates"], responder["url"]) == (True, 4, server.url)
    assert sorted(answer.asked.values()) == [1, 1, 1]
    statuses = [entry["ocsp"]["cert_status"] for entry in report["certificates"]]
    assert statuses == ["good", "good", "revoked", "good"]
    assert [entry["error_class"] for entry in report["certificates"]] == [None, None, "revoked", None]
    assert all(entry["probed"] for entry in report["certificates"])


def test_one_url_with_two_issuers_is_two_responders(tmp_path, servers):
    server = servers()
    first, second = OcspCA("First CA"), OcspCA("Second CA")
    leaf_one, leaf_two = first.leaf("a.test", server.url), second.leaf("b.test", server.url)
    first_answers, second_answers = CaResponder(first, [leaf_one]), CaResponder(second, [leaf_two])

    def answer(handler):
        serial = ocsp.load_der_ocsp_request(handler.request_body).serial_number
        return (first_answers if serial in first_answers.leaves else second_answers)(handler)

    server.set(answer)
    specs = [{"path": write(tmp_path, "a.pem", leaf_one, first.ca)},
             {"path": write(tmp_path, "b.pem", leaf_two, second.ca)}]
    report = ocsp_probe_run.run(load_certificate_items(specs), Settings(timeout=2))
    assert [r["issuer"] for r in report["responders"]] == ["CN=First CA", "CN=Second CA"]
    assert report["summary"]["healthy"] is True
    assert first_answers.asked == {leaf_one.certificate.serial_number: 1}
    assert second_answers.asked == {leaf_two.certificate.serial_number: 1}


def test_dead_responder_is_asked_once_and_its_certificates_carry_its_verdict(tmp_path, ca, servers):
    hanging, healthy = servers("hang"), servers()
    dead_leaves = [ca.leaf("dead%d.test" % n, ocsp_url=hanging.url) for n in range(5)]
    live_leaf = ca.leaf("live.test", ocsp_url=healthy.url)
    healthy.set(CaResponder(ca, [live_leaf]))
    specs = [{"path": write(tmp_path, "dead%d.pem" % n, leaf, ca.ca)} for n, leaf in enumerate(dead_leaves)]
    specs.append({"path": write(tmp_path, "live.pem", live_leaf, ca.ca)})
    started = time.monotonic()
    report = ocsp_probe_run.run(load_certificate_items(specs), Settings(timeout=1.0))
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, "a hanging responder must cost one timeout, not one per certificate"
    assert len(hanging.requests) == 1
    entries = by_path(report)
    assert entries["dead0.pem"]["probed"] is True and entries["dead0.pem"]["error_class"] == "timeout"
    for n in range(1, 5):
        entry = entries["dead%d.pem" % n]
        assert (entry["probed"], entry["healthy"], entry["error_class"]) == (False, False, "timeout")
        assert entry["message"].startswith("not asked separately")
    assert entries["live.pem"]["healthy"] is True
    assert report["summary"]["unhealthy_urls"] == [hanging.url]
    assert report["summary"]["error_classes"] == {"timeout": 5}


class CountingAnswer(object):
    """Answers like ``CaResponder`` after ``delay`` seconds, and notes the most requests it held at once."""

    def __init__(self, answer, delay):
        self.answer = answer
        self.delay = delay
        self.current = 0
        self.most = 0
        self.lock = threading.Lock()

    def __call__(self, handler):
        with self.lock:
            self.current += 1
            self.most = max(self.most, self.current)
        time.sleep(self.delay)
        with self.lock:
            self.current -= 1
        return self.answer(handler)


def test_a_responder_gets_at_most_max_per_responder_requests_at_once(tmp_path, ca, servers):
    server = servers()
    leaves = [ca.leaf("site%d.test" % n, ocsp_url=server.url) for n in range(12)]
    counting = CountingAnswer(CaResponder(ca, leaves), 0.05)
    server.set(counting)
    specs = [{"path": write(tmp_path, "site%d.pem" % n, leaf, ca.ca)} for n, leaf in enumerate(leaves)]
    report = ocsp_probe_run.run(load_certificate_items(specs), Settings(timeout=2, max_per_responder=3))
    assert report["summary"]["healthy"] is True
    assert sorted(counting.answer.asked.values()) == [1] * 12
    assert counting.most <= 3


def test_certificates_still_waiting_at_the_deadline_are_late_not_blamed_on_the_responder(tmp_path, ca, servers,
                                                                                         monkeypatch):
    server = servers()
    leaves = [ca.leaf("site%d.test" % n, ocsp_url=server.url) for n in range(6)]
    server.set(CountingAnswer(CaResponder(ca, leaves), 0.2))
    specs = [{"path": write(tmp_path, "site%d.pem" % n, leaf, ca.ca)} for n, leaf in enumerate(leaves)]
    monkeypatch.setattr(Settings, "deadline", property(lambda self: 0.7))
    report = ocsp_probe_run.run(load_certificate_items(specs), Settings(timeout=2, max_per_responder=1))
    late = [entry for entry in report["certificates"] if not entry["healthy"]]
    assert late, "one request at a time, 0.2 s each: six certificates cannot all finish in 0.7 s"
    assert all(entry["error_class"] == "timeout" and "overall deadline" in entry["message"] for entry in late)
    assert report["responders"][0]["healthy"] is True


def test_certificates_without_url_or_issuer_are_reported_and_never_probed(tmp_path, ca, servers):
    server = servers()
    leaf = ca.leaf("ok.test", ocsp_url=server.url)
    server.set(CaResponder(ca, [leaf]))
    specs = [
        {"path": write(tmp_path, "ok.pem", leaf, ca.ca)},
        {"path": write(tmp_path, "no-url.pem", ca.leaf("new.test", ocsp_url=None), ca.ca)},
        {"path": write(tmp_path, "orphan.pem", OcspCA("Elsewhere").leaf("orphan.test", ocsp_url=server.url))},
    ]
    report = ocsp_probe_run.run(load_certificate_items(specs), Settings(timeout=2))
    entries = by_path(report)
    assert (entries["no-url.pem"]["healthy"], entries["no-url.pem"]["error_class"]) == (None, "no_ocsp_url")
    assert entries["no-url.pem"]["ocsp_url"] is None
    assert (entries["orphan.pem"]["healthy"], entries["orphan.pem"]["error_class"]) == (False, "no_issuer")
    summary = report["summary"]
    assert (summary["without_ocsp_url"], summary["healthy_certificates"], summary["unhealthy_certificates"]) == (1, 1, 1)
    assert summary["unhealthy_urls"] == [] and len(server.requests) == 1


def test_only_a_certificate_without_url_is_healthy_overall(tmp_path, ca):
    specs = [{"path": write(tmp_path, "no-url.pem", ca.leaf("new.test", ocsp_url=None), ca.ca)}]
    summary = ocsp_probe_run.run(load_certificate_items(specs), Settings())["summary"]
    assert summary["healthy"] is True and "1 without OCSP URL" in summary["message"]


def test_certificate_url_apache_cannot_use_is_connect_failed(tmp_path, ca):
    specs = [{"path": write(tmp_path, "tls.pem", ca.leaf("tls.test", ocsp_url="https://ocsp.test/"), ca.ca)}]
    entry, = ocsp_probe_run.run(load_certificate_items(specs), Settings())["certificates"]
    assert entry["error_class"] == "connect_failed" and "plain HTTP" in entry["message"]


def test_refused_responder(tmp_path, ca):
    url = "http://127.0.0.1:%d/" % closed_port()
    specs = [{"path": write(tmp_path, "a.pem", ca.leaf("a.test", ocsp_url=url), ca.ca)}]
    report = ocsp_probe_run.run(load_certificate_items(specs), Settings(timeout=1))
    assert report["certificates"][0]["error_class"] == "connect_refused"
    assert report["responders"][0]["probes"][0]["connect"]["result"] == "refused"


def test_both_families_report_a_family_without_address_without_judging_it(tmp_path, ca, servers):
    server = servers()
    leaf = ca.leaf("v4.test", ocsp_url=server.url)
    server.set(CaResponder(ca, [leaf]))
    specs = [{"path": write(tmp_path, "v4.pem", leaf, ca.ca)}]
    report = ocsp_probe_run.run(load_certificate_items(specs), Settings(timeout=2, ip_version="both"))
    probes = report["responders"][0]["probes"]
    assert [(p["family"], p["healthy"]) for p in probes] == [("4", True), ("6", None)]
    assert report["responders"][0]["healthy"] is True and report["certificates"][0]["family"] == "4"


def test_asking_for_ipv6_only_of_an_ipv4_literal_is_a_dns_failure(tmp_path, ca, servers):
    server = servers()
    leaf = ca.leaf("v4.test", ocsp_url=server.url)
    specs = [{"path": write(tmp_path, "v4.pem", leaf, ca.ca)}]
    report = ocsp_probe_run.run(load_certificate_items(specs), Settings(timeout=2, ip_version="6"))
    assert report["certificates"][0]["error_class"] == "dns_failure"
    assert "no IPv6 address" in report["certificates"][0]["message"]


def test_answer_slower_than_the_budget_is_a_timeout(tmp_path, ca, servers):
    server = servers()
    leaf = ca.leaf("slow.test", ocsp_url=server.url)
    server.set(CaResponder(ca, [leaf]))
    specs = [{"path": write(tmp_path, "slow.pem", leaf, ca.ca)}]
    report = ocsp_probe_run.run(load_certificate_items(specs), Settings(timeout=2, timeout_budget=0.000001))
    assert report["responders"][0]["error_class"] == "timeout"
    assert report["responders"][0]["timeout_budget"] == 0.000001
    assert "slower than" in report["certificates"][0]["message"]


def test_an_answer_over_the_size_bound_is_too_large_in_the_report_with_its_http_facts(tmp_path, ca, servers):
    server = servers(Reply(body=b"\x30" + b"\x00" * ocsp_client.MAX_BODY_BYTES))
    specs = [{"path": write(tmp_path, "big.pem", ca.leaf("big.test", ocsp_url=server.url), ca.ca)}]
    report = ocsp_probe_run.run(load_certificate_items(specs), Settings(timeout=2))
    probe = report["responders"][0]["probes"][0]
    assert (report["certificates"][0]["error_class"], probe["error_class"]) == ("too_large", "too_large")
    assert (probe["http"]["too_large"], probe["http"]["length"], probe["ocsp"]) == (True, 0, None)
    assert probe["http"]["received"] < 64 * 1024, "refused on its Content-Length, before the body"


def test_the_hard_deadline_ends_the_run_whatever_the_network_does(tmp_path, ca, servers, monkeypatch):
    server = servers("hang")
    specs = [{"path": write(tmp_path, "a.pem", ca.leaf("a.test", ocsp_url=server.url), ca.ca)}]
    monkeypatch.setattr(Settings, "deadline", property(lambda self: 0.5))
    started = time.monotonic()
    report = ocsp_probe_run.run(load_certificate_items(specs), Settings(timeout=3))
    assert time.monotonic() - started < 1.5
    assert report["certificates"][0]["error_class"] == "timeout"
    assert "overall deadline" in report["certificates"][0]["message"]


def test_summary_message_lists_the_classes_and_urls(tmp_path, ca, servers):
    server = servers()
    leaf = ca.leaf("gone.test", ocsp_url=server.url)
    server.set(CaResponder(ca, [leaf], {leaf.certificate.serial_number: "revoked"}))
    specs = [{"path": write(tmp_path, "gone.pem", leaf, ca.ca)}]
    summary = ocsp_probe_run.run(load_certificate_items(specs), Settings(timeout=2))["summary"]
    assert summary["healthy"] is False
    assert summary["message"] == "1 of 1 certificates unhealthy (revoked: 1)"


def test_a_staples_only_summary_does_not_claim_responders_were_asked():
    stapled = [{"status": "not_stapled", "healthy": True, "message": "no staple, as configured"}]
    summary = ocsp_probe_run.summarize([], [], stapled, 0.1)
    assert summary["healthy"] is True
    assert summary["message"] == "no responder asked; 0 vhosts staple a good response, 1 staple nothing"


# ---------------------------------------------------------------------------------------------- discovery


APACHE_CONFIG = """\
ServerRoot "{root}"
SSLStaplingResponderTimeout 4
<VirtualHost 127.0.0.1:8443>
    ServerName shop.test
    SSLEngine on
    SSLCertificateFile "{root}/shop.pem"
    SSLCertificateChainFile "{root}/chain.pem"
    SSLUseStapling on
</VirtualHost>
<VirtualHost *:8443>
    ServerName forced.test
    SSLEngine on
    SSLCertificateFile forced.pem
    SSLCACertificateFile ca.pem
    SSLStaplingForceURL http://forced.test/
    SSLStaplingResponderTimeout 2
</VirtualHost>
<VirtualHost [::1]:9443>
    ServerName shop-again.test
    SSLEngine on
    SSLCertificateFile "{root}/shop.pem"
    SSLCertificateChainFile "{root}/chain.pem"
</VirtualHost>
<VirtualHost *:8443>
    ServerName broken.test
    SSLEngine on
    SSLCertificateFile "{root}/missing.pem"
</VirtualHost>
<VirtualHost *:80>
    ServerName plain.test
</VirtualHost>
"""


def test_discovery_takes_every_ssl_vhost_with_its_issuer_url_and_timeout(tmp_path, ca):
    (tmp_path / "shop.pem").write_bytes(ca.leaf("shop.test", ocsp_url="http://aia.test/").pem)
    (tmp_path / "chain.pem").write_bytes(ca.ca.pem)
    (tmp_path / "forced.pem").write_bytes(ca.leaf("forced.test", ocsp_url=None).pem)
    (tmp_path / "ca.pem").write_bytes(ca.ca.pem)
    main = tmp_path / "httpd.conf"
    main.write_text(APACHE_CONFIG.format(root=tmp_path))
    config = apache_config.parse_config(str(main), server_root=str(tmp_path))
    items, targets, skipped = ocsp_probe_run.discover_items(stapling_facts.stapling_facts(config))

    shop, forced = items
    assert len(shop.sources) == 2  # two vhosts serve shop.pem: one item
    assert (shop.url, shop.url_source, shop.responder_timeout) == ("http://aia.test/", "certificate", 4.0)
    assert shop.issuer_source.startswith("SSLCertificateChainFile")
    assert (forced.url, forced.url_source, forced.responder_timeout) == ("http://forced.test/", "force_url", 2.0)
    assert forced.issuer_source.startswith("SSLCACertificateFile")
    assert [(t.address, t.port, t.server_name, t.expected) for t in targets] == [
        ("127.0.0.1", 8443, "shop.test", True),
        ("127.0.0.1", 8443, "forced.test", False),
        ("::1", 9443, "shop-again.test", False),
    ]
    assert [t.ocsp_url for t in targets] == [None, "http://forced.test/", None]  # what Apache itself would ask
    assert len(skipped) == 1 and "broken.test" in skipped[0]["vhost"]


def test_half_configured_ipv6_is_exposed_by_probing_both_families(tmp_path, ca, servers, monkeypatch):
    server = servers()  # listens on 127.0.0.1 only, while the name also has an IPv6 address
    leaf = ca.leaf("dual.test", ocsp_url="http://dual.test:%d/" % server.port)
    server.set(CaResponder(ca, [leaf]))
    answers = {"host": "dual.test", "4": ["127.0.0.1"], "6": ["::1"], "order": ["::1", "127.0.0.1"], "error": None}
    monkeypatch.setattr(ocsp_probe_run.ocsp_client, "resolve", lambda *args: answers)
    specs = [{"path": write(tmp_path, "dual.pem", leaf, ca.ca)}]
    report = ocsp_probe_run.run(load_certificate_items(specs), Settings(timeout=2, ip_version="both"))
    responder = report["responders"][0]
    assert [(probe["family"], probe["error_class"]) for probe in responder["probes"]] == [
        ("4", None), ("6", "connect_refused")]
    assert (responder["healthy"], responder["error_class"]) == (False, "connect_refused")
    assert "(IPv6 [::1]:%d)" % server.port in responder["message"]
    assert responder["dns"]["ipv6"] == ["::1"]
    entry = report["certificates"][0]
    assert (entry["healthy"], entry["family"]) == (True, "4"), "the certificate's own answer came over IPv4"
    assert report["summary"]["healthy"] is False and report["summary"]["unhealthy_urls"] == [leaf_url(leaf)]


def test_any_family_falls_back_from_a_dead_ipv6_address_like_a_client(tmp_path, ca, servers, monkeypatch):
    server = servers()
    leaf = ca.leaf("dual.test", ocsp_url="http://dual.test:%d/" % server.port)
    server.set(CaResponder(ca, [leaf]))
    answers = {"host": "dual.test", "4": ["127.0.0.1"], "6": ["::1"], "order": ["::1", "127.0.0.1"], "error": None}
    monkeypatch.setattr(ocsp_probe_run.ocsp_client, "resolve", lambda *args: answers)
    specs = [{"path": write(tmp_path, "dual.pem", leaf, ca.ca)}]
    report = ocsp_probe_run.run(load_certificate_items(specs), Settings(timeout=2))
    probe = report["responders"][0]["probes"][0]
    assert [attempt["address"] for attempt in probe["connect"]["attempts"]] == ["::1", "127.0.0.1"]
    assert [attempt["result"] for attempt in probe["connect"]["attempts"]] == ["refused", "ok"]
    assert report["certificates"][0]["healthy"] is True


def leaf_url(leaf):
    return ocsp_probe_run.certificates.ocsp_url(leaf.certificate)
