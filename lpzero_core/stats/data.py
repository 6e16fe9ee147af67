"""Locate, download and verify the benchmark data files.

A benchmark file is named by its path below a data root, as in ``"flexibert/BERT_benchmark.json"`` or
``"gpt2_wt103/config_3/j7/model_config.yaml"``. :func:`locate` returns the first existing copy under

1. ``$LPZERO_DATA_DIR``;
2. ``<repo>/data/``;
3. ``../shared/data`` beside the repository, then ``../shared/data`` relative to the current directory;
4. ``<repo>/data/downloads/`` (earlier downloads);

and otherwise downloads the file from its public source, pinned at a commit, into ``<repo>/data/downloads/``
(git-ignored; written to a temporary file and renamed into place). ``LPZERO_OFFLINE=1`` forbids the download.

``data_manifest.json`` (next to this module) lists every known file with its sha256, and per benchmark folder the
source repository, commit, folder in that repository and licence; ``path_overrides`` names the few files that
live elsewhere in the source repository (Archai's ``LICENSE`` is at its root), and ``file_sources`` the files that
come from another repository altogether (LPZero's copy of the FlexiBERT CSV with its ``lpzero`` column). Every copy,
found or downloaded, must match its sha256 before its path is returned: a mismatch is an :class:`LPZeroError`, never
a fallback to another copy, and a download that does not match is never written. A successful check is remembered per
(path, size, mtime), so repeated calls cost one ``stat``.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import urllib.request
from pathlib import Path, PurePosixPath

from lpzero_core.errors import LPZeroError
from lpzero_core.files import PROJECT_ROOT, atomic_write

DOWNLOAD_DIR = PROJECT_ROOT / "data" / "downloads"
RAW_URL = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"

_verified: dict[tuple[str, int, int], str] = {}


@functools.cache
def manifest() -> dict:
    """The parsed ``data_manifest.json``: ``{"sources": {folder: {...}}, "sha256": {relpath: hex}}``."""
    return json.loads((Path(__file__).with_name("data_manifest.json")).read_text())


def source_url(relpath: str) -> str:
    """Raw download URL of a benchmark file at its pinned commit."""
    relpath = _check_name(relpath)
    if relpath in manifest().get("file_sources", {}):
        src = manifest()["file_sources"][relpath]
        return RAW_URL.format(repo=src["repo"], commit=src["commit"], path=src["path"])
    folder, _, name = relpath.partition("/")
    src = manifest()["sources"][folder]
    path = src["path_overrides"].get(name, f"{src['path']}/{name}")
    return RAW_URL.format(repo=src["repo"], commit=src["commit"], path=path)


def search_roots() -> list[Path]:
    """Data roots searched by :func:`locate`, in order (the download folder last)."""
    roots = [Path(os.environ["LPZERO_DATA_DIR"])] if os.environ.get("LPZERO_DATA_DIR") else []
    roots += [PROJECT_ROOT / "data", PROJECT_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    roots.append(DOWNLOAD_DIR)
    return list(dict.fromkeys(r.resolve() for r in roots))


def locate(relpath: str, download: bool | None = None) -> Path:
    """Path of a verified copy of benchmark file ``relpath``, downloading it if no local copy exists.

    ``download=None`` means: download unless the environment sets ``LPZERO_OFFLINE=1``.
    Raises :class:`LPZeroError` for an unknown name, a checksum mismatch, or a file that is missing and
    cannot be downloaded.
    """
    relpath = _check_name(relpath)
    roots = search_roots()
    for root in roots:
        path = root / relpath
        if path.is_file():
            _verify(path, relpath)
            return path
    if download is None:
        download = os.environ.get("LPZERO_OFFLINE", "") in ("", "0")
    url = source_url(relpath)
    payload, reason = None, "downloads are disabled"
    if download:
        try:
            payload = _fetch(url)
        except OSError as err:
            reason = str(err)
    if payload is None:
        raise LPZeroError(
            f"{relpath}: not found (searched {', '.join(map(str, roots))}) and not downloaded from {url} ({reason}); "
            f"provide it by setting LPZERO_DATA_DIR to a folder holding {relpath}, by copying it to "
            f"{PROJECT_ROOT / 'data' / relpath}, or by allowing the download (network access, LPZERO_OFFLINE unset)"
        )
    digest = hashlib.sha256(payload).hexdigest()
    if digest != _expected(relpath):
        raise LPZeroError(
            f"{relpath}: download from {url} has checksum mismatch (sha256 {digest}, expected "
            f"{_expected(relpath)}), refusing to use it"
        )
    path = DOWNLOAD_DIR / relpath
    atomic_write(path, payload)
    return path


def verify_all(download: bool | None = None) -> dict[str, Path]:
    """Locate and verify every file of the manifest; returns ``{relpath: path}``."""
    return {relpath: locate(relpath, download) for relpath in manifest()["sha256"]}


def _check_name(relpath: str) -> str:
    """Normalised relative name of a known benchmark file, or an LPZeroError."""
    name = PurePosixPath(str(relpath).replace("\\", "/")).as_posix()
    if name not in manifest()["sha256"]:
        raise LPZeroError(
            f"{relpath!r} is not a known benchmark file "
            "(the known ones are listed in lpzero_core/stats/data_manifest.json)"
        )
    return name


def _expected(relpath: str) -> str:
    return manifest()["sha256"][relpath]


def _verify(path: Path, relpath: str) -> None:
    """Check ``path`` against the manifest sha256, once per (path, size, mtime)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if _verified.get(key) == relpath:
        return
    sha = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
    if sha.hexdigest() != _expected(relpath):
        raise LPZeroError(
            f"{path}: checksum mismatch for {relpath} (sha256 {sha.hexdigest()}, expected {_expected(relpath)}), "
            f"refusing to use it; replace or delete this copy"
        )
    _verified[key] = relpath


def _fetch(url: str) -> bytes:
    """Bytes at ``url``; network failures surface as OSError (urllib's URLError is one)."""
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()

