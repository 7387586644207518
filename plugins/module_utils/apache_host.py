# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Find the Apache instance a module works on: its ctl command, main config, ServerRoot and version.

Hosts may set all of it through the collection's contract (``stapling_apache_ctl``,
``stapling_apache_config_file``, ``stapling_apache_server_root``); otherwise ``ctl -V`` tells where
the distribution put things. ``run`` is any callable taking an argument list and returning
(rc, stdout, stderr) and raising OSError when the command cannot start, such as ``module_runner(module)``.
"""

from __future__ import annotations

import os
import re
import shlex

from ansible_collections.fleet.stapling.plugins.module_utils import apache_config

# Where distributions and control panels put the control script, in the order they are tried.
CTL_CANDIDATES = (
    "/usr/sbin/apache2ctl",  # Debian, Ubuntu
    "/usr/sbin/apachectl",  # RHEL family, SUSE, cPanel EasyApache 4
    "/usr/local/apache/bin/apachectl",  # cPanel EasyApache 3
    "/usr/sbin/httpd",
    "/usr/sbin/apache2",
)

_DEFINE = re.compile(r'^\s*-D\s+([A-Z_]+)(?:="(.*)")?\s*$')
_VERSION = re.compile(r"Apache/(\d+)\.(\d+)\.(\d+)")
_MODULE = re.compile(r"^\s*(\w+)\s+\((static|shared)\)\s*$")
_COMPILED_IN_HEADER = "Compiled in modules:"
_COMPILED_IN = re.compile(r"^\s+([\w.]+\.c)\s*$")


# The options of every module that works on an Apache instance (documented in the apache_instance fragment).
INSTANCE_ARGUMENT_SPEC = dict(
    ctl=dict(type="raw"),
    config_file=dict(type="path"),
    server_root=dict(type="path"),
    cpanel_root=dict(type="path", default="/usr/local/cpanel"),
)


class ApacheHostError(Exception):
    """The Apache instance could not be found or asked; the message says what to set."""


class ApacheHost(object):
    def __init__(self, ctl, config_file, server_root, version, static_modules, compile_settings,
                 cpanel_root="/usr/local/cpanel"):
        self.cpanel_root = cpanel_root
        self.ctl = ctl
        self.config_file = config_file
        self.server_root = server_root
        self.version = version
        self.static_modules = static_modules
        self.compile_settings = compile_settings
        self._parsed = None

    @property
    def version_string(self):
        return ".".join(str(part) for part in self.version) if self.version else None

    def parse(self, overrides=None):
        """The config tree, with ``overrides`` (planned contents) in place of some files.

        The tree as it is on disk is read once and kept: a run asks for it several times (plan, report, pid
        file), and on a host with thousands of vhosts each read costs more than ``ctl -t``. Whoever writes to
        the tree calls ``forget_parsed`` first.
        """
        if overrides:
            return self._read(overrides)
        if self._parsed is None:
            self._parsed = self._read(None)
        return self._parsed

    def forget_parsed(self):
        """The tree on disk has changed: the next ``parse()`` reads it again."""
        self._parsed = None

    def adopt_parsed(self, config):
        """The tree on disk has changed into the one ``config`` was read from (with overrides): keep that."""
        self._parsed = config

    def _read(self, overrides):
        # with overrides (a plan's check), every other file is as the tree on disk was just read: reused, not read again
        known = self._parsed.files if overrides and self._parsed is not None else None
        return apache_config.parse_config(self.config_file, server_root=self.server_root,
                                          static_modules=self.static_modules, version=self.version,
                                          overrides=overrides, known_sources=known)

    def pid_file(self, config):
        """Where the master writes its pid: PidFile, else the compiled-in default, against ServerRoot."""
        path = config.server_value("PidFile") or self.compile_settings.get("DEFAULT_PIDLOG") or "logs/httpd.pid"
        return os.path.normpath(os.path.join(config.server_root, path))

    def master_pid(self, config):
        """The pid of the running master, as its pid file names it; None when there is none running."""
        try:
            with open(self.pid_file(config), "rb") as stream:
                pid = int(stream.read().strip() or b"0")
        except (IOError, OSError, ValueError):
            return None
        return pid if pid > 0 and os.path.exists("/proc/%d" % pid) else None

    def configtest(self, run):
        """``ctl -t``: (ok, httpd's own words)."""
        rc, out, err = run(self.ctl + ["-t"])
        message = (err + out).strip() or "(no output)"
        return rc == 0, message


def split_command(command):
    if isinstance(command, (list, tuple)):
        return [str(part) for part in command]
    return shlex.split(command)


def find_ctl(ctl):
    if ctl:
        return split_command(ctl)
    for candidate in CTL_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return [candidate]
    raise ApacheHostError("no Apache control command found (tried %s); set ctl (the stapling_apache_ctl variable)"
                          % ", ".join(CTL_CANDIDATES))


def parse_compile_settings(text):
    """The ``-D NAME="value"`` lines and the version of ``ctl -V``."""
    settings = {}
    for line in text.splitlines():
        match = _DEFINE.match(line)
        if match:
            settings[match.group(1)] = match.group(2) if match.group(2) is not None else True
    version = _VERSION.search(text)
    return settings, (tuple(int(part) for part in version.groups()) if version else None)


def parse_static_modules(text):
    """Compiled-in modules from ``ctl -M`` (shared ones come from the LoadModule lines the parser reads)."""
    return [match.group(1) for match in (_MODULE.match(line) for line in text.splitlines())
            if match and match.group(2) == "static"]


def parse_compiled_in(text):
    """Compiled-in modules from ``ctl -l`` (``mod_so.c`` and the like), or None when the text is not that list."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != _COMPILED_IN_HEADER:
        return None
    return [match.group(1) for match in (_COMPILED_IN.match(line) for line in lines[1:]) if match]


def static_modules(run, command):
    """The modules compiled into httpd, or None when it cannot tell.

    ``ctl -l`` lists them without reading the config; ``ctl -M`` reads the whole config first, which on a host
    with thousands of vhosts costs more than ``ctl -t``. A ctl that does not pass ``-l`` on is asked ``-M``.
    """
    rc, out, _err = run(command + ["-l"])
    compiled_in = parse_compiled_in(out) if rc == 0 else None
    if compiled_in:
        return compiled_in
    rc, out, _err = run(command + ["-M"])
    return parse_static_modules(out) if rc == 0 else None


def _ctl_paths(command):
    """-d (ServerRoot) and -f (main config) given in the ctl command itself; -V reports compiled defaults."""
    found = {}
    for flag, value in zip(command, command[1:]):
        if flag in ("-d", "-f"):
            found[flag] = value
    return found


def discover(run, ctl=None, config_file=None, server_root=None, cpanel_root="/usr/local/cpanel"):
    command = find_ctl(ctl)
    try:
        rc, out, err = run(command + ["-V"])
    except (OSError, IOError) as exc:
        raise ApacheHostError("cannot run %s -V: %s" % (" ".join(command), exc))
    if rc != 0:
        raise ApacheHostError("%s -V failed (rc=%d): %s" % (" ".join(command), rc, (err or out).strip()))
    settings, version = parse_compile_settings(out)
    given = _ctl_paths(command)
    root = server_root or given.get("-d") or settings.get("HTTPD_ROOT")
    main = config_file or given.get("-f") or settings.get("SERVER_CONFIG_FILE")
    if not root or not main:
        raise ApacheHostError("could not tell ServerRoot and the main config from %s -V; set server_root and "
                              "config_file" % " ".join(command))
    main = os.path.join(root, main) if not os.path.isabs(main) else main
    if os.path.isdir(main):
        raise ApacheHostError("the main Apache config %s is a directory, not a file; set config_file" % main)
    if not os.path.isfile(main):
        raise ApacheHostError("the main Apache config %s does not exist; set config_file" % main)
    return ApacheHost(command, main, root, version, static_modules(run, command), settings, cpanel_root)


def discover_from_params(run, params):
    """``discover`` with a module's INSTANCE_ARGUMENT_SPEC options."""
    return discover(run, params.get("ctl"), params.get("config_file"), params.get("server_root"),
                    params.get("cpanel_root") or "/usr/local/cpanel")


def module_runner(module):
    """AnsibleModule.run_command that raises OSError for a missing command, so our message can name it
    (by default Ansible ends the module itself with a bare 'Error executing command.')."""
    def run(command):
        return module.run_command(command, handle_exceptions=False)
    return run
