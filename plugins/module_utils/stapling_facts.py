# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The stapling facts of a parsed Apache config: server-scope settings and every SSL vhost.

For each SSL vhost: where it is, what it answers to, which certificate it serves and what that
certificate says (OCSP URL, issuer, expiry, Must-Staple), and whether stapling is in effect for it and
which directive decides that.
"""

from __future__ import annotations

import os
import re

from ansible_collections.fleet.stapling.plugins.module_utils import apache_config
from ansible_collections.fleet.stapling.plugins.module_utils.cryptography_floor import CertificateError


# Every mod_ssl stapling directive; all but SSLStaplingCache may also appear in a vhost.
STAPLING_DIRECTIVES = (
    "SSLUseStapling",
    "SSLStaplingCache",
    "SSLStaplingResponderTimeout",
    "SSLStaplingReturnResponderErrors",
    "SSLStaplingFakeTryLater",
    "SSLStaplingStandardCacheTimeout",
    "SSLStaplingErrorCacheTimeout",
    "SSLStaplingResponseTimeSkew",
    "SSLStaplingResponseMaxAge",
    "SSLStaplingForceURL",
)

# The socache provider in front of the colon, and the module that must be loaded for it.
SOCACHE_MODULES = {
    "shmcb": "socache_shmcb",
    "dbm": "socache_dbm",
    "memcache": "socache_memcache",
    "redis": "socache_redis",
    "dc": "socache_dc",
}


def resolve_path(config, path):
    """A path as httpd resolves it: relative to ServerRoot."""
    if not path:
        return path
    return os.path.normpath(os.path.join(config.server_root, path))


def is_on(value):
    return (value or "").strip().lower() == "on"


def is_ssl_vhost(config, vhost):
    return (config.vhost_value(vhost, "SSLEngine", "off") or "").lower() in ("on", "optional")


def vhost_names(config, vhost):
    """ServerName first, then every ServerAlias; the vhost's address when it has no name."""
    names = []
    own_name = config.inside(vhost, "ServerName")
    if own_name and own_name[-1].args:
        # ServerName may carry a scheme and a port: [scheme://]name[:port]
        names.append(own_name[-1].args[0].split("://")[-1].split(":")[0])
    for alias in config.inside(vhost, "ServerAlias"):
        names.extend(alias.args)
    return names


def socache_provider(cache_value):
    return (cache_value or "").split(":", 1)[0].strip().lower()


def socache_module(cache_value):
    """The module a cache argument needs, or None for providers we do not know."""
    return SOCACHE_MODULES.get(socache_provider(cache_value))


def stapling_decider(config, vhost):
    """The directive that decides stapling for a vhost: its own last SSLUseStapling, else the server's."""
    own = config.inside(vhost, "SSLUseStapling")
    if own:
        return own[-1], "vhost"
    server = config.server_scope("SSLUseStapling")
    if server:
        return server[-1], "server"
    return None, "default"


def md_domain_of(config, names):
    """The managed domain (a <MDomain> section, an MDomain directive, or None) that covers any of ``names``."""
    wanted = set(name.lower() for name in names)
    for domain in config.active("MDomain"):
        covered = set(arg.lower() for arg in domain.args if arg.lower() not in ("auto", "manual"))
        if covered & wanted:
            return domain
    return None


def md_stapling(config, names):
    """Whether mod_md staples a vhost with these names, which it does even with SSLUseStapling off (AH10177).

    MDStapling (default off) switches mod_md's stapling on, globally or inside an <MDomain>; with it on,
    MDStapleOthers (default on) makes mod_md staple the certificates it does not manage as well.
    """
    if not config.has_module("md"):
        return False
    domain = md_domain_of(config, names)
    if domain is not None and domain.is_section:
        own = config.inside(domain, "MDStapling")
        if own:
            return is_on(own[-1].first_arg())
    if not is_on(config.server_value("MDStapling", "off")):
        return False
    return domain is not None or is_on(config.server_value("MDStapleOthers", "on"))


def directive_facts(directive):
    return {"name": directive.name, "value": " ".join(directive.args), "file": directive.path,
            "line": directive.lineno}


def vhost_facts(config, vhost, ordinal, read_certificate=True, seen_certificates=None, reader=None, cache=None):
    """Facts of one vhost; ``ordinal`` is its position among the vhosts of its file, which edits never move.

    ``seen_certificates`` remembers certificate facts by file across the vhosts of one host: on shared
    hosts thousands of vhosts serve a few hundred certificates. ``reader`` (a CertificateReader) reads
    the chains and CA files they share once; ``cache`` (a CertificateFactsCache) keeps what unchanged
    files said in an earlier run.
    """
    names = vhost_names(config, vhost)
    decider, decided_by = stapling_decider(config, vhost)
    by_ssl = is_on(decider.first_arg() if decider else "off")
    by_md = md_stapling(config, names)
    cert_files = [resolve_path(config, d.first_arg()) for d in config.inside(vhost, "SSLCertificateFile")]
    chain_file = resolve_path(config, config.vhost_value(vhost, "SSLCertificateChainFile"))
    facts = {
        "id": "%s (%s)" % (names[0] if names else " ".join(vhost.args), vhost.location()),
        "key": "%s#%d" % (vhost.path, ordinal),
        "file": vhost.path,
        "line": vhost.lineno,
        "addresses": list(vhost.args),
        "server_name": names[0] if names else None,
        "aliases": names[1:],
        "certificate_file": cert_files[0] if cert_files else None,
        "certificate_files": cert_files,
        "chain_file": chain_file,
        "stapling": by_ssl or by_md,
        "stapling_engine": "mod_md" if by_md else ("mod_ssl" if by_ssl else "none"),
        "stapling_decided_by": decided_by,
        "stapling_directive": directive_facts(decider) if decider else None,
        "force_url": config.vhost_value(vhost, "SSLStaplingForceURL"),
        "responder_timeout": config.vhost_value(vhost, "SSLStaplingResponderTimeout"),
        "ca_certificate_file": resolve_path(config, config.vhost_value(vhost, "SSLCACertificateFile")),
        "certificate": None,
        "certificate_error": None,
    }
    if read_certificate and cert_files:
        files = (cert_files[0], chain_file, facts["ca_certificate_file"])
        seen = seen_certificates if seen_certificates is not None else {}
        if files not in seen:
            seen[files] = (cache.lookup(files, certificate_facts_or_error, reader) if cache is not None
                           else certificate_facts_or_error(files, reader))
        facts["certificate"], facts["certificate_error"] = seen[files]
    return facts


def _certificates():
    """The certificates module, loaded at the first certificate actually read: a run whose certificates' facts
    all come from the cache (certificate_cache) never loads cryptography's x509 code."""
    from ansible_collections.fleet.stapling.plugins.module_utils import certificates  # pylint: disable=import-outside-toplevel
    if not certificates.HAS_CRYPTOGRAPHY:  # the package loads (the modules checked its version) but not its x509
        raise CertificateError("cryptography cannot load its x509 support: %s"
                               % certificates.CRYPTOGRAPHY_IMPORT_ERROR.strip().splitlines()[-1])
    return certificates


class _ReaderOnDemand(object):
    """A certificates.CertificateReader, made when a certificate is first read (see _certificates)."""

    def __init__(self):
        self._reader = None

    def __getattr__(self, name):
        if self._reader is None:
            self._reader = _certificates().CertificateReader()
        return getattr(self._reader, name)


def certificate_facts_or_error(files, reader):
    """``certificate_facts`` of (certificate, chain, CA file) and None, or None and why they cannot be read."""
    try:
        return certificate_facts(*files, reader=reader), None
    except CertificateError as exc:
        return None, str(exc)


def certificate_facts(cert_file, chain_file, ca_file, reader=None):
    """What the served certificate says, and whether httpd will find its issuer (else AH02217)."""
    certificates = _certificates()
    reader = reader or certificates.CertificateReader()
    chain = reader.certificate_file(cert_file)
    leaf = chain[0]
    in_chain = chain[1:] + readable_certificates(chain_file, reader)
    facts = certificates.describe(leaf)
    facts["issuer_in_chain"] = reader.finds_issuer(leaf, in_chain)
    # the CA file is read only when the chain lacks the issuer, as its certificates are only needed then
    facts["issuer_found"] = facts["issuer_in_chain"] or reader.finds_issuer(leaf, readable_certificates(ca_file, reader))
    return facts


def readable_certificates(path, reader=None):
    """Certificates of a chain or CA file; an absent or unreadable one simply cannot supply the issuer."""
    if not path or not os.path.isfile(path):
        return []
    try:
        return reader.shared_file(path) if reader else _certificates().load_certificates(path)
    except CertificateError:
        return []


def server_facts(config):
    cache = config.server_scope("SSLStaplingCache")
    cache_value = cache[-1].first_arg() if cache else None
    needed_module = socache_module(cache_value) if cache_value else None
    return {
        "stapling": is_on(config.server_value("SSLUseStapling", "off")),
        "md_loaded": config.has_module("md"),
        "md_stapling": is_on(config.server_value("MDStapling", "off")) if config.has_module("md") else False,
        "stapling_cache": cache_value,
        "stapling_cache_module": needed_module,
        "stapling_cache_module_loaded": config.has_module(needed_module) if needed_module else None,
        "session_cache": config.server_value("SSLSessionCache"),
        "ssl_module_loaded": config.has_module("ssl"),
        "directives": [directive_facts(d) for name in STAPLING_DIRECTIVES for d in config.server_scope(name)],
    }


# Bytes one stapled response with its signer certificate takes in the cache, roughly.
RESPONSE_BYTES = 900
_SHMCB_SIZE = re.compile(r"\((\d+)\)\s*$")


def findings(config, server, vhosts):
    """Settings that work but hurt when a responder fails: each a code an audit can act on and a message."""
    found = []
    stapling_vhosts = [v for v in vhosts if v["stapling"]]
    if not stapling_vhosts:
        return found
    errors = config.server_value("SSLStaplingReturnResponderErrors", "on")
    fake = config.server_value("SSLStaplingFakeTryLater", "on")
    if is_on(errors) and is_on(fake):
        found.append({"code": "fake_try_later", "message": (
            "SSLStaplingReturnResponderErrors and SSLStaplingFakeTryLater are on (Apache's defaults): during a "
            "responder outage clients are stapled a made-up tryLater, which Firefox rejects; set both off")})
    timeout = config.server_value("SSLStaplingResponderTimeout", "10")
    if timeout.isdigit() and int(timeout) >= 10:
        found.append({"code": "long_responder_timeout", "message": (
            "SSLStaplingResponderTimeout is %s s: while a responder hangs, handshakes wait that long; 2 to 5 s "
            "is safer" % timeout)})
    size = _SHMCB_SIZE.search(server["stapling_cache"] or "")
    if size and socache_provider(server["stapling_cache"]) == "shmcb":
        needed = len(stapling_vhosts) * RESPONSE_BYTES
        if int(size.group(1)) < needed:
            found.append({"code": "cache_too_small", "message": (
                "SSLStaplingCache holds %s bytes, less than the %d bytes that %d stapling vhosts need: responses "
                "are evicted and fetched again during handshakes" % (size.group(1), needed, len(stapling_vhosts)))})
    if not server["stapling_cache"]:
        found.append({"code": "no_cache", "message": (
            "stapling is on without a server-scope SSLStaplingCache: httpd refuses to start at the next reload "
            "(AH01958)")})
    return found


def stapling_facts(config, read_certificates=True, seen_certificates=None, cache=None):
    """The facts of the whole config. ``seen_certificates``, a dict, carries what the certificates say from one
    call to the next within a run (a change never edits a certificate), so that they are read once; ``cache``
    (certificate_cache.CertificateFactsCache) carries it from one run to the next."""
    vhosts = []
    per_file = {}
    seen_certificates = {} if seen_certificates is None else seen_certificates
    reader = _ReaderOnDemand()
    with apache_config.cycle_collection_paused():
        for vhost in config.virtual_hosts():
            ordinal = per_file[vhost.path] = per_file.get(vhost.path, -1) + 1
            if is_ssl_vhost(config, vhost):
                vhosts.append(vhost_facts(config, vhost, ordinal, read_certificates, seen_certificates, reader, cache))
    server = server_facts(config)
    return {
        "server": server,
        "vhosts": vhosts,
        "findings": findings(config, server, vhosts),
        "files": list(config.files),
        "missing_includes": list(config.missing_includes),
        "warnings": list(config.warnings),
    }
