#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: apache_stapling
short_description: Switch OCSP stapling on or off across a whole Apache httpd configuration tree
version_added: 1.0.0
description:
  - Reads the whole Apache configuration, starting at the main config and following C(Include) and C(IncludeOptional),
    C(Define) and C(${VAR}), and C(<IfModule>), C(<IfDefine>), C(<IfVersion>) and C(<IfFile>) sections.
  - Makes the effective C(SSLUseStapling) of every SSL virtual host, or of the selected ones, match O(state), by changing
    the server-scope default and every vhost override that contradicts it. Edits are minimal; only the directive lines
    that change or are added differ, and comments, line endings and other bytes stay as they were.
  - When enabling, makes sure a server-scope C(SSLStaplingCache) exists (derived from C(SSLSessionCache) when none is
    set) and that the socache module it needs is loaded, because C(apachectl -t) accepts a stapling setup without them
    and httpd then dies at the next reload.
  - Disabling also switches mod_md's C(MDStapling) off where it is on, because mod_md staples even with
    C(SSLUseStapling off).
  - Refuses to disable stapling for a vhost whose certificate carries OCSP Must-Staple unless O(force=true), because
    browsers such as Firefox refuse such a site without a staple.
  - Fixes typographic quotes (as pasted from documents) in stapling directives, with a warning.
  - Every write is atomic and keeps owner, mode and SELinux context; the whole config is then checked with C(ctl -t),
    and when that fails every changed file is restored byte for byte and the module fails with httpd's message.
  - Existing directives are changed where they are. New server-scope directives go to the layout's own place
    for them, planned with the rest of the change; on Debian C(conf-available/fleet-stapling.conf) plus its
    C(conf-enabled) link (made the way C(a2enconf) makes it), on RHEL C(conf.d/fleet-stapling.conf), on cPanel
    C(includes/pre_virtualhost_global.conf). Check mode, the diff, the validation and the rollback cover the new
    file and the link alike.
  - When cPanel generates the main C(httpd.conf) (a C(/usr/local/cpanel) install, or cPanel's banner at the top
    of the file), that file is never edited; per-vhost changes go to the vhost's userdata include directory. A
    host that only looks like cPanel has its C(httpd.conf) edited like any other file.
  - A generated vhost with no userdata include yet is changed the cPanel way, when C(rebuildhttpdconf) is there
    (see O(cpanel_root)); the setting goes to a file in the userdata directory that the vhost names in its commented
    C(Include), cPanel's rebuild then switches that C(Include) on, and C(ctl -t) checks the result. On failure the
    file is removed and the rebuild run again. RV(regenerated_files) names what cPanel rewrote.
  - A change never reloads Apache. O(reload), given to a separate call (the role's handler), reloads it and proves
    that it survived, and takes the change back when it did not.
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
    description: Check mode computes the exact edits and reports them, writing nothing.
  diff_mode:
    support: full
    description: One unified diff per changed file.
  idempotent:
    support: full
    description: A second run with the same options changes nothing.
options:
  state:
    description:
      - V(enabled) makes stapling effective for every selected SSL vhost, V(disabled) switches it off.
      - When omitted, only the tunables, O(cache) and O(ca_certificate_file) are applied.
    type: str
    choices: [enabled, disabled]
  engine:
    description:
      - Who staples, with O(state=enabled). V(mod_md) switches the whole host to mod_md's stapling, which fetches
        in the background and keeps responses on disk across reloads and restarts, so a hanging responder never
        stalls a handshake. It loads mod_md the layout's way when needed (then RV(reload_twice) is true), sets
        C(MDStapling on) and an C(MDStoreDir), makes the store when missing (RV(created_dirs)) and refuses one
        under a directory Apache's children cannot enter, and switches C(SSLUseStapling) off; C(SSLStaplingCache)
        stays. OCSP Must-Staple vhosts move only with a good
        response in the store. When it holds none, one is fetched from the responder, checked and written there
        (RV(store_seeded)). When none can be had, the switch is refused unless O(force=true).
      - V(mod_ssl) switches back, C(MDStapling) off and C(SSLUseStapling) on; mod_md stays loaded.
      - When omitted, the engine is left as it is.
    type: str
    choices: [mod_ssl, mod_md]
  keep_stored_staples:
    description:
      - With O(state=disabled), leave the vhosts that mod_md staples alone when its store holds a good response for
        each that is valid for more than a day or that renewals are not failing to replace. mod_md staples from its
        store without asking the responder, so a responder outage does not slow their handshakes; they are listed
        in RV(kept_from_store). When any of them lacks such a response, mod_md's stapling goes off for the host.
      - Set V(false) to switch mod_md's stapling off regardless.
    type: bool
    default: true
  vhosts:
    description:
      - Only act on SSL vhosts whose C(ServerName) or a C(ServerAlias) matches one of these shell-style patterns.
      - Without O(vhosts) and O(ocsp_hosts), every SSL vhost is affected and the server-scope default is changed.
    type: list
    elements: str
    default: []
  ocsp_hosts:
    description:
      - Only act on SSL vhosts whose certificate's OCSP URL (or C(SSLStaplingForceURL)) points at one of these hosts,
        given as C(host) or C(host:port). This flips only one CA's sites during that CA's responder outage.
    type: list
    elements: str
    default: []
  without_ocsp_url:
    description:
      - With O(state=enabled), what to do with a selected vhost whose certificate has no OCSP URL (and no
        C(SSLStaplingForceURL)), such as every certificate Let's Encrypt has issued since May 2025.
      - V(off) switches stapling off in that vhost's own scope while the others staple, so that httpd no longer logs
        AH02218 and AH02604 for its certificate at every start and reload (AH02814 for each further vhost sharing
        it). It is decided again at every run from the certificate served then, so a renewal that brings an OCSP
        URL back switches the vhost on at the next run. The vhosts it keeps off are listed in RV(off_without_url).
      - V(leave) switches such vhosts on like the others, with a warning for each.
      - A Must-Staple certificate without an OCSP URL is never switched off for this; it gets a warning, as no
        staple can ever be served for it.
      - With O(ocsp_hosts) (which never select such a vhost), those stapling now are switched off as well; with
        O(vhosts), no other vhost is touched.
      - Vhosts stapled by mod_md are left to mod_md.
    type: str
    choices: ["off", "leave"]
    default: "off"
  force:
    description:
      - Disable stapling even for vhosts whose certificate is OCSP Must-Staple.
    type: bool
    default: false
  cache:
    description:
      - The server-scope C(SSLStaplingCache) to set, for example V(shmcb:/run/apache2/ssl_stapling(512000\)).
      - When omitted and stapling is enabled without any cache, one of the same kind and directory as C(SSLSessionCache)
        is added, sized at 2 KiB per SSL vhost and at least 128000 bytes.
    type: str
  ca_certificate_file:
    description:
      - Sets the server-scope C(SSLCACertificateFile), the bundle httpd searches for each certificate's issuer.
    type: path
  responder_timeout:
    description: Sets C(SSLStaplingResponderTimeout) (seconds) at server scope.
    type: int
  return_responder_errors:
    description: Sets C(SSLStaplingReturnResponderErrors) at server scope.
    type: bool
  fake_try_later:
    description: Sets C(SSLStaplingFakeTryLater) at server scope.
    type: bool
  standard_cache_timeout:
    description: Sets C(SSLStaplingStandardCacheTimeout) (seconds) at server scope.
    type: int
  error_cache_timeout:
    description: Sets C(SSLStaplingErrorCacheTimeout) (seconds) at server scope.
    type: int
  force_url:
    description: Sets C(SSLStaplingForceURL) at server scope, overriding the OCSP URL of every certificate.
    type: str
  server_file:
    description:
      - The file to which new server-scope directives are appended (created when missing; it must be one the
        config includes).
      - By default they go to the layout's place for them (see the description), or, on a layout without one,
        beside the existing stapling or session cache settings.
    type: path
  protected_files:
    description:
      - Files the module must never edit. Directives in them are overridden from later, editable files instead.
      - Defaults to the main config on cPanel servers whose C(httpd.conf) cPanel generates.
    type: list
    elements: path
  backup:
    description: Leave a timestamped copy of every file before changing it.
    type: bool
    default: false
  undo:
    description:
      - Put the host back as it was before earlier runs of this module, given what they returned (at least
        RV(backups), RV(created_files), RV(created_links) and RV(created_dirs); the runs must have had
        O(backup=true)). The newest run is undone first, then the one before. Where a run had cPanel regenerate httpd.conf
        (RV(regenerated_files)), cPanel's rebuild runs again. The restored config is checked with C(ctl -t).
      - This is how a change that passed validation but killed httpd at its reload is taken back. With O(undo),
        every option but the instance ones is ignored.
    type: list
    elements: dict
  discard_backups:
    description:
      - Remove the backup copies that earlier runs of this module made (given what they returned, at least
        RV(backups)), once their change is known to be good, for example after httpd survived the reload. One call
        for every copy of every run. Only files beside the file they back up, named as O(backup=true) names them,
        are removed.
      - With O(discard_backups), every option but the instance ones is ignored, httpd is not asked anything, and
        only C(changed) and RV(removed_files) are returned.
    type: list
    elements: dict
  reload:
    description:
      - Reload httpd after validated changes and make sure it survived, in one call. C(ctl -t) accepts setups
        that kill httpd when it loads them, so the module then waits for the master that ran before (or, after a
        full restart, the one the pid file names) to start children of the new generation, and for every vhost
        in the records' RV(check_targets) to answer a TLS handshake (Python's own C(ssl) module; neither pyOpenSSL nor
        the C(openssl) command is needed, and their absence never looks like a dead httpd).
      - When httpd did not survive, the records are undone as with O(undo), httpd is started again with the previous
        configuration and the module fails, naming what happened.
      - When it survived, the records' backup copies are removed (unless O(backup=true)), and where a record has
        RV(reload_twice) (mod_md newly loaded) a second graceful reload follows with the same checks.
      - Waits end at an event (new children, a handshake) or at a deadline; only a failed handshake is tried again, a second later.
      - With O(reload), every option but the instance ones and O(backup) is ignored. In check mode nothing is run.
    type: dict
    suboptions:
      command:
        description: The reload command (a shell-quoted string or a list; no shell runs it), such as C(apachectl graceful).
        type: raw
        required: true
      start_command:
        description: The command that starts httpd again after a reload killed it.
        type: raw
      master_pid:
        description: The master's pid before the reload (RV(fleet.stapling.apache_stapling_info#module:master_pid)).
        type: int
      records:
        description: What this run's changes returned (at least RV(check_targets), RV(backups), RV(created_files),
          RV(created_links), RV(created_dirs) and RV(reload_twice)).
        type: list
        elements: dict
        default: []
      attempts:
        description: How many times the TLS handshakes are tried, one second apart, before httpd counts as not answering.
        type: int
        default: 5
      check_staples:
        description:
          - Once httpd survived, ask every SSL vhost for a staple over TLS from the host, as
            M(fleet.stapling.ocsp_probe) does with O(fleet.stapling.ocsp_probe#module:discover=true),
            O(fleet.stapling.ocsp_probe#module:stapled=true) and
            O(fleet.stapling.ocsp_probe#module:ask_responders=false), and return its report as RV(staples). This
            saves the separate module run that check would take on every host.
          - A check that cannot be made (neither pyOpenSSL nor the C(openssl) command on the host) never fails the
            reload; RV(staples) then says C(checked=false) and why.
        type: bool
        default: false
      staple_timeout:
        description: With O(reload.check_staples), the timeout of each vhost's TLS connection, in seconds.
        type: float
        default: 3
      staple_settle:
        description:
          - With O(reload.check_staples), how long a vhost that still serves what its previous config said is asked
            again, every quarter of a second (workers of the old generation finish their connections first), as
            O(fleet.stapling.ocsp_probe#module:stapled_settle).
        type: float
        default: 10
  state_dir:
    description:
      - Where the module keeps, on the managed host, the lock and the journal of each Apache instance (keyed by its
        main config file). Made with mode 0700 when missing; refused when it belongs to another user.
      - It must survive a reboot (so not under C(/run)), as the journal of a run killed between writing and C(ctl -t),
        and the copies of the old files it needs, are what the next run repairs the host from.
    type: path
    default: /var/lib/fleet-stapling
  lock_timeout:
    description:
      - How many seconds to wait for another run that holds the lock of the same Apache instance (another play,
        another operator) before failing with a message naming it (pid, what it does, since when). V(0) fails at
        once instead of waiting.
      - Every run that writes (a change, O(undo), O(reload)) holds the lock exclusively from reading the config for
        its plan through the write, C(ctl -t), the rollback and the reload checks. Check mode holds it shared, so
        that it waits for a writer and never reports on a half-written tree, while checks run side by side; when
        O(state_dir) cannot be made (an unprivileged check), check mode reads without the lock and warns.
    type: int
    default: 120
notes:
  - Runs of this module on the same Apache instance never interleave their writes (see O(lock_timeout)). A lock
    left by a killed run does not block, as the kernel drops it with the process, and the next run names the pid that
    left it (RV(lock)).
  - Before the first file is replaced, a run writes a journal of what it is about to change (the records the
    undo takes) beside the lock, with its own copy of every file when O(backup=false). A run killed before its
    change passed C(ctl -t) leaves that journal; the next run (of any kind but O(discard_backups)) restores those
    files byte for byte first, checks them with C(ctl -t), reports it in RV(repaired) and warns, then does its work.
  - A file the plan would replace that changed on disk after it was read for the plan (another tool, an
    operator's editor) makes the module fail before writing anything, naming the file.
  - The socache module check uses the C(LoadModule) lines of the config and the compiled-in modules that C(ctl -M) lists.
seealso:
  - module: fleet.stapling.apache_stapling_info
"""

EXAMPLES = r"""
- name: Switch stapling off for every SSL vhost (incident kill switch)
  fleet.stapling.apache_stapling:
    state: disabled
    ctl: "{{ stapling_apache_ctl | default(omit) }}"
    config_file: "{{ stapling_apache_config_file | default(omit) }}"
    server_root: "{{ stapling_apache_server_root | default(omit) }}"
  notify: Validate and reload apache

- name: Switch stapling off only for the sites of the CA whose responder is down
  fleet.stapling.apache_stapling:
    state: disabled
    ocsp_hosts:
      - ocsp.example-ca.test
  register: stapling_change

- name: Switch stapling back on with a short responder timeout and no fake tryLater
  fleet.stapling.apache_stapling:
    state: enabled
    responder_timeout: 3
    return_responder_errors: false
    fake_try_later: false
    error_cache_timeout: 60

- name: Take back the change registered as stapling_change (it passed ctl -t, but httpd died at the reload)
  fleet.stapling.apache_stapling:
    undo:
      - "{{ stapling_change }}"

- name: Reload, and take the change back if httpd does not survive it (a handler)
  fleet.stapling.apache_stapling:
    reload:
      command: apachectl graceful
      start_command: apachectl start
      master_pid: "{{ stapling_before.master_pid }}"
      records:
        - "{{ stapling_change }}"

- name: Show what disabling would change, without writing anything
  fleet.stapling.apache_stapling:
    state: disabled
    vhosts:
      - "*.shop.example.com"
  check_mode: true
  diff: true
"""

RETURN = r"""
changed_files:
  description: The files that were (or in check mode would be) changed or created.
  returned: always
  type: list
  elements: str
  sample: [/etc/apache2/sites-available/shop.conf]
created_files:
  description: The files among RV(changed_files) that did not exist before (per-vhost include files on cPanel).
  returned: always
  type: list
  elements: str
  sample: [/etc/apache2/conf.d/userdata/ssl/2_4/user/shop.example.com/fleet_stapling.conf]
reload_twice:
  description:
    - Whether mod_md was newly loaded (O(engine=mod_md)). httpd then needs two graceful reloads, one after the
      other. After the first, mod_md's background fetcher does not run (mod_watchdog logs AH02980) and nothing is
      stapled; the second starts it, without dropping a connection as a full restart would.
  returned: always
  type: bool
  sample: false
store_seeded:
  description:
    - With O(engine=mod_md), the good responses fetched, checked and put in mod_md's store so that OCSP Must-Staple
      vhosts are stapled from the first handshake after the switch (in check mode, fetched and checked only).
  returned: always
  type: list
  elements: dict
  sample: [{vhost: "shop.example.com (/etc/apache2/sites-enabled/shop.conf:1)", file: /etc/apache2/md/ocsp/other/ocsp-6738dcc7.json,
            valid_until: "2026-12-03T10:00:00Z"}]
kept_from_store:
  description: With O(state=disabled), the vhosts left stapling from mod_md's store, and until when that response is valid.
  returned: always
  type: list
  elements: dict
  sample: [{vhost: "shop.example.com (/etc/apache2/sites-enabled/shop.conf:1)", valid_until: "2026-12-03T10:00:00Z"}]
check_targets:
  description:
    - Where to check, after the reload, that Apache still answers TLS. These are the first few vhosts whose stapling
      changed, or the first SSL vhost when none switched (C(*) and C(_default_) become loopback). Fits
      O(fleet.stapling.ocsp_probe#module:stapled_targets).
  returned: always
  type: list
  elements: dict
  sample: [{address: 127.0.0.1, port: 443, server_name: shop.example.com}]
regenerated_files:
  description:
    - Generated files that cPanel's C(rebuildhttpdconf) rewrote (in check mode, would rewrite) so that each changed
      vhost includes its userdata file; cPanel, not this module, writes them, and rewrites them at every rebuild.
  returned: always
  type: list
  elements: str
  sample: [/etc/apache2/conf/httpd.conf]
created_dirs:
  description:
    - Directories that were (or in check mode would be) made, outermost first. With O(engine=mod_md), mod_md's store
      and any missing directory above it are made root's with mode 0755, so that Apache's children can reach the
      store (mod_md would make missing parents readable by root only). Undoing the run removes them with what
      was put in them since.
  returned: always
  type: list
  elements: str
  sample: [/etc/apache2/md]
created_links:
  description: Symlinks that were (or in check mode would be) made, such as the C(conf-enabled) link of a new settings file.
  returned: always
  type: list
  elements: str
  sample: [/etc/apache2/conf-enabled/fleet-stapling.conf]
backups:
  description: Backup files made, by the real path (symlinks resolved) of the file they back up.
  returned: when O(backup=true) and something changed
  type: dict
  sample: {/etc/apache2/sites-available/shop.conf: /etc/apache2/sites-available/shop.conf.1234.2026-11-22@10:00:00~}
vhost_changes:
  description: The SSL vhosts whose effective stapling changes, with the new state.
  returned: always
  type: list
  elements: dict
  sample: [{vhost: "shop.example.com (/etc/apache2/sites-enabled/shop.conf:1)", stapling: false}]
off_without_url:
  description:
    - With O(state=enabled) and O(without_ocsp_url=off), the ids of the vhosts kept (or switched) off because their
      certificate has no OCSP URL.
  returned: always
  type: list
  elements: str
  sample: ["blog.example.com (/etc/apache2/sites-enabled/blog.conf:1)"]
selected_vhosts:
  description: The ids of the SSL vhosts the selection matched (all of them without O(vhosts) and O(ocsp_hosts)).
  returned: always
  type: list
  elements: str
  sample: ["shop.example.com (/etc/apache2/sites-enabled/shop.conf:1)"]
stapling:
  description:
    - The server-scope stapling settings after the change (in check mode, as they would be), as
      M(fleet.stapling.apache_stapling_info) names them. Each vhost's facts are that module's (on a shared host they
      were most of this result); RV(vhosts_stapling) says which vhosts staple.
  returned: always
  type: dict
  contains:
    server:
      description: Server-scope stapling settings.
      type: dict
      returned: always
  sample: {server: {stapling: false, stapling_cache: "shmcb:/run/apache2/ssl_stapling(128000)"}}
vhosts_stapling:
  description:
    - The SSL vhosts that staple after the change (in check mode, that would staple), by C(id) (name, file and line)
      as M(fleet.stapling.apache_stapling_info) names them; with mod_ssl or mod_md alike.
    - A list of names rather than an entry per vhost, since on a host with thousands of vhosts a dict per vhost was
      most of what Ansible had to walk, send and decode.
  returned: when the stapling state or settings were asked for (not with O(undo), O(reload) or O(discard_backups))
  type: list
  elements: str
  sample: ["www.example.com (/etc/apache2/sites-enabled/www.conf:1)"]
census:
  description:
    - The host's certificates per issuing CA after the change (in check mode, as they would be), counted as
      RV(fleet.stapling.apache_stapling_info#module:census) counts them, for fleet reports.
  returned: when the stapling state or settings were asked for (not with O(undo), O(reload) or O(discard_backups))
  type: dict
  sample: {issuers: [{issuer: Example CA, certificates: 2, with_ocsp_url: 1, must_staple: 0, vhosts: 3,
                      vhosts_stapling: 2, vhosts_stapling_without_ocsp_url: 0}],
           vhosts: 3, vhosts_stapling: 2, vhosts_unknown_certificate: 0, stapling_configured: true,
           stapling_serves_nothing: false}
certificate_cache:
  description:
    - What the served certificates said, kept between runs in O(state_dir) (C(certificate-facts.json)) and keyed by
      each file's inode, size and times, so that only new or changed certificate files are read again.
    - C(reused) and C(read) count the (certificate, chain, CA file) combinations taken from it and read afresh;
      C(problem) says why the file could not be used or kept, which only costs the next run time.
  returned: when the stapling state or settings were asked for (not with O(undo), O(reload) or O(discard_backups))
  type: dict
  sample: {path: /var/lib/fleet-stapling/certificate-facts.json, reused: 4998, read: 2, problem: null}
restored_files:
  description: With O(undo), the files put back from their backups.
  returned: when O(undo) is given
  type: list
  elements: str
  sample: [/etc/apache2/sites-available/shop.conf]
removed_files:
  description:
    - With O(undo), the files, links and directories the undone runs had created, now removed.
    - With O(discard_backups), the backup copies removed (in check mode, that would be removed).
    - With O(reload), the backup copies removed once httpd survived.
  returned: when O(undo), O(discard_backups) or O(reload) is given
  type: list
  elements: str
  sample: [/etc/apache2/conf-enabled/fleet-stapling.conf, /etc/apache2/conf-available/fleet-stapling.conf]
reloaded:
  description: With O(reload), whether httpd was reloaded and survived (false in check mode).
  returned: when O(reload) is given
  type: bool
  sample: true
reloads:
  description: With O(reload), how many reloads were done (two when mod_md was newly loaded).
  returned: when O(reload) is given
  type: int
  sample: 1
master_pid:
  description:
    - The pid of the running master (null when none runs); with O(reload), the one that runs the new configuration.
  returned: when the vhosts were changed (or checked), or O(reload) is given and httpd survived
  type: int
  sample: 1234
pid_file:
  description: Where the master writes its pid, as RV(fleet.stapling.apache_stapling_info#module:pid_file).
  returned: when the vhosts were changed (or checked)
  type: str
  sample: /var/run/apache2/apache2.pid
instance:
  description:
    - How to drive this Apache instance (ctl, config file, ServerRoot, layout, reload and start commands, CA bundle
      directory), the same description as RV(fleet.stapling.apache_stapling_info#module:instance).
  returned: when the vhosts were changed (or checked)
  type: dict
  sample: {ctl: /usr/sbin/apache2ctl, config_file: /etc/apache2/apache2.conf, server_root: /etc/apache2, layout: debian,
           reload_command: /usr/sbin/apache2ctl graceful, start_command: /usr/sbin/apache2ctl start,
           ca_bundle_dir: /etc/ssl/certs, generated_main_config: false}
checked_targets:
  description: With O(reload), the vhosts whose TLS handshake was checked.
  returned: when O(reload) is given
  type: list
  elements: dict
  sample: [{address: 127.0.0.1, port: 443, server_name: shop.example.com}]
staples:
  description:
    - With O(reload.check_staples), what every SSL vhost staples now, in the shape of
      M(fleet.stapling.ocsp_probe)'s result (RV(fleet.stapling.ocsp_probe#module:stapled),
      RV(fleet.stapling.ocsp_probe#module:summary), RV(fleet.stapling.ocsp_probe#module:skipped)), with
      RV(staples.checked) and RV(staples.problem).
  returned: when O(reload.check_staples=true) and httpd survived the reload
  type: dict
  contains:
    checked:
      description: Whether the vhosts were asked. When false, RV(staples.problem) says why and the other keys are empty.
      type: bool
    problem:
      description: Why the vhosts were not asked (null when they were).
      type: str
    stapled:
      description: One entry per address and name, as M(fleet.stapling.ocsp_probe) returns them.
      type: list
      elements: dict
    summary:
      description: M(fleet.stapling.ocsp_probe)'s summary of the check (null when not checked).
      type: dict
    skipped:
      description: The vhosts that could not be asked (no readable certificate), each with the reason.
      type: list
      elements: dict
  sample: {checked: true, problem: null, stapled: [], skipped: [], summary: {healthy: true, stapling_good: 0}}
lock:
  description:
    - The lock of the Apache instance this run held. RV(lock.waited) is how long it waited for another run,
      RV(lock.waited_for) which run that was, RV(lock.stale) what a killed run had left in the lock file.
  returned: when the lock was taken (not with O(discard_backups), nor in check mode with O(reload))
  type: dict
  contains:
    file:
      description: The lock file.
      type: str
      returned: always
    shared:
      description: Whether it was held shared (check mode) rather than exclusively.
      type: bool
      returned: always
    waited:
      description: Seconds spent waiting for another run.
      type: float
      returned: always
    waited_for:
      description: The run that held the lock meanwhile (pid, what it did, since when); null when none did.
      type: str
      returned: always
    stale:
      description: A holder that was killed while holding the lock, as the lock file still named it; null when none.
      type: str
      returned: always
    unavailable:
      description: In check mode, why no lock could be taken (the state directory cannot be made); null otherwise.
      type: str
      returned: always
  sample: {file: /var/lib/fleet-stapling/etc_apache2_apache2.conf-4f2a9c1b0d3e.lock, shared: false, waited: 3.2,
           waited_for: "pid 4321 (apache_stapling state=disabled, since 2026-12-03T10:00:00Z)", stale: null,
           unavailable: null}
repaired:
  description:
    - What this run repaired, before its own work, of a run killed between writing and C(ctl -t) (from its journal);
      null when there was nothing to repair. In check mode, what a real run would restore.
    - RV(repaired.stage) V(validated) means the killed run's change had passed C(ctl -t); it stays, and only the
      journal goes.
  returned: when the lock was taken
  type: dict
  contains:
    left_by:
      description: The run that left the journal (pid, what it did, since when), and that it is gone.
      type: str
      returned: always
    stage:
      description: V(written) (changed, not validated; undone) or V(validated) (passed C(ctl -t); kept).
      type: str
      returned: always
    journal:
      description: The journal file it was read from (removed once repaired).
      type: str
      returned: always
    restored_files:
      description: The files put back from their backup copies.
      type: list
      elements: str
      returned: always
    removed_files:
      description: The files, links and directories the killed run had created, now removed.
      type: list
      elements: str
      returned: always
  sample: {left_by: "pid 4321 (apache_stapling state=disabled, since 2026-12-03T10:00:00Z), which is gone",
           stage: written, journal: /var/lib/fleet-stapling/etc_apache2_apache2.conf-4f2a9c1b0d3e.journal,
           restored_files: [/etc/apache2/sites-available/shop.conf], removed_files: []}
apache_version:
  description: The version C(ctl -V) reported.
  returned: always
  type: str
  sample: 2.4.62
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.stapling.plugins.module_utils import (
    apache_instance,
    apache_write,
    certificate_cache,
    cryptography_floor,
    host_lock,
    run_journal,
    stapling_census,
)
from ansible_collections.fleet.stapling.plugins.module_utils.stapling_change import (
    STAPLING_ERRORS,
    change_stapling,
    desired_from_params,
    repair_interrupted,
    undo_change,
)
from ansible_collections.fleet.stapling.plugins.module_utils.apache_host import (
    INSTANCE_ARGUMENT_SPEC,
    discover_from_params,
    module_runner,
)
from ansible_collections.fleet.stapling.plugins.module_utils.short_lived_process import without_cycle_collection


def main():
    without_cycle_collection()
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["enabled", "disabled"]),
            engine=dict(type="str", choices=["mod_ssl", "mod_md"]),
            keep_stored_staples=dict(type="bool", default=True),
            without_ocsp_url=dict(type="str", choices=["off", "leave"], default="off"),
            vhosts=dict(type="list", elements="str", default=[]),
            ocsp_hosts=dict(type="list", elements="str", default=[]),
            force=dict(type="bool", default=False),
            cache=dict(type="str"),
            ca_certificate_file=dict(type="path"),
            responder_timeout=dict(type="int"),
            return_responder_errors=dict(type="bool"),
            fake_try_later=dict(type="bool"),
            standard_cache_timeout=dict(type="int"),
            error_cache_timeout=dict(type="int"),
            force_url=dict(type="str"),
            server_file=dict(type="path"),
            protected_files=dict(type="list", elements="path"),
            backup=dict(type="bool", default=False),
            undo=dict(type="list", elements="dict"),
            discard_backups=dict(type="list", elements="dict"),
            reload=dict(type="dict", options=dict(
                command=dict(type="raw", required=True),
                start_command=dict(type="raw"),
                master_pid=dict(type="int"),
                records=dict(type="list", elements="dict", default=[]),
                attempts=dict(type="int", default=5),
                check_staples=dict(type="bool", default=False),
                staple_timeout=dict(type="float", default=3.0),
                staple_settle=dict(type="float", default=10.0),
            )),
            state_dir=dict(type="path", default=host_lock.DEFAULT_STATE_DIR),
            lock_timeout=dict(type="int", default=host_lock.DEFAULT_LOCK_TIMEOUT),
            **INSTANCE_ARGUMENT_SPEC
        ),
        mutually_exclusive=[("undo", "discard_backups", "reload")],
        supports_check_mode=True,
    )
    if module.params["reload"] is not None:
        reload_and_survive(module)
    if module.params["discard_backups"] is not None:
        try:
            removed = apache_write.discard_backups(module.params["discard_backups"], check_mode=module.check_mode)
        except (apache_write.WriteError, OSError) as exc:
            module.fail_json(msg="discarding backups failed: %s" % exc)
        module.exit_json(changed=bool(removed), removed_files=removed)
    cryptography_problem = cryptography_floor.cryptography_problem()
    if cryptography_problem:
        module.fail_json(msg=cryptography_problem, exception=cryptography_floor.CRYPTOGRAPHY_IMPORT_ERROR)

    run = module_runner(module)
    lock = None
    try:
        host = discover_from_params(run, module.params)
        lock = instance_lock(module, host.config_file, shared=module.check_mode)
        with lock:
            journal = run_journal.Journal(module.params["state_dir"], host.config_file, lock.doing)
            repaired, warnings = repair_interrupted(host, journal, run, module.check_mode, module.atomic_move)
            result = change_or_undo(module, host, run, journal)
    except STAPLING_ERRORS as exc:
        module.fail_json(msg=str(exc), **lock_result(lock))
    if lock.stale and not lock.shared:
        warnings.append("took over the lock of this Apache instance, %s" % lock.stale)
    if lock.unavailable:
        warnings.append("read without the lock, so another run may have been writing meanwhile: %s"
                        % lock.unavailable)
    result.update(lock_result(lock), repaired=repaired)
    if repaired and (repaired["restored_files"] or repaired["removed_files"]):
        result["changed"] = True  # the repair put files back, even where the run's own plan had nothing to do
    for warning in warnings + result.pop("warnings"):
        module.warn(warning)
    module.exit_json(**result)


def change_or_undo(module, host, run, journal):
    """The run's own work, under the lock and after any repair."""
    if module.params["undo"] is not None:
        return undo_change(host, module.params["undo"], run=run, check_mode=module.check_mode, move=module.atomic_move)
    cache = certificate_cache.CertificateFactsCache(module.params["state_dir"])
    result = change_stapling(
        host,
        desired_from_params(module.params),
        run=run,
        check_mode=module.check_mode,
        move=module.atomic_move,
        backup=backup_beside_file(module) if module.params["backup"] else None,
        journal=journal,
        cache=cache,
    )
    # kept in check mode too: it describes certificates, not the config, and the next run (an incident's real
    # one after a check-mode audit) is the one that needs it
    cache.save()
    result["certificate_cache"] = {"path": cache.path, "reused": cache.hits, "read": cache.misses,
                                   "problem": cache.problem}
    # counted from the full facts, before they are cut down below
    result["census"] = stapling_census.host_census(result["stapling"]["vhosts"])
    # which vhosts staple now, by name: a dict per vhost (let alone everything apache_stapling_info says of it)
    # was most of a large host's result, and Ansible walks, sends and decodes every one on both sides
    result["vhosts_stapling"] = [vhost["id"] for vhost in result["stapling"].pop("vhosts") if vhost["stapling"]]
    # _diff is AnsibleModule's own flag for --diff
    if not module._diff:  # pylint: disable=protected-access
        result.pop("diff", None)
    # the instance as apache_stapling_info describes it, so that a role needs no separate call to reload it
    config = host.parse()
    result.update(instance=apache_instance.describe(host, config), pid_file=host.pid_file(config),
                  master_pid=host.master_pid(config))
    return result


def backup_beside_file(module):
    """O(backup): a timestamped copy beside each file, with its owner, mode and SELinux context."""
    def backup(path):
        return apache_write.backup_copy(path, module.preserved_copy)
    return backup


def instance_lock(module, config_file, shared=False):
    """The lock of the instance, named for what this run does so that a run waiting for it can say."""
    params = module.params
    if params["reload"] is not None:
        doing = "apache_stapling reload"
    elif params["undo"] is not None:
        doing = "apache_stapling undo"
    else:
        doing = "apache_stapling state=%s%s" % (params["state"] or "(settings only)",
                                                " vhosts=%s" % ",".join(params["vhosts"]) if params["vhosts"] else "")
    if module.check_mode:
        doing += " (check mode)"
    return host_lock.InstanceLock(params["state_dir"], config_file, timeout=params["lock_timeout"], shared=shared,
                                  doing=doing, optional=shared)


def lock_result(lock):
    return {"lock": lock.report()} if lock is not None and lock.acquired else {}


def reload_and_survive(module):
    """The O(reload) call: the host is only asked about (ctl -V, the config) when the pid file or an undo needs it."""
    options = module.params["reload"]
    if module.check_mode:
        module.exit_json(changed=True, reloaded=False, reloads=0, removed_files=[], checked_targets=[])
    # imported here: its TLS handshakes load pyOpenSSL and the OCSP client, which a change never needs
    from ansible_collections.fleet.stapling.plugins.module_utils import apache_reload  # pylint: disable=import-outside-toplevel
    run = module_runner(module)
    found = {}

    def host():
        if "host" not in found:
            found["host"] = discover_from_params(run, module.params)
        return found["host"]

    def read_pid():
        if "pid_file" not in found:
            found["pid_file"] = host().pid_file(host().parse())
        return apache_reload.pid_in(found["pid_file"])

    def undo(records):
        undo_change(host(), records, run=run, check_mode=False, move=module.atomic_move)

    lock = None
    try:
        config_file = module.params["config_file"]
        if not (config_file and os.path.isabs(config_file)):
            config_file = host().config_file
        lock = instance_lock(module, config_file)
        with lock:
            journal = run_journal.Journal(module.params["state_dir"], config_file, lock.doing)
            repaired, warnings = None, []
            if journal.leftover() is not None:
                repaired, warnings = repair_interrupted(host(), journal, run, False, module.atomic_move)
            result = apache_reload.Reload(options["command"], options["start_command"], options["master_pid"],
                                          options["records"], run, read_pid, undo, attempts=options["attempts"],
                                          keep_backups=module.params["backup"])()
    except apache_reload.ReloadError as exc:
        module.fail_json(msg=str(exc), reloaded=False, **lock_result(lock))
    except STAPLING_ERRORS as exc:
        module.fail_json(msg="the reload could not be checked: %s" % exc, reloaded=False, **lock_result(lock))
    for warning in warnings:
        module.warn(warning)
    result.update(lock_result(lock), repaired=repaired)
    if options["check_staples"]:
        # imported here: only this call runs ocsp_probe's machinery, which every other run would load for nothing
        from ansible_collections.fleet.stapling.plugins.module_utils import reload_staple_check  # pylint: disable=import-outside-toplevel
        # after the lock is released: what clients see now needs no lock, and another run may go on meanwhile
        result["staples"] = reload_staple_check.check_staples(host, options["staple_timeout"], options["staple_settle"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
