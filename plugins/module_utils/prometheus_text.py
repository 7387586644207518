# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The Prometheus text exposition format (version 0.0.4), as node_exporter's textfile collector reads it.

``render`` writes metric families with their ``# HELP`` and ``# TYPE`` lines, families sorted by name and
samples by their label values, so the same families always give the same bytes. Samples never carry a
timestamp: the collector refuses files whose samples have one. ``parse`` reads such a file back (ours, or one
written by an earlier version of the collection), so that a run can keep the samples other runs wrote. Lines it
cannot read are reported, not fatal.

Importable without Ansible.
"""

from __future__ import annotations

import math
import re

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
# Sample names a family of these types writes besides its own name.
TYPE_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}
_LABEL_VALUE_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n"}
_UNESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


class PrometheusTextError(Exception):
    """A metric name, label name or value that the format cannot carry; the message names it."""


class Family(object):
    """One metric family: name, help text, type, and samples keyed by (sample name, labels).

    ``labels`` is a tuple of (label name, value) pairs in the order they are written.
    """

    def __init__(self, name, help_text="", kind="gauge"):
        if not METRIC_NAME.fullmatch(name):
            raise PrometheusTextError("%r is not a valid metric name" % name)
        if kind not in TYPES:
            raise PrometheusTextError("%r is not a metric type (%s)" % (kind, ", ".join(TYPES)))
        self.name = name
        self.help = help_text
        self.kind = kind
        self.samples = {}

    def add(self, labels, value, sample_name=None):
        for label, _value in labels:
            if not LABEL_NAME.fullmatch(label) or label.startswith("__"):
                raise PrometheusTextError("%r is not a valid label name (metric %s)" % (label, self.name))
        self.samples[(sample_name or self.name, tuple(labels))] = float(value)

    def owns_sample_name(self, sample_name):
        if sample_name == self.name:
            return True
        return any(sample_name == self.name + suffix for suffix in TYPE_SUFFIXES.get(self.kind, ()))

    def __repr__(self):
        return "Family(%r, %d samples)" % (self.name, len(self.samples))


# ---------------------------------------------------------------------------------------------- writing


def escape_label_value(text):
    return "".join(_LABEL_VALUE_ESCAPES.get(char, char) for char in text)


def escape_help(text):
    """HELP text escapes only backslash and newline; a double quote stays as it is."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value):
    """Integers without a fraction (1, not 1.0), other numbers as Python's shortest round-trip repr."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 2 ** 53:
        return "%d" % value
    return repr(value)


def format_sample(sample_name, labels, value):
    if not labels:
        return "%s %s" % (sample_name, format_value(value))
    text = ",".join('%s="%s"' % (label, escape_label_value(str(label_value))) for label, label_value in labels)
    return "%s{%s} %s" % (sample_name, text, format_value(value))


def _sample_order(item):
    (sample_name, labels), _value = item
    return sample_name, tuple(label_value for _label, label_value in labels), labels


def render(families):
    """The text of ``families`` (an iterable of Family); families without samples are left out."""
    lines = []
    for family in sorted(families, key=lambda found: found.name):
        if not family.samples:
            continue
        lines.append("# HELP %s %s" % (family.name, escape_help(family.help)))
        lines.append("# TYPE %s %s" % (family.name, family.kind))
        for (sample_name, labels), value in sorted(family.samples.items(), key=_sample_order):
            lines.append(format_sample(sample_name, labels, value))
    return "".join(line + "\n" for line in lines)


# ---------------------------------------------------------------------------------------------- reading


def _unescape(text, help_text=False):
    out = []
    position = 0
    while position < len(text):
        char = text[position]
        if char == "\\" and position + 1 < len(text):
            following = text[position + 1]
            if following in _UNESCAPES and not (help_text and following == '"'):
                out.append(_UNESCAPES[following])
                position += 2
                continue
        out.append(char)
        position += 1
    return "".join(out)


def _read_labels(text, position):
    """(labels, position after the closing brace) for the label set starting after ``{`` at ``position``."""
    labels = []
    while True:
        while position < len(text) and text[position] in " \t":
            position += 1
        if position < len(text) and text[position] == "}":
            return tuple(labels), position + 1
        name = LABEL_NAME.match(text, position)
        if name is None:
            raise ValueError("expected a label name at column %d" % (position + 1))
        position = name.end()
        if text[position:position + 2] != '="':
            raise ValueError('expected =" after label %s' % name.group())
        position += 2
        value = []
        while True:
            if position >= len(text):
                raise ValueError("unterminated value of label %s" % name.group())
            char = text[position]
            if char == "\\" and position + 1 < len(text):
                value.append(_UNESCAPES.get(text[position + 1], "\\" + text[position + 1]))
                position += 2
                continue
            position += 1
            if char == '"':
                break
            value.append(char)
        labels.append((name.group(), "".join(value)))
        while position < len(text) and text[position] in " \t":
            position += 1
        if position < len(text) and text[position] == ",":
            position += 1
        elif position >= len(text) or text[position] != "}":
            raise ValueError("expected , or } after label %s" % name.group())


def parse_sample(line):
    """(sample name, labels, value) of one sample line; a timestamp after the value is dropped."""
    name = METRIC_NAME.match(line)
    if name is None:
        raise ValueError("no metric name")
    position = name.end()
    labels = ()
    if line[position:position + 1] == "{":
        labels, position = _read_labels(line, position + 1)
    fields = line[position:].split()
    if not fields or len(fields) > 2:
        raise ValueError("expected a value (and at most a timestamp) after the labels")
    try:
        value = float(fields[0])
    except ValueError:
        raise ValueError("%r is not a number" % fields[0])
    return name.group(), labels, value


def _family_for(families, sample_name, current):
    """The family a sample belongs to: the one just declared when the name fits it, else one of its name."""
    if current is not None and current.owns_sample_name(sample_name):
        return current
    for family in families.values():
        if family.owns_sample_name(sample_name):
            return family
    return families.setdefault(sample_name, Family(sample_name, kind="untyped"))


def parse(text):
    """(families by name, problems) of an exposition text; a problem is "line N: what is wrong" and its line is
    left out. Comments other than HELP and TYPE are ignored, as Prometheus ignores them."""
    families = {}
    problems = []
    current = None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            if line.startswith("#"):
                current = _read_comment(families, line) or current
                continue
            sample_name, labels, value = parse_sample(line)
            family = _family_for(families, sample_name, current)
            family.add(labels, value, sample_name)
        except (ValueError, PrometheusTextError) as exc:
            problems.append("line %d: %s" % (number, exc))
    return families, problems


def _read_comment(families, line):
    """The family a HELP or TYPE line declares (created when new), or None for any other comment."""
    parts = line[1:].strip().split(None, 2)
    if len(parts) < 2 or parts[0] not in ("HELP", "TYPE"):
        return None
    name = parts[1]
    rest = parts[2] if len(parts) > 2 else ""
    family = families.get(name)
    if family is None:
        family = families[name] = Family(name)  # raises PrometheusTextError for a bad name
        family.kind = "untyped"
    if parts[0] == "HELP":
        family.help = _unescape(rest, help_text=True)
    elif rest.strip() in TYPES:
        family.kind = rest.strip()
    else:
        raise ValueError("unknown metric type %r" % rest)
    return family
