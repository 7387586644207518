# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A host's stapling census: per issuing CA, what its certificates allow and how many vhosts staple them.

Since Let's Encrypt and then HARICA stopped putting OCSP URLs in certificates, a host serves a mix: some
certificates can be stapled, others cannot, and stapling switched on for the latter only fills the error log.
The census is small on purpose (a few numbers per CA) because it travels from every host to the controller,
where the fleet report adds the hosts up.
"""

from __future__ import annotations

UNKNOWN_ISSUER = "unknown"


def host_census(vhosts):
    """The census of one host from its vhost facts.

    ``vhosts`` is the ``vhosts`` list of ``stapling_facts.stapling_facts()`` (what apache_stapling_info
    returns); each entry needs ``stapling``, ``force_url`` and ``certificate`` (None when unreadable, else a
    dict with ``issuer``, ``serial``, ``ocsp_url``, ``must_staple`` and ``sha1_fingerprint``).

    Returns a dict:

    - ``issuers``: one dict per issuing CA, sorted by name: ``issuer`` (the issuer's CN, else its full name),
      ``certificates`` (distinct certificates), ``with_ocsp_url``, ``must_staple`` (certificates with those),
      ``vhosts`` (vhosts serving one), ``vhosts_stapling`` (of those, the ones stapling is on for) and
      ``vhosts_stapling_without_ocsp_url`` (stapling on, yet nothing to ask: AH02218 at every start).
    - ``vhosts``, ``vhosts_stapling``: totals over the host's SSL vhosts.
    - ``vhosts_unknown_certificate``: vhosts whose certificate could not be read (counted under no CA).
    - ``stapling_configured``: stapling is on for at least one vhost.
    - ``stapling_serves_nothing``: it is, yet none of those vhosts can be stapled, as each serves a certificate
      without an OCSP URL and has no ``SSLStaplingForceURL``.
    """
    per_issuer = {}
    seen_certificates = {}  # issuer -> identities of the certificates counted for it
    unknown = 0
    stapling_vhosts = 0
    staplable_vhosts = 0
    for vhost in vhosts:
        certificate = vhost.get("certificate")
        stapling = bool(vhost.get("stapling"))
        stapling_vhosts += stapling
        if not certificate:
            unknown += 1
            continue
        can_ask = bool(certificate.get("ocsp_url") or vhost.get("force_url"))
        staplable_vhosts += stapling and can_ask
        issuer = issuer_name(certificate.get("issuer"))
        entry = per_issuer.setdefault(issuer, _empty_entry(issuer))
        entry["vhosts"] += 1
        entry["vhosts_stapling"] += stapling
        entry["vhosts_stapling_without_ocsp_url"] += stapling and not can_ask
        identity = certificate.get("sha1_fingerprint") or certificate.get("serial")
        known = seen_certificates.setdefault(issuer, set())
        if identity in known:
            continue
        known.add(identity)
        entry["certificates"] += 1
        entry["with_ocsp_url"] += bool(certificate.get("ocsp_url"))
        entry["must_staple"] += bool(certificate.get("must_staple"))
    return {
        "issuers": [per_issuer[name] for name in sorted(per_issuer)],
        "vhosts": len(vhosts),
        "vhosts_stapling": stapling_vhosts,
        "vhosts_unknown_certificate": unknown,
        "stapling_configured": stapling_vhosts > 0,
        "stapling_serves_nothing": stapling_vhosts > 0 and staplable_vhosts == 0,
    }


def _empty_entry(issuer):
    return {"issuer": issuer, "certificates": 0, "with_ocsp_url": 0, "must_staple": 0, "vhosts": 0,
            "vhosts_stapling": 0, "vhosts_stapling_without_ocsp_url": 0}


def issuer_name(issuer):
    """The CN of an RFC 4514 issuer name ("CN=R11,O=Let's Encrypt,C=US" -> "R11"), else the whole name."""
    if not issuer:
        return UNKNOWN_ISSUER
    for attribute in _rdn_attributes(issuer):
        kind, _sep, value = attribute.partition("=")
        if kind.strip().upper() in ("CN", "2.5.4.3") and value.strip():
            return value.strip()
    return issuer


def _rdn_attributes(name):
    """The ``type=value`` parts of an RFC 4514 string, split at commas and plus signs not escaped, unescaped."""
    parts = []
    current = []
    escaped = False
    for char in name:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",+":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts
