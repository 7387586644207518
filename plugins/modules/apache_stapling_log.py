#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: apache_stapling_log
short_description: Diagnose OCSP stapling trouble from Apache httpd's own error logs
version_added: 1.0.0
description:
  - Answers what an operator asks on an incident call, per host. Are stapling errors happening now, and how often?
    For which OCSP responder, which certificate and which vhost? What should be done about them?
  - Finds every C(ErrorLog) the Apache configuration declares, with the same parser as
    M(fleet.stapling.apache_stapling_info). That covers the main server's log and the own log of every SSL virtual host;
    a vhost without its own C(ErrorLog) writes to the server's. Relative paths are resolved against ServerRoot and
    C(${VAR}) is expanded. Without any C(ErrorLog), Apache's default C(logs/error_log) (C(DEFAULT_ERRORLOG) of
    C(ctl -V)) is read. Piped loggers (C(ErrorLog "|/usr/bin/rotatelogs ...")) and C(syslog) cannot be read and are
    reported with the reason, as are missing files. O(logs) adds more files.
  - Reads only the end of each log (O(max_bytes)), so a multi-gigabyte log costs no more than that. With O(rotated),
    the end of C(<log>.1) too.
  - Parses Apache 2.4 error-log lines in the default format and in the usual C(ErrorLogFormat) variants. Each part is
    recognised by its shape. Times may be C(%t), C(%{u}t), C(%{c}t) or C(%{cu}t), in brackets or not. It also reads
    C([module:level]) or a bare C([level]) as in 2.2, C([pid N:tid M]) and C([client A:P]), a server name printed by
    C([%v]), the source file and line that debug logging adds, OS error prefixes such as
    "(70007)The timeout specified has expired", the C(AHnnnnn) code, and plain or typographic quotes around names
    as runbooks print them. Lines that do not parse are counted in RV(logs[].unparsed_lines), never fatal.
  - Apache writes its times without a time zone. They are taken as the managed host's local time, which is also
    the clock that O(since) and O(recent) are measured against. Reported times are ISO 8601 with the host's UTC offset.
  - For every stapling-related C(AHnnnnn) code of mod_ssl 2.4 found within O(since), the module reports a count,
    the first and last time seen and the responders named. It also reports the certificates (subject, issuer,
    serial) and the vhosts (C(name:port) as Apache prints them), the OS errors in front of the messages, and the
    meaning, cause and remedy from a fixed table. The table is listed under RV(codes[].remedy).
  - Apache names the responder only when resolving or connecting fails (AH01972, AH01974, AH01976). The lines that
    the same process and thread logs next for the same fetch (AH01977, AH01980, AH01985, AH01941, ...) take that
    responder over. Likewise AH02604 (it names the vhost) and the AH02217 or AH02218 just before it (they name the
    certificate) lend each other what they name.
  - Lines without a time (an C(ErrorLogFormat) without C(%t)) cannot be placed in the window. They are counted in
    RV(logs[].untimed_lines) but not reported.
  - Read-only. It never reports a change.
requirements:
  - cryptography >= 3.4.8 on the managed host is optional; with it the report also names the vhosts whose
    certificates point at each responder
author:
  - fleet.stapling maintainers (@fleet-stapling)
extends_documentation_fragment:
  - fleet.stapling.apache_instance
attributes:
  check_mode:
    support: full
    description: The module only reads.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to show.
  idempotent:
    support: full
    description: Reading twice changes nothing; the report differs only by what Apache logged in between.
options:
  discover:
    description:
      - Read the Apache configuration to find its error logs (through O(ctl), O(config_file) and O(server_root)).
      - With V(false), only O(logs) are read, and no Apache needs to be installed.
    type: bool
    default: true
  logs:
    description:
      - More error-log files to read, besides the ones the configuration declares (or instead of them, with
        O(discover=false)). Useful for the files a piped logger writes.
      - Relative paths are taken from ServerRoot when the configuration is read.
    type: list
    elements: path
    default: []
  since:
    description:
      - How far back to count. Either a duration back from now, such as V(90s), V(15m), V(2h), V(1d), V(1w) or
        V(1h30m) (a bare number is seconds), or an ISO-8601 time such as V(2026-05-02T03:06:38) (local time) or
        V(2026-05-02T03:06:38+02:00).
    type: str
    default: 1h
  recent:
    description:
      - The window that counts as happening now, for RV(summary.stapling_errors_recent) and the C(recent_count)
        values. It takes the same forms as O(since).
      - The logs are read back to whichever of O(since) and O(recent) reaches further.
    type: str
    default: 15m
  max_bytes:
    description:
      - At most this many bytes are read from the end of each log file (and of C(<log>.1)). The first line of that
        tail is dropped because it is probably cut.
      - When the tail does not reach back to the start of the window, the module warns, and RV(logs[].covers_since)
        is false.
      - Every log costs up to this much memory and reading, twice with O(rotated); a host whose vhosts each have
        their own C(ErrorLog) pays it per log.
    type: int
    default: 4194304
  rotated:
    description:
      - Also read the end of C(<log>.1), the file logrotate and similar tools leave behind, for windows that span a
        rotation.
    type: bool
    default: false
notes:
  - The module needs no C(cryptography). When C(cryptography) is installed, certificates are read to list the vhosts
    that staple from each responder (RV(responders[].vhosts)) and serve each serial (RV(codes[].certificates)).
  - The module runs as the connecting user. Logs under C(/var/log) usually need C(become=true).
seealso:
  - module: fleet.stapling.apache_stapling_info
  - module: fleet.stapling.ocsp_probe
  - module: fleet.stapling.apache_stapling
"""

EXAMPLES = r"""
- name: Read the last hour of stapling messages from every error log of this host
  fleet.stapling.apache_stapling_log:
    ctl: "{{ stapling_apache_ctl | default(omit) }}"
    config_file: "{{ stapling_apache_config_file | default(omit) }}"
    server_root: "{{ stapling_apache_server_root | default(omit) }}"
  become: true
  register: stapling_log

- name: Say what is failing now, and what to do about it
  ansible.builtin.debug:
    msg: "{{ stapling_log.codes | selectattr('recent_count') | map(attribute='remedy') | list }}"
  when: stapling_log.summary.responder_errors_recent

- name: Count since the start of the incident, reading the rotated log too
  fleet.stapling.apache_stapling_log:
    since: "2026-05-02T03:00:00"
    recent: 5m
    rotated: true
    max_bytes: 16777216
  become: true
  register: since_incident

- name: Read a log that a piped logger writes, without reading the configuration
  fleet.stapling.apache_stapling_log:
    discover: false
    logs:
      - /var/log/httpd/error_log.current
    since: 2h
  become: true
  register: piped_log

- name: Fail when a responder has been failing within the last 15 minutes
  ansible.builtin.assert:
    that: not stapling_log.summary.responder_errors_recent
    fail_msg: "{{ stapling_log.summary.message }}"
"""

RETURN = r"""
apache_version:
  description: The version C(ctl -V) reported; null with O(discover=false).
  returned: always
  type: str
  sample: 2.4.62
config_file:
  description: The main configuration file that was read; null with O(discover=false).
  returned: always
  type: str
  sample: /etc/apache2/apache2.conf
server_root:
  description: The ServerRoot that relative log paths were resolved against; null with O(discover=false).
  returned: always
  type: str
  sample: /etc/apache2
window:
  description: The time windows, as ISO 8601 times with the host's UTC offset.
  returned: always
  type: dict
  contains:
    now:
      description: The host's time when the module ran.
      type: str
      returned: always
      sample: "2026-05-02T04:00:00.000000+02:00"
    since:
      description: Start of the counting window (O(since)).
      type: str
      returned: always
      sample: "2026-05-02T03:00:00.000000+02:00"
    recent:
      description: Start of the "happening now" window (O(recent)).
      type: str
      returned: always
      sample: "2026-05-02T03:45:00.000000+02:00"
summary:
  description: What a playbook branches on, and one sentence for humans.
  returned: always
  type: dict
  contains:
    stapling_errors_recent:
      description:
        - Whether any stapling code at level error or worse was logged within O(recent). Both set-up errors and
          responder failures count. Set-up errors include AH02218, which Apache logs at every start for a
          certificate without an OCSP URL, and AH02217 for a missing issuer.
      type: bool
      returned: always
      sample: true
    responder_errors_recent:
      description:
        - Whether a responder failed within O(recent). It is true for error-level codes of the C(fetch) and
          C(response) phases (AH01941, AH01974, AH01977, AH01985, AH01936, ...), false for set-up and cache errors
          and for AH02969 (a revoked or unknown certificate, where the responder works). This is the flag for "is a
          responder failing right now".
      type: bool
      returned: always
      sample: true
    counts:
      description: Lines per AH code within O(since).
      type: dict
      returned: always
      sample: {AH01941: 12, AH01974: 12}
    recent_counts:
      description: Lines per AH code within O(recent).
      type: dict
      returned: always
      sample: {AH01941: 3, AH01974: 3}
    responders:
      description: Every responder named within O(since), as Apache names it (C(host:port), C(host) or a URL).
      type: list
      elements: str
      returned: always
      sample: ["ocsp.example-ca.test", "127.0.0.1:8801"]
    vhosts:
      description:
        - The server names of the vhosts the lines within O(since) name (C(name:port) without the port), and of
          those serving a serial they name.
      type: list
      elements: str
      returned: always
      sample: [shop.example.com]
    first_seen:
      description: The earliest stapling line within O(since), or null.
      type: str
      returned: always
      sample: "2026-05-02T03:06:38.713219+02:00"
    last_seen:
      description: The latest stapling line within O(since), or null.
      type: str
      returned: always
      sample: "2026-05-02T03:59:01.100000+02:00"
    last_error:
      description: The latest error-level stapling line within O(since) with its code, time, level, log and
        responders, or null.
      type: dict
      returned: always
      sample: {code: AH01941, time: "2026-05-02T03:59:01.100000+02:00", level: error, log: /var/log/apache2/error.log,
               responders: ["ocsp.example-ca.test"],
               message: "[Thu May 02 03:59:01.100000 2026] [ssl:error] [pid 16491] AH01941: stapling_renew_response: responder error"}
    logs_read:
      description: How many logs could be read.
      type: int
      returned: always
      sample: 2
    unreadable_logs:
      description: The logs that could not be read (piped, syslog, missing, no permission); see RV(logs[].reason).
      type: list
      elements: str
      returned: always
      sample: ["|/usr/bin/rotatelogs /var/log/httpd/shop_error_log 86400"]
    unparsed_lines:
      description: Lines of all logs that are no error-log lines (continuations, programs' stderr).
      type: int
      returned: always
      sample: 0
    message:
      description: The counts in one sentence.
      type: str
      returned: always
      sample: "24 stapling messages since 2026-05-02T03:00:00+02:00: AH01941 x12, AH01974 x12; responders named: ocsp.example-ca.test"
codes:
  description:
    - One entry per stapling code logged within O(since) or O(recent), most recent first. Each entry has the counts
      and what the lines named, plus the table's C(level), C(phase), C(meaning), C(cause) and C(remedy).
  returned: always
  type: list
  elements: dict
  contains:
    code:
      description: The code, such as V(AH01974).
      type: str
      returned: always
      sample: AH01974
    count:
      description: Lines within O(since).
      type: int
      returned: always
      sample: 12
    recent_count:
      description: Lines within O(recent).
      type: int
      returned: always
      sample: 3
    first_seen:
      description: The first line within O(since), or null.
      type: str
      returned: always
      sample: "2026-05-02T03:06:38.713219+02:00"
    last_seen:
      description: The last line within O(since), or null.
      type: str
      returned: always
      sample: "2026-05-02T03:59:01.100000+02:00"
    levels:
      description: The levels the lines carried (the table's level when the log format has none).
      type: list
      elements: str
      returned: always
      sample: [error]
    responders:
      description:
        - The responders the lines named, or took over from the connect or resolve line of the same fetch.
      type: list
      elements: str
      returned: always
      sample: ["ocsp.comodoca.com"]
    certificates:
      description:
        - The certificates the lines named, as Apache prints them (serial in hex; subject and issuer when the line
          carries them, else null).
        - C(vhosts) lists the SSL vhosts whose certificate has that serial, when the certificates could be read.
      type: list
      elements: dict
      returned: always
      sample: [{subject: "CN=shop.example.com", issuer: "CN=Example CA", serial: "2B20A847D7EB130E", vhosts: [shop.example.com]}]
    vhosts:
      description:
        - The vhosts the lines named, as Apache's C(name:port); the certificate index of C(name:port:0) is dropped.
        - The vhosts that write to a log are listed under RV(logs[].vhosts).
      type: list
      elements: str
      returned: always
      sample: ["shop.example.com:443"]
    reasons:
      description: The OS or APR errors in front of the messages, such as C((111) Connection refused).
      type: list
      elements: str
      returned: always
      sample: ["(101) Network is unreachable", "(70007) The timeout specified has expired"]
    details:
      description: The C(SSL Library Error) lines OpenSSL added to the messages (AH01988).
      type: list
      elements: str
      returned: always
      sample: ["SSL Library Error: error:0D0680A8:asn1 encoding routines:asn1_check_tlen:wrong tag"]
    last_message:
      description: The last such line, as logged.
      type: str
      returned: always
      sample: >-
        [Thu May 02 03:59:01.100000 2026] [ssl:error] [pid 40752] (101)Network is unreachable:
        [client 121.240.38.40:5858] AH01974: could not connect to OCSP responder 'ocsp.comodoca.com'
    logs:
      description: The logs the lines were found in.
      type: list
      elements: str
      returned: always
      sample: [/usr/local/apache/logs/error_log]
    level:
      description: The level Apache logs this code at (from the table).
      type: str
      returned: always
      sample: error
    phase:
      description:
        - When Apache logs it. V(startup) means setting certificates up at a start or reload. V(fetch) means asking the
          responder during a handshake. V(response) means checking the answer. V(server) means the stapling cache
          and its locks.
      type: str
      returned: always
      sample: fetch
    meaning:
      description: What the message says, in plain words.
      type: str
      returned: always
      sample: Apache could not open a TCP connection to the OCSP responder (or proxy) it names.
    cause:
      description: What usually causes it.
      type: str
      returned: always
      sample: A network block (datacenter, firewall, egress rules), a broken IPv6 route ...
    remedy:
      description:
        - What to do. The table covers, from the set-up stage, AH02217 (issuer certificate missing), AH02235,
          AH02604 and AH02567 (stapling not set up for a certificate), AH02218 and AH02814 (no OCSP URL), AH02815
          and AH10177 (mod_md took over).
        - For the server, it covers AH01958 (no stapling cache, fatal), AH01959 (mutex, fatal), AH01872, AH01928,
          AH01929, AH01931, AH01932, AH01945, AH01948 and AH01949.
        - For fetches, it covers AH01941 (responder error), AH01972 (name does not resolve), AH01973 (connecting,
          debug only), AH01974 (cannot connect), AH01976, AH01977 and AH01978 (no answer or timeout), AH01979, AH01980 (HTTP error), AH01982,
          AH01983, AH01985 (read error or timeout), AH01986, AH01988 (no OCSP response), AH02321, AH01989, AH01939,
          AH01940, AH02621, AH01944 and AH01955.
        - For answers, it covers AH01934, AH01935, AH01936 (times invalid), AH01943 and AH02969 (revoked or unknown).
      type: str
      returned: always
      sample: Probe the responder from this host (fleet.stapling.ocsp_probe ...), or ping and ping6 it ...
responders:
  description: One entry per responder named within O(since).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The responder as Apache names it.
      type: str
      returned: always
      sample: "127.0.0.1:8801"
    count:
      description: Lines that named it (directly or through their fetch) within O(since).
      type: int
      returned: always
      sample: 4
    recent_count:
      description: Those within O(recent).
      type: int
      returned: always
      sample: 2
    codes:
      description: The codes of those lines.
      type: list
      elements: str
      returned: always
      sample: [AH01974, AH01941]
    first_seen:
      description: The first such line.
      type: str
      returned: always
      sample: "2026-05-02T03:06:38.713219+02:00"
    last_seen:
      description: The last such line.
      type: str
      returned: always
      sample: "2026-05-02T03:59:01.100000+02:00"
    vhosts:
      description: The SSL vhosts whose certificate (or C(SSLStaplingForceURL)) points at this responder; empty when
        the certificates could not be read.
      type: list
      elements: str
      returned: always
      sample: [shop.example.com, www.example.com]
logs:
  description: One entry per log, in the order read (the server's first).
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The file, or the C(ErrorLog) argument of a piped logger or syslog.
      type: str
      returned: always
      sample: /var/log/apache2/error.log
    kind:
      description: V(file), V(piped) or V(syslog).
      type: str
      returned: always
      sample: file
    origin:
      description:
        - V(config) for an C(ErrorLog) directive, V(default) for Apache's default when there is none, or V(option)
          for one from O(logs).
      type: str
      returned: always
      sample: config
    declared_by:
      description: The C(ErrorLog) directives that name it, with file, line, scope (V(server) or V(vhost)) and
        vhost.
      type: list
      elements: dict
      returned: always
      sample: [{file: /etc/apache2/apache2.conf, line: 18, scope: server, vhost: null}]
    vhosts:
      description: The SSL vhosts that write to it; for the server's log, those without their own C(ErrorLog).
      type: list
      elements: str
      returned: always
      sample: [shop.example.com]
    readable:
      description: Whether it could be read.
      type: bool
      returned: always
      sample: true
    reason:
      description: Why not, or null.
      type: str
      returned: always
      sample: null
    files:
      description: The files read (with O(rotated), C(<log>.1) first), with size, bytes read and whether the start
        was skipped.
      type: list
      elements: dict
      returned: always
      sample: [{path: /var/log/apache2/error.log, size: 10485760, bytes_read: 4194304, truncated: true}]
    lines:
      description: Non-empty lines read.
      type: int
      returned: always
      sample: 31250
    unparsed_lines:
      description: Lines that are no error-log lines.
      type: int
      returned: always
      sample: 2
    untimed_lines:
      description: Lines without a time, which cannot be placed in the window and were not counted.
      type: int
      returned: always
      sample: 0
    covers_since:
      description: Whether what was read reaches back to the start of the window; false means raise O(max_bytes).
      type: bool
      returned: always
      sample: true
    read_from:
      description: The earliest time among the lines read, or null.
      type: str
      returned: always
      sample: "2026-05-01T22:14:03.000000+02:00"
    codes:
      description: Per code found in this log, the same counts as RV(codes) without the table's texts.
      type: dict
      returned: always
      sample: {AH02218: {code: AH02218, count: 2, recent_count: 2, vhosts: ["new.example.com:443"]}}
"""

import datetime

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.stapling.plugins.module_utils import certificates, stapling_log
from ansible_collections.fleet.stapling.plugins.module_utils.apache_config import ApacheConfigError
from ansible_collections.fleet.stapling.plugins.module_utils.apache_host import (
    INSTANCE_ARGUMENT_SPEC,
    ApacheHostError,
    module_runner,
)
from ansible_collections.fleet.stapling.plugins.module_utils.short_lived_process import without_cycle_collection

LOG_ERRORS = (ApacheConfigError, ApacheHostError, stapling_log.StaplingLogError)


def main():
    without_cycle_collection()
    module = AnsibleModule(
        argument_spec=dict(
            discover=dict(type="bool", default=True),
            logs=dict(type="list", elements="path", default=[]),
            since=dict(type="str", default="1h"),
            recent=dict(type="str", default="15m"),
            max_bytes=dict(type="int", default=4194304),
            rotated=dict(type="bool", default=False),
            **INSTANCE_ARGUMENT_SPEC
        ),
        supports_check_mode=True,
    )
    try:
        result = stapling_log.diagnose(module.params, module_runner(module), datetime.datetime.now(),
                                       read_certificates=certificates.cryptography_problem() is None)
    except LOG_ERRORS as exc:
        module.fail_json(msg=str(exc))
    for warning in result.pop("warnings"):
        module.warn(warning)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
