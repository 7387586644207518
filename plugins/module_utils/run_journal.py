# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a pass is about to change, on disk before it changes it, so that a killed run can be undone by the next.

A run killed between writing the config and ``ctl -t`` (SIGKILL, the OOM killer, a power cut) cannot roll back:
its memory, with the old bytes, is gone. So before the first file is replaced the pass writes a journal beside
its lock: the records the undo engine takes (``backups``, ``created_files``, ``created_links``,
``created_dirs``) and a stage, ``written`` until ``ctl -t`` has passed, then ``validated``. The journal is removed
when the pass ends, validated and kept or rolled back. A journal found by the next run, which holds the lock,
was left by a dead run. The backups it names stay until it is removed: when the pass was asked for none, the
journal keeps private copies of the old files in a directory of its own, closed to everyone but root.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

from ansible_collections.fleet.stapling.plugins.module_utils import host_lock

WRITTEN = "written"
VALIDATED = "validated"


class JournalError(Exception):
    """A journal left by an earlier run cannot be read; the message names it."""


class Journal(object):
    """The journal of one Apache instance, in the state directory beside its lock."""

    def __init__(self, state_dir, config_file, doing=""):
        key = host_lock.instance_key(config_file)
        self.path = os.path.join(state_dir, key + ".journal")
        self.copies_dir = os.path.join(state_dir, key + ".copies")
        self.state_dir = state_dir
        self.config_file = config_file
        self.doing = doing
        self.entry = None
        self._copies = 0

    def leftover(self):
        """The journal of a dead run (the caller holds the lock, so no live run is writing one), or None."""
        try:
            with open(self.path, "rb") as stream:
                entry = json.loads(stream.read().decode("utf-8"))
        except (IOError, OSError) as exc:
            if not os.path.exists(self.path):
                return None
            raise JournalError("cannot read the journal of an interrupted run, %s: %s" % (self.path, exc))
        except ValueError as exc:
            raise JournalError("the journal of an interrupted run, %s, is not readable JSON (%s); the files it lists "
                               "may be half-changed. Check them, then remove it." % (self.path, exc))
        if not isinstance(entry, dict) or not isinstance(entry.get("records"), list):
            raise JournalError("the journal %s holds no records; check the config, then remove it" % self.path)
        return entry

    def add(self, record):
        """Note what the pass is about to do (before it does it): written at once, atomically."""
        if self.entry is None:
            self.entry = dict(host_lock.this_process(), doing=self.doing, config_file=self.config_file,
                              stage=WRITTEN, records=[])
        self.entry["records"].append(record)
        self._save()

    def mark(self, stage):
        if self.entry is not None:
            self.entry["stage"] = stage
            self._save()

    def keep_copy(self, path):
        """A private backup of ``path`` for the journal (the pass keeps no backups of its own): root's only."""
        if not os.path.isdir(self.copies_dir):
            os.mkdir(self.copies_dir, 0o700)
        self._copies += 1
        copy = os.path.join(self.copies_dir, "%d-%s" % (self._copies, os.path.basename(path)))
        with open(path, "rb") as source:
            data = source.read()
        handle = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        return copy

    def clear(self):
        """The pass has ended: drop the journal first, then the copies it needed (never the other way round)."""
        if os.path.exists(self.path):
            os.unlink(self.path)
            _sync_dir(self.state_dir)
        self.entry = None
        self.drop_copies()

    def drop_copies(self):
        """Private copies no journal names any more (a run killed between removing its journal and them)."""
        if os.path.isdir(self.copies_dir) and not os.path.exists(self.path):
            shutil.rmtree(self.copies_dir, ignore_errors=True)

    def _save(self):
        handle, temporary = tempfile.mkstemp(prefix=".journal-", dir=self.state_dir)
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(json.dumps(self.entry, indent=1, sort_keys=True).encode("utf-8"))
                stream.flush()
                os.fsync(stream.fileno())
            os.rename(temporary, self.path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
        # the rename itself must reach the disk before the first config file is replaced
        _sync_dir(self.state_dir)


def describe(entry):
    """Who left a journal, for messages: 'pid 1234 (apache_stapling state=disabled, since ...), which is gone'."""
    return host_lock.describe(entry)


def _sync_dir(path):
    try:
        handle = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass  # some file systems cannot sync a directory; the rename is still atomic
    finally:
        os.close(handle)
