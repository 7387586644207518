# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Minimal, line-level edits to a parsed Apache config, rendered as new file contents and unified diffs.

An edit replaces a range of physical lines of one file with new lines (an empty range inserts). Every
byte outside the edited ranges stays as it was, so a diff shows only the directive lines that change or
are added. Writing, validating and rolling back lives in ``apache_write``.
"""

from __future__ import annotations

import difflib
import os
import re

from ansible_collections.fleet.stapling.plugins.module_utils.apache_config_files import (
    ApacheConfigError,
    SourceFile,
    split_lines,
)

# The first line of a file the module creates, so that whoever finds it knows where it came from.
NEW_FILE_HEADER = b"# OCSP stapling settings written by fleet.stapling (apache_stapling); edits here are kept.\n"

_LEADING_SPACE = re.compile(b"^[ \t]*")
_NAME_AND_GAP = re.compile(b"^[ \t]*[^ \t\r\n]+[ \t]+")


class Edit(object):
    """Replace ``lines[start:end]`` of the file at ``path`` by ``new_lines`` (bytes, line endings included)."""

    def __init__(self, path, start, end, new_lines, reason):
        self.path = path
        self.start = start
        self.end = end
        self.new_lines = new_lines
        self.reason = reason

    def __repr__(self):
        return "<Edit %s[%d:%d] %s>" % (self.path, self.start, self.end, self.reason)


def quote_arg(value):
    """Quote an argument only when httpd needs it to stay one word."""
    if value and not re.search(r"[\s\"']", value):
        return value
    return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"')


def directive_line(name, args, indent, newline):
    """One directive as bytes; ``indent`` and ``newline`` are bytes taken from the file being edited."""
    text = name + "".join(" " + quote_arg(arg) for arg in args)
    return indent + text.encode("utf-8", "surrogateescape") + newline


def replace_args(config, directive, args, reason):
    """Rewrite one directive's arguments, keeping its indentation, its name's spelling and its line ending."""
    source = config.files[directive.path]
    first = source.lines[directive.start]
    ending = _line_ending(source.lines[directive.end], source.newline)
    head = _NAME_AND_GAP.match(first)
    if head and directive.start == directive.end:
        # keep the indentation, the name's spelling and the gap before the arguments (column alignment)
        text = "".join(" " + quote_arg(arg) for arg in args)[1:]
        new_line = head.group(0) + text.encode("utf-8", "surrogateescape") + ending
    else:
        new_line = directive_line(directive.name, args, _LEADING_SPACE.match(first).group(0), ending)
    return Edit(directive.path, directive.start, directive.end + 1, [new_line], reason)


def insert_in_section(config, section, directives, reason):
    """Add directives, given as (name, args) pairs, as the last lines inside ``section``."""
    source = config.files[section.path]
    indent = _child_indent(source, section)
    lines = [directive_line(name, args, indent, source.newline) for name, args in directives]
    return Edit(section.path, section.close, section.close, lines, reason)


def insert_after(config, directive, directives, reason):
    """Add directives, given as (name, args) pairs, on the lines after ``directive``, at its indentation."""
    source = config.files[directive.path]
    indent = _LEADING_SPACE.match(source.lines[directive.start]).group(0)
    lines = [directive_line(name, args, indent, source.newline) for name, args in directives]
    return Edit(directive.path, directive.end + 1, directive.end + 1, lines, reason)


def _source(config, path):
    """The file as parsed, or as it is on disk when the config does not read it (yet), or None when new."""
    source = config.files.get(path)
    if source is None and os.path.lexists(path):
        # SourceFile.read refuses a directory, a device or a huge file where a settings file should be; a
        # dangling link is refused here, as writing through it would create a file somewhere unexpected
        if not os.path.exists(path):
            raise ApacheConfigError("%s is a link to %s, which does not exist" % (path, os.readlink(path)))
        try:
            source = SourceFile.read(path)
        except (IOError, OSError) as exc:
            raise ApacheConfigError("cannot read %s: %s" % (path, exc.strerror or exc))
    return source


def append_to_file(config, path, directives, reason):
    """Add directives, given as (name, args) pairs, at the end of ``path`` (created when it does not exist)."""
    source = _source(config, path)
    newline = source.newline if source else b"\n"
    count = len(source.lines) if source else 0
    rendered = [directive_line(name, args, b"", newline) for name, args in directives]
    if source is None:
        rendered.insert(0, NEW_FILE_HEADER)
    if source and source.lines and not source.lines[-1].endswith((b"\n", b"\r")):
        # the file ends without a newline: finish its last line first so the new one stands alone
        rendered.insert(0, source.lines[-1] + newline)
        return Edit(path, count - 1, count, rendered, reason)
    return Edit(path, count, count, rendered, reason)


def render_edits(config, edits):
    """New contents of every file the edits touch: {path: (old bytes or None when new, new bytes)}."""
    by_path = {}
    for edit in edits:
        by_path.setdefault(edit.path, []).append(edit)
    results = {}
    for path, file_edits in by_path.items():
        source = _source(config, path)
        old_lines = source.lines if source else []
        # one pass from the top: copy what lies between edits, then each edit's new lines
        pieces = []
        position = 0
        for edit in sorted(file_edits, key=lambda e: (e.start, e.end)):
            pieces.extend(old_lines[position:edit.start])
            pieces.extend(edit.new_lines)
            position = max(position, edit.end)
        pieces.extend(old_lines[position:])
        old = source.render() if source else None
        new = b"".join(pieces)
        if old != new:
            results[path] = (old, new)
    _refuse_one_file_under_two_names(results)
    return results


def _refuse_one_file_under_two_names(results):
    """A file read under two names (itself and a link to it, say) and edited under both would be written twice:
    the second write's backup would hold the first write's result, and if the edits differ the second undoes the
    first. Refused, naming both."""
    by_real_path = {}
    for path in sorted(results):
        real_path = os.path.realpath(path)
        other = by_real_path.setdefault(real_path, path)
        if other != path:
            raise ApacheConfigError("%s and %s are the same file (%s), which the config includes twice under two "
                                    "names; the change would edit it through both. Include it once."
                                    % (other, path, real_path))


def unified_diff(path, old, new):
    """A unified diff of one file, readable even when the file is not UTF-8."""
    before = _text_lines(old or b"")
    after = _text_lines(new)
    label_before = path if old is not None else "/dev/null"
    return "".join(difflib.unified_diff(before, after, label_before, path))


def _text_lines(data):
    # the file's own lines: str.splitlines would also cut at form feeds and Unicode separators
    return [line.decode("utf-8", "replace") for line in split_lines(data)]


def _line_ending(line, default):
    if line.endswith(b"\r\n"):
        return b"\r\n"
    if line.endswith(b"\n"):
        return b"\n"
    return b"" if line else default


def _child_indent(source, section):
    for child in section.children:
        if child.path == section.path:
            return _LEADING_SPACE.match(source.lines[child.start]).group(0)
    return _LEADING_SPACE.match(source.lines[section.start]).group(0) + b"    "
