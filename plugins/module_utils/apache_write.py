# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Write planned config changes atomically, validate them, and put every byte back when validation fails."""

from __future__ import annotations

import os
import tempfile


class WriteError(Exception):
    """Writing or validating failed; every touched file has been restored when this is raised."""


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


class Transaction(object):
    """Files changed together; ``rollback`` returns each to its exact former bytes, or removes it if new."""

    def __init__(self, move=plain_move, backup=None):
        self.move = move
        self.backup = backup
        self.originals = []  # (path, old bytes or None)
        self.created_dirs = []
        self.backups = {}

    def write(self, path, old, new):
        # Debian's sites-enabled entries are symlinks: change the file they point at, keep the link.
        path = os.path.realpath(path)
        if old is None:
            self._make_parent(path)
        elif self.backup is not None:
            self.backups[path] = self.backup(path)
        self.originals.append((path, old))
        atomic_write(path, new, self.move)

    def _make_parent(self, path):
        missing = []
        directory = os.path.dirname(path)
        while directory and not os.path.isdir(directory):
            missing.append(directory)
            directory = os.path.dirname(directory)
        for directory in reversed(missing):
            os.mkdir(directory, 0o755)
            self.created_dirs.append(directory)

    def rollback(self):
        errors = []
        for path, old in reversed(self.originals):
            try:
                if old is None:
                    if os.path.exists(path):
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
        if not errors:
            # every file is back byte for byte: a copy of what is already there would only be clutter
            for copy in self.backups.values():
                if copy and os.path.exists(copy):
                    os.unlink(copy)
            self.backups.clear()
        return errors


def apply_changes(rendered, validate, move=plain_move, backup=None):
    """Write every change, then ``validate()``; on any failure restore everything and raise WriteError.

    ``rendered`` maps path -> (old bytes or None for a new file, new bytes). ``validate`` returns
    (ok, message). Returns the backups made, by path.
    """
    transaction = Transaction(move, backup)
    try:
        for path in sorted(rendered):
            old, new = rendered[path]
            transaction.write(path, old, new)
        ok, message = validate()
    except (IOError, OSError) as exc:
        ok, message = False, "writing failed: %s" % exc
    if ok:
        return transaction.backups
    errors = transaction.rollback()
    detail = "" if not errors else " Restoring also failed for: %s" % "; ".join(errors)
    raise WriteError("%s. Every changed file was restored to its previous content.%s" % (message, detail))
