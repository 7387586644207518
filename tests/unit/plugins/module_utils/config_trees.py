# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Small config trees for the bad-input tests, run through the module's own path and checked by httpd itself.

``run_stapling`` is what apache_stapling does (read, plan, check, write, ``ctl -t``, restore on failure), with
Debian's apache2 as the ctl when it is installed, so that a test can say both what the module does and what
httpd says about the same tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ansible_collections.fleet.stapling.plugins.module_utils import apache_host, stapling_change, stapling_plan

from ansible_collections.fleet.stapling.tests.unit.plugins.module_utils.certificate_factory import TestCA, pem

MODULES_DIR = "/usr/lib/apache2/modules"
HTTPD = shutil.which("apache2") or shutil.which("httpd")


def write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def server_head(root):
    """What every tree starts with: enough for httpd -t and for the module to see mod_ssl and its cache."""
    modules = ["mpm_event", "authz_core", "ssl", "socache_shmcb", "macro"]
    lines = ["LoadModule %s_module %s/mod_%s.so" % (name, MODULES_DIR, name) for name in modules]
    lines += ["ServerName localhost", "Listen 127.0.0.1:58443", "PidFile %s/httpd.pid" % root,
              "ErrorLog %s/error.log" % root, "SSLStaplingCache shmcb:%s/stapling(128000)" % root]
    return ("\n".join(lines) + "\n").encode()


def certificate(root, name="shop.test"):
    path = root / ("%s.pem" % name)
    if not path.exists():
        ca = TestCA()
        path.write_bytes(pem(ca.leaf(name, "http://ocsp.test/")) + ca.pem)
    return str(path).encode()


def vhost(root, name="shop.test", extra=b"", newline=b"\n"):
    lines = [b"<VirtualHost *:58443>", b"    ServerName " + name.encode(), b"    SSLEngine on",
             b"    SSLCertificateFile " + certificate(root, name)]
    return newline.join(lines) + newline + extra + b"</VirtualHost>" + newline


def httpd_says(main, root):
    """(ok, message) of ``httpd -t`` on the tree; skips the test where no httpd is installed."""
    if HTTPD is None or not os.path.isdir(MODULES_DIR):
        pytest.skip("no Debian apache2 to compare with")
    done = subprocess.run([HTTPD, "-t", "-f", str(main), "-d", str(root)], capture_output=True, timeout=60, check=False)
    return done.returncode == 0, (done.stderr + done.stdout).decode("utf-8", "replace")


def run_command(command):
    done = subprocess.run(command, capture_output=True, timeout=60, check=False)
    return done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")


def run_stapling(main, root, check_mode=False, **wanted):
    """One apache_stapling run on the tree, validated by httpd -t when it is installed."""
    ctl = [HTTPD, "-f", str(main), "-d", str(root)] if HTTPD else ["true"]
    host = apache_host.ApacheHost(ctl, str(main), str(root), None, None, {})
    desired = stapling_plan.Desired(**wanted)
    return stapling_change.change_stapling(host, desired, run=run_command, check_mode=check_mode)


def snapshot(root):
    """Every file and link below ``root``: its bytes, or where it points."""
    found = {}
    for directory, dirs, files in os.walk(str(root)):
        for name in sorted(dirs + files):
            path = os.path.join(directory, name)
            if os.path.islink(path):
                found[path] = ("link", os.readlink(path))
            elif os.path.isfile(path) and os.path.getsize(path) < 1048576:
                with open(path, "rb") as stream:
                    found[path] = ("file", stream.read())
    return found


def refused_without_change(main, root, match, **wanted):
    """The run fails with an operator's message (an error that main() turns into fail_json), and no byte
    below ``root`` changed. Returns the message."""
    before = snapshot(root)
    wanted.setdefault("state", "disabled")
    wanted.setdefault("force", True)
    with pytest.raises(stapling_change.STAPLING_ERRORS, match=match) as raised:
        run_stapling(main, root, **wanted)
    assert snapshot(root) == before
    return str(raised.value)
