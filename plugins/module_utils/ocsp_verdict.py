# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The verdict on one OCSP answer: healthy or not, the ``error_class`` and a sentence for an operator.

Pure functions over the plain facts that ``ocsp_client`` gathers (dicts of strings, numbers and booleans),
so that every rule can be tested without a network. The checks run in the order a client meets the
problems: name resolution, connection, HTTP, the OCSP envelope, the answer's identity and signature, its
freshness, and only then what it says about the certificate.
"""

from __future__ import annotations

import datetime

# The closed set of error classes. Playbooks branch on these names, so they never change meaning.
ERROR_CLASSES = {
    "no_ocsp_url": "the certificate names no OCSP responder and no url was given: nothing to probe",
    "no_issuer": "the issuer certificate was not found, so no OCSP request can be built (Apache: AH02217)",
    "dns_failure": "the responder's host name (or the proxy's) does not resolve for the address family asked",
    "connect_refused": "the TCP connection was refused: nothing listens on the responder's port",
    "connect_failed": "the TCP connection or TLS handshake failed otherwise (unreachable, reset, URL Apache cannot use)",
    "timeout": "no answer within timeout, or an answer slower than the responder timeout budget",
    "slow_response": "the responder began to answer but had not finished within timeout (it trickles its answer)",
    "http_error": "an HTTP status other than 200 (redirects are reported, not followed) or a broken HTTP exchange",
    "too_large": "the answer is larger than any OCSP response (over MAX_BODY_BYTES); it was dropped, not read whole",
    "not_ocsp": "HTTP answered, but with something that is not OCSP (an HTML captive portal, a text page)",
    "malformed": "the body claims to be an OCSP response but cannot be parsed",
    "try_later": "the responder answered tryLater",
    "unauthorized": "the responder answered unauthorized: it does not serve this issuer",
    "responder_error": "the responder answered malformedRequest, internalError or sigRequired",
    "cert_id_mismatch": "the response does not answer the request: another certificate or another nonce",
    "bad_signature": "the signature does not verify, or the signer is neither the issuer nor a responder it delegated",
    "stale": "nextUpdate has passed (beyond the allowed clock skew)",
    "not_yet_valid": "thisUpdate lies in the future (beyond the allowed clock skew)",
    "revoked": "the responder says the certificate is revoked",
    "unknown_cert": "the responder does not know the certificate (status unknown)",
}

# Classes that describe the certificate rather than the responder: a responder that answers "revoked"
# correctly is a healthy responder.
CERTIFICATE_CLASSES = ("revoked", "unknown_cert")
# Classes that are not the outcome of a probe at all; they are reported but not counted as probe failures.
NOT_PROBED_CLASSES = ("no_ocsp_url", "no_issuer")

UNSUCCESSFUL_STATUSES = {
    "try_later": "try_later",
    "unauthorized": "unauthorized",
    "malformed_request": "responder_error",
    "internal_error": "responder_error",
    "sig_required": "responder_error",
}

OCSP_CONTENT_TYPE = "application/ocsp-response"
# The most the probe reads of an answer (ocsp_client drops anything larger). Real responses are a few kilobytes.
# mod_ssl reads up to 2 MiB from a responder (MAX_CONTENT in ssl_util_ocsp.c) but caches no staple over 10 KiB
# (MAX_STAPLING_DER), so an answer over a megabyte is useless to Apache whatever it holds.
MAX_BODY_BYTES = 1024 * 1024
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class Verdict(object):
    """healthy is True, False, or None when there was nothing to judge (no OCSP URL)."""

    def __init__(self, healthy, error_class, message):
        self.healthy = healthy
        self.error_class = error_class
        self.message = message

    def as_dict(self):
        return {"healthy": self.healthy, "error_class": self.error_class, "message": self.message}

    def __repr__(self):
        return "Verdict(%r, %r, %r)" % (self.healthy, self.error_class, self.message)


def failed(error_class, message):
    if error_class not in ERROR_CLASSES:
        raise ValueError("unknown error class %r" % error_class)
    return Verdict(False, error_class, message)


def parse_time(text):
    if not text:
        return None
    return datetime.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=datetime.timezone.utc)


def format_time(moment):
    if moment is None:
        return None
    return moment.astimezone(datetime.timezone.utc).strftime(TIME_FORMAT)


def _seconds(value):
    return ("%.3f" % value).rstrip("0").rstrip(".") + " s"


def _where(facts):
    """'http://ocsp.test/ (IPv6 [2001:db8::1]:80)' or the proxy it went through."""
    parts = []
    if facts.get("family"):
        parts.append("IPv%s" % facts["family"])
    address = facts.get("address")
    if address:
        shown = "[%s]" % address if ":" in address else address
        parts.append("%s:%s" % (shown, facts.get("port")) if facts.get("port") else shown)
    if facts.get("proxy"):
        parts.append("via proxy %s" % facts["proxy"])
    text = facts.get("url") or "the responder"
    return "%s (%s)" % (text, " ".join(parts)) if parts else text


# ---------------------------------------------------------------------------------------------- transport


def judge_transport(facts):
    """DNS, TCP and HTTP: a Verdict when one of them failed, else None."""
    where = _where(facts)
    if facts.get("deadline_exceeded"):
        return failed("timeout", "%s: not finished before the overall deadline of %s" % (
            where, _seconds(facts["deadline_exceeded"])))
    if facts.get("dns_error"):
        return failed("dns_failure", "cannot resolve %s: %s" % (facts.get("dns_host") or where, facts["dns_error"]))
    connect = facts.get("connect") or {}
    result = connect.get("result")
    if result == "refused":
        return failed("connect_refused", "connection to %s refused: %s" % (where, connect.get("error") or "refused"))
    if result == "timeout":
        return failed("timeout", "no TCP connection to %s within %s" % (where, _seconds(facts.get("timeout") or 0)))
    if result != "ok":
        return failed("connect_failed", "cannot connect to %s: %s" % (where, connect.get("error") or result))
    return judge_http(facts.get("http") or {}, where, facts.get("timeout") or 0)


def judge_http(http, where, timeout):
    """The HTTP part of an exchange: a Verdict when it failed, else None."""
    if http.get("timed_out") and http.get("received"):
        # Apache's SSLStaplingResponderTimeout bounds each read, not the whole answer: such a responder holds
        # its stapling (and the handshakes waiting on it) far longer than the timeout.
        return failed("slow_response", "%s began to answer but had sent only %d bytes when the %s timeout ran out: "
                      "it trickles its answer, which a per-read timeout such as Apache's does not stop"
                      % (where, http["received"], _seconds(timeout)))
    if http.get("timed_out"):
        return failed("timeout", "%s accepted the connection but sent no answer within %s" % (where, _seconds(timeout)))
    if http.get("error"):
        return failed("http_error", "%s: %s" % (where, http["error"]))
    status = http.get("status")
    if status != 200:
        message = "%s answered HTTP %s %s" % (where, status, http.get("reason") or "")
        if http.get("location"):
            message += "; redirect to %s, not followed (OCSP clients such as Apache do not follow it)" % (
                http["location"])
        return failed("http_error", message.strip())
    if http.get("too_large"):
        return failed("too_large", "%s sent an answer larger than %d bytes, far beyond any OCSP response: dropped "
                      "without reading it whole" % (where, MAX_BODY_BYTES))
    return None


def judge_body(facts):
    """An HTTP 200 whose body is not a readable OCSP response: not_ocsp or malformed; else None."""
    ocsp = facts.get("ocsp") or {}
    if ocsp and not ocsp.get("parse_error"):
        return None
    http = facts.get("http") or {}
    content_type = (http.get("content_type") or "").split(";")[0].strip().lower()
    kind = http.get("body_kind")
    where = _where(facts)
    if kind == "html" or (content_type != OCSP_CONTENT_TYPE and kind != "der"):
        described = content_type or "no content type"
        if http.get("title"):
            described += ", titled %r" % http["title"]
        return failed("not_ocsp", "%s answered with something that is not OCSP (%s, %s bytes): a captive portal or "
                      "proxy page?" % (where, described, http.get("length", 0)))
    return failed("malformed", "%s sent an unreadable OCSP response (%s bytes, %s): %s"
                  % (where, http.get("length", 0), content_type or "no content type",
                     ocsp.get("parse_error") or "empty body"))


# ---------------------------------------------------------------------------------------------- the answer


def judge_answer(ocsp, now, clock_skew=300, require_nonce=False, what="the response"):
    """A parsed OCSP response: envelope status, identity, signature, freshness. None when it is sound."""
    status = ocsp.get("response_status")
    if status != "successful":
        error_class = UNSUCCESSFUL_STATUSES.get(status, "responder_error")
        return failed(error_class, "%s has status %s instead of successful" % (what, status))
    if ocsp.get("cert_id_matches") is False:
        return failed("cert_id_mismatch", "%s is about another certificate: %s"
                      % (what, ocsp.get("cert_id_problem") or "its CertID differs from the request's"))
    nonce = ocsp.get("nonce")
    if nonce == "mismatch":
        return failed("cert_id_mismatch", "%s echoes another nonce than the one sent: a replayed or cached answer"
                      % what)
    if not ocsp.get("signature_valid"):
        return failed("bad_signature", "%s is not trustworthy: %s"
                      % (what, ocsp.get("signature_error") or "its signature does not verify"))
    skew = datetime.timedelta(seconds=clock_skew)
    this_update = parse_time(ocsp.get("this_update"))
    next_update = parse_time(ocsp.get("next_update"))
    if next_update is not None and next_update < now - skew:
        return failed("stale", "%s is stale: nextUpdate %s passed %s ago"
                      % (what, ocsp["next_update"], _age(now - next_update)))
    if this_update is not None and this_update > now + skew:
        return failed("not_yet_valid", "%s is not valid yet: thisUpdate %s is %s in the future (clock skew?)"
                      % (what, ocsp["this_update"], _age(this_update - now)))
    if require_nonce and nonce == "not_echoed":
        return failed("cert_id_mismatch", "%s does not echo the nonce, and require_nonce is set" % what)
    return None


def _age(delta):
    seconds = int(abs(delta.total_seconds()))
    if seconds >= 86400:
        return "%d d %d h" % (seconds // 86400, seconds % 86400 // 3600)
    if seconds >= 3600:
        return "%d h %d min" % (seconds // 3600, seconds % 3600 // 60)
    return "%d min %d s" % (seconds // 60, seconds % 60)


def judge_certificate_status(ocsp, subject="the certificate"):
    status = ocsp.get("cert_status")
    if status == "revoked":
        reason = ocsp.get("revocation_reason") or "no reason given"
        return failed("revoked", "%s is REVOKED since %s (%s)" % (subject, ocsp.get("revocation_time"), reason))
    if status == "unknown":
        return failed("unknown_cert", "the responder does not know %s (status unknown)" % subject)
    if status != "good":
        return failed("malformed", "the response gives no usable status for %s (%s)" % (subject, status))
    return None


def judge_budget(facts):
    budget = facts.get("timeout_budget")
    latency = facts.get("latency")
    if budget is None or latency is None or latency <= budget:
        return None
    return failed("timeout", "%s answered in %s, slower than the %s budget (%s): Apache would give up"
                  % (_where(facts), _seconds(latency), _seconds(budget), facts.get("budget_source") or "timeout_budget"))


# ---------------------------------------------------------------------------------------------- whole verdicts


def judge_exchange(facts, now, clock_skew=300, require_nonce=False, scope="certificate"):
    """The verdict on one request/response round trip.

    ``scope`` "responder" judges the responder only (a correct "revoked" answer is a healthy responder);
    "certificate" also judges what the answer says about the certificate.
    """
    if not facts.get("url"):
        return Verdict(None, "no_ocsp_url", "no OCSP URL in the certificate and no url given: nothing to probe")
    verdict = judge_transport(facts) or judge_body(facts)
    if verdict is None:
        verdict = judge_answer(facts["ocsp"], now, clock_skew, require_nonce, "the answer of %s" % _where(facts))
    if verdict is None:
        verdict = judge_budget(facts)
    if verdict is None and scope == "certificate":
        verdict = judge_certificate_status(facts["ocsp"], facts.get("subject") or "the certificate")
    if verdict is not None:
        return verdict
    return Verdict(True, None, healthy_message(facts, scope))


def healthy_message(facts, scope):
    ocsp = facts.get("ocsp") or {}
    text = "%s answered in %s" % (_where(facts), _seconds(facts.get("latency") or 0))
    if scope == "certificate":
        text += ": %s is %s" % (facts.get("subject") or "the certificate", ocsp.get("cert_status"))
    signer = {"issuer": "signed by the issuer", "delegated": "signed by a delegated responder"}.get(ocsp.get("signer"))
    if signer:
        text += ", " + signer
    if ocsp.get("next_update"):
        text += ", valid until %s" % ocsp["next_update"]
    if ocsp.get("nonce") == "not_echoed":
        text += " (nonce not echoed: the responder ignores nonces)"
    return text


def judge_staple(facts, now, clock_skew=300):
    """What a TLS client got from a vhost: a good staple is healthy.

    ``facts``: ``handshake`` ("ok" or a failure with ``connect``), ``stapled`` (bool), ``ocsp`` (parsed staple),
    ``expected`` (False when the config does not ask for stapling), ``ocsp_url`` of the served certificate and
    ``issuer_found``.
    """
    where = facts.get("target") or "the server"
    if facts.get("handshake") != "ok":
        if facts.get("dns_error") or (facts.get("connect") or {}).get("result") != "ok":
            return judge_transport(dict(facts, url=where))
        if facts.get("handshake") == "timeout":
            return failed("timeout", "%s accepted the connection but did not finish the TLS handshake within %s "
                          "(is Apache waiting on its OCSP responder?)" % (where, _seconds(facts.get("timeout") or 0)))
        return failed("connect_failed", "TLS handshake with %s failed: %s" % (where, facts.get("handshake_error")))
    if not facts.get("stapled"):
        if not facts.get("ocsp_url"):
            return Verdict(None, "no_ocsp_url", "%s sends no staple; its certificate names no OCSP responder" % where)
        if facts.get("expected") is False:
            return Verdict(None, None, "%s sends no staple (stapling is off in its config)" % where)
        return Verdict(False, None, "%s sends no staple although stapling is expected" % where)
    ocsp = facts.get("ocsp") or {}
    what = "the staple from %s" % where
    if ocsp.get("parse_error"):
        return failed("malformed", "%s cannot be parsed: %s" % (what, ocsp["parse_error"]))
    if not facts.get("issuer_found") and ocsp.get("response_status") == "successful":
        return failed("no_issuer", "%s cannot be checked: the issuer of the served certificate was not found" % what)
    verdict = judge_answer(ocsp, now, clock_skew, require_nonce=False, what=what)
    if verdict is None:
        verdict = judge_certificate_status(ocsp, "the certificate served by %s" % where)
    if verdict is not None:
        return verdict
    return Verdict(True, None, "%s is good, verified and fresh (valid until %s)" % (what, ocsp.get("next_update")))
