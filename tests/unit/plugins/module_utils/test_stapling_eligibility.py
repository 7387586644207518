# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Enabling stapling leaves vhosts whose certificate has no OCSP URL off, in their own scope (without_ocsp_url)."""

from __future__ import annotations

import pytest

from ansible_collections.fleet.stapling.plugins.module_utils import stapling_facts, stapling_plan
from ansible_collections.fleet.stapling.plugins.module_utils.apache_config import parse_config
from ansible_collections.fleet.stapling.tests.unit.plugins.module_utils.certificate_factory import TestCA, pem
from ansible_collections.fleet.stapling.tests.unit.plugins.module_utils.test_stapling_plan import (
    ALPHA_URL,
    apply,
    plan_for,
)
from ansible_collections.fleet.stapling.tests.unit.plugins.module_utils.test_stapling_plan import tree  # noqa: F401  # pylint: disable=unused-import


def stapling_by_name(root):
    facts = stapling_facts.stapling_facts(parse_config(str(root / "httpd.conf")))
    return dict((v["server_name"], v["stapling"]) for v in facts["vhosts"])


def switch_off_everywhere(root):
    (root / "conf.d" / "ssl.conf").write_text("SSLSessionCache shmcb:/run/httpd/sslcache(512000)\n"
                                              "SSLStaplingCache shmcb:/run/httpd/ssl_stapling(128000)\n"
                                              "SSLUseStapling off\n")


def test_enabling_keeps_the_vhost_without_an_ocsp_url_off_in_its_own_scope(tree):
    switch_off_everywhere(tree)
    plan, rendered = plan_for(tree, state="enabled")
    assert [v for v in plan.off_without_url if v.startswith("new.test")] == plan.off_without_url != []
    sites = rendered[str(tree / "conf.d" / "sites.conf")][1].decode()
    new_vhost = sites.split("<VirtualHost")[4]
    assert "ServerName new.test" in new_vhost and "SSLUseStapling off" in new_vhost
    assert sites.count("SSLUseStapling") == 1  # the others follow the server default
    apply(rendered)
    assert stapling_by_name(tree) == {"shop.test": True, "secure.test": True, "blog.test": True, "new.test": False}
    assert {"vhost": plan.off_without_url[0], "stapling": False} not in plan.vhost_changes  # it was off already
    again, rendered_again = plan_for(tree, state="enabled")
    assert (rendered_again, again.vhost_changes) == ({}, [])
    assert again.off_without_url == plan.off_without_url


def test_a_vhost_stapling_without_an_ocsp_url_is_switched_off_and_reported(tree):
    plan, rendered = plan_for(tree, state="enabled")
    (new_id,) = plan.off_without_url
    assert plan.vhost_changes == [{"vhost": new_id, "stapling": False}]
    apply(rendered)
    assert stapling_by_name(tree)["new.test"] is False


def test_leave_switches_it_on_like_the_others_with_a_warning(tree):
    switch_off_everywhere(tree)
    plan, rendered = plan_for(tree, state="enabled", without_ocsp_url="leave")
    assert plan.off_without_url == []
    assert any("new.test" in w and "no OCSP URL" in w and "AH02218" in w for w in plan.warnings)
    apply(rendered)
    assert all(stapling_by_name(tree).values())


def test_a_renewal_that_brings_an_ocsp_url_back_switches_the_vhost_on_at_the_next_run(tree):
    _plan, rendered = plan_for(tree, state="enabled")
    apply(rendered)
    ca = TestCA()
    (tree / "new.pem").write_bytes(pem(ca.leaf("new.test", ALPHA_URL)) + ca.pem)
    plan, rendered = plan_for(tree, state="enabled")
    assert plan.off_without_url == [] and [c["stapling"] for c in plan.vhost_changes] == [True]
    apply(rendered)
    assert all(stapling_by_name(tree).values())


def test_a_forced_url_makes_the_vhost_eligible(tree):
    sites = tree / "conf.d" / "sites.conf"
    sites.write_text(sites.read_text().replace("ServerName new.test",
                                               "ServerName new.test\n    SSLStaplingForceURL http://ocsp.own.test/"))
    plan, _rendered = plan_for(tree, state="enabled")
    assert plan.off_without_url == []


def test_a_must_staple_certificate_without_a_url_is_left_on_with_a_warning(tree):
    ca = TestCA()
    (tree / "new.pem").write_bytes(pem(ca.leaf("new.test", must_staple=True)) + ca.pem)
    plan, _rendered = plan_for(tree, state="enabled")
    assert plan.off_without_url == []
    assert any("new.test" in w and "Must-Staple but has no OCSP URL" in w for w in plan.warnings)


def test_a_selection_by_name_keeps_its_vhost_without_a_url_off(tree):
    switch_off_everywhere(tree)
    plan, rendered = plan_for(tree, state="enabled", vhosts=["new.test", "shop.test"])
    assert len(plan.off_without_url) == 1 and [c["stapling"] for c in plan.vhost_changes] == [True]
    apply(rendered)
    assert stapling_by_name(tree) == {"shop.test": True, "secure.test": False, "blog.test": False, "new.test": False}


def test_enabling_one_cas_sites_also_switches_off_a_vhost_stapling_without_a_url(tree):
    # a selection by OCSP host never holds a certificate without one: it goes off too, alone of the rest
    plan, rendered = plan_for(tree, state="enabled", ocsp_hosts=["ocsp.beta.test"])
    assert len(plan.off_without_url) == 1 and plan.off_without_url[0].startswith("new.test")
    assert plan.vhost_changes == [{"vhost": plan.off_without_url[0], "stapling": False}]
    apply(rendered)
    assert stapling_by_name(tree) == {"shop.test": True, "secure.test": True, "blog.test": True, "new.test": False}
    again, rendered_again = plan_for(tree, state="enabled", ocsp_hosts=["ocsp.beta.test"])
    assert (rendered_again, again.off_without_url) == ({}, [])


def test_a_run_scoped_by_vhost_names_touches_no_other_vhost(tree):
    plan, rendered = plan_for(tree, state="enabled", vhosts=["blog.test"])
    assert (rendered, plan.off_without_url, plan.vhost_changes) == ({}, [], [])


@pytest.mark.parametrize("state", ["disabled", None])
def test_runs_that_do_not_switch_stapling_on_leave_such_vhosts_alone(tree, state):
    plan, _rendered = plan_for(tree, state=state, force=True)
    assert plan.off_without_url == []


def test_the_check_of_the_plan_catches_a_vhost_that_would_still_staple(tree, monkeypatch):
    # a writer that forgets the vhost's own line: the re-read of the planned tree must refuse the plan
    original = stapling_plan.Writer.set_vhost

    def forgetful(self, section, name, args, reason):
        if "no OCSP URL" not in reason:
            original(self, section, name, args, reason)

    monkeypatch.setattr(stapling_plan.Writer, "set_vhost", forgetful)
    with pytest.raises(stapling_plan.StaplingError, match="would still have stapling on without an OCSP URL"):
        plan_for(tree, state="enabled")
