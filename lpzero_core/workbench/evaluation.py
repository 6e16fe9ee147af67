"""The evaluation protocol: every proxy scored on *held-out* architectures, beside the baselines.

Per proxy (one row): Kendall τ-b and Spearman ρ with seeded bootstrap 95 % CIs, top-10/30/50 % τ (among the
architectures best by ground truth), mean τ within strata (``cache.strata``), partial ρ controlling for the
parameter count (``params_decoder`` where present, else ``params_total``), ``lex_kendall`` — τ of the
lexicographic order "(n_layers, hidden), then the proxy", i.e. what the proxy adds within the structure —,
``regret_vs_structure`` = its Spearman ρ − that of the structural descriptor with the best search-split ρ (chosen
without held-out data; negative: the free descriptor would have done better), and the cost in seconds per
architecture. All scores are oriented higher = better.

Kendall τ-b gains from ties: a score with few levels, such as (n_layers, hidden) with 4 levels on FlexiBERT,
looks better by τ-b than a fully ordered score of the same quality. Compare proxies by Spearman ρ (mid-ranks),
within-strata τ, top-k τ and partial ρ as well; the tables are sorted by τ only for continuity.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from lpzero_core.search import metrics
from lpzero_core.search.proxy import RELEASED, Proxy
from lpzero_core.stats import baselines
from lpzero_core.stats.cache import StatsCache

COLUMNS = ("proxy", "kind", "kendall", "spearman", "kendall_ci_low", "kendall_ci_high", "spearman_ci_low",
           "spearman_ci_high", "top10_kendall", "top30_kendall", "top50_kendall", "strata_kendall",
           "partial_spearman", "lex_kendall", "regret_vs_structure", "seconds_per_arch", "n")


def structural_scores(cache: StatsCache) -> dict[str, np.ndarray]:
    """The trivial structural baselines (``stats.baselines.structural``) over every architecture of ``cache``."""
    return baselines.structural(cache.descriptors)


def best_on_search(caches, family) -> str | None:
    """The name among ``family(cache)`` (a dict of scores over all architectures) with the highest search-split
    Spearman ρ — the minimum over ``caches``, among the names every cache has; undefined ρ counts as −∞ — or None
    when there is none. Reads no held-out id."""
    caches = list(caches)
    tables = [family(c) for c in caches]
    names = [n for n in tables[0] if all(n in t for t in tables)]

    def worst(name):
        return min(np.nan_to_num(metrics.spearman(t[name][c.search_ids], np.asarray(c.target)[c.search_ids]),
                                 nan=-np.inf) for c, t in zip(caches, tables))

    return max(names, key=worst, default=None)


def regret_reference(cache: StatsCache, ids: np.ndarray | None = None) -> tuple[str | None, float]:
    """(name, Spearman ρ on ``ids``, default held-out) of the structural descriptor chosen on the search split
    (:func:`best_on_search`): what ``regret_vs_structure`` subtracts."""
    name = best_on_search([cache], structural_scores)
    if name is None:
        return None, float("nan")
    ids = cache.heldout_ids if ids is None else np.asarray(ids)
    return name, metrics.spearman(structural_scores(cache)[name][ids], cache.target[ids])


def lexicographic_ranks(*keys: np.ndarray) -> np.ndarray:
    """Dense ranks (1 = lowest) of the lexicographic order of ``keys`` (the first key first, the next ones breaking
    its ties); rows equal on every key share a rank. A NaN in a later key ranks lowest within its tie; a NaN in
    the first key gives NaN."""
    first = np.asarray(keys[0], float)
    columns = [np.nan_to_num(first, nan=0.0)] + [np.nan_to_num(np.asarray(k, float), nan=-np.inf) for k in keys[1:]]
    stacked = np.stack(columns, axis=1)
    order = np.lexsort(stacked.T[::-1])
    distinct = np.r_[True, (stacked[order][1:] != stacked[order][:-1]).any(axis=1)]
    ranks = np.empty(len(order))
    ranks[order] = np.cumsum(distinct)
    return np.where(np.isfinite(first), ranks, np.nan)


def lexicographic(scores: np.ndarray, cache: StatsCache) -> np.ndarray | None:
    """Ranks of the order (n_layers, hidden, then ``scores``) over all architectures — structure first, the proxy
    breaking ties within each (n_layers, hidden) stratum (:func:`lexicographic_ranks`) — or None where the cache
    has no such descriptors."""
    d = cache.descriptors
    if "n_layers" not in d or "hidden" not in d:
        return None
    return lexicographic_ranks(d["n_layers"].to_numpy(float), d["hidden"].to_numpy(float), scores)


def covariate(cache: StatsCache) -> np.ndarray:
    d = cache.descriptors
    return d["params_decoder" if "params_decoder" in d else "params_total"].to_numpy(float)


def row(name: str, kind: str, scores: np.ndarray, cache: StatsCache, ids: np.ndarray, seconds: float = 0.0,
        seed: int = 0, n_resamples: int = 1000, reference: float | None = None) -> dict:
    """One table row for ``scores`` (over all architectures) restricted to ``ids``; ``regret_vs_structure`` = its
    Spearman ρ − ``reference`` (default: the ρ on ``ids`` of the descriptor chosen on the search split)."""
    s, t = np.asarray(scores, dtype=float)[ids], cache.target[ids]
    lex = lexicographic(np.asarray(scores, dtype=float), cache)
    k_lo, k_hi = metrics.bootstrap_ci(s, t, "kendall", n_resamples, seed=seed)
    r_lo, r_hi = metrics.bootstrap_ci(s, t, "spearman", n_resamples, seed=seed)
    return {"proxy": name, "kind": kind, "kendall": metrics.kendall(s, t), "spearman": metrics.spearman(s, t),
            "kendall_ci_low": k_lo, "kendall_ci_high": k_hi, "spearman_ci_low": r_lo, "spearman_ci_high": r_hi,
            "top10_kendall": metrics.top_k(s, t, 0.10), "top30_kendall": metrics.top_k(s, t, 0.30),
            "top50_kendall": metrics.top_k(s, t, 0.50),
            "strata_kendall": metrics.stratified(s, t, cache.strata[ids]),
            "partial_spearman": metrics.partial_spearman(s, t, covariate(cache)[ids]),
            "lex_kendall": np.nan if lex is None else metrics.kendall(lex[ids], t),
            "regret_vs_structure": metrics.spearman(s, t) - (regret_reference(cache, ids)[1] if reference is None
                                                             else reference),
            "seconds_per_arch": seconds, "n": len(ids)}


def report(cache: StatsCache, proxies: dict[str, Proxy] | None = None, with_baselines: bool = True,
           released: bool = True, ids: np.ndarray | None = None, seed: int = 0,
           n_resamples: int = 1000) -> pd.DataFrame:
    """The results table on ``ids`` (default: held-out architectures), sorted by Kendall τ.

    Rows: the given searched proxies, LPZero's released proxies, the network baselines stored in the cache and
    the structural baselines. A proxy's cost is the extraction time per architecture, shared by all template
    proxies (they read the same statistics).
    """
    ids = cache.heldout_ids if ids is None else np.asarray(ids)
    extraction = float(cache.extract_seconds.mean())
    rows = []
    named = dict(proxies or {})
    if released:
        named |= {f"{k} (released)": p for k, p in RELEASED.items()}
    for name, proxy in named.items():
        rows.append(row(name, "searched" if name in (proxies or {}) else "lpzero", proxy.evaluate(cache), cache,
                        ids, extraction, seed, n_resamples))
    if with_baselines:
        for name in cache.baselines.columns:
            seconds = float(cache.baseline_seconds[name].mean()) if name in cache.baseline_seconds else 0.0
            rows.append(row(name, "baseline", cache.baselines[name].to_numpy(float), cache, ids, seconds, seed,
                            n_resamples))
        for name, scores in structural_scores(cache).items():
            rows.append(row(name, "structural", scores, cache, ids, 0.0, seed, n_resamples))
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values("kendall", ascending=False, na_position="last").reset_index(drop=True)


def to_markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """The project's one table printer: GitHub markdown (``DataFrame.to_markdown``, i.e. tabulate), floats with
    ``digits`` decimals, or ``digits`` significant digits where |value| ≥ 10⁴ (parameter counts, FLOPs)."""
    def cell(value):
        if isinstance(value, float):
            return f"{value:.{digits}g}" if abs(value) >= 1e4 else f"{value:.{digits}f}"
        return str(value)

    return table.map(cell).to_markdown(index=False, tablefmt="github", disable_numparse=True)
