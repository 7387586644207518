"""What a test compares of a lab host's ServerRoot before and after a run."""

from __future__ import annotations

import os
from pathlib import Path


def snapshot(server_root: Path) -> dict[str, tuple]:
    """Every entry of a ServerRoot but Apache's logs and run dirs: ("file", bytes, mode), ("link", target), ("dir",)."""
    entries = {}
    for directory, dirs, files in os.walk(server_root):
        here = Path(directory)
        if here == server_root:
            dirs[:] = [d for d in dirs if d not in ("logs", "run")]
        for name in dirs + files:
            path = here / name
            relative = str(path.relative_to(server_root))
            if path.is_symlink():
                entries[relative] = ("link", os.readlink(path))
            elif path.is_dir():
                entries[relative] = ("dir",)
            else:
                entries[relative] = ("file", path.read_bytes(), path.stat().st_mode)
    return entries
