# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Which vhosts can staple at all: a certificate without an OCSP URL has no responder to ask.

With SSLUseStapling on, mod_ssl logs AH02218 and AH02604 at ERROR for every such certificate at each start and
reload (AH02814 for each further vhost sharing it), and staples nothing for it anyway. Since the CAs that ran
the largest responders stopped putting OCSP URLs in new certificates, most fleets serve both kinds, and a
renewal moves a site from one kind to the other: so the choice is made per vhost, from the certificate it
serves today, at every run that switches stapling on.
"""

from __future__ import annotations

# What to do with a vhost whose certificate has no OCSP URL when stapling is switched on.
WITHOUT_URL_OFF = "off"  # stapling off in the vhost's own scope, so that httpd has nothing to complain about
WITHOUT_URL_LEAVE = "leave"  # on like the others: httpd logs its errors at each start, as it always did
WITHOUT_URL_CHOICES = (WITHOUT_URL_OFF, WITHOUT_URL_LEAVE)


def has_no_responder(vhost):
    """Whether mod_ssl would find no responder for this vhost: a certificate we could read with no OCSP URL and
    no SSLStaplingForceURL to ask instead. A certificate we could not read is not judged."""
    certificate = vhost.get("certificate")
    return bool(certificate) and not certificate.get("ocsp_url") and not vhost.get("force_url")


def split_without_url(vhosts, choice):
    """(the vhosts to keep stapling off for lack of an OCSP URL, warnings) among ``vhosts`` being switched on.

    A Must-Staple certificate without a URL is left as the rest of the run has it: it can never be stapled, so
    browsers that honour Must-Staple refuse it whatever we do, and that is for its owner to fix (the warning
    says so), not something a stapling switch should hide.
    """
    off, warnings = [], []
    for vhost in vhosts:
        # mod_md staples by its own rules and logs none of mod_ssl's errors for these
        if not has_no_responder(vhost) or vhost.get("stapling_engine") == "mod_md":
            continue
        if vhost["certificate"].get("must_staple"):
            warnings.append("%s: the certificate is OCSP Must-Staple but has no OCSP URL, so no staple can ever be "
                            "served for it and browsers that enforce Must-Staple refuse it; it needs a new "
                            "certificate" % vhost["id"])
        elif choice == WITHOUT_URL_OFF:
            off.append(vhost)
        else:
            warnings.append("%s: the certificate has no OCSP URL, so there is nothing to staple for it (httpd logs "
                            "AH02218 at each start; without_ocsp_url=off switches it off for this vhost)" % vhost["id"])
    return off, warnings


def stapling_without_url(vhosts, selected, choice):
    """The vhosts outside ``selected`` that mod_ssl staples now although nothing can be stapled for them: with
    ``off`` they go off as well (not Must-Staple ones, see ``split_without_url``). No client can tell the
    difference, as they had nothing to staple; httpd stops logging its errors about them."""
    if choice != WITHOUT_URL_OFF:
        return []
    chosen = set(v["id"] for v in selected)
    return [v for v in vhosts if v["id"] not in chosen and v["stapling"] and v.get("stapling_engine") == "mod_ssl"
            and has_no_responder(v) and not v["certificate"].get("must_staple")]
