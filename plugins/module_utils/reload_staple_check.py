# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What every SSL vhost staples right after a reload httpd survived, asked over TLS from the host itself.

It runs inside the reload's own module run (``apache_stapling`` with ``reload.check_staples``), because a module
run (Ansible packing it, SSH, a Python starting on the host) was the largest cost per host of a fleet flip, and
the check after the reload was one whole run of ``ocsp_probe`` of its own. The report has ``ocsp_probe``'s shape
(``stapled``, ``summary``, ``skipped``), so the playbooks judge it as they judge ``ocsp_probe``'s.

The reload has been survived when this runs: nothing here may turn it into a failure. A check that cannot be
made (neither pyOpenSSL nor the openssl command, a config that cannot be read now) comes back with
``checked: false`` and the reason, and the caller asks again with ``ocsp_probe``, which fails with that reason.
"""

from __future__ import annotations

from ansible_collections.fleet.stapling.plugins.module_utils import ocsp_probe_run, staple_probe
from ansible_collections.fleet.stapling.plugins.module_utils.stapling_change import STAPLING_ERRORS

# a problem in any of these is the check's own, never Apache's
CHECK_ERRORS = STAPLING_ERRORS + (ocsp_probe_run.ProbeInputError, staple_probe.StapleProbeError)


def not_checked(problem):
    return {"checked": False, "problem": problem, "stapled": [], "skipped": [], "summary": None}


def check_staples(host, timeout, settle):
    """ocsp_probe's report on every SSL vhost, its responders left alone, with ``checked`` and ``problem``.
    ``host`` returns the instance (an apache_host.ApacheHost; a function, so that finding it fails here too).
    ``settle``: how long a vhost that still serves what its old config said is asked again (workers of the old
    generation finish their connections first)."""
    if staple_probe.staple_client() is None:
        return not_checked(staple_probe.NO_CLIENT_MESSAGE)
    try:
        settings = ocsp_probe_run.Settings(timeout=timeout, stapled_check="staple", settle=settle)
        _items, targets, skipped = ocsp_probe_run.discover_on_host(host())
        report = ocsp_probe_run.run([], settings, targets)
    except CHECK_ERRORS as exc:
        return not_checked("the staples were not checked after the reload: %s" % exc)
    report.update(checked=True, problem=None, skipped=skipped)
    return report
