# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Certbot renewal files that still ask for Must-Staple: the renewal that will fail next.

Certbot keeps one renewal file per certificate lineage (``/etc/letsencrypt/renewal/<name>.conf``, ConfigObj
syntax) and replays the options it holds at every renewal. A lineage first issued with ``--must-staple`` has
``must_staple = True`` in its ``[renewalparams]`` section. Let's Encrypt has stopped issuing certificates with
the Must-Staple extension since it wound down OCSP, so such a lineage gets an error instead of a certificate
the next time certbot renews it, and the site keeps its old certificate until it expires.

Only the renewal files are read, as text, line by line. The certificate and key paths they name are never
opened: the name of the certificate is taken from the file name and the ``cert =`` line. A ``.conf`` that is a
symbolic link is followed only to another ``.conf`` file, so that a stray link never makes us read a key.
"""

from __future__ import annotations

import os
import stat

DEFAULT_RENEWAL_DIR = "/etc/letsencrypt/renewal"
RENEWAL_SECTION = "renewalparams"
# A renewal file is a few hundred bytes; more than this is not a certbot renewal file.
MAX_FILE_BYTES = 1024 * 1024
# How ConfigObj (and so certbot) spells a true boolean; certbot itself writes "True".
TRUE_VALUES = ("true", "yes", "on", "1")


def renewal_traps(renewal_dir=DEFAULT_RENEWAL_DIR):
    """Every renewal file under ``renewal_dir`` that asks for Must-Staple, as a list of dicts.

    Each trap: ``file``, ``line`` (1-based), ``text`` (the line as written), ``certificate`` (the lineage name,
    the file name without ``.conf``), ``cert_path`` (its ``cert =`` value, or None) and ``error`` (None).
    A file, or the directory, that cannot be read gives an entry with ``error`` set and ``line`` and ``text``
    None: it may hold a trap. A missing directory means certbot is not used here: no traps.
    """
    try:
        names = sorted(os.listdir(renewal_dir))
    except FileNotFoundError:
        return []
    except OSError as exc:
        return [_unreadable(renewal_dir, None, exc)]
    traps = []
    for name in names:
        if name.startswith(".") or not name.endswith(".conf"):
            continue
        traps.extend(file_traps(os.path.join(renewal_dir, name)))
    return traps


def file_traps(path):
    """The Must-Staple traps of one renewal file (see ``renewal_traps``)."""
    certificate = os.path.basename(path)[:-len(".conf")] if path.endswith(".conf") else os.path.basename(path)
    target = os.path.realpath(path)
    if target != os.path.abspath(path) and not target.endswith(".conf"):
        # certbot never links renewal files; a link to anything else (a live/ key, say) is not read
        return [_unreadable(path, certificate, ValueError("a link to %s, not followed" % target))]
    try:
        text = _read_text(path)
    except (OSError, ValueError) as exc:
        return [_unreadable(path, certificate, exc)]
    if text is None:
        return []
    return traps_in_text(text, path, certificate)


def traps_in_text(text, path, certificate):
    """The ``must_staple`` lines of a renewal file's ``[renewalparams]`` section that say true."""
    lines = text.splitlines()
    cert_path = None
    section_path = []  # the section the next key belongs to: ["renewalparams"], ["renewalparams", "webroot_map"]
    found = []
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("["):
            section_path = _entered_section(section_path, stripped)
            continue
        key, value = _key_value(stripped)
        if key is None:
            continue
        if not section_path and key == "cert":
            cert_path = value
        if section_path == [RENEWAL_SECTION] and key == "must_staple" and value.lower() in TRUE_VALUES:
            found.append({"file": path, "line": number, "text": line.rstrip("\r\n"), "certificate": certificate,
                          "error": None})
    for trap in found:
        trap["cert_path"] = cert_path  # certbot writes cert = above the section, but order does not matter
    return found


def _read_text(path):
    """The file's text, or None when it is not a regular file (a directory named x.conf, a socket...)."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        return None
    if info.st_size > MAX_FILE_BYTES:
        raise ValueError("%d bytes, too large for a certbot renewal file" % info.st_size)
    with open(path, "rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    return data.decode("utf-8", "replace")


def _entered_section(section_path, marker):
    """The section path after a ``[name]`` / ``[[name]]`` marker line; its depth is the number of brackets."""
    depth = len(marker) - len(marker.lstrip("["))
    name = marker.strip("[] \t").split("#", 1)[0].strip("[] \t").strip("'\"").lower()
    return section_path[:depth - 1] + [name]


def _key_value(line):
    """(key, value) of a ``key = value`` line, lower-cased key with '-' read as '_'; (None, None) otherwise."""
    if "=" not in line:
        return None, None
    key, value = line.split("=", 1)
    key = key.strip().strip("'\"").lower().replace("-", "_")
    return key, _unquoted(value)


def _unquoted(value):
    """A ConfigObj value without its inline comment and quotes."""
    value = value.strip()
    if value[:1] in ("'", '"'):
        closing = value.find(value[0], 1)
        if closing != -1:
            return value[1:closing]
    return value.split("#", 1)[0].strip()


def _unreadable(path, certificate, exc):
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return {"file": path, "line": None, "text": None, "certificate": certificate, "cert_path": None,
            "error": "cannot be read: %s" % reason}
