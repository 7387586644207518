# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.fleet.stapling.plugins.filter.staples_left import staples_left


def entry(name, stapled, status, url="http://ocsp.example/", error_class=None):
    return {"server_name": name, "stapled": stapled, "status": status, "error_class": error_class,
            "certificate": {"ocsp_url": url} if url is not None else None}


STAPLED = [
    entry("good.example", True, "good"),
    entry("none.example", False, "not_stapled", error_class="not_stapled"),
    entry("none.example", False, "not_stapled", error_class="not_stapled"),  # the same vhost on a second address
    entry("revoked.example", True, "bad", error_class="revoked"),
    entry("nourl.example", False, "not_stapled", url=""),
    entry("deadtls.example", False, "unreachable", url=None),
    entry("other-ca.example", False, "not_stapled", url="http://ocsp.other/"),
]
ALL = [item["server_name"] for item in STAPLED]


def test_expecting_staples_names_each_vhost_without_a_proper_answer_once():
    assert staples_left(STAPLED, ALL, True) == ["none.example", "other-ca.example"]


def test_expecting_staples_only_for_the_responders_given():
    assert staples_left(STAPLED, ALL, True, ["http://ocsp.other/"]) == ["other-ca.example"]
    assert staples_left(STAPLED, ALL, True, []) == []


def test_expecting_none_names_every_vhost_that_staples_anything():
    assert staples_left(STAPLED, ALL, False) == ["good.example", "revoked.example"]


def test_only_the_names_asked_for_are_judged():
    assert staples_left(STAPLED, ["good.example", "nourl.example"], False) == ["good.example"]
    assert staples_left(STAPLED, [], False) == []


def test_input_that_is_not_a_list_of_entries_is_a_clear_error():
    with pytest.raises(AnsibleFilterError, match="list of ocsp_probe's stapled entries"):
        staples_left({"stapled": []}, ALL, True)
