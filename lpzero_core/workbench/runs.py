"""One owner of a search run directory: what it holds, and when a run there is reused, resumed, or refused.

A run directory holds the files of exactly one run, all written here (``gp.search`` writes nothing itself)::

    history.csv      every candidate in step order (``gp.HISTORY_FIELDS``), deterministic
    timings.csv      wall seconds per candidate (step, seconds)
    checkpoint.json  {"run": identity, "state": gp.SearchState}: every ``checkpoint_every`` iterations and at the end
    best.json        the best genotype, its search fitness and the fitness metric
    summary.json     proxy, formula, ρ/τ on the search and held-out splits, rejections, evaluations, wall time,
                     seed, plus the identity (benchmark, cache, config)

A run's **identity** is its benchmark, its cache (:func:`cache_identity`) and its GP settings. History and timings
rows are appended at each checkpoint, before ``checkpoint.json``, so ``history.csv`` always holds at least the rows
the checkpoint counts (``state.step``); rows past it (a kill between the two writes) are dropped on resume, where
the resumed run computes them again, bit for bit. ``summary.json`` is written last: a run is finished when it is
there. The rules of :func:`search_run`, in order:

1. a finished run of the same identity is reused as it is;
2. ``resume``: continue from ``checkpoint.json``, refused when there is none, when it records another identity, or
   when ``history.csv`` holds fewer rows than the checkpoint counts (rows were lost: the history would not be the
   run's);
3. otherwise the directory must hold no run file: another run's files (or an unfinished run of this identity) are
   refused, unless ``force``, which deletes them first.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lpzero_core.errors import LPZeroError
from lpzero_core.files import atomic_write_text, check_writable, load_json, non_regular, read_text
from lpzero_core.search import gp, metrics
from lpzero_core.stats.cache import StatsCache

RUN_FILES = ("history.csv", "timings.csv", "checkpoint.json", "best.json", "summary.json")
TIMING_FIELDS = ("step", "seconds")
TABLES = {"history.csv": gp.HISTORY_FIELDS, "timings.csv": TIMING_FIELDS}
LOCK = ".lock"


def cache_identity(cache: StatsCache) -> str:
    """Manifest key plus a hash of the architectures present: two caches with one identity give one search."""
    blob = json.dumps([cache.manifest["key"], cache.manifest["arch_keys"], cache.manifest["search_ids"]])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_identity(cache: StatsCache, config: gp.GPConfig) -> dict:
    """What makes two runs the same run: benchmark, cache identity and GP settings (plain JSON)."""
    return {"benchmark": cache.name, "cache": cache_identity(cache), "config": gp.config_json(config)}


def read_json(path: Path, what: str) -> dict:
    """A JSON object from ``path``; a missing, unreadable or damaged file is an ``LPZeroError`` naming ``what``."""
    text = read_text(path, what)
    try:
        data = load_json(text, f"{what} {path}")
    except LPZeroError as error:
        raise LPZeroError(f"{error}: damaged") from None
    if not isinstance(data, dict):
        raise LPZeroError(f"{what} {path} is damaged (not a JSON object)")
    return data


@dataclass
class Run:
    """A search run directory and its summary (``None`` while unfinished); ``reused``: found finished, not run."""

    path: Path
    summary: dict | None
    reused: bool = False


class Digest:
    """Row count and running SHA-256 of a run table (each row hashed as the JSON list of its fields' text, as the
    CSV holds it): what a checkpoint and a summary record of ``history.csv`` and ``timings.csv``."""

    def __init__(self, fields, rows=()):
        self.fields, self.rows, self.hash = fields, 0, hashlib.sha256()
        self.add(rows)

    def add(self, rows) -> None:
        for row in rows:
            self.hash.update(json.dumps(["" if row[f] is None else str(row[f]) for f in self.fields]).encode())
            self.rows += 1

    def record(self, hashed: bool = True) -> dict:
        return {"rows": self.rows, "sha256": self.hash.hexdigest()} if hashed else {"rows": self.rows}


class RunDirectory(gp.Observer):
    """The observer that writes a run directory as ``gp.search`` reports (rows buffered until each checkpoint);
    ``kept`` holds the rows already in the tables when a run resumes (their digests continue from them)."""

    def __init__(self, path: Path, identity: dict, kept: dict[str, list[dict]] | None = None):
        self.path, self.identity = Path(path), identity
        self.rows, self.times = [], []
        self.digests = {name: Digest(fields, (kept or {}).get(name, ())) for name, fields in TABLES.items()}

    def evaluated(self, step: int, phase: str, evaluation: gp.Evaluation, seconds: float) -> None:
        self.rows.append(gp.history_row(step, phase, evaluation))
        self.times.append({"step": step, "seconds": f"{seconds:.6f}"})

    def checkpoint(self, state: gp.SearchState) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        for name, rows in (("history.csv", self.rows), ("timings.csv", self.times)):
            path = self.path / name
            check_writable(path)
            new = not path.exists()
            with path.open("a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=TABLES[name])
                if new:
                    writer.writeheader()
                writer.writerows(rows)
            self.digests[name].add(rows)
        self.rows, self.times = [], []
        atomic_write_text(self.path / "checkpoint.json", json.dumps({"run": self.identity, "state": state.to_json(),
                                                                     "files": self.files(timings_hashed=False)}))

    def files(self, timings_hashed: bool = True) -> dict:
        """Row count and hash of each table as written so far. A checkpoint records the timings' row count only:
        their seconds differ between a run and its resumed twin, whose checkpoints must be byte-identical."""
        return {name: digest.record(hashed=timings_hashed or name != "timings.csv")
                for name, digest in self.digests.items()}


def _table(path: Path, counted: int | None = None) -> list[dict]:
    """The rows of a run table (``history.csv`` or ``timings.csv``); a wrong header or, among the first ``counted``
    rows (all by default; rows past a checkpoint may be a killed append), a row with too few or too many fields is
    an ``LPZeroError`` naming the file and the line."""
    if not path.exists():
        return []
    fields = TABLES[path.name]
    reader = csv.DictReader(io.StringIO(read_text(path, "run table"), newline=""))
    if reader.fieldnames is not None and tuple(reader.fieldnames) != fields:
        raise LPZeroError(f"{path}: header {','.join(reader.fieldnames)!r} is not {','.join(fields)!r}; damaged "
                          f"(start over with --force)")
    rows = list(reader)
    for number, row in enumerate(rows[:counted], start=2):
        if None in row or None in row.values():
            raise LPZeroError(f"{path}: line {number} does not have the {len(fields)} fields "
                              f"{','.join(fields)}; damaged (start over with --force)")
    return rows


def _write_csv(path: Path, rows: list[dict], fields) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\r\n")  # csv's default, as appended rows
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def _check_files(path: Path, recorded: dict, rows: dict[str, list[dict]], what: str) -> str | None:
    """What differs between the tables' ``rows`` (their first counted rows) and the digests ``recorded`` by a
    checkpoint or summary, as a phrase; None when they agree (or nothing was recorded: an older run)."""
    for name, fields in TABLES.items():
        expected = recorded.get(name)
        if expected is None:
            continue
        have = rows[name]
        if len(have) < expected["rows"]:
            return f"{name} holds {len(have)} rows but the {what} counts {expected['rows']} (rows were lost)"
        recorded_hash = expected.get("sha256")  # a checkpoint records no hash of the timings
        if recorded_hash and Digest(fields, have[: expected["rows"]]).record()["sha256"] != recorded_hash:
            return f"{name} differs from what the {what} recorded (edited since)"
    return None


def _differences(recorded: dict, identity: dict) -> str:
    keys = [k for k in ("benchmark", "cache") if recorded.get(k) != identity[k]]
    config = recorded.get("config") or {}
    keys += [f"--{k.replace('_', '-')}" for k, v in identity["config"].items() if config.get(k) != v]
    return ", ".join(keys) or "format"


class _State(BaseModel):
    """The shape of ``gp.SearchState.to_json()`` (checked before a resume trusts it)."""

    model_config = ConfigDict(strict=True, extra="forbid")
    step: Annotated[int, Field(ge=0)]
    iteration: Annotated[int, Field(ge=0)]
    population: Annotated[list[Annotated[tuple[str, float], Field(strict=False)]], Field(min_length=1)]
    rng_state: dict | None
    seen: list[str]
    rejected: dict[str, Annotated[int, Field(ge=0)]]
    evaluations: Annotated[int, Field(ge=0)]


class _Digest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    rows: Annotated[int, Field(ge=0)]
    sha256: Annotated[str, Field(pattern="^[0-9a-f]{64}$")] | None = None


class _Checkpoint(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    run: dict
    state: _State
    files: dict[Literal[tuple(TABLES)], _Digest] = {}


class _Summary(BaseModel):
    """The fields of ``summary.json`` that reuse reads (others are reported only)."""

    model_config = ConfigDict(strict=True, extra="allow")
    proxy: str
    search: dict
    heldout: dict
    evaluations: Annotated[int, Field(ge=0)]
    wall_seconds: float
    rejected: dict
    files: dict[Literal[tuple(TABLES)], _Digest] = {}
    best_sha256: Annotated[str, Field(pattern="^[0-9a-f]{64}$")] | None = None


def _validated(schema, data: dict, path: Path) -> BaseModel:
    try:
        return schema.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(map(str, first["loc"])) or "top level"
        raise LPZeroError(f"{path} is damaged: field {field!r} {first['msg'].removeprefix('Input ').lower()} "
                          f"(got {str(first.get('input'))[:40]!r}); start over with --force") from None


def _finished(path: Path, identity: dict) -> tuple[dict | None, str | None]:
    """(summary, problem) of a finished run of this identity in ``path``: (None, None) when there is none;
    ``problem`` says what of its files no longer matches what the summary recorded (rows lost, edited, best.json
    missing or changed), or that the summary itself is unreadable (summary None)."""
    if not (path / "summary.json").exists():
        return None, None
    try:
        summary = read_json(path / "summary.json", "run summary")
    except LPZeroError as error:
        return None, f"its summary is unreadable ({error})"
    if {k: summary.get(k) for k in identity} != identity:
        return None, None
    checked = _validated(_Summary, summary, path / "summary.json")
    best = path / "best.json"
    if non_regular(best) is not None or not best.exists():
        return summary, "best.json is missing"
    if checked.best_sha256 is not None and hashlib.sha256(best.read_bytes()).hexdigest() != checked.best_sha256:
        return summary, "best.json differs from what the summary recorded (edited since)"
    if not (path / "history.csv").exists():
        return summary, "history.csv is missing"
    recorded = {name: digest.model_dump() for name, digest in checked.files.items()}
    return summary, _check_files(path, recorded, {name: _table(path / name) for name in TABLES}, "summary")


def _checkpoint(path: Path) -> tuple[dict, gp.SearchState, dict]:
    """(identity, state, recorded table digests) of ``path/checkpoint.json``, its shape checked."""
    try:
        data = read_json(path / "checkpoint.json", "checkpoint")
    except LPZeroError as error:
        raise LPZeroError(f"{error}; start over with --force") from None
    checked = _validated(_Checkpoint, data, path / "checkpoint.json")
    state = gp.SearchState.from_json(checked.state.model_dump())
    if state.rng_state is not None:
        try:
            np.random.default_rng().bit_generator.state = state.rng_state
        except (KeyError, TypeError, ValueError) as error:
            raise LPZeroError(f"{path / 'checkpoint.json'} is damaged: field 'state.rng_state' is no generator "
                              f"state ({error}); start over with --force") from None
    return checked.run, state, {name: d.model_dump() for name, d in checked.files.items()}


def _resume(path: Path, identity: dict) -> tuple[gp.SearchState, dict[str, list[dict]]]:
    """The checkpointed state of ``path`` and the table rows it counts, the tables cut back to them (see the
    module rules)."""
    if not (path / "checkpoint.json").exists():
        raise LPZeroError(f"--resume: no checkpoint.json in {path}; start the search without --resume")
    recorded, state, files = _checkpoint(path)
    if recorded != identity:
        raise LPZeroError(f"--resume: {path / 'checkpoint.json'} was written with other settings "
                          f"({_differences(recorded, identity)}); use the same arguments and cache, or another --out")
    tables = {name: _table(path / name, state.step) for name in TABLES}
    history = tables["history.csv"]
    if len(history) < state.step:
        raise LPZeroError(f"--resume: {path / 'history.csv'} holds {len(history)} rows but the checkpoint counts "
                          f"{state.step}; resuming would lose rows, start over with --force")
    problem = _check_files(path, files, tables, "checkpoint")
    if problem:
        raise LPZeroError(f"--resume: {path}: {problem}; the run would not be this run's, start over with --force")
    kept = {name: rows[: state.step] for name, rows in tables.items()}
    for name, rows in kept.items():
        _write_csv(path / name, rows, TABLES[name])
    return state, kept


def resumable(path: str | Path, cache: StatsCache, config: gp.GPConfig) -> bool:
    """Whether ``path`` holds an unfinished run of this identity that rule 2 would resume: a readable checkpoint
    of the same benchmark, cache and settings, and tables that hold the rows it counts, as it recorded them."""
    path = Path(path)
    if not (path / "checkpoint.json").exists():
        return False
    try:
        recorded, state, files = _checkpoint(path)
        tables = {name: _table(path / name, state.step) for name in TABLES}
    except LPZeroError:
        return False
    return (recorded == run_identity(cache, config) and len(tables["history.csv"]) >= state.step
            and _check_files(path, files, tables, "checkpoint") is None)


def _claim(path: Path, identity: dict, force: bool) -> None:
    """Make ``path`` an empty run directory: refuse another run's files unless ``force``, which deletes them."""
    present = [name for name in RUN_FILES if (path / name).exists() or (path / name).is_symlink()]
    if present and not force:
        same = (path / "checkpoint.json").exists() and _checkpoint(path)[0] == identity
        what = "an unfinished run of these settings; add --resume to continue it" if same else \
            f"another run's files ({', '.join(present)}); use another --out"
        raise LPZeroError(f"{path} holds {what}, or --force to delete them and start over")
    for name in present:
        if (path / name).is_dir() and not (path / name).is_symlink():
            raise LPZeroError(f"{path / name} is a folder; remove it or use another --out")
        (path / name).unlink()


@contextmanager
def locked(path: Path):
    """Hold the OS file lock ``path/.lock`` while a search writes ``path``; another process holding it is an
    ``LPZeroError`` (two searches on one folder would interleave their rows)."""
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path / LOCK, blocking=False)
    try:
        lock.acquire()
    except Timeout:
        raise LPZeroError(f"{path} is being written by another search (lock {path / LOCK} is held); wait for it to "
                          f"finish or use another --out") from None
    finished = False
    try:
        yield
        finished = True
    finally:
        lock.release()
        if not finished and created and [p.name for p in path.iterdir()] == [LOCK]:  # refused before any write
            (path / LOCK).unlink()
            path.rmdir()


def search_run(cache: StatsCache, config: gp.GPConfig, out: str | Path, *, resume: bool = False, force: bool = False,
               progress: bool = True, stop_after: int | None = None) -> Run:
    """The GP run of ``config`` on ``cache`` in directory ``out``: reused, resumed or run (module rules 1–3), under
    the folder's lock.

    A finished run whose files no longer match its summary is refused, or recomputed with ``force`` (saying so on
    stderr). ``stop_after`` stops after that many iterations, as a kill would (no summary; used to test resumption).
    """
    path = Path(out)
    identity = run_identity(cache, config)
    with locked(path):
        summary, problem = _finished(path, identity)
        if summary is not None and problem is None:
            return Run(path, summary, reused=True)
        if problem is not None:
            if not force:
                raise LPZeroError(f"{path} holds a finished run, but {problem}; it is not reused: pass --force to "
                                  f"recompute it, or use another --out")
            print(f"lpzero: {path}: {problem}; recomputing the run (--force)", file=sys.stderr)
        if resume and summary is None:
            state, kept = _resume(path, identity)
        else:
            _claim(path, identity, force)
            state, kept = None, None
        observer = RunDirectory(path, identity, kept)
        result = gp.search(cache, config, state=state, observer=observer, progress=progress, stop_after=stop_after)
        if result.state.iteration < config.iterations:
            return Run(path, None)
        return Run(path, write_summary(path, result, cache, config, observer.files()))


def write_summary(path: Path, result: gp.SearchResult, cache: StatsCache, config: gp.GPConfig,
                  files: dict | None = None) -> dict:
    """Write ``best.json`` (genotype + search fitness) and then ``summary.json``; return the summary.

    The summary holds the canonical proxy, its formula, ρ/τ on the search split and on the held-out architectures
    (reported, never used for selection), rejections per RPS rule, architectures scored, wall time (of the last
    call, when resumed), seed, the run identity (``benchmark``, ``cache``, ``config``), and what reuse checks:
    ``files`` (row count and hash of history and timings) and ``best_sha256``.
    """
    scores = result.best.evaluate(cache)

    def split(ids):
        return {"spearman": metrics.spearman(scores[ids], cache.target[ids]),
                "kendall": metrics.kendall(scores[ids], cache.target[ids]), "n": int(len(ids))}

    best = {**result.best.to_dict(), "fitness": result.fitness, "fitness_metric": config.fitness}
    best_text = json.dumps(best, indent=2, ensure_ascii=False)
    summary = {"proxy": str(result.best), "formula": result.best.formula(), "search": split(cache.search_ids),
               "heldout": split(cache.heldout_ids), "rejected": result.rejected, "evaluations": result.evaluations,
               "wall_seconds": result.wall_seconds, "seed": config.seed, **run_identity(cache, config),
               "files": files or {}, "best_sha256": hashlib.sha256(best_text.encode()).hexdigest()}
    atomic_write_text(path / "best.json", best_text)
    atomic_write_text(path / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False))
    return summary
