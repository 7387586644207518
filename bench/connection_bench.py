#!/usr/bin/env python
"""What reaching the hosts over SSH costs the playbooks, and what pipelining saves.

Starts a lab, then runs read-only playbooks (``probe_responders`` and ``audit_stapling``, which is check mode)
and a disable/enable pair against every lab host, each with three transports:

- ``local``: a local connection with the same system Python, the baseline;
- ``ssh``: the lab inventory as it is (SSH with pipelining, interpreter discovery);
- ``ssh-no-pipelining``: SSH with ``ansible_ssh_pipelining=false`` (Ansible's default), which copies each
  module to the host and runs it in separate round trips.

Times are the best of ``--repeat`` runs, reported as ratios to the local run of the same playbook in the
same process, so that they compare across machines. Usage:

    .venv/bin/python bench/connection_bench.py [--hosts 3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import ANSIBLE_PLAYBOOK, REPO, ansible_env, collections_dir

sys.path.insert(0, str(REPO / "tests" / "lab"))

from fleetlab.testing import RunningLab  # noqa: E402

TRANSPORTS = {
    "local": {"ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3"},
    "ssh": {},
    "ssh-no-pipelining": {"ansible_ssh_pipelining": False},
}
# (name, extra vars): read-only runs first; each disable is undone by the enable after it.
RUNS = (
    ("probe_responders", {}),
    ("audit_stapling", {}),
    ("disable_stapling", {"stapling_ocsp_hosts": ["localhost"], "stapling_force": True}),
    ("enable_stapling", {"stapling_ocsp_hosts": ["localhost"]}),
)


def run_once(lab: RunningLab, env: dict, scratch: Path, playbook: str, extra_vars: dict) -> float:
    vars_file = scratch / "vars.json"
    vars_file.write_text(json.dumps(dict(extra_vars, stapling_report_dir=str(scratch / "reports"))))
    started = time.perf_counter()
    completed = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(lab.inventory), str(REPO / "playbooks" / f"{playbook}.yml"),
         "-e", f"@{vars_file}"], env=env, capture_output=True, text=True, timeout=900, check=False)
    elapsed = time.perf_counter() - started
    if completed.returncode != 0 and playbook != "audit_stapling":  # audit fails on drift by design
        raise SystemExit(f"{playbook} failed:\n{completed.stdout[-3000:]}{completed.stderr[-2000:]}")
    return elapsed


def measure(lab: RunningLab, env: dict, scratch: Path, repeat: int) -> dict:
    """Best time per (playbook, transport). The transports take turns, one full set of runs each per round,
    so that whatever else the machine is doing weighs on all three alike."""
    best = {}
    for _round in range(repeat):
        for transport, overrides in TRANSPORTS.items():
            for playbook, extra_vars in RUNS:
                seconds = run_once(lab, env, scratch, playbook, dict(extra_vars, **overrides))
                key = (playbook, transport)
                best[key] = min(best.get(key, seconds), seconds)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="fleet-stapling-connection-bench-"))
    lab = RunningLab(options.hosts, prefix="fleet-stapling-connection-bench-lab-")
    try:
        best = measure(lab, ansible_env(collections_dir(scratch), lab.state), scratch, options.repeat)
    finally:
        lab.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{options.hosts} hosts, best of {options.repeat}; ratio = seconds / seconds of the local run")
    print(f"{'playbook':<18}" + "".join(f"{transport:>24}" for transport in TRANSPORTS))
    for playbook, _extra_vars in RUNS:
        baseline = best[(playbook, "local")]
        cells = [f"{best[(playbook, t)]:7.2f}s x{best[(playbook, t)] / baseline:5.2f}" for t in TRANSPORTS]
        print(f"{playbook:<18}" + "".join(f"{cell:>24}" for cell in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
