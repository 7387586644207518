# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Putting a good response in mod_md's store before a Must-Staple vhost moves to it.

A Must-Staple certificate served without a staple is refused by Firefox, and mod_md staples nothing for a
certificate until its first background fetch has stored a response. mod_md reads its store when httpd starts, so
a response fetched here, checked (signed by the issuer or its delegate, about this certificate, fresh) and written
where and as mod_md writes it (``ocsp/other/ocsp-<sha1>.json``, owned by the children's user) is stapled from the
first handshake. mod_md then renews it as its own.
"""

from __future__ import annotations

import base64
import datetime
import email.utils
import json
import os

from ansible_collections.fleet.stapling.plugins.module_utils import stapling_facts

FETCH_TIMEOUT = 5


class SeedError(Exception):
    """No good response could be had for the store; the message says why."""


def load_pair(vhost):
    """The vhost's certificate and its issuer, from the files its facts name."""
    # imported when a seed is fetched: every apache_stapling run loads this module, few of them seed the store
    from ansible_collections.fleet.stapling.plugins.module_utils import certificates  # pylint: disable=import-outside-toplevel
    chain = certificates.load_certificates(vhost["certificate_file"])
    candidates = chain[1:] + stapling_facts.readable_certificates(vhost["chain_file"]) + \
        stapling_facts.readable_certificates(vhost["ca_certificate_file"])
    issuer = certificates.find_issuer(chain[0], candidates)
    if issuer is None:
        raise SeedError("%s: the issuer of its certificate is in none of its files" % vhost["id"])
    return chain[0], issuer


def fetch(vhost, now, timeout=FETCH_TIMEOUT):
    """(the store record as bytes, valid until) of a fresh, verified response from the vhost's responder."""
    from ansible_collections.fleet.stapling.plugins.module_utils import certificates, ocsp_client  # pylint: disable=import-outside-toplevel
    certificate, issuer = load_pair(vhost)
    url = vhost.get("force_url") or certificates.ocsp_url(certificate)
    try:
        endpoint = ocsp_client.parse_url(url)[1]
        found = ocsp_client.resolve(endpoint.host, endpoint.port, None, timeout)
        if not found["order"]:
            raise SeedError("%s: %s does not resolve (%s)" % (vhost["id"], endpoint.host, found["error"]))
        facts, body = ocsp_client.exchange(url, found["order"], ocsp_client.build_request(certificate, issuer)[1],
                                           "post", timeout)
    except ocsp_client.OcspClientError as exc:
        raise SeedError("%s: %s" % (vhost["id"], exc))
    if not body:
        raise SeedError("%s: no answer from %s (%s)" % (vhost["id"], url, (facts.get("connect") or {}).get("error")))
    read = ocsp_client.read_response(body, certificate, issuer, now=now)
    problem = _problem(read, now)
    if problem:
        raise SeedError("%s: the answer from %s is not one to staple: %s" % (vhost["id"], url, problem))
    this_update, next_update = _parse(read["this_update"]), _parse(read["next_update"])
    record = {
        # mod_md's own encoding: base64url without padding, RFC 822 dates
        "response": base64.urlsafe_b64encode(body).decode("ascii").rstrip("="),
        "status": read["cert_status"],
        "valid": {"from": email.utils.format_datetime(this_update, usegmt=True),
                  "until": email.utils.format_datetime(next_update, usegmt=True)},
    }
    return json.dumps(record, indent=2).encode("utf-8"), next_update.strftime("%Y-%m-%dT%H:%M:%SZ")


def _problem(read, now):
    if read.get("parse_error"):
        return read["parse_error"]
    if read.get("response_status") != "successful":
        return "response status %s" % read.get("response_status")
    if read.get("cert_status") not in ("good", "revoked"):
        return "certificate status %s" % read.get("cert_status")
    if not read.get("cert_id_matches"):
        return read.get("cert_id_problem") or "it is about another certificate"
    if not read.get("signature_valid"):
        return read.get("signature_error") or "its signature does not verify"
    if not read.get("next_update") or _parse(read["next_update"]) <= now:
        return "it is not fresh (next update %s)" % read.get("next_update")
    return None


def _parse(text):
    moment = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    return moment.replace(tzinfo=datetime.timezone.utc)


def store_file(store, vhost):
    return os.path.join(store, "ocsp", "other", "ocsp-%s.json" % vhost["certificate"]["sha1_fingerprint"])


def child_owner(config):
    """(uid, gid) of the User and Group httpd's children run as, or None when they cannot be told."""
    try:
        import grp  # pylint: disable=import-outside-toplevel
        import pwd  # pylint: disable=import-outside-toplevel
        user = config.server_value("User")
        group = config.server_value("Group")
        uid = pwd.getpwnam(user).pw_uid if user else None
        gid = grp.getgrnam(group).gr_gid if group else (pwd.getpwnam(user).pw_gid if user else None)
    except (ImportError, KeyError):
        return None
    return (uid, gid) if uid is not None else None


def write(store, path, data, owner):
    """Write one store file, creating its directories owned by the children's user as mod_md makes them (the
    store's own directory stays root's). Returns the directories created, so that a rollback can remove them."""
    created = []
    directory = os.path.dirname(path)
    missing = []
    while not os.path.isdir(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    for directory in reversed(missing):
        os.mkdir(directory, 0o755)
        created.append(directory)
    temporary = path + ".fleet-stapling"
    with open(temporary, "wb") as stream:
        stream.write(data)
    os.chmod(temporary, 0o644)
    if owner and hasattr(os, "geteuid") and os.geteuid() == 0:
        for target in [d for d in created if d != store.rstrip("/")] + [temporary]:
            os.chown(target, owner[0], owner[1])
    os.rename(temporary, path)
    return created


def remove(path, created_dirs):
    if os.path.exists(path):
        os.unlink(path)
    for directory in reversed(created_dirs):
        try:
            os.rmdir(directory)
        except OSError:
            pass
