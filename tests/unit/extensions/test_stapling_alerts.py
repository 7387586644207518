"""The Prometheus alerting rules (extensions/prometheus/stapling_alerts.yml) against the metrics we write.

promtool is not part of the toolchain, so this checks what can be checked without it: the file's structure as
Prometheus loads it, that every metric an expression names is one fleet.stapling writes, that every label an
expression or annotation uses exists there, and the contract the event-driven rulebook relies on (the alert
StaplingResponderDown with an ocsp_host label).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.fleet.stapling.plugins.module_utils.stapling_metrics import FAMILIES

RULES_FILE = Path(__file__).resolve().parents[3] / "extensions" / "prometheus" / "stapling_alerts.yml"
# Labels Prometheus itself puts on every scraped sample.
TARGET_LABELS = {"instance", "job"}
METRIC = re.compile(r"\bfleet_stapling_[a-z0-9_]+\b")
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
GROUPING = re.compile(r"\b(?:by|on|without|ignoring)\s*\(([^)]*)\)")
MATCHER = re.compile(r"\{([^}]*)\}")
LEADING_AGGREGATION = re.compile(r"^\s*\(?\s*[a-z_]+\s+by\s*\(([^)]*)\)")
LABEL_REFERENCE = re.compile(r"\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)")


def load_rules() -> list[dict]:
    document = yaml.safe_load(RULES_FILE.read_text())
    assert list(document) == ["groups"]
    rules = []
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["name"]
        rules.extend(group["rules"])
    return rules


RULES = load_rules()


def labels_of(metric: str) -> set[str]:
    return set(FAMILIES[metric][1]) | TARGET_LABELS


def output_labels(expression: str) -> set[str]:
    """The labels an alert carries: the grouping of a leading aggregation, else the first metric's labels."""
    aggregation = LEADING_AGGREGATION.match(expression)
    if aggregation:
        return {label.strip() for label in aggregation.group(1).split(",") if label.strip()}
    return labels_of(METRIC.search(expression).group())


def test_the_rulebook_contract_holds():
    down = [rule for rule in RULES if rule.get("alert") == "StaplingResponderDown"]
    assert len(down) == 1
    assert "fleet_stapling_responder_healthy" in down[0]["expr"]
    assert {"ocsp_host", "instance", "family"} <= output_labels(down[0]["expr"])
    assert down[0]["for"] == "5m"


def test_there_are_staleness_and_vhost_alerts():
    expressions = {rule["alert"]: rule["expr"] for rule in RULES}
    assert any("time() - fleet_stapling_last_run_timestamp_seconds" in expr for expr in expressions.values())
    assert any("fleet_stapling_vhost_staple_served" in expr for expr in expressions.values())


@pytest.mark.parametrize("rule", RULES, ids=[rule["alert"] for rule in RULES])
def test_each_rule_is_well_formed(rule):
    assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
    assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"])
    assert rule["labels"]["severity"] in ("critical", "warning", "info")
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    if "for" in rule:
        assert DURATION.match(rule["for"]), rule["for"]
    expression = rule["expr"]
    depth = 0
    for char in expression:
        depth += {"(": 1, ")": -1}.get(char, 0)
        assert depth >= 0, "a closing parenthesis too many"
    assert depth == 0, "unbalanced parentheses"


@pytest.mark.parametrize("rule", RULES, ids=[rule["alert"] for rule in RULES])
def test_each_rule_names_only_metrics_and_labels_we_write(rule):
    expression = rule["expr"]
    metrics = set(METRIC.findall(expression))
    assert metrics and metrics <= set(FAMILIES), metrics - set(FAMILIES)
    known_labels = set().union(*(labels_of(metric) for metric in metrics))
    for grouping in GROUPING.findall(expression):
        used = {label.strip() for label in grouping.split(",") if label.strip()}
        assert used <= known_labels, used - known_labels
    for matchers in MATCHER.findall(expression):
        used = {matcher.split("=")[0].rstrip("!~ ").strip() for matcher in matchers.split(",") if matcher.strip()}
        assert used <= known_labels, used - known_labels
    carried = output_labels(expression)
    for text in rule["annotations"].values():
        used = set(LABEL_REFERENCE.findall(text))
        assert used <= carried, f"annotations use {used - carried}, which the alert does not carry"
