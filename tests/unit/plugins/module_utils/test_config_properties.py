# -*- coding: utf-8 -*-
# Copyright (c) fleet.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Properties of the reader and the planner over generated configs (hypothesis).

- Reading then rendering gives back every byte, and the reader sees the directives that were written.
- Planning a state, writing it and planning it again changes nothing the second time; enable -> disable ->
  enable comes back to the same bytes, and every further round as well.

Runs derandomized (the same examples on every run), so a failure in CI fails again on a laptop. hypothesis
needs Python 3.11 or later: in the old venvs of compat.sh these tests are skipped.
"""

from __future__ import annotations

import os
import tempfile

import pytest

from ansible_collections.fleet.stapling.plugins.module_utils import apache_edit, apache_write, stapling_facts
from ansible_collections.fleet.stapling.plugins.module_utils import stapling_plan
from ansible_collections.fleet.stapling.plugins.module_utils.apache_config import parse_config

from ansible_collections.fleet.stapling.tests.unit.plugins.module_utils.certificate_factory import TestCA, pem

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ansible_collections.fleet.stapling.tests.unit.plugins.module_utils.config_strategies import (  # noqa: E402
    config_files,
    stapling_trees,
)

# derandomize: the examples come from the test's own name, not from the clock; no database, so no state
# carries over between runs either. The counts keep both properties well under 20 s on one core.
REPEATABLE = dict(derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings(max_examples=200, **REPEATABLE)
@given(config_files())
def test_parse_then_render_gives_back_every_byte_and_every_directive(generated):
    data, keys = generated
    with tempfile.TemporaryDirectory(prefix="fleet-stapling-prop-") as root:
        main = os.path.join(root, "httpd.conf")
        with open(main, "wb") as stream:
            stream.write(data)
        config = parse_config(main, environment={})
        assert config.files[main].render() == data
        assert [d.key for d in config.directives] == keys
        assert apache_edit.render_edits(config, []) == {}
        for directive in config.directives:
            if directive.is_section:
                assert config.files[main].lines[directive.close].lstrip().lower().startswith(b"</" + directive.key.encode())


@pytest.fixture(scope="module")
def certificate_file():
    with tempfile.TemporaryDirectory(prefix="fleet-stapling-prop-cert-") as directory:
        ca = TestCA()
        path = os.path.join(directory, "site.pem")
        with open(path, "wb") as stream:
            stream.write(pem(ca.leaf("site.test", "http://ocsp.test/")) + ca.pem)
        yield path


class Tree(object):
    """A generated tree on disk, planned and written the way apache_stapling does it (no httpd here)."""

    def __init__(self, root, files):
        self.root = root
        self.main = os.path.join(root, "httpd.conf")
        for relative, data in files.items():
            path = os.path.join(root, relative)
            if not os.path.isdir(os.path.dirname(path)):
                os.makedirs(os.path.dirname(path))
            with open(path, "wb") as stream:
                stream.write(data)
        os.makedirs(os.path.join(root, "conf.d"))

    def parse(self, overrides=None):
        return parse_config(self.main, environment={}, overrides=overrides)

    def plan(self, desired):
        plan, rendered, _before, after = stapling_plan.plan_change(self.parse, desired)
        return plan, rendered, after

    def apply(self, desired):
        """Plan and write; returns the stapling state of every vhost afterwards, read back from disk."""
        plan, rendered, _after = self.plan(desired)
        for path, (old, new) in rendered.items():
            assert line_ends(new) <= line_ends(old) if old else line_ends(new) == {b"\n"}, path
        apache_write.apply_changes(rendered, validate=lambda: (True, ""), links=plan.links)
        facts = stapling_facts.stapling_facts(self.parse(), read_certificates=False)
        return dict((v["server_name"], v["stapling"]) for v in facts["vhosts"])

    def contents(self):
        found = {}
        for directory, _dirs, files in os.walk(self.root):
            for name in files:
                with open(os.path.join(directory, name), "rb") as stream:
                    found[os.path.relpath(os.path.join(directory, name), self.root)] = stream.read()
        return found


def line_ends(data):
    """The kinds of line ending a file uses: an edit brings in no kind the file did not have."""
    lines = data.split(b"\n")[:-1]
    return set(b"\r\n" if line.endswith(b"\r") else b"\n" for line in lines)


def desired(state, selection):
    return stapling_plan.Desired(state=state, vhosts=selection, force=True)


def selections(count):
    """No selection (every vhost), or some of the vhosts by name."""
    names = ["site%d.test" % number for number in range(count)]
    return st.one_of(st.none(), st.lists(st.sampled_from(names), min_size=1, max_size=count, unique=True))


@settings(max_examples=40, **REPEATABLE)
@given(st.data(), st.sampled_from(["enabled", "disabled"]))
def test_planning_the_same_state_twice_changes_nothing_the_second_time(certificate_file, data, state):
    files, count = data.draw(stapling_trees(certificate_file), label="tree")
    selection = data.draw(selections(count), label="selection")
    opposite = "disabled" if state == "enabled" else "enabled"
    with tempfile.TemporaryDirectory(prefix="fleet-stapling-prop-") as root:
        tree = Tree(root, files)
        tree.apply(desired(opposite, selection))  # so that there is something to change, whatever the tree said
        states = tree.apply(desired(state, selection))
        for name in selection or states:
            assert states[name] is (state == "enabled")
        plan, rendered, _after = tree.plan(desired(state, selection))
        assert rendered == {} and plan.links == {} and plan.vhost_changes == []


@settings(max_examples=25, **REPEATABLE)
@given(st.data())
def test_enable_disable_enable_converges_and_stays_put(certificate_file, data):
    files, count = data.draw(stapling_trees(certificate_file), label="tree")
    selection = data.draw(selections(count), label="selection")
    with tempfile.TemporaryDirectory(prefix="fleet-stapling-prop-") as root:
        tree = Tree(root, files)
        first = tree.apply(desired("enabled", selection))
        enabled_bytes = tree.contents()
        tree.apply(desired("disabled", selection))
        for name in selection or first:
            assert tree.apply(desired("disabled", selection))[name] is False
        again = tree.apply(desired("enabled", selection))
        assert again == first
        settled = tree.contents()
        tree.apply(desired("disabled", selection))
        tree.apply(desired("enabled", selection))
        assert tree.contents() == settled  # a further round adds nothing: no line piles up per flip
        # a round trip may leave a vhost its own line where the first enable had none, but makes no new file
        assert set(settled) == set(enabled_bytes)
