"""Foundation shared by every layer: the project root and atomic file writes.

Every file the project writes for later reading (caches, run folders, tables, figures, downloads) goes through
:func:`atomic_write`: a temporary file in the target folder, then a rename, so a reader sees the old file or the
whole new one, never a part, and an interrupted write leaves no temporary behind. The file gets the mode a plain
``open(path, "w")`` would give it (0666 less the umask, usually 0644), not the temporary file's 0600.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

#: the repository checkout (the folder holding ``lpzero_core/``); relative paths of the workbench resolve here
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def atomic_write(path: str | Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    umask = os.umask(0)
    os.umask(umask)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        try:
            tmp.write(payload)
            os.fchmod(tmp.fileno(), 0o666 & ~umask)
        except BaseException:
            os.unlink(tmp.name)
            raise
    os.replace(tmp.name, path)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) atomically."""
    atomic_write(path, text.encode())
