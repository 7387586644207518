# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Write planned config changes atomically, validate them, and put every byte back when validation fails."""

from __future__ import annotations

import os
import shutil
import tempfile
import time


class WriteError(Exception):
    """Writing or validating failed; every touched file has been restored when this is raised, unless
    ``restored`` is false (then the message names what was not)."""

    def __init__(self, message, restored=True):
        super(WriteError, self).__init__(message)
        self.restored = restored


def plain_move(source, destination):
    """Rename into place keeping the old file's owner and mode (AnsibleModule.atomic_move also keeps SELinux)."""
    try:
        stat = os.stat(destination)
    except OSError:
        stat = None
    if stat is not None:
        os.chmod(source, stat.st_mode & 0o7777)
        if hasattr(os, "chown"):
            try:
                os.chown(source, stat.st_uid, stat.st_gid)
            except OSError:
                pass  # not root: the file stays ours, which is what an unprivileged run can do
    else:
        os.chmod(source, 0o644)
    os.rename(source, destination)


def atomic_write(path, data, move=plain_move):
    directory = os.path.dirname(path)
    handle, temporary = tempfile.mkstemp(prefix=".fleet-stapling-", dir=directory)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        move(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def backup_copy(path, copy_file):
    """A copy of ``path`` beside it, named as AnsibleModule.backup_local names it (``<file>.<pid>.<date>@<time>~``,
    which ``discard_backups`` checks), made by ``copy_file(source, destination)``, such as
    AnsibleModule.preserved_copy, which keeps owner, mode and SELinux context. Unlike backup_local, a copy that
    fails (a full disk) leaves no partial file behind and raises OSError, not a bare Exception."""
    copy = "%s.%d.%s" % (path, os.getpid(), time.strftime("%Y-%m-%d@%H:%M:%S~", time.localtime()))
    try:
        copy_file(path, copy)
    except (shutil.Error, IOError, OSError) as exc:
        if os.path.lexists(copy):
            os.unlink(copy)
        raise OSError("could not make a backup copy of %s: %s" % (path, exc))
    return copy


class Transaction(object):
    """Files changed together; ``rollback`` returns each to its exact former bytes, or removes it if new.

    ``prepare`` makes every backup copy and works out the directories to make before the first file is
    replaced, and returns that as an undo record, for a journal to hold while the files change."""

    def __init__(self, move=plain_move, backup=None):
        self.move = move
        self.backup = backup
        self.originals = []  # (path, old bytes or None)
        self.created_dirs = []
        self.backups = {}

    def prepare(self, rendered, links=None):
        record = {"backups": {}, "created_files": [], "created_links": sorted(links or {}), "created_dirs": []}
        try:
            for path in sorted(rendered):
                real = os.path.realpath(path)
                if rendered[path][0] is None:
                    record["created_files"].append(real)
                elif self.backup is not None:
                    self.backups[real] = self.backup(real)
        except BaseException:
            # a copy failed, or the run is being stopped: leave none of the copies behind
            self.drop_copies()
            raise
        record["backups"] = dict(self.backups)
        for path in record["created_files"] + record["created_links"]:
            for directory in _missing_parents(path):
                if directory not in record["created_dirs"]:
                    record["created_dirs"].append(directory)
        return record

    def write(self, path, old, new):
        # Debian's sites-enabled entries are symlinks: change the file they point at, keep the link.
        path = os.path.realpath(path)
        if old is None:
            self._make_parent(path)
        elif self.backup is not None and path not in self.backups:
            self.backups[path] = self.backup(path)
        atomic_write(path, new, self.move)
        # only once it is replaced: a write that failed left the file as it was, and writing it again to "restore"
        # it would fail the same way on a full disk
        self.originals.append((path, old))

    def link(self, path, target):
        """Make a symlink (the a2enconf kind); undone by removing it."""
        self._make_parent(path)
        os.symlink(target, path)
        self.originals.append((path, None))

    def _make_parent(self, path):
        for directory in _missing_parents(path):
            os.mkdir(directory, 0o755)
            self.created_dirs.append(directory)

    def rollback(self):
        """Put every file back; returns what could not be. The backup copies stay (see ``drop_copies``)."""
        errors = []
        for path, old in reversed(self.originals):
            try:
                if old is None:
                    if os.path.lexists(path):
                        os.unlink(path)
                else:
                    atomic_write(path, old, self.move)
            except (IOError, OSError) as exc:
                errors.append("%s: %s" % (path, exc))
        for directory in reversed(self.created_dirs):
            try:
                os.rmdir(directory)
            except OSError:
                pass  # something else was put there meanwhile; leave it
        return errors

    def drop_copies(self):
        """Every file is back byte for byte (or was never touched): a copy of what is there is only clutter."""
        for copy in self.backups.values():
            if copy and os.path.exists(copy):
                os.unlink(copy)
        self.backups.clear()


def _missing_parents(path):
    """The directories above ``path`` that do not exist yet, outermost first."""
    missing = []
    directory = os.path.dirname(path)
    while directory and not os.path.isdir(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    return list(reversed(missing))


def check_unchanged(rendered, links=None):
    """Before the write: every file the plan replaces still holds the bytes the plan was made from, every
    file and link it creates is still absent. Another tool or an operator's editor may have written one since
    the read (they do not take our lock); writing our version would silently undo their change. Raises
    WriteError naming the files, having written nothing."""
    changed = []
    for path in sorted(rendered):
        try:
            with open(path, "rb") as stream:
                now = stream.read()
        except (IOError, OSError) as exc:
            now = None if not os.path.lexists(path) else exc
        if now != rendered[path][0]:
            changed.append(path if not isinstance(now, Exception) else "%s (%s)" % (path, now))
    changed.extend(link for link in sorted(links or {}) if os.path.lexists(link))
    if changed:
        raise WriteError("%s changed on disk after this run read it to plan the change (another tool, or an editor, "
                         "wrote it meanwhile). Nothing was written: run again to plan on what is there now."
                         % ", ".join(changed))


def apply_changes(rendered, validate, move=plain_move, backup=None, links=None, journal=None):
    """Write every change, then ``validate()``; on any failure restore everything and raise WriteError.

    ``rendered`` maps path -> (old bytes or None for a new file, new bytes); ``links`` maps a symlink to make
    to what it points at, made once the files are there. ``validate`` returns (ok, message). Returns the
    backups made, by path. A ``journal`` (run_journal.Journal) gets the pass's undo record before the first
    file is replaced, the stage ``validated`` once ``validate()`` passed, and is cleared after a rollback (the
    caller clears it after a success, when its pass ends).
    """
    transaction = Transaction(move, backup)
    try:
        record = transaction.prepare(rendered, links)
        if journal is not None:
            journal.add(record)
    except (IOError, OSError) as exc:
        transaction.drop_copies()
        raise WriteError("preparing the change failed, so nothing was changed: %s" % exc)
    try:
        for path in sorted(rendered):
            old, new = rendered[path]
            transaction.write(path, old, new)
        for path in sorted(links or {}):
            transaction.link(path, links[path])
        ok, message = validate()
    except (IOError, OSError) as exc:
        ok, message = False, "writing failed: %s" % exc
    if ok:
        if journal is not None:
            try:
                journal.mark("validated")
            except (IOError, OSError):
                pass  # it stays "written": a run killed before the pass ends is then undone, the safe side
        return transaction.backups
    errors = transaction.rollback()
    if errors:
        # the copies (and the journal naming them) stay: they are what a later run needs to finish the restore
        raise WriteError("%s. Restoring failed for: %s. The backup copies are kept: %s"
                         % (message, "; ".join(errors), ", ".join(sorted(transaction.backups.values()))),
                         restored=False)
    if journal is not None:
        journal.clear()
    transaction.drop_copies()
    raise WriteError("%s. Every changed file was restored to its previous content." % message)


def make_dirs(paths, mode=0o755):
    """Create these directories, outermost first, with exactly ``mode`` (not what the umask leaves of it).
    Returns the ones made; on failure removes them again and raises OSError."""
    made = []
    try:
        for path in paths:
            if not os.path.isdir(path):
                os.mkdir(path, mode)
                made.append(path)
                os.chmod(path, mode)
    except OSError:
        remove_dirs(made)
        raise
    return made


def remove_dirs(paths):
    """Remove directories this collection made, with what was put in them since (mod_md's store files)."""
    for path in reversed(list(paths)):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)


def undo_records(records, move=plain_move, check_mode=False, keep_copies=False):
    """Put a host back as it was before earlier runs, from what those runs returned, newest run first.

    Each record names the symlinks, files and directories the run created and the backup copy of every file it
    changed (by real path). A directory it created goes with whatever was put in it since (mod_md's store).
    This is the same byte-for-byte restore a failed validation gets, used when a change passed ``ctl -t`` and
    was written, and something later (a reload that killed httpd) shows it must go. Returns
    (restored paths, removed paths); raises WriteError naming what could not be put back. The backup copies are
    removed once everything is restored, unless ``keep_copies`` (a journal still names them: it goes first).
    """
    restored, removed, errors, used_copies = [], [], [], []
    for record in reversed(list(records)):
        for path in list(record.get("created_links") or []) + list(record.get("created_files") or []):
            if os.path.lexists(path):
                removed.append(path)
                if not check_mode:
                    _try(errors, path, os.unlink, path)
        for path in reversed(list(record.get("created_dirs") or [])):
            if os.path.isdir(path) and not os.path.islink(path):
                removed.append(path)
                if not check_mode:
                    _try(errors, path, shutil.rmtree, path)
        for path, copy in sorted((record.get("backups") or {}).items()):
            try:
                with open(copy, "rb") as stream:
                    data = stream.read()
            except (IOError, OSError) as exc:
                errors.append("%s: its backup %s cannot be read (%s)" % (path, copy, exc))
                continue
            restored.append(path)
            used_copies.append(copy)
            if not check_mode:
                _try(errors, path, atomic_write, path, data, move)
    if errors:
        raise WriteError("could not undo everything: %s" % "; ".join(errors), restored=False)
    if not check_mode and not keep_copies:
        for copy in used_copies:
            if os.path.exists(copy):
                os.unlink(copy)
    return sorted(set(restored)), sorted(set(removed) - set(restored))


def discard_backups(records, check_mode=False):
    """Remove the backup copies earlier runs made, once their change is known to be good (httpd survived the
    reload). Only a copy beside its file and named as AnsibleModule.backup_local names it is touched, so a
    record cannot be used to remove anything else. Returns the copies removed (in check mode, to remove)."""
    removed = []
    for record in records:
        for path, copy in sorted((record.get("backups") or {}).items()):
            if not (copy and os.path.dirname(copy) == os.path.dirname(path)
                    and os.path.basename(copy).startswith(os.path.basename(path) + ".") and copy.endswith("~")):
                raise WriteError("%s is not a backup copy of %s; nothing was removed" % (copy, path))
            if os.path.lexists(copy):
                removed.append(copy)
    if not check_mode:
        for copy in removed:
            os.unlink(copy)
    return removed


def _try(errors, path, action, *args):
    try:
        action(*args)
    except (IOError, OSError) as exc:
        errors.append("%s: %s" % (path, exc))
