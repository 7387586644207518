"""Bad variables given to the playbooks: refused by the role's argument specs before any host is touched.

An operator in a hurry types ``-e stapling_force=maybe`` or a CA's host where a list is expected; the run must
stop with a message naming each bad variable, and no host may have been read for a change, written or reloaded.
"""

from __future__ import annotations

import pytest

from conftest import HOST_NAMES, record_reliability
from playbook_runs import assert_report_consistent, assert_untouched, fleet_state
from playbook_runs import operator  # noqa: F401  (a fixture, found by name)  # pylint: disable=unused-import

# Each wrong in its own way: a choice that does not exist, a bool that is not one, a number that is not one,
# a mapping where a list of host names is expected.
BAD_VARIABLES = {
    "stapling_engine": "nginx",
    "stapling_force": "maybe",
    "stapling_responder_timeout": "soon",
    "stapling_ocsp_hosts": {"ocsp.example.test": 80},
}
PLAYBOOKS = ("disable_stapling", "enable_stapling", "auto_stapling")
# What a module task prints when it runs on a host: none of it may appear.
MODULE_TASKS = ("Switch stapling", "Reload", "apache_stapling")
FINDINGS: dict[str, list[str]] = {}


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_bad_variables_are_refused_by_name_before_any_host_is_touched(fleet, operator, playbook):
    before = fleet_state(fleet)

    run = operator.run(playbook, **BAD_VARIABLES)

    assert run.returncode != 0, run.output
    assert "Traceback" not in run.output, run.output
    rows = assert_report_consistent(run, playbook)
    for name in HOST_NAMES:
        message = rows[name]["message"]
        assert rows[name]["status"] == "failed", rows[name]
        assert "argument" in message.lower(), message
        for variable in BAD_VARIABLES:
            assert variable in message, f"{name}: {variable} not named in: {message}"
        assert_untouched(fleet, name, before[name])
    changed_lines = [line for line in run.output.splitlines() if line.startswith("changed: [web")]
    assert changed_lines == [], changed_lines
    FINDINGS[playbook] = [line for line in rows["web1"]["message"].splitlines() if line.strip()]


def teardown_module() -> None:
    if not FINDINGS:
        return
    lines = ["## Bad variables", "",
             "`tests/integration/pytest/test_bad_variables.py`: each playbook run with "
             + ", ".join(f"`{name}={value!r}`" for name, value in BAD_VARIABLES.items())
             + ". Every host failed before any module ran; no byte, master pid or reload changed on any host.", ""]
    for playbook, message in FINDINGS.items():
        lines += [f"- `{playbook}.yml`: " + " ".join(message)[:400]]
    record_reliability(lines[0], "\n".join(lines) + "\n")
