"""What the lab knows of a process it started: its command line, read from /proc (the lab runs on Linux)."""

from __future__ import annotations

from pathlib import Path


def command_line(pid: int | None) -> bytes | None:
    """The NUL-separated command line of a live process ``pid``; None when there is no such process."""
    if not pid:
        return None
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
