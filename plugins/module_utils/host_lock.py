# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One writer at a time per Apache instance: an ``flock`` on a file in a root-only state directory.

Two plays flipping the same host at once would otherwise plan on the same bytes and write over each other, or
validate a tree the other is half-way through changing. The lock is keyed by the instance's main config file
and held from the read for the plan to the end of the validation or rollback (and through a reload).

The kernel drops an ``flock`` when its process dies, so a killed run never blocks the next one. The lock file
says who holds it (pid, when, what), so that a run that waits, or gives up, can name the holder. A writer
removes it as it lets go; one that was killed cannot, and what it wrote there is recognised by the next run as
left by a process that is gone. Check mode takes the lock
shared: it waits for a writer (so that it never reports on a half-written tree) but not for other checks.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import time

# Beside the journal of interrupted runs (see run_journal), which must survive a reboot: not under /run.
DEFAULT_STATE_DIR = "/var/lib/fleet-stapling"
# Long enough for a flip of a large host by another play (plan, write, ctl -t, a reload and its checks).
DEFAULT_LOCK_TIMEOUT = 120
POLL_INTERVAL = 0.1


class LockError(Exception):
    """The lock could not be had (held too long, or an unsafe state directory); the message says by whom."""


def instance_key(config_file):
    """A file name for the instance whose main config is ``config_file``: readable, and unique by a hash."""
    real = os.path.realpath(os.path.abspath(config_file))
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", real.strip("/"))[-80:]
    return "%s-%s" % (readable, hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:12])


def ensure_state_dir(path):
    """Make the state directory (mode 0700) or check the one there: ours, a real directory, closed to others.

    A directory that others may write to would let them plant a lock or a journal that tells the next run to
    "restore" files from copies of their choosing."""
    if not os.path.lexists(path):
        os.makedirs(path, 0o700)
        os.chmod(path, 0o700)
    found = os.lstat(path)
    if not os.path.isdir(path) or os.path.islink(path):
        raise LockError("the state directory %s is not a directory (a symlink or a file?); set state_dir" % path)
    if found.st_uid != os.geteuid():
        raise LockError("the state directory %s belongs to uid %d, not to this user (uid %d); set state_dir"
                        % (path, found.st_uid, os.geteuid()))
    if found.st_mode & 0o077:
        os.chmod(path, 0o700)


def process_start(pid):
    """When the process started, in clock ticks since boot (/proc), or None when there is no such process.
    A pid with the same start time is the same process, not a later one given the same number."""
    try:
        with open("/proc/%d/stat" % pid) as stream:
            text = stream.read()
    except (IOError, OSError, ValueError, TypeError):
        return None
    fields = text[text.rfind(")") + 2:].split()
    return int(fields[19]) if len(fields) > 19 and fields[19].isdigit() else None


def this_process():
    """Who we are, as a lock file or a journal records it."""
    pid = os.getpid()
    return {"pid": pid, "process_start": process_start(pid),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def is_alive(holder):
    start = process_start(holder.get("pid") or 0)
    return start is not None and start == holder.get("process_start")


def describe(holder):
    """'pid 1234 (apache_stapling state=disabled, since 2026-12-03T10:00:00Z)', and whether it is gone."""
    text = "pid %s (%s, since %s)" % (holder.get("pid"), holder.get("doing") or "doing something unnamed",
                                      holder.get("started") or "an unknown time")
    return text if is_alive(holder) else text + ", which is gone"


class InstanceLock(object):
    """``with InstanceLock(...)``: held exclusively (``shared=False``) or shared, for one Apache instance."""

    def __init__(self, state_dir, config_file, timeout=DEFAULT_LOCK_TIMEOUT, shared=False, doing="", optional=False,
                 clock=time.monotonic, sleep=time.sleep):
        self.state_dir = state_dir
        self.config_file = config_file
        self.path = os.path.join(state_dir, instance_key(config_file) + ".lock")
        self.timeout = max(0, timeout or 0)
        self.shared = shared
        self.doing = doing
        self.optional = optional  # a reader may go on without the lock when the state directory cannot be made
        self.clock = clock
        self.sleep = sleep
        self.fd = None
        self.waited = 0.0
        self.waited_for = None  # the holder we waited for, described
        self.stale = None  # what a killed holder left in the lock file, described
        self.unavailable = None  # why an optional lock could not be had
        self.acquired = False

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc_info):
        self.release()

    def acquire(self):
        if self.shared and not os.path.isdir(self.state_dir):
            # no run has written on this host yet, so none can hold the lock: a check leaves the host as it found it
            self.acquired = True
            return
        try:
            ensure_state_dir(self.state_dir)
        except (OSError, LockError) as exc:
            self._unavailable(exc)
            return
        started = self.clock()
        holder = None
        while True:
            try:
                self._open()
            except OSError as exc:
                self._unavailable(exc)
                return
            while not self._try_lock():
                holder = self._holder() or holder
                waited = self.clock() - started
                if waited >= self.timeout:
                    self._close()
                    raise LockError(self._gave_up(holder, waited))
                self.sleep(min(POLL_INTERVAL, self.timeout - waited))
            if self._still_the_lock_file():
                break
            # the holder we waited for removed the file as it let go (see release): lock the one there now
            self._close()
        self.waited = self.clock() - started
        if holder is not None:
            self.waited_for = describe(holder)
        left = self._holder()
        if left is not None and not is_alive(left):
            self.stale = "left by " + describe(left)
        if not self.shared:
            self._write_holder()
        self.acquired = True

    def release(self):
        """A writer removes the lock file as it lets go, so that the state directory holds only what a killed run
        left: a lock file that names a holder, and its journal. A check may not, another may hold it too."""
        if self.fd is None:
            return
        if not self.shared:
            try:
                os.unlink(self.path)
            except OSError:
                os.ftruncate(self.fd, 0)  # then at least it names no holder that is gone
        self._close()

    def _open(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        if os.fstat(self.fd).st_mode & 0o077:
            os.fchmod(self.fd, 0o600)

    def _still_the_lock_file(self):
        try:
            named = os.stat(self.path)
        except OSError:
            return False
        held = os.fstat(self.fd)
        return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)

    def _unavailable(self, exc):
        self._close()
        problem = "cannot open the lock file of %s in %s: %s" % (self.config_file, self.state_dir, exc)
        if not self.optional:
            raise LockError(problem + "; set state_dir")
        self.unavailable = problem
        self.acquired = True

    def report(self):
        """What the result says about the lock."""
        return {"file": self.path, "shared": self.shared, "waited": round(self.waited, 2),
                "waited_for": self.waited_for, "stale": self.stale, "unavailable": self.unavailable}

    def _try_lock(self):
        mode = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        try:
            fcntl.flock(self.fd, mode | fcntl.LOCK_NB)
        except (IOError, OSError) as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return False
            raise LockError("cannot lock %s: %s" % (self.path, exc))
        return True

    def _holder(self):
        """Who the lock file names (None when empty or unreadable: a holder mid-write, or a check-mode run)."""
        try:
            data = os.pread(self.fd, 4096, 0)
            holder = json.loads(data.decode("utf-8")) if data.strip() else None
        except (OSError, ValueError):
            return None
        return holder if isinstance(holder, dict) else None

    def _write_holder(self):
        holder = dict(this_process(), doing=self.doing, config_file=self.config_file)
        data = json.dumps(holder, sort_keys=True).encode("utf-8") + b"\n"
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def _gave_up(self, holder, waited):
        if holder is None or not is_alive(holder):
            # shared holders (check-mode runs) do not write their name; a dead one's leftovers are not the holder
            who = "a run that does not name itself (a check-mode run reading under a shared lock)"
            if holder is not None:
                who += "; the lock file still names " + describe(holder)
        else:
            who = describe(holder)
        return ("another run holds the lock of the Apache instance %s: %s. Gave up after %.1f s (lock_timeout=%d); "
                "nothing was read or written. Run again once it is done, or raise lock_timeout. Lock file: %s"
                % (self.config_file, who, waited, self.timeout, self.path))

    def _close(self):
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None
