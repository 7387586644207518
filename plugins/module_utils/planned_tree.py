# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The check of a plan: the tree read again as it will be after the edits, and what it must then do.

``apachectl -t`` says "Syntax OK" to setups that kill httpd at the next reload, and a later directive can
override an edit; both show only in the tree as it will read, so a plan is checked there before anything is
written, in check mode and in a real run alike.
"""

from __future__ import annotations

import os

from ansible_collections.fleet.stapling.plugins.module_utils import stapling_facts
from ansible_collections.fleet.stapling.plugins.module_utils.stapling_writer import StaplingError


def link_target(link, target):
    return os.path.normpath(os.path.join(os.path.dirname(link), target))


def _disk_bytes(path):
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except (IOError, OSError):
        return b""


def verify_planned(reparse, rendered, desired, selected_keys, links=None, regenerated=None, off_keys=frozenset()):
    """Re-read the tree as it would be after the edits and check it does what was asked.

    This is what catches a change that cannot stick (a later directive overriding it) and a stapling setup
    that ``apachectl -t`` accepts but httpd refuses at reload (no SSLStaplingCache, or its module missing).
    ``reparse(overrides)`` parses the tree with planned file contents; ``rendered`` maps path -> (old, new).
    ``off_keys`` are vhosts that must end up not stapling (kept off for want of an OCSP URL).
    Returns that tree and its facts (without the certificates', which edits never change).
    """
    overrides = dict((path, new) for path, (_old, new) in rendered.items())
    for link, target in (links or {}).items():
        # httpd will read the link's target through the link's own name
        overrides[link] = overrides.get(link_target(link, target)) or _disk_bytes(link_target(link, target))
    overrides.update(regenerated or {})  # as cPanel's rebuild will write them
    config = reparse(overrides)
    facts = stapling_facts.stapling_facts(config, read_certificates=False)
    problems = []
    if desired.state in ("enabled", "disabled"):
        wanted = desired.state == "enabled"
        for vhost in facts["vhosts"]:
            if vhost["key"] in selected_keys and vhost["stapling"] != wanted:
                decider = vhost["stapling_directive"]
                where = "%s:%s" % (decider["file"], decider["line"]) if decider else "httpd's default"
                problems.append("%s would still have stapling %s (decided by %s)"
                                % (vhost["id"], "on" if not wanted else "off", where))
    for vhost in facts["vhosts"]:
        if vhost["key"] in off_keys and vhost["stapling"]:
            problems.append("%s would still have stapling on without an OCSP URL" % vhost["id"])
    problems.extend(post_config_problems(config, facts))
    if problems:
        raise StaplingError("the planned change would not work: " + "; ".join(problems))
    return config, facts


def post_config_problems(config, facts):
    """What httpd only checks after 'Syntax OK', at (re)start: these kill the server at reload."""
    problems = []
    # mod_md keeps its responses in its own store: only mod_ssl's stapling needs SSLStaplingCache
    stapling_anywhere = any(v["stapling_engine"] == "mod_ssl" for v in facts["vhosts"])
    cache = facts["server"]["stapling_cache"]
    if stapling_anywhere and not cache:
        problems.append("stapling is on but there is no server-scope SSLStaplingCache (httpd fails at reload "
                        "with AH01958)")
    if stapling_anywhere and cache:
        module = facts["server"]["stapling_cache_module"]
        if module and not config.has_module(module):
            problems.append("SSLStaplingCache %s needs mod_%s, which is not loaded" % (cache, module))
    for vhost_section in config.virtual_hosts():
        for directive in config.inside(vhost_section, "SSLStaplingCache"):
            problems.append("%s: SSLStaplingCache is only allowed at server scope" % directive.location())
    return problems
