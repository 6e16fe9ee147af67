"""The search modes behind one entry point: ``run_mode`` searches with several seeds, scores every found proxy on
each benchmark's search split and held-out architectures, and writes a run folder.

Modes: ``template`` (LPZero's GP, ``search.gp``, one benchmark), ``tree`` and ``combine`` (typed trees,
``search.evolve``; one or several benchmarks), ``surrogate`` (scikit-learn, ``search.surrogate``, one benchmark).
A search reads only the search split; held-out numbers are computed afterwards and never feed back.

Structural fallback (``workbench.fallback``, the same rule for every mode and seed): a seed's search result (the
*candidate*) is returned only when it beats the best structural descriptor and the best hand-crafted baseline of
the search split on the mode's inner validation fold (one-sided paired bootstrap, 90 %); otherwise the seed returns
the baseline or the descriptor (refined by the candidate within the descriptor's ties where that holds up), and
says so. ``fallback=False`` returns the candidates as found (ablation).

Choice across seeds (stated rule): the proxy returned by the most seeds (same string); ties → the higher
search-split Spearman ρ (the minimum over benchmarks of a multi-benchmark run), then the lower seed. Held-out
numbers of every seed are reported beside it (medians and ranges), so the choice can be judged.

Run folder ``out``::

    summary.json        mode, seeds, config overrides, per-benchmark medians/ranges, the chosen seed with its
                        full held-out table row (``evaluation.row`` + ``lex_kendall``)
    seeds.csv           one row per (seed, benchmark): proxy returned, candidate found, fallback choice, search
                        ρ/τ, held-out ρ/τ/top-10 % τ/within-strata τ/lex τ, gap = search ρ − held-out ρ,
                        regret_vs_structure = held-out ρ − that of the benchmark's best structural descriptor of the
                        search split, seconds per architecture, wall seconds
    seed<k>/proxy.json  the proxy returned and the candidate (trees parse back with ``tree.parse``), the fallback's
                        choice with its bootstrap bounds, and the mode's search details:
                        trees — chosen/candidates/Pareto front, rejections, history; surrogate — columns, fit and
                        validation ρ (the model is refit bit for bit from the seed, it is not pickled)

``lex_kendall`` is τ of the lexicographic order (n_layers, hidden, then the proxy): what the proxy adds beyond
structure; NaN where the cache has no such descriptors.
"""
from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from lpzero_core.errors import LPZeroError
from lpzero_core.files import atomic_write_text
from lpzero_core.search import metrics
from lpzero_core.search.evolve import joint_seconds, tree_search
from lpzero_core.search.gp import config_json, search
from lpzero_core.search.surrogate import surrogate_search
from lpzero_core.workbench import fallback
from lpzero_core.workbench.config import mode_config
from lpzero_core.workbench.evaluation import lexicographic, regret_reference, row
from lpzero_core.workbench.runs import locked

MODES = ("template", "tree", "combine", "surrogate")
DEFAULT_SEEDS = (0, 1, 2, 3, 4)
METRICS = ("search_spearman", "heldout_spearman", "heldout_kendall", "top10_kendall", "strata_kendall",
           "lex_kendall", "gap", "regret_vs_structure", "wall_seconds")


def _run_one(mode: str, caches: list, config, progress: bool) -> tuple[object, dict, dict[str, float], dict]:
    """(proxy with ``evaluate(cache)``, JSON details, seconds per architecture per benchmark, the inner validation
    fold per benchmark for the fallback test)."""
    if mode in ("template", "surrogate") and len(caches) > 1:
        raise LPZeroError(f"mode {mode} searches one benchmark; use tree or combine for a multi-benchmark search")
    if mode == "template":
        result = search(caches[0], config, progress=progress)
        details = {"fitness": result.fitness, "rejected": result.rejected, "evaluations": result.evaluations,
                   "formula": result.best.formula(), "wall_seconds": result.wall_seconds}
        fold = fallback.template_fold(len(caches[0].search_ids), config.seed)
        return result.best, details, {caches[0].name: float(np.mean(caches[0].extract_seconds))}, {caches[0].name: fold}
    if mode == "surrogate":
        result = surrogate_search(caches[0], config)
        details = {"columns": list(result.proxy.columns), "dropped": list(result.dropped), "fit_spearman": result.fit,
                   "validation_spearman": result.validation, "search_spearman": result.search,
                   "wall_seconds": result.wall_seconds}
        alone = {c: float(np.mean(caches[0].baseline_seconds[c])) for c in caches[0].baseline_seconds.columns}
        seconds = joint_seconds(result.proxy.columns, alone, caches[0].baseline_passes)
        fold = fallback.Fold(result.validation_positions, result.validation_scores)
        return result.proxy, details, {caches[0].name: seconds}, {caches[0].name: fold}
    result = tree_search(caches, config, progress=progress)
    details = {"chosen": result.chosen.row(), "candidates": [a.row() for a in result.candidates],
               "pareto": [a.row() for a in result.pareto], "rejected": result.rejected,
               "evaluations": result.evaluations, "distinct": result.distinct, "history": result.history,
               "wall_seconds": result.wall_seconds}
    folds = {name: fallback.Fold(positions) for name, positions in result.validation.items()}
    return result.proxy, details, {c.name: result.chosen.cost for c in caches}, folds


def _seed_rows(mode: str, seed: int, selection: fallback.Selection, caches: list, seconds: dict,
               wall: float) -> list[dict]:
    rows = []
    for cache in caches:
        scores = selection.proxy.evaluate(cache)
        s, h, t = cache.search_ids, cache.heldout_ids, cache.target
        lex = lexicographic(scores, cache)
        rows.append({"mode": mode, "seed": seed, "benchmark": cache.name, "proxy": str(selection.proxy),
                     "candidate": selection.candidate, "choice": selection.choice,
                     "search_spearman": metrics.spearman(scores[s], t[s]),
                     "search_kendall": metrics.kendall(scores[s], t[s]),
                     "heldout_spearman": metrics.spearman(scores[h], t[h]),
                     "heldout_kendall": metrics.kendall(scores[h], t[h]),
                     "top10_kendall": metrics.top_k(scores[h], t[h], 0.10),
                     "strata_kendall": metrics.stratified(scores[h], t[h], cache.strata[h]),
                     "lex_kendall": np.nan if lex is None else metrics.kendall(lex[h], t[h]),
                     "seconds_per_arch": seconds[cache.name], "wall_seconds": wall})
        rows[-1]["gap"] = rows[-1]["search_spearman"] - rows[-1]["heldout_spearman"]
        rows[-1]["regret_vs_structure"] = rows[-1]["heldout_spearman"] - regret_reference(cache)[1]
    return rows


def run_mode(mode: str, caches, out: str | Path | None = None, seeds=DEFAULT_SEEDS, overrides: dict | None = None,
             progress: bool = False, n_resamples: int = 1000, with_fallback: bool = True) -> dict:
    """Search with ``mode`` once per seed on ``caches`` (one cache, or a list for a multi-benchmark tree/combine
    search), pass each seed's candidate through the structural fallback (unless ``with_fallback`` is False), score
    on every benchmark, write the run folder (see the module docstring) when ``out`` is given, and return the
    summary dict."""
    caches = list(caches) if isinstance(caches, (list, tuple)) else [caches]
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise LPZeroError("run_mode needs at least one seed")
    out = None if out is None else Path(out)
    with nullcontext() if out is None else locked(out):
        return _run_seeds(mode, caches, out, seeds, overrides, progress, n_resamples, with_fallback)


def _run_seeds(mode, caches, out, seeds, overrides, progress, n_resamples, with_fallback) -> dict:
    """``run_mode``'s work, under the run folder's lock."""
    rows, proxies, selections = [], {}, {}
    for seed in seeds:
        config = mode_config(mode, seed, overrides)
        candidate, details, seconds, folds = _run_one(mode, caches, config, progress)
        selection = (fallback.select(candidate, caches, folds, seed) if with_fallback else
                     fallback.Selection(candidate, "candidate", str(candidate), None, None, {"fallback": "off"}))
        proxies[seed], selections[seed] = selection.proxy, selection
        if selection.choice in ("descriptor", "baseline"):  # a fallback costs what it reads, not the candidate
            seconds = {c.name: (0.0 if selection.choice == "descriptor" else
                                float(np.mean(c.baseline_seconds[selection.baseline]))) for c in caches}
        rows += _seed_rows(mode, seed, selection, caches, seconds, details["wall_seconds"])
        if out is not None:
            settings = config_json(config) if mode == "template" else json.loads(json.dumps(asdict(config)))
            verdict = {"choice": selection.choice, "descriptor": selection.descriptor,
                       "baseline": selection.baseline, **selection.details}
            payload = {"mode": mode, "seed": seed, "proxy": str(selection.proxy), "candidate": str(candidate),
                       "fallback": verdict, "config": settings, **details}
            atomic_write_text(out / f"seed{seed}" / "proxy.json",
                              json.dumps(payload, indent=2, ensure_ascii=False, default=float))
    table = pd.DataFrame(rows)
    search_rho = table.groupby("seed")["search_spearman"].min()
    found = {seed: str(proxies[seed]) for seed in seeds}
    votes = pd.Series(found).value_counts()
    chosen = max(seeds, key=lambda s: (votes[found[s]], np.nan_to_num(search_rho[s], nan=-np.inf), -s))
    summary = {"mode": mode, "seeds": seeds, "overrides": overrides or {}, "benchmarks": [c.name for c in caches],
               "choice_rule": "the proxy most seeds returned; ties: highest search-split Spearman ρ (min over "
                              "benchmarks), then lower seed",
               "fallback_rule": fallback.RULE if with_fallback else "off",
               "chosen_seed": chosen, "chosen_proxy": str(proxies[chosen]),
               "chosen_candidate": selections[chosen].candidate, "chosen_choice": selections[chosen].choice,
               "fallback": fallback.describe(selections[chosen]) if with_fallback else "off",
               "choices": {str(seed): selections[seed].choice for seed in seeds}, "per_benchmark": {}}
    for cache in caches:
        part = table[table["benchmark"] == cache.name]
        stats = {m: {"median": float(part[m].median()), "min": float(part[m].min()), "max": float(part[m].max())}
                 for m in METRICS}
        scores = proxies[chosen].evaluate(cache)
        heldout = row(f"{mode} (seed {chosen})", mode, scores, cache, cache.heldout_ids,
                      float(part["seconds_per_arch"].iloc[seeds.index(chosen)]), chosen, n_resamples)
        summary["per_benchmark"][cache.name] = {"over_seeds": stats, "chosen_row": heldout}
    if out is not None:
        atomic_write_text(out / "seeds.csv", table.to_csv(index=False))
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False, default=float))
    summary["table"], summary["proxy"] = table, proxies[chosen]
    return summary
