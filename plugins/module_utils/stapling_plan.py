# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Plan the smallest set of line edits that gives every selected SSL vhost the stapling state asked for.

``plan_stapling`` only computes: it returns edits, warnings and a per-vhost account, and checks the result
by re-reading the planned tree (so check mode and a real run can never disagree). Writing is elsewhere.
"""

from __future__ import annotations

import os
import re

from urllib.parse import urlsplit

from ansible_collections.fleet.stapling.plugins.module_utils import (
    apache_config,
    apache_edit,
    apache_instance,
    md_engine,
    planned_tree,
    stapling_eligibility,
    stapling_facts,
)
from ansible_collections.fleet.stapling.plugins.module_utils.stapling_writer import (
    StaplingError,
    Writer,
    has_typographic,
)

# Module option name -> directive. All may be set at server scope.
TUNABLES = (
    ("responder_timeout", "SSLStaplingResponderTimeout"),
    ("return_responder_errors", "SSLStaplingReturnResponderErrors"),
    ("fake_try_later", "SSLStaplingFakeTryLater"),
    ("standard_cache_timeout", "SSLStaplingStandardCacheTimeout"),
    ("error_cache_timeout", "SSLStaplingErrorCacheTimeout"),
    ("force_url", "SSLStaplingForceURL"),
)

# One stapled response with its signer certificate takes about 900 bytes in the cache; keep room for
# twice the vhosts (renewals overlap), and never go below the size Apache's docs show.
CACHE_BYTES_PER_VHOST = 2 * 1024
CACHE_MIN_BYTES = 128000


class Desired(object):
    """What the caller asks for. ``state`` is 'enabled', 'disabled' or None (tunables only)."""

    def __init__(self, state=None, vhosts=None, ocsp_hosts=None, cache=None, tunables=None,
                 ca_certificate_file=None, force=False, protected_files=None, server_file=None,
                 cpanel_root=apache_instance.CPANEL_ROOT, engine=None, keep_stored_staples=True,
                 without_ocsp_url=stapling_eligibility.WITHOUT_URL_OFF):
        self.state = state
        self.vhosts = list(vhosts or [])
        self.ocsp_hosts = [h.lower() for h in (ocsp_hosts or [])]
        self.cache = cache
        self.tunables = dict(tunables or {})
        self.ca_certificate_file = ca_certificate_file
        self.force = force
        self.protected_files = protected_files
        self.server_file = server_file
        self.cpanel_root = cpanel_root
        self.engine = engine  # None: leave the engine as it is; "mod_ssl" or "mod_md"
        self.keep_stored_staples = keep_stored_staples
        self.without_ocsp_url = without_ocsp_url  # see stapling_eligibility

    @property
    def selective(self):
        return bool(self.vhosts or self.ocsp_hosts)


class Plan(object):
    def __init__(self):
        self.edits = []
        self.warnings = []
        self.vhost_changes = []
        self.selected = []
        self.links = {}  # link path -> what it points at, made after the files (the a2enconf link)
        # cPanel: the generated files it will rebuild with the new userdata includes switched on, as they will
        # read then (used to check the plan; cPanel, not this module, writes them), and the rebuild command
        self.regenerated = {}
        self.rebuild_command = None
        # mod_md newly loaded: its background fetcher starts only at httpd's second (re)start after that
        self.reload_twice = False
        # disabling: mod_md vhosts left stapling because its store holds a fresh good response for each
        self.kept_from_store = []
        self.store_seeds = []  # good responses to put in mod_md's store before Must-Staple vhosts move to it
        self.store_dirs = []  # mod_md's store and its missing parents, to make before the reload
        self.kept_ids = set()  # those and the mod_md vhosts with no responder, which mod_md left on leaves as is
        self.planned_config = None  # the tree as it reads with the edits made, which verify_planned checked
        self.off_without_url = []  # enabling: ids of the vhosts kept or switched off for want of an OCSP URL

    def add(self, edit):
        if edit is not None:
            self.edits.append(edit)


# ------------------------------------------------------------------ selection


def url_host(url):
    if not url:
        return None
    parts = urlsplit(url)
    return (parts.hostname or "").lower(), parts.port


def matches_ocsp_hosts(vhost, hosts):
    """True when the vhost's OCSP URL points at one of ``hosts`` ('host' or 'host:port')."""
    url = vhost.get("force_url") or ((vhost.get("certificate") or {}).get("ocsp_url"))
    found = url_host(url)
    if not found:
        return False
    hostname, port = found
    return any(wanted in (hostname, "%s:%s" % (hostname, port)) for wanted in hosts)


def matches_names(vhost, patterns):
    names = [vhost["server_name"]] + vhost["aliases"] if vhost["server_name"] else vhost["aliases"]
    return any(apache_config.glob_matches(pattern, name) for pattern in patterns for name in names if name)


def select_vhosts(facts, desired):
    selected = []
    for vhost in facts["vhosts"]:
        if desired.vhosts and not matches_names(vhost, desired.vhosts):
            continue
        if desired.ocsp_hosts and not matches_ocsp_hosts(vhost, desired.ocsp_hosts):
            continue
        selected.append(vhost)
    return selected


def _strip_typographic(args):
    return [re.sub(u"[%s]" % apache_config.TYPOGRAPHIC_QUOTES, "", arg) for arg in args]


# ------------------------------------------------------------------ the plan


def derive_cache(server_root, session, stapling_vhost_count):
    """A stapling cache of the same kind and in the same directory as SSLSessionCache, sized for the host."""
    size = max(CACHE_MIN_BYTES, stapling_vhost_count * CACHE_BYTES_PER_VHOST)
    provider = stapling_facts.socache_provider(session)
    if provider in ("shmcb", "dbm") and ":" in session:
        location = session.split(":", 1)[1]
        location = re.sub(r"\(\d+\)$", "", location)
        directory = os.path.dirname(location)
        path = os.path.join(directory, "ssl_stapling") if directory else "ssl_stapling"
        if provider == "shmcb":
            return "shmcb:%s(%d)" % (path, size)
        return "dbm:%s" % path
    if provider in ("memcache", "redis", "dc"):
        return session
    return "shmcb:%s(%d)" % (os.path.join(server_root, "logs", "ssl_stapling"), size)


def plan_change(parse, desired, seen_certificates=None, cache=None):
    """The whole plan: quotes fixed first, then the stapling change planned on the fixed tree, then checked.

    ``parse(overrides)`` reads the tree (with planned contents for some paths). Returns the plan, the
    rendered changes {path: (old bytes or None, new bytes)} and the facts before and after.
    ``seen_certificates`` and ``cache`` (see ``stapling_facts``) keep what the certificates say for later reads.
    """
    config = parse(None)
    fixes = Plan()
    _fix_typographic_quotes(config, Writer(config, desired, fixes), fixes)
    fixed = apache_edit.render_edits(config, fixes.edits)
    if fixed:
        # a value in typographic quotes means nothing to httpd: plan the rest on the repaired tree
        config = parse(dict((path, new) for path, (_old, new) in fixed.items()))
    if desired.engine == "mod_ssl" and desired.state == "enabled":
        # back from mod_md: MDStapling off first, so that the mod_ssl plan sees which vhosts mod_ssl staples
        md_off = Plan()
        md_engine.switch_md_stapling_off(config, Writer(config, desired, md_off))
        switched = apache_edit.render_edits(config, md_off.edits)
        if switched:
            for path, (old, new) in switched.items():
                fixed[path] = (fixed[path][0] if path in fixed else old, new)
            config = parse(dict((path, new) for path, (_old, new) in fixed.items()))
    facts = stapling_facts.stapling_facts(config, seen_certificates=seen_certificates, cache=cache)
    plan = plan_stapling(config, facts, desired)
    # what the reader could not see (vhosts made by <Macro>) is as much the operator's business as what we fixed
    plan.warnings[:0] = fixes.warnings + [warning for warning in config.warnings if "<Macro" in warning
                                          or ": Use " in warning]
    rendered = dict(fixed)
    for path, (old, new) in apache_edit.render_edits(config, plan.edits).items():
        rendered[path] = (fixed[path][0] if path in fixed else old, new)
    left_out = plan.kept_ids.union(plan.off_without_url)
    selected_keys = set(v["key"] for v in plan.selected if v["id"] not in left_out)
    off_keys = set(v["key"] for v in facts["vhosts"] if v["id"] in plan.off_without_url)
    plan.planned_config, after = planned_tree.verify_planned(parse, rendered, desired, selected_keys, plan.links,
                                                             plan.regenerated, off_keys)
    return plan, rendered, facts, after


def plan_stapling(config, facts, desired):
    """Edits for the stapling state and settings asked for, on a tree without typographic quotes."""
    plan = Plan()
    writer = Writer(config, desired, plan)
    sections = dict((v.location(), v) for v in config.virtual_hosts())
    plan.selected = select_vhosts(facts, desired)
    if desired.selective and not plan.selected:
        plan.warnings.append("no SSL vhost matches the selection (vhosts=%s, ocsp_hosts=%s)"
                             % (desired.vhosts, desired.ocsp_hosts))

    kept = set()
    if desired.state == "disabled" and desired.keep_stored_staples:
        plan.kept_from_store = md_engine.kept_from_store(config, plan.selected)
        if plan.kept_from_store:
            kept = set(entry["vhost"] for entry in plan.kept_from_store)
            kept |= md_engine.untouched_without_responder(plan.selected)
            plan.kept_ids = kept
    if desired.state == "disabled":
        _guard_must_staple([v for v in plan.selected if v["id"] not in kept], desired)
    if desired.state == "enabled" and desired.engine == "mod_md":
        md_engine.plan_switch_to_md(config, writer, plan, facts, desired)
        _plan_cache(config, writer, facts, desired, plan, needed=False)
    elif desired.state in ("enabled", "disabled"):
        wanted = desired.state == "enabled"
        no_url, also = frozenset(), []
        if wanted:
            off, warnings = stapling_eligibility.split_without_url(plan.selected, desired.without_ocsp_url)
            if not desired.vhosts:
                # a selection by OCSP host never holds a certificate without one, yet auto mode and an enable
                # while some responder is down only ever select that way: those vhosts go off in such runs too
                also = stapling_eligibility.stapling_without_url(facts["vhosts"], plan.selected,
                                                                 desired.without_ocsp_url)
            plan.off_without_url = [v["id"] for v in off + also]
            plan.warnings.extend(warnings)
            no_url = frozenset(plan.off_without_url)
        if desired.selective:
            _plan_selected(config, writer, plan, sections, wanted, kept, no_url, also)
        else:
            _plan_everything(config, writer, plan, sections, facts, wanted, kept, no_url)
        if wanted:
            _plan_cache(config, writer, facts, desired, plan)
    for option, directive in TUNABLES:
        value = desired.tunables.get(option)
        if value is not None:
            writer.set_server(directive, [_directive_value(value)], "%s from %s" % (directive, option))
    if desired.ca_certificate_file:
        writer.set_server("SSLCACertificateFile", [desired.ca_certificate_file], "CA bundle holding the issuers")
    writer.flush_server_additions()
    plan.regenerated = dict((path, b"".join(lines)) for path, lines in writer.regenerated.items())
    return plan


def _plan_everything(config, writer, plan, sections, facts, wanted, kept=frozenset(), no_url=frozenset()):
    """``no_url``: ids of vhosts to keep off in their own scope while the server default goes on."""
    if facts["server"]["stapling"] != wanted:
        writer.set_server("SSLUseStapling", [_on_off(wanted)], "server default")
    if not wanted and config.has_module("md") and not kept:
        md_engine.switch_md_stapling_off(config, writer)
    for vhost in facts["vhosts"]:
        section = sections[_location(vhost)]
        own = config.inside(section, "SSLUseStapling")
        want = wanted and vhost["id"] not in no_url
        if vhost["id"] in no_url:
            writer.set_vhost(section, "SSLUseStapling", ["off"], "%s has no OCSP URL" % vhost["id"])
        elif own and stapling_facts.is_on(own[-1].first_arg()) != wanted:
            writer.set_vhost(section, "SSLUseStapling", [_on_off(wanted)], vhost["id"])
        if vhost["stapling"] != want and vhost["id"] not in kept:
            plan.vhost_changes.append({"vhost": vhost["id"], "stapling": want})


def _plan_selected(config, writer, plan, sections, wanted, kept=frozenset(), no_url=frozenset(), also=()):
    for vhost in plan.selected + list(also):
        want = wanted and vhost["id"] not in no_url
        if vhost["stapling"] == want or vhost["id"] in kept:
            continue
        writer.set_vhost(sections[_location(vhost)], "SSLUseStapling", [_on_off(want)], vhost["id"])
        if not want and vhost["stapling_engine"] == "mod_md":
            _switch_md_stapling_off_for(config, writer, vhost)
        plan.vhost_changes.append({"vhost": vhost["id"], "stapling": want})


def _switch_md_stapling_off_for(config, writer, vhost):
    names = [vhost["server_name"]] + vhost["aliases"] if vhost["server_name"] else vhost["aliases"]
    domain = stapling_facts.md_domain_of(config, names)
    if domain is not None and domain.is_section:
        writer.set_vhost(domain, "MDStapling", ["off"], "mod_md stapling of %s" % " ".join(domain.args))
        return
    how = ("its MDomain line has no section to switch MDStapling off in" if domain is not None
           else "mod_md staples it through MDStapleOthers, which covers every certificate mod_md does not manage")
    raise StaplingError("%s is stapled by mod_md and cannot be switched off alone: %s. Disable stapling for all "
                        "vhosts, or give its domain an <MDomain> section." % (vhost["id"], how))


def _plan_cache(config, writer, facts, desired, plan, needed=True):
    existing = facts["server"]["stapling_cache"]
    if desired.cache:
        writer.set_server("SSLStaplingCache", [desired.cache], "stapling cache")
        cache = desired.cache
    elif existing or not needed:
        cache = existing
        if not cache:
            return
    else:
        stapling_count = len(facts["vhosts"])
        cache = derive_cache(config.server_root, facts["server"]["session_cache"], stapling_count)
        writer.set_server("SSLStaplingCache", [cache], "stapling cache derived from SSLSessionCache")
        plan.warnings.append("added SSLStaplingCache %s (none was set; httpd refuses to start stapling without one)"
                             % cache)
    module = stapling_facts.socache_module(cache)
    if module and not config.has_module(module):
        raise StaplingError("SSLStaplingCache %s needs mod_%s, which is not loaded: load it (a2enmod %s on Debian) "
                            "before enabling stapling" % (cache, module, module))


def _guard_must_staple(selected, desired):
    if desired.force:
        return
    must_staple = [v["id"] for v in selected if v["stapling"] and (v.get("certificate") or {}).get("must_staple")]
    if must_staple:
        raise StaplingError(
            "refusing to disable stapling for vhosts whose certificate is OCSP Must-Staple (browsers such as "
            "Firefox hard-fail without a staple): %s. Narrow the selection with vhosts or ocsp_hosts, or set "
            "force=true."
            % ", ".join(must_staple))


def _fix_typographic_quotes(config, writer, plan):
    for name in stapling_facts.STAPLING_DIRECTIVES:
        for directive in config.active(name):
            if not has_typographic(directive):
                continue
            # from the words as written, so that ${VAR} stays a variable and is not frozen into a path
            fixed = _strip_typographic(apache_config.split_args(directive.raw_args))
            if writer.set_directive(directive, fixed, "typographic quotes"):
                plan.warnings.append("%s: %s had typographic quotes (pasted from a document?); rewritten as %s"
                                     % (directive.location(), directive.name, " ".join(fixed)))
            else:
                raise StaplingError("%s: %s has typographic quotes in a file that must not be edited"
                                    % (directive.location(), directive.name))


def _location(vhost):
    return "%s:%d" % (vhost["file"], vhost["line"])


def _on_off(flag):
    return "on" if flag else "off"


def _directive_value(value):
    if isinstance(value, bool):
        return _on_off(value)
    return str(value)
