"""Bad variables given to the playbooks: refused by argument specs, on the controller, before any host is touched.

An operator in a hurry types ``-e stapling_force=maybe`` or a CA's host where a list is expected; the run must
stop with a message naming each bad variable before a task runs on any host: nothing read, written or reloaded.
"""

from __future__ import annotations

import re

import pytest

from conftest import HOST_NAMES, record_reliability
from playbook_runs import assert_untouched, fleet_state
from playbook_runs import operator  # noqa: F401  (a fixture, found by name)  # pylint: disable=unused-import

# Each wrong in its own way: a choice that does not exist, a bool that is not one, a number that is not one,
# a mapping where a list of host names is expected.
BAD_VARIABLES = {
    "stapling_engine": "nginx",
    "stapling_force": "maybe",
    "stapling_responder_timeout": "soon",
    "stapling_ocsp_hosts": {"ocsp.example.test": 80},
    "stapling_probe_ip_version": "ipv6",  # read by the playbooks, not by the role
}
PLAYBOOKS = ("disable_stapling", "enable_stapling", "auto_stapling", "audit_stapling", "probe_responders")
FINDINGS: dict[str, list[str]] = {}


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_bad_variables_are_refused_by_name_before_any_host_is_touched(fleet, operator, playbook):
    before = fleet_state(fleet)

    run = operator.run(playbook, **BAD_VARIABLES)

    assert run.returncode != 0, run.output
    assert "Traceback" not in run.output, run.output
    said = re.search(r"Validation of arguments failed:\n(.*?)\nOrigin:", run.output, re.DOTALL)
    assert said, run.output
    errors = said.group(1).splitlines()
    for variable in BAD_VARIABLES:
        assert any(re.search(rf"\b{variable}\b", error) for error in errors), f"{variable} not named in: {errors}"
    # on each host the check failed, on the controller, and nothing else ran there
    assert not re.search(r"^(ok|changed): \[web", run.output, re.MULTILINE), run.output
    assert sorted(re.findall(r"^fatal: \[(web\d)\]", run.output, re.MULTILINE)) == sorted(HOST_NAMES), run.output
    for name in HOST_NAMES:
        assert_untouched(fleet, name, before[name])
    FINDINGS[playbook] = errors


def test_bad_play_keywords_stop_the_run_before_it_starts(fleet, operator):
    before = fleet_state(fleet)

    run = operator.run("disable_stapling", stapling_max_fail_percentage="half")

    assert run.returncode != 0, run.output
    assert "Error processing keyword 'max_fail_percentage'" in run.output, run.output
    assert not re.search(r"^(ok|changed|fatal): \[", run.output, re.MULTILINE), run.output
    for name in HOST_NAMES:
        assert_untouched(fleet, name, before[name])


def teardown_module() -> None:
    if not FINDINGS:
        return
    lines = ["## Bad variables", "",
             "`tests/integration/pytest/test_bad_variables.py`: each playbook run with "
             + ", ".join(f"`{name}={value!r}`" for name, value in BAD_VARIABLES.items())
             + ". On every host the first task, run on the controller, refused them with the message below; nothing"
             " else ran on any host, and no byte, master pid or reload changed on any host.", ""]
    lines += [f"Refused by: {', '.join(f'`{playbook}.yml`' for playbook in FINDINGS)}. The message, for each:", ""]
    lines += [f"    {error}" for error in next(iter(FINDINGS.values()))]
    record_reliability(lines[0], "\n".join(lines) + "\n")
