"""Markdown reports made of '## ' sections, each owned by the bench or test that measures it.

docs/benchmarks.md and docs/reliability.md are written this way: a run replaces only its own section, so the
figures of the other sections stay as their last run left them. Writes go through a temporary file and a rename,
under an exclusive lock, so two runs that finish at once cannot lose each other's section.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


def replace_section(content: str, section: str, text: str) -> str:
    """``content`` with the section headed ``section`` (a '## ' line) replaced by ``text``, or ``text`` appended."""
    if section in content:
        start = content.index(section)
        following = content.find("\n## ", start + len(section))
        rest = content[following + 1:] if following != -1 else ""
        return content[:start] + text.rstrip("\n") + "\n" + ("\n" + rest if rest else "")
    return content.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"


def write_section(path: Path, section: str, text: str, title: str = "# Benchmarks") -> None:
    """Replace ``section`` of the Markdown file ``path`` with ``text`` (the file starts as ``title`` if new)."""
    path = Path(path)
    directory = os.open(path.parent, os.O_RDONLY)  # the lock is on the directory: no lock file is left behind
    try:
        fcntl.flock(directory, fcntl.LOCK_EX)
        content = path.read_text(encoding="utf-8") if path.exists() else title + "\n"
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(replace_section(content, section, text), encoding="utf-8")
        os.replace(temporary, path)
    finally:
        os.close(directory)
