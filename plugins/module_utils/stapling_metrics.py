# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A host's stapling metrics for node_exporter's textfile collector (``fleet_stapling.prom``).

Three steps:

* ``samples_from_results``: turn what this run measured into metric families. ocsp_probe's ``stapled`` gives
  the per-vhost staple families, its ``responders`` the per-responder and address-family ones,
  apache_stapling_log's ``summary.recent_counts`` the AH code counts, and the play kind and its success the
  last-run families.
* ``merge``: the file is shared by every kind of play. A run replaces the families of the parts it measured and
  its own last-run samples, and keeps everything else the file held: a change play, which checks only the
  staples, leaves the responder samples the probe play wrote.
* ``render`` (prometheus_text) gives the new text; ``write_textfile`` puts it in place atomically.

Importable without Ansible.
"""

from __future__ import annotations

import calendar
import datetime
import os
import time
from urllib.parse import urlsplit

from ansible_collections.fleet.stapling.plugins.module_utils import apache_write, prometheus_text

FILE_NAME = "fleet_stapling.prom"
PLAYS = ("info", "probe", "change")
FILE_MODE = 0o644
DIRECTORY_MODE = 0o755

# The parts of a run's results; each metric family belongs to exactly one.
STAPLED = "stapled"
RESPONDERS = "responders"
LOG = "log"
RUN = "run"

VHOST_LABELS = ("vhost", "port", "ocsp_host")
RESPONDER_LABELS = ("ocsp_host", "responder", "family")
# name: (part, labels, help text). Every family is a gauge.
FAMILIES = {
    "fleet_stapling_vhost_staple_served": (
        STAPLED, VHOST_LABELS, "1 if the vhost served a good OCSP staple at the last check, else 0."),
    "fleet_stapling_vhost_staple_expected": (
        STAPLED, VHOST_LABELS,
        "1 if the vhost owes clients a staple (stapling switched on, or a Must-Staple certificate), else 0."),
    "fleet_stapling_vhost_staple_next_update_seconds": (
        STAPLED, VHOST_LABELS, "Seconds from the check until the nextUpdate of the staple the vhost served."),
    "fleet_stapling_responder_healthy": (
        RESPONDERS, RESPONDER_LABELS,
        "1 if the OCSP responder answered properly over this address family from this host, else 0."),
    "fleet_stapling_responder_latency_seconds": (
        RESPONDERS, RESPONDER_LABELS, "Seconds the OCSP responder took for its last answer over this address family."),
    "fleet_stapling_apache_log_errors_recent": (
        LOG, ("code",), "Stapling messages of each AH code in Apache's error logs within the recent window."),
    "fleet_stapling_last_run_timestamp_seconds": (
        RUN, ("play",), "Unix time of the last fleet.stapling run of this kind on this host."),
    "fleet_stapling_last_run_success": (
        RUN, ("play",), "1 if the last fleet.stapling run of this kind succeeded on this host, else 0."),
}
# ocsp_probe names address families "4" and "6"; a probe with ip_version any that found no address has none.
ADDRESS_FAMILIES = {"4": "ipv4", "6": "ipv6"}


class MetricsError(Exception):
    """Input the metrics cannot be built from, or a file that cannot be written; the message is for the operator."""


class Outcome(object):
    """What a run produces: the old and new text, which parts it replaced, what it kept, and warnings."""

    def __init__(self, before, after, parts, kept, warnings):
        self.before = before
        self.after = after
        self.parts = parts
        self.kept = kept
        self.warnings = warnings

    @property
    def changed(self):
        return self.before != self.after


# ---------------------------------------------------------------------------------------------- results -> samples


def ocsp_host(url):
    """The host name of an OCSP URL, lowercased as the playbooks' ocsp_hosts selection compares it; "" for none."""
    if not url:
        return ""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def parse_time(text):
    """Unix seconds of an ISO 8601 UTC time as the probe writes it ("2026-05-08T10:00:00Z"), or None."""
    if not text:
        return None
    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except (TypeError, ValueError):
        pass
    try:
        moment = datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def _family(name):
    return prometheus_text.Family(name, FAMILIES[name][2])


def _keep_lowest(family, labels, value):
    """Several checks of one series (a vhost reached over two addresses): the worst one counts."""
    key = (family.name, labels)
    if key not in family.samples or value < family.samples[key]:
        family.add(labels, value)


def staple_families(stapled, now, warnings):
    """The vhost families from ocsp_probe's ``stapled`` list; entries that only checked a handshake are left out."""
    served = _family("fleet_stapling_vhost_staple_served")
    expected = _family("fleet_stapling_vhost_staple_expected")
    next_update = _family("fleet_stapling_vhost_staple_next_update_seconds")
    for entry in stapled:
        if not isinstance(entry, dict) or entry.get("stapled") is None:
            continue
        certificate = entry.get("certificate") or {}
        labels = (("vhost", str(entry.get("server_name") or entry.get("address") or "")),
                  ("port", str(entry.get("port") or "")),
                  ("ocsp_host", ocsp_host(certificate.get("ocsp_url"))))
        _keep_lowest(served, labels, 1 if entry.get("status") == "good" else 0)
        if entry.get("stapling_expected") is not None:
            _keep_lowest(expected, labels, 1 if entry["stapling_expected"] else 0)
        until = (entry.get("ocsp") or {}).get("next_update") if entry.get("stapled") else None
        if until:
            moment = parse_time(until)
            if moment is None:
                warnings.append("%s: nextUpdate %r is no time; its sample is left out" % (labels[0][1], until))
            else:
                _keep_lowest(next_update, labels, round(moment - now, 3))
    return [served, expected, next_update]


def responder_families(responders):
    """The responder families from ocsp_probe's ``responders``: one series per (URL, address family), the worst
    verdict and slowest answer when several issuers share a URL. A family the host has no address in is not
    judged and not written."""
    healthy = _family("fleet_stapling_responder_healthy")
    latency = _family("fleet_stapling_responder_latency_seconds")
    for responder in responders:
        if not isinstance(responder, dict) or not responder.get("url"):
            continue
        for probe in responder.get("probes") or []:
            if probe.get("healthy") is None:
                continue
            labels = (("ocsp_host", ocsp_host(responder["url"])), ("responder", responder["url"]),
                      ("family", ADDRESS_FAMILIES.get(str(probe.get("family")), "any")))
            _keep_lowest(healthy, labels, 1 if probe["healthy"] else 0)
            answered = (probe.get("http") or {}).get("status") is not None
            if answered and probe.get("latency") is not None:
                key = (latency.name, labels)
                latency.add(labels, max(float(probe["latency"]), latency.samples.get(key, 0.0)))
    return [healthy, latency]


def log_families(log, warnings):
    counts = ((log.get("summary") or {}).get("recent_counts")) if isinstance(log, dict) else None
    errors = _family("fleet_stapling_apache_log_errors_recent")
    if not isinstance(counts, dict):
        warnings.append("the error-log result holds no summary.recent_counts (%s); the log samples are removed"
                        % (log.get("msg") if isinstance(log, dict) and log.get("msg") else "the read failed"))
        return [errors]
    for code, count in counts.items():
        try:
            errors.add((("code", str(code)),), int(count))
        except (TypeError, ValueError):
            warnings.append("error-log count %r of %s is no number; left out" % (count, code))
    return [errors]


def run_families(play, success, now):
    stamp = _family("fleet_stapling_last_run_timestamp_seconds")
    outcome = _family("fleet_stapling_last_run_success")
    stamp.add((("play", play),), round(now, 3))
    outcome.add((("play", play),), 1 if success else 0)
    return [stamp, outcome]


def probe_parts(probe, wanted=None):
    """The parts an ocsp_probe result measured: those of ``wanted`` (all when None) whose list the result holds.

    An empty list counts as measured (a host that has no vhost left must lose its old samples), so a caller
    whose probe ran with ``ask_responders: false`` or ``stapled: false`` must leave that part out of ``wanted``.
    When ``wanted`` is None, a result that still carries its ``invocation`` (ansible-core before 2.19 kept it
    in registered results) says how the probe was called."""
    if not isinstance(probe, dict):
        return []
    if wanted is None:
        called = (probe.get("invocation") or {}).get("module_args") or {}
        wanted = []
        if called.get("ask_responders", True) is not False:
            wanted.append(RESPONDERS)
        if called.get("stapled", True) is not False and called.get("stapled_check", "staple") == "staple":
            wanted.append(STAPLED)
    return [part for part in (RESPONDERS, STAPLED) if part in wanted and isinstance(probe.get(part), list)]


def samples_from_results(play, success, now, probe=None, log=None, measured_parts=None):
    """(families measured by this run, the parts they replace, warnings)."""
    if play not in PLAYS:
        raise MetricsError("play must be one of %s, not %r" % (", ".join(PLAYS), play))
    warnings = []
    families = run_families(play, success, now)
    parts = probe_parts(probe, measured_parts)
    if STAPLED in parts:
        families += staple_families(probe["stapled"], now, warnings)
    if RESPONDERS in parts:
        families += responder_families(probe["responders"])
    if log is not None:
        parts.append(LOG)
        families += log_families(log, warnings)
    return families, parts, warnings


# ---------------------------------------------------------------------------------------------- merging


def merge(existing, measured, parts, play):
    """The families to write: ``measured`` plus what ``existing`` (families by name, as parsed) holds that this
    run does not replace. Returns (families, names of the families kept from the file)."""
    merged = {}
    kept = []
    for name, family in existing.items():
        part = FAMILIES[name][0] if name in FAMILIES else None
        if part in parts:
            continue
        if part == RUN:
            family.samples = {key: value for key, value in family.samples.items() if ("play", play) not in key[1]}
        if name in FAMILIES:  # our own families always carry today's help and type
            family.help, family.kind = FAMILIES[name][2], "gauge"
        if family.samples:
            merged[name] = family
            kept.append(name)
    for family in measured:
        if family.name in merged:
            merged[family.name].samples.update(family.samples)
        else:
            merged[family.name] = family
    return list(merged.values()), sorted(kept)


def build(before, play, success, now, probe=None, log=None, measured_parts=None):
    """The Outcome of a run, given the file's current text (None when there is none). ``measured_parts`` names
    the parts of ``probe`` that were measured (see probe_parts)."""
    measured, parts, warnings = samples_from_results(play, success, now, probe, log, measured_parts)
    existing, problems = prometheus_text.parse(before or "")
    for problem in problems:
        warnings.append("%s: %s; that line is dropped" % (FILE_NAME, problem))
    families, kept = merge(existing, measured, parts, play)
    return Outcome(before, prometheus_text.render(families), [RUN] + parts, kept, warnings)


# ---------------------------------------------------------------------------------------------- the file


def read_textfile(path):
    """The file's text, or None when it does not exist."""
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except FileNotFoundError:
        return None
    except (IOError, OSError) as exc:
        raise MetricsError("cannot read %s: %s" % (path, exc))
    return data.decode("utf-8", "replace")


def directory_missing(directory):
    """True when the metrics directory must be created; something else by that name is an error."""
    if os.path.isdir(directory):
        return False
    if os.path.lexists(directory):
        raise MetricsError("the metrics directory %s exists and is not a directory" % directory)
    return True


def make_directory(directory):
    """Create the metrics directory, mode 0755 whatever the umask, since node_exporter must enter it."""
    try:
        os.makedirs(directory)
        os.chmod(directory, DIRECTORY_MODE)
    except (IOError, OSError) as exc:
        raise MetricsError("cannot create the metrics directory %s: %s" % (directory, exc))


def _move_world_readable(source, destination):
    """node_exporter runs as its own user: the file must be readable by it, whoever wrote it before."""
    os.chmod(source, FILE_MODE)
    os.rename(source, destination)


def write_textfile(path, text, move=_move_world_readable):
    """Write ``text`` through a temporary file in the same directory and a rename, so that the collector never
    reads half a file. The temporary name does not end in .prom, which the collector would read."""
    try:
        apache_write.atomic_write(path, text.encode("utf-8"), move)
    except (IOError, OSError) as exc:
        raise MetricsError("cannot write %s: %s" % (path, exc))
