# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""ocsp_probe's whole run: which certificates, which responders, all probes at once, and the report.

1. ``load_certificate_items`` / ``discover_items`` turn the module's input (or the Apache config) into
   ``CertificateItem``s: leaf, issuer, responder URL and where each came from.
2. ``run`` groups them by (responder URL, issuer). Each group is probed once per address family with one
   representative certificate; DNS is looked up once per host name. Only when that probe got a real OCSP
   answer does every other distinct certificate of the group get its own request (over the address that
   worked), so a dead responder costs one timeout, not one per certificate. Stapled checks run alongside.
   Everything runs in one thread pool; a hard deadline ends the run whatever the network does.
3. The report: ``responders``, ``certificates``, ``stapled`` and a ``summary``, all plain data.
"""

from __future__ import annotations

import collections
import datetime
import os
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from ansible_collections.fleet.stapling.plugins.module_utils import (
    certificates,
    ocsp_client,
    ocsp_verdict,
    staple_probe,
    stapling_facts,
)
from ansible_collections.fleet.stapling.plugins.module_utils.stapling_facts import readable_certificates

try:
    from cryptography.hazmat.primitives import hashes
except ImportError:  # pragma: no cover - reported by the module through certificates.HAS_CRYPTOGRAPHY
    pass

IP_VERSIONS = ("any", "4", "6", "both")
METHODS = ("post", "get")
# staple: ask for the staple and judge it; handshake: only prove that a TLS handshake completes (liveness).
STAPLED_CHECKS = ("staple", "handshake")
# Enough for every responder of a fleet at once (a handful of CAs, two families) plus its vhosts.
MAX_WORKERS = 32
# Requests under way to one responder (host and port) at a time. Small responders listen with a short backlog
# (Python's http.server keeps 5 connections waiting, openssl ocsp answers one at a time): a burst of 32
# connections overflows it, and the connections beyond it wait a SYN retransmission (a second) or are reset,
# which would be reported as the responder's fault.
MAX_PER_RESPONDER = 4
SETTLE_INTERVAL = 0.25  # seconds between two asks of a vhost whose answer has not settled yet
# Apache's SSLStaplingResponderTimeout when the config does not set it.
APACHE_RESPONDER_TIMEOUT = 10.0
WILDCARD_ADDRESSES = ("*", "_default_", "0.0.0.0", "::")
OCSP_FIELDS = ("response_status", "cert_status", "revocation_time", "revocation_reason", "this_update",
               "next_update", "produced_at", "signature_valid", "signer", "signer_subject", "nonce")


class ProbeInputError(Exception):
    """Bad module input (unreadable certificate, unusable URL, ...); the message is for the operator."""


class Settings(object):
    def __init__(self, timeout=5.0, ip_version="any", method="post", nonce=True, require_nonce=False, proxy=None,
                 use_proxy=True, clock_skew=300, timeout_budget=None, environ=None, max_workers=MAX_WORKERS,
                 stapled_check="staple", staple_client=None, settle=0, max_per_responder=MAX_PER_RESPONDER):
        if ip_version not in IP_VERSIONS:
            raise ProbeInputError("ip_version must be one of %s, not %r" % (", ".join(IP_VERSIONS), ip_version))
        if method not in METHODS:
            raise ProbeInputError("method must be post or get, not %r" % method)
        if not timeout or timeout <= 0:
            raise ProbeInputError("timeout must be a positive number of seconds")
        if stapled_check not in STAPLED_CHECKS:
            raise ProbeInputError("stapled_check must be staple or handshake, not %r" % stapled_check)
        if settle < 0:
            raise ProbeInputError("stapled_settle must be zero or a positive number of seconds")
        self.timeout = float(timeout)
        self.ip_version = ip_version
        self.method = method
        self.nonce = nonce
        self.require_nonce = require_nonce
        self.proxy = proxy
        self.use_proxy = use_proxy
        self.clock_skew = clock_skew
        self.timeout_budget = timeout_budget
        self.environ = os.environ if environ is None else environ
        self.max_workers = max_workers
        self.max_per_responder = max_per_responder
        self.stapled_check = stapled_check
        # None lets staple_probe pick (pyOpenSSL, else openssl s_client); tests force one to compare them.
        self.staple_client = staple_client
        self.settle = float(settle)
        if proxy:
            try:
                ocsp_client.proxy_endpoint(proxy)
            except ocsp_client.OcspClientError as exc:
                raise ProbeInputError(str(exc))

    @property
    def deadline(self):
        """The hard limit of a whole run: a DNS lookup and an exchange, each bounded by timeout, plus slack, plus
        the time a staple check may wait for what is served to settle."""
        return 2 * self.timeout + 5 + self.settle


# ---------------------------------------------------------------------------------------------- input


class CertificateItem(object):
    """One certificate to check, with its issuer and responder URL and where each came from."""

    def __init__(self, path, leaf, sources):
        self.path = path
        self.leaf = leaf
        self.sources = list(sources)
        self.issuer = None
        self.issuer_source = None
        self.issuer_problem = None
        self.url = None
        self.url_source = None
        self.responder_timeout = None

    @property
    def serial(self):
        return "%X" % self.leaf.serial_number

    @property
    def subject(self):
        return self.leaf.subject.rfc4514_string()


def _load(path, what):
    try:
        found = certificates.load_certificates(path)
    except certificates.CertificateError as exc:
        raise ProbeInputError("%s: %s" % (what, exc))
    if not found:
        raise ProbeInputError("%s: %s holds no certificate" % (what, path))
    return found


def load_ca_bundle(path):
    """Certificates of a PEM bundle, a DER file, or every readable PEM/DER file of a directory."""
    if not path:
        return []
    if os.path.isdir(path):
        found = []
        for name in sorted(os.listdir(path)):
            candidate = os.path.join(path, name)
            if not os.path.isfile(candidate):
                continue
            try:
                found.extend(certificates.load_certificates(candidate))
            except certificates.CertificateError:
                continue  # directories such as /etc/ssl/certs hold other files too
        if not found:
            raise ProbeInputError("ca_bundle: the directory %s holds no readable certificate" % path)
        return found
    if not os.path.exists(path):
        raise ProbeInputError("ca_bundle: %s does not exist" % path)
    return _load(path, "ca_bundle")


def _pick_issuer(item, sources):
    """The first (name, candidates) source whose certificates hold the issuer of the item's leaf."""
    tried = []
    for name, candidates in sources:
        if not candidates:
            continue
        tried.append(name)
        issuer = certificates.find_issuer(item.leaf, candidates)
        if issuer is not None:
            item.issuer, item.issuer_source = issuer, name
            return
    item.issuer_problem = "the issuer (%s) of %s is in none of: %s" % (
        item.leaf.issuer.rfc4514_string(), item.path, ", ".join(tried) or "no issuer source at all (give ca_bundle)")


def _set_url(item, own_url, url_override, forced_url=None):
    """Precedence: the certificate's own url, the url option, SSLStaplingForceURL, the AIA extension."""
    for url, source in ((own_url, "item"), (url_override, "url"), (forced_url, "force_url"),
                        (certificates.ocsp_url(item.leaf), "certificate")):
        if url:
            item.url, item.url_source = url, source
            return


def check_url(url, what):
    try:
        ocsp_client.parse_url(url, what)
    except ocsp_client.OcspClientError as exc:
        raise ProbeInputError(str(exc))


def load_certificate_items(specs, ca_bundle_certs=(), url_override=None):
    """Items for the ``certificates`` option: [{path, issuer, url}]."""
    if url_override:
        check_url(url_override, "url")
    items = []
    for position, spec in enumerate(specs or []):
        label = "certificates[%d]" % position
        path = (spec or {}).get("path")
        if not path:
            raise ProbeInputError("%s: path is required" % label)
        chain = _load(path, label)
        item = CertificateItem(path, chain[0], [label])
        if spec.get("url"):
            check_url(spec["url"], "%s.url" % label)
        _set_url(item, spec.get("url"), url_override)
        if spec.get("issuer"):
            _pick_issuer(item, [("issuer file %s" % spec["issuer"], _load(spec["issuer"], "%s.issuer" % label))])
        else:
            _pick_issuer(item, [("the chain in %s" % path, chain[1:]), ("ca_bundle", list(ca_bundle_certs))])
        items.append(item)
    return items


# ---------------------------------------------------------------------------------------------- discovery


class StapleTarget(object):
    """A TLS endpoint to ask for its staple; from the config, vhosts and expectations come along."""

    def __init__(self, address, port, server_name, vhosts=(), expected=None, issuer_candidates=(), ocsp_url=None,
                 configured=None):
        self.address = address
        self.port = port
        self.server_name = server_name
        self.vhosts = list(vhosts)
        # expected: a staple is owed to clients (stapling on, or a Must-Staple certificate);
        # configured: the config switches stapling on, which is what the server will do once a reload settles
        self.expected = expected
        self.configured = configured
        self.issuer_candidates = list(issuer_candidates)
        # The URL Apache itself would ask (SSLStaplingForceURL); else the served certificate's AIA URL counts.
        self.ocsp_url = ocsp_url

    @property
    def label(self):
        shown = "[%s]" % self.address if ":" in self.address else self.address
        return "%s:%s%s" % (shown, self.port, " (SNI %s)" % self.server_name if self.server_name else "")


def split_vhost_address(text, default_port=443):
    """'*:443', '[::1]:8443', '192.0.2.1', '_default_:443' -> (address, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _sep, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _sep, port = text.partition(":")
    else:
        host, port = text, ""
    if port == "*" or not port:
        return host, default_port
    if not port.isdigit():
        raise ValueError("bad port in %r" % text)
    return host, int(port)


def connect_address(address, ip_version):
    """Where a client reaches a vhost that listens on a wildcard: the loopback of the family asked."""
    if address in WILDCARD_ADDRESSES:
        return "::1" if ip_version == "6" else "127.0.0.1"
    return address


def discover_on_host(host, ca_bundle_certs=(), url_override=None, ip_version="any"):
    """``discover_items`` for the SSL vhosts of ``host``'s config (an apache_host.ApacheHost). The facts are read
    without the certificates': the items load each certificate file themselves, and reading it for the facts
    too cost a second read of every certificate (about a second at 5,000 vhosts)."""
    facts = stapling_facts.stapling_facts(host.parse(), read_certificates=False)
    return discover_items(facts, ca_bundle_certs, url_override, ip_version)


def discover_items(facts, ca_bundle_certs=(), url_override=None, ip_version="any"):
    """(items, staple targets, skipped vhosts) for every SSL vhost in a config's stapling facts."""
    if url_override:
        check_url(url_override, "url")
    items = collections.OrderedDict()
    targets = collections.OrderedDict()
    skipped = []
    for vhost_facts in facts["vhosts"]:
        path = vhost_facts.get("certificate_file")
        if not path or vhost_facts.get("certificate_error"):
            skipped.append({"vhost": vhost_facts["id"],
                            "reason": vhost_facts.get("certificate_error") or "no SSLCertificateFile"})
            continue
        try:
            chain = certificates.load_certificates(path)
        except certificates.CertificateError as exc:
            skipped.append({"vhost": vhost_facts["id"], "reason": str(exc)})
            continue
        item = _discovered_item(vhost_facts, chain, ca_bundle_certs, url_override, items)
        _add_staple_targets(targets, vhost_facts, item, ip_version)
    return list(items.values()), list(targets.values()), skipped


def _discovered_item(vhost_facts, chain, ca_bundle_certs, url_override, items):
    path = vhost_facts["certificate_file"]
    forced = vhost_facts.get("force_url")
    key = (path, forced)
    timeout_value = vhost_facts.get("responder_timeout")
    try:
        responder_timeout = float(timeout_value) if timeout_value else APACHE_RESPONDER_TIMEOUT
    except ValueError:
        responder_timeout = APACHE_RESPONDER_TIMEOUT
    item = items.get(key)
    if item is None:
        item = CertificateItem(path, chain[0], [])
        _set_url(item, None, url_override, forced)
        ca_file = vhost_facts.get("ca_certificate_file")
        _pick_issuer(item, [
            ("the chain in %s" % path, chain[1:]),
            ("SSLCertificateChainFile %s" % vhost_facts.get("chain_file"),
             readable_certificates(vhost_facts.get("chain_file"))),
            ("SSLCACertificateFile %s" % ca_file, readable_certificates(ca_file)),
            ("ca_bundle", list(ca_bundle_certs)),
        ])
        items[key] = item
    item.sources.append(vhost_facts["id"])
    if item.responder_timeout is None or responder_timeout < item.responder_timeout:
        item.responder_timeout = responder_timeout
    return item


def _add_staple_targets(targets, vhost_facts, item, ip_version):
    configured = bool(vhost_facts.get("stapling"))
    expected = configured or certificates.is_must_staple(item.leaf)
    candidates = [item.issuer] if item.issuer is not None else []
    for text in vhost_facts.get("addresses") or []:
        try:
            address, port = split_vhost_address(text)
        except ValueError:
            continue
        address = connect_address(address, ip_version)
        key = (address, port, vhost_facts.get("server_name"))
        target = targets.get(key)
        if target is None:
            target = targets[key] = StapleTarget(address, port, vhost_facts.get("server_name"), issuer_candidates=candidates,
                                                 ocsp_url=vhost_facts.get("force_url"), configured=False)
        target.vhosts.append(vhost_facts["id"])
        target.expected = bool(target.expected) or expected
        target.configured = bool(target.configured) or configured


def targets_from_specs(specs):
    targets = []
    for position, spec in enumerate(specs or []):
        if not spec.get("address"):
            raise ProbeInputError("stapled_targets[%d]: address is required" % position)
        targets.append(StapleTarget(spec["address"], int(spec.get("port") or 443), spec.get("server_name")))
    return targets


# ---------------------------------------------------------------------------------------------- probing


def _fingerprint(certificate):
    return certificate.fingerprint(hashes.SHA256()).hex()


class ResponderGroup(object):
    """Every certificate that one responder URL answers for one issuer."""

    def __init__(self, url, issuer, settings):
        self.url = url
        self.issuer = issuer
        self.items = []
        self.by_serial = collections.OrderedDict()
        self.proxy = ocsp_client.proxy_for(url, settings.proxy, settings.use_proxy, settings.environ)
        endpoint = ocsp_client.parse_url(url)[1]
        # The responder itself, also through a proxy: what MAX_PER_RESPONDER protects.
        self.responder = (endpoint.host.lower(), endpoint.port)
        self.connect_host = ocsp_client.proxy_endpoint(self.proxy).host if self.proxy else endpoint.host
        self.connect_port = ocsp_client.proxy_endpoint(self.proxy).port if self.proxy else endpoint.port
        self.probes = {}
        self.exchanges = {}
        self.dns = None

    def add(self, item):
        self.items.append(item)
        self.by_serial.setdefault(item.leaf.serial_number, []).append(item)

    @property
    def representative(self):
        return self.items[0]

    def budget(self, settings, item=None):
        """(seconds, where it comes from) that latency is judged against, or (None, None)."""
        if settings.timeout_budget:
            return settings.timeout_budget, "timeout_budget"
        timeouts = [item.responder_timeout] if item is not None else [i.responder_timeout for i in self.items]
        timeouts = [value for value in timeouts if value is not None]
        if timeouts:
            return min(timeouts), "SSLStaplingResponderTimeout"
        return None, None

    def first_judged_probe(self):
        """The first probe, in family order, that got further than 'no address in this family'."""
        ordered = [self.probes[family] for family in sorted(self.probes)]
        for probe in ordered:
            if not probe.get("no_address"):
                return probe
        return ordered[0]

    def working_probe(self):
        """The first probe that got a successful OCSP envelope: the route for every other certificate."""
        for family in sorted(self.probes):
            probe = self.probes[family]
            if ((probe.get("ocsp") or {}).get("response_status") == "successful"
                    and not probe["ocsp"].get("parse_error")):
                return probe
        return None


def probe_families(ip_version):
    return {"any": ["any"], "4": ["4"], "6": ["6"], "both": ["4", "6"]}[ip_version]


class Runner(object):
    """One run: the groups, the thread pool, and the results as they come in."""

    def __init__(self, items, settings, targets=(), now=None, ca_bundle_certs=()):
        self.settings = settings
        self.items = list(items)
        self.targets = list(targets)
        self.now = now
        self.ca_bundle_certs = list(ca_bundle_certs)
        self.resolver = ocsp_client.Resolver(settings.timeout)
        self.groups = collections.OrderedDict()
        # Certificate requests waiting for a free place at their responder, and how many are under way there.
        self.waiting = collections.OrderedDict()
        self.in_flight = collections.Counter()
        self.unusable = {}
        self.staples = {}
        for item in self.items:
            self._place(item)

    def _place(self, item):
        if item.url is None or item.issuer is None:
            return
        try:
            ocsp_client.parse_url(item.url)
        except ocsp_client.OcspClientError as exc:
            self.unusable[id(item)] = str(exc)
            return
        key = (item.url, _fingerprint(item.issuer))
        if key not in self.groups:
            try:
                self.groups[key] = ResponderGroup(item.url, item.issuer, self.settings)
            except ocsp_client.OcspClientError as exc:  # e.g. an http_proxy in the environment that is no URL
                self.unusable[id(item)] = str(exc)
                return
        self.groups[key].add(item)

    def current_time(self):
        return self.now or datetime.datetime.now(datetime.timezone.utc)

    # ------------------------------------------------------------ tasks (run in the pool)

    def _addresses(self, host, port, family):
        """(addresses, dns facts, problem) for one family setting."""
        dns = self.resolver.lookup(host, port)
        if dns["error"]:
            return [], dns, dns["error"]
        addresses = dns["order"] if family == "any" else dns[family]
        if not addresses:
            return [], dns, "no IPv%s address for %s" % (family, host) if family != "any" else "no address"
        return addresses, dns, None

    def probe(self, group, family, item, addresses=None):
        """One request for ``item`` to the group's responder; plain facts with the DER answer read."""
        facts = {"family": None if family == "any" else family, "url": group.url, "proxy": group.proxy,
                 "timeout": self.settings.timeout, "subject": item.subject, "serial": item.serial}
        if addresses is None:
            addresses, group.dns, problem = self._addresses(group.connect_host, group.connect_port, family)
            if problem:
                # no_address: the name resolves, only not in this family (judged only when the family was asked)
                facts.update(dns_error=problem, dns_host=group.connect_host, connect=None,
                             no_address=not group.dns["error"])
                return facts
        nonce = ocsp_client.new_nonce() if self.settings.nonce else None
        _request, request_der = ocsp_client.build_request(item.leaf, group.issuer, nonce)
        exchange, body = ocsp_client.exchange(group.url, addresses, request_der, self.settings.method,
                                              self.settings.timeout, proxy=group.proxy, port=group.connect_port)
        facts.update(exchange)
        facts["family"] = _family_of(facts.get("address")) or facts["family"]
        facts["ocsp"] = None
        http = exchange.get("http") or {}
        if http.get("status") == 200 and not http.get("too_large"):  # a body over the bound was dropped unread
            facts["ocsp"] = ocsp_client.read_response(body, item.leaf, group.issuer, nonce, self.current_time())
        return facts

    def staple_client(self):
        """The client name each stapled entry reports; None when the staple cannot be asked for here."""
        if self.settings.stapled_check == "handshake":
            return staple_probe.STDLIB_SSL
        return self.settings.staple_client or staple_probe.staple_client()

    def staple(self, target):
        facts = {"target": target.label, "timeout": self.settings.timeout, "client": self.staple_client()}
        family = self.settings.ip_version if self.settings.ip_version in ("4", "6") else "any"
        addresses, _dns, problem = self._addresses(target.address, target.port, family)
        if problem:
            facts.update(dns_error=problem, dns_host=target.address, handshake="not_tried", connect=None)
            return facts
        if self.settings.stapled_check == "handshake":
            found = staple_probe.check_handshake(addresses, target.port, target.server_name, self.settings.timeout)
        else:
            found = self._fetch_settled(addresses, target)
        facts.update(found)
        facts["target"] = target.label
        return facts

    def _fetch_settled(self, addresses, target):
        """Right after a reload, workers of the old generation may still answer for a moment. With a settle
        time, a vhost whose answer disagrees with its config is asked again every SETTLE_INTERVAL seconds until
        it agrees or the time is up, instead of the whole check being repeated later after a fixed sleep."""
        deadline = time.monotonic() + self.settings.settle
        while True:
            found = staple_probe.fetch_staple(addresses, target.port, target.server_name, self.settings.timeout,
                                              client=self.settings.staple_client)
            if target.configured is None or _as_configured(found, target) or time.monotonic() >= deadline:
                return found
            time.sleep(SETTLE_INTERVAL)

    # ------------------------------------------------------------ the run

    def run(self):
        started = time.monotonic()
        hard_deadline = started + self.settings.deadline
        if self.targets and self.staple_client() is None:
            # Said once, before any thread starts, rather than as a traceback out of every stapled task.
            raise staple_probe.StapleProbeError(staple_probe.NO_CLIENT_MESSAGE)
        pool = ThreadPoolExecutor(max_workers=self.settings.max_workers, thread_name_prefix="ocsp-probe")
        pending = {}
        try:
            for group in self.groups.values():
                for family in probe_families(self.settings.ip_version):
                    task = pool.submit(self.probe, group, family, group.representative)
                    pending[task] = ("probe", group, family)
            for target in self.targets:
                pending[pool.submit(self.staple, target)] = ("staple", target, None)
            while pending:
                remaining = hard_deadline - time.monotonic()
                if remaining <= 0:
                    break
                done, _not_done = wait(list(pending), timeout=remaining, return_when=FIRST_COMPLETED)
                for task in done:
                    self._collect(pool, pending, task)
        finally:
            # Threads still running stop by their own socket timeouts; the report does not wait for them.
            # Work not started yet is cancelled one by one: asking shutdown() to cancel it needs Python 3.9.
            for task in pending:
                task.cancel()
            pool.shutdown(wait=False)
        for kind, subject, detail in pending.values():
            self._mark_late(kind, subject, detail)
        for queue in self.waiting.values():
            for group, _family, _item, _address, serial in queue:
                self._mark_late("certificate", group, serial)
        return self.report(round(time.monotonic() - started, 3))

    def _collect(self, pool, pending, task):
        kind, subject, detail = pending.pop(task)
        facts = task.result()
        if kind == "staple":
            self.staples[id(subject)] = facts
        elif kind == "probe":
            subject.probes[detail] = facts
            if len(subject.probes) == len(probe_families(self.settings.ip_version)):
                self._fan_out(pool, pending, subject)
        else:
            subject.exchanges[detail] = facts
            self.in_flight[subject.responder] -= 1
            self._submit_waiting(pool, pending, subject.responder)

    def _fan_out(self, pool, pending, group):
        """Every other certificate of the group, over the route the representative's probe found working."""
        route = group.working_probe()
        if route is None:
            return
        group.exchanges[group.representative.leaf.serial_number] = route
        family = route.get("family") or "any"
        queue = self.waiting.setdefault(group.responder, collections.deque())
        for serial, items in group.by_serial.items():
            if serial not in group.exchanges:
                queue.append((group, family, items[0], route["address"], serial))
        self._submit_waiting(pool, pending, group.responder)

    def _submit_waiting(self, pool, pending, responder):
        """Start waiting requests to one responder while fewer than max_per_responder are under way there."""
        queue = self.waiting.get(responder)
        while queue and self.in_flight[responder] < self.settings.max_per_responder:
            group, family, item, address, serial = queue.popleft()
            task = pool.submit(self.probe, group, family, item, [address])
            pending[task] = ("certificate", group, serial)
            self.in_flight[responder] += 1

    def _mark_late(self, kind, subject, detail):
        late = {"deadline_exceeded": self.settings.deadline, "url": None, "connect": {"result": None},
                "timeout": self.settings.timeout}
        if kind == "staple":
            self.staples[id(subject)] = dict(late, target=subject.label, handshake="not_finished",
                                             client=self.staple_client())
        elif kind == "probe":
            subject.probes[detail] = dict(late, url=subject.url, family=None if detail == "any" else detail)
        else:
            subject.exchanges[detail] = dict(late, url=subject.url)

    # ------------------------------------------------------------ the report

    def report(self, elapsed):
        now = self.current_time()
        responders = [self._responder_report(group, now) for group in self.groups.values()]
        by_url = {(r["url"], r["issuer_fingerprint"]): r for r in responders}
        certificate_reports = [self._certificate_report(item, now, by_url) for item in self.items]
        stapled = [self._staple_report(target, now) for target in self.targets]
        return {
            "responders": responders,
            "certificates": certificate_reports,
            "stapled": stapled,
            "summary": summarize(responders, certificate_reports, stapled, elapsed),
        }

    def _judge(self, facts, now, scope):
        return ocsp_verdict.judge_exchange(facts, now, self.settings.clock_skew, self.settings.require_nonce, scope)

    def _responder_report(self, group, now):
        budget, budget_source = group.budget(self.settings)
        probes = []
        for family in probe_families(self.settings.ip_version):
            facts = dict(group.probes[family], timeout_budget=budget, budget_source=budget_source)
            if self.settings.ip_version == "both" and facts.get("no_address"):
                verdict = ocsp_verdict.Verdict(None, None, facts["dns_error"] + ": not probed")
            else:
                verdict = self._judge(facts, now, "responder")
            probes.append(dict(exchange_report(facts), **verdict.as_dict()))
        judged = [probe for probe in probes if probe["healthy"] is not None]
        failing = [probe for probe in judged if not probe["healthy"]]
        if not judged:
            verdict = ocsp_verdict.failed("dns_failure", "; ".join(probe["message"] for probe in probes))
        elif failing:
            verdict = ocsp_verdict.Verdict(False, failing[0]["error_class"],
                                           "; ".join(probe["message"] for probe in failing))
        else:
            verdict = ocsp_verdict.Verdict(True, None, judged[0]["message"])
        latencies = [probe["latency"] for probe in probes if probe.get("latency") is not None]
        return dict({
            "url": group.url,
            "issuer": group.issuer.subject.rfc4514_string(),
            "issuer_fingerprint": _fingerprint(group.issuer),
            "proxy": group.proxy,
            "certificates": len(group.items),
            "representative": group.representative.path,
            "dns": _dns_report(group.dns),
            "probes": probes,
            "latency": max(latencies) if latencies else None,
            "responder_timeout": _min_timeout(group.items),
            "timeout_budget": budget,
        }, **verdict.as_dict())

    def _certificate_report(self, item, now, responders):
        report = {
            "path": item.path,
            "sources": item.sources,
            "subject": item.subject,
            "serial": item.serial,
            "issuer": item.leaf.issuer.rfc4514_string(),
            "issuer_source": item.issuer_source,
            "must_staple": certificates.is_must_staple(item.leaf),
            "ocsp_url": item.url,
            "url_source": item.url_source,
            "responder_timeout": item.responder_timeout,
            "probed": False,
            "family": None,
            "address": None,
            "latency": None,
            "ocsp": None,
        }
        if item.url is None:
            verdict = ocsp_verdict.Verdict(None, "no_ocsp_url", "%s names no OCSP responder and no url was given: "
                                                                "nothing to probe" % item.path)
        elif item.issuer is None:
            verdict = ocsp_verdict.failed("no_issuer", item.issuer_problem)
        elif id(item) in self.unusable:
            verdict = ocsp_verdict.failed("connect_failed", self.unusable[id(item)])
        else:
            verdict = self._probed_certificate(item, now, responders, report)
        report.update(verdict.as_dict())
        return report

    def _probed_certificate(self, item, now, responders, report):
        group = self.groups[(item.url, _fingerprint(item.issuer))]
        facts = group.exchanges.get(item.leaf.serial_number)
        if facts is None:
            responder = responders[(group.url, _fingerprint(group.issuer))]
            if item.leaf.serial_number == group.representative.leaf.serial_number:
                facts = group.first_judged_probe()
            else:
                return ocsp_verdict.Verdict(False, responder["error_class"],
                                            "not asked separately, the responder failed: %s" % responder["message"])
        budget, budget_source = group.budget(self.settings, item)
        facts = dict(facts, subject=item.subject, timeout_budget=budget, budget_source=budget_source)
        summary = exchange_report(facts)
        report.update(probed=True, family=summary["family"], address=summary["address"], latency=summary["latency"],
                      ocsp=summary["ocsp"])
        return self._judge(facts, now, "certificate")

    def _staple_report(self, target, now):
        facts = dict(self.staples.get(id(target)) or {})
        chain = facts.pop("chain", None) or []
        staple = facts.pop("staple", None)
        leaf = chain[0] if chain else None
        issuer = None
        if leaf is not None:
            issuer = certificates.find_issuer(leaf, chain[1:] + target.issuer_candidates + self.ca_bundle_certs)
            facts["ocsp_url"] = target.ocsp_url or certificates.ocsp_url(leaf)
        facts["expected"] = target.expected
        facts["issuer_found"] = issuer is not None
        facts["ocsp"] = ocsp_client.read_response(staple, leaf, issuer, None, now) if staple else None
        handshake_only = self.settings.stapled_check == "handshake"
        report = {
            "address": target.address,
            "port": target.port,
            "server_name": target.server_name,
            "vhosts": target.vhosts,
            "stapling_expected": target.expected,
            "connected_address": facts.get("address"),
            "client": facts.get("client"),
            "handshake": facts.get("handshake"),
            "handshake_error": facts.get("handshake_error"),
            "tls_version": facts.get("tls_version"),
            # null: not asked (stapled_check=handshake); a handshake that did not finish says nothing either way
            "stapled": None if handshake_only else bool(facts.get("stapled")),
            "certificate": _served_certificate(leaf),
            "ocsp": _ocsp_report(facts["ocsp"]),
            "latency": facts.get("latency"),
        }
        report.update(_staple_verdict(facts, now, self.settings, handshake_only).as_dict())
        report["status"] = staple_status(report)
        return report


# ---------------------------------------------------------------------------------------------- report helpers


def _as_configured(found, target):
    """Whether what a vhost served matches its config: a staple where stapling is on and the certificate names a
    responder, none where it is off. A handshake that failed is an answer too, not something to wait out. A
    Must-Staple certificate served without a staple is unhealthy, but if its config says off, waiting changes
    nothing: that is the settled answer."""
    if found.get("handshake") != "ok":
        return True
    stapled = bool(found.get("stapled"))
    if not target.configured:
        return not stapled
    chain = found.get("chain") or []
    return stapled or not (target.ocsp_url or (chain and certificates.ocsp_url(chain[0])))


def _family_of(address):
    if not address:
        return None
    return "6" if ":" in address else "4"


def _min_timeout(items):
    values = [item.responder_timeout for item in items if item.responder_timeout is not None]
    return min(values) if values else None


def _dns_report(dns):
    if dns is None:
        return None
    return {"host": dns["host"], "ipv4": list(dns["4"]), "ipv6": list(dns["6"]), "error": dns["error"]}


def _ocsp_report(ocsp):
    if not ocsp:
        return None
    report = {name: ocsp.get(name) for name in OCSP_FIELDS}
    report["parse_error"] = ocsp.get("parse_error")
    report["signature_error"] = ocsp.get("signature_error")
    report["cert_id_matches"] = ocsp.get("cert_id_matches")
    return report


def _served_certificate(leaf):
    if leaf is None:
        return None
    return {"subject": leaf.subject.rfc4514_string(), "serial": "%X" % leaf.serial_number,
            "ocsp_url": certificates.ocsp_url(leaf), "must_staple": certificates.is_must_staple(leaf)}


def exchange_report(facts):
    """The JSON-safe view of one exchange's facts."""
    connect = facts.get("connect") or {}
    http = facts.get("http")
    return {
        "family": facts.get("family"),
        "address": facts.get("address"),
        "port": facts.get("port"),
        "connect": {
            "result": connect.get("result") if connect else ("dns_failure" if facts.get("dns_error") else None),
            "latency": connect.get("latency"),
            "error": connect.get("error") or facts.get("dns_error"),
            "attempts": connect.get("attempts") or [],
        },
        "http": None if http is None else {key: http.get(key) for key in
                                           ("method", "status", "reason", "content_type", "location", "length",
                                            "body_kind", "title", "error", "timed_out", "received", "too_large")},
        "ocsp": _ocsp_report(facts.get("ocsp")),
        "latency": facts.get("latency"),
    }


def _staple_verdict(facts, now, settings, handshake_only):
    where = facts.get("target") or "the server"
    if facts.get("handshake") == "ok" and handshake_only:
        return ocsp_verdict.Verdict(True, None, "TLS handshake with %s completed (%s, %s s); the staple was not "
                                                "checked (stapled_check=handshake)" % (
                                                    where, facts.get("tls_version"), facts.get("latency")))
    if facts.get("handshake") == "ok" and facts.get("read_error"):
        # Our client's output, not the server, is at fault: no verdict rather than a wrong one.
        return ocsp_verdict.Verdict(None, None, "what %s sent cannot be judged: %s (client %s)" % (
            where, facts["read_error"], facts.get("client")))
    return ocsp_verdict.judge_staple(facts, now, settings.clock_skew)


def staple_status(report):
    if report["handshake"] != "ok":
        return "unreachable"
    if report["stapled"] is None or (report["stapled"] and report["healthy"] is None):
        return "not_checked"
    if not report["stapled"]:
        return "not_stapled"
    return "good" if report["healthy"] else "bad"


def summarize(responders, certificate_reports, stapled, elapsed):
    error_classes = collections.Counter(c["error_class"] for c in certificate_reports if c["error_class"])
    unhealthy_certificates = [c for c in certificate_reports if c["healthy"] is False]
    unhealthy_urls = []
    for responder in responders:
        if not responder["healthy"] and responder["url"] not in unhealthy_urls:
            unhealthy_urls.append(responder["url"])
    staple_states = collections.Counter(entry["status"] for entry in stapled)
    unhealthy_staples = [entry for entry in stapled if entry["healthy"] is False]
    healthy = not unhealthy_certificates and not unhealthy_urls and not unhealthy_staples
    summary = {
        "healthy": healthy,
        "certificates": len(certificate_reports),
        "healthy_certificates": sum(1 for c in certificate_reports if c["healthy"]),
        "unhealthy_certificates": len(unhealthy_certificates),
        "without_ocsp_url": error_classes.get("no_ocsp_url", 0),
        "responders": len(responders),
        "unhealthy_urls": unhealthy_urls,
        "error_classes": dict(error_classes),
        "stapling_good": staple_states.get("good", 0),
        "not_stapling": staple_states.get("not_stapled", 0),
        "stapling_bad": staple_states.get("bad", 0),
        "stapled_unreachable": staple_states.get("unreachable", 0),
        "staple_not_checked": staple_states.get("not_checked", 0),
        "elapsed": elapsed,
    }
    summary["message"] = summary_message(summary, unhealthy_certificates, unhealthy_staples)
    return summary


def summary_message(summary, unhealthy_certificates, unhealthy_staples):
    if summary["healthy"]:
        if summary["certificates"]:
            text = "all %d certificates with an OCSP URL are good and their responders healthy" % (
                summary["certificates"] - summary["without_ocsp_url"])
        else:  # only the staples were checked (ask_responders: false)
            text = "no responder asked"
        if summary["without_ocsp_url"]:
            text += "; %d without OCSP URL" % summary["without_ocsp_url"]
        if summary["stapling_good"] or summary["not_stapling"]:
            text += "; %d vhosts staple a good response, %d staple nothing" % (
                summary["stapling_good"], summary["not_stapling"])
        if summary["staple_not_checked"]:
            text += "; %d vhosts answer TLS, their staple not checked" % summary["staple_not_checked"]
        return text
    parts = []
    if unhealthy_certificates:
        counts = collections.Counter(c["error_class"] or "no verdict" for c in unhealthy_certificates)
        parts.append("%d of %d certificates unhealthy (%s)" % (
            len(unhealthy_certificates), summary["certificates"],
            ", ".join("%s: %d" % pair for pair in sorted(counts.items()))))
    if summary["unhealthy_urls"]:
        parts.append("unhealthy responders: %s" % ", ".join(summary["unhealthy_urls"]))
    if unhealthy_staples:
        parts.append("%d vhosts without a good staple: %s" % (
            len(unhealthy_staples), ", ".join(entry["message"] for entry in unhealthy_staples[:3])))
    return "; ".join(parts)


def run(items, settings, targets=(), now=None, ca_bundle_certs=()):
    """Probe everything and return the report (see the module's RETURN)."""
    return Runner(items, settings, targets, now, ca_bundle_certs).run()
