#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: apache_stapling_metrics
short_description: Write a host's OCSP stapling metrics for node_exporter's textfile collector
version_added: 1.1.0
description:
  - Writes C(fleet_stapling.prom) in O(path), in the Prometheus text format, for node_exporter's textfile
    collector (C(--collector.textfile.directory)). Prometheus then alerts on it, for example when a responder
    fails from a host for five minutes, or when no run has updated the file for a day.
  - Every family is a gauge. Every family has C(# HELP) and C(# TYPE) lines. No sample carries a timestamp, because
    the collector refuses files with timestamps. Families are sorted by name and samples by their labels, so the same
    measurements always give the same bytes.
  - From O(probe), a result of M(fleet.stapling.ocsp_probe), come the vhost families and the responder families.
    The vhost families come from RV(fleet.stapling.ocsp_probe#module:stapled) and are labelled C(vhost), C(port) and
    C(ocsp_host). They are C(fleet_stapling_vhost_staple_served) (1 for a good staple, else 0),
    C(fleet_stapling_vhost_staple_expected) (1 when the config switches stapling on or the certificate is
    Must-Staple), and C(fleet_stapling_vhost_staple_next_update_seconds) (seconds until the served staple's
    nextUpdate). The responder families come from RV(fleet.stapling.ocsp_probe#module:responders) and are labelled
    C(ocsp_host), C(responder) and C(family) (V(ipv4) or V(ipv6)). They are C(fleet_stapling_responder_healthy)
    (1 or 0) and C(fleet_stapling_responder_latency_seconds) (only when the responder answered).
  - From O(log), a result of M(fleet.stapling.apache_stapling_log), comes C(fleet_stapling_apache_log_errors_recent),
    labelled C(code). It counts each AH code within that module's C(recent) window.
  - From O(play) and O(success) come C(fleet_stapling_last_run_timestamp_seconds) and C(fleet_stapling_last_run_success),
    labelled C(play). A staleness alert subtracts the timestamp from Prometheus' own clock; the collection's
    example rules are in C(extensions/prometheus/stapling_alerts.yml).
  - C(ocsp_host) is the host name of the OCSP URL, lowercased, the way the O(fleet.stapling.apache_stapling#module:ocsp_hosts)
    selection compares it. It is empty for a certificate without an OCSP URL. A vhost reached over several addresses
    and a responder URL shared by several issuers give one series each, with the worst value.
  - The file is shared by every kind of play. A run replaces only what it measured, and keeps the other samples
    of the file. What it measured is its own O(play) samples, the vhost families when O(probe) checked staples, the responder
    families when O(probe) asked responders (see O(probe_parts)), and the log family when O(log) is given. For example,
    the staple check after a change (C(ask_responders=false), O(probe_parts=[stapled])) leaves the responder samples
    of the last probe play in place.
  - Written atomically, through a temporary file in O(path) and a rename, with mode C(0644) so that node_exporter can
    read it whoever runs the play. The temporary name does not end in C(.prom), so the collector never reads it.
author:
  - fleet.stapling maintainers (@fleet-stapling)
attributes:
  check_mode:
    support: full
    description: Check mode computes the new file and returns it in RV(content), and writes nothing.
  diff_mode:
    support: full
    description: The diff of the old and the new text of the file.
  idempotent:
    support: none
    description:
      - The last-run timestamp is the time of the run, so every run changes the file and reports a change.
        With a fixed O(now) and the same results, a second run changes nothing.
options:
  path:
    description:
      - The directory node_exporter's textfile collector reads (C(--collector.textfile.directory)).
      - Created with mode C(0755) when missing (RV(directory_created)).
    type: path
    required: true
  play:
    description:
      - The kind of run, the C(play) label of the last-run families.
      - V(info) reads only, V(probe) asks responders and vhosts, and V(change) switches stapling.
    type: str
    required: true
    choices: [info, probe, change]
  success:
    description: Whether the run succeeded on this host; C(fleet_stapling_last_run_success) is 1 or 0.
    type: bool
    default: true
  probe:
    description:
      - A result of M(fleet.stapling.ocsp_probe), as registered.
      - Its RV(fleet.stapling.ocsp_probe#module:stapled) list replaces the vhost families and its
        RV(fleet.stapling.ocsp_probe#module:responders) list the responder families, as far as O(probe_parts) says
        they were measured.
      - A result without those lists (a failed or skipped task) replaces nothing.
    type: dict
  probe_parts:
    description:
      - The parts of O(probe) that the probe measured. V(responders) when it asked the responders, V(stapled) when
        it checked the vhosts' staples (O(fleet.stapling.ocsp_probe#module:stapled_check=staple)).
      - An empty list in O(probe) counts as measured, so that vhosts and responders a host no longer has lose
        their samples. A probe run with C(ask_responders=false) returns an empty
        RV(fleet.stapling.ocsp_probe#module:responders) list, so leave V(responders) out for it, or the responder
        samples other plays wrote are removed.
      - When omitted, both parts, unless the result still carries its C(invocation) (registered results of
        ansible-core before 2.19 do), which tells how the probe was called.
    type: list
    elements: str
    choices: [responders, stapled]
  log:
    description:
      - A result of M(fleet.stapling.apache_stapling_log), as registered. Its C(summary.recent_counts) replaces
        the log family.
      - A failed read replaces it with nothing, with a warning, so that old counts do not linger.
    type: dict
  now:
    description:
      - The Unix time of the run, which is the last-run timestamp and the start of the nextUpdate countdowns.
      - Defaults to the managed host's clock. Give it only to get repeatable output, in tests.
    type: float
notes:
  - The module does not need Apache or cryptography. It only writes the file, so it is not in the
    C(fleet.stapling.apache_instance) action group.
  - Lines of the old file that cannot be read are dropped with a warning.
seealso:
  - module: fleet.stapling.ocsp_probe
  - module: fleet.stapling.apache_stapling_log
  - name: node_exporter's textfile collector
    description: How node_exporter reads C(*.prom) files.
    link: https://github.com/prometheus/node_exporter#textfile-collector
"""

EXAMPLES = r"""
- name: Probe the responders and the vhosts' staples
  fleet.stapling.ocsp_probe:
    discover: true
    stapled: true
    ip_version: both
  register: stapling_probe

- name: Read the recent stapling errors of Apache's logs
  fleet.stapling.apache_stapling_log:
  become: true
  register: stapling_log

- name: Export what was found for node_exporter
  fleet.stapling.apache_stapling_metrics:
    path: /var/lib/prometheus/node-exporter
    play: probe
    probe: "{{ stapling_probe }}"
    log: "{{ stapling_log }}"
  become: true

- name: After a change, record the run and what the vhosts staple now (the responder samples stay)
  fleet.stapling.apache_stapling_metrics:
    path: /var/lib/prometheus/node-exporter
    play: change
    success: "{{ stapling_host_report.status != 'failed' }}"
    probe: "{{ stapling_verify }}"
    probe_parts: [stapled]  # the check after a change asks no responder (ask_responders false)
  become: true
"""

RETURN = r"""
path:
  description: The metrics file.
  returned: always
  type: str
  sample: /var/lib/prometheus/node-exporter/fleet_stapling.prom
directory_created:
  description: Whether O(path) was (in check mode, would be) created.
  returned: always
  type: bool
  sample: false
content:
  description: The text written (in check mode, the text that would be written).
  returned: always
  type: str
  sample: |
    # HELP fleet_stapling_last_run_success 1 if the last fleet.stapling run of this kind succeeded on this host, else 0.
    # TYPE fleet_stapling_last_run_success gauge
    fleet_stapling_last_run_success{play="probe"} 1
replaced:
  description:
    - The parts this run wrote, with C(run) (its own last-run samples) always among them.
    - V(stapled) is the vhost families, V(responders) the responder families, and V(log) the error-log family.
  returned: always
  type: list
  elements: str
  sample: [run, stapled, responders, log]
kept:
  description: The families that hold samples kept from the old file, which other runs wrote.
  returned: always
  type: list
  elements: str
  sample: [fleet_stapling_last_run_success, fleet_stapling_last_run_timestamp_seconds]
samples:
  description: How many samples the file holds.
  returned: always
  type: int
  sample: 14
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.stapling.plugins.module_utils import stapling_metrics
from ansible_collections.fleet.stapling.plugins.module_utils.stapling_metrics import MetricsError


def argument_spec():
    return dict(
        path=dict(type="path", required=True),
        play=dict(type="str", required=True, choices=list(stapling_metrics.PLAYS)),
        success=dict(type="bool", default=True),
        probe=dict(type="dict"),
        probe_parts=dict(type="list", elements="str", choices=[stapling_metrics.RESPONDERS, stapling_metrics.STAPLED]),
        log=dict(type="dict"),
        now=dict(type="float"),
    )


def run(module, params):
    """(result, diff) of writing the file, or of computing it in check mode."""
    directory = params["path"]
    target = os.path.join(directory, stapling_metrics.FILE_NAME)
    now = params["now"] if params["now"] is not None else time.time()
    missing = stapling_metrics.directory_missing(directory)
    before = None if missing else stapling_metrics.read_textfile(target)
    outcome = stapling_metrics.build(before, params["play"], params["success"], now, params["probe"], params["log"],
                                     params["probe_parts"])
    if not module.check_mode:
        if missing:
            stapling_metrics.make_directory(directory)
        if outcome.changed:
            stapling_metrics.write_textfile(target, outcome.after)
    for warning in outcome.warnings:
        module.warn(warning)
    result = dict(
        changed=outcome.changed or missing,
        path=target,
        directory_created=missing,
        content=outcome.after,
        replaced=outcome.parts,
        kept=outcome.kept,
        samples=sum(1 for line in outcome.after.splitlines() if line and not line.startswith("#")),
    )
    diff = dict(before=before or "", after=outcome.after, before_header=target, after_header=target)
    return result, diff


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result, diff = run(module, module.params)
    except MetricsError as exc:
        module.fail_json(msg=str(exc))
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
