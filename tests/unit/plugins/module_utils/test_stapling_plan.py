# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Planning stapling changes on small config trees written for each test (no Apache needed)."""

from __future__ import annotations

import pytest

from ansible_collections.fleet.stapling.plugins.module_utils import planned_tree, stapling_facts, stapling_plan
from ansible_collections.fleet.stapling.plugins.module_utils.apache_config import parse_config

from ansible_collections.fleet.stapling.tests.unit.plugins.module_utils.certificate_factory import TestCA, pem

ALPHA_URL = "http://ocsp.alpha.test/"
BETA_URL = "http://ocsp.beta.test:8080/"


@pytest.fixture
def tree(tmp_path):
    """A RHEL-like tree: server-wide stapling in conf.d/ssl.conf, three SSL vhosts in conf.d/sites.conf."""
    ca = TestCA()
    certs = {
        "shop": ca.leaf("shop.test", ALPHA_URL),
        "secure": ca.leaf("secure.test", ALPHA_URL, must_staple=True),
        "blog": ca.leaf("blog.test", BETA_URL),
        "new": ca.leaf("new.test"),
    }
    for name, certificate in certs.items():
        (tmp_path / ("%s.pem" % name)).write_bytes(pem(certificate) + ca.pem)
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "httpd.conf").write_text(
        'ServerRoot "%s"\nLoadModule ssl_module modules/mod_ssl.so\n'
        "LoadModule socache_shmcb_module modules/mod_socache_shmcb.so\nIncludeOptional conf.d/*.conf\n" % tmp_path)
    (tmp_path / "conf.d" / "ssl.conf").write_text(
        "SSLSessionCache         shmcb:/run/httpd/sslcache(512000)\n"
        "SSLStaplingCache        shmcb:/run/httpd/ssl_stapling(128000)\n"
        "SSLUseStapling          on\n")
    sites = []
    for name in certs:
        sites.append("<VirtualHost *:443>\n    ServerName %s.test\n    SSLEngine on\n"
                     "    SSLCertificateFile %s/%s.pem\n</VirtualHost>\n" % (name, tmp_path, name))
    (tmp_path / "conf.d" / "sites.conf").write_text("".join(sites))
    return tmp_path


def plan_for(root, **wanted):
    def parse(overrides):
        return parse_config(str(root / "httpd.conf"), overrides=overrides)

    plan, rendered, _before, _after = stapling_plan.plan_change(parse, stapling_plan.Desired(**wanted))
    return plan, rendered


def apply(rendered):
    for path, (_old, new) in rendered.items():
        with open(path, "wb") as handle:
            handle.write(new)


def settings_lines(rendered, root):
    """The directive lines of the collection's own settings file, created by the plan (header left out)."""
    old, new = rendered[str(root / "conf.d" / "fleet-stapling.conf")]
    assert old is None and new.startswith(b"# ")
    return new.splitlines()[1:]


def changed_lines(rendered, path):
    old, new = rendered[str(path)]
    before, after = old.splitlines(), new.splitlines()
    return [line for line in after if line not in before], [line for line in before if line not in after]


def test_disabling_everything_flips_only_the_server_default(tree):
    plan, rendered = plan_for(tree, state="disabled", force=True)
    assert sorted(rendered) == [str(tree / "conf.d" / "ssl.conf")]
    added, removed = changed_lines(rendered, tree / "conf.d" / "ssl.conf")
    assert (added, removed) == ([b"SSLUseStapling          off"], [b"SSLUseStapling          on"])
    assert len(plan.vhost_changes) == 4


def test_second_plan_after_applying_changes_nothing(tree):
    _plan, rendered = plan_for(tree, state="disabled", force=True)
    apply(rendered)
    plan, rendered = plan_for(tree, state="disabled", force=True)
    assert rendered == {} and plan.vhost_changes == []


def test_must_staple_vhost_blocks_disabling_and_is_named(tree):
    with pytest.raises(stapling_plan.StaplingError, match=r"Must-Staple.*secure\.test"):
        plan_for(tree, state="disabled")


def test_selection_by_ocsp_host_inserts_an_override_in_that_vhost_only(tree):
    _plan, rendered = plan_for(tree, state="disabled", ocsp_hosts=["ocsp.beta.test"])
    sites = tree / "conf.d" / "sites.conf"
    added, removed = changed_lines(rendered, sites)
    assert (added, removed) == ([b"    SSLUseStapling off"], [])
    after = rendered[str(sites)][1].decode()
    blog_block = after.split("blog.test")[1].split("</VirtualHost>")[0]
    assert "SSLUseStapling off" in blog_block


def test_ocsp_host_with_port_matches_too(tree):
    plan, _rendered = plan_for(tree, state="disabled", ocsp_hosts=["ocsp.beta.test:8080"])
    assert [v["server_name"] for v in plan.selected] == ["blog.test"]


def test_selection_by_name_glob(tree):
    plan, _rendered = plan_for(tree, state="disabled", vhosts=["s*.test"], force=True)
    assert sorted(v["server_name"] for v in plan.selected) == ["secure.test", "shop.test"]


def test_selection_matching_nothing_warns_and_changes_nothing(tree):
    plan, rendered = plan_for(tree, state="disabled", vhosts=["nope.*"])
    assert rendered == {}
    assert "no SSL vhost matches" in plan.warnings[0]


def test_enabling_without_a_cache_derives_one_from_the_session_cache(tree):
    ssl_conf = tree / "conf.d" / "ssl.conf"
    ssl_conf.write_text("SSLSessionCache shmcb:/run/httpd/sslcache(512000)\n")
    plan, rendered = plan_for(tree, state="enabled", without_ocsp_url="leave")
    assert sorted(rendered) == [str(tree / "conf.d" / "fleet-stapling.conf")]
    assert settings_lines(rendered, tree) == [
        b"SSLUseStapling on", b"SSLStaplingCache shmcb:/run/httpd/ssl_stapling(128000)"]
    assert any("SSLStaplingCache" in warning for warning in plan.warnings)
    assert any("new.test" in warning and "no OCSP URL" in warning for warning in plan.warnings)


def test_derived_cache_follows_the_session_cache_and_grows_with_the_vhosts():
    assert stapling_plan.derive_cache("/etc/httpd", "dbm:/var/cache/ssl_scache", 10) == "dbm:/var/cache/ssl_stapling"
    assert stapling_plan.derive_cache("/etc/httpd", "shmcb:logs/ssl_scache(512000)", 5000) == \
        "shmcb:logs/ssl_stapling(10240000)"
    assert stapling_plan.derive_cache("/etc/httpd", None, 1) == "shmcb:/etc/httpd/logs/ssl_stapling(128000)"


def test_enabling_fails_when_the_cache_module_is_not_loaded(tree):
    httpd = tree / "httpd.conf"
    httpd.write_text(httpd.read_text().replace("LoadModule socache_shmcb_module", "#LoadModule socache_shmcb_module"))
    (tree / "conf.d" / "ssl.conf").write_text("SSLSessionCache shmcb:/run/httpd/sslcache(512000)\n")
    with pytest.raises(stapling_plan.StaplingError, match="mod_socache_shmcb"):
        plan_for(tree, state="enabled")


def test_typographic_quotes_in_a_stapling_directive_are_fixed_with_a_warning(tree):
    ssl_conf = tree / "conf.d" / "ssl.conf"
    ssl_conf.write_text(u"SSLStaplingCache \u201cshmcb:/run/httpd/ssl_stapling(128000)\u201c\nSSLUseStapling on\n",
                        encoding="utf-8")
    plan, rendered = plan_for(tree, state="enabled")
    assert rendered[str(ssl_conf)][1].startswith(b"SSLStaplingCache shmcb:/run/httpd/ssl_stapling(128000)\n")
    assert any("typographic" in warning for warning in plan.warnings)


def test_crlf_file_gets_crlf_lines(tree):
    sites = tree / "conf.d" / "sites.conf"
    sites.write_bytes(sites.read_bytes().replace(b"\n", b"\r\n"))
    _plan, rendered = plan_for(tree, state="disabled", ocsp_hosts=["ocsp.beta.test"])
    new = rendered[str(sites)][1]
    assert b"    SSLUseStapling off\r\n" in new
    assert new.count(b"\n") == new.count(b"\r\n")


CPANEL_BANNER = ("# This configuration file was built from the following templates:\n"
                 "#   /var/cpanel/templates/apache2_4/main.default\n")


def cpanel_shaped(tree, banner):
    httpd = tree / "httpd.conf"
    httpd.write_text((CPANEL_BANNER if banner else "") + httpd.read_text()
                     + "SSLUseStapling on\nInclude includes/pre_virtualhost_global.conf\n")
    (tree / "includes").mkdir()
    (tree / "includes" / "pre_virtualhost_global.conf").write_text("# cPanel include\n")
    (tree / "conf.d" / "ssl.conf").write_text("SSLSessionCache shmcb:/run/httpd/sslcache(512000)\n")
    return httpd


def test_a_config_generated_by_cpanel_is_overridden_from_its_global_include(tree):
    httpd = cpanel_shaped(tree, banner=True)
    _plan, rendered = plan_for(tree, state="disabled", force=True)
    assert str(httpd) not in rendered
    assert rendered[str(tree / "includes" / "pre_virtualhost_global.conf")][1].endswith(b"SSLUseStapling off\n")


def test_a_cpanel_shaped_config_without_cpanel_is_edited_like_any_other(tree):
    httpd = cpanel_shaped(tree, banner=False)
    _plan, rendered = plan_for(tree, state="disabled", force=True)
    assert sorted(rendered) == [str(httpd)]
    assert changed_lines(rendered, httpd) == ([b"SSLUseStapling off"], [b"SSLUseStapling on"])


def test_a_change_that_a_later_protected_line_would_undo_is_refused(tree):
    httpd = tree / "httpd.conf"
    httpd.write_text(httpd.read_text() + "SSLUseStapling on\n")
    ssl_conf = tree / "conf.d" / "ssl.conf"
    ssl_conf.write_text("SSLSessionCache shmcb:/run/httpd/sslcache(512000)\nSSLUseStapling on\n")
    with pytest.raises(stapling_plan.StaplingError, match="would still have stapling on"):
        plan_for(tree, state="disabled", force=True, protected_files=[str(httpd)])


def test_post_config_problem_stapling_without_cache_is_caught(tree):
    (tree / "conf.d" / "ssl.conf").write_text("SSLUseStapling on\n")
    config = parse_config(str(tree / "httpd.conf"))
    problems = planned_tree.post_config_problems(config, stapling_facts.stapling_facts(config, False))
    assert any("AH01958" in problem for problem in problems)


def test_tunables_are_set_at_server_scope(tree):
    _plan, rendered = plan_for(tree, tunables={"responder_timeout": 3, "fake_try_later": False})
    assert settings_lines(rendered, tree) == [b"SSLStaplingResponderTimeout 3", b"SSLStaplingFakeTryLater off"]


def test_quotes_fixed_and_value_changed_on_the_same_line_make_one_edit(tree):
    ssl_conf = tree / "conf.d" / "ssl.conf"
    ssl_conf.write_text(u"SSLStaplingCache shmcb:/run/httpd/ssl_stapling(128000)\nSSLUseStapling \u201con\u201d\n",
                        encoding="utf-8")
    _plan, rendered = plan_for(tree, state="disabled", force=True)
    assert rendered[str(ssl_conf)][1] == b"SSLStaplingCache shmcb:/run/httpd/ssl_stapling(128000)\nSSLUseStapling off\n"


def with_mod_md(tree, text):
    httpd = tree / "httpd.conf"
    httpd.write_text(httpd.read_text() + "LoadModule md_module modules/mod_md.so\n" + text)


def test_mod_md_stapling_is_switched_off_with_the_rest(tree):
    with_mod_md(tree, "MDStapling on\n<MDomain blog.test>\n  MDStapling on\n</MDomain>\n")
    _plan, rendered = plan_for(tree, state="disabled", force=True)
    added, removed = changed_lines(rendered, tree / "httpd.conf")
    assert sorted(added) == [b"  MDStapling off", b"MDStapling off"]
    assert sorted(removed) == [b"  MDStapling on", b"MDStapling on"]


def test_mod_md_staples_even_when_sslusestapling_is_off(tree):
    with_mod_md(tree, "MDStapling on\n")
    (tree / "conf.d" / "ssl.conf").write_text("SSLStaplingCache shmcb:/run/s(128000)\nSSLUseStapling off\n")
    config = parse_config(str(tree / "httpd.conf"))
    engines = set(v["stapling_engine"] for v in stapling_facts.stapling_facts(config)["vhosts"])
    assert engines == {"mod_md"}
    without_others = tree / "httpd.conf"
    without_others.write_text(without_others.read_text() + "MDStapleOthers off\n")
    config = parse_config(str(without_others))
    assert set(v["stapling_engine"] for v in stapling_facts.stapling_facts(config)["vhosts"]) == {"none"}


def test_selective_disable_reaches_the_vhosts_mdomain_section(tree):
    with_mod_md(tree, "<MDomain blog.test>\n  MDStapling on\n</MDomain>\n")
    _plan, rendered = plan_for(tree, state="disabled", ocsp_hosts=["ocsp.beta.test"])
    added, _removed = changed_lines(rendered, tree / "httpd.conf")
    assert added == [b"  MDStapling off"]


def test_selective_disable_of_a_vhost_stapled_through_staple_others_is_refused(tree):
    with_mod_md(tree, "MDStapling on\n")
    with pytest.raises(stapling_plan.StaplingError, match="MDStapleOthers"):
        plan_for(tree, state="disabled", ocsp_hosts=["ocsp.beta.test"])


def test_ca_certificate_file_and_cache_options_land_at_server_scope(tree):
    _plan, rendered = plan_for(tree, state="enabled", cache="shmcb:/run/httpd/big(1024000)",
                               ca_certificate_file="/etc/pki/tls/certs/bundle.pem")
    added, removed = changed_lines(rendered, tree / "conf.d" / "ssl.conf")
    # the existing cache line is changed where it is; the new directive goes to the collection's own file
    assert added == [b"SSLStaplingCache        shmcb:/run/httpd/big(1024000)"]
    assert removed == [b"SSLStaplingCache        shmcb:/run/httpd/ssl_stapling(128000)"]
    assert settings_lines(rendered, tree) == [b"SSLCACertificateFile /etc/pki/tls/certs/bundle.pem"]


def debian_tree(tmp_path):
    """A Debian-like tree: stapling never set up, one SSL vhost, a2enconf directories."""
    ca = TestCA()
    (tmp_path / "shop.pem").write_bytes(pem(ca.leaf("shop.test", ALPHA_URL)) + ca.pem)
    for directory in ("conf-available", "conf-enabled", "sites-enabled"):
        (tmp_path / directory).mkdir()
    (tmp_path / "apache2.conf").write_text(
        'ServerRoot "%s"\nLoadModule ssl_module mod_ssl.so\nLoadModule socache_shmcb_module mod_socache_shmcb.so\n'
        "SSLSessionCache shmcb:/run/apache2/ssl_scache(512000)\n"
        "IncludeOptional conf-enabled/*.conf\nIncludeOptional sites-enabled/*.conf\n" % tmp_path)
    (tmp_path / "sites-enabled" / "shop.conf").write_text(
        "<VirtualHost *:443>\n    ServerName shop.test\n    SSLEngine on\n"
        "    SSLCertificateFile %s/shop.pem\n</VirtualHost>\n" % tmp_path)
    return tmp_path


def test_on_debian_the_settings_file_and_its_link_are_one_plan(tmp_path):
    root = debian_tree(tmp_path)

    def parse(overrides):
        return parse_config(str(root / "apache2.conf"), overrides=overrides)

    plan, rendered, _before, after = stapling_plan.plan_change(parse, stapling_plan.Desired(state="enabled"))
    available = str(root / "conf-available" / "fleet-stapling.conf")
    assert sorted(rendered) == [available]
    assert plan.links == {str(root / "conf-enabled" / "fleet-stapling.conf"): "../conf-available/fleet-stapling.conf"}
    # the plan was verified with the link in place: the vhost staples in the planned tree
    assert [v["stapling"] for v in after["vhosts"]] == [True]
    assert len(plan.vhost_changes) == 1

    apply(rendered)
    for link, target in plan.links.items():
        (root / "conf-enabled" / "fleet-stapling.conf").symlink_to(target)
    again, rendered_again, _before, _after = stapling_plan.plan_change(parse, stapling_plan.Desired(state="enabled"))
    assert (rendered_again, again.links, again.vhost_changes) == ({}, {}, [])


def test_server_file_receives_new_server_scope_directives(tree):
    (tree / "conf.d" / "ssl.conf").write_text("SSLSessionCache shmcb:/run/httpd/sslcache(512000)\n")
    target = tree / "conf.d" / "zz-stapling.conf"
    target.write_text("# stapling settings\n")
    _plan, rendered = plan_for(tree, state="enabled", server_file=str(target), without_ocsp_url="leave")
    assert sorted(rendered) == [str(target)]
    assert rendered[str(target)][1].splitlines()[1:] == [
        b"SSLUseStapling on", b"SSLStaplingCache shmcb:/run/httpd/ssl_stapling(128000)"]


def test_enabling_leaves_a_stapling_mod_md_setup_alone(tree):
    with_mod_md(tree, "MDStapling on\n<MDomain blog.test>\n  MDStapling on\n</MDomain>\n")
    (tree / "conf.d" / "ssl.conf").write_text("SSLStaplingCache shmcb:/run/s(128000)\nSSLUseStapling off\n")
    plan, rendered = plan_for(tree, state="enabled")
    assert str(tree / "httpd.conf") not in rendered  # no MD line touched
    assert plan.vhost_changes == []  # mod_md already staples every vhost


def cpanel_inline_tree(tmp_path):
    """A config cPanel generated: banner, vhosts inline, each naming its userdata directory in a commented Include."""
    ca = TestCA()
    (tmp_path / "shop.pem").write_bytes(pem(ca.leaf("shop.test", ALPHA_URL)) + ca.pem)
    (tmp_path / "includes").mkdir()
    (tmp_path / "includes" / "pre_virtualhost_global.conf").write_text("# editable\n")
    (tmp_path / "httpd.conf").write_text(
        CPANEL_BANNER + 'ServerRoot "%s"\nLoadModule ssl_module mod_ssl.so\n'
        "LoadModule socache_shmcb_module mod_socache_shmcb.so\nSSLStaplingCache shmcb:/run/s(128000)\n"
        "SSLUseStapling on\nInclude includes/pre_virtualhost_global.conf\n"
        "<VirtualHost *:443>\n    ServerName shop.test\n    SSLEngine on\n    SSLCertificateFile %s/shop.pem\n"
        '    # Include "%s/userdata/ssl/2_4/owner/shop.test/*.conf"\n</VirtualHost>\n' % (tmp_path, tmp_path, tmp_path))
    return tmp_path


def test_a_generated_cpanel_vhost_is_changed_through_userdata_and_cpanels_rebuild(tmp_path):
    root = cpanel_inline_tree(tmp_path)
    scripts = root / "cpanel" / "scripts"
    scripts.mkdir(parents=True)
    (scripts / "rebuildhttpdconf").write_text("#!/bin/sh\n")
    (scripts / "rebuildhttpdconf").chmod(0o755)

    plan, rendered = plan_for(root, state="disabled", vhosts=["shop.test"], cpanel_root=str(root / "cpanel"))

    userdata = str(root / "userdata" / "ssl" / "2_4" / "owner" / "shop.test" / "fleet_stapling.conf")
    assert sorted(rendered) == [userdata]  # httpd.conf is cPanel's to write
    assert rendered[userdata][1].splitlines()[1:] == [b"SSLUseStapling off"]
    assert plan.rebuild_command == [str(scripts / "rebuildhttpdconf")]
    # checked against httpd.conf as the rebuild will write it: the Include switched on
    assert list(plan.regenerated) == [str(root / "httpd.conf")]
    assert b'    Include "%s/userdata/ssl/2_4/owner/shop.test/*.conf"\n' % str(root).encode() in \
        plan.regenerated[str(root / "httpd.conf")]


def test_a_generated_cpanel_vhost_without_cpanels_rebuild_is_refused_with_the_reason(tmp_path):
    root = cpanel_inline_tree(tmp_path)
    with pytest.raises(stapling_plan.StaplingError, match="rebuildhttpdconf"):
        plan_for(root, state="disabled", vhosts=["shop.test"], cpanel_root=str(root / "no-cpanel"))


def test_a_cpanel_shaped_vhost_without_cpanel_is_edited_in_httpd_conf(tmp_path):
    root = cpanel_inline_tree(tmp_path)
    httpd = root / "httpd.conf"
    httpd.write_text(httpd.read_text().replace(CPANEL_BANNER, ""))
    plan, rendered = plan_for(root, state="disabled", vhosts=["shop.test"], cpanel_root=str(root / "no-cpanel"))
    assert sorted(rendered) == [str(httpd)] and plan.regenerated == {}
    assert changed_lines(rendered, httpd) == ([b"    SSLUseStapling off"], [])
