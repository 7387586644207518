#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: ocsp_probe
short_description: Check OCSP responders from the managed host, and what its vhosts staple
version_added: 1.0.0
description:
  - Answers two questions from the managed host itself, where Apache fetches its staples from.
    Can this server reach each certificate's OCSP responder, and does the responder answer properly?
    Does the server staple a good response right now?
  - Each responder is probed once per (responder URL, issuer) pair and per address family, with one
    representative certificate. The probe reports DNS answers per family, the TCP connect result and latency,
    the HTTP status and content type, and the OCSP response status. It also checks the certificate status,
    the times, who signed the answer and whether that signer may, and whether the nonce was echoed.
  - Every other distinct certificate of the pair gets its own request, over the address that worked, once the
    representative got a real OCSP answer. When the responder failed, those certificates carry the responder's
    verdict instead, so a dead responder costs one timeout and not one per certificate.
  - Every probe and stapled check runs at once, in up to 32 threads, with at most 4 requests under way to any one
    responder, so that a small responder is not flooded. The run takes about one O(timeout)
    (a slow DNS lookup can add another), and a hard deadline of twice O(timeout) plus 5 seconds ends it.
  - Every problem gets an C(error_class) from a fixed set, listed under RV(certificates[].error_class), and a
    sentence in C(message). A playbook can branch on the class and an operator can read the sentence.
  - OCSP is done with C(cryptography). The stapled check asks for certificate status in a TLS handshake. It uses
    C(pyOpenSSL) when the managed host has it, and the C(openssl s_client) command otherwise. Both give the same
    answers, and RV(stapled[].client) says which one was used.
  - O(stapled_check=handshake) only checks that TLS handshakes complete, with the Python standard library.
    It needs neither pyOpenSSL nor the C(openssl) command, which makes it the right liveness check after a
    reload.
  - Read-only. It never reports a change.
author:
  - fleet.stapling maintainers (@fleet-stapling)
extends_documentation_fragment:
  - fleet.stapling.apache_instance
attributes:
  check_mode:
    support: full
    description: The module only reads and probes; check mode runs the same probes.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to show.
  idempotent:
    support: full
    description: Probing changes nothing on the host. The answers reflect the responders at that moment.
requirements:
  - cryptography >= 3.4.8 on the managed host (the distribution's C(python3-cryptography) is enough on Debian 12,
    Ubuntu 22.04 and 24.04, RHEL 9 and its rebuilds)
  - For O(stapled=true) with O(stapled_check=staple) only, pyOpenSSL or the C(openssl) command (on C(PATH) or
    C(/usr/bin/openssl)) on the managed host. pyOpenSSL is used when both are there.
options:
  certificates:
    description:
      - The certificates to check.
      - A certificate file may hold the chain after the leaf. The first certificate is the one checked.
      - The issuer is searched in O(certificates[].issuer) when given. Otherwise it is searched in the rest of
        the chain in the file, then in O(ca_bundle).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: PEM (a chain is fine) or DER certificate file.
        type: path
        required: true
      issuer:
        description: A file that holds the issuer certificate, alone or in a bundle.
        type: path
      url:
        description: The responder to ask for this certificate, instead of the one its AIA extension names.
        type: str
  discover:
    description:
      - Take the certificate of every SSL virtual host from the Apache configuration.
        The instance is found through O(ctl), O(config_file) and O(server_root).
      - The issuer comes from the chain in the certificate file, C(SSLCertificateChainFile),
        C(SSLCACertificateFile), then O(ca_bundle).
      - C(SSLStaplingForceURL) replaces the AIA URL, as in Apache.
      - Latency is judged against C(SSLStaplingResponderTimeout), which is 10 seconds when the directive is
        not set.
      - With O(stapled=true), the TLS targets are the addresses, ports and C(ServerName)s of those vhosts.
        A wildcard address such as C(*:443) is reached on loopback.
      - May be combined with O(certificates).
    type: bool
    default: false
  ca_bundle:
    description:
      - Where to look for issuers that the certificate files do not hold.
      - A PEM bundle, a DER file, or a directory of PEM and DER files (unreadable files in it are skipped).
    type: path
  url:
    description:
      - Ask this responder (an C(http://) URL) for every certificate, instead of the URL in the certificate or
        C(SSLStaplingForceURL). O(certificates[].url) still wins for its certificate.
    type: str
  timeout:
    description:
      - Seconds one request may take as a whole, from connecting to reading the last byte of the answer.
        This is one deadline for the whole exchange, not a limit per read, so a responder that trickles its
        answer a byte at a time is cut off at O(timeout) too (V(slow_response)).
      - DNS lookups and TLS handshakes of the stapled check are each bounded by the same number.
    type: float
    default: 5
  timeout_budget:
    description:
      - Seconds an answer may take before it counts as too slow (C(error_class=timeout)), even though it came.
      - When omitted and O(discover=true), the vhost's C(SSLStaplingResponderTimeout) is used. Otherwise there
        is no budget beyond O(timeout).
    type: float
  ip_version:
    description:
      - V(any) connects the way a client does, to the resolver's addresses in order until one answers.
      - V(4) or V(6) uses that family only. A responder with no address in that family is a V(dns_failure).
      - V(both) probes each family separately and reports both, to expose a half-configured IPv6 responder.
        A family without any address is reported but not judged.
      - The stapled check connects over V(4) or V(6) when one is asked, and the way a client does otherwise.
    type: str
    choices: [any, '4', '6', both]
    default: any
  method:
    description: HTTP C(POST) of the DER request, or C(GET) with the base64 request in the path (RFC 6960 A.1).
    type: str
    choices: [post, get]
    default: post
  nonce:
    description:
      - Send a random nonce, as C(openssl ocsp) and OpenBSD's C(ocspcheck) do by default, so the answer is
        known to be fresh.
      - Many responders serve pre-signed answers and ignore nonces. A missing echo is reported in
        C(ocsp.nonce) as V(not_echoed) and is not an error unless O(require_nonce=true). An echo of another
        nonce is always a V(cert_id_mismatch).
    type: bool
    default: true
  require_nonce:
    description: Treat an answer that does not echo the nonce as a V(cert_id_mismatch).
    type: bool
    default: false
  proxy:
    description:
      - An C(http://host:port) proxy for every responder request. The port defaults to 80.
      - When omitted, C(http_proxy) or C(HTTP_PROXY) from the managed host's environment is used, unless
        C(no_proxy) or C(NO_PROXY) lists the responder's host. Those lists take exact names, domain suffixes,
        C(name:port) and C(*).
      - Through a proxy, the DNS and connect facts are about the proxy, and the request line carries the
        absolute URL.
    type: str
  use_proxy:
    description: Set to V(false) to ignore C(http_proxy) from the environment (O(proxy) is still used).
    type: bool
    default: true
  clock_skew:
    description:
      - Seconds of clock difference allowed when judging C(thisUpdate) and C(nextUpdate).
      - The default is Apache's own default for C(SSLStaplingResponseTimeSkew).
    type: int
    default: 300
  stapled:
    description:
      - Also connect to the vhosts with TLS, ask for certificate status (status_request, with SNI), and judge
        what comes back. The checks cover whether anything was stapled, the response and certificate status,
        freshness, and the signature against the issuer found in the served chain.
      - The targets come from the config (O(discover=true)) or from O(stapled_targets).
      - Needs pyOpenSSL or the C(openssl) command on the managed host, unless O(stapled_check=handshake).
    type: bool
    default: false
  stapled_check:
    description:
      - What O(stapled=true) checks on each TLS endpoint.
      - V(staple) asks for the staple and judges it, as described under O(stapled).
      - V(handshake) only completes a TLS handshake (with SNI, and without verifying the certificate). It needs
        nothing beyond the Python standard library. RV(stapled[].stapled) is null, RV(stapled[].status) is
        V(not_checked) and RV(stapled[].healthy) is true when the handshake completes. Use it to check that a
        server is alive, for example after a reload.
    type: str
    choices: [staple, handshake]
    default: staple
  stapled_settle:
    description:
      - With O(stapled=true) and O(stapled_check=staple), how many seconds a vhost may take to serve what its
        config says (a staple where stapling is on and the certificate names a responder, none where it is off).
        Right after a reload, workers of the old generation may still answer for a moment; a vhost that
        disagrees is asked again every quarter of a second until it agrees or the time is up, and the last answer
        is reported. Vhosts that agree at once cost nothing extra.
      - The default V(0) asks once.
    type: float
    default: 0
  stapled_targets:
    description: TLS endpoints for the stapled check when not discovering (added to the discovered ones otherwise).
    type: list
    elements: dict
    default: []
    suboptions:
      address:
        description: Address or host name to connect to.
        type: str
        required: true
      port:
        description: TCP port.
        type: int
        default: 443
      server_name:
        description: The SNI name to send, which selects the vhost.
        type: str
  ask_responders:
    description:
      - Ask each certificate's OCSP responder. V(false), with O(stapled=true), checks only what the vhosts staple
        (each staple is still judged, signature, status and freshness); no request goes to a responder, so one that
        hangs costs nothing, and RV(responders) and RV(certificates) are empty. For checks after a reload, where
        only what clients see counts.
    type: bool
    default: true
  fail_on_unhealthy:
    description:
      - Fail the task when RV(summary.healthy) is false. The full report is still returned.
      - By default the report comes back and the playbook decides.
    type: bool
    default: false
seealso:
  - module: fleet.stapling.apache_stapling_info
  - module: fleet.stapling.apache_stapling
notes:
  - Redirects are never followed, neither to the same host nor to another, just as Apache's OCSP client does
    not follow them. A 3xx answer is a V(http_error) whose message names the C(Location).
  - The module reads certificates and the Apache configuration only. It never opens the files named by
    C(SSLCertificateKeyFile). From a certificate file that also holds the key, only the certificate blocks are
    parsed. No key material is ever returned.
  - Only C(http://) responder URLs are probed, because Apache's stapling client speaks plain HTTP only.
    A certificate that names another scheme is reported as V(connect_failed).
"""

EXAMPLES = r"""
- name: Check every vhost's responder and what each vhost staples
  fleet.stapling.ocsp_probe:
    discover: true
    stapled: true
    ctl: "{{ stapling_apache_ctl | default(omit) }}"
    config_file: "{{ stapling_apache_config_file | default(omit) }}"
    server_root: "{{ stapling_apache_server_root | default(omit) }}"
  register: probe

- name: Show what is wrong, in words
  ansible.builtin.debug:
    msg: "{{ probe.certificates | rejectattr('healthy', 'none') | rejectattr('healthy') | map(attribute='message') | list }}"

- name: Check given certificates over IPv4 and IPv6 separately, issuers from a DER bundle directory
  fleet.stapling.ocsp_probe:
    certificates:
      - path: /etc/ssl/certs/shop.pem
      - path: /etc/ssl/certs/api.pem
        issuer: /etc/ssl/certs/intermediate.pem
    ca_bundle: /etc/ssl/ca-der/
    ip_version: both
    timeout: 3
  register: responders

- name: Stop here when a responder of this host is unreachable over IPv6
  ansible.builtin.assert:
    that: responders.responders | map(attribute='probes') | flatten
          | selectattr('family', 'equalto', '6') | rejectattr('healthy', 'none') | rejectattr('healthy') | list | length == 0

- name: Ask a given responder through the corporate proxy, and fail the task when anything is unhealthy
  fleet.stapling.ocsp_probe:
    certificates:
      - path: /etc/pki/tls/certs/portal.pem
    url: http://ocsp.example-ca.test/
    proxy: http://proxy.example.test:3128
    fail_on_unhealthy: true

- name: After a reload, make sure the listener still completes TLS handshakes (no pyOpenSSL or openssl needed)
  fleet.stapling.ocsp_probe:
    stapled: true
    stapled_check: handshake
    stapled_targets:
      - address: 127.0.0.1
        port: 443
        server_name: shop.example.test
    timeout: 3
  register: alive
  until: alive.stapled | selectattr('handshake', 'equalto', 'ok') | list | length == 1
  retries: 5
  delay: 2

- name: What does this listener staple right now?
  fleet.stapling.ocsp_probe:
    stapled: true
    stapled_targets:
      - address: 127.0.0.1
        port: 443
        server_name: shop.example.test
  register: staple
"""

RETURN = r"""
responders:
  description: One entry per (responder URL, issuer) pair, probed with one representative certificate.
  returned: always
  type: list
  elements: dict
  contains:
    url:
      description: The responder URL.
      type: str
      returned: always
      sample: http://ocsp.example-ca.test/
    issuer:
      description: The issuer's subject.
      type: str
      returned: always
      sample: CN=Example Intermediate CA,O=Example
    issuer_fingerprint:
      description: SHA-256 fingerprint of the issuer certificate, in hex.
      type: str
      returned: always
      sample: 5f1c0e4f9b...
    proxy:
      description: The proxy the requests went through, or null.
      type: str
      returned: always
      sample: null
    certificates:
      description: How many certificates use this pair.
      type: int
      returned: always
      sample: 12
    representative:
      description: The certificate file the probe used.
      type: str
      returned: always
      sample: /etc/ssl/certs/shop.pem
    dns:
      description:
        - What the host name (the proxy's, through a proxy) resolved to, per family. Null when the probe never
          got that far.
        - Keys are C(host), C(ipv4) and C(ipv6) (lists of addresses), and C(error).
      type: dict
      returned: always
      sample: {host: ocsp.example-ca.test, ipv4: [192.0.2.10], ipv6: ["2001:db8::10"], error: null}
    probes:
      description:
        - One probe per address family asked (one for O(ip_version=any)), each with its own verdict.
        - C(connect) holds C(result) (V(ok), V(refused), V(failed), V(timeout) or V(dns_failure)), C(latency),
          C(error) and every address tried in C(attempts).
        - C(http) holds C(method), C(status), C(reason), C(content_type), C(location), C(length),
          C(body_kind) (V(der), V(html), V(text), V(binary) or V(empty)), C(title) of an HTML page, C(error),
          C(timed_out), C(received) (bytes of the answer that arrived, headers included) and C(too_large)
          (the body passed the 1 MiB bound and was dropped unread).
        - C(ocsp) is shaped like RV(certificates[].ocsp).
      type: list
      elements: dict
      returned: always
      sample: [{family: "4", address: 192.0.2.10, port: 80, latency: 0.041,
                connect: {result: ok, latency: 0.012, error: null, attempts: [{address: 192.0.2.10, result: ok}]},
                http: {method: POST, status: 200, content_type: application/ocsp-response, location: null},
                ocsp: {response_status: successful, cert_status: good, signature_valid: true, signer: delegated},
                healthy: true, error_class: null, message: "http://ocsp.example-ca.test/ (IPv4 192.0.2.10:80) answered in 0.041 s"}]
    latency:
      description: The slowest probe's round trip in seconds, or null.
      type: float
      returned: always
      sample: 0.041
    responder_timeout:
      description: The smallest C(SSLStaplingResponderTimeout) of the vhosts that use this pair, when discovering.
      type: float
      returned: always
      sample: 10.0
    timeout_budget:
      description: The budget the latency was judged against (O(timeout_budget) or RV(responders[].responder_timeout)), or null.
      type: float
      returned: always
      sample: 10.0
    healthy:
      description:
        - Whether every probed family got a proper answer. A proper answer is a successful envelope that
          answers the request, is signed by an authorised signer, is fresh, and arrived within the budget.
        - A correct V(revoked) or V(unknown) status is still a healthy responder; see RV(certificates).
      type: bool
      returned: always
      sample: true
    error_class:
      description: The first failing probe's class (see RV(certificates[].error_class)), or null.
      type: str
      returned: always
      sample: null
    message:
      description: What happened, in words.
      type: str
      returned: always
      sample: "http://ocsp.example-ca.test/ (IPv4 192.0.2.10:80) answered in 0.041 s, signed by a delegated responder"
certificates:
  description: One entry per certificate given or discovered, with its own OCSP status and verdict.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The certificate file.
      type: str
      returned: always
      sample: /etc/ssl/certs/shop.pem
    sources:
      description: Where the certificate was named, C(certificates[N]) or the vhosts that serve it.
      type: list
      elements: str
      returned: always
      sample: ["shop.example.test (/etc/apache2/sites-enabled/shop.conf:1)"]
    subject:
      description: The certificate's subject.
      type: str
      returned: always
      sample: CN=shop.example.test
    serial:
      description: Serial number in hex.
      type: str
      returned: always
      sample: 3A0F9C
    issuer:
      description: The issuer's name as the certificate states it.
      type: str
      returned: always
      sample: CN=Example Intermediate CA,O=Example
    issuer_source:
      description: Where the issuer certificate was found, or null when it was not.
      type: str
      returned: always
      sample: the chain in /etc/ssl/certs/shop.pem
    must_staple:
      description: Whether the certificate carries OCSP Must-Staple.
      type: bool
      returned: always
      sample: false
    ocsp_url:
      description: The responder asked, or null when there is none.
      type: str
      returned: always
      sample: http://ocsp.example-ca.test/
    url_source:
      description:
        - Where the URL came from. V(item) is O(certificates[].url), V(url) is O(url), V(force_url) is
          C(SSLStaplingForceURL) and V(certificate) is the AIA extension.
        - Null when there is no URL.
      type: str
      returned: always
      sample: certificate
    responder_timeout:
      description:
        - C(SSLStaplingResponderTimeout) of the vhosts that serve the certificate (the smallest).
        - 10 when a discovered vhost does not set it. Null when not discovering.
      type: float
      returned: always
      sample: 10.0
    probed:
      description:
        - Whether this certificate got its own answer.
        - False when the responder failed for the representative, and the verdict is the responder's.
      type: bool
      returned: always
      sample: true
    family:
      description: The address family of the request (V(4) or V(6)), or null.
      type: str
      returned: always
      sample: "4"
    address:
      description: The address the request went to (the proxy's, through a proxy), or null.
      type: str
      returned: always
      sample: 192.0.2.10
    latency:
      description: Seconds from connecting to the last byte of the answer, or null.
      type: float
      returned: always
      sample: 0.041
    ocsp:
      description: What the answer said, or null when no OCSP answer came.
      type: dict
      returned: always
      contains:
        response_status:
          description: V(successful), V(malformed_request), V(internal_error), V(try_later), V(sig_required) or V(unauthorized).
          type: str
          returned: always
          sample: successful
        cert_status:
          description: V(good), V(revoked) or V(unknown), or null when the envelope was not successful.
          type: str
          returned: always
          sample: good
        revocation_time:
          description: When the certificate was revoked (UTC, ISO 8601), or null.
          type: str
          returned: always
          sample: null
        revocation_reason:
          description: The revocation reason (for example V(keyCompromise)), or null.
          type: str
          returned: always
          sample: null
        this_update:
          description: thisUpdate, UTC.
          type: str
          returned: always
          sample: "2026-05-01T10:00:00Z"
        next_update:
          description: nextUpdate, UTC, or null when the responder gives none.
          type: str
          returned: always
          sample: "2026-05-08T10:00:00Z"
        produced_at:
          description: producedAt, UTC.
          type: str
          returned: always
          sample: "2026-05-01T10:00:00Z"
        signature_valid:
          description: Whether the signature verifies and the signer may sign for the issuer.
          type: bool
          returned: always
          sample: true
        signer:
          description:
            - V(issuer) means the issuer signed. V(delegated) means a responder certificate that the issuer signed,
              with the OCSP-signing EKU.
            - V(unauthorized) means a certificate that may not sign for this issuer. V(unknown) means the
              responder ID matches no certificate at hand.
          type: str
          returned: always
          sample: delegated
        signer_subject:
          description: The signer's subject.
          type: str
          returned: always
          sample: CN=Example OCSP Responder
        signature_error:
          description: Why the signature is not trusted, or null.
          type: str
          returned: always
          sample: null
        cert_id_matches:
          description: Whether the answer's CertID is the one asked for.
          type: bool
          returned: always
          sample: true
        nonce:
          description: V(not_sent), V(echoed), V(not_echoed) (the responder ignores nonces) or V(mismatch).
          type: str
          returned: always
          sample: echoed
        parse_error:
          description: Why the body could not be read as OCSP, or null.
          type: str
          returned: always
          sample: null
    healthy:
      description:
        - True when the responder answered properly and the certificate is good. False on any error class.
        - Null when there was nothing to probe (V(no_ocsp_url)), which is not counted as a failure.
      type: bool
      returned: always
      sample: true
    error_class:
      description:
        - Null when healthy, else one of a fixed set.
        - V(no_ocsp_url) means no responder URL and no O(url), so nothing was probed (RV(certificates[].healthy) is null).
        - V(no_issuer) means the issuer certificate was not found, so no request can be built. Apache logs AH02217 for this.
        - V(dns_failure) means the host name (or the proxy's) does not resolve in the family asked.
        - V(connect_refused) means the TCP connection was refused.
        - V(connect_failed) means the connection failed otherwise (unreachable, reset), or the URL is not C(http://).
        - V(timeout) means no answer within O(timeout), or an answer slower than the budget, or the
          overall deadline passed.
        - V(slow_response) means the responder began to answer but had not finished within O(timeout), as when it trickles
          its answer. O(timeout) bounds the whole exchange, not each read. Apache's C(SSLStaplingResponderTimeout)
          bounds each read, so such a responder stalls Apache's stapling far longer than that timeout.
        - V(http_error) means a status other than 200, a redirect (not followed, to the same host or another),
          or a broken HTTP exchange.
        - V(too_large) means the answer is larger than 1 MiB, far beyond any OCSP response. It is dropped as soon
          as that is known (from C(Content-Length), or while reading a chunked or unbounded body), never read whole.
        - V(not_ocsp) means HTTP answered with something that is not OCSP, such as an HTML captive portal.
        - V(malformed) means the body claims to be OCSP but cannot be parsed.
        - V(try_later) and V(unauthorized) are those OCSP response statuses.
        - V(responder_error) means the status malformedRequest, internalError or sigRequired.
        - V(cert_id_mismatch) means the answer is about another certificate, echoes another nonce, or does not
          echo the nonce when O(require_nonce=true).
        - V(bad_signature) means the signature does not verify, or the signer is neither the issuer nor a
          delegated responder of it.
        - V(stale) means nextUpdate passed, and V(not_yet_valid) means thisUpdate is in the future. Both allow
          O(clock_skew).
        - V(revoked) and V(unknown_cert) are the certificate's status.
      type: str
      returned: always
      sample: null
    message:
      description: The verdict in words.
      type: str
      returned: always
      sample: "http://ocsp.example-ca.test/ (IPv4 192.0.2.10:80) answered in 0.041 s: CN=shop.example.test is good"
stapled:
  description: One entry per TLS endpoint checked with O(stapled=true); empty otherwise.
  returned: always
  type: list
  elements: dict
  contains:
    address:
      description: The address connected to (a wildcard vhost address becomes loopback).
      type: str
      returned: always
      sample: 127.0.0.1
    port:
      description: The port.
      type: int
      returned: always
      sample: 443
    server_name:
      description: The SNI name sent, or null.
      type: str
      returned: always
      sample: shop.example.test
    vhosts:
      description: The vhosts behind this endpoint and name, when discovering.
      type: list
      elements: str
      returned: always
      sample: ["shop.example.test (/etc/apache2/sites-enabled/shop.conf:1)"]
    stapling_expected:
      description:
        - True when the config switches stapling on or the certificate is Must-Staple, and false when it does not.
        - Null for O(stapled_targets).
      type: bool
      returned: always
      sample: true
    connected_address:
      description: The address the TCP connection went to, or null.
      type: str
      returned: always
      sample: 127.0.0.1
    client:
      description:
        - The TLS client that did the check. V(pyopenssl) and V(openssl-s_client) ask for the staple; V(ssl) (the
          Python standard library) is used for O(stapled_check=handshake).
        - Null when the stapled check cannot be done on this host.
      type: str
      returned: always
      sample: openssl-s_client
    handshake:
      description:
        - V(ok), V(timeout), V(failed), V(not_tried) (no connection) or V(not_finished) (the overall deadline
          passed).
      type: str
      returned: always
      sample: ok
    handshake_error:
      description:
        - Why the handshake failed, in the TLS library's words, or null.
        - "For example C(TLS error: wrong version number) from a plain HTTP port."
      type: str
      returned: always
      sample: null
    tls_version:
      description: The TLS version negotiated.
      type: str
      returned: always
      sample: TLSv1.3
    stapled:
      description: Whether the server sent a staple. Null with O(stapled_check=handshake), which does not ask for one.
      type: bool
      returned: always
      sample: true
    certificate:
      description: The served leaf's C(subject), C(serial), C(ocsp_url) and C(must_staple), or null.
      type: dict
      returned: always
      sample: {subject: CN=shop.example.test, serial: 3A0F9C, ocsp_url: "http://ocsp.example-ca.test/", must_staple: false}
    ocsp:
      description: The staple, read like RV(certificates[].ocsp) (C(nonce) is V(not_sent)), or null.
      type: dict
      returned: always
      sample: {response_status: successful, cert_status: good, next_update: "2026-05-08T10:00:00Z", signature_valid: true}
    latency:
      description: Seconds to connect and handshake. With V(openssl-s_client) it includes starting the command.
      type: float
      returned: always
      sample: 0.008
    status:
      description:
        - V(good) means a staple that is good, verified and fresh. V(bad) means a staple that is not
          (see RV(stapled[].error_class)).
        - V(not_stapled) means no staple was sent. V(unreachable) means there was no TLS handshake.
        - V(not_checked) means the handshake completed but no staple was judged. That happens with
          O(stapled_check=handshake), or when the client's output could not be read (then
          RV(stapled[].healthy) is null and RV(stapled[].message) says why).
      type: str
      returned: always
      sample: good
    healthy:
      description:
        - True for a good staple, and for a completed handshake with O(stapled_check=handshake).
        - Null when no staple is sent and none is expected (stapling off in the config, or no OCSP URL).
        - False otherwise.
      type: bool
      returned: always
      sample: true
    error_class:
      description:
        - A class from RV(certificates[].error_class) for a bad staple or a failed connection.
        - Null for a good staple, or when nothing was stapled.
      type: str
      returned: always
      sample: null
    message:
      description: The verdict in words.
      type: str
      returned: always
      sample: "the staple from 127.0.0.1:443 (SNI shop.example.test) is good, verified and fresh (valid until 2026-05-08T10:00:00Z)"
skipped:
  description: Discovered vhosts that could not be checked (no or unreadable certificate file), with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{vhost: "old.example.test (/etc/apache2/sites-enabled/old.conf:1)", reason: "cannot read certificate file ..."}]
summary:
  description: The overall verdict and counts.
  returned: always
  type: dict
  contains:
    healthy:
      description:
        - False when any certificate, responder or stapled check is unhealthy.
        - Certificates without an OCSP URL do not count against it.
      type: bool
      returned: always
      sample: true
    message:
      description: The overall verdict in words.
      type: str
      returned: always
      sample: "all 4 certificates with an OCSP URL are good and their responders healthy; 1 without OCSP URL"
    certificates:
      description: How many certificates were checked.
      type: int
      returned: always
      sample: 5
    healthy_certificates:
      description: How many of them are healthy.
      type: int
      returned: always
      sample: 4
    unhealthy_certificates:
      description: How many are unhealthy.
      type: int
      returned: always
      sample: 0
    without_ocsp_url:
      description: How many have no OCSP URL (not counted as failures).
      type: int
      returned: always
      sample: 1
    responders:
      description: How many (URL, issuer) pairs were probed.
      type: int
      returned: always
      sample: 2
    unhealthy_urls:
      description: The URLs of unhealthy responders.
      type: list
      elements: str
      returned: always
      sample: []
    error_classes:
      description: How many certificates got each error class, V(no_ocsp_url) included.
      type: dict
      returned: always
      sample: {no_ocsp_url: 1}
    stapling_good:
      description: Stapled checks that got a good staple.
      type: int
      returned: always
      sample: 3
    not_stapling:
      description: Stapled checks that got no staple.
      type: int
      returned: always
      sample: 1
    stapling_bad:
      description: Stapled checks that got a staple that is not good.
      type: int
      returned: always
      sample: 0
    stapled_unreachable:
      description: Stapled checks without a TLS handshake.
      type: int
      returned: always
      sample: 0
    staple_not_checked:
      description: Stapled checks with a completed handshake but no staple judged (RV(stapled[].status=not_checked)).
      type: int
      returned: always
      sample: 0
    elapsed:
      description: Seconds the probing took.
      type: float
      returned: always
      sample: 0.12
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.stapling.plugins.module_utils import (
    certificates,
    ocsp_probe_run,
    staple_probe,
)
from ansible_collections.fleet.stapling.plugins.module_utils.apache_host import (
    INSTANCE_ARGUMENT_SPEC,
    discover_from_params,
    module_runner,
)
from ansible_collections.fleet.stapling.plugins.module_utils.stapling_change import STAPLING_ERRORS
from ansible_collections.fleet.stapling.plugins.module_utils.short_lived_process import without_cycle_collection

PROBE_ERRORS = STAPLING_ERRORS + (ocsp_probe_run.ProbeInputError,)


def argument_spec():
    return dict(
        certificates=dict(type="list", elements="dict", default=[], options=dict(
            path=dict(type="path", required=True),
            issuer=dict(type="path"),
            url=dict(type="str"),
        )),
        discover=dict(type="bool", default=False),
        ca_bundle=dict(type="path"),
        url=dict(type="str"),
        timeout=dict(type="float", default=5.0),
        timeout_budget=dict(type="float"),
        ip_version=dict(type="str", default="any", choices=["any", "4", "6", "both"]),
        method=dict(type="str", default="post", choices=["post", "get"]),
        nonce=dict(type="bool", default=True),
        require_nonce=dict(type="bool", default=False),
        proxy=dict(type="str"),
        use_proxy=dict(type="bool", default=True),
        clock_skew=dict(type="int", default=300),
        stapled=dict(type="bool", default=False),
        stapled_check=dict(type="str", default="staple", choices=["staple", "handshake"]),
        stapled_settle=dict(type="float", default=0),
        stapled_targets=dict(type="list", elements="dict", default=[], options=dict(
            address=dict(type="str", required=True),
            port=dict(type="int", default=443),
            server_name=dict(type="str"),
        )),
        ask_responders=dict(type="bool", default=True),
        fail_on_unhealthy=dict(type="bool", default=False),
        **INSTANCE_ARGUMENT_SPEC
    )


def gather(module, params, ca_bundle_certs):
    """The certificates and TLS targets to check, and the vhosts that had to be skipped."""
    items = ocsp_probe_run.load_certificate_items(params["certificates"], ca_bundle_certs, params["url"])
    targets = ocsp_probe_run.targets_from_specs(params["stapled_targets"])
    skipped = []
    if params["discover"]:
        host = discover_from_params(module_runner(module), params)
        found, found_targets, skipped = ocsp_probe_run.discover_on_host(
            host, ca_bundle_certs, params["url"], params["ip_version"])
        items += found
        targets = found_targets + targets
    return items, targets, skipped


def main():
    without_cycle_collection()
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    cryptography_problem = certificates.cryptography_problem()
    if cryptography_problem:
        module.fail_json(msg=cryptography_problem, exception=certificates.CRYPTOGRAPHY_IMPORT_ERROR)
    if params["stapled"] and params["stapled_check"] == "staple" and staple_probe.staple_client() is None:
        # Neither pyOpenSSL nor the openssl command: say so plainly (the handshake check needs neither).
        module.fail_json(msg=staple_probe.NO_CLIENT_MESSAGE, exception=staple_probe.PYOPENSSL_IMPORT_ERROR)
    if not (params["certificates"] or params["discover"] or params["stapled_targets"]):
        module.fail_json(msg="nothing to probe: give certificates, or discover: true, or stapled_targets")
    if params["stapled_targets"] and not params["stapled"]:
        module.fail_json(msg="stapled_targets needs stapled: true")
    if not params["ask_responders"] and not params["stapled"]:
        module.fail_json(msg="ask_responders: false leaves nothing to do without stapled: true")
    try:
        settings = ocsp_probe_run.Settings(
            timeout=params["timeout"], ip_version=params["ip_version"], method=params["method"],
            nonce=params["nonce"], require_nonce=params["require_nonce"], proxy=params["proxy"],
            use_proxy=params["use_proxy"], clock_skew=params["clock_skew"], timeout_budget=params["timeout_budget"],
            stapled_check=params["stapled_check"], settle=params["stapled_settle"])
        ca_bundle_certs = ocsp_probe_run.load_ca_bundle(params["ca_bundle"])
        items, targets, skipped = gather(module, params, ca_bundle_certs)
    except PROBE_ERRORS as exc:
        module.fail_json(msg=str(exc))
    for entry in skipped:
        module.warn("%s: not probed: %s" % (entry["vhost"], entry["reason"]))
    result = ocsp_probe_run.run(items if params["ask_responders"] else [], settings, targets if params["stapled"] else [],
                                ca_bundle_certs=ca_bundle_certs)
    result.update(changed=False, skipped=skipped)
    if params["fail_on_unhealthy"] and not result["summary"]["healthy"]:
        module.fail_json(msg="unhealthy: %s" % result["summary"]["message"], **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
