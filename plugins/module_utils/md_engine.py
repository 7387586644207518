# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Planning the switch of a whole host between mod_ssl's stapling and mod_md's.

mod_ssl fetches a response inside the handshake that needs it, so a hanging responder stalls handshakes, and a
graceful reload empties its cache. mod_md fetches in the background, keeps responses on disk across reloads and
restarts, and renews them early. With ``MDStapling on`` and ``MDStapleOthers`` (on by default) it staples every
certificate, so the switch is made for the whole host at once. What the switch must get right:

* mod_md is loaded the layout's way. When it was not loaded before, the first reload that loads it starts no
  background fetcher (mod_watchdog logs AH02980 and nothing is stapled); a second graceful reload does, with no
  connection dropped, as a full stop and start would. The plan says so (``reload_twice``).
* mod_ssl's own stapling goes off, ``SSLStaplingCache`` stays (removing it and reloading can crash httpd).
* The store must be reachable by the child processes' user, or responses live only in memory: the directories
  above it must let them through, and missing ones are made root's with mode 0755 (mod_md would make them
  root-only).
* A Must-Staple certificate would be served without a staple until mod_md's first fetch: it moves only once
  the store holds a good response for it, or when forced.
"""

from __future__ import annotations

import os

from ansible_collections.fleet.stapling.plugins.module_utils import (
    apache_instance,
    md_seed,
    md_store,
    stapling_facts,
)

MD_SO = "mod_md.so"
RHEL_MODULE_FILE = "conf.modules.d/01-md.conf"
# What to install where the module's file is missing, per layout.
PACKAGE_HINT = {
    "debian": "Debian's apache2 package ships it",
    "rhel": "install the mod_md package (dnf install mod_md)",
    "cpanel": "install ea-apache24-mod_md",
}


class MdEngineError(Exception):
    """The switch to or from mod_md cannot be made safely; the message says why."""


def module_library_dir(config):
    """Where this instance's module libraries are: beside mod_ssl's, as its LoadModule names it."""
    for directive in config.active("LoadModule"):
        if len(directive.args) > 1 and os.path.basename(directive.args[1]) == "mod_ssl.so":
            return os.path.dirname(stapling_facts.resolve_path(config, directive.args[1]))
    return os.path.join(config.server_root, "modules")


def plan_loading(config, writer, plan):
    """Load mod_md the layout's way: a2enmod's link on Debian, a conf.modules.d file on RHEL, cPanel's
    pre_main include, else with the server-scope settings. Returns True when mod_md was not loaded."""
    if config.has_module("md"):
        return False
    layout = apache_instance.layout_of(config)
    root = config.server_root
    plan.reload_twice = True
    if layout == "debian":
        available = os.path.join(root, "mods-available", "md.load")
        link = os.path.join(root, "mods-enabled", "md.load")
        if not os.path.isfile(available):
            raise MdEngineError("mod_md cannot be enabled: %s is missing (%s)" % (available, PACKAGE_HINT["debian"]))
        plan.links[link] = os.path.relpath(available, os.path.dirname(link))
        return True
    library = os.path.join(module_library_dir(config), MD_SO)
    if not os.path.isfile(library):
        raise MdEngineError("mod_md is not installed: %s is missing; %s" % (library, PACKAGE_HINT.get(layout, "")))
    line = [("LoadModule", ["md_module", library])]
    if layout == "rhel" and apache_instance.is_included(config, os.path.join(root, RHEL_MODULE_FILE)):
        writer.append(os.path.join(root, RHEL_MODULE_FILE), line, "load mod_md")
        return True
    override = apache_instance.cpanel_override_file(config)
    if layout == "cpanel" and override:
        pre_main = os.path.join(os.path.dirname(override), "pre_main_global.conf")
        if pre_main in config.files:
            writer.append(pre_main, line, "load mod_md")
            return True
    writer.server_additions.insert(0, line[0])  # before the MD directives it makes known
    return True


def check_store_reachable(store, child_user_can_enter=None):
    """mod_md's children write the store; under a directory they cannot enter it keeps responses in memory only.
    Every existing directory above the store must let them through (the store itself mod_md opens up at start)."""
    child_user_can_enter = child_user_can_enter or _others_can_enter
    parent = os.path.dirname(store.rstrip("/"))
    while parent:
        if os.path.isdir(parent) and not child_user_can_enter(parent):
            raise MdEngineError(
                "MDStoreDir %s is under %s, which Apache's child processes cannot enter: mod_md would keep responses "
                "in memory only and a restart during an outage would serve no staple; choose a store under "
                "directories they can enter" % (store, parent))
        if parent == os.path.dirname(parent):
            break
        parent = os.path.dirname(parent)


def missing_store_dirs(store):
    """The store's directories that do not exist yet, outermost first. This module makes them root's, mode 0755:
    mod_md would make missing parents readable by root only, and its children could then never reach the store."""
    missing = []
    directory = store.rstrip("/")
    while directory and not os.path.isdir(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    return list(reversed(missing))


def _others_can_enter(path):
    # the children run as an unprivileged user: what 'others' may do is what they may do
    return bool(os.stat(path).st_mode & 0o001)


def plan_switch_to_md(config, writer, plan, facts, desired, now=None):
    """The edits that make mod_md staple every SSL vhost of the host and mod_ssl stop fetching inside handshakes."""
    if desired.selective:
        raise MdEngineError("mod_md staples every certificate of the host at once (MDStapleOthers): switch the "
                            "engine for the whole host, without vhosts or ocsp_hosts")
    plan_loading(config, writer, plan)
    if not config.server_value("MDStoreDir"):
        writer.set_server("MDStoreDir", [os.path.join(config.server_root, md_store.DEFAULT_STORE)],
                          "mod_md's store, where responses survive restarts")
    store = md_store.store_dir(config)  # the MDStoreDir set above is mod_md's default, so this holds either way
    check_store_reachable(store)
    plan.store_dirs = missing_store_dirs(store)
    plan.store_seeds = _seed_must_staple(facts, store, desired, now, owner=md_seed.child_owner(config))
    if not stapling_facts.is_on(config.server_value("MDStapling", "off")):
        writer.set_server("MDStapling", ["on"], "mod_md stapling")
    if stapling_facts.is_on(config.server_value("MDStapleOthers", "on")) is False:
        writer.set_server("MDStapleOthers", ["on"], "mod_md stapling of certificates it does not manage")
    if facts["server"]["stapling"]:
        writer.set_server("SSLUseStapling", ["off"], "mod_ssl stapling off: mod_md staples")
    sections = dict((v.location(), v) for v in config.virtual_hosts())
    for vhost in facts["vhosts"]:
        section = sections["%s:%d" % (vhost["file"], vhost["line"])]
        own = config.inside(section, "SSLUseStapling")
        if own and stapling_facts.is_on(own[-1].first_arg()):
            writer.set_directive(own[-1], ["off"], "%s: mod_ssl stapling off, mod_md staples" % vhost["id"])
        if vhost["stapling_engine"] != "mod_md":
            plan.vhost_changes.append({"vhost": vhost["id"], "stapling": True, "engine": "mod_md"})


def _seed_must_staple(facts, store, desired, now, fetch=None, owner=None):
    """Must-Staple vhosts move only with a good response in the store: one fetched and checked now, to be written
    where mod_md reads it at start, unless the store already holds one. Returns what to write."""
    fetch = fetch or md_seed.fetch
    responses, job = md_store.read_store(store)
    now = now or md_store.utc_now()
    seeds, problems = [], []
    for vhost in facts["vhosts"]:
        certificate = vhost.get("certificate") or {}
        if not certificate.get("must_staple") or vhost["stapling_engine"] == "mod_md":
            continue
        held = md_store.stored_response(certificate.get("sha1_fingerprint"), responses, job, now)
        if held and held["usable"]:
            continue
        try:
            data, valid_until = fetch(vhost, now)
        except (md_seed.SeedError, OSError, ValueError) as exc:
            problems.append(str(exc))
            continue
        seeds.append({"vhost": vhost["id"], "file": md_seed.store_file(store, vhost), "data": data,
                      "valid_until": valid_until, "store": store, "owner": owner})
    if problems and not desired.force:
        raise MdEngineError(
            "refusing to move OCSP Must-Staple vhosts to mod_md without a good response in its store (they would "
            "be served without a staple until its first fetch, and Firefox refuses that), and none could be "
            "fetched now: %s. Set force=true to switch anyway." % "; ".join(problems))
    return seeds


def kept_from_store(config, selected, now=None):
    """Disabling during an outage: mod_md staples from its store without asking the responder, so its vhosts need
    no change while the store holds a good response for each that renewals are not failing to replace. Returns
    [{"vhost", "valid_until"}] for them, or [] when any of them lacks one (mod_md then goes off for the host).
    A certificate without an OCSP URL gives mod_md nothing to fetch or staple: it neither counts nor is listed."""
    on_md = [v for v in selected if v["stapling_engine"] == "mod_md" and _has_responder(v)]
    if not on_md:
        return []
    responses, job = md_store.read_store(md_store.store_dir(config))
    now = now or md_store.utc_now()
    kept = []
    for vhost in on_md:
        held = md_store.stored_response((vhost.get("certificate") or {}).get("sha1_fingerprint"), responses, job, now)
        if not (held and held["usable"] and not held["at_risk"]):
            return []
        kept.append({"vhost": vhost["id"], "valid_until": held["valid_until"]})
    return kept


def _has_responder(vhost):
    return bool(vhost.get("force_url") or (vhost.get("certificate") or {}).get("ocsp_url"))


def untouched_without_responder(selected):
    """With mod_md left on, the vhosts whose certificate names no responder stay as they are (nothing stapled)."""
    return set(v["id"] for v in selected if v["stapling_engine"] == "mod_md" and not _has_responder(v))


def switch_md_stapling_off(config, writer):
    """MDStapling off everywhere: for a kill switch (mod_md staples even with SSLUseStapling off) and on the way
    back to mod_ssl (mod_md stays loaded, so a graceful reload is enough)."""
    if stapling_facts.is_on(config.server_value("MDStapling", "off")):
        writer.set_server("MDStapling", ["off"], "mod_md stapling")
    for domain in config.active("MDomain"):
        if domain.is_section:
            own = config.inside(domain, "MDStapling")
            if own and stapling_facts.is_on(own[-1].first_arg()):
                writer.set_directive(own[-1], ["off"], "mod_md stapling of %s" % " ".join(domain.args))
