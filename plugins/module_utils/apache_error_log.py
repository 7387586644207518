# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Read Apache httpd 2.4 error logs: one line into its fields, the tail of a big file, time windows.

A default 2.4 line looks like this (every part after the level is optional)::

    [Thu May 02 03:06:38.713291 2019] [ssl:error] [pid 16491:tid 1399] (70007)The timeout specified has
    expired: [client 104.131.103.14:38624] AH01985: error reading response from OCSP server

The parser does not need to know the ErrorLogFormat: it takes the leading ``[...]`` fields one by one and
recognises each by its shape (a time, ``module:level`` or a bare level, ``pid N[:tid M]``, ``client A``,
a server name as ``[%v]`` prints it; anything else is kept in ``fields``), accepts a bare ISO time at the
start (``%{cu}t`` without brackets), then the optional ``file.c(123): `` source, ``(errno)text: `` and
``[client ...]`` prefixes, then the ``AHnnnnn:`` code and the message.

Times carry no time zone in Apache's formats: they are the server's local time, and are returned as naive
datetimes meant to be compared with ``datetime.datetime.now()`` on the same host.

Importable without Ansible.
"""

from __future__ import annotations

import datetime
import os
import re

LEVELS = ("emerg", "alert", "crit", "error", "warn", "notice", "info", "debug",
          "trace1", "trace2", "trace3", "trace4", "trace5", "trace6", "trace7", "trace8")
# Levels at which Apache reports a failure rather than a fact: error and worse.
ERROR_LEVELS = frozenset(LEVELS[:4])

_MONTHS = {name: number for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}

# %t and %{u}t: "Thu May 02 03:06:38 2019", "Thu May 02 03:06:38.713291 2019" (apr_ctime, always English)
_CTIME = re.compile(r"^[A-Z][a-z]{2} ([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))? (\d{4})$")
# %{c}t and %{cu}t: "2019-05-02 03:06:38", "2019-05-02 03:06:38.713291"; a zone is accepted when a log
# shipper added one.
_ISO = (r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6}))?)?"
        r"(Z|[+-]\d{2}:?\d{2})?")
_ISO_TIME = re.compile(r"^" + _ISO + r"$")
_BARE_ISO_START = re.compile(r"^" + _ISO + r"\s+")
_DATE_ONLY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")

_BRACKET = re.compile(r"^\[([^\]]*)\]\s*")
_MODULE_LEVEL = re.compile(r"^([A-Za-z0-9_.-]*):(" + "|".join(LEVELS) + r")$")
_PID = re.compile(r"^pid (\d+)(?::tid (\d+))?$")
_TID = re.compile(r"^tid (\d+)$")
_CLIENT = re.compile(r"^(client|remote) (\S+)$")
# What %v / %V print: a host name, maybe with a port; never spaces, slashes or parentheses.
_SERVER_NAME = re.compile(r"^[A-Za-z0-9*_](?:[A-Za-z0-9_-]*)(?:\.[A-Za-z0-9_-]+)+(?::\d+)?$")
_SOURCE = re.compile(r"^[A-Za-z0-9_.-]+\.c\(\d+\): ")
_ERRNO = re.compile(r"^\((-?\d+)\)([^:\[]*?): ")
_CODE = re.compile(r"\bAH(\d{5}): ")
_CODE_START = re.compile(r"^AH(\d{5}): ")

_DURATION_PART = re.compile(r"(\d+)\s*([smhdw])", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(?:\d+\s*[smhdw]\s*)+$", re.IGNORECASE)
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ErrorLogError(Exception):
    """A value could not be understood; the message says what was expected."""


class LogLine(object):
    """One error-log line split into its fields; any field a format leaves out is None."""

    __slots__ = ("text", "time", "module", "level", "pid", "tid", "client", "server", "errno", "errno_text",
                 "code", "message", "fields")

    def __init__(self, text):
        self.text = text
        self.time = None
        self.module = None
        self.level = None
        self.pid = None
        self.tid = None
        self.client = None
        self.server = None
        self.errno = None
        self.errno_text = None
        self.code = None
        self.message = ""
        self.fields = []

    @property
    def reason(self):
        """The OS or APR error Apache put in front of the message, as "(111) Connection refused"."""
        if self.errno is None:
            return None
        return "(%s) %s" % (self.errno, self.errno_text) if self.errno_text else "(%s)" % self.errno

    @property
    def is_error(self):
        return self.level in ERROR_LEVELS

    def __repr__(self):
        return "<LogLine %s %s %s>" % (self.time, self.code, self.message[:40])


def parse_line(text):
    """The fields of one error-log line, or None when it is not one (a continuation, a CGI's stderr, ...).

    A line counts as parsed when it carries a time, a level or starts its message with an ``AHnnnnn:`` code.
    """
    text = text.rstrip("\r\n")
    line = LogLine(text)
    rest = text.lstrip()
    bare = _BARE_ISO_START.match(rest)
    if bare:
        line.time = _iso_datetime(bare.groups())
        rest = rest[bare.end():]
    rest = _read_leading_fields(line, rest)
    source = _SOURCE.match(rest)
    if source:
        rest = rest[source.end():]
    errno = _ERRNO.match(rest)
    if errno:
        line.errno = int(errno.group(1))
        line.errno_text = errno.group(2).strip()
        rest = rest[errno.end():]
    rest = _read_leading_fields(line, rest)
    starts_with_code = _CODE_START.match(rest) is not None
    code = _CODE.search(rest)
    if code:
        line.code = "AH" + code.group(1)
        rest = rest[:code.start()] + rest[code.end():]
    line.message = rest.strip()
    if line.time is None and line.level is None and not starts_with_code:
        return None
    return line


def _read_leading_fields(line, rest):
    """Consume ``[...]`` fields from the start of ``rest``, filling ``line``; return what follows them."""
    while True:
        match = _BRACKET.match(rest)
        if not match:
            return rest
        if not _take_field(line, match.group(1).strip()):
            return rest  # the message itself starts with a bracket: keep it
        rest = rest[match.end():]


def _take_field(line, value):
    if line.time is None:
        when = parse_log_time(value)
        if when is not None:
            line.time = when
            return True
    module_level = _MODULE_LEVEL.match(value)
    if module_level and line.level is None:
        line.module = module_level.group(1) or None
        line.level = module_level.group(2)
        return True
    if value in LEVELS and line.level is None:
        line.level = value  # Apache 2.2 and "[%l]" formats
        return True
    pid = _PID.match(value)
    if pid:
        line.pid = int(pid.group(1))
        line.tid = int(pid.group(2)) if pid.group(2) else line.tid
        return True
    tid = _TID.match(value)
    if tid:
        line.tid = int(tid.group(1))
        return True
    client = _CLIENT.match(value)
    if client:
        if client.group(1) == "client" or line.client is None:
            line.client = client.group(2)
        return True
    if _SERVER_NAME.match(value) and line.server is None:
        line.server = value
        return True
    if line.time is None and line.level is None:
        return False  # not a field of any format we know: the line is no log line
    line.fields.append(value)
    return True


def parse_log_time(value):
    """A time as Apache prints it (``%t``, ``%{u}t``, ``%{c}t``, ``%{cu}t``), as a naive local datetime."""
    value = value.strip()
    match = _CTIME.match(value)
    if match:
        month = _MONTHS.get(match.group(1))
        if month is None:
            return None
        fraction = (match.group(6) or "").ljust(6, "0")
        try:
            return datetime.datetime(int(match.group(7)), month, int(match.group(2)), int(match.group(3)),
                                     int(match.group(4)), int(match.group(5)), int(fraction or 0))
        except ValueError:
            return None
    match = _ISO_TIME.match(value)
    if match:
        return _iso_datetime(match.groups())
    return None


def _iso_datetime(groups):
    year, month, day, hour, minute, second, fraction, zone = groups
    try:
        when = datetime.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0),
                                 int((fraction or "").ljust(6, "0") or 0))
    except ValueError:
        return None
    if zone:
        when = to_local(when.replace(tzinfo=_zone(zone)))
    return when


def _zone(text):
    if text == "Z":
        return datetime.timezone.utc
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return datetime.timezone(sign * datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def to_local(when):
    """An aware datetime as the host's naive local time (the clock Apache's log lines use)."""
    return when.astimezone().replace(tzinfo=None)


def iso_local(when):
    """A naive local datetime as ISO 8601 with the host's UTC offset, for reports; None stays None."""
    if when is None:
        return None
    return when.astimezone().isoformat()


# ------------------------------------------------------------------ time windows


def parse_duration(text):
    """``90s``, ``15m``, ``2h``, ``1d``, ``1w``, combinations such as ``1h30m``, or bare seconds, as a
    timedelta; None when ``text`` is no duration."""
    text = str(text).strip()
    if text.isdigit():
        return datetime.timedelta(seconds=int(text))
    if not _DURATION.match(text):
        return None
    seconds = sum(int(number) * _DURATION_UNITS[unit.lower()] for number, unit in _DURATION_PART.findall(text))
    return datetime.timedelta(seconds=seconds)


def parse_since(text, now, option="since"):
    """The start of a window: ``now`` minus a duration, or an ISO-8601 time (local unless it names a zone).

    ``now`` is a naive local datetime; so is the result. ErrorLogError names ``option`` for bad input.
    """
    duration = parse_duration(text)
    if duration is not None:
        return now - duration
    value = str(text).strip()
    date_only = _DATE_ONLY.match(value)
    if date_only:
        try:
            return datetime.datetime(int(date_only.group(1)), int(date_only.group(2)), int(date_only.group(3)))
        except ValueError:
            pass
    match = _ISO_TIME.match(value)
    if match:
        when = _iso_datetime(match.groups())
        if when is not None:
            return when
    raise ErrorLogError("%s: %r is neither a duration (such as 90s, 15m, 2h, 1d or 1h30m) nor an ISO-8601 time "
                        "(such as 2026-05-02T03:06:38 or 2026-05-02T03:06:38+02:00)" % (option, text))


# ------------------------------------------------------------------ reading the end of a file


class TailRead(object):
    """The last lines of a file: at most ``max_bytes`` were read, starting ``offset`` bytes in."""

    def __init__(self, path, size, offset, bytes_read, lines):
        self.path = path
        self.size = size
        self.offset = offset
        self.bytes_read = bytes_read
        self.lines = lines

    @property
    def truncated(self):
        """Whether the file holds more than was read (its start was skipped)."""
        return self.offset > 0


def read_tail(path, max_bytes):
    """The complete lines among the last ``max_bytes`` bytes of ``path``; never reads more than that.

    When the file is bigger, the first line of the tail is dropped because it is probably cut. Bytes that
    are no UTF-8 are replaced, never fatal. OSError (missing, no permission) is the caller's to report.
    """
    if max_bytes < 1:
        raise ErrorLogError("max_bytes must be at least 1, not %d" % max_bytes)
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        offset = max(0, size - max_bytes)
        handle.seek(offset)
        data = handle.read(max_bytes)
    bytes_read = len(data)
    if offset > 0:
        newline = data.find(b"\n")
        data = data[newline + 1:] if newline >= 0 else b""
    # Split on newlines only: str.splitlines() would also cut at form feeds and Unicode separators.
    lines = data.decode("utf-8", "replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return TailRead(path, size, offset, bytes_read, [line.rstrip("\r") for line in lines])
