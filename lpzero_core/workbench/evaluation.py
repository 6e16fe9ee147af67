"""The evaluation protocol: every proxy scored on *held-out* architectures, beside the baselines.

Per proxy (one row): Kendall τ-b and Spearman ρ with seeded bootstrap 95 % CIs, top-10/30/50 % τ (among the
architectures best by ground truth), mean τ within strata (``cache.strata``), partial ρ controlling for the
parameter count (``params_decoder`` where present, else ``params_total``) and the cost in seconds per
architecture. All scores are oriented higher = better.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from lpzero_core.search import metrics
from lpzero_core.search.proxy import RELEASED, Proxy
from lpzero_core.stats.cache import StatsCache

COLUMNS = ("proxy", "kind", "kendall", "spearman", "kendall_ci_low", "kendall_ci_high", "spearman_ci_low",
           "spearman_ci_high", "top10_kendall", "top30_kendall", "top50_kendall", "strata_kendall",
           "partial_spearman", "seconds_per_arch", "n")


def structural_scores(cache: StatsCache) -> dict[str, np.ndarray]:
    """Trivial structural baselines from the descriptors: n_layers, (n_layers, hidden) lexicographic encoded as
    n_layers·10⁶ + hidden, and every parameter-count / FLOPs column present."""
    d = cache.descriptors
    scores = {"n_layers": d["n_layers"].to_numpy(float),
              "n_layers_hidden": (d["n_layers"] * 1e6 + d["hidden"]).to_numpy(float)}
    for column in ("params_total", "params_decoder", "params_attention", "params_ffn", "flops"):
        if column in d:
            scores[column] = d[column].to_numpy(float)
    return scores


def covariate(cache: StatsCache) -> np.ndarray:
    d = cache.descriptors
    return d["params_decoder" if "params_decoder" in d else "params_total"].to_numpy(float)


def row(name: str, kind: str, scores: np.ndarray, cache: StatsCache, ids: np.ndarray, seconds: float = 0.0,
        seed: int = 0, n_resamples: int = 1000) -> dict:
    """One table row for ``scores`` (over all architectures) restricted to ``ids``."""
    s, t = np.asarray(scores, dtype=float)[ids], cache.target[ids]
    k_lo, k_hi = metrics.bootstrap_ci(s, t, "kendall", n_resamples, seed=seed)
    r_lo, r_hi = metrics.bootstrap_ci(s, t, "spearman", n_resamples, seed=seed)
    return {"proxy": name, "kind": kind, "kendall": metrics.kendall(s, t), "spearman": metrics.spearman(s, t),
            "kendall_ci_low": k_lo, "kendall_ci_high": k_hi, "spearman_ci_low": r_lo, "spearman_ci_high": r_hi,
            "top10_kendall": metrics.top_k(s, t, 0.10), "top30_kendall": metrics.top_k(s, t, 0.30),
            "top50_kendall": metrics.top_k(s, t, 0.50),
            "strata_kendall": metrics.stratified(s, t, cache.strata[ids]),
            "partial_spearman": metrics.partial_spearman(s, t, covariate(cache)[ids]),
            "seconds_per_arch": seconds, "n": len(ids)}


def report(cache: StatsCache, proxies: dict[str, Proxy] | None = None, baselines: bool = True,
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
    if baselines:
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
