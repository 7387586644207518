"""What the benches share: the collection made importable, Ansible's environment for a lab, and the Markdown
file the figures go to, one section per bench."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "lab"))

from fleetlab.report_sections import write_section  # noqa: E402  (needs the lab path above)

REPO = Path(__file__).resolve().parent.parent
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
BENCHMARKS_MD = REPO / "docs" / "benchmarks.md"


def collections_dir(scratch: Path) -> Path:
    """A collections path in which fleet.stapling is this checkout."""
    collections = scratch / "collections"
    (collections / "ansible_collections" / "fleet").mkdir(parents=True)
    (collections / "ansible_collections" / "fleet" / "stapling").symlink_to(REPO)
    return collections


def ansible_env(collections: Path, lab_state: dict | None = None, **extra: str) -> dict:
    """Ansible's environment for runs against a lab: this checkout's collection, no colours or retry files, the
    interpreter found on the host. A local connection inherits this environment, so pyOpenSSL is hidden there
    too when the lab's SSH sessions hide it."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_NOCOLOR="1",
               ANSIBLE_RETRY_FILES_ENABLED="0", **extra)
    env.pop("ANSIBLE_PYTHON_INTERPRETER", None)
    if lab_state:
        hidden = Path(lab_state["ssh"]["config"]).parent / "minimal-host-python"
        if lab_state["ssh"].get("hides_pyopenssl") and hidden.is_dir():
            env["PYTHONPATH"] = str(hidden)
    return env


def add_fleet_options(parser: argparse.ArgumentParser) -> None:
    """The size of a fleet bench: ``--hosts`` lab hosts, Ansible's ``--forks``, and how many rounds."""
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--forks", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=1)


def add_write_option(parser: argparse.ArgumentParser) -> None:
    """``--write [FILE]``: replace the bench's section of a Markdown file (docs/benchmarks.md without FILE)."""
    parser.add_argument("--write", type=Path, nargs="?", const=BENCHMARKS_MD,
                        help="replace this bench's section of a Markdown file (default docs/benchmarks.md)")


def publish(text: str, section: str, path: Path | None) -> None:
    """Print a bench's figures, and put them in ``path`` as ``section`` when ``--write`` gave one."""
    print(text)
    if path:
        write_section(path, section, text)
