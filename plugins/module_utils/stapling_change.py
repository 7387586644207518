# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Read, plan, check, write, validate: the whole of one apache_stapling run, without Ansible.

Check mode and a real run share everything up to the write, so they report the same change and diff.
"""

from __future__ import annotations

import os

from ansible_collections.fleet.stapling.plugins.module_utils import (
    apache_instance,
    apache_write,
    md_engine,
    md_seed,
    stapling_facts,
    stapling_plan,
)
from ansible_collections.fleet.stapling.plugins.module_utils.apache_config import ApacheConfigError
from ansible_collections.fleet.stapling.plugins.module_utils.apache_host import ApacheHostError
from ansible_collections.fleet.stapling.plugins.module_utils.certificates import CertificateError

# Every failure a run reports to the operator as a plain message.
STAPLING_ERRORS = (
    ApacheConfigError,
    ApacheHostError,
    CertificateError,
    stapling_plan.StaplingError,
    apache_write.WriteError,
    md_engine.MdEngineError,
)


def desired_from_params(params):
    tunables = dict((option, params.get(option)) for option, _directive in stapling_plan.TUNABLES)
    return stapling_plan.Desired(
        state=params.get("state"),
        vhosts=params.get("vhosts"),
        ocsp_hosts=params.get("ocsp_hosts"),
        cache=params.get("cache"),
        tunables=tunables,
        ca_certificate_file=params.get("ca_certificate_file"),
        force=params.get("force"),
        protected_files=params.get("protected_files"),
        server_file=params.get("server_file"),
        cpanel_root=params.get("cpanel_root") or apache_instance.CPANEL_ROOT,
        engine=params.get("engine"),
        keep_stored_staples=params.get("keep_stored_staples", True),
    )


def change_stapling(host, desired, run, check_mode, move=apache_write.plain_move, backup=None):
    # what each certificate says, by (certificate, chain, CA file): read once, before and after the write alike
    certificates_read = {}
    plan, rendered, facts, after = stapling_plan.plan_change(host.parse, desired, certificates_read)
    links = plan.links
    result = {
        "changed": bool(rendered or links or plan.store_dirs),
        "changed_files": sorted(set(rendered).union(links)),
        "created_files": sorted(path for path, (old, _new) in rendered.items() if old is None),
        "created_links": sorted(links),
        "created_dirs": list(plan.store_dirs),
        "regenerated_files": sorted(plan.regenerated),
        "reload_twice": plan.reload_twice,
        "kept_from_store": plan.kept_from_store,
        "store_seeded": [dict((k, seed[k]) for k in ("vhost", "file", "valid_until")) for seed in plan.store_seeds],
        "vhost_changes": plan.vhost_changes,
        "selected_vhosts": [v["id"] for v in plan.selected],
        "apache_version": host.version_string,
        "warnings": plan.warnings,
        "diff": [
            {"before_header": path, "after_header": path,
             "before": (old or b"").decode("utf-8", "replace"), "after": new.decode("utf-8", "replace")}
            for path, (old, new) in sorted(rendered.items())
        ] + [
            {"before_header": link, "after_header": link, "before": "", "after": "symlink to %s\n" % target}
            for link, target in sorted(links.items())
        ] + [
            {"before_header": directory, "after_header": directory, "before": "", "after": "directory, mode 0755\n"}
            for directory in plan.store_dirs
        ] + [
            # a response fetched now: the real run fetches its own, with the same content but a later date
            {"before_header": seed["file"], "after_header": seed["file"], "before": "",
             "after": seed["data"].decode("utf-8", "replace")}
            for seed in plan.store_seeds
        ],
    }
    if result["changed"] and not check_mode:
        made = _make_store(plan)
        seeded = _seed_store(plan, made)
        try:
            result["backups"] = _write(host, plan, rendered, run, move, backup)
        except apache_write.WriteError:
            for path, created in seeded:
                md_seed.remove(path, created)
            apache_write.remove_dirs(made)
            raise
        finally:
            host.forget_parsed()
        after = stapling_facts.stapling_facts(host.parse(), seen_certificates=certificates_read)
    else:
        after = _with_certificates(after, facts)
    result["stapling"] = {"server": after["server"], "vhosts": after["vhosts"]}
    result["check_targets"] = check_targets(after["vhosts"], [change["vhost"] for change in plan.vhost_changes])
    return result


# A reload either survives or kills the whole server: a few handshakes tell, however many vhosts changed.
MAX_CHECK_TARGETS = 5
_LOCAL_FOR_ANY = {"*": "127.0.0.1", "_default_": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def check_targets(vhosts, changed_ids):
    """Where to check after a reload that Apache still answers TLS: the switched vhosts (the first few), or the
    first SSL vhost when none switched (only server-wide settings, or the CA bundle, changed)."""
    if not vhosts:
        return []
    changed = set(changed_ids)
    chosen = [v for v in vhosts if v["id"] in changed] or vhosts[:1]
    targets = []
    for vhost in chosen[:MAX_CHECK_TARGETS]:
        address = (vhost.get("addresses") or ["*:443"])[0]
        host, _colon, port = address.rpartition(":")
        if not host or not port.isdigit():
            host, port = address, "443"
        host = host.strip("[]")
        targets.append({"address": _LOCAL_FOR_ANY.get(host, host), "port": int(port),
                        "server_name": vhost["server_name"]})
    return targets


def _make_store(plan):
    try:
        return apache_write.make_dirs(plan.store_dirs)
    except OSError as exc:
        raise apache_write.WriteError("making mod_md's store failed: %s" % exc)


def _seed_store(plan, made_dirs):
    """Write the planned responses into mod_md's store; returns (path, directories created) to undo them."""
    written = []
    try:
        for seed in plan.store_seeds:
            written.append((seed["file"], md_seed.write(seed["store"], seed["file"], seed["data"], seed["owner"])))
    except (IOError, OSError) as exc:
        for path, created in written:
            md_seed.remove(path, created)
        apache_write.remove_dirs(made_dirs)
        raise apache_write.WriteError("writing a response into mod_md's store failed: %s" % exc)
    return written


def _write(host, plan, rendered, run, move, backup):
    """Write, validate, restore on failure. On cPanel, its rebuild runs between writing the userdata files and
    ``ctl -t``, and runs again after a restore so that httpd.conf stops including what was taken away."""
    if not plan.rebuild_command:
        return apache_write.apply_changes(rendered, validate=lambda: host.configtest(run), move=move, backup=backup,
                                          links=plan.links)

    def rebuild_then_test():
        ok, message = _rebuild(plan.rebuild_command, run)
        return host.configtest(run) if ok else (ok, message)

    try:
        return apache_write.apply_changes(rendered, validate=rebuild_then_test, move=move, backup=backup,
                                          links=plan.links)
    except apache_write.WriteError as exc:
        ok, message = _rebuild(plan.rebuild_command, run)
        if not ok:
            raise apache_write.WriteError("%s And rebuilding httpd.conf after the restore failed too: %s"
                                          % (exc, message))
        raise


def _rebuild(command, run):
    try:
        rc, out, err = run(command)
    except (IOError, OSError) as exc:
        return False, "%s could not run: %s" % (command[0], exc)
    if rc != 0:
        return False, "%s failed (rc=%d): %s" % (command[0], rc, (err or out).strip())
    return True, ""


def undo_change(host, records, run, check_mode, move=apache_write.plain_move):
    """Put back what earlier runs wrote, from their records, and check the restored config with ``ctl -t``."""
    restored, removed = apache_write.undo_records(records, move=move, check_mode=check_mode)
    host.forget_parsed()
    changed = bool(restored or removed)
    if changed and not check_mode:
        if any(record.get("regenerated_files") for record in records):
            # cPanel includes a userdata directory only while it holds a file: rebuild without the removed ones
            ok, message = _rebuild([os.path.join(host.cpanel_root, apache_instance.CPANEL_REBUILD_SCRIPT)], run)
            if not ok:
                raise apache_write.WriteError("the files are back as they were before, but %s" % message)
        ok, message = host.configtest(run)
        if not ok:
            raise apache_write.WriteError("the files are back as they were before, but ctl -t now fails: %s"
                                          % message)
    facts = stapling_facts.stapling_facts(host.parse(), read_certificates=False)
    return {
        "changed": changed,
        "changed_files": sorted(restored + removed),
        "created_files": [],
        "created_links": [],
        "created_dirs": [],
        "regenerated_files": [],
        "reload_twice": False,
        "kept_from_store": [],
        "store_seeded": [],
        "restored_files": restored,
        "removed_files": removed,
        "vhost_changes": [],
        "selected_vhosts": [],
        "apache_version": host.version_string,
        "warnings": [],
        "stapling": {"server": facts["server"], "vhosts": facts["vhosts"]},
        "check_targets": check_targets(facts["vhosts"], []),
    }


def _with_certificates(after, before):
    """The planned facts were read without certificates; edits never change them, so take them from before."""
    by_key = dict((v["key"], v) for v in before["vhosts"])
    for vhost in after["vhosts"]:
        known = by_key.get(vhost["key"])
        if known:
            vhost["certificate"] = known["certificate"]
            vhost["certificate_error"] = known["certificate_error"]
    return after
