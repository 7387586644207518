# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Switching a host between mod_ssl's and mod_md's stapling, and reading mod_md's store (no Apache needed)."""

from __future__ import annotations

import datetime
import json
import os

import pytest

from ansible_collections.fleet.stapling.plugins.module_utils import apache_write, md_engine, md_store, stapling_plan
from ansible_collections.fleet.stapling.plugins.module_utils.apache_config import parse_config

from ansible_collections.fleet.stapling.tests.unit.plugins.module_utils.certificate_factory import TestCA, pem

NOW = datetime.datetime(2026, 12, 2, 12, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture(autouse=True)
def children_can_enter_the_test_directories(monkeypatch):
    """pytest's base directory is root-only; the reachability rule has a test of its own below."""
    monkeypatch.setattr(md_engine, "_others_can_enter", lambda path: True)


def debian_host(tmp_path, must_staple=False):
    """Debian-like: mod_ssl stapling on, mod_md shipped in mods-available but not enabled."""
    ca = TestCA()
    leaf = ca.leaf("shop.test", "http://ocsp.alpha.test/", must_staple=must_staple)
    (tmp_path / "shop.pem").write_bytes(pem(leaf) + ca.pem)
    for directory in ("mods-available", "mods-enabled", "conf-available", "conf-enabled", "sites-enabled"):
        (tmp_path / directory).mkdir()
    (tmp_path / "mods-available" / "md.load").write_text("LoadModule md_module /usr/lib/apache2/modules/mod_md.so\n")
    (tmp_path / "apache2.conf").write_text(
        'ServerRoot "%s"\nLoadModule ssl_module mod_ssl.so\nLoadModule socache_shmcb_module mod_socache_shmcb.so\n'
        "IncludeOptional mods-enabled/*.load\nSSLStaplingCache shmcb:/run/apache2/ssl_stapling(128000)\n"
        "SSLUseStapling on\nIncludeOptional conf-enabled/*.conf\nIncludeOptional sites-enabled/*.conf\n" % tmp_path)
    (tmp_path / "sites-enabled" / "shop.conf").write_text(
        "<VirtualHost *:443>\n    ServerName shop.test\n    SSLEngine on\n    SSLUseStapling on\n"
        "    SSLCertificateFile %s/shop.pem\n</VirtualHost>\n" % tmp_path)
    return tmp_path, leaf


def plan(root, **wanted):
    def parse(overrides):
        return parse_config(str(root / "apache2.conf"), overrides=overrides)
    return stapling_plan.plan_change(parse, stapling_plan.Desired(**wanted))


def apply(root, planned, rendered):
    for path, (_old, new) in rendered.items():
        with open(path, "wb") as stream:
            stream.write(new)
    for link, target in planned.links.items():
        os.symlink(target, link)
    apache_write.make_dirs(planned.store_dirs)


def test_switching_to_mod_md_loads_it_the_debian_way_and_turns_mod_ssls_stapling_off(tmp_path):
    root, _leaf = debian_host(tmp_path)

    planned, rendered, _before, after = plan(root, state="enabled", engine="mod_md")

    assert planned.links == {str(root / "mods-enabled" / "md.load"): "../mods-available/md.load",
                             str(root / "conf-enabled" / "fleet-stapling.conf"): "../conf-available/fleet-stapling.conf"}
    assert planned.reload_twice is True
    settings = rendered[str(root / "conf-available" / "fleet-stapling.conf")][1].splitlines()[1:]
    assert settings == [b"MDStoreDir %s/md" % str(root).encode(), b"MDStapling on"]
    assert rendered[str(root / "apache2.conf")][1].count(b"SSLUseStapling off") == 1
    assert b"SSLUseStapling off" in rendered[str(root / "sites-enabled" / "shop.conf")][1]
    assert b"SSLStaplingCache" in rendered[str(root / "apache2.conf")][1]  # kept: removing it can crash httpd
    assert [v["stapling_engine"] for v in after["vhosts"]] == ["mod_md"]
    assert planned.vhost_changes == [{"vhost": after["vhosts"][0]["id"], "stapling": True, "engine": "mod_md"}]

    apply(root, planned, rendered)
    again, rendered_again, _before, _after = plan(root, state="enabled", engine="mod_md")
    assert (rendered_again, again.links, again.reload_twice, again.vhost_changes) == ({}, {}, False, [])

    back, rendered_back, _before, after_back = plan(root, state="enabled", engine="mod_ssl")
    assert back.reload_twice is False and back.links == {}
    assert [v["stapling_engine"] for v in after_back["vhosts"]] == ["mod_ssl"]
    assert b"MDStapling off" in rendered_back[str(root / "conf-enabled" / "fleet-stapling.conf")][1]  # via its link


def test_mod_md_staples_the_whole_host_so_a_selection_is_refused(tmp_path):
    root, _leaf = debian_host(tmp_path)
    with pytest.raises(md_engine.MdEngineError, match="whole host"):
        plan(root, state="enabled", engine="mod_md", ocsp_hosts=["ocsp.alpha.test"])


def write_store(store, leaf, status="good", until="Wed, 02 Dec 2026 18:00:00 GMT", errors=0, log=None):
    other = store / "ocsp" / "other"
    other.mkdir(parents=True)
    sha1 = leaf.fingerprint(md_store_hash()).hex()
    (other / ("ocsp-%s.json" % sha1)).write_text(json.dumps(
        {"response": "AA", "status": status, "valid": {"from": "Wed, 02 Dec 2026 10:00:00 GMT", "until": until}}))
    job = {"errors": errors, "last": {"detail": "contacting the responder"}}
    if log is not None:
        job["log"] = {"entries": [{"when": when, "type": kind} for when, kind in log]}
    (other / "job.json").write_text(json.dumps(job))
    return sha1


def md_store_hash():
    from cryptography.hazmat.primitives import hashes  # pylint: disable=import-outside-toplevel
    return hashes.SHA1()


def test_must_staple_vhosts_move_only_with_a_good_response_in_the_store(tmp_path):
    root, leaf = debian_host(tmp_path, must_staple=True)
    with pytest.raises(md_engine.MdEngineError, match="Must-Staple"):
        plan(root, state="enabled", engine="mod_md")
    planned, _rendered, _before, _after = plan(root, state="enabled", engine="mod_md", force=True)
    assert planned.reload_twice is True

    write_store(root / "md", leaf, until="Wed, 02 Dec 2099 18:00:00 GMT")
    planned, _rendered, _before, _after = plan(root, state="enabled", engine="mod_md")
    assert len(planned.vhost_changes) == 1


# mod_md's job log, newest first: renewals failing since 08:00, after one that worked at 06:00
FAILING_SINCE_EIGHT = [("Wed, 02 Dec 2026 11:00:00 GMT", "ocsp-error"), ("Wed, 02 Dec 2026 11:00:00 GMT", "starting"),
                       ("Wed, 02 Dec 2026 08:00:00 GMT", "ocsp-error"), ("Wed, 02 Dec 2026 08:00:00 GMT", "starting"),
                       ("Wed, 02 Dec 2026 06:00:00 GMT", "finished"), ("Wed, 02 Dec 2026 05:00:00 GMT", "ocsp-error")]


def test_the_store_says_what_mod_md_staples_and_when_renewals_may_work_again(tmp_path):
    _root, leaf = debian_host(tmp_path)
    sha1 = write_store(tmp_path / "store", leaf, until="Wed, 02 Dec 2026 18:00:00 GMT", errors=2,
                       log=FAILING_SINCE_EIGHT)
    responses, job = md_store.read_store(str(tmp_path / "store"))

    held = md_store.stored_response(sha1.upper(), responses, job, NOW)

    # failing for 4 hours at noon: as likely as not still failing at 16:00; the response lasts until 18:00
    assert held == {"status": "good", "valid_until": "2026-12-02T18:00:00Z", "seconds_left": 6 * 3600,
                    "usable": True, "renewal_errors": 2, "last_renewal": "contacting the responder",
                    "failing_since": "2026-12-02T08:00:00Z", "projected_recovery": "2026-12-02T16:00:00Z",
                    "at_risk": False}
    assert md_store.stored_response("00" * 20, responses, job, NOW) is None
    assert md_store.read_store(str(tmp_path / "nothing")) == ({}, {"last_run": None, "errors": 0, "last_detail": None,
                                                                   "next_run": None, "failing_since": None})


@pytest.mark.parametrize("until, errors, log, at_risk", [
    # failing since 08:00, so projected to 16:00: a response good until 15:00 runs out first
    ("Wed, 02 Dec 2026 15:00:00 GMT", 2, FAILING_SINCE_EIGHT, True),
    # the same response with renewals working is not at risk, however close its end
    ("Wed, 02 Dec 2026 12:30:00 GMT", 0, [("Wed, 02 Dec 2026 11:00:00 GMT", "finished")], False),
    # failing for a week: a response valid for three more days is still at risk
    ("Sat, 05 Dec 2026 12:00:00 GMT", 9, [("Wed, 25 Nov 2026 12:00:00 GMT", "ocsp-error")], True),
    # one failure a minute ago: a response valid for a day is not
    ("Thu, 03 Dec 2026 12:00:00 GMT", 1, [("Wed, 02 Dec 2026 11:59:00 GMT", "ocsp-error")], False),
    # no log: mod_md's next retry is the earliest a renewal can work; an expired response is at risk anyway
    ("Wed, 02 Dec 2026 11:00:00 GMT", 1, None, True),
])
def test_a_response_is_at_risk_when_it_runs_out_before_renewals_are_projected_to_work(
        tmp_path, until, errors, log, at_risk):
    _root, leaf = debian_host(tmp_path)
    sha1 = write_store(tmp_path / "store", leaf, until=until, errors=errors, log=log)
    responses, job = md_store.read_store(str(tmp_path / "store"))

    assert md_store.stored_response(sha1, responses, job, NOW)["at_risk"] is at_risk


def test_a_store_under_a_directory_the_children_cannot_enter_is_refused(tmp_path):
    with pytest.raises(md_engine.MdEngineError, match="cannot enter"):
        md_engine.check_store_reachable(str(tmp_path / "md"), child_user_can_enter=lambda path: False)
    # not only the nearest directory: any one above the store that shuts the children out
    with pytest.raises(md_engine.MdEngineError, match="under %s," % tmp_path.parent):
        md_engine.check_store_reachable(str(tmp_path / "a" / "md"),
                                        child_user_can_enter=lambda path: path != str(tmp_path.parent))
    md_engine.check_store_reachable(str(tmp_path / "md"), child_user_can_enter=lambda path: True)


def test_a_missing_store_is_made_root_s_and_open_to_the_children_whatever_the_umask(tmp_path):
    root, _leaf = debian_host(tmp_path)
    (root / "apache2.conf").write_text((root / "apache2.conf").read_text() + "MDStoreDir %s/var/lib/md\n" % root)

    planned, _rendered, _before, _after = plan(root, state="enabled", engine="mod_md")

    assert planned.store_dirs == [str(root / "var"), str(root / "var" / "lib"), str(root / "var" / "lib" / "md")]
    previous = os.umask(0o077)
    try:
        made = apache_write.make_dirs(planned.store_dirs)
    finally:
        os.umask(previous)
    assert made == planned.store_dirs
    assert [oct(os.stat(path).st_mode & 0o777) for path in made] == ["0o755"] * 3
    again, _rendered, _before, _after = plan(root, state="enabled", engine="mod_md")
    assert again.store_dirs == []


def test_undoing_a_run_removes_the_store_it_made_with_what_mod_md_put_there(tmp_path):
    made = apache_write.make_dirs([str(tmp_path / "md")])
    (tmp_path / "md" / "ocsp" / "other").mkdir(parents=True)
    (tmp_path / "md" / "ocsp" / "other" / "job.json").write_text("{}")
    (tmp_path / "kept").mkdir()

    restored, removed = apache_write.undo_records([{"created_dirs": made}], check_mode=True)
    assert (restored, removed) == ([], [str(tmp_path / "md")]) and (tmp_path / "md").is_dir()

    apache_write.undo_records([{"created_dirs": made}])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]


def switched_to_md(tmp_path):
    root, leaf = debian_host(tmp_path)
    planned, rendered, _before, _after = plan(root, state="enabled", engine="mod_md")
    apply(root, planned, rendered)
    return root, leaf


def test_disabling_leaves_mod_md_stapling_from_a_fresh_store_alone(tmp_path):
    root, leaf = switched_to_md(tmp_path)
    write_store(root / "md", leaf, until="Wed, 02 Dec 2099 18:00:00 GMT")

    planned, rendered, _before, after = plan(root, state="disabled")

    assert [entry["valid_until"] for entry in planned.kept_from_store] == ["2099-12-02T18:00:00Z"]
    assert planned.vhost_changes == [] and b"MDStapling off" not in b"".join(new for _old, new in rendered.values())
    assert [v["stapling_engine"] for v in after["vhosts"]] == ["mod_md"]

    asked, rendered, _before, after = plan(root, state="disabled", keep_stored_staples=False)
    assert asked.kept_from_store == [] and [v["stapling"] for v in after["vhosts"]] == [False]


def test_disabling_switches_mod_md_off_when_renewals_fail_and_the_response_runs_out_soon(tmp_path):
    root, leaf = switched_to_md(tmp_path)
    stamp = "%a, %d %b %Y %H:%M:%S GMT"
    now = md_store.utc_now()
    # failing for three hours, two hours left: renewals are projected to fail past the response's end
    write_store(root / "md", leaf, until=(now + datetime.timedelta(hours=2)).strftime(stamp), errors=4,
                log=[((now - datetime.timedelta(hours=3)).strftime(stamp), "ocsp-error")])

    planned, _rendered, _before, after = plan(root, state="disabled")

    assert planned.kept_from_store == [] and len(planned.vhost_changes) == 1
    assert [v["stapling"] for v in after["vhosts"]] == [False]


def test_a_vhost_without_a_responder_neither_blocks_nor_joins_what_is_kept(tmp_path):
    root, leaf = switched_to_md(tmp_path)
    write_store(root / "md", leaf, until="Wed, 02 Dec 2099 18:00:00 GMT")
    bare = TestCA().leaf("bare.test")  # no OCSP URL
    (root / "bare.pem").write_bytes(pem(bare))
    (root / "sites-enabled" / "bare.conf").write_text(
        "<VirtualHost *:443>\n    ServerName bare.test\n    SSLEngine on\n"
        "    SSLCertificateFile %s/bare.pem\n</VirtualHost>\n" % root)

    planned, _rendered, _before, _after = plan(root, state="disabled")

    assert [entry["vhost"].split()[0] for entry in planned.kept_from_store] == ["shop.test"]
    assert planned.vhost_changes == []


def rhel_host(tmp_path, with_md_library):
    tmp_path.chmod(0o755)
    modules = tmp_path / "modules"
    modules.mkdir()
    for name in ("mod_ssl.so", "mod_socache_shmcb.so") + (("mod_md.so",) if with_md_library else ()):
        (modules / name).write_bytes(b"")
    (tmp_path / "conf.modules.d").mkdir()
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.modules.d" / "00-ssl.conf").write_text(
        "LoadModule ssl_module modules/mod_ssl.so\nLoadModule socache_shmcb_module modules/mod_socache_shmcb.so\n")
    (tmp_path / "apache2.conf").write_text(  # the name plan() reads; the layout is RHEL's
        'ServerRoot "%s"\nInclude conf.modules.d/*.conf\nIncludeOptional conf.d/*.conf\n' % tmp_path)
    (tmp_path / "conf.d" / "ssl.conf").write_text("SSLStaplingCache shmcb:/run/httpd/s(128000)\nSSLUseStapling on\n")
    return tmp_path


def test_on_rhel_mod_md_is_loaded_from_conf_modules_d(tmp_path):
    root = rhel_host(tmp_path, with_md_library=True)
    planned, rendered, _before, after = plan(root, state="enabled", engine="mod_md")
    loader = rendered[str(root / "conf.modules.d" / "01-md.conf")]
    assert loader[0] is None and loader[1].splitlines()[1:] == [
        b"LoadModule md_module %s/modules/mod_md.so" % str(root).encode()]
    assert planned.reload_twice is True and after["server"]["md_loaded"] is True


def test_on_rhel_without_the_mod_md_package_the_message_says_what_to_install(tmp_path):
    root = rhel_host(tmp_path, with_md_library=False)
    with pytest.raises(md_engine.MdEngineError, match=r"dnf install mod_md"):
        plan(root, state="enabled", engine="mod_md")


def test_a_must_staple_vhost_gets_a_fetched_response_seeded_into_the_store(tmp_path):
    root, _leaf = debian_host(tmp_path, must_staple=True)
    config = parse_config(str(root / "apache2.conf"))
    facts = md_engine.stapling_facts.stapling_facts(config)
    desired = stapling_plan.Desired(state="enabled", engine="mod_md")
    fetched = []

    def fetch(vhost, now):
        fetched.append(vhost["id"])
        return b'{"status": "good"}', "2026-12-03T10:00:00Z"

    seeds = md_engine._seed_must_staple(facts, str(root / "md"), desired, NOW, fetch=fetch)  # pylint: disable=protected-access

    sha1 = facts["vhosts"][0]["certificate"]["sha1_fingerprint"]
    assert [(seed["file"], seed["valid_until"]) for seed in seeds] == [
        (str(root / "md" / "ocsp" / "other" / ("ocsp-%s.json" % sha1)), "2026-12-03T10:00:00Z")]
    assert fetched == [facts["vhosts"][0]["id"]]


@pytest.mark.parametrize("wanted", [
    {"state": "enabled", "engine": "mod_md"},
    {"state": "disabled"},
    {"state": "disabled", "keep_stored_staples": False},
    {"state": "enabled", "engine": "mod_ssl"},
])
def test_no_change_ever_takes_ssl_stapling_cache_away(tmp_path, wanted):
    """Removing SSLStaplingCache and reloading gracefully can crash httpd's parent, with or without mod_md: the
    directive survives every switch, there and back, even where nothing staples through mod_ssl any more."""
    root, _leaf = debian_host(tmp_path)
    for step in ({"state": "enabled", "engine": "mod_md"}, wanted):
        planned, rendered, _before, _after = plan(root, **step)
        apply(root, planned, rendered)
        assert "SSLStaplingCache shmcb:/run/apache2/ssl_stapling(128000)" in (root / "apache2.conf").read_text()
