"""Foundation shared by every layer: the project root and atomic file writes.

Every file the project writes for later reading (caches, run folders, tables, figures, downloads) goes through
:func:`atomic_write`: a temporary file in the target folder, then a rename, so a reader sees the old file or the
whole new one, never a part, and an interrupted write leaves no temporary behind. The file gets the mode a plain
``open(path, "w")`` would give it (0666 less the umask, usually 0644), not the temporary file's 0600.

Only a regular file is ever replaced: a target that exists as anything else (a device such as ``/dev/null``, a FIFO,
a socket, a folder) or lies in a folder that cannot be written is refused (``LPZeroError``) before anything is
written, since the rename would otherwise put a regular file in its place. JSON read back by the project goes
through :func:`load_json`, which bounds the nesting depth (a hostile file cannot exhaust the stack).
"""
from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from pathlib import Path

from lpzero_core.errors import LPZeroError

#: the repository checkout (the folder holding ``lpzero_core/``); relative paths of the workbench resolve here
PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: deepest nesting of lists/objects :func:`load_json` accepts (the project's own files nest fewer than 10 levels)
MAX_JSON_DEPTH = 64

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))


def non_regular(path: str | Path) -> str | None:
    """What ``path`` is when it exists and is not a regular file (``"a FIFO"``, ``"a folder"``, …), else None.
    Symbolic links are followed: a link to a regular file is a regular file."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as error:
        return f"unreadable ({error.strerror})"
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def check_writable(path: str | Path) -> None:
    """Refuse (``LPZeroError``) a target that is not a regular file, or whose folder exists but cannot be written."""
    path = Path(path)
    kind = non_regular(path)
    if kind is not None:
        raise LPZeroError(f"{path} is {kind}, not a regular file; only regular files are written (choose another "
                          f"path)")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise LPZeroError(f"{path} lies under {folder}, which is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise LPZeroError(f"{path}: the folder {folder} is not writable")


def atomic_write(path: str | Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` through a temporary file in the same folder and a rename; the target must be
    a regular file or absent (:func:`check_writable`)."""
    path = Path(path)
    check_writable(path)
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
    if non_regular(path) is not None:  # became something else while we wrote: leave it as it is
        os.unlink(tmp.name)
        check_writable(path)
    os.replace(tmp.name, path)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) atomically."""
    atomic_write(path, text.encode())


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _depth(text: str) -> int:
    """Deepest nesting of brackets outside strings in JSON ``text``."""
    depth = deepest = 0
    for char in re.sub(r"[^\[\]{}]", "", _STRING.sub("", text)):
        depth += 1 if char in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def read_text(path: str | Path, what: str) -> str:
    """The UTF-8 text of the regular file ``path``; a missing, non-regular (a FIFO would block), unreadable or
    non-UTF-8 file is an ``LPZeroError`` naming ``what`` and the path."""
    path = Path(path)
    kind = non_regular(path)
    if kind is not None:
        raise LPZeroError(f"{what} {path} is {kind}, not a regular file")
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LPZeroError(f"no {what} at {path}") from None
    except UnicodeDecodeError as error:
        raise LPZeroError(f"{what} {path} is not UTF-8 text (byte {error.start}); damaged") from None
    except OSError as error:
        raise LPZeroError(f"{what} {path} is unreadable ({error.strerror})") from None


def load_json(text: str, what: str):
    """``json.loads`` of ``text`` with the nesting bounded by :data:`MAX_JSON_DEPTH`; deeper or invalid JSON is an
    ``LPZeroError`` naming ``what`` (a file or an argument)."""
    if _depth(text) > MAX_JSON_DEPTH:
        raise LPZeroError(f"{what} nests deeper than {MAX_JSON_DEPTH} levels; not a file of this project")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise LPZeroError(f"{what} is not valid JSON ({error})") from None
