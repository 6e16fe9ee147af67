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
from dataclasses import dataclass
from pathlib import Path

from lpzero_core.errors import LPZeroError
from lpzero_core.files import atomic_write_text, check_writable, load_json, read_text
from lpzero_core.search import gp, metrics
from lpzero_core.stats.cache import StatsCache

RUN_FILES = ("history.csv", "timings.csv", "checkpoint.json", "best.json", "summary.json")
TIMING_FIELDS = ("step", "seconds")


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


class RunDirectory(gp.Observer):
    """The observer that writes a run directory as ``gp.search`` reports (rows buffered until each checkpoint)."""

    def __init__(self, path: Path, identity: dict):
        self.path, self.identity = Path(path), identity
        self.rows, self.times = [], []

    def evaluated(self, step: int, phase: str, evaluation: gp.Evaluation, seconds: float) -> None:
        self.rows.append(gp.history_row(step, phase, evaluation))
        self.times.append({"step": step, "seconds": f"{seconds:.6f}"})

    def checkpoint(self, state: gp.SearchState) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        for name, rows, fields in (("history.csv", self.rows, gp.HISTORY_FIELDS),
                                   ("timings.csv", self.times, TIMING_FIELDS)):
            path = self.path / name
            check_writable(path)
            new = not path.exists()
            with path.open("a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=fields)
                if new:
                    writer.writeheader()
                writer.writerows(rows)
        self.rows, self.times = [], []
        atomic_write_text(self.path / "checkpoint.json", json.dumps({"run": self.identity, "state": state.to_json()}))


def _csv_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _write_csv(path: Path, rows: list[dict], fields) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\r\n")  # csv's default, as appended rows
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def _differences(recorded: dict, identity: dict) -> str:
    keys = [k for k in ("benchmark", "cache") if recorded.get(k) != identity[k]]
    config = recorded.get("config") or {}
    keys += [f"--{k.replace('_', '-')}" for k, v in identity["config"].items() if config.get(k) != v]
    return ", ".join(keys) or "format"


def _finished(path: Path, identity: dict) -> dict | None:
    """The summary of a finished run of this identity in ``path``, else None."""
    if not ((path / "summary.json").exists() and (path / "history.csv").exists()):
        return None
    try:
        summary = read_json(path / "summary.json", "run summary")
    except LPZeroError:
        return None
    recorded = {k: summary.get(k) for k in identity}
    return summary if recorded == identity else None


def _checkpoint(path: Path) -> tuple[dict, gp.SearchState]:
    try:
        data = read_json(path / "checkpoint.json", "checkpoint")
    except LPZeroError as error:
        raise LPZeroError(f"{error}; start over with --force") from None
    try:
        return data["run"], gp.SearchState.from_json(data["state"])
    except (KeyError, TypeError, ValueError) as error:
        raise LPZeroError(f"checkpoint {path / 'checkpoint.json'} is damaged ({error!r}); start over with "
                          f"--force") from None


def _resume(path: Path, identity: dict) -> gp.SearchState:
    """The checkpointed state of ``path``, with history/timings cut back to it (see the module rules)."""
    if not (path / "checkpoint.json").exists():
        raise LPZeroError(f"--resume: no checkpoint.json in {path}; start the search without --resume")
    recorded, state = _checkpoint(path)
    if recorded != identity:
        raise LPZeroError(f"--resume: {path / 'checkpoint.json'} was written with other settings "
                          f"({_differences(recorded, identity)}); use the same arguments and cache, or another --out")
    history = _csv_rows(path / "history.csv")
    if len(history) < state.step:
        raise LPZeroError(f"--resume: {path / 'history.csv'} holds {len(history)} rows but the checkpoint counts "
                          f"{state.step}; resuming would lose rows, start over with --force")
    _write_csv(path / "history.csv", history[: state.step], gp.HISTORY_FIELDS)
    _write_csv(path / "timings.csv", _csv_rows(path / "timings.csv")[: state.step], TIMING_FIELDS)
    return state


def resumable(path: str | Path, cache: StatsCache, config: gp.GPConfig) -> bool:
    """Whether ``path`` holds an unfinished run of this identity that rule 2 would resume: a readable checkpoint
    of the same benchmark, cache and settings, and a history with at least the rows it counts."""
    path = Path(path)
    if not (path / "checkpoint.json").exists():
        return False
    try:
        recorded, state = _checkpoint(path)
    except LPZeroError:
        return False
    return recorded == run_identity(cache, config) and len(_csv_rows(path / "history.csv")) >= state.step


def _claim(path: Path, identity: dict, force: bool) -> None:
    """Make ``path`` an empty run directory: refuse another run's files unless ``force``, which deletes them."""
    present = [name for name in RUN_FILES if (path / name).exists()]
    if present and not force:
        same = (path / "checkpoint.json").exists() and _checkpoint(path)[0] == identity
        what = "an unfinished run of these settings; add --resume to continue it" if same else \
            f"another run's files ({', '.join(present)}); use another --out"
        raise LPZeroError(f"{path} holds {what}, or --force to delete them and start over")
    for name in present:
        (path / name).unlink()


def search_run(cache: StatsCache, config: gp.GPConfig, out: str | Path, *, resume: bool = False, force: bool = False,
               progress: bool = True, stop_after: int | None = None) -> Run:
    """The GP run of ``config`` on ``cache`` in directory ``out``: reused, resumed or run (module rules 1–3).

    ``stop_after`` stops after that many iterations, as a kill would (no summary; used to test resumption).
    """
    path = Path(out)
    identity = run_identity(cache, config)
    summary = _finished(path, identity)
    if summary is not None:
        return Run(path, summary, reused=True)
    if resume:
        state = _resume(path, identity)
    else:
        _claim(path, identity, force)
        state = None
    result = gp.search(cache, config, state=state, observer=RunDirectory(path, identity), progress=progress,
                       stop_after=stop_after)
    if result.state.iteration < config.iterations:
        return Run(path, None)
    return Run(path, write_summary(path, result, cache, config))


def write_summary(path: Path, result: gp.SearchResult, cache: StatsCache, config: gp.GPConfig) -> dict:
    """Write ``best.json`` (genotype + search fitness) and then ``summary.json``; return the summary.

    The summary holds the canonical proxy, its formula, ρ/τ on the search split and on the held-out architectures
    (reported, never used for selection), rejections per RPS rule, architectures scored, wall time (of the last
    call, when resumed), seed, and the run identity (``benchmark``, ``cache``, ``config``).
    """
    scores = result.best.evaluate(cache)

    def split(ids):
        return {"spearman": metrics.spearman(scores[ids], cache.target[ids]),
                "kendall": metrics.kendall(scores[ids], cache.target[ids]), "n": int(len(ids))}

    best = {**result.best.to_dict(), "fitness": result.fitness, "fitness_metric": config.fitness}
    summary = {"proxy": str(result.best), "formula": result.best.formula(), "search": split(cache.search_ids),
               "heldout": split(cache.heldout_ids), "rejected": result.rejected, "evaluations": result.evaluations,
               "wall_seconds": result.wall_seconds, "seed": config.seed, **run_identity(cache, config)}
    atomic_write_text(path / "best.json", json.dumps(best, indent=2, ensure_ascii=False))
    atomic_write_text(path / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False))
    return summary
