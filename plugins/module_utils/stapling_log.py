# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Diagnose OCSP stapling from Apache's own error logs: which logs, which AH codes, what to do about them.

Three steps, each usable alone:

* ``discover_error_logs(config)``: every ErrorLog the parsed config declares for the main server and for
  its SSL vhosts (a vhost without its own ErrorLog writes to the server's), resolved like httpd resolves them;
  piped loggers and syslog are kept with the reason they cannot be read.
* ``scan_log(source, window, ...)``: read the end of one log (and ``<log>.1``), pick the stapling lines out
  and tie each to the responder, certificate and vhost it names. Apache names the responder only on the
  connect and resolve lines, so the lines a fetch logs next from the same process and thread (AH01977,
  AH01980, AH01941, ...) inherit it; and AH02604 (which names the vhost) and the AH02217/AH02218 just before
  it (which name the certificate) lend each other what they name.
* ``report(scans, window)``: counts per AH code with meaning, cause and remedy (``STAPLING_CODES``), the
  responders named, and the summary flags a playbook branches on.

Importable without Ansible.
"""

from __future__ import annotations

import datetime
import os
import re

from ansible_collections.fleet.stapling.plugins.module_utils import apache_error_log, apache_host, stapling_facts
from ansible_collections.fleet.stapling.plugins.module_utils.apache_error_log import iso_local

# Apache's own default when no ErrorLog is set (DEFAULT_ERRORLOG in ``ctl -V``), relative to ServerRoot.
DEFAULT_ERROR_LOG = "logs/error_log"

# What one error log line can be about. ``startup``: setting certificates up when Apache starts or reloads;
# ``fetch``: asking the responder for a fresh response during a handshake; ``response``: checking the answer;
# ``server``: the stapling cache and its locks.
PHASES = ("startup", "fetch", "response", "server")

_TRANSPORT_NOTE = (" The same line is logged for client-certificate OCSP checks (SSLOCSPEnable), which use the "
                   "same HTTP client.")
_DISABLE_FOR_CA = ("If the responder stays broken, switch stapling off for that CA's sites "
                   "(playbooks/disable_stapling.yml with the responder's host as ocsp_hosts) and back on once it "
                   "answers again.")
_PROBE = "Probe the responder from this host (fleet.stapling.ocsp_probe checks DNS, connect and HTTP per address family)"


def _code(level, phase, meaning, cause, remedy):
    return {"level": level, "phase": phase, "meaning": meaning, "cause": cause, "remedy": remedy}


# Every stapling-related message of mod_ssl 2.4 (ssl_util_stapling.c, ssl_util_ocsp.c, ssl_engine_init.c),
# with the level Apache logs it at. Debug-level ones only show with LogLevel ssl:debug.
STAPLING_CODES = {
    # ------------------------------------------------------------ startup: setting a certificate up
    "AH02217": _code(
        "error", "startup", "Apache cannot find the issuer (intermediate CA) certificate of a server certificate, "
        "so it cannot ask for OCSP responses for it.",
        "The certificate file holds only the leaf, and neither SSLCertificateChainFile nor SSLCACertificateFile "
        "supplies the intermediate.",
        "Serve the full chain (leaf then intermediate in SSLCertificateFile) or point SSLCACertificateFile at a "
        "bundle holding the issuer (the stapling role deploys a checked one), run apachectl -t, reload, and check "
        "that AH02217 is gone; apache_stapling_info shows issuer_found for every vhost."),
    "AH02235": _code(
        "error", "startup", "Apache 2.4.7 and older (RHEL 7's 2.4.6) could not set stapling up for a server "
        "certificate.",
        "Almost always the missing issuer certificate that AH02217 just before it reports.",
        "Fix the chain as for AH02217: add the intermediate to the certificate file, SSLCertificateChainFile or "
        "SSLCACertificateFile, then reload."),
    "AH02604": _code(
        "error", "startup", "Apache gave up stapling for one certificate of a vhost (named vhost:port:index); "
        "that vhost is served without a staple.",
        "The line just before it says why: AH02217 (issuer missing), AH02218 or AH02814 (no OCSP URL) or "
        "AH02815 (no certificate ID).",
        "Fix what the preceding line reports; until then clients of this vhost ask the CA themselves."),
    "AH02567": _code(
        "error", "startup", "Apache gave up stapling for one certificate (older 2.4 wording of AH02604).",
        "The line just before it says why, usually AH02217 or AH02218.",
        "Fix what the preceding line reports."),
    "AH02218": _code(
        "error", "startup", "The certificate has no OCSP responder URL and no SSLStaplingForceURL is set: "
        "there is nothing to staple for it.",
        "CAs that gave up OCSP (Let's Encrypt since May 2025) issue certificates without a responder URL; "
        "Apache logs this at every start and reload.",
        "Harmless for such certificates: switch SSLUseStapling off for these vhosts "
        "(fleet.stapling.apache_stapling with vhosts) to stop the noise, or set SSLStaplingForceURL if the CA "
        "still runs a responder."),
    "AH02814": _code(
        "error", "startup", "A certificate shared by several vhosts has no OCSP URL, and this vhost sets no "
        "SSLStaplingForceURL.",
        "As AH02218, for the second and later vhosts that serve the same certificate.",
        "As AH02218: switch stapling off for these vhosts, or give them SSLStaplingForceURL."),
    "AH02815": _code(
        "error", "startup", "Apache could not build the OCSP certificate ID (issuer name and key hashes) for a "
        "certificate.",
        "A damaged or unusual issuer certificate in the chain, or an OpenSSL build that refuses SHA-1 digests.",
        "Check the chain (openssl verify -untrusted chain.pem cert.pem) and rebuild it from the CA's published "
        "intermediates."),
    "AH10177": _code(
        "debug", "startup", "mod_md took over stapling for a certificate; it staples even where SSLUseStapling is "
        "off.",
        "MDStapling on (for the domain, or for all certificates through MDStapleOthers).",
        "To stop stapling for it, switch MDStapling off as well; fleet.stapling.apache_stapling switches both."),
    # ------------------------------------------------------------ server: cache and locks
    "AH01958": _code(
        "emerg", "server", "Stapling is on but there is no stapling cache: Apache does not start.",
        "SSLUseStapling on without a server-scope SSLStaplingCache; apachectl -t does not catch it, the next "
        "restart or reload fails.",
        "Add SSLStaplingCache outside every <VirtualHost>, with the mechanism SSLSessionCache uses (shmcb: needs "
        "mod_socache_shmcb, dbm: mod_socache_dbm), then start Apache; apache_stapling_info's no_cache finding "
        "warns before a reload."),
    "AH01959": _code(
        "emerg", "server", "Apache could not create the stapling mutex and does not start.",
        "The directory of the ssl-stapling and ssl-stapling-refresh mutexes (DefaultRuntimeDir, or a Mutex "
        "directive) is missing or not writable.",
        "Check DefaultRuntimeDir and any Mutex ssl-stapling* directive: the directory must exist and be "
        "writable by the user Apache starts as."),
    "AH01872": _code(
        "emerg", "server", "The stapling cache could not be created: Apache exits.",
        "The SSLStaplingCache path is not writable, its module is not loaded, or the size is not accepted.",
        "Check the SSLStaplingCache argument (path relative to ServerRoot, size in parentheses) and that its "
        "socache module is loaded."),
    "AH01929": _code(
        "error", "server", "A fetched response could not be stored in the stapling cache, so it is fetched again "
        "on later handshakes.",
        "The cache is full or too small for the number of certificates.",
        "Enlarge the size in SSLStaplingCache (about 1 KB per stapled certificate; apache_stapling_info reports "
        "cache_too_small)."),
    "AH01928": _code(
        "error", "server", "A response is over 10 KB, too big for the stapling cache.",
        "The responder sends a long chain of signer certificates with every answer.",
        "Nothing to fix locally; report it to the CA, and switch stapling off for its sites if handshakes suffer."),
    "AH01945": _code(
        "error", "server", "The fetched response could not be cached (follows AH01928 or AH01929).",
        "As the line before it.",
        "Fix the cache as the line before it says."),
    "AH01931": _code(
        "error", "server", "A cached response is unreadable (length invalid).",
        "A damaged shared-memory cache.",
        "Restart Apache to start with an empty cache."),
    "AH01932": _code(
        "error", "server", "A cached response is unreadable (parse error).",
        "A damaged shared-memory cache.",
        "Restart Apache to start with an empty cache."),
    "AH01948": _code(
        "warn", "server", "A stapling lock could not be taken.",
        "Problems with the stapling mutex (its lock file or semaphore).",
        "Check the Mutex ssl-stapling* settings and the runtime directory."),
    "AH01949": _code(
        "warn", "server", "A stapling lock could not be released.",
        "Problems with the stapling mutex (its lock file or semaphore).",
        "Check the Mutex ssl-stapling* settings and the runtime directory; restart Apache if handshakes hang."),
    "AH01955": _code(
        "error", "fetch", "Renewing a response failed fatally: the TLS handshake is aborted with an alert.",
        "The responder URL cannot be used (AH01939, AH01940 or AH02621 before it) or the request could not be "
        "built.",
        "Fix the responder URL (SSLStaplingForceURL with an http:// URL) or switch stapling off for the vhost."),
    # ------------------------------------------------------------ fetch: asking the responder
    "AH01941": _code(
        "error", "fetch", "Apache asked the OCSP responder for a fresh response and got nothing usable back.",
        "The responder could not be reached or did not answer properly: the line the same process logged just "
        "before (AH01972, AH01974, AH01977, AH01980, AH01985, AH01988) says which.",
        _PROBE + ", check the CA's status page, and meanwhile keep clients from being stapled an error with "
        "SSLStaplingReturnResponderErrors off and SSLStaplingFakeTryLater off. " + _DISABLE_FOR_CA),
    "AH01972": _code(
        "error", "fetch", "The OCSP responder's host name does not resolve from this host.",
        "DNS failure, a resolver that cannot reach the internet, or a stale local DNS cache of the CA's rotating "
        "responder addresses." + _TRANSPORT_NOTE,
        "Resolve the name on the host (getent ahosts, dig A and AAAA), fix or flush the resolver cache (nscd, "
        "systemd-resolved, the control panel's DNS cache). " + _DISABLE_FOR_CA),
    "AH01973": _code(
        "debug", "fetch", "Apache is connecting to the OCSP responder it names (LogLevel ssl:debug only).",
        "Every fetch of a fresh response; it names the responder for the lines the fetch logs next.",
        "Nothing to do; with debug logging on, it tells which responder a later AH01977 or AH01985 was about."),
    "AH01974": _code(
        "error", "fetch", "Apache could not open a TCP connection to the OCSP responder (or proxy) it names.",
        "A network block (datacenter, firewall, egress rules), a broken IPv6 route to a responder with AAAA "
        "records, or the responder itself is down. (111) Connection refused: nothing listens; (101) Network is "
        "unreachable: routing; (110) or (70007): a timeout." + _TRANSPORT_NOTE,
        _PROBE + " or ping and ping6 it: if only IPv6 fails, fix or disable IPv6 for it; if other networks reach "
        "it, have the network or datacenter team check routing and firewalls; if nobody does, check the CA's "
        "status page. " + _DISABLE_FOR_CA),
    "AH01976": _code(
        "error", "fetch", "The OCSP request could not be sent after the connection was opened.",
        "The connection was reset or dropped (a firewall, a proxy or an overloaded responder)." + _TRANSPORT_NOTE,
        _PROBE + ". " + _DISABLE_FOR_CA),
    "AH01977": _code(
        "error", "fetch", "The responder accepted the connection but sent no answer line in time, or closed it.",
        "A hanging or overloaded responder, or a middlebox swallowing the request. (70007) The timeout specified "
        "has expired: SSLStaplingResponderTimeout ran out, and every handshake needing a fresh staple waited "
        "that long." + _TRANSPORT_NOTE,
        _PROBE + "; lower SSLStaplingResponderTimeout to 2 to 5 seconds so handshakes do not stall while it "
        "hangs. " + _DISABLE_FOR_CA),
    "AH01978": _code(
        "error", "fetch", "The responder's answer broke off while Apache read its header lines.",
        "A hanging or overloaded responder, or a middlebox cutting the connection." + _TRANSPORT_NOTE,
        _PROBE + "; lower SSLStaplingResponderTimeout to 2 to 5 seconds. " + _DISABLE_FOR_CA),
    "AH01979": _code(
        "error", "fetch", "The responder sent an HTTP header line too long to be an OCSP responder's.",
        "Something else answers in its place: a proxy, a captive portal or the wrong host." + _TRANSPORT_NOTE,
        "Fetch the responder URL from the host (curl -v) and see who answers. " + _DISABLE_FOR_CA),
    "AH01980": _code(
        "error", "fetch", "The responder answered with an HTTP error or no valid status line (it is in the "
        "message; '(none)' when nothing came back, right after AH01977).",
        "The responder is up but failing (HTTP 5xx), the URL is wrong (404), or a proxy or captive portal "
        "answers in its place." + _TRANSPORT_NOTE,
        _PROBE + ", compare with another network and check the CA's status page. " + _DISABLE_FOR_CA),
    "AH01982": _code(
        "error", "fetch", "The responder sent more header lines than Apache accepts.",
        "Something other than an OCSP responder answers." + _TRANSPORT_NOTE,
        "Fetch the responder URL from the host (curl -v) and see who answers. " + _DISABLE_FOR_CA),
    "AH01983": _code(
        "error", "fetch", "The responder's HTTP headers could not be read.",
        "The connection broke off or timed out during the headers." + _TRANSPORT_NOTE,
        _PROBE + ". " + _DISABLE_FOR_CA),
    "AH01985": _code(
        "error", "fetch", "Reading the responder's answer failed, usually a timeout after the headers "
        "((70007) The timeout specified has expired).",
        "A slow or stalled responder or network path; every handshake that needed a fresh staple waited "
        "SSLStaplingResponderTimeout." + _TRANSPORT_NOTE,
        _PROBE + "; lower SSLStaplingResponderTimeout to 2 to 5 seconds so handshakes do not stall. "
        + _DISABLE_FOR_CA),
    "AH01986": _code(
        "error", "fetch", "The responder's answer is bigger than Apache accepts.",
        "Something other than an OCSP responder answers (a proxy or portal page)." + _TRANSPORT_NOTE,
        "Fetch the responder URL from the host and see what comes back. " + _DISABLE_FOR_CA),
    "AH01988": _code(
        "error", "fetch", "What the responder sent is no OCSP response (the SSL Library Error lines after it give "
        "OpenSSL's reason).",
        "An HTML page from a proxy or captive portal, or a broken responder." + _TRANSPORT_NOTE,
        "Fetch the responder URL from the host and look at the body; fix the proxy path. " + _DISABLE_FOR_CA),
    "AH02321": _code(
        "error", "fetch", "The responder sent an empty answer.",
        "A broken responder or a proxy in between." + _TRANSPORT_NOTE,
        _PROBE + ". " + _DISABLE_FOR_CA),
    "AH01989": _code(
        "error", "fetch", "Apache could not encode the OCSP request.",
        "An OpenSSL failure on this host.",
        "Check the OpenSSL library mod_ssl is built against; switch stapling off until it is fixed."),
    "AH01939": _code(
        "error", "fetch", "The responder URL (in the certificate or SSLStaplingForceURL) cannot be parsed.",
        "A malformed OCSP URL.",
        "Set SSLStaplingForceURL to the CA's http:// responder URL, or switch stapling off for the vhost."),
    "AH01940": _code(
        "error", "fetch", "The responder URL is not http://; Apache fetches OCSP over plain HTTP only.",
        "An https:// (or other) OCSP URL in the certificate or SSLStaplingForceURL.",
        "Set SSLStaplingForceURL to the CA's http:// responder URL, or switch stapling off for the vhost."),
    "AH02621": _code(
        "error", "fetch", "No responder URL is known for the certificate at fetch time.",
        "A certificate without OCSP URL and no SSLStaplingForceURL.",
        "As AH02218: switch stapling off for the vhost or set SSLStaplingForceURL."),
    "AH01944": _code(
        "debug", "fetch", "The responder answered with an OCSP error status (tryLater, internalError, "
        "unauthorized, ...); only logged with LogLevel ssl:debug.",
        "tryLater or internalError: the responder is overloaded or broken; unauthorized: it does not serve this "
        "certificate (a wrong responder URL).",
        "unauthorized: check the certificate's OCSP URL and SSLStaplingForceURL; otherwise it is the CA's "
        "problem. " + _DISABLE_FOR_CA),
    # ------------------------------------------------------------ response: checking the answer
    "AH01934": _code(
        "error", "response", "The responder's answer is not a parsable basic OCSP response.",
        "A broken responder, or a proxy altering the answer.",
        _PROBE + ". " + _DISABLE_FOR_CA),
    "AH01935": _code(
        "error", "response", "The answer does not cover the certificate Apache asked about.",
        "A wrong or cross-signed issuer in the chain (the certificate ID is built from it), or a caching proxy "
        "handing back another certificate's answer.",
        "Check the issuer in the chain (openssl verify) and ask the responder directly (openssl ocsp -issuer "
        "... -cert ... -url ...)."),
    "AH01936": _code(
        "error", "response", "The answer's validity times are out of bounds (thisUpdate in the future or "
        "nextUpdate in the past, beyond SSLStaplingResponseTimeSkew, or older than SSLStaplingResponseMaxAge).",
        "This host's clock is wrong, or the responder serves stale or future-dated answers.",
        "Check the host's clock (timedatectl, NTP); if it is right the responder serves stale answers: report it "
        "to the CA. " + _DISABLE_FOR_CA),
    "AH01943": _code(
        "error", "response", "Apache rejected the answer it fetched and caches the failure for "
        "SSLStaplingErrorCacheTimeout.",
        "The line just before it says why (AH01934, AH01935, AH01936 or AH02969).",
        "Fix what the preceding line reports."),
    "AH02969": _code(
        "error", "response", "The responder reports the certificate as revoked or unknown (status, reason and "
        "serial are in the message).",
        "revoked: the CA revoked the certificate (key compromise, mis-issuance, ...); unknown: the responder does "
        "not know this serial (a wrong issuer or responder, or a brand-new certificate).",
        "revoked: replace the certificate now, clients refuse it; unknown: check the issuer in the chain and the "
        "responder URL, and give a brand-new certificate a few minutes."),
}

# Error-level codes of these phases mean a responder is failing right now, not a setup problem; but a revoked
# or unknown certificate (AH02969) is the responder working as it should.
RESPONDER_PHASES = frozenset(["fetch", "response"])
NOT_RESPONDER_FAILURES = frozenset(["AH02969"])

# Apache names the responder as 'host:port' (connect, send) or host (resolve), in quotes that a runbook
# may have turned typographic; error messages about the URL give the URL.
_QUOTES = u"'\"\u2018\u2019\u201c\u201d"
_RESPONDER_QUOTED = re.compile(u"(?:OCSP responder|proxy)\\s+[%s]([^%s]+)[%s]" % (_QUOTES, _QUOTES, _QUOTES))
_RESPONDER_RESOLVE = re.compile(u"could not resolve address of (?:OCSP responder|proxy)\\s+[%s]?([^\\s%s]+)"
                                % (_QUOTES, _QUOTES))
_URL = re.compile(u"(https?://[^\\s%s]+)" % _QUOTES)
_CERT_INFO = re.compile(r"\[subject: (?P<subject>.*?) / issuer: (?P<issuer>.*?) / serial: (?P<serial>[^ /\]]*)")
_SERIAL = re.compile(r"for serial number ([0-9A-Fa-f:]+)")
_CERT_KEY = re.compile(r"Unable to configure certificate (\S+) for stapling")
_FOR_SERVER = re.compile(r"configured for server (\S+)")
_KEY_ID = re.compile(r"^(.+:\d+):\d+$")

# A fetch ends with one of these; the responder the process named before it is forgotten afterwards.
_FETCH_ENDS = frozenset(["AH01941", "AH01943", "AH01944", "AH01955"])
# Lines that name the vhost (AH02604) and the lines before them that name the certificate.
_VHOST_LINES = frozenset(["AH02604", "AH02567", "AH02235"])
_CERTIFICATE_LINES = frozenset(["AH02217", "AH02218", "AH02814", "AH02815"])
# How long a named responder is lent to later lines of the same process and thread.
CONTEXT_SECONDS = 120
# At most this many distinct values of a kind are reported per code.
MAX_VALUES = 20


class StaplingLogError(Exception):
    """Bad input for the log scan; the message says what to give instead."""


# ------------------------------------------------------------------ which logs


class LogSource(object):
    """One error log to read: where it is declared, who writes to it, and whether it is a file at all."""

    def __init__(self, path, kind="file", origin="config", reason=None):
        self.path = path
        self.kind = kind  # file, piped, syslog
        self.origin = origin  # config, default, option
        self.reason = reason
        self.declared_by = []
        self.vhosts = []

    def as_dict(self):
        return {"path": self.path, "kind": self.kind, "origin": self.origin,
                "declared_by": list(self.declared_by), "vhosts": list(self.vhosts)}


def error_log_target(config, value):
    """(kind, path) for an ErrorLog argument: a file resolved against ServerRoot, a pipe, or syslog."""
    value = (value or "").strip()
    if value.startswith("|"):
        return "piped", value
    if value == "syslog" or value.startswith("syslog:"):
        return "syslog", value
    return "file", stapling_facts.resolve_path(config, value)


def _why_not_readable(kind, value):
    if kind == "piped":
        return ("piped to a program (%s): read the files that program writes by passing them in logs" % value)
    return ("sent to syslog (%s): read it with journalctl or in the syslog files, or pass those in logs" % value)


def _vhost_label(config, vhost):
    names = stapling_facts.vhost_names(config, vhost)
    return names[0] if names else " ".join(vhost.args)


def discover_error_logs(config, default_error_log=DEFAULT_ERROR_LOG):
    """Every error log the config sends SSL vhosts' messages to, server's first; one entry per target.

    Only SSL vhosts matter: stapling lines go to the log of the vhost whose certificate is set up or stapled,
    or of the connection's default vhost for its address, which on a TLS port is an SSL vhost too.
    """
    sources = {}
    server_declared = config.server_scope("ErrorLog")
    if server_declared:
        server = _source_for(config, sources, server_declared[-1].first_arg(""), "config")
        server.declared_by.append(_declaration(server_declared[-1], "server", None))
    else:
        server = _source_for(config, sources, default_error_log, "default")
    for vhost in config.virtual_hosts():
        if not stapling_facts.is_ssl_vhost(config, vhost):
            continue
        label = _vhost_label(config, vhost)
        own = config.inside(vhost, "ErrorLog")
        if not own:
            server.vhosts.append(label)
            continue
        source = _source_for(config, sources, own[-1].first_arg(""), "config")
        source.declared_by.append(_declaration(own[-1], "vhost", label))
        source.vhosts.append(label)
    return list(sources.values())


def _source_for(config, sources, value, origin):
    kind, path = error_log_target(config, value)
    if path not in sources:
        reason = None if kind == "file" else _why_not_readable(kind, path)
        sources[path] = LogSource(path, kind, origin, reason)
    return sources[path]


def _declaration(directive, scope, vhost):
    return {"file": directive.path, "line": directive.lineno, "scope": scope, "vhost": vhost}


def add_explicit_logs(sources, paths, server_root=None):
    """Add the ``logs`` a user named (relative ones against ServerRoot when known); known ones are kept once."""
    known = dict((source.path, source) for source in sources)
    merged = list(sources)
    for path in paths or ():
        if not os.path.isabs(path) and server_root:
            path = os.path.join(server_root, path)
        path = os.path.normpath(path)
        if path in known:
            continue
        known[path] = LogSource(path, "file", "option")
        merged.append(known[path])
    return merged


# ------------------------------------------------------------------ the time window


class Window(object):
    """``since``: what counts and is reported; ``recent``: what counts as happening now. Both are naive
    local datetimes, as Apache's timestamps are; the log is read back to the earlier of the two."""

    def __init__(self, now, since, recent):
        self.now = now
        self.since = since
        self.recent = recent

    @classmethod
    def parse(cls, now, since_text, recent_text):
        try:
            since = apache_error_log.parse_since(since_text, now, "since")
            recent = apache_error_log.parse_since(recent_text, now, "recent")
        except apache_error_log.ErrorLogError as exc:
            raise StaplingLogError(str(exc))
        return cls(now, since, recent)

    @property
    def start(self):
        return min(self.since, self.recent)

    def as_dict(self):
        return {"now": iso_local(self.now), "since": iso_local(self.since), "recent": iso_local(self.recent)}


# ------------------------------------------------------------------ one line's worth


class Event(object):
    """A stapling line with what it names; linking may add what neighbouring lines name."""

    def __init__(self, line, log_path):
        self.line = line
        self.log_path = log_path
        self.responders = responders_named(line.message)
        self.certificates = certificates_named(line.message)
        self.vhosts = vhosts_named(line)
        self.details = []

    @property
    def code(self):
        return self.line.code

    @property
    def level(self):
        """The level the line carries; the table's when the ErrorLogFormat leaves it out."""
        return self.line.level or STAPLING_CODES[self.code]["level"]

    @property
    def is_error(self):
        return self.level in apache_error_log.ERROR_LEVELS


def responders_named(message):
    found = []
    for pattern in (_RESPONDER_QUOTED, _RESPONDER_RESOLVE, _URL):
        for match in pattern.finditer(message):
            name = match.group(1).strip()
            if name and name not in found:
                found.append(name)
        if found:
            break
    return found


def certificates_named(message):
    found = []
    for match in _CERT_INFO.finditer(message):
        found.append({"subject": match.group("subject"), "issuer": match.group("issuer"),
                      "serial": match.group("serial")})
    for match in _SERIAL.finditer(message):
        found.append({"subject": None, "issuer": None, "serial": match.group(1)})
    return found


def vhosts_named(line):
    """The vhosts a line names as Apache prints them (``name:port``; AH02604's trailing certificate index is
    dropped), and the server a ``[%v]`` ErrorLogFormat field names."""
    found = []
    for pattern in (_CERT_KEY, _FOR_SERVER):
        for match in pattern.finditer(line.message):
            key = match.group(1)
            indexed = _KEY_ID.match(key)
            found.append(indexed.group(1) if indexed else key)
    if line.server and line.server not in found:
        found.append(line.server)
    return found


def stapling_events(lines, log_path):
    """The stapling lines among parsed ``lines`` as events, linked: what one line names is lent to the lines
    of the same fetch or the same certificate set-up, and OpenSSL's detail lines join the event before them."""
    events = []
    named_responder = {}  # (pid, tid) -> (time, responders) of the last line naming a responder
    pending_setup = {}  # pid -> the last AH02217/AH02218/... event, waiting for its AH02604
    last_event = {}  # (pid, tid) -> the last stapling event, for SSL library details
    for line in lines:
        thread = (line.pid, line.tid)
        if line.code not in STAPLING_CODES:
            # OpenSSL's reasons follow the stapling line they explain at once; any other line ends that.
            previous = last_event.pop(thread, None)
            if previous is not None and _is_detail_of(line, previous):
                _add_unique(previous.details, line.message)
                last_event[thread] = previous
            continue
        event = Event(line, log_path)
        events.append(event)
        if line.pid is None:
            continue  # a format without [pid]: which lines belong together cannot be told
        last_event[thread] = event
        if STAPLING_CODES[event.code]["phase"] in RESPONDER_PHASES:
            _lend_responder(event, thread, named_responder)
        if event.code in _CERTIFICATE_LINES:
            pending_setup[line.pid] = event
        elif event.code in _VHOST_LINES:
            setup = pending_setup.pop(line.pid, None)
            if setup is not None:
                _merge_names(setup, event)
    return events


def _is_detail_of(line, event):
    return (line.code is None and line.message.startswith("SSL Library Error")
            and _close_in_time(event.line.time, line.time, seconds=1))


def _lend_responder(event, thread, named_responder):
    if event.responders:
        named_responder[thread] = (event.line.time, event.responders)
    else:
        known = named_responder.get(thread)
        if known is not None and _close_in_time(known[0], event.line.time):
            event.responders = list(known[1])
    if event.code in _FETCH_ENDS:
        named_responder.pop(thread, None)


def _close_in_time(earlier, later, seconds=CONTEXT_SECONDS):
    if earlier is None or later is None:
        return earlier is None and later is None
    return abs((later - earlier).total_seconds()) <= seconds


def _merge_names(setup, vhost_event):
    for vhost in vhost_event.vhosts:
        _add_unique(setup.vhosts, vhost)
    for certificate in setup.certificates:
        _add_unique(vhost_event.certificates, certificate)


def _add_unique(values, value):
    if value not in values and len(values) < MAX_VALUES:
        values.append(value)


# ------------------------------------------------------------------ reading one log


class LogScan(object):
    """What reading one log gave: its report entry and the stapling events within the window."""

    def __init__(self, source):
        self.source = source
        self.readable = source.kind == "file"
        self.reason = source.reason
        self.files = []
        self.lines = 0
        self.unparsed_lines = 0
        self.untimed_lines = 0
        self.first_time = None
        self.covers_window = True
        self.events = []


def scan_log(source, window, max_bytes, rotated=False):
    """Read ``source`` (and ``<path>.1`` first with ``rotated``), keep the stapling events since
    ``window.start``."""
    scan = LogScan(source)
    if source.kind != "file":
        return scan
    paths = [source.path + ".1", source.path] if rotated else [source.path]
    parsed = []
    for path in paths:
        try:
            tail = _read(path, max_bytes)
        except OSError as exc:
            if path != source.path:
                continue  # no rotated file: nothing older to read
            scan.readable = False
            scan.reason = _os_reason(exc)
            return scan
        if tail is None:
            if path != source.path:
                continue
            scan.readable = False
            scan.reason = "not a regular file"
            return scan
        scan.files.append({"path": path, "size": tail.size, "bytes_read": tail.bytes_read,
                           "truncated": tail.truncated})
        parsed.extend(_parse_lines(scan, tail))
    # The oldest file read from its first byte covers everything it holds; a cut one only back to its first line.
    oldest_cut = scan.files[0]["truncated"]
    scan.covers_window = not oldest_cut or (scan.first_time is not None and scan.first_time <= window.start)
    events = stapling_events(parsed, source.path)
    scan.events = [event for event in events if event.line.time is not None and event.line.time >= window.start]
    return scan


def _read(path, max_bytes):
    """The tail of a regular file; None for anything else (a FIFO, /dev/stderr, a directory)."""
    if not os.path.isfile(path):
        if not os.path.exists(path):
            raise OSError(2, "No such file or directory", path)
        return None
    return apache_error_log.read_tail(path, max_bytes)


def _os_reason(exc):
    if exc.errno == 2:
        return "does not exist (nothing logged there yet, or the path is wrong)"
    if exc.errno == 13:
        return "permission denied for uid %d (run the module with become)" % os.getuid()
    return exc.strerror or str(exc)


def _parse_lines(scan, tail):
    parsed = []
    for text in tail.lines:
        if not text.strip():
            continue
        scan.lines += 1
        line = apache_error_log.parse_line(text)
        if line is None:
            scan.unparsed_lines += 1
            continue
        if line.time is None:
            scan.untimed_lines += 1
        elif scan.first_time is None or line.time < scan.first_time:
            scan.first_time = line.time
        parsed.append(line)
    return parsed


# ------------------------------------------------------------------ the report


class _CodeStats(object):
    def __init__(self, code):
        self.code = code
        self.count = 0
        self.recent_count = 0
        self.first_seen = None
        self.last_seen = None
        self.last_message = None
        self.levels = []
        self.responders = []
        self.certificates = []
        self.vhosts = []
        self.reasons = []
        self.details = []
        self.logs = []

    def add(self, event, window):
        time = event.line.time
        if time >= window.recent:
            self.recent_count += 1
        if time < window.since:
            return
        self.count += 1
        if self.first_seen is None or time < self.first_seen:
            self.first_seen = time
        if self.last_seen is None or time >= self.last_seen:
            self.last_seen = time
            self.last_message = event.line.text
        _add_unique(self.levels, event.level)
        for values, new in ((self.responders, event.responders), (self.certificates, event.certificates),
                            (self.vhosts, event.vhosts), (self.details, event.details),
                            (self.logs, [event.log_path])):
            for value in new:
                _add_unique(values, value)
        if event.line.reason:
            _add_unique(self.reasons, event.line.reason)

    def as_dict(self, with_table=True):
        entry = {"code": self.code, "count": self.count, "recent_count": self.recent_count,
                 "first_seen": iso_local(self.first_seen), "last_seen": iso_local(self.last_seen),
                 "levels": self.levels, "responders": self.responders, "certificates": self.certificates,
                 "vhosts": self.vhosts, "reasons": self.reasons, "details": self.details,
                 "last_message": self.last_message}
        if with_table:
            entry.update(STAPLING_CODES[self.code])
            entry["logs"] = self.logs
        return entry


def _code_stats(events, window):
    stats = {}
    for event in events:
        if event.code not in stats:
            stats[event.code] = _CodeStats(event.code)
        stats[event.code].add(event, window)
    return sorted(stats.values(), key=lambda item: (item.last_seen or datetime.datetime.min, item.code), reverse=True)


def log_entry(scan, window):
    entry = scan.source.as_dict()
    entry.update(readable=scan.readable, reason=scan.reason, files=scan.files, lines=scan.lines,
                 unparsed_lines=scan.unparsed_lines, untimed_lines=scan.untimed_lines,
                 covers_since=scan.covers_window, read_from=iso_local(scan.first_time),
                 codes=dict((item.code, item.as_dict(with_table=False)) for item in _code_stats(scan.events, window)))
    return entry


def report(scans, window, known=None):
    """The module's result: logs, codes (with the table's meaning, cause and remedy), responders, summary.

    ``known`` (a ConfigNames) tells which vhosts staple from a responder and serve a serial, when the
    certificates could be read.
    """
    known = known or ConfigNames()
    events = sorted((event for scan in scans for event in scan.events), key=lambda event: event.line.time)
    codes = _code_stats(events, window)
    responders = _responder_entries(events, window, known)
    code_entries = [item.as_dict() for item in codes if item.count or item.recent_count]
    for entry in code_entries:
        entry["certificates"] = [dict(certificate, vhosts=known.vhosts_serving(certificate["serial"]))
                                 for certificate in entry["certificates"]]
    return {
        "window": window.as_dict(),
        "logs": [log_entry(scan, window) for scan in scans],
        "codes": code_entries,
        "responders": responders,
        "summary": _summary(scans, events, codes, code_entries, responders, window),
        "warnings": _warnings(scans),
    }


def _responder_entries(events, window, known):
    entries = {}
    for event in events:
        if event.line.time < window.since:
            continue
        for name in event.responders:
            entry = entries.setdefault(name, {"name": name, "count": 0, "recent_count": 0, "codes": [],
                                              "first_seen": event.line.time, "last_seen": event.line.time,
                                              "vhosts": known.vhosts_of_responder(name)})
            entry["count"] += 1
            entry["recent_count"] += 1 if event.line.time >= window.recent else 0
            entry["last_seen"] = event.line.time
            _add_unique(entry["codes"], event.code)
    for entry in entries.values():
        entry["first_seen"] = iso_local(entry["first_seen"])
        entry["last_seen"] = iso_local(entry["last_seen"])
    return sorted(entries.values(), key=lambda entry: entry["name"])


def _summary(scans, events, codes, code_entries, responders, window):
    in_since = [event for event in events if event.line.time >= window.since]
    recent_errors = [event for event in events if event.line.time >= window.recent and event.is_error]
    last_error = next((event for event in reversed(in_since) if event.is_error), None)
    return {
        "stapling_errors_recent": bool(recent_errors),
        "responder_errors_recent": any(is_responder_failure(event.code) for event in recent_errors),
        "counts": dict((item.code, item.count) for item in codes if item.count),
        "recent_counts": dict((item.code, item.recent_count) for item in codes if item.recent_count),
        "responders": [entry["name"] for entry in responders],
        "vhosts": _vhost_names(code_entries),
        "first_seen": iso_local(in_since[0].line.time) if in_since else None,
        "last_seen": iso_local(in_since[-1].line.time) if in_since else None,
        "last_error": _event_dict(last_error),
        "logs_read": sum(1 for scan in scans if scan.readable),
        "unreadable_logs": [scan.source.path for scan in scans if not scan.readable],
        "unparsed_lines": sum(scan.unparsed_lines for scan in scans),
        "message": _message(codes, responders, window, bool(recent_errors)),
    }


def is_responder_failure(code):
    return STAPLING_CODES[code]["phase"] in RESPONDER_PHASES and code not in NOT_RESPONDER_FAILURES


def _vhost_names(code_entries):
    """Server names from what the lines name (``name:port`` without the port) and from the serials they name."""
    names = []
    for entry in code_entries:
        for vhost in entry["vhosts"]:
            _add_unique(names, vhost.rsplit(":", 1)[0] if re.search(r":\d+$", vhost) else vhost)
        for certificate in entry["certificates"]:
            for vhost in certificate["vhosts"]:
                _add_unique(names, vhost)
    return sorted(names)


def _event_dict(event):
    if event is None:
        return None
    return {"code": event.code, "time": iso_local(event.line.time), "level": event.level,
            "message": event.line.text, "log": event.log_path, "responders": event.responders}


def _message(codes, responders, window, recent):
    counted = [item for item in codes if item.count]
    if not counted:
        return "no stapling messages since %s" % iso_local(window.since)
    parts = ", ".join("%s x%d" % (item.code, item.count) for item in counted)
    text = "%d stapling messages since %s: %s" % (sum(item.count for item in counted), iso_local(window.since),
                                                  parts)
    if responders:
        text += "; responders named: %s" % ", ".join(entry["name"] for entry in responders)
    if recent:
        text += "; errors logged since %s (recent)" % iso_local(window.recent)
    return text


def _warnings(scans):
    warnings = []
    for scan in scans:
        if not scan.readable:
            warnings.append("%s: not read: %s" % (scan.source.path, scan.reason))
        elif not scan.covers_window:
            warnings.append("%s: max_bytes reached back only to %s, after the start of the window; raise max_bytes "
                            "to see older lines" % (scan.source.path, iso_local(scan.first_time) or "a line without "
                                                    "a time"))
        if scan.untimed_lines:
            warnings.append("%s: %d lines carry no time (an ErrorLogFormat without %%t?) and were not counted"
                            % (scan.source.path, scan.untimed_lines))
    return warnings


# ------------------------------------------------------------------ responders in the config


def responder_key(url):
    """``host[:port]`` of a responder URL the way Apache names it in AH01974 (default port 80 left out)."""
    text = (url or "").strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0].lower()
    if text.endswith(":80"):
        text = text[:-3]
    return text


class ConfigNames(object):
    """What the config's certificates tell about the names in log lines: the vhosts that staple from a responder
    and the vhosts that serve a serial. Built from stapling_facts' vhost entries; empty without them."""

    def __init__(self, vhost_facts=()):
        self.by_responder = {}
        self.by_serial = {}
        for vhost in vhost_facts:
            label = vhost.get("server_name") or vhost.get("id")
            certificate = vhost.get("certificate") or {}
            # SSLStaplingForceURL wins over the certificate's OCSP URL, as in httpd.
            url = vhost.get("force_url") or certificate.get("ocsp_url")
            if url:
                _add_name(self.by_responder, responder_key(url), label)
            if certificate.get("serial"):
                _add_name(self.by_serial, serial_key(certificate["serial"]), label)

    def vhosts_of_responder(self, name):
        """The vhosts of a responder as a log line names it: ``host:port`` exactly, or a bare host (AH01972
        names no port: a name that does not resolve fails for every port of that host)."""
        key = responder_key(name)
        if ":" in name:  # a port or a URL: that responder exactly
            return list(self.by_responder.get(key, []))
        names = []
        for responder, vhosts in sorted(self.by_responder.items()):
            if responder.split(":", 1)[0] == key:
                names.extend(vhost for vhost in vhosts if vhost not in names)
        return names

    def vhosts_serving(self, serial):
        return list(self.by_serial.get(serial_key(serial), [])) if serial else []


def _add_name(index, key, name):
    names = index.setdefault(key, [])
    if name not in names:
        names.append(name)


def serial_key(serial):
    """A serial as hex without colons or leading zeros: Apache pads it, the certificate facts do not."""
    return serial.replace(":", "").upper().lstrip("0") or "0"


def code_table():
    """The table as a list, for documentation and tests."""
    return [dict(STAPLING_CODES[code], code=code) for code in sorted(STAPLING_CODES)]


# ------------------------------------------------------------------ the whole run


def diagnose(params, run, now, read_certificates=True):
    """The module's work: find the logs (the config's, unless ``discover`` is off, plus ``logs``), scan them,
    report. ``params`` holds the module options, ``run`` runs ctl (apache_host.module_runner), ``now`` is the
    host's naive local time. ``read_certificates`` maps responders to vhosts (needs cryptography)."""
    window = Window.parse(now, params["since"], params["recent"])
    if params["max_bytes"] < 1:
        raise StaplingLogError("max_bytes must be a positive number of bytes, not %d" % params["max_bytes"])
    result = {"apache_version": None, "config_file": None, "server_root": None}
    sources = []
    known = ConfigNames()
    if params["discover"]:
        host = apache_host.discover_from_params(run, params)
        config = host.parse()
        default_log = host.compile_settings.get("DEFAULT_ERRORLOG")
        sources = discover_error_logs(config, default_log if isinstance(default_log, str) else DEFAULT_ERROR_LOG)
        if read_certificates:
            known = ConfigNames(stapling_facts.stapling_facts(config)["vhosts"])
        result.update(apache_version=host.version_string, config_file=host.config_file,
                      server_root=config.server_root)
    sources = add_explicit_logs(sources, params["logs"], result["server_root"])
    if not sources:
        raise StaplingLogError("no log to read: give logs, or leave discover on to read the ErrorLog files of the "
                               "Apache config")
    scans = [scan_log(source, window, params["max_bytes"], params["rotated"]) for source in sources]
    result.update(report(scans, window, known))
    return result
