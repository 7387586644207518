# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Reload httpd after a validated change and prove that it survived; when it did not, take the change back.

``ctl -t`` passes configurations that kill httpd when it loads them (a stapling cache it cannot create, a
graceful reload without SSLStaplingCache), so a reload is only done when:

1. the master that ran before is still there and has started children of the new generation (a graceful
   reload), or the pid file names a live master with children (a full restart, such as cPanel's script);
2. every vhost the change names answers a TLS handshake.

When either fails, the records of the run's passes are undone byte for byte (``stapling_change.undo_change``,
the collection's one rollback engine), httpd is started again and the caller fails the host. When both hold,
the run's backup copies go, and mod_md newly loaded gets its second graceful reload (its background fetcher
only starts at the second start after it was loaded).

Waits end at an event (new children, a handshake) or at a deadline; only a failed handshake is retried, a second later.
"""

from __future__ import annotations

import os
import socket
import time

from ansible_collections.fleet.stapling.plugins.module_utils import apache_write, staple_probe
from ansible_collections.fleet.stapling.plugins.module_utils.apache_host import split_command

GENERATION_TIMEOUT = 15.0  # seconds for a reloaded master to start its new children (thousands of certificates load first)
NO_MASTER_GRACE = 3.0  # seconds a restart may take between the old master's exit and the new one's pid file
HANDSHAKE_TIMEOUT = 3.0  # one TLS handshake
POLL_INTERVAL = 0.1


class ReloadError(Exception):
    """httpd did not survive, or the reload could not be done or checked; the message says what happened."""


class ProcessTable(object):
    """What /proc says about processes (Linux); injectable for tests."""

    def alive(self, pid):
        return bool(pid) and os.path.exists("/proc/%d" % pid) and self._state(pid) not in ("Z", "X", None)

    def children(self, pid):
        found = set()
        for name in os.listdir("/proc"):
            if name.isdigit() and self._parent(int(name)) == pid:
                found.add(int(name))
        return found

    @staticmethod
    def _stat(pid):
        try:
            with open("/proc/%d/stat" % pid) as stream:
                text = stream.read()
        except (IOError, OSError):
            return None
        # the command name is in parentheses and may hold spaces: the fields start after the last ")"
        return text[text.rfind(")") + 2:].split()

    def _state(self, pid):
        fields = self._stat(pid)
        return fields[0] if fields else None

    def _parent(self, pid):
        fields = self._stat(pid)
        return int(fields[1]) if fields and len(fields) > 1 and fields[1].isdigit() else None


class Reload(object):
    """One reload of one host. ``run`` runs an argument list (as apache_host.module_runner does); ``read_pid``
    returns the pid the master's pid file names now, or None; ``undo`` takes the records back and raises
    apache_write.WriteError when it cannot."""

    def __init__(self, command, start_command, master_pid, records, run, read_pid, undo, attempts=5,
                 keep_backups=False, processes=None, handshake=staple_probe.check_handshake, clock=time.monotonic,
                 sleep=time.sleep):
        self.command = split_command(command) if command else []
        self.start_command = split_command(start_command) if start_command else []
        self.master_pid = master_pid
        self.records = records or []
        self.targets = _targets(self.records)
        self.run = run
        self.read_pid = read_pid
        self.undo = undo
        self.attempts = max(1, attempts)
        self.keep_backups = keep_backups
        self.processes = processes or ProcessTable()
        self.handshake = handshake
        self.clock = clock
        self.sleep = sleep

    def __call__(self):
        if not self.command:
            raise ReloadError("no reload command: set stapling_apache_reload_command")
        reloads = 1
        rc, out, err, before = self._reload(self.master_pid)
        master, answering = self._survived(self.master_pid, before)
        if master is None or not answering:
            self._take_back(master, answering)
        if rc != 0:
            raise ReloadError("The reload command failed (rc=%d): %s. Apache still answers, possibly with the previous "
                              "configuration; run the reload again." % (rc, (err or out).strip() or "(no output)"))
        try:
            removed = [] if self.keep_backups else apache_write.discard_backups(self.records)
        except (apache_write.WriteError, OSError) as exc:
            raise ReloadError("Apache survived the reload with the new configuration, but its backup copies could "
                              "not be removed: %s" % exc)
        if any(record.get("reload_twice") for record in self.records):
            reloads += 1
            rc, out, err, before = self._reload(master)
            master, answering = self._survived(master, before)
            if master is None or not answering or rc != 0:
                raise ReloadError("mod_md's second graceful reload left Apache %s (rc=%d): %s; the new configuration "
                                  "stays in place (it survived the first reload), look at the host now"
                                  % ("without a master" if master is None else "not answering TLS", rc,
                                     (err or out).strip() or "no output"))
        return {"changed": True, "reloaded": True, "reloads": reloads, "master_pid": master,
                "checked_targets": self.targets, "removed_files": removed}

    def _reload(self, master):
        """Run the reload command; also returns the master's children from just before it, the old generation."""
        old_children = self.processes.children(master) if self.processes.alive(master) else set()
        try:
            rc, out, err = self.run(self.command)
        except OSError as exc:
            raise ReloadError("cannot run the reload command %s: %s" % (" ".join(self.command), exc))
        return rc, out, err, old_children

    def _survived(self, old_master, old_children):
        """(the master running now or None, whether every target answers TLS)."""
        master = self._new_generation(old_master, old_children)
        if master is None:
            return None, False
        return master, self._answering()

    def _new_generation(self, old_master, old_children):
        """Wait until a master runs children that are not among ``old_children``: the old master (graceful) or the
        one its pid file names (restart). None when no master is left or none starts children within the deadline."""
        started = self.clock()
        while True:
            master = old_master if self.processes.alive(old_master) else self.read_pid()
            alive = bool(master) and self.processes.alive(master)
            if alive and self.processes.children(master) - old_children:
                return master
            waited = self.clock() - started
            if not alive and waited >= NO_MASTER_GRACE:
                return None
            if waited >= GENERATION_TIMEOUT:
                # alive without new children (an MPM that keeps them, or a slow start): the handshakes decide
                return master
            self.sleep(POLL_INTERVAL)

    def _answering(self):
        if not self.targets:
            return True
        for attempt in range(self.attempts):
            if all(self._handshake_ok(target) for target in self.targets):
                return True
            if attempt + 1 < self.attempts:
                self.sleep(1.0)
        return False

    def _handshake_ok(self, target):
        addresses = _addresses(target["address"], target["port"])
        if not addresses:
            return False
        found = self.handshake(addresses, target["port"], target.get("server_name"), HANDSHAKE_TIMEOUT)
        return found.get("handshake") == "ok"

    def _take_back(self, master, answering):
        try:
            self.undo(self.records)
        except apache_write.WriteError as exc:
            raise ReloadError("Apache did not survive the reload after the stapling change, and undoing it failed: %s. "
                              "Look at the host now." % exc)
        started = "it was NOT started again: no start command"
        if self.start_command:
            # a master that lives but does not answer gets the restored config by a reload; a dead one is started
            command = self.command if self.processes.alive(master) else self.start_command
            old_children = self.processes.children(master) if self.processes.alive(master) else set()
            try:
                self.run(command)
            except OSError as exc:
                started = "it was NOT started again: %s" % exc
            else:
                restarted = self._new_generation(master, old_children)
                started = ("it answers TLS again" if restarted and self._answering()
                           else "it does NOT answer yet: look now")
        raise ReloadError(
            "Apache did not survive the reload after the stapling change (master %s, TLS %s). The previous "
            "configuration was restored and Apache started again (%s). Its error log says why the new "
            "configuration killed it." % ("gone" if master is None else "present",
                                          "answering" if answering else "not answering", started))


def pid_in(path):
    """The pid a pid file names, or None (no file, or not a number)."""
    try:
        with open(path, "rb") as stream:
            pid = int(stream.read().strip() or b"0")
    except (IOError, OSError, ValueError):
        return None
    return pid if pid > 0 else None


def _targets(records):
    """Where the passes say to check (their check_targets), each once, the first five."""
    seen = []
    for record in records:
        for target in record.get("check_targets") or []:
            if target not in seen:
                seen.append(target)
    return seen[:5]


def _addresses(host, port):
    try:
        found = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return list(dict.fromkeys(entry[4][0] for entry in found))
