# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Read a whole Apache httpd configuration tree into a lossless model.

The model keeps every physical line of every file as the original bytes (line endings, comments, odd
encodings and all), so that rendering an untouched file gives back exactly what was read. On top of the
lines it records each directive and section with its file, line numbers and enclosing sections, and
whether Apache would act on it: ``<IfModule>``, ``<IfDefine>``, ``<IfVersion>`` and ``<IfFile>`` are
evaluated with what is known about the server (LoadModule lines, compiled-in modules, Define and -D,
the version), and Include/IncludeOptional are followed the way httpd follows them.

Importable without Ansible: the modules and the unit tests use it directly.
"""

from __future__ import annotations

import contextlib
import fnmatch
import gc
import glob
import os
import re

# ApacheConfigError is raised here too and callers catch it as apache_config.ApacheConfigError
from ansible_collections.fleet.stapling.plugins.module_utils.apache_config_files import (
    ApacheConfigError,
    SourceFile,
    environment_for,
    files_below,
    glob_files,
    glob_path_matches,
    split_lines,
)

# Modules built into the httpd binary on common distributions; ``ctl -M`` gives the real list when known.
DEFAULT_STATIC_MODULES = frozenset(["core", "so", "http", "log_config", "logio", "version", "unixd", "watchdog"])

# Condition sections whose contents Apache may skip; every other section is structural.
CONDITION_SECTIONS = frozenset(["ifmodule", "ifdefine", "ifversion", "iffile", "ifdirective", "ifsection"])

# httpd's own limit (AP_MAX_INCLUDE_DEPTH): deeper than this it reports a recursion
MAX_INCLUDE_DEPTH = 128

UTF8_BOM = b"\xef\xbb\xbf"

_VARIABLE = re.compile(r"\$\{([A-Za-z0-9_.:-]+)\}")


class Directive(object):
    """A directive or section opener as Apache sees it, pinned to where it was written.

    ``start`` and ``end`` are 0-based indexes of the first and last physical line (they differ when the
    line continues with a backslash). For a section, ``close`` is the index of its closing tag line, and
    ``children`` holds what it contains.
    """

    def __init__(self, name, args, source, start, end, parent, active, raw_args):
        self.name = name
        # looked up several times per directive on every query: computed once
        self.key = name.lower()
        self.args = args
        self.raw_args = raw_args
        self.source = source
        self.start = start
        self.end = end
        self.parent = parent
        self.active = active
        self.close = None
        self.children = []
        self.is_section = False

    @property
    def path(self):
        return self.source.path

    @property
    def lineno(self):
        return self.start + 1

    def ancestors(self):
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    def enclosing(self, key):
        """The nearest enclosing section named ``key`` (lower case), or None."""
        for node in self.ancestors():
            if node.key == key:
                return node
        return None

    def first_arg(self, default=None):
        return self.args[0] if self.args else default

    def location(self):
        return "%s:%d" % (self.path, self.lineno)

    def __repr__(self):
        return "<%s %s %r>" % (self.name, self.location(), self.args)


class ApacheConfig(object):
    """A parsed configuration tree.

    ``directives`` lists every directive and section opener in the order httpd reads them (includes
    expanded in place). ``files`` maps each path read to its SourceFile, in first-read order.
    """

    def __init__(self, main_file, server_root):
        self.main_file = main_file
        self.server_root = server_root
        self.files = {}
        self.directives = []
        self.defines = {}
        self.loaded_modules = set()
        self.warnings = []
        self.missing_includes = []
        # Built on first use, once parsing is over: a host with thousands of vhosts asks for the
        # server's settings once per vhost, and scanning every directive each time would be quadratic.
        self._active_by_key = None
        self._server_scope_by_key = {}
        # section -> {key: active directives inside it}, so that a vhost's ten lookups walk it once
        self._inside_by_section = {}
        self._derived = {}

    def derived(self, name, compute):
        """``compute(self)``, worked out once per tree: a parsed tree never changes, and a run asks some
        questions of it (its layout, where its Includes point) several times, each a walk over every Include."""
        if name not in self._derived:
            self._derived[name] = compute(self)
        return self._derived[name]

    # -------------------------------------------------------------- queries

    def active(self, key):
        """Every active directive named ``key`` (case-insensitive), in read order."""
        if self._active_by_key is None:
            index = {}
            for directive in self.directives:
                if directive.active:
                    index.setdefault(directive.key, []).append(directive)
            self._active_by_key = index
        return list(self._active_by_key.get(key.lower(), ()))

    def virtual_hosts(self):
        return [d for d in self.active("virtualhost") if d.is_section]

    def server_scope(self, key):
        """Active directives named ``key`` of the main server: outside every section but the conditional ones
        (<IfModule> and friends), so not in a <VirtualHost>, <MDomain>, <Directory> or the like."""
        key = key.lower()
        if key not in self._server_scope_by_key:
            self._server_scope_by_key[key] = [
                d for d in self.active(key) if all(a.key in CONDITION_SECTIONS for a in d.ancestors())]
        return list(self._server_scope_by_key[key])

    def inside(self, section, key):
        """Active directives named ``key`` anywhere inside ``section`` (a <VirtualHost>, an <MDomain>, ...), as a
        tuple: the index's own, not copied (a large host's facts ask this a hundred thousand times)."""
        index = self._inside_by_section.get(section)
        if index is None:
            found = {}
            for directive in _walk(section.children):
                if directive.active:
                    found.setdefault(directive.key, []).append(directive)
            index = self._inside_by_section[section] = dict((name, tuple(items)) for name, items in found.items())
        return index.get(key.lower(), ())

    def server_value(self, key, default=None):
        """The main server's value: the last active server-scope occurrence wins, as in httpd."""
        found = self.server_scope(key)
        return found[-1].first_arg(default) if found else default

    def vhost_value(self, vhost, key, default=None):
        """A vhost's value: its own last setting, else the main server's (httpd merges them this way)."""
        found = self.inside(vhost, key)
        if found:
            return found[-1].first_arg(default)
        return self.server_value(key, default)

    def has_module(self, name):
        return _module_id(name) in self.loaded_modules


# ------------------------------------------------------------------ parsing


def parse_config(main_file, server_root=None, defines=None, static_modules=None, version=None,
                 environment=None, overrides=None, known_sources=None):
    """Parse ``main_file`` and everything it includes.

    ``server_root`` resolves relative paths until a ServerRoot directive says otherwise (httpd's -d);
    ``defines`` are names given with -D; ``static_modules`` are compiled-in module names (``ssl``,
    ``mod_ssl.c`` or ``ssl_module`` all work); ``version`` is a tuple like (2, 4, 62) or None when unknown;
    ``environment`` resolves ${VAR} that no Define sets (defaults to the envvars file beside the main
    config, as Debian's apache2ctl sources it, over os.environ). ``overrides`` maps paths to contents to
    read instead of the disk (new files included): it is how a planned change is checked before it is
    written. ``known_sources`` maps paths to the SourceFile of a read just made (ApacheConfig.files): those
    files are taken from it instead of the disk, their lines already split into statements.
    """
    main_file = os.path.abspath(main_file)
    if server_root is None:
        server_root = os.path.dirname(main_file)
    config = ApacheConfig(main_file, server_root)
    for name in defines or ():
        config.defines[name] = ""
    for name in static_modules if static_modules is not None else DEFAULT_STATIC_MODULES:
        config.loaded_modules.add(_module_id(name))
    parser = _Parser(config, version, environment_for(main_file, environment), overrides or {}, known_sources or {})
    with cycle_collection_paused():
        parser.read_file(main_file, parent=None, active=True, depth=0, optional=False)
    return config


@contextlib.contextmanager
def cycle_collection_paused():
    """Python's cycle collector off while a large model is built, and back as it was after.

    Building one allocates hundreds of thousands of objects, and each few hundred of them set the collector
    scanning everything alive, the trees already read included: on a host with 5,000 vhosts that made a
    second read of the tree four times slower than the first. Nothing built here is garbage to collect.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _Parser(object):
    def __init__(self, config, version, environment, overrides, known_sources):
        self.config = config
        self.version = version
        self.environment = environment
        self.overrides = overrides
        self.known_sources = known_sources
        self.reading = []  # the files being read, outermost first, and where they really are
        self.reading_real = []

    def read_file(self, path, parent, active, depth, optional):
        # by the file, not the name: a link to a file being read closes a loop as well
        real_path = os.path.realpath(path)
        if real_path in self.reading_real:
            chain = self.reading[self.reading_real.index(real_path):] + [path]
            raise ApacheConfigError("include loop: %s includes itself (%s)" % (path, " -> ".join(chain)))
        if depth > MAX_INCLUDE_DEPTH:
            raise ApacheConfigError("includes nest more than %d deep at %s, as httpd allows no deeper: %s"
                                    % (MAX_INCLUDE_DEPTH, path, " -> ".join(self.reading[:2] + ["..."] + self.reading[-2:])))
        source = self.config.files.get(path)
        if source is None and path in self.overrides:
            source = SourceFile(path, split_lines(self.overrides[path]))
            self.config.files[path] = source
        if source is None and path in self.known_sources:
            source = self.config.files[path] = self.known_sources[path]
        if source is None:
            try:
                source = SourceFile.read(path)
            except (IOError, OSError) as exc:
                if optional:
                    self.config.missing_includes.append(path)
                    return
                raise ApacheConfigError("cannot read %s: %s" % (path, exc.strerror or exc))
            self.config.files[path] = source
        self.reading.append(path)
        self.reading_real.append(real_path)
        try:
            self._read_lines(source, parent, active, depth)
        finally:
            self.reading.pop()
            self.reading_real.pop()

    def _read_lines(self, source, parent, active, depth):
        if source.lines and source.lines[0].startswith(UTF8_BOM):
            raise ApacheConfigError("%s:1: the file starts with a UTF-8 byte order mark (saved by a Windows editor?), "
                                    "which httpd takes as part of the first line and refuses; remove it" % source.path)
        stack = []  # sections opened in this file: (directive, active before it)
        found = statements(source)
        position = 0
        count = len(found)
        while position < count:
            statement = found[position]
            start, following, stripped = statement[0], statement[1], statement[2]
            position += 1
            if stripped.startswith("</"):
                section = self._close_section(source, start, stripped, stack)
                parent, active = section.parent, stack.pop()[1]
                section.close = start
                continue
            if stripped.startswith("<"):
                section = self._open_section(source, statement, parent, active)
                if section.key == "macro":
                    position = self._skip_macro_body(source, section, found, position, following)
                    continue
                stack.append((section, active))
                if active and section.key in CONDITION_SECTIONS:
                    active = self._condition_holds(section)
                parent = section
                continue
            if statement[3] is None:
                name, raw_args = _split_name(stripped)
                statement[3] = (name, raw_args, split_args(raw_args))
            name, raw_args, words = statement[3]
            args = [self._expand(a) for a in words] if active else list(words)
            directive = Directive(name, args, source, start, following - 1, parent, active, raw_args)
            self._attach(directive, parent)
            if active:
                self._apply(directive, depth)
        if stack:
            section = stack[-1][0]
            raise ApacheConfigError("%s: <%s> opened at line %d is never closed" % (source.path, section.name, section.lineno))

    @staticmethod
    def _close_section(source, start, stripped, stack):
        """The open section that a closing tag ends; an error, as in httpd, when it ends another or none."""
        tag = stripped if stripped.endswith(">") and " " not in stripped else stripped.split(None, 1)[0]
        if not tag.endswith(">") or tag == "</>":
            raise ApacheConfigError("%s:%d: %s directive missing closing '>'" % (source.path, start + 1, tag))
        name = tag[2:-1]
        if not stack or stack[-1][0].key != name.lower():
            expected = "<%s> opened at line %d" % (stack[-1][0].name, stack[-1][0].lineno) if stack else "no open section"
            raise ApacheConfigError("%s:%d: </%s> does not close %s" % (source.path, start + 1, name, expected))
        return stack[-1][0]

    def _open_section(self, source, statement, parent, active):
        start, following, stripped = statement[0], statement[1], statement[2]
        if statement[3] is None:
            # httpd reads a section's arguments up to the last '>' and ignores what follows it (a comment, say)
            closing = stripped.rfind(">")
            if closing < 0:
                raise ApacheConfigError("%s:%d: section line does not end with '>'" % (source.path, start + 1))
            name, raw_args = _split_name(stripped[1:closing])
            if not name:
                raise ApacheConfigError("%s:%d: empty section tag" % (source.path, start + 1))
            statement[3] = (name, raw_args, split_args(raw_args))
        name, raw_args, words = statement[3]
        args = [self._expand(a) for a in words] if active else list(words)
        section = Directive(name, args, source, start, following - 1, parent, active, raw_args)
        section.is_section = True
        if active and section.key == "virtualhost":
            _check_vhost_context(section)
        self._attach(section, parent)
        return section

    def _skip_macro_body(self, source, section, found, position, body_start):
        """mod_macro keeps a <Macro> body as text until Use expands it: it is neither read nor checked here (httpd
        does not check it either), only noted when it holds a vhost. ``found`` are the file's statements, the
        body starts at ``position`` among them (line ``body_start``); returns the position after </Macro>."""
        while position < len(found):
            start, stripped = found[position][0], found[position][2]
            position += 1
            if stripped.lower().startswith("</macro"):
                section.close = start
                body = b"".join(source.lines[body_start:start]).lower()
                if section.active and b"<virtualhost" in body:
                    self.config.warnings.append(
                        "%s: the vhosts of <Macro %s> are made where it is used and are not read here; only "
                        "server-wide settings reach them" % (section.location(), section.first_arg("")))
                return position
        raise ApacheConfigError("%s: <%s> opened at line %d is never closed" % (source.path, section.name, section.lineno))

    def _attach(self, directive, parent):
        self.config.directives.append(directive)
        if parent is not None:
            parent.children.append(directive)

    def _expand(self, word):
        if "${" not in word:
            return word

        def lookup(match):
            name = match.group(1)
            if name in self.config.defines:
                return self.config.defines[name]
            if name in self.environment:
                return self.environment[name]
            self.config.warnings.append("variable ${%s} is not defined" % name)
            return match.group(0)

        return _VARIABLE.sub(lookup, word)

    def _apply(self, directive, depth):
        """Directives that change how the rest of the tree is read."""
        key = directive.key
        config = self.config
        if key == "serverroot" and directive.args:
            config.server_root = directive.args[0].rstrip("/") or "/"
        elif key == "define" and directive.args:
            config.defines[directive.args[0]] = directive.args[1] if len(directive.args) > 1 else ""
        elif key == "undefine" and directive.args:
            config.defines.pop(directive.args[0], None)
        elif key == "loadmodule" and directive.args:
            config.loaded_modules.add(_module_id(directive.args[0]))
            if len(directive.args) > 1:
                config.loaded_modules.add(_module_id(os.path.basename(directive.args[1])))
        elif key in ("include", "includeoptional") and directive.args:
            self._include(directive, optional=(key == "includeoptional"), depth=depth)
        elif key == "use":
            config.warnings.append("%s: Use %s: what a <Macro> makes is not read here (vhosts in it are not listed, "
                                   "and only server-wide settings reach them)" % (directive.location(), directive.first_arg("")))

    def _include(self, directive, optional, depth):
        pattern = self._server_path(directive.args[0])
        for path in self._include_targets(pattern, directive, optional):
            self.read_file(path, directive.parent, True, depth + 1, optional)

    def _include_targets(self, pattern, directive, optional):
        if not glob.has_magic(pattern):
            if os.path.isdir(pattern):
                return files_below(pattern)
            if not os.path.exists(pattern) and pattern not in self.overrides:
                if optional:
                    self.config.missing_includes.append(pattern)
                    return []
                raise ApacheConfigError("%s: Include file %s does not exist" % (directive.location(), pattern))
            return [pattern]
        # the part before the first wildcard is matched as it is: a cheap test first, for thousands of patterns
        literal = pattern[:min(pattern.find(c) if c in pattern else len(pattern) for c in "*?[")]
        planned = [p for p in self.overrides if p.startswith(literal) and glob_path_matches(p, pattern)]
        matches = sorted(set(p for p in glob_files(pattern)).union(planned))
        if not matches:
            if not optional:
                # httpd refuses a plain Include whose wildcard matches nothing.
                raise ApacheConfigError("%s: Include pattern %s matches no file" % (directive.location(), pattern))
            self.config.missing_includes.append(pattern)
        targets = []
        for match in matches:
            # a directory the wildcard matches is read whole, as httpd does
            targets.extend(files_below(match) if os.path.isdir(match) and match not in self.overrides else [match])
        return targets

    def _server_path(self, path):
        return os.path.normpath(os.path.join(self.config.server_root, path))

    def _condition_holds(self, section):
        arg = section.first_arg("")
        negate = arg.startswith("!")
        if negate:
            arg = arg[1:]
        key = section.key
        if key == "ifmodule":
            holds = _module_id(arg) in self.config.loaded_modules
        elif key == "ifdefine":
            holds = arg in self.config.defines
        elif key == "iffile":
            holds = os.path.exists(self._server_path(arg))
        elif key == "ifversion":
            holds = _version_matches(section.args, self.version)
            negate = False  # the operator itself carries any negation
        else:
            holds = True  # IfDirective / IfSection: every directive we care about exists
        return not holds if negate else holds


def _check_vhost_context(vhost):
    """httpd allows <VirtualHost> only at server scope, conditional sections around it being transparent."""
    for ancestor in vhost.ancestors():
        if ancestor.key == "virtualhost":
            raise ApacheConfigError("%s: <VirtualHost> cannot occur within <VirtualHost> section (opened at %s)"
                                    % (vhost.location(), ancestor.location()))
        if ancestor.key not in CONDITION_SECTIONS:
            raise ApacheConfigError("%s: <VirtualHost> is not allowed in <%s> context (opened at %s); httpd refuses it "
                                    "too" % (vhost.location(), ancestor.name, ancestor.location()))


def statements(source):
    """The logical lines of ``source`` that say something (not blank, not a comment), each as a list: first
    physical line, the line after the last, the text stripped, and a slot the parser fills with the name and
    words once it has split them. Worked out once per file and kept on it, so that a second read of a file
    (the plan's check re-reads every file the plan leaves alone) only interprets."""
    if source.statements is None:
        source.statements = _statements(source.lines)
    return source.statements


def _statements(lines):
    # One decoding for the whole file: LF never occurs inside a UTF-8 sequence, so this gives each line the text
    # that decoding it alone would (surrogateescape keeps the bytes that are not UTF-8, for a lossless render).
    texts = b"".join(lines).decode("utf-8", "surrogateescape").split("\n")
    found = []
    count = len(lines)
    index = 0
    while index < count:
        start = index
        # a trailing backslash continues the logical line on the next physical one
        parts = []
        while index < count:
            text = texts[index].rstrip("\r\n")
            index += 1
            if text.endswith("\\") and index < count:
                parts.append(text[:-1])
                continue
            parts.append(text)
            break
        stripped = "".join(parts).strip()
        if stripped and not stripped.startswith("#"):
            found.append([start, index, stripped, None])
    return found


def _split_name(text):
    """A directive or section name and the rest of the line, split at the first run of whitespace."""
    parts = text.strip().split(None, 1)
    if not parts:
        return "", ""
    return parts[0], (parts[1].strip() if len(parts) > 1 else "")


# One word as ap_getword_conf reads it, after any whitespace: in "double" or 'single' quotes (a backslash escapes
# the quote or itself; a quote never closed runs to the end of the line), else a run of anything but whitespace.
_WORD = re.compile(r"""\s*(?:"((?:\\["\\]|[^"])*)"?|'((?:\\['\\]|[^'])*)'?|(\S+))""")
_ESCAPE_IN_DOUBLE = re.compile(r'\\(["\\])')
_ESCAPE_IN_SINGLE = re.compile(r"\\(['\\])")


def split_args(text):
    """Split arguments the way httpd's ap_getword_conf does: whitespace, with "double" and 'single' quotes.

    Typographic quotes are not quotes to httpd and stay part of the word, which is how a pasted runbook
    line breaks a config; callers detect them with ``has_typographic_quotes``.
    """
    if '"' not in text and "'" not in text:
        return text.split()  # most lines; str.split() and \s agree on what whitespace is
    words = []
    position = 0
    while True:
        match = _WORD.match(text, position)
        if match is None:
            return words  # only whitespace left
        position = match.end()
        double, single, bare = match.groups()
        if bare is not None:
            words.append(bare)
        elif double is not None:
            words.append(_ESCAPE_IN_DOUBLE.sub(r"\1", double) if "\\" in double else double)
        else:
            words.append(_ESCAPE_IN_SINGLE.sub(r"\1", single) if "\\" in single else single)


TYPOGRAPHIC_QUOTES = u"\u201c\u201d\u201e\u2018\u2019\u201a\u00ab\u00bb"


def has_typographic_quotes(text):
    return any(char in text for char in TYPOGRAPHIC_QUOTES)


def _walk(directives):
    for directive in directives:
        yield directive
        if directive.children:
            yield from _walk(directive.children)


def _module_id(name):
    """Normalise 'ssl_module', 'mod_ssl.c', 'mod_ssl.so' and 'ssl' to one key: 'ssl'."""
    name = name.strip().lower()
    for suffix in (".c", ".so", "_module"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name.startswith("mod_"):
        name = name[4:]
    return name


def _version_matches(args, version):
    if version is None or not args:
        return True  # unknown version: assume the block applies, as most configs target the running server
    if len(args) == 1:
        operator, wanted = "=", args[0]
    else:
        operator, wanted = args[0], args[1]
    if operator in ("~", "!~") or (wanted.startswith("/") and wanted.endswith("/")):
        pattern = wanted.strip("/")
        found = re.search(pattern, ".".join(str(part) for part in version)) is not None
        return not found if operator == "!~" else found
    wanted_tuple = tuple(int(part) for part in re.findall(r"\d+", wanted))
    current = tuple(version[: len(wanted_tuple)])
    comparisons = {
        "=": current == wanted_tuple, "==": current == wanted_tuple, "!=": current != wanted_tuple,
        ">": current > wanted_tuple, ">=": current >= wanted_tuple,
        "<": current < wanted_tuple, "<=": current <= wanted_tuple,
    }
    return comparisons.get(operator, True)


def glob_matches(pattern, name):
    """Case-insensitive shell-style match, for selecting vhosts by name."""
    return fnmatch.fnmatchcase(name.lower(), pattern.lower())
