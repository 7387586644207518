# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The node_exporter textfile (stapling_metrics): results to samples, merging runs of each kind, the file itself.

The result shapes are those of ocsp_probe's and apache_stapling_log's RETURN. Files are read back with
prometheus_client's parser where it is installed (the main venv), and with our own reader everywhere.
"""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.fleet.stapling.plugins.module_utils import stapling_metrics
from ansible_collections.fleet.stapling.plugins.module_utils.prometheus_text import parse
from ansible_collections.fleet.stapling.plugins.module_utils.stapling_metrics import FAMILIES, MetricsError, build

NOW = 1764806400.0  # 2025-12-04T00:00:00Z
ALPHA = "http://ocsp.alpha.example:8080/"
BETA = "http://OCSP.Beta.example/"


def probe_entry(family, healthy, latency=0.05, answered=True):
    return {"family": family, "healthy": healthy, "latency": latency,
            "http": {"status": 200} if answered else None, "error_class": None if healthy else "timeout"}


def responder(url, *probes):
    return {"url": url, "issuer": "CN=Some CA", "healthy": all(p["healthy"] is not False for p in probes),
            "probes": list(probes)}


def staple(server_name, url, status="good", next_update="2025-12-04T06:00:00Z", expected=True, port=443,
           address="127.0.0.1"):
    stapled = status in ("good", "bad")
    return {"address": address, "port": port, "server_name": server_name, "stapling_expected": expected,
            "stapled": stapled, "status": status, "certificate": {"ocsp_url": url},
            "ocsp": {"next_update": next_update} if stapled else None}


def probe_result(responders=(), staples=(), **called):
    result = {"responders": list(responders), "stapled": list(staples), "changed": False}
    if called:
        result["invocation"] = {"module_args": dict({"ask_responders": True, "stapled": True,
                                                     "stapled_check": "staple"}, **called)}
    return result


def log_result(**counts):
    return {"summary": {"recent_counts": counts, "responder_errors_recent": bool(counts)}, "changed": False}


def values(text):
    """{metric name: {frozenset of labels: value}} read with prometheus_client's parser, else with ours."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        families, problems = parse(text)
        assert problems == []
        return {name: {frozenset(labels): value for (_sample, labels), value in family.samples.items()}
                for name, family in families.items()}
    return {family.name: {frozenset(sample.labels.items()): sample.value for sample in family.samples}
            for family in text_string_to_metric_families(text)}


def labels(**pairs):
    return frozenset(pairs.items())


PROBE = probe_result(
    [responder(ALPHA, probe_entry("4", True, 0.041), probe_entry("6", None, None, answered=False)),
     responder(BETA, probe_entry("4", False, 5.0, answered=False), probe_entry("6", True, 0.2))],
    [staple("www.alpha.example", ALPHA), staple("www.beta.example", BETA, status="not_stapled"),
     staple("new.example", None, status="not_stapled", expected=False)])


# ---------------------------------------------------------------------------------------------- results -> samples


def test_a_probe_play_writes_every_family_of_the_contract():
    found = values(build(None, "probe", True, NOW, PROBE, log_result(AH01941=3, AH02218=1)).after)
    assert found["fleet_stapling_responder_healthy"] == {
        labels(ocsp_host="ocsp.alpha.example", responder=ALPHA, family="ipv4"): 1,
        labels(ocsp_host="ocsp.beta.example", responder=BETA, family="ipv4"): 0,
        labels(ocsp_host="ocsp.beta.example", responder=BETA, family="ipv6"): 1,
    }
    assert found["fleet_stapling_responder_latency_seconds"] == {
        labels(ocsp_host="ocsp.alpha.example", responder=ALPHA, family="ipv4"): 0.041,
        labels(ocsp_host="ocsp.beta.example", responder=BETA, family="ipv6"): 0.2,
    }
    assert found["fleet_stapling_vhost_staple_served"] == {
        labels(vhost="www.alpha.example", port="443", ocsp_host="ocsp.alpha.example"): 1,
        labels(vhost="www.beta.example", port="443", ocsp_host="ocsp.beta.example"): 0,
        labels(vhost="new.example", port="443", ocsp_host=""): 0,
    }
    assert found["fleet_stapling_vhost_staple_expected"][labels(vhost="new.example", port="443", ocsp_host="")] == 0
    assert found["fleet_stapling_vhost_staple_next_update_seconds"] == {
        labels(vhost="www.alpha.example", port="443", ocsp_host="ocsp.alpha.example"): 6 * 3600}
    assert found["fleet_stapling_apache_log_errors_recent"] == {labels(code="AH01941"): 3, labels(code="AH02218"): 1}
    assert found["fleet_stapling_last_run_timestamp_seconds"] == {labels(play="probe"): NOW}
    assert found["fleet_stapling_last_run_success"] == {labels(play="probe"): 1}


def test_every_sample_carries_its_family_s_labels_in_order():
    families, problems = parse(build(None, "probe", True, NOW, PROBE, log_result(AH01941=3)).after)
    assert problems == [] and set(families) == set(FAMILIES)
    for name, family in families.items():
        for (_sample_name, sample_labels), _value in family.samples.items():
            assert tuple(label for label, _label_value in sample_labels) == FAMILIES[name][1]


def test_a_vhost_reached_over_two_addresses_is_one_series_with_the_worse_answer():
    result = probe_result(staples=[staple("www.example", ALPHA, next_update="2025-12-04T02:00:00Z"),
                                   staple("www.example", ALPHA, status="bad", address="::1",
                                          next_update="2025-12-04T01:00:00Z")])
    found = values(build(None, "probe", True, NOW, result).after)
    key = labels(vhost="www.example", port="443", ocsp_host="ocsp.alpha.example")
    assert found["fleet_stapling_vhost_staple_served"] == {key: 0}
    assert found["fleet_stapling_vhost_staple_next_update_seconds"] == {key: 3600}


def test_a_url_shared_by_two_issuers_is_one_series_with_the_worst_verdict_and_slowest_answer():
    result = probe_result([responder(ALPHA, probe_entry("4", True, 0.1)), responder(ALPHA, probe_entry("4", False, 0.9))])
    found = values(build(None, "probe", True, NOW, result).after)
    key = labels(ocsp_host="ocsp.alpha.example", responder=ALPHA, family="ipv4")
    assert found["fleet_stapling_responder_healthy"] == {key: 0}
    assert found["fleet_stapling_responder_latency_seconds"] == {key: 0.9}


def test_handshake_only_entries_say_nothing_about_staples():
    entry = dict(staple("www.example", ALPHA, status="not_checked"), stapled=None)
    found = values(build(None, "probe", True, NOW, probe_result(staples=[entry])).after)
    assert "fleet_stapling_vhost_staple_served" not in found


def test_a_stale_staple_counts_down_below_zero():
    result = probe_result(staples=[staple("www.example", ALPHA, status="bad", next_update="2025-12-03T23:00:00Z")])
    found = values(build(None, "probe", True, NOW, result).after)
    assert list(found["fleet_stapling_vhost_staple_next_update_seconds"].values()) == [-3600]


def test_a_next_update_that_is_no_time_is_left_out_with_a_warning():
    outcome = build(None, "probe", True, NOW, probe_result(staples=[staple("www.example", ALPHA, next_update="soon")]))
    assert "fleet_stapling_vhost_staple_next_update_seconds" not in outcome.after
    assert any("nextUpdate 'soon'" in warning for warning in outcome.warnings)


def test_a_failed_run_is_recorded_as_such():
    found = values(build(None, "change", False, NOW).after)
    assert found["fleet_stapling_last_run_success"] == {labels(play="change"): 0}


def test_an_unknown_play_is_refused():
    with pytest.raises(MetricsError, match="play must be one of info, probe, change"):
        build(None, "audit", True, NOW)


@pytest.mark.parametrize("url, host", [
    ("http://OCSP.Example.COM:8080/path", "ocsp.example.com"), ("http://[2001:db8::1]/", "2001:db8::1"),
    (None, ""), ("", ""), ("http://[broken/", ""),
])
def test_the_ocsp_host_label_is_the_lowercased_host_name(url, host):
    assert stapling_metrics.ocsp_host(url) == host


# ---------------------------------------------------------------------------------------------- merging runs


def test_a_change_play_keeps_the_responder_samples_of_the_probe_play():
    after_probe = build(None, "probe", True, NOW, PROBE, log_result(AH01941=3)).after
    # the staple check after a change: ask_responders false, so its empty responders list measured nothing
    verify = probe_result(staples=[staple("www.alpha.example", ALPHA, status="not_stapled", expected=False)])
    outcome = build(after_probe, "change", True, NOW + 60, verify, measured_parts=["stapled"])
    found = values(outcome.after)
    before = values(after_probe)
    for name in ("fleet_stapling_responder_healthy", "fleet_stapling_responder_latency_seconds",
                 "fleet_stapling_apache_log_errors_recent"):
        assert found[name] == before[name]
    assert found["fleet_stapling_vhost_staple_served"] == {
        labels(vhost="www.alpha.example", port="443", ocsp_host="ocsp.alpha.example"): 0}
    assert found["fleet_stapling_last_run_timestamp_seconds"] == {labels(play="probe"): NOW,
                                                                  labels(play="change"): NOW + 60}
    assert outcome.parts == ["run", "stapled"]
    assert "fleet_stapling_responder_healthy" in outcome.kept


def test_a_probe_play_drops_what_it_no_longer_finds():
    first = build(None, "probe", True, NOW, PROBE, log_result(AH01941=3)).after
    fewer = probe_result([responder(BETA, probe_entry("6", True, 0.2))], [staple("www.beta.example", BETA)])
    found = values(build(first, "probe", True, NOW + 60, fewer, log_result()).after)
    assert set(found["fleet_stapling_responder_healthy"]) == {
        labels(ocsp_host="ocsp.beta.example", responder=BETA, family="ipv6")}
    assert list(found["fleet_stapling_vhost_staple_served"]) == [
        labels(vhost="www.beta.example", port="443", ocsp_host="ocsp.beta.example")]
    assert "fleet_stapling_apache_log_errors_recent" not in found
    assert found["fleet_stapling_last_run_timestamp_seconds"] == {labels(play="probe"): NOW + 60}


def test_an_info_play_touches_only_its_own_run_samples():
    first = build(None, "probe", True, NOW, PROBE, log_result(AH01941=3)).after
    outcome = build(first, "info", True, NOW + 5)
    first_values, found = values(first), values(outcome.after)
    assert found.pop("fleet_stapling_last_run_timestamp_seconds") == {labels(play="probe"): NOW,
                                                                      labels(play="info"): NOW + 5}
    assert found.pop("fleet_stapling_last_run_success") == {labels(play="probe"): 1, labels(play="info"): 1}
    first_values.pop("fleet_stapling_last_run_timestamp_seconds")
    first_values.pop("fleet_stapling_last_run_success")
    assert found == first_values


def test_a_result_that_carries_its_invocation_says_what_was_measured():
    after_probe = build(None, "probe", True, NOW, PROBE).after
    verify = probe_result(staples=[staple("www.alpha.example", ALPHA)], ask_responders=False)
    outcome = build(after_probe, "change", True, NOW + 60, verify)
    assert outcome.parts == ["run", "stapled"]
    assert values(outcome.after)["fleet_stapling_responder_healthy"] == values(after_probe)[
        "fleet_stapling_responder_healthy"]


def test_an_empty_list_that_was_measured_removes_the_old_samples():
    after_probe = build(None, "probe", True, NOW, PROBE).after
    # every certificate of the host lost its OCSP URL: no responder is left to ask
    outcome = build(after_probe, "probe", True, NOW + 60, probe_result(staples=[staple("www.example", None)]))
    assert "fleet_stapling_responder_healthy" not in values(outcome.after)


def test_a_probe_without_staple_check_leaves_the_vhost_samples():
    first = build(None, "probe", True, NOW, PROBE).after
    responders_only = probe_result([responder(ALPHA, probe_entry("4", False, 5.0, answered=False))], stapled=False)
    found = values(build(first, "change", True, NOW + 1, responders_only).after)
    assert found["fleet_stapling_vhost_staple_served"] == values(first)["fleet_stapling_vhost_staple_served"]
    assert found["fleet_stapling_responder_healthy"] == {
        labels(ocsp_host="ocsp.alpha.example", responder=ALPHA, family="ipv4"): 0}


@pytest.mark.parametrize("result", [
    {"failed": True, "msg": "cannot read the configuration"},
    {"skipped": True, "changed": False},
])
def test_a_probe_result_without_lists_replaces_nothing(result):
    first = build(None, "probe", True, NOW, PROBE).after
    outcome = build(first, "probe", False, NOW + 1, result)
    assert outcome.parts == ["run"]
    assert values(outcome.after)["fleet_stapling_responder_healthy"] == values(first)["fleet_stapling_responder_healthy"]


def test_a_failed_log_read_removes_the_old_counts_with_a_warning():
    first = build(None, "probe", True, NOW, PROBE, log_result(AH01941=3)).after
    outcome = build(first, "probe", True, NOW + 1, PROBE, {"failed": True, "msg": "permission denied"})
    assert "fleet_stapling_apache_log_errors_recent" not in outcome.after
    assert any("permission denied" in warning for warning in outcome.warnings)


def test_families_of_other_writers_and_versions_are_kept():
    existing = ("# HELP fleet_stapling_future_metric From a newer collection.\n"
                "# TYPE fleet_stapling_future_metric gauge\n" 'fleet_stapling_future_metric{x="1"} 7\n')
    outcome = build(existing, "info", True, NOW)
    assert values(outcome.after)["fleet_stapling_future_metric"] == {labels(x="1"): 7}
    assert outcome.kept == ["fleet_stapling_future_metric"]


def test_unreadable_lines_of_the_old_file_are_dropped_with_a_warning():
    existing = build(None, "probe", True, NOW, PROBE).after + 'fleet_stapling_responder_healthy{broken 1\n'
    outcome = build(existing, "info", True, NOW + 1)
    assert outcome.warnings and "line" in outcome.warnings[0] and "dropped" in outcome.warnings[0]
    assert "broken" not in outcome.after
    assert values(outcome.after)["fleet_stapling_responder_healthy"] == values(existing.rsplit("f", 1)[0])[
        "fleet_stapling_responder_healthy"]


def test_the_same_measurements_at_the_same_time_give_the_same_bytes():
    first = build(None, "probe", True, NOW, PROBE, log_result(AH01941=3))
    again = build(first.after, "probe", True, NOW, PROBE, log_result(AH01941=3))
    assert first.changed
    assert not again.changed and again.after == first.after


def test_a_later_run_always_changes_the_file():
    first = build(None, "info", True, NOW).after
    assert build(first, "info", True, NOW + 1).changed


# ---------------------------------------------------------------------------------------------- the file


@pytest.fixture
def tight_umask():
    old = os.umask(0o077)
    yield
    os.umask(old)


def test_the_directory_is_made_readable_for_node_exporter(tmp_path, tight_umask):
    directory = str(tmp_path / "textfile")
    assert stapling_metrics.directory_missing(directory)
    stapling_metrics.make_directory(directory)
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o755
    assert not stapling_metrics.directory_missing(directory)


def test_a_file_where_the_directory_should_be_is_refused(tmp_path):
    (tmp_path / "textfile").write_text("")
    with pytest.raises(MetricsError, match="exists and is not a directory"):
        stapling_metrics.directory_missing(str(tmp_path / "textfile"))


def test_the_file_is_replaced_whole_with_mode_0644_and_no_temporary_file_left(tmp_path, tight_umask):
    path = tmp_path / stapling_metrics.FILE_NAME
    path.write_text("old\n")
    os.chmod(str(path), 0o600)
    old_inode = os.stat(str(path)).st_ino
    stapling_metrics.write_textfile(str(path), "new\n")
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o644
    assert os.stat(str(path)).st_ino != old_inode, "a rename, not a rewrite in place"
    assert os.listdir(str(tmp_path)) == [stapling_metrics.FILE_NAME]


def test_a_missing_file_reads_as_none(tmp_path):
    assert stapling_metrics.read_textfile(str(tmp_path / "absent.prom")) is None


def test_an_unwritable_directory_is_an_error_for_the_operator(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    os.chmod(str(tmp_path), 0o500)
    try:
        with pytest.raises(MetricsError, match="cannot write"):
            stapling_metrics.write_textfile(str(tmp_path / stapling_metrics.FILE_NAME), "x\n")
    finally:
        os.chmod(str(tmp_path), 0o700)
