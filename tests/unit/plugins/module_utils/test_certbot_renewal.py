# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.fleet.stapling.plugins.module_utils import certbot_renewal

# What certbot 2.x writes for a lineage first issued with --must-staple (line 13 is the option).
MUST_STAPLE_RENEWAL = """\
# renew_before_expiry = 30 days
version = 2.11.0
archive_dir = /etc/letsencrypt/archive/shop.example.com
cert = /etc/letsencrypt/live/shop.example.com/cert.pem
privkey = /etc/letsencrypt/live/shop.example.com/privkey.pem
chain = /etc/letsencrypt/live/shop.example.com/chain.pem
fullchain = /etc/letsencrypt/live/shop.example.com/fullchain.pem

# Options used in the renewal process
[renewalparams]
account = 0123456789abcdef0123456789abcdef
authenticator = apache
must_staple = True
installer = apache
server = https://acme-v02.api.letsencrypt.org/directory
key_type = ecdsa
"""


def write(directory, name, text):
    path = directory / name
    path.write_text(text)
    return path


def test_a_must_staple_lineage_is_reported_with_file_line_and_certificate(tmp_path):
    path = write(tmp_path, "shop.example.com.conf", MUST_STAPLE_RENEWAL)

    traps = certbot_renewal.renewal_traps(str(tmp_path))

    assert traps == [{"file": str(path), "line": 13, "text": "must_staple = True", "certificate": "shop.example.com",
                      "cert_path": "/etc/letsencrypt/live/shop.example.com/cert.pem", "error": None}]


def test_a_lineage_without_must_staple_or_with_it_false_is_no_trap(tmp_path):
    write(tmp_path, "plain.example.com.conf", MUST_STAPLE_RENEWAL.replace("must_staple = True\n", ""))
    write(tmp_path, "off.example.com.conf", MUST_STAPLE_RENEWAL.replace("= True", "= False"))
    assert certbot_renewal.renewal_traps(str(tmp_path)) == []


@pytest.mark.parametrize("line", [
    "must_staple=true", "  Must_Staple   =   TRUE", "must_staple = 1", "must_staple = True  # set by --must-staple",
    "must_staple = 'True'", 'must-staple = "yes"', "\tmust_staple = on\r",
])
def test_spelling_spacing_quotes_and_comments_are_tolerated(tmp_path, line):
    write(tmp_path, "a.conf", "[renewalparams]\nauthenticator = webroot\n%s\n" % line)
    (trap,) = certbot_renewal.renewal_traps(str(tmp_path))
    assert (trap["line"], trap["text"], trap["cert_path"]) == (3, line.rstrip("\r"), None)


@pytest.mark.parametrize("text", [
    "# must_staple = True\n[renewalparams]\n",  # commented out
    "must_staple = True\n[renewalparams]\n",  # top level: certbot reads it only from [renewalparams]
    "[renewalparams]\n[[webroot_map]]\nmust_staple = True\n",  # inside a subsection
    "[other]\nmust_staple = True\n",
    "[renewalparams]\nmust_staple = False\nmust_staple_extra = True\n",
])
def test_must_staple_outside_renewalparams_or_commented_out_is_no_trap(tmp_path, text):
    write(tmp_path, "a.conf", text)
    assert certbot_renewal.renewal_traps(str(tmp_path)) == []


def test_renewalparams_after_a_subsection_is_read_again(tmp_path):
    write(tmp_path, "a.conf", "[renewalparams]\n[[webroot_map]]\nexample.com = /var/www\n[renewalparams]\n"
                              "must_staple = True\n")
    assert [trap["line"] for trap in certbot_renewal.renewal_traps(str(tmp_path))] == [5]


def test_only_conf_files_are_read_in_name_order(tmp_path):
    write(tmp_path, "b.example.conf", MUST_STAPLE_RENEWAL)
    write(tmp_path, "a.example.conf", MUST_STAPLE_RENEWAL)
    write(tmp_path, "c.example.conf.bak", MUST_STAPLE_RENEWAL)
    write(tmp_path, ".hidden.conf", MUST_STAPLE_RENEWAL)
    (tmp_path / "d.example.conf").mkdir()
    traps = certbot_renewal.renewal_traps(str(tmp_path))
    assert [trap["certificate"] for trap in traps] == ["a.example", "b.example"]


def test_a_missing_directory_means_no_traps(tmp_path):
    assert certbot_renewal.renewal_traps(str(tmp_path / "letsencrypt" / "renewal")) == []


def test_an_unreadable_file_is_reported_as_such_not_raised(tmp_path, monkeypatch):
    path = write(tmp_path, "locked.example.conf", MUST_STAPLE_RENEWAL)
    write(tmp_path, "open.example.conf", MUST_STAPLE_RENEWAL)

    def refuse_locked(name, *args):
        if name == str(path):
            raise PermissionError(13, "Permission denied", name)
        return open(name, *args)

    # the tests may run as root, whom file modes do not stop
    monkeypatch.setattr(certbot_renewal, "open", refuse_locked, raising=False)
    traps = certbot_renewal.renewal_traps(str(tmp_path))

    assert traps[0] == {"file": str(path), "line": None, "text": None, "certificate": "locked.example",
                        "cert_path": None, "error": "cannot be read: Permission denied"}
    assert [(trap["certificate"], trap["line"]) for trap in traps[1:]] == [("open.example", 13)]


def test_a_renewal_dir_that_is_no_directory_is_reported(tmp_path):
    not_a_dir = write(tmp_path, "renewal", "")
    (entry,) = certbot_renewal.renewal_traps(str(not_a_dir))
    assert entry["file"] == str(not_a_dir) and entry["line"] is None and entry["error"].startswith("cannot be read")


def test_a_huge_file_is_reported_not_read(tmp_path):
    path = write(tmp_path, "huge.conf", "x" * (certbot_renewal.MAX_FILE_BYTES + 1))
    (entry,) = certbot_renewal.renewal_traps(str(tmp_path))
    assert entry["file"] == str(path) and entry["line"] is None and "too large" in entry["error"]


def test_undecodable_bytes_do_not_stop_the_scan(tmp_path):
    (tmp_path / "latin.conf").write_bytes(b"# caf\xe9\n[renewalparams]\nmust_staple = True\n")
    assert [trap["line"] for trap in certbot_renewal.renewal_traps(str(tmp_path))] == [3]


def test_the_key_and_certificate_paths_are_never_opened(tmp_path):
    # paths that would fail loudly if opened: a directory where the key should be
    (tmp_path / "privkey.pem").mkdir()
    write(tmp_path, "k.conf", "cert = %s\nprivkey = %s\n[renewalparams]\nmust_staple = True\n"
          % (tmp_path / "missing-cert.pem", tmp_path / "privkey.pem"))
    (trap,) = certbot_renewal.renewal_traps(str(tmp_path))
    assert trap["cert_path"] == str(tmp_path / "missing-cert.pem") and trap["error"] is None


def test_a_link_to_another_renewal_file_is_followed_but_a_link_to_a_key_is_not(tmp_path):
    renewal_dir, keys = tmp_path / "renewal", tmp_path / "live"
    renewal_dir.mkdir()
    keys.mkdir()
    write(tmp_path, "shared.conf", MUST_STAPLE_RENEWAL)
    key = write(keys, "privkey.pem", "[renewalparams]\nmust_staple = True\n")  # would be a trap if it were read
    (renewal_dir / "linked.example.conf").symlink_to(tmp_path / "shared.conf")
    (renewal_dir / "stray.example.conf").symlink_to(key)

    linked, stray = certbot_renewal.renewal_traps(str(renewal_dir))

    assert (linked["certificate"], linked["line"], linked["error"]) == ("linked.example", 13, None)
    assert (stray["certificate"], stray["line"]) == ("stray.example", None)
    assert stray["error"] == "cannot be read: a link to %s, not followed" % key
