# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What mod_md holds in its store for the certificates it staples without managing them.

mod_md keeps one file per certificate, ``<MDStoreDir>/ocsp/other/ocsp-<SHA-1 of the certificate's DER>.json``
(the response, its status, and the period it is valid for), and a ``job.json`` beside them with its renewal
runs (when it last ran, how many attempts failed in a row, what it last did). It logs failed fetches only at
debug level, so these files are where an operator can see an outage coming: a response still valid for a
while, and renewals that keep failing.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import os

from ansible_collections.fleet.stapling.plugins.module_utils import stapling_facts

DEFAULT_STORE = "md"  # mod_md's default MDStoreDir, under ServerRoot


def store_dir(config):
    return stapling_facts.resolve_path(config, config.server_value("MDStoreDir", DEFAULT_STORE))


def _time(text):
    if not text:
        return None
    try:
        return email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None


def _read_json(path):
    try:
        with open(path, "rb") as stream:
            return json.loads(stream.read().decode("utf-8"))
    except (IOError, OSError, ValueError):
        return None


def read_store(store):
    """The 'other' certificates' responses by certificate id (lower-case hex SHA-1) and the renewal job."""
    directory = os.path.join(store, "ocsp", "other")
    responses = {}
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        names = []
    for name in names:
        if not (name.startswith("ocsp-") and name.endswith(".json")):
            continue
        data = _read_json(os.path.join(directory, name))
        if isinstance(data, dict):
            valid = data.get("valid") or {}
            responses[name[len("ocsp-"):-len(".json")].lower()] = {
                "status": data.get("status"),
                "valid_from": _time(valid.get("from")),
                "valid_until": _time(valid.get("until")),
            }
    job = _read_json(os.path.join(directory, "job.json")) or {}
    last = job.get("last") or {}
    return responses, {
        "last_run": _time(job.get("last-run")),
        "errors": int(job.get("errors") or 0),
        "last_detail": last.get("detail") or last.get("problem"),
        "next_run": _time(job.get("next-run")),
        "failing_since": _failing_since(job),
    }


def _failing_since(job):
    """When the failed renewals in a row began: the oldest 'ocsp-error' entry of the job's log (newest first) that
    no 'finished' entry follows. None when the log says nothing about it."""
    entries = (job.get("log") or {}).get("entries") or []
    since = None
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("type") == "finished":
            break
        if entry.get("type") == "ocsp-error":
            since = _time(entry.get("when")) or since
    return since


def projected_recovery(job, now):
    """When a renewal can be expected to succeed again, while renewals keep failing.

    Two things bound it from below. mod_md retries with a back-off that doubles with each failure (from
    MDRetryDelay up to once a day), so nothing is renewed before its next run. And an outage that has lasted a time T so far is, without
    better knowledge, as likely as not to last another T: that is the current error rate carried forward.
    """
    if not job["errors"]:
        return None
    since = job["failing_since"] or job["last_run"]
    carried = now + (now - since) if since and since < now else now
    candidates = [moment for moment in (carried, job["next_run"]) if moment]
    return max(candidates) if candidates else now


def stored_response(certificate_sha1, responses, job, now):
    """What mod_md would staple for this certificate now, as plain data; None when the store holds nothing."""
    found = responses.get((certificate_sha1 or "").lower())
    if not found:
        return None
    until = found["valid_until"]
    seconds_left = int((until - now).total_seconds()) if until else None
    fresh = seconds_left is not None and seconds_left > 0
    recovery = projected_recovery(job, now)
    return {
        "status": found["status"],
        "valid_until": _stamp(until),
        "seconds_left": seconds_left,
        # a fresh good or revoked answer is the truth about the certificate, and what mod_md staples
        "usable": fresh and found["status"] in ("good", "revoked"),
        "renewal_errors": job["errors"],
        "last_renewal": job["last_detail"],
        "failing_since": _stamp(job["failing_since"]) if job["errors"] else None,
        "projected_recovery": _stamp(recovery),
        # it runs out before a renewal can be expected to succeed: mod_md would then staple nothing
        "at_risk": recovery is not None and (not fresh or until < recovery),
    }


def _stamp(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)
