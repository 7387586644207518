# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os

from ansible_collections.fleet.stapling.plugins.module_utils import certificate_cache, stapling_facts
from ansible_collections.fleet.stapling.plugins.module_utils.apache_config import parse_config
from ansible_collections.fleet.stapling.tests.unit.plugins.module_utils.certificate_factory import TestCA, pem


def host_with_two_sites(tmp_path, must_staple_second=False):
    ca = TestCA()
    vhosts = []
    for number in range(2):
        leaf = ca.leaf("site%d.test" % number, "http://ocsp.test/", must_staple=must_staple_second and number == 1)
        (tmp_path / ("site%d.pem" % number)).write_bytes(pem(leaf) + ca.pem)
        vhosts.append("<VirtualHost *:443>\nServerName site%d.test\nSSLEngine on\nSSLCertificateFile %s\n"
                      "</VirtualHost>\n" % (number, tmp_path / ("site%d.pem" % number)))
    main = tmp_path / "httpd.conf"
    main.write_text("LoadModule ssl_module x\n" + "".join(vhosts))
    return ca, main


def facts_with(main, state_dir):
    cache = certificate_cache.CertificateFactsCache(str(state_dir))
    facts = stapling_facts.stapling_facts(parse_config(str(main)), cache=cache)
    return cache, facts


def test_a_second_run_reuses_what_unchanged_certificates_said(tmp_path):
    _ca, main = host_with_two_sites(tmp_path)
    first_cache, first = facts_with(main, tmp_path / "state")
    assert (first_cache.hits, first_cache.misses) == (0, 2) and first_cache.save()
    assert oct(os.stat(first_cache.path).st_mode & 0o777) == "0o600"
    second_cache, second = facts_with(main, tmp_path / "state")
    assert (second_cache.hits, second_cache.misses) == (2, 0)
    assert [v["certificate"] for v in second["vhosts"]] == [v["certificate"] for v in first["vhosts"]]


def test_a_renewed_certificate_is_read_again_and_its_new_facts_are_used(tmp_path):
    ca, main = host_with_two_sites(tmp_path)
    cache, _facts = facts_with(main, tmp_path / "state")
    cache.save()
    # a renewal replaces the file (new inode), now with Must-Staple: the guard must see it at once
    renewed = tmp_path / "renewed.pem"
    renewed.write_bytes(pem(ca.leaf("site1.test", "http://ocsp.test/", must_staple=True)) + ca.pem)
    os.replace(str(renewed), str(tmp_path / "site1.pem"))
    cache, facts = facts_with(main, tmp_path / "state")
    assert (cache.hits, cache.misses) == (1, 1)
    assert [v["certificate"]["must_staple"] for v in facts["vhosts"]] == [False, True]


def test_an_edit_in_place_that_keeps_the_size_still_counts_as_a_change(tmp_path):
    _ca, main = host_with_two_sites(tmp_path)
    cache, _facts = facts_with(main, tmp_path / "state")
    cache.save()
    site = tmp_path / "site0.pem"
    data = site.read_bytes()
    site.write_bytes(data)  # same bytes, new modification and change times
    cache, _facts = facts_with(main, tmp_path / "state")
    assert (cache.hits, cache.misses) == (1, 1)


def test_entries_of_certificates_no_vhost_serves_any_more_are_dropped(tmp_path):
    _ca, main = host_with_two_sites(tmp_path)
    cache, _facts = facts_with(main, tmp_path / "state")
    cache.save()
    main.write_text(main.read_text().split("<VirtualHost", 2)[0] + "<VirtualHost" + main.read_text().split("<VirtualHost")[1])
    cache, _facts = facts_with(main, tmp_path / "state")
    cache.save()
    stored = json.loads(open(cache.path).read())["entries"]
    assert len(stored) == 1 and "site0.pem" in next(iter(stored))


def test_a_file_others_could_have_written_is_not_trusted(tmp_path):
    _ca, main = host_with_two_sites(tmp_path)
    cache, _facts = facts_with(main, tmp_path / "state")
    cache.save()
    os.chmod(cache.path, 0o666)
    cache, _facts = facts_with(main, tmp_path / "state")
    assert cache.hits == 0 and "not this user's own private file" in cache.problem


def test_a_link_in_place_of_the_file_is_not_followed(tmp_path):
    _ca, main = host_with_two_sites(tmp_path)
    cache, _facts = facts_with(main, tmp_path / "elsewhere")
    cache.save()
    (tmp_path / "state").mkdir()
    os.symlink(cache.path, str(tmp_path / "state" / certificate_cache.FILE_NAME))
    cache, _facts = facts_with(main, tmp_path / "state")
    assert cache.hits == 0


def test_a_damaged_or_foreign_file_means_reading_the_certificates_again(tmp_path):
    _ca, main = host_with_two_sites(tmp_path)
    (tmp_path / "state").mkdir(mode=0o700)
    path = tmp_path / "state" / certificate_cache.FILE_NAME
    path.write_text("{not json")
    path.chmod(0o600)
    cache, facts = facts_with(main, tmp_path / "state")
    assert cache.misses == 2 and "cannot be read" in cache.problem
    assert all(v["certificate"]["ocsp_url"] == "http://ocsp.test/" for v in facts["vhosts"])
    path.write_text(json.dumps({"format": certificate_cache.FORMAT + 1, "entries": {"x": [None, "old"]}}))
    cache, _facts = facts_with(main, tmp_path / "state")
    assert cache.misses == 2


def test_a_state_dir_that_cannot_be_written_costs_time_not_the_run(tmp_path):
    _ca, main = host_with_two_sites(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache, facts = facts_with(main, blocker / "state")
    assert cache.save() is False and "cannot keep" in cache.problem
    assert len(facts["vhosts"]) == 2


def test_a_certificate_that_cannot_be_read_is_remembered_as_such_until_it_changes(tmp_path):
    _ca, main = host_with_two_sites(tmp_path)
    (tmp_path / "site1.pem").write_bytes(b"not a certificate")
    cache, facts = facts_with(main, tmp_path / "state")
    cache.save()
    error = facts["vhosts"][1]["certificate_error"]
    assert error
    cache, facts = facts_with(main, tmp_path / "state")
    assert cache.hits == 2 and facts["vhosts"][1]["certificate_error"] == error
