# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Every rule of the verdict, on plain facts: each error class, their precedence, and the healthy cases."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.fleet.stapling.plugins.module_utils import ocsp_verdict
from ansible_collections.fleet.stapling.plugins.module_utils.ocsp_verdict import (
    ERROR_CLASSES,
    judge_exchange,
    judge_staple,
)

NOW = datetime.datetime(2026, 5, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
URL = "http://ocsp.example.test/"


def at(delta_seconds):
    return ocsp_verdict.format_time(NOW + datetime.timedelta(seconds=delta_seconds))


def good_ocsp(**changes):
    facts = {
        "parse_error": None,
        "response_status": "successful",
        "cert_id_matches": True,
        "cert_status": "good",
        "this_update": at(-600),
        "next_update": at(86400),
        "signature_valid": True,
        "signer": "delegated",
        "nonce": "echoed",
    }
    facts.update(changes)
    return facts


def exchange(ocsp=None, http=None, connect=None, **changes):
    facts = {
        "url": URL,
        "family": "4",
        "address": "192.0.2.10",
        "port": 80,
        "timeout": 5.0,
        "latency": 0.04,
        "subject": "CN=shop.test",
        "connect": connect or {"result": "ok", "latency": 0.01},
        "http": http or {"status": 200, "reason": "OK", "content_type": "application/ocsp-response",
                         "body_kind": "der", "length": 471},
        "ocsp": good_ocsp() if ocsp is None else ocsp,
    }
    facts.update(changes)
    return facts


def verdict_of(facts, **options):
    return judge_exchange(facts, NOW, **options)


def test_a_good_fresh_signed_answer_is_healthy_and_says_so():
    verdict = verdict_of(exchange())
    assert (verdict.healthy, verdict.error_class) == (True, None)
    assert "CN=shop.test is good" in verdict.message
    assert "IPv4 192.0.2.10:80" in verdict.message
    assert "delegated responder" in verdict.message


def test_no_url_is_reported_with_healthy_none_not_as_a_failure():
    verdict = verdict_of(exchange(url=None))
    assert (verdict.healthy, verdict.error_class) == (None, "no_ocsp_url")


def test_dns_failure_names_the_host():
    verdict = verdict_of(exchange(dns_error="Name or service not known", dns_host="ocsp.example.test", connect=None))
    assert (verdict.healthy, verdict.error_class) == (False, "dns_failure")
    assert "ocsp.example.test" in verdict.message and "Name or service not known" in verdict.message


@pytest.mark.parametrize("result, error_class", [
    ("refused", "connect_refused"),
    ("timeout", "timeout"),
    ("failed", "connect_failed"),
])
def test_connect_results_map_to_their_class(result, error_class):
    verdict = verdict_of(exchange(connect={"result": result, "error": "Network is unreachable"}, http=None))
    assert (verdict.healthy, verdict.error_class) == (False, error_class)


def test_connect_failure_message_carries_the_system_error():
    verdict = verdict_of(exchange(connect={"result": "failed", "error": "Network is unreachable"}))
    assert "Network is unreachable" in verdict.message


def test_no_answer_after_connecting_is_a_timeout_that_says_how_long():
    verdict = verdict_of(exchange(http={"timed_out": True}, ocsp={}))
    assert (verdict.error_class, "5 s" in verdict.message) == ("timeout", True)


def test_an_answer_that_began_but_did_not_finish_is_a_slow_response_not_a_timeout():
    verdict = verdict_of(exchange(http={"timed_out": True, "received": 7}, ocsp={}))
    assert (verdict.healthy, verdict.error_class) == (False, "slow_response")
    assert "only 7 bytes" in verdict.message and "5 s" in verdict.message


def test_a_body_over_the_bound_is_too_large_whatever_it_starts_with():
    http = {"status": 200, "content_type": "application/ocsp-response", "body_kind": "empty", "length": 0,
            "too_large": True}
    verdict = verdict_of(exchange(http=http, ocsp=None))
    assert (verdict.healthy, verdict.error_class) == (False, "too_large")
    assert str(ocsp_verdict.MAX_BODY_BYTES) in verdict.message


def test_a_redirect_with_a_huge_body_is_still_reported_as_the_redirect():
    http = {"status": 301, "reason": "Moved Permanently", "location": "http://ocsp.example.test/new",
            "too_large": True}
    verdict = verdict_of(exchange(http=http, ocsp={}))
    assert verdict.error_class == "http_error" and "http://ocsp.example.test/new" in verdict.message


def test_overall_deadline_is_a_timeout():
    verdict = verdict_of(exchange(deadline_exceeded=15, connect={"result": None}))
    assert verdict.error_class == "timeout"
    assert "overall deadline of 15 s" in verdict.message


def test_redirect_is_an_http_error_that_names_the_location_and_is_not_followed():
    verdict = verdict_of(exchange(http={"status": 302, "reason": "Found", "location": "https://portal.test/login"},
                                  ocsp={}))
    assert verdict.error_class == "http_error"
    assert "https://portal.test/login" in verdict.message and "not followed" in verdict.message


def test_server_error_status_is_an_http_error():
    verdict = verdict_of(exchange(http={"status": 500, "reason": "Internal Server Error"}, ocsp={}))
    assert verdict.error_class == "http_error" and "HTTP 500" in verdict.message


def test_broken_exchange_is_an_http_error():
    verdict = verdict_of(exchange(http={"error": "the responder closed the connection without an HTTP answer"}))
    assert verdict.error_class == "http_error" and "closed the connection" in verdict.message


def test_captive_portal_page_is_not_ocsp_and_quotes_its_title():
    http = {"status": 200, "content_type": "text/html; charset=utf-8", "body_kind": "html", "length": 328,
            "title": "Guest Wi-Fi - Sign in"}
    verdict = verdict_of(exchange(http=http, ocsp={"parse_error": "bad asn1"}))
    assert verdict.error_class == "not_ocsp"
    assert "Guest Wi-Fi" in verdict.message and "captive portal" in verdict.message


def test_html_sent_as_ocsp_content_type_is_still_not_ocsp():
    http = {"status": 200, "content_type": "application/ocsp-response", "body_kind": "html", "length": 50}
    assert verdict_of(exchange(http=http, ocsp={"parse_error": "x"})).error_class == "not_ocsp"


def test_plain_text_is_not_ocsp():
    http = {"status": 200, "content_type": "text/plain", "body_kind": "text", "length": 5}
    assert verdict_of(exchange(http=http, ocsp={"parse_error": "x"})).error_class == "not_ocsp"


def test_unparsable_body_with_ocsp_content_type_is_malformed():
    http = {"status": 200, "content_type": "application/ocsp-response", "body_kind": "binary", "length": 256}
    verdict = verdict_of(exchange(http=http, ocsp={"parse_error": "error parsing asn1 value"}))
    assert verdict.error_class == "malformed" and "error parsing asn1 value" in verdict.message


def test_der_looking_body_with_a_wrong_content_type_is_malformed_not_a_portal():
    http = {"status": 200, "content_type": "application/octet-stream", "body_kind": "der", "length": 20}
    assert verdict_of(exchange(http=http, ocsp={"parse_error": "short"})).error_class == "malformed"


def test_empty_body_is_malformed():
    http = {"status": 200, "content_type": "application/ocsp-response", "body_kind": "empty", "length": 0}
    assert verdict_of(exchange(http=http, ocsp={"parse_error": "short data"})).error_class == "malformed"


@pytest.mark.parametrize("status, error_class", [
    ("try_later", "try_later"),
    ("unauthorized", "unauthorized"),
    ("malformed_request", "responder_error"),
    ("internal_error", "responder_error"),
    ("sig_required", "responder_error"),
])
def test_unsuccessful_response_statuses(status, error_class):
    verdict = verdict_of(exchange(ocsp={"parse_error": None, "response_status": status}))
    assert (verdict.healthy, verdict.error_class) == (False, error_class)
    assert status in verdict.message


def test_answer_about_another_certificate_is_a_cert_id_mismatch():
    ocsp = good_ocsp(cert_id_matches=False, cert_id_problem="serial 2 instead of 1")
    verdict = verdict_of(exchange(ocsp=ocsp))
    assert verdict.error_class == "cert_id_mismatch" and "serial 2 instead of 1" in verdict.message


def test_echo_of_another_nonce_is_a_cert_id_mismatch():
    assert verdict_of(exchange(ocsp=good_ocsp(nonce="mismatch"))).error_class == "cert_id_mismatch"


def test_missing_nonce_echo_is_reported_but_healthy_by_default():
    verdict = verdict_of(exchange(ocsp=good_ocsp(nonce="not_echoed")))
    assert verdict.healthy is True
    assert "nonce not echoed" in verdict.message


def test_missing_nonce_echo_fails_when_required():
    verdict = verdict_of(exchange(ocsp=good_ocsp(nonce="not_echoed")), require_nonce=True)
    assert verdict.error_class == "cert_id_mismatch" and "require_nonce" in verdict.message


def test_nonce_not_sent_is_fine_even_when_required():
    assert verdict_of(exchange(ocsp=good_ocsp(nonce="not_sent")), require_nonce=True).healthy is True


def test_bad_signature_carries_the_reason():
    problem = "signed by CN=rogue, which the issuer did not certify"
    ocsp = good_ocsp(signature_valid=False, signer="unauthorized", signature_error=problem)
    verdict = verdict_of(exchange(ocsp=ocsp))
    assert verdict.error_class == "bad_signature" and "CN=rogue" in verdict.message


def test_stale_answer_beyond_the_skew():
    verdict = verdict_of(exchange(ocsp=good_ocsp(next_update=at(-301))))
    assert verdict.error_class == "stale" and "passed" in verdict.message


def test_answer_just_past_next_update_within_the_skew_is_fresh_enough():
    assert verdict_of(exchange(ocsp=good_ocsp(next_update=at(-299)))).healthy is True


def test_skew_is_configurable():
    assert verdict_of(exchange(ocsp=good_ocsp(next_update=at(-60))), clock_skew=30).error_class == "stale"


def test_answer_without_next_update_is_not_stale():
    assert verdict_of(exchange(ocsp=good_ocsp(next_update=None))).healthy is True


def test_answer_from_the_future_is_not_yet_valid():
    verdict = verdict_of(exchange(ocsp=good_ocsp(this_update=at(3600))))
    assert verdict.error_class == "not_yet_valid" and "clock skew" in verdict.message


def test_answer_slightly_ahead_within_the_skew_is_accepted():
    assert verdict_of(exchange(ocsp=good_ocsp(this_update=at(200)))).healthy is True


def test_revoked_certificate_names_time_and_reason():
    ocsp = good_ocsp(cert_status="revoked", revocation_time="2026-04-30T10:00:00Z", revocation_reason="keyCompromise")
    verdict = verdict_of(exchange(ocsp=ocsp))
    assert verdict.error_class == "revoked"
    assert "2026-04-30T10:00:00Z" in verdict.message and "keyCompromise" in verdict.message


def test_unknown_certificate():
    assert verdict_of(exchange(ocsp=good_ocsp(cert_status="unknown"))).error_class == "unknown_cert"


def test_responder_scope_counts_a_correct_revoked_answer_as_healthy():
    facts = exchange(ocsp=good_ocsp(cert_status="revoked"))
    assert verdict_of(facts, scope="responder").healthy is True
    assert verdict_of(facts, scope="certificate").error_class == "revoked"


def test_latency_over_the_budget_is_a_timeout_naming_the_budget_source():
    facts = exchange(latency=3.5, timeout_budget=3.0, budget_source="SSLStaplingResponderTimeout")
    verdict = verdict_of(facts)
    assert verdict.error_class == "timeout"
    assert "3.5 s" in verdict.message and "SSLStaplingResponderTimeout" in verdict.message


def test_latency_within_the_budget_is_fine():
    assert verdict_of(exchange(latency=2.9, timeout_budget=3.0)).healthy is True


def test_responder_problems_win_over_the_certificate_status():
    facts = exchange(ocsp=good_ocsp(cert_status="revoked", signature_valid=False))
    assert verdict_of(facts).error_class == "bad_signature"


def test_transport_problems_win_over_everything_after_them():
    facts = exchange(connect={"result": "refused"}, http={"status": 500}, ocsp=good_ocsp(cert_status="revoked"))
    assert verdict_of(facts).error_class == "connect_refused"


def test_unknown_error_class_cannot_be_produced():
    with pytest.raises(ValueError):
        ocsp_verdict.failed("sideways", "no such class")


def test_message_names_the_proxy_when_one_was_used():
    verdict = verdict_of(exchange(proxy="http://proxy.test:3128", connect={"result": "refused"}))
    assert "via proxy http://proxy.test:3128" in verdict.message


# ---------------------------------------------------------------------------------------------- staples


def staple(**changes):
    facts = {"target": "127.0.0.1:443 (SNI shop.test)", "handshake": "ok", "connect": {"result": "ok"},
             "stapled": True, "ocsp": good_ocsp(nonce="not_sent"), "expected": True, "ocsp_url": URL,
             "issuer_found": True, "timeout": 5.0}
    facts.update(changes)
    return facts


def staple_verdict(facts):
    return judge_staple(facts, NOW)


def test_good_staple_is_healthy():
    verdict = staple_verdict(staple())
    assert (verdict.healthy, verdict.error_class) == (True, None)
    assert "good, verified and fresh" in verdict.message


def test_missing_staple_when_stapling_is_expected_is_unhealthy_without_a_class():
    verdict = staple_verdict(staple(stapled=False, ocsp=None))
    assert (verdict.healthy, verdict.error_class) == (False, None)


def test_missing_staple_when_stapling_is_off_is_not_judged():
    verdict = staple_verdict(staple(stapled=False, ocsp=None, expected=False))
    assert verdict.healthy is None and "stapling is off" in verdict.message


def test_missing_staple_for_a_certificate_without_ocsp_url():
    verdict = staple_verdict(staple(stapled=False, ocsp=None, ocsp_url=None))
    assert (verdict.healthy, verdict.error_class) == (None, "no_ocsp_url")


@pytest.mark.parametrize("ocsp, error_class", [
    ({"parse_error": "short data"}, "malformed"),
    ({"parse_error": None, "response_status": "try_later"}, "try_later"),
    (good_ocsp(cert_status="revoked"), "revoked"),
    (good_ocsp(next_update=at(-4000)), "stale"),
    (good_ocsp(signature_valid=False), "bad_signature"),
    (good_ocsp(cert_id_matches=False), "cert_id_mismatch"),
])
def test_bad_staples(ocsp, error_class):
    verdict = staple_verdict(staple(ocsp=ocsp))
    assert (verdict.healthy, verdict.error_class) == (False, error_class)


def test_staple_that_cannot_be_checked_without_the_issuer():
    assert staple_verdict(staple(issuer_found=False)).error_class == "no_issuer"


def test_refused_tls_connection():
    verdict = staple_verdict(staple(handshake="not_tried", connect={"result": "refused"}))
    assert verdict.error_class == "connect_refused"


def test_tls_handshake_that_stalls_is_a_timeout_hinting_at_apache_waiting():
    verdict = staple_verdict(staple(handshake="timeout"))
    assert verdict.error_class == "timeout" and "OCSP responder" in verdict.message


def test_failed_tls_handshake_is_connect_failed_with_the_tls_error():
    verdict = staple_verdict(staple(handshake="failed", handshake_error="TLS error: wrong version number"))
    assert verdict.error_class == "connect_failed" and "wrong version number" in verdict.message


def test_every_error_class_of_the_fixed_set_is_produced_by_some_facts():
    text_page = {"status": 200, "content_type": "text/plain", "body_kind": "text", "length": 5}
    ocsp_junk = {"status": 200, "content_type": "application/ocsp-response", "body_kind": "binary", "length": 5}
    produced = {
        verdict_of(exchange(url=None)).error_class,
        staple_verdict(staple(issuer_found=False)).error_class,
        verdict_of(exchange(dns_error="NXDOMAIN", connect=None)).error_class,
        verdict_of(exchange(connect={"result": "refused"})).error_class,
        verdict_of(exchange(connect={"result": "failed"})).error_class,
        verdict_of(exchange(connect={"result": "timeout"})).error_class,
        verdict_of(exchange(http={"timed_out": True, "received": 1})).error_class,
        verdict_of(exchange(http={"status": 200, "too_large": True})).error_class,
        verdict_of(exchange(http={"status": 404})).error_class,
        verdict_of(exchange(http=text_page, ocsp={"parse_error": "x"})).error_class,
        verdict_of(exchange(http=ocsp_junk, ocsp={"parse_error": "x"})).error_class,
        verdict_of(exchange(ocsp={"response_status": "try_later"})).error_class,
        verdict_of(exchange(ocsp={"response_status": "unauthorized"})).error_class,
        verdict_of(exchange(ocsp={"response_status": "internal_error"})).error_class,
        verdict_of(exchange(ocsp=good_ocsp(cert_id_matches=False))).error_class,
        verdict_of(exchange(ocsp=good_ocsp(signature_valid=False))).error_class,
        verdict_of(exchange(ocsp=good_ocsp(next_update=at(-86400)))).error_class,
        verdict_of(exchange(ocsp=good_ocsp(this_update=at(86400)))).error_class,
        verdict_of(exchange(ocsp=good_ocsp(cert_status="revoked"))).error_class,
        verdict_of(exchange(ocsp=good_ocsp(cert_status="unknown"))).error_class,
    }
    assert produced == set(ERROR_CLASSES)
