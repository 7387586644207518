# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The Prometheus text format (prometheus_text): escaping, stable rendering, and reading a file back."""

from __future__ import annotations

import math

import pytest

from ansible_collections.fleet.stapling.plugins.module_utils.prometheus_text import (
    Family,
    PrometheusTextError,
    escape_label_value,
    format_value,
    parse,
    render,
)

AWKWARD = 'a "quoted" back\\slash and a\nnewline'


def gauge(name, samples, help_text="Some help."):
    family = Family(name, help_text)
    for labels, value in samples:
        family.add(labels, value)
    return family


def official_parse(text):
    """prometheus_client's own parser (the main venv has it; the compat venvs skip these checks)."""
    parser = pytest.importorskip("prometheus_client.parser")
    return {family.name: family for family in parser.text_string_to_metric_families(text)}


def test_label_values_escape_backslash_quote_and_newline():
    assert escape_label_value(AWKWARD) == 'a \\"quoted\\" back\\\\slash and a\\nnewline'


def test_prometheus_client_reads_escaped_label_values_back():
    text = render([gauge("demo_value", [((("vhost", AWKWARD), ("port", "443")), 1)])])
    sample = official_parse(text)["demo_value"].samples[0]
    assert sample.labels == {"vhost": AWKWARD, "port": "443"}
    assert sample.value == 1


def test_our_parser_reads_escaped_label_values_back():
    text = render([gauge("demo_value", [((("vhost", AWKWARD),), 2.5)])])
    families, problems = parse(text)
    assert problems == []
    assert families["demo_value"].samples == {("demo_value", (("vhost", AWKWARD),)): 2.5}


def test_every_family_has_help_and_type_and_no_sample_has_a_timestamp():
    text = render([gauge("b_metric", [((("x", "1"),), 3)]), gauge("a_metric", [((), 0.25)], "Help with \\ and\nmore")])
    lines = text.splitlines()
    assert lines[:3] == ["# HELP a_metric Help with \\\\ and\\nmore", "# TYPE a_metric gauge", "a_metric 0.25"]
    assert lines[3:] == ["# HELP b_metric Some help.", "# TYPE b_metric gauge", 'b_metric{x="1"} 3']
    assert text.endswith("\n")


def test_rendering_is_sorted_and_stable_whatever_the_input_order():
    samples = [((("host", name),), value) for name, value in (("c", 3), ("a", 1), ("b", 2))]
    first = render([gauge("z_metric", samples), gauge("m_metric", samples[::-1])])
    second = render([gauge("m_metric", samples[::-1]), gauge("z_metric", samples)])
    assert first == second
    assert [line.split('"')[1] for line in first.splitlines() if line.startswith("z_metric")] == ["a", "b", "c"]


def test_a_family_without_samples_is_left_out():
    assert render([Family("empty_metric", "Nothing yet.")]) == ""


@pytest.mark.parametrize("value, text", [
    (1, "1"), (0.0, "0"), (1764806400.0, "1764806400"), (0.041, "0.041"), (-12.5, "-12.5"),
    (float("nan"), "NaN"), (float("inf"), "+Inf"), (float("-inf"), "-Inf"),
])
def test_values_are_written_as_prometheus_reads_them(value, text):
    assert format_value(value) == text
    parsed = float(text)
    assert (math.isnan(parsed) and math.isnan(value)) or parsed == value


def test_a_file_reads_back_into_the_same_families():
    original = [gauge("fleet_demo", [((("a", "x"), ("b", 'y"z')), 1), ((("a", "w"), ("b", "")), 0)], 'Say "hi".')]
    text = render(original)
    families, problems = parse(text)
    assert problems == []
    assert families["fleet_demo"].help == 'Say "hi".'
    assert families["fleet_demo"].kind == "gauge"
    assert render(families.values()) == text


def test_unreadable_lines_are_reported_and_the_rest_is_kept():
    text = "\n".join([
        "# HELP good_metric Fine.", "# TYPE good_metric gauge", 'good_metric{a="1"} 1',
        'good_metric{a="2} 1',  # unterminated label value
        "good_metric{a=\"3\"} not-a-number",
        "# a plain comment",
        "9bad 1",
        'good_metric{a="4"} 4 1764806400000',  # a timestamp, which the file must not carry: dropped
    ]) + "\n"
    families, problems = parse(text)
    assert [problem.split(":")[0] for problem in problems] == ["line 4", "line 5", "line 7"]
    assert families["good_metric"].samples == {("good_metric", (("a", "1"),)): 1.0,
                                               ("good_metric", (("a", "4"),)): 4.0}
    assert "1764806400000" not in render(families.values())


def test_samples_of_a_histogram_stay_with_their_family():
    text = "\n".join(["# TYPE lat histogram", 'lat_bucket{le="1"} 2', "lat_sum 1.5", "lat_count 2"]) + "\n"
    families, problems = parse(text)
    assert problems == [] and list(families) == ["lat"]
    assert len(families["lat"].samples) == 3


def test_bad_names_are_refused_with_the_name():
    with pytest.raises(PrometheusTextError, match="not a valid metric name"):
        Family("1abc")
    with pytest.raises(PrometheusTextError, match="'__reserved' is not a valid label name"):
        Family("ok_metric").add((("__reserved", "x"),), 1)
