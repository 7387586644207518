"""Running the collection's playbooks (or a test playbook) on the lab the way an operator does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


def run_playbook(fleet, playbook: str, hosts: list[str], extra_vars: dict, timeout: int = 600):
    """``ansible-playbook`` on the lab inventory, limited to ``hosts``; ``playbook`` is a path, or the name of
    one of the collection's playbooks/. Returns the CompletedProcess with stdout and stderr."""
    path = Path(playbook) if "/" in playbook else REPO_ROOT / "playbooks" / f"{playbook}.yml"
    return subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(fleet.lab.inventory),
         "--limit", ",".join(hosts), str(path), "-e", json.dumps(extra_vars)],
        env=fleet.env, capture_output=True, text=True, timeout=timeout, check=False)
