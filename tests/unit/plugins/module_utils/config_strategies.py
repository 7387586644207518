# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Hypothesis strategies for Apache configs as operators write them: odd case, CRLF, continued lines, comments,
stray bytes, quotes, sections within sections.

``config_files`` gives (bytes, expected directive keys in read order) for the parser's round trip;
``stapling_trees`` gives a small tree of SSL vhosts, as {relative path: bytes}, for planning enable and disable.
"""

from __future__ import annotations

from hypothesis import strategies as st

NAMES = ["ServerAdmin", "LogLevel", "Options", "Header", "SSLUseStapling", "SSLStaplingResponderTimeout",
         "DocumentRoot", "Define", "ServerAlias", "Protocols"]
# sections with the arguments they take; <VirtualHost> only at the top, as httpd wants it
INNER_SECTIONS = [("IfModule", "ssl_module"), ("IfModule", "!mod_absent.c"), ("Directory", "/srv/www"),
                  ("Location", "/status"), ("IfDefine", "SSL"), ("Files", '"*.php"')]
# no backslash at a word's end (it would continue the line) and no quote characters (words are quoted on purpose)
WORD_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/:._-*()=${},+@\u00e9\u201c\u201d"
STRAY_BYTES = [b"\xff", b"\xe9", b"\xc3\x28", b"\x80"]


@st.composite
def spelled(draw, name):
    """A name as someone might type it: its own case, all lower, all upper, or a random mix."""
    how = draw(st.sampled_from(["as is", "lower", "upper", "mixed"]))
    if how == "lower":
        return name.lower()
    if how == "upper":
        return name.upper()
    if how == "mixed":
        flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
        return "".join(c.upper() if flip else c.lower() for c, flip in zip(name, flips))
    return name


@st.composite
def word(draw):
    text = draw(st.text(WORD_CHARS, min_size=1, max_size=12)).encode("utf-8")
    if draw(st.integers(0, 9)) == 0:
        text += draw(st.sampled_from(STRAY_BYTES))
    if draw(st.integers(0, 5)) == 0:
        return b'"' + text + b" " + text + b'"'  # a quoted word with a space in it
    return text


def gap():
    return st.sampled_from([b" ", b"  ", b"\t", b" \t "])


def indent():
    return st.sampled_from([b"", b"  ", b"    ", b"\t"])


def ending():
    return st.sampled_from([b"\n", b"\n", b"\r\n"])


@st.composite
def directive_lines(draw, name=None):
    """One directive, maybe continued over several physical lines; returns (bytes, key)."""
    name = name or draw(st.sampled_from(NAMES))
    words = draw(st.lists(word(), min_size=1, max_size=4))
    text = draw(indent()) + draw(spelled(name)).encode()
    for each in words:
        if draw(st.integers(0, 4)) == 0:
            # continued: backslash at the very end of the line, the rest on the next, indented
            text += b" \\" + draw(ending()) + draw(indent())
        text += draw(gap()) + each
    trailing = draw(st.sampled_from([b"", b"", b" ", b"\t"]))
    return text + trailing + draw(ending()), name.lower()


@st.composite
def filler(draw):
    """What carries no directive: a comment (odd bytes and all), a blank or whitespace-only line."""
    kind = draw(st.sampled_from(["comment", "blank", "space"]))
    if kind == "comment":
        body = draw(st.binary(max_size=20)).replace(b"\n", b" ").replace(b"\r", b" ").rstrip(b"\\")
        return draw(indent()) + b"#" + body + draw(ending())
    if kind == "space":
        return draw(indent()) + draw(gap()) + draw(ending())
    return draw(ending())


@st.composite
def block(draw, depth, top):
    """A run of lines: directives, filler and (while depth lasts) sections; returns (bytes, keys in read order)."""
    data = b""
    keys = []
    for _item in range(draw(st.integers(0, 5))):
        choice = draw(st.integers(0, 9))
        if choice < 5:
            lines, key = draw(directive_lines())
            data += lines
            keys.append(key)
        elif choice < 8 or depth == 0:
            data += draw(filler())
        else:
            if top and draw(st.booleans()):
                name, args = "VirtualHost", draw(st.sampled_from(["*:443", "[::]:443", "10.0.0.1:443 10.0.0.2:443"]))
            else:
                name, args = draw(st.sampled_from(INNER_SECTIONS))
            inner, inner_keys = draw(block(depth - 1, top=False))
            lead = draw(indent())
            data += (lead + b"<" + draw(spelled(name)).encode() + draw(gap()) + args.encode() + b">" + draw(ending())
                     + inner + lead + b"</" + draw(spelled(name)).encode() + b">" + draw(ending()))
            keys.append(name.lower())
            keys.extend(inner_keys)
    return data, keys


@st.composite
def config_files(draw):
    data, keys = draw(block(depth=3, top=True))
    if data.endswith(b"\n") and not data.rstrip(b"\r\n").endswith(b"\\") and draw(st.booleans()):
        data = data[:-2] if data.endswith(b"\r\n") else data[:-1]  # no line end at the end of the file
    return data, keys


# ------------------------------------------------------------------ trees to plan stapling on

HEAD = ("LoadModule ssl_module modules/mod_ssl.so\nLoadModule socache_shmcb_module modules/mod_socache_shmcb.so\n"
        "SSLSessionCache shmcb:/run/httpd/sslcache(512000)\n")
ON_OFF = {
    True: ["on", "On", "ON", '"on"', u"\u201con\u201d"],
    False: ["off", "Off", "OFF", "'off'", u"\u201doff\u201d"],
}


@st.composite
def stapling_setting(draw):
    """An SSLUseStapling line in some spelling, or nothing; returns bytes (newline to be added)."""
    state = draw(st.sampled_from([None, True, True, False, False]))
    if state is None:
        return b""
    value = draw(st.sampled_from(ON_OFF[state])).encode("utf-8")
    name = draw(spelled("SSLUseStapling")).encode()
    if draw(st.integers(0, 3)) == 0:
        return name + b" \\\n    " + value
    return name + draw(gap()) + value


@st.composite
def ssl_vhost(draw, number, certificate):
    lines = [b"<%s *:443>" % draw(spelled("VirtualHost")).encode(), b"    ServerName site%d.test" % number,
             b"    SSLEngine on", b"    SSLCertificateFile " + certificate.encode()]
    setting = draw(stapling_setting())
    if setting:
        lines.insert(draw(st.integers(1, len(lines))), b"    " + setting)
    if draw(st.booleans()):
        lines.insert(draw(st.integers(1, len(lines))), draw(filler()).rstrip(b"\r\n"))
    lines.append(b"</%s>" % draw(spelled("VirtualHost")).encode())
    return lines


def join(draw, lines):
    """Lines joined with the file's line ending: LF, CRLF, or (rarely) a mix; maybe none at the very end."""
    style = draw(st.sampled_from(["lf", "crlf", "crlf", "mixed"]))
    data = b""
    for line in lines:
        data += line + (draw(ending()) if style == "mixed" else (b"\r\n" if style == "crlf" else b"\n"))
    if draw(st.integers(0, 4)) == 0:
        data = data.rstrip(b"\r\n")
    return data


@st.composite
def stapling_trees(draw, certificate):
    """{relative path: bytes} of a tree with a few SSL vhosts, in httpd.conf and in an included file."""
    main = HEAD.encode().splitlines()
    server_setting = draw(stapling_setting())
    if server_setting and draw(st.booleans()):
        main += [b"<IfModule ssl_module>", b"  " + server_setting, b"</IfModule>"]
    elif server_setting:
        main.append(server_setting)
    if draw(st.booleans()):
        main.append(b"SSLStaplingCache shmcb:/run/httpd/ssl_stapling(128000)")
    count = draw(st.integers(1, 4))
    in_main = draw(st.integers(0, count))
    for number in range(in_main):
        main += draw(ssl_vhost(number, certificate))
    files = {}
    if in_main < count:
        sites = []
        for number in range(in_main, count):
            sites += draw(ssl_vhost(number, certificate))
        files["sites/sites.conf"] = join(draw, sites)
        main.append(b"Include sites/*.conf")
    if draw(st.booleans()):
        main.append(b"IncludeOptional conf.d/*.conf")  # the RHEL layout: our settings file goes there
    files["httpd.conf"] = join(draw, main)
    return files, count
