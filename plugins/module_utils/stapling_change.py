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
    host_lock,
    md_engine,
    md_seed,
    run_journal,
    stapling_facts,
    stapling_plan,
)
from ansible_collections.fleet.stapling.plugins.module_utils.apache_config import ApacheConfigError
from ansible_collections.fleet.stapling.plugins.module_utils.apache_host import ApacheHostError
from ansible_collections.fleet.stapling.plugins.module_utils.cryptography_floor import CertificateError

# Every failure a run reports to the operator as a plain message.
STAPLING_ERRORS = (
    ApacheConfigError,
    ApacheHostError,
    CertificateError,
    stapling_plan.StaplingError,
    apache_write.WriteError,
    md_engine.MdEngineError,
    host_lock.LockError,
    run_journal.JournalError,
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
        without_ocsp_url=params.get("without_ocsp_url") or stapling_plan.stapling_eligibility.WITHOUT_URL_OFF,
    )


def change_stapling(host, desired, run, check_mode, move=apache_write.plain_move, backup=None, journal=None,
                    cache=None):
    """The plan, and unless in check mode the change. The caller holds the instance's lock; ``journal``
    (run_journal.Journal) then records the pass while it writes, so that a run killed mid-way can be undone.
    ``cache`` (certificate_cache.CertificateFactsCache) gives what unchanged certificates said in earlier runs."""
    # what each certificate says, by (certificate, chain, CA file): read once, before and after the write alike
    certificates_read = {}
    plan, rendered, facts, after = stapling_plan.plan_change(host.parse, desired, certificates_read, cache)
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
        "off_without_url": plan.off_without_url,
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
        # under the lock no run of ours has written since the read; another tool or an editor may have
        apache_write.check_unchanged(rendered, links)
        if journal is not None and (plan.store_dirs or plan.regenerated):
            _note(journal, {"created_dirs": [path for path in plan.store_dirs if not os.path.isdir(path)],
                            "regenerated_files": sorted(plan.regenerated)})
        made = _make_store(plan)
        seeded = _seed_store(plan, made)
        # the journal needs a copy of every file it may have to restore, asked for or not
        copy = backup or (journal.keep_copy if journal is not None else None)
        try:
            backups = _write(host, plan, rendered, run, move, copy, journal)
        except apache_write.WriteError as exc:
            for path, created in seeded:
                md_seed.remove(path, created)
            apache_write.remove_dirs(made)
            if journal is not None and exc.restored:
                _end_pass(journal)
            raise
        finally:
            host.forget_parsed()
        if journal is not None:
            _end_pass(journal)
        result["backups"] = backups if backup else {}
        if plan.regenerated:
            # cPanel's rebuild wrote those files: read them as it did, not as the plan expected it would
            after = stapling_facts.stapling_facts(host.parse(), seen_certificates=certificates_read)
        else:
            # the disk now holds, under the lock, the very bytes the plan's check read (check_unchanged made
            # sure nobody else wrote meanwhile): on a large host a third read of the tree cost more than ctl -t
            host.adopt_parsed(plan.planned_config)
            after = _with_certificates(after, facts)
    else:
        after = _with_certificates(after, facts)
    result["stapling"] = {"server": after["server"], "vhosts": after["vhosts"]}
    result["check_targets"] = check_targets(after["vhosts"], [change["vhost"] for change in plan.vhost_changes])
    return result


def _note(journal, record):
    try:
        journal.add(record)
    except (IOError, OSError) as exc:
        raise apache_write.WriteError("cannot write the journal %s, so nothing was changed: %s" % (journal.path, exc))


def _end_pass(journal):
    try:
        journal.clear()
    except (IOError, OSError) as exc:
        raise apache_write.WriteError("the pass is over, but its journal %s cannot be removed (%s): remove it by hand, "
                                      "or the next run undoes this pass" % (journal.path, exc))


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


def _write(host, plan, rendered, run, move, backup, journal):
    """Write, validate, restore on failure. On cPanel, its rebuild runs between writing the userdata files and
    ``ctl -t``, and runs again after a restore so that httpd.conf stops including what was taken away."""
    if not plan.rebuild_command:
        return apache_write.apply_changes(rendered, validate=lambda: host.configtest(run), move=move, backup=backup,
                                          links=plan.links, journal=journal)

    def rebuild_then_test():
        ok, message = _rebuild(plan.rebuild_command, run)
        return host.configtest(run) if ok else (ok, message)

    try:
        return apache_write.apply_changes(rendered, validate=rebuild_then_test, move=move, backup=backup,
                                          links=plan.links, journal=journal)
    except apache_write.WriteError as exc:
        ok, message = _rebuild(plan.rebuild_command, run)
        if not ok:
            raise apache_write.WriteError("%s And rebuilding httpd.conf after the restore failed too: %s"
                                          % (exc, message), restored=exc.restored)
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
        problem = _check_restored(host, records, run)
        if problem:
            raise apache_write.WriteError("the files are back as they were before, but %s" % problem)
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


def _check_restored(host, records, run):
    """After a restore: cPanel's rebuild where a record had it regenerate httpd.conf, then ``ctl -t``. Returns
    what is wrong, or None."""
    if any(record.get("regenerated_files") for record in records):
        # cPanel includes a userdata directory only while it holds a file: rebuild without the removed ones
        ok, message = _rebuild([os.path.join(host.cpanel_root, apache_instance.CPANEL_REBUILD_SCRIPT)], run)
        if not ok:
            return message
    ok, message = host.configtest(run)
    return None if ok else "ctl -t now fails: %s" % message


def repair_interrupted(host, journal, run, check_mode, move=apache_write.plain_move):
    """Before a run's own work, under the lock: undo what a killed run left half-done, from its journal.

    A journal in stage ``written`` means the files may be half-changed and never validated: they are restored
    byte for byte with the undo engine and checked with ``ctl -t``. One in stage ``validated`` means the change
    passed ``ctl -t`` and was complete; it stays. Check mode only says what a real run would repair. Returns
    (what was repaired or None, warnings); raises WriteError when the restore fails, keeping the journal.
    """
    left = journal.leftover()
    if left is None:
        if not check_mode:
            journal.drop_copies()
        return None, []
    records = left["records"]
    repaired = {"left_by": run_journal.describe(left), "stage": left.get("stage"), "journal": journal.path,
                "restored_files": [], "removed_files": []}
    if left.get("stage") == run_journal.VALIDATED:
        copies = sorted(copy for record in records for copy in (record.get("backups") or {}).values()
                        if not copy.startswith(journal.copies_dir + os.sep))
        if not check_mode:
            _end_pass(journal)
        return repaired, ["a run, %s, was killed after its change passed ctl -t; the change stays, not reloaded yet%s"
                          % (repaired["left_by"], "; its backups: %s" % ", ".join(copies) if copies else "")]
    try:
        restored, removed = apache_write.undo_records(records, move=move, check_mode=check_mode, keep_copies=True)
    except apache_write.WriteError as exc:
        message = ("a run, %s, was killed between writing and validating, and undoing it failed: %s. Its journal %s "
                   "stays for the next run." % (repaired["left_by"], exc, journal.path))
        raise apache_write.WriteError(message, restored=False)
    repaired.update(restored_files=restored, removed_files=removed)
    if check_mode:
        return repaired, ["a run, %s, was killed between writing and validating; a real run first restores %s "
                          "(this check reports on the files as they are now)"
                          % (repaired["left_by"], ", ".join(restored + removed) or "nothing")]
    host.forget_parsed()
    problem = _check_restored(host, records, run)
    copies = [copy for record in records for copy in (record.get("backups") or {}).values()]
    _end_pass(journal)
    for copy in copies:
        if os.path.exists(copy):
            os.unlink(copy)
    if problem:
        raise apache_write.WriteError("a run, %s, was killed between writing and validating; its files are back as "
                                      "they were before it, but %s" % (repaired["left_by"], problem))
    return repaired, ["a run, %s, was killed between writing and validating; repaired before this run: restored %s"
                      % (repaired["left_by"], ", ".join(restored + removed) or "nothing")]


def _with_certificates(after, before):
    """The planned facts were read without certificates; edits never change them, so take them from before."""
    by_key = dict((v["key"], v) for v in before["vhosts"])
    for vhost in after["vhosts"]:
        known = by_key.get(vhost["key"])
        if known:
            vhost["certificate"] = known["certificate"]
            vhost["certificate_error"] = known["certificate_error"]
    return after
