# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the served certificates say, kept from one run to the next in the module's state directory.

On a shared host thousands of certificate files change a few at a time, yet reading and describing every one of
them was most of what a check-mode run cost there. An entry is keyed by the files it was read from (certificate,
chain, CA file) and by each file's identity on disk: device, inode, size, and modification and change times in
nanoseconds. Writing a file, replacing it (a renewal) or even touching it gives a new key, so an entry is only
ever used for the very bytes it was made from; entries nobody asked for in a run are dropped when it saves.

The file holds public facts only (names, serials, URLs, fingerprints), never key material. It is trusted only
when this user owns it and nobody else can write to it, as it decides what the Must-Staple guard sees.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat
import tempfile

try:
    from cryptography import __version__ as CRYPTOGRAPHY_VERSION
except ImportError:  # the modules report a missing cryptography themselves
    CRYPTOGRAPHY_VERSION = None

FILE_NAME = "certificate-facts.json"
# Raise it whenever stapling_facts.certificate_facts gives other keys or values for the same files: entries
# of another format are ignored. The cryptography version is part of it, as it formats names and times.
FORMAT = 2


def _identity(path):
    """A file's identity on disk, or a marker for no file: a missing chain is part of the key too."""
    if not path:
        return "-"
    try:
        info = os.stat(path)
    except OSError as exc:
        return "missing:%s" % exc.errno
    return "%d:%d:%d:%d:%d" % (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


class CertificateFactsCache(object):
    """Lookups by ``(certificate file, chain file, CA file)``; ``save`` writes what this run used."""

    def __init__(self, state_dir):
        self.path = os.path.join(state_dir, FILE_NAME)
        self.state_dir = state_dir
        self.hits = 0
        self.misses = 0
        self.problem = None  # why the file on disk was not used, when it exists but was not
        self._stored = self._load()
        self._used = {}

    def lookup(self, files, read, reader):
        """The (facts, error) pair for ``files``: the stored one when they are unchanged, else ``read(files, reader)``."""
        key = "\n".join("%s %s" % (path, _identity(path)) for path in files)
        found = self._stored.get(key)
        if found is not None:
            self.hits += 1
            facts, error = found
        else:
            self.misses += 1
            facts, error = read(files, reader)
        self._used[key] = [facts, error]
        return facts, error

    def save(self):
        """Write the entries this run used, atomically, when they differ from the file's; False when it could not."""
        if self._used == self._stored:
            return True
        body = json.dumps({"format": FORMAT, "cryptography": CRYPTOGRAPHY_VERSION, "entries": self._used},
                          separators=(",", ":"), sort_keys=True)
        try:
            if not os.path.isdir(self.state_dir):
                os.makedirs(self.state_dir, 0o700)
            handle, temporary = tempfile.mkstemp(prefix=".certificate-facts-", dir=self.state_dir)
            try:
                with os.fdopen(handle, "w") as stream:
                    stream.write(body)
                os.rename(temporary, self.path)
            except BaseException:
                os.unlink(temporary)
                raise
        except (IOError, OSError) as exc:
            # a cache that cannot be kept only costs the next run time: the run itself is not concerned
            self.problem = "cannot keep the certificates' facts in %s: %s" % (self.path, exc)
            return False
        self._stored = dict(self._used)
        return True

    def _load(self):
        try:
            descriptor = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return {}
        try:
            info = os.fstat(descriptor)
            if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) \
                    or not stat.S_ISREG(info.st_mode):
                self.problem = "%s is not this user's own private file: not used" % self.path
                return {}
            with os.fdopen(descriptor, "r") as stream:
                descriptor = None
                data = json.load(stream)
        except (IOError, OSError, ValueError) as exc:
            self.problem = "%s cannot be read, so every certificate is read again: %s" % (self.path, exc)
            return {}
        finally:
            if descriptor is not None:
                os.close(descriptor)
        if not isinstance(data, dict) or data.get("format") != FORMAT \
                or data.get("cryptography") != CRYPTOGRAPHY_VERSION or not isinstance(data.get("entries"), dict):
            return {}
        return data["entries"]
