# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: ca_bundle
short_description: Build one PEM CA bundle from PEM and DER certificate files on the controller
version_added: 1.0.0
author: fleet.stapling maintainers (@fleet-stapling)
description:
  - Reads every given file on the controller, accepting PEM files (one or many certificates) and DER files (one
    certificate), parses each certificate, drops duplicates and returns the bundle as PEM text with a description
    of each certificate.
  - Fails with the file's name when a file holds no readable certificate, a certificate that is not a CA
    certificate (a server certificate pasted by mistake), or a certificate that has expired, so that a broken
    download never reaches a server.
options:
  _terms:
    description: Paths of the certificate files, in the order the bundle should list them.
    type: list
    elements: path
    required: true
requirements:
  - cryptography on the controller
"""

EXAMPLES = r"""
- name: Assemble the bundle
  ansible.builtin.set_fact:
    stapling_bundle: "{{ query('fleet.stapling.ca_bundle', 'files/intermediate.der', 'files/root.pem') | first }}"
"""

RETURN = r"""
_list:
  description: One element, a dictionary describing the bundle.
  type: list
  elements: dict
  contains:
    pem:
      description: The bundle, PEM certificates one after another.
      type: str
    certificates:
      description: Subject, subject key identifier and expiry of each certificate kept, in bundle order.
      type: list
      elements: dict
    duplicates_dropped:
      description: How many certificates were left out because an identical one came earlier.
      type: int
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.fleet.stapling.plugins.module_utils import certificates

try:
    from cryptography.hazmat.primitives.serialization import Encoding
except ImportError:  # reported below through certificates.HAS_CRYPTOGRAPHY
    Encoding = None


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        if not certificates.HAS_CRYPTOGRAPHY:
            raise AnsibleLookupError("fleet.stapling.ca_bundle needs the cryptography Python library on the controller")
        seen = set()
        kept = []
        dropped = 0
        for term in _flatten(terms):
            path = self.find_file_in_search_path(variables, "files", term)
            try:
                found = certificates.load_certificates(path)
            except certificates.CertificateError as exc:
                raise AnsibleLookupError(str(exc))
            for certificate in found:
                problem = certificates.ca_problem(certificate)
                if problem:
                    raise AnsibleLookupError("%s: %s: %s" % (path, certificate.subject.rfc4514_string(), problem))
                fingerprint = certificate.public_bytes(Encoding.DER)
                if fingerprint in seen:
                    dropped += 1
                    continue
                seen.add(fingerprint)
                kept.append(certificate)
        if not kept:
            raise AnsibleLookupError("fleet.stapling.ca_bundle: no certificate given")
        return [{
            "pem": "".join(c.public_bytes(Encoding.PEM).decode("ascii") for c in kept),
            "certificates": [_summary(c) for c in kept],
            "duplicates_dropped": dropped,
        }]


def _summary(certificate):
    facts = certificates.describe(certificate)
    return {"subject": facts["subject"], "subject_key_id": facts["subject_key_id"], "not_after": facts["not_after"]}


def _flatten(terms):
    """query('ca_bundle', a, b) and query('ca_bundle', [a, b]) mean the same files."""
    for term in terms:
        if isinstance(term, (list, tuple)):
            yield from _flatten(term)
        else:
            yield term
