# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The vhosts whose staple check does not show what a change should have brought about.

One judgement for both sources of that check (the reload's own, RV(staples) of apache_stapling's reload, and a
separate ocsp_probe run), so that the playbooks decide with the same rule whether to ask again and whether to
fail the host."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

# proper answers for a vhost that should staple: the responder said so, the staple is right to carry it
PROPER_ANSWERS = ("revoked", "unknown_cert")


def staples_left(stapled, vhost_names, expect_stapling, responders=None):
    """Names (each once, in order) among ``vhost_names`` whose entries in ``stapled`` disagree with
    ``expect_stapling``: expecting staples, every vhost with an OCSP URL (one of ``responders`` when given) must
    staple a good answer, or a proper revoked/unknown one; expecting none, nothing may be stapled."""
    if not isinstance(stapled, list) or not all(isinstance(entry, dict) for entry in stapled):
        raise AnsibleFilterError("staples_left: the input must be a list of ocsp_probe's stapled entries")
    names = set(vhost_names or [])
    left = []
    for entry in stapled:
        if entry.get("server_name") not in names:
            continue
        if expect_stapling:
            url = (entry.get("certificate") or {}).get("ocsp_url")
            if not url or (responders is not None and url not in responders):
                continue
            wrong = entry.get("status") != "good" and entry.get("error_class") not in PROPER_ANSWERS
        else:
            wrong = bool(entry.get("stapled"))
        if wrong and entry["server_name"] not in left:
            left.append(entry["server_name"])
    return left


class FilterModule(object):
    def filters(self):
        return {"staples_left": staples_left}
