#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: apache_stapling_info
short_description: Report OCSP stapling across a whole Apache httpd configuration tree
version_added: 1.0.0
description:
  - Reads the whole Apache configuration the way M(fleet.stapling.apache_stapling) does and reports, for every SSL
    virtual host, where it is defined, what it answers to, which certificate it serves, what that certificate says
    (OCSP URL, issuer, expiry, OCSP Must-Staple, whether httpd can find its issuer) and whether stapling is in effect
    for it, with the directive that decides it.
  - Also reports the server-scope stapling directives, C(SSLSessionCache), the Apache version and whether the socache
    module that the stapling cache needs is loaded.
  - Adds a census of the host's certificates per issuing CA (RV(census)), small enough to gather from a whole
    fleet, and the certbot renewal files that still ask for OCSP Must-Staple (RV(renewal_traps)).
  - Changes nothing; meant for audits and for playbook conditions.
requirements:
  - cryptography >= 3.4.8 on the managed host (the distribution's C(python3-cryptography) is enough on Debian 12,
    Ubuntu 22.04 and 24.04, RHEL 9 and its rebuilds)
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
    description: Reading twice gives the same report.
options:
  certbot_renewal_dir:
    description:
      - Where certbot keeps its renewal files (C(<name>.conf), one per certificate lineage). Each is read for a
        C(must_staple) option that is true in its C([renewalparams]) section (RV(renewal_traps)).
      - Only those files are read; the certificates and keys they name are never opened. A directory that does not
        exist (no certbot on the host) gives no traps.
    type: path
    default: /etc/letsencrypt/renewal
    version_added: 1.1.0
  state_dir:
    description:
      - The directory M(fleet.stapling.apache_stapling) keeps its state in, see
        O(fleet.stapling.apache_stapling#module:state_dir).
      - What the served certificates say is kept there between runs (C(certificate-facts.json), keyed by each
        file's inode, size and times), so that only new or changed certificate files are read; this module uses
        it and keeps it up to date.
      - It is only a cache. A directory that cannot be written costs time, nothing else.
    type: path
    default: /var/lib/fleet-stapling
    version_added: 1.1.0
seealso:
  - module: fleet.stapling.apache_stapling
"""

EXAMPLES = r"""
- name: Read the stapling setup of this host
  fleet.stapling.apache_stapling_info:
    ctl: "{{ stapling_apache_ctl | default(omit) }}"
    config_file: "{{ stapling_apache_config_file | default(omit) }}"
    server_root: "{{ stapling_apache_server_root | default(omit) }}"
  register: stapling_info

- name: Name the certbot lineages whose next renewal Let's Encrypt will refuse
  ansible.builtin.debug:
    msg: "{{ item.file }}:{{ item.line }} asks for Must-Staple ({{ item.certificate }})"
  loop: "{{ stapling_info.renewal_traps | selectattr('error', 'none') }}"

- name: Fail when stapling is on but the host serves no certificate with an OCSP URL
  ansible.builtin.assert:
    that: not stapling_info.census.stapling_serves_nothing

- name: Fail when a Must-Staple certificate is served without stapling
  ansible.builtin.assert:
    that: stapling_info.vhosts | selectattr('certificate.must_staple', 'defined')
          | selectattr('certificate.must_staple') | rejectattr('stapling') | list | length == 0
"""

RETURN = r"""
apache_version:
  description: The version C(ctl -V) reported.
  returned: always
  type: str
  sample: 2.4.62
config_file:
  description: The main configuration file that was read.
  returned: always
  type: str
  sample: /etc/apache2/apache2.conf
pid_file:
  description: Where the Apache master writes its pid (C(PidFile), else the compiled-in default), resolved.
  returned: always
  type: str
  sample: /var/run/apache2/apache2.pid
master_pid:
  description:
    - The pid of the running Apache master, as its pid file names it, or null when none is running. A graceful
      reload keeps it, so a role can tell afterwards whether the master survived with one look.
  returned: always
  type: int
  sample: 1234
instance:
  description:
    - How to drive this Apache instance and which layout it follows, for roles and playbooks to use as they are.
    - C(layout) is read from what the config includes, C(cpanel) (its C(pre_virtualhost_global.conf)),
      C(debian) (C(conf-enabled/) or C(sites-enabled/)) or C(rhel) (anything else).
    - C(reload_command) is cPanel's own restart script on cPanel hosts that have it, else O(ctl) with C(graceful);
      C(start_command) is O(ctl) with C(start). Commands are shell-quoted strings.
  returned: always
  type: dict
  contains:
    ctl:
      description: The control command, shell-quoted.
      type: str
    config_file:
      description: The main configuration file.
      type: str
    server_root:
      description: The ServerRoot the configuration ends up with.
      type: str
    layout:
      description: The layout.
      type: str
      choices: [debian, rhel, cpanel]
    reload_command:
      description: The graceful reload.
      type: str
    start_command:
      description: Starts the instance when it is down.
      type: str
    ca_bundle_dir:
      description:
        - Where a CA bundle for C(SSLCACertificateFile) goes, the layout's usual directory (C(/etc/ssl/certs),
          C(/etc/pki/tls/certs)) when the host has it, else C(ssl/) under the ServerRoot.
      type: str
    generated_main_config:
      description:
        - Whether cPanel generates the main config (a C(/usr/local/cpanel) install or cPanel's banner in the file),
          so that it is never edited.
      type: bool
  sample: {ctl: /usr/sbin/apache2ctl, config_file: /etc/apache2/apache2.conf, server_root: /etc/apache2,
           layout: debian, reload_command: /usr/sbin/apache2ctl graceful, start_command: /usr/sbin/apache2ctl start,
           ca_bundle_dir: /etc/ssl/certs, generated_main_config: false}
server:
  description: Server-scope stapling settings.
  returned: always
  type: dict
  contains:
    stapling:
      description: Whether C(SSLUseStapling) is on at server scope (the default of every vhost).
      type: bool
      returned: always
      sample: true
    stapling_cache:
      description: The server-scope C(SSLStaplingCache), or null.
      type: str
      returned: always
      sample: shmcb:/run/apache2/ssl_stapling(128000)
    stapling_cache_module:
      description: The socache module the stapling cache needs, or null.
      type: str
      returned: always
      sample: socache_shmcb
    stapling_cache_module_loaded:
      description: Whether that module is loaded, or null when there is no cache.
      type: bool
      returned: always
      sample: true
    session_cache:
      description: The server-scope C(SSLSessionCache), or null.
      type: str
      returned: always
      sample: shmcb:/run/apache2/ssl_scache(512000)
    md_loaded:
      description: Whether mod_md is loaded.
      type: bool
      returned: always
      sample: false
    md_stapling:
      description: Whether C(MDStapling) is on at server scope (mod_md staples independently of C(SSLUseStapling)).
      type: bool
      returned: always
      sample: false
    ssl_module_loaded:
      description: Whether mod_ssl is loaded.
      type: bool
      returned: always
      sample: true
    directives:
      description: Every active server-scope stapling directive with its file and line.
      type: list
      elements: dict
      returned: always
      sample: [{name: SSLUseStapling, value: "on", file: /etc/httpd/conf.d/ssl.conf, line: 12}]
vhosts:
  description: One entry per SSL virtual host.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The vhost's name and where it is defined.
      type: str
      returned: always
      sample: "shop.example.com (/etc/apache2/sites-enabled/shop.conf:1)"
    key:
      description: The file and the vhost's position among that file's vhosts; unlike RV(vhosts[].line), edits never change it.
      type: str
      returned: always
      sample: "/etc/apache2/sites-enabled/shop.conf#0"
    file:
      description: The file that holds the C(<VirtualHost>) block.
      type: str
      returned: always
      sample: /etc/apache2/sites-enabled/shop.conf
    line:
      description: The line of the C(<VirtualHost>) tag.
      type: int
      returned: always
      sample: 1
    addresses:
      description: The addresses of the C(<VirtualHost>) tag.
      type: list
      elements: str
      returned: always
      sample: ["*:443"]
    server_name:
      description: C(ServerName), or null.
      type: str
      returned: always
      sample: shop.example.com
    aliases:
      description: Every C(ServerAlias) name.
      type: list
      elements: str
      returned: always
      sample: [www.shop.example.com]
    certificate_file:
      description: The first C(SSLCertificateFile), resolved against ServerRoot.
      type: str
      returned: always
      sample: /etc/ssl/certs/shop.pem
    chain_file:
      description: C(SSLCertificateChainFile), or null.
      type: str
      returned: always
      sample: null
    stapling:
      description: Whether stapling is in effect for this vhost, by mod_ssl or by mod_md.
      type: bool
      returned: always
      sample: true
    stapling_engine:
      description:
        - Who staples for this vhost. V(mod_md) when mod_md is loaded with C(MDStapling on) for the vhost's domain,
          or for every certificate through C(MDStapleOthers) (it then staples even with C(SSLUseStapling off)),
          V(mod_ssl) when C(SSLUseStapling) is on, V(none) otherwise.
      type: str
      returned: always
      sample: mod_ssl
    stapling_decided_by:
      description: V(vhost) (its own C(SSLUseStapling)), V(server) (the server-scope one) or V(default) (none, off).
      type: str
      returned: always
      sample: server
    stapling_directive:
      description: The deciding directive with file and line, or null.
      type: dict
      returned: always
      sample: {name: SSLUseStapling, value: "on", file: /etc/httpd/conf.d/ssl.conf, line: 12}
    certificate:
      description:
        - What the certificate says, or null when it could not be read (see RV(vhosts[].certificate_error)).
        - C(issuer_in_chain) tells whether the certificate file or C(SSLCertificateChainFile) holds the issuer;
          C(issuer_found) also counts C(SSLCACertificateFile). Without the issuer httpd cannot staple (AH02217).
      type: dict
      returned: always
      sample: {subject: CN=shop.example.com, issuer: "CN=Example CA", serial: 1A2B, not_after: "2027-01-01T00:00:00Z",
               ocsp_url: "http://ocsp.example-ca.test", must_staple: false, subject_key_id: 9f2c..., authority_key_id: 41aa...,
               issuer_in_chain: true, issuer_found: true}
    certificate_error:
      description: Why the certificate could not be read, or null.
      type: str
      returned: always
      sample: null
    md_stored_response:
      description:
        - When mod_md is loaded, the response its store holds for the vhost's certificate (what it staples from,
          across reloads and restarts), or null when it holds none.
        - C(usable) is a good or revoked response still valid (the true status, which mod_md staples).
          C(renewal_errors) counts mod_md's failed renewal runs in a row
          and C(last_renewal) says what its last run did.
        - While renewals fail, C(failing_since) is when they started failing (from mod_md's job log) and
          C(projected_recovery) the earliest a renewal can be expected to work. That is the later of mod_md's next
          retry and the outage lasting as long again as it has so far (the current error rate carried forward).
          C(at_risk) flags a response that runs out before then, when mod_md would staple nothing.
      type: dict
      returned: always
      sample: {status: good, valid_until: "2026-12-03T10:00:00Z", seconds_left: 80000, usable: true, renewal_errors: 0,
               last_renewal: "certificate status is GOOD", failing_since: null, projected_recovery: null,
               at_risk: false}
findings:
  description:
    - Settings that work but hurt when a responder fails, each with a C(code) and a C(message). Codes are
      V(fake_try_later) (Apache's defaults staple a made-up tryLater that Firefox rejects), V(long_responder_timeout)
      (handshakes wait 10 s or more while a responder hangs), V(cache_too_small) (a C(shmcb) cache smaller than
      900 bytes per stapling vhost) and V(no_cache) (stapling without C(SSLStaplingCache), fatal at the next reload).
    - Empty when no vhost staples.
  returned: always
  type: list
  elements: dict
  sample: [{code: fake_try_later, message: "SSLStaplingReturnResponderErrors and SSLStaplingFakeTryLater are on ..."}]
census:
  description:
    - The host's certificates per issuing CA, counted from RV(vhosts), for fleet reports.
    - C(issuers) has one entry per CA (by the issuer's CN, else its full name) with C(certificates) (distinct
      certificates), C(with_ocsp_url) and C(must_staple) (how many of them have an OCSP URL and the Must-Staple
      extension), C(vhosts) (vhosts serving them), C(vhosts_stapling) (those stapling is on for) and
      C(vhosts_stapling_without_ocsp_url) (stapling on for a certificate without an OCSP URL and no
      C(SSLStaplingForceURL), for which httpd logs AH02218 at every start and staples nothing).
    - C(stapling_serves_nothing) is true when stapling is on for some vhost (C(stapling_configured)) but every one
      of them serves a certificate without an OCSP URL, so that the host staples nothing at all.
  returned: always
  type: dict
  contains:
    issuers:
      description: Per issuing CA, sorted by name.
      type: list
      elements: dict
    vhosts:
      description: The SSL vhosts.
      type: int
    vhosts_stapling:
      description: The SSL vhosts stapling is on for.
      type: int
    vhosts_unknown_certificate:
      description: The vhosts whose certificate could not be read, counted under no CA.
      type: int
    stapling_configured:
      description: Whether stapling is on for any vhost.
      type: bool
    stapling_serves_nothing:
      description: Whether stapling is on for some vhosts, none of which has a certificate it could be stapled for.
      type: bool
  sample: {issuers: [{issuer: R11, certificates: 3, with_ocsp_url: 0, must_staple: 0, vhosts: 5, vhosts_stapling: 5,
                      vhosts_stapling_without_ocsp_url: 5}],
           vhosts: 5, vhosts_stapling: 5, vhosts_unknown_certificate: 0, stapling_configured: true,
           stapling_serves_nothing: true}
  version_added: 1.1.0
renewal_traps:
  description:
    - The certbot renewal files under O(certbot_renewal_dir) that ask for OCSP Must-Staple (C(must_staple = True) in
      C([renewalparams])). Let's Encrypt no longer issues Must-Staple certificates, so certbot's next renewal of
      such a lineage fails and the old certificate runs out unless the option is removed.
    - A renewal file (or the directory) that cannot be read is listed too, with C(error) set and no C(line), as it
      may hold a trap. Empty when there is no such directory.
  returned: always
  type: list
  elements: dict
  contains:
    file:
      description: The renewal file.
      type: str
    line:
      description: The line of the C(must_staple) option (1-based), or null for a file that could not be read.
      type: int
    text:
      description: That line as written, or null.
      type: str
    certificate:
      description: The certificate lineage, the file name without C(.conf) (what C(certbot --cert-name) takes).
      type: str
    cert_path:
      description: The C(cert) path the renewal file names (never opened), or null.
      type: str
    error:
      description: Why the file could not be read, or null for a Must-Staple trap.
      type: str
  sample: [{file: /etc/letsencrypt/renewal/shop.example.com.conf, line: 14, text: "must_staple = True",
            certificate: shop.example.com, cert_path: /etc/letsencrypt/live/shop.example.com/cert.pem, error: null}]
  version_added: 1.1.0
files:
  description: Every configuration file that was read, in the order httpd reads them.
  returned: always
  type: list
  elements: str
  sample: [/etc/apache2/apache2.conf, /etc/apache2/ports.conf]
missing_includes:
  description: IncludeOptional patterns that matched nothing.
  returned: always
  type: list
  elements: str
  sample: [/etc/apache2/conf-enabled/*.conf]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.stapling.plugins.module_utils import (
    apache_instance,
    certbot_renewal,
    certificate_cache,
    certificates,
    host_lock,
    md_store,
    stapling_census,
    stapling_facts,
)
from ansible_collections.fleet.stapling.plugins.module_utils.apache_host import (
    INSTANCE_ARGUMENT_SPEC,
    discover_from_params,
    module_runner,
)
from ansible_collections.fleet.stapling.plugins.module_utils.short_lived_process import without_cycle_collection
from ansible_collections.fleet.stapling.plugins.module_utils.stapling_change import STAPLING_ERRORS


def _with_md_store(config, facts):
    """Each vhost's response in mod_md's store, when mod_md is loaded."""
    responses, job = md_store.read_store(md_store.store_dir(config)) if facts["server"]["md_loaded"] else ({}, None)
    now = md_store.utc_now()
    for vhost in facts["vhosts"]:
        sha1 = (vhost.get("certificate") or {}).get("sha1_fingerprint")
        vhost["md_stored_response"] = md_store.stored_response(sha1, responses, job, now) if job else None


def main():
    without_cycle_collection()
    module = AnsibleModule(
        argument_spec=dict(
            certbot_renewal_dir=dict(type="path", default=certbot_renewal.DEFAULT_RENEWAL_DIR),
            state_dir=dict(type="path", default=host_lock.DEFAULT_STATE_DIR),
            **INSTANCE_ARGUMENT_SPEC
        ),
        supports_check_mode=True,
    )
    cryptography_problem = certificates.cryptography_problem()
    if cryptography_problem:
        module.fail_json(msg=cryptography_problem, exception=certificates.CRYPTOGRAPHY_IMPORT_ERROR)
    try:
        host = discover_from_params(module_runner(module), module.params)
        config = host.parse()
        cache = certificate_cache.CertificateFactsCache(module.params["state_dir"])
        facts = stapling_facts.stapling_facts(config, cache=cache)
        cache.save()
        _with_md_store(config, facts)
    except STAPLING_ERRORS as exc:
        module.fail_json(msg=str(exc))
    renewal_traps = certbot_renewal.renewal_traps(module.params["certbot_renewal_dir"])
    for warning in facts.pop("warnings"):
        module.warn(warning)
    for unreadable in (trap for trap in renewal_traps if trap["error"]):
        module.warn("certbot renewal file %s %s; it may ask for Must-Staple" % (unreadable["file"], unreadable["error"]))
    module.exit_json(changed=False, apache_version=host.version_string, config_file=host.config_file,
                     pid_file=host.pid_file(config), master_pid=host.master_pid(config),
                     instance=apache_instance.describe(host, config), census=stapling_census.host_census(facts["vhosts"]),
                     renewal_traps=renewal_traps, **facts)


if __name__ == "__main__":
    main()
