# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Config files as httpd finds and reads them: one file's bytes and lines (with the limits on what is read at all),
the files an Include wildcard names, and the variables of Debian's envvars file.

Importable without Ansible; apache_config builds its model from what this reads.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
import stat

# The largest config file read. Parsing costs about 20 bytes of memory per byte of directives, and 32 MiB holds
# about 150,000 inline vhosts, several times the largest hosts seen; a larger file is a mistake, not a config.
MAX_FILE_BYTES = 32 * 1024 * 1024

_ENVVARS_EXPORT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


class ApacheConfigError(Exception):
    """The configuration could not be read; the message names the file and line."""


class SourceFile(object):
    """One config file: its path and its physical lines as the original bytes, line endings included."""

    def __init__(self, path, lines):
        self.path = path
        self.lines = lines  # never changed in place: an edit renders new lines
        self._newline = None
        # the parser's reading of the lines, kept for a second read of the same file (apache_config.statements)
        self.statements = None

    @classmethod
    def read(cls, path, max_bytes=None):
        """Read a config file, refusing what httpd refuses (anything but a regular file) and, before reading a
        byte of it, a file larger than ``max_bytes`` (MAX_FILE_BYTES by default). IOError/OSError when the
        file cannot be opened, ApacheConfigError for a file that must not be read."""
        limit = MAX_FILE_BYTES if max_bytes is None else max_bytes
        if path == os.devnull:
            return cls(path, [])  # the one non-regular file httpd reads as a config (empty)
        # non-blocking, so that a FIFO named as a config file cannot hang the run before fstat refuses it
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            status = os.fstat(descriptor)
        except OSError:
            os.close(descriptor)
            raise
        if not stat.S_ISREG(status.st_mode) or status.st_size > limit:
            os.close(descriptor)
        if stat.S_ISDIR(status.st_mode):
            raise ApacheConfigError("%s is a directory where a config file is expected" % path)
        if not stat.S_ISREG(status.st_mode):
            raise ApacheConfigError("%s is not a regular file; httpd refuses to read config from it too" % path)
        if status.st_size > limit:
            raise ApacheConfigError(
                "%s is %s, more than the %s this module reads in one config file (is it a log or a dump "
                "picked up by an Include wildcard?)" % (path, _size_text(status.st_size), _size_text(limit)))
        with os.fdopen(descriptor, "rb") as handle:
            # read(n) sets aside n bytes first: ask for the size fstat gave, not the limit
            data = handle.read(status.st_size + 1)
            while len(data) > status.st_size:  # it grows while we read: follow it up to the limit
                more = handle.read(1048576)
                if not more:
                    break
                data += more
                if len(data) > limit:
                    raise ApacheConfigError("%s grew past %s while it was read" % (path, _size_text(limit)))
        return cls(path, split_lines(data))

    def render(self):
        return b"".join(self.lines)

    @property
    def newline(self):
        """The line ending this file mostly uses, for lines that edits insert."""
        if self._newline is None:
            crlf = sum(1 for line in self.lines if line.endswith(b"\r\n"))
            self._newline = b"\r\n" if crlf * 2 > len(self.lines) else b"\n"
        return self._newline


def split_lines(data):
    """Physical lines with their endings, as httpd reads them: only LF ends a line (a CR alone is whitespace)."""
    lines = data.splitlines(True)
    if b"\r" not in data or not any(line.endswith(b"\r") for line in lines):
        return lines  # the common case: bytes.splitlines is fast and agrees with httpd here
    return _LINE.findall(data)


_LINE = re.compile(rb"[^\n]*\n|[^\n]+\Z")


def _size_text(count):
    return "%.1f MiB" % (count / 1048576.0)


def glob_path_matches(path, pattern):
    """glob's rule for one path: wildcards match within a path component, never across '/'."""
    path_parts = path.split(os.sep)
    pattern_parts = pattern.split(os.sep)
    if len(path_parts) != len(pattern_parts):
        return False
    # a part without wildcards is compared as it is: fnmatch would compile a pattern for each of them
    return all(fnmatch.fnmatchcase(part, wanted) if glob.has_magic(wanted) else part == wanted
               for part, wanted in zip(path_parts, pattern_parts))


def glob_files(pattern):
    """The files a wildcard matches. cPanel names a userdata directory in every vhost, and most do not exist:
    a stat answers for those, where glob would list the parent and match each entry."""
    directory = os.path.dirname(pattern)
    if not glob.has_magic(directory) and not os.path.isdir(directory):
        return []
    # a dangling link is kept: httpd fails on it for Include and skips it for IncludeOptional, and so does read_file
    return glob.glob(pattern)


def files_below(directory):
    found = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        found.extend(os.path.join(root, name) for name in sorted(files))
    return found


def environment_for(main_file, environment):
    if environment is not None:
        return dict(environment)
    values = dict(os.environ)
    values.update(read_envvars(os.path.join(os.path.dirname(main_file), "envvars")))
    return values


def read_envvars(path):
    """The simple ``export NAME=value`` lines of Debian's envvars file; anything cleverer is left out."""
    values = {}
    try:
        with open(path, "rb") as handle:
            lines = handle.read().decode("utf-8", "replace").splitlines()
    except (IOError, OSError):
        return values
    for line in lines:
        match = _ENVVARS_EXPORT.match(line)
        if not match:
            continue
        value = match.group(2).strip()
        if value[:1] in "\"'" and value[-1:] == value[:1]:
            value = value[1:-1]
        if "$" in value or "`" in value:
            continue  # computed in shell; not something to guess at
        values[match.group(1)] = value
    return values
