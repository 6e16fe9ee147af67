"""Experiments behind the notebooks and `make paper`: caches, search runs, seed studies and the n_unary ablation.

The notebooks only call these functions and the figures of ``plots.py``; everything here is plain Python and
tested on the synthetic benchmark.

Conventions
-----------
* Relative paths are resolved against the project root (the directory that holds ``lpzero_core``), so a notebook
  gives the same result from JupyterLab (working directory ``notebooks/``) and from papermill (the root).
* One GP run lives in one directory, owned by ``workbench/runs.py`` (as ``lpzero search`` writes it):
  ``history.csv``, ``timings.csv``, ``checkpoint.json``, ``best.json`` and ``summary.json``. A finished run with
  the same GP settings on the same cache is reused instead of recomputed, so rerunning ``make paper`` costs only
  what changed, and notebook 02 reads the default run ``make results`` wrote.
* Fitness is the search-split correlation (``GPConfig.fitness``); every held-out number is on
  ``cache.heldout_ids``. "Iteration" counts offspring: iteration 0 is the best of the initial population.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from lpzero_core.errors import LPZeroError
from lpzero_core.files import PROJECT_ROOT, atomic_write_text, read_text
from lpzero_core.search.gp import GPConfig
from lpzero_core.search.proxy import Proxy
from lpzero_core.stats.cache import StatsCache
from lpzero_core.workbench.runs import read_json, resumable, search_run

SUMMARY_COLUMNS = ("seed", "rps", "n_unary", "iterations", "proxy", "formula", "search_fitness", "heldout_spearman",
                   "heldout_kendall", "evaluations", "rejected", "wall_seconds", "out")


def project_path(path: str | Path | None) -> Path | None:
    """``path`` as an absolute path, relative ones taken from the project root; None stays None."""
    if path is None:
        return None
    path = Path(path).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


# -- caches ------------------------------------------------------------------------------------------------------
def prepare_cache(benchmark: str, variant: str | None = None, *, archs: str | None = None,
                  batch_size: int | None = None, seq_len: int | None = None, seed: int = 0, workers: int = 1,
                  directory: str | Path | None = None, allow_partial: bool = False, progress: bool = True,
                  target: str | None = None, higher_is_better: bool | None = None, n_archs: int = 500,
                  n_search: int = 100) -> StatsCache:
    """Notebook 01: fill the statistics cache of ``benchmark`` (a registered name or a path) and return it loaded.

    * a generated benchmark (``synthetic``): its cache of ``n_archs`` architectures, the first ``n_search`` the
      search split (both ignored by the others), written to
      ``directory`` (default: the cache root) unless one with exactly these settings is already there;
    * any other: ``extract.extract`` of the architectures ``archs`` (``"START:STOP"``, an index or a comma list;
      default all), resumable, so a complete cache costs only its loading. A cache that still misses
      architectures outside ``archs`` needs ``allow_partial``.
    """
    from lpzero_core.stats import benchmarks, extract

    directory = project_path(directory)
    if benchmarks.is_generated(benchmark):
        return extract.open_cache(benchmark, seed=seed, directory=directory, allow_partial=allow_partial,
                                  n_archs=n_archs, n_search=n_search)
    bench = benchmarks.get(benchmark, variant, target=target, higher_is_better=higher_is_better)
    directory = extract.extract(bench, extract.parse_archs(archs, len(bench)), batch_size=batch_size,
                                seq_len=seq_len, seed=seed, workers=workers, directory=directory, progress=progress)
    return StatsCache.load(directory, allow_partial)


def open_cache(benchmark: str, variant: str | None = None, *, directory: str | Path | None = None,
               **kwargs) -> StatsCache:
    """``extract.open_cache`` with ``directory`` resolved against the project root (notebooks 00, 02, 03)."""
    from lpzero_core.stats.extract import open_cache as stats_open_cache

    return stats_open_cache(benchmark, variant, directory=project_path(directory), **kwargs)


def load_proxy(path: str | Path) -> Proxy:
    """A proxy from a file (a ``best.json`` / ``Proxy.to_json`` object, or one canonical string), or the string
    itself when no such file exists and it does not end in ``.json``."""
    resolved = project_path(path)
    if not resolved.exists():
        if resolved.suffix == ".json":
            raise LPZeroError(f"no proxy file {resolved}; run notebook 02 (or `lpzero search`) first")
        return Proxy.parse(str(path))
    text = read_text(resolved, "proxy file").strip()
    if not text.startswith("{"):
        return Proxy.parse(text)
    data = read_json(resolved, "proxy file")
    try:
        return Proxy.from_dict(data)
    except (KeyError, TypeError, ValueError) as error:
        raise LPZeroError(f"proxy file {resolved} is no proxy (missing or bad {error}); expected a best.json") from None


# -- search runs -------------------------------------------------------------------------------------------------
def run_search(cache: StatsCache, config: GPConfig, out: str | Path, progress: bool = False) -> dict:
    """One GP run into ``out`` (``runs.search_run``): a finished run of the same settings and cache is reused, an
    interrupted one (a notebook stopped mid-search) is resumed from its checkpoint, any other run's files there are
    replaced. Returns its summary (``runs.write_summary``)."""
    out = project_path(out)
    return search_run(cache, config, out, resume=resumable(out, cache, config), force=True, progress=progress).summary


def summary_row(summary: dict, out: str | Path) -> dict:
    """One flat row (``SUMMARY_COLUMNS``) of a run summary."""
    config = summary["config"]
    return {"seed": config["seed"], "rps": config["rps"], "n_unary": config["n_unary"],
            "iterations": config["iterations"], "proxy": summary["proxy"], "formula": summary["formula"],
            "search_fitness": summary["search"][config["fitness"]],
            "heldout_spearman": summary["heldout"]["spearman"], "heldout_kendall": summary["heldout"]["kendall"],
            "evaluations": summary["evaluations"], "rejected": sum(summary["rejected"].values()),
            "wall_seconds": summary["wall_seconds"], "out": str(out)}


def read_history(run: str | Path) -> pd.DataFrame:
    """``history.csv`` of a run directory (or the file itself); ``fitness`` is NaN where rejected."""
    path = project_path(run)
    path = path / "history.csv" if path.is_dir() else path
    if not path.exists():
        raise LPZeroError(f"no search history at {path}; run a search (notebook 02 or `lpzero search`) first")
    table = pd.read_csv(path, keep_default_na=False, na_values={"fitness": [""]})
    table["fitness"] = table["fitness"].astype(float)
    return table


def best_so_far(history: pd.DataFrame) -> pd.DataFrame:
    """Best accepted fitness after each iteration: columns ``iteration`` (0 = initial population) and ``best``.

    A rejected offspring still uses its iteration (that is the budget RPS spends or saves).
    """
    init = history[history["phase"] == "init"]["fitness"].max()
    evolve = history[history["phase"] == "evolve"]["fitness"].to_numpy(float)
    values = np.fmax.accumulate(np.concatenate([[init], evolve]))
    return pd.DataFrame({"iteration": np.arange(len(values)), "best": values})


def history_files(runs_dir: str | Path) -> list[Path]:
    """Every ``history.csv`` under ``runs_dir``, sorted."""
    root = project_path(runs_dir)
    return sorted(root.rglob("history.csv")) if root is not None and root.exists() else []


def top_proxies(history: pd.DataFrame, k: int = 20) -> pd.DataFrame:
    """The ``k`` best distinct accepted proxies of a history (proxy, fitness, first step found)."""
    accepted = history.dropna(subset=["fitness"]).sort_values(["fitness", "step"], ascending=[False, True])
    return accepted.drop_duplicates("proxy")[["proxy", "fitness", "step"]].head(k).reset_index(drop=True)


# -- studies -----------------------------------------------------------------------------------------------------
def rps_study(cache: StatsCache, config: GPConfig, seeds, out: str | Path,
              progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The search with and without RPS for every seed, into ``out/rps-on|off/seed<S>``.

    Returns (summaries: one ``summary_row`` per run; curves: ``best_so_far`` of every run with columns
    ``rps``, ``seed``, ``iteration``, ``best``). Both are also written to ``out`` as CSV.
    """
    out = project_path(out)
    rows, curves = [], []
    for rps in (True, False):
        for seed in seeds:
            run_dir = out / f"rps-{'on' if rps else 'off'}" / f"seed{seed}"
            summary = run_search(cache, replace(config, rps=rps, seed=int(seed)), run_dir, progress)
            rows.append(summary_row(summary, run_dir))
            curve = best_so_far(read_history(run_dir))
            curves.append(curve.assign(rps=rps, seed=int(seed)))
    summaries = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    curves = pd.concat(curves, ignore_index=True)[["rps", "seed", "iteration", "best"]]
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "summaries.csv", summaries.to_csv(index=False))
    atomic_write_text(out / "curves.csv", curves.to_csv(index=False))
    return summaries, curves


def n_unary_study(cache: StatsCache, config: GPConfig, values, seeds, out: str | Path,
                  progress: bool = False) -> pd.DataFrame:
    """The search for every ``n_unary`` in ``values`` and every seed, into ``out/n_unary<N>/seed<S>``.

    Chains longer than two ops are not in the two-op tables: ``StatsCache.branch`` reads them from the tables
    where an early op reduces to a scalar and estimates them from the bounded samples otherwise, so they are
    slower and, in part, approximate. Returns one ``summary_row`` per run (also ``out/summaries.csv``).
    """
    out = project_path(out)
    rows = []
    for n_unary in values:
        for seed in seeds:
            run_dir = out / f"n_unary{n_unary}" / f"seed{seed}"
            summary = run_search(cache, replace(config, n_unary=int(n_unary), seed=int(seed)), run_dir, progress)
            rows.append(summary_row(summary, run_dir))
    summaries = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "summaries.csv", summaries.to_csv(index=False))
    return summaries


def scores_for(cache: StatsCache, table: pd.DataFrame, proxies: dict[str, Proxy], names) -> dict[str, np.ndarray]:
    """Scores over all architectures for the rows ``names`` of an ``evaluation.report`` table: searched or
    released proxies (``proxies`` and ``proxy.RELEASED``), network baselines and structural baselines."""
    from lpzero_core.search.proxy import RELEASED
    from lpzero_core.workbench.evaluation import structural_scores

    known = dict(proxies) | {f"{k} (released)": p for k, p in RELEASED.items()}
    structural = structural_scores(cache)
    scores = {}
    for name in names:
        if name in known:
            scores[name] = known[name].evaluate(cache)
        elif name in cache.baselines.columns:
            scores[name] = cache.baselines[name].to_numpy(float)
        elif name in structural:
            scores[name] = structural[name]
        else:
            raise LPZeroError(f"unknown proxy or baseline {name!r}; known: {', '.join(table['proxy'])}")
    return scores


def default_scatter(table: pd.DataFrame, n: int = 9) -> list[str]:
    """Rows of a report for the rank-scatter grid: every searched and released proxy, the #params baseline,
    then the best remaining rows by held-out τ, ``n`` in all (report order kept within each group)."""
    from lpzero_core.workbench.plots import params_baseline

    first = table[table["kind"].isin(["searched", "lpzero"])]["proxy"].tolist() + [params_baseline(table)]
    rest = table.dropna(subset=["kendall"])["proxy"].tolist()
    chosen = list(dict.fromkeys(first + [name for name in rest if name not in first]))
    return chosen[:max(n, len(first))]


# -- search modes --------------------------------------------------------------------------------------------------
def mode_study(cache: StatsCache, runs: str | Path, *, settings: dict | None = None,
               n_resamples: int = 1000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The search modes of ``results.MODES`` on ``cache``, as ``make results`` runs them (``results.mode_runs``
    into ``runs/<benchmark>/modes/<mode>``): finished mode runs there are read back, not recomputed. Returns the
    per-seed rows of every mode (its ``seeds.csv``) and a held-out table of the chosen proxies beside the
    structural baselines (``evaluation.report`` rows), for ``plots.mode_comparison``."""
    from lpzero_core.workbench import evaluation, results

    runs = project_path(runs)
    folders = {mode: runs / cache.name / "modes" / mode for mode in results.MODES}
    if not all((f / "summary.json").is_file() and (f / "seeds.csv").is_file() for f in folders.values()):
        results.mode_runs({cache.name: cache}, runs, settings=settings, n_resamples=n_resamples)
    seeds = pd.concat([pd.read_csv(f / "seeds.csv") for f in folders.values()], ignore_index=True)
    chosen = []
    for mode, folder in folders.items():
        summary = json.loads((folder / "summary.json").read_text())
        row = summary["per_benchmark"][cache.name]["chosen_row"]
        chosen.append({**row, "proxy": f"{mode} (seed {summary['chosen_seed']} of {len(summary['seeds'])})"})
    structural = evaluation.report(cache, released=False, n_resamples=n_resamples)
    structural = structural[structural["kind"] == "structural"]
    return seeds, pd.concat([pd.DataFrame(chosen), structural], ignore_index=True)
