"""The evaluation protocol: every proxy scored on *held-out* architectures, beside the baselines.

Per proxy (one row): Kendall τ-b and Spearman ρ with seeded bootstrap 95 % CIs, top-10/30/50 % τ (among the
architectures best by ground truth), mean τ within strata (``cache.strata``), partial ρ controlling for the
parameter count (``params_decoder`` where present, else ``params_total``), ``lex_kendall`` — τ of the
lexicographic order "(n_layers, hidden), then the proxy", i.e. what the proxy adds within the structure — and
the cost in seconds per architecture. All scores are oriented higher = better.

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
           "partial_spearman", "lex_kendall", "seconds_per_arch", "n")


def structural_scores(cache: StatsCache) -> dict[str, np.ndarray]:
    """The trivial structural baselines (``stats.baselines.structural``) over every architecture of ``cache``."""
    return baselines.structural(cache.descriptors)


def lexicographic(scores: np.ndarray, cache: StatsCache) -> np.ndarray | None:
    """Ranks of the order (n_layers, hidden, then ``scores``) over all architectures — structure first, the proxy
    breaking ties within each (n_layers, hidden) stratum; architectures equal on all three share a rank — or None
    where the cache has no such descriptors."""
    d = cache.descriptors
    if "n_layers" not in d or "hidden" not in d:
        return None
    keys = np.stack([d["n_layers"].to_numpy(float), d["hidden"].to_numpy(float), np.asarray(scores, float)], axis=1)
    order = np.lexsort(keys.T[::-1])
    distinct = np.r_[True, (keys[order][1:] != keys[order][:-1]).any(axis=1)]  # equal keys share one (dense) rank
    ranks = np.empty(len(order))
    ranks[order] = np.cumsum(distinct)
    return ranks


def covariate(cache: StatsCache) -> np.ndarray:
    d = cache.descriptors
    return d["params_decoder" if "params_decoder" in d else "params_total"].to_numpy(float)


def row(name: str, kind: str, scores: np.ndarray, cache: StatsCache, ids: np.ndarray, seconds: float = 0.0,
        seed: int = 0, n_resamples: int = 1000) -> dict:
    """One table row for ``scores`` (over all architectures) restricted to ``ids``."""
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
