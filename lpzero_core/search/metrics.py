"""Rank-correlation metrics between proxy scores and ground truth (scipy underneath).

All functions take ``score`` and ``truth`` as 1-D arrays over the same architectures, both oriented higher =
better. A correlation that is undefined (constant input, fewer than 3 values, non-finite scores) is NaN.
"""
from __future__ import annotations

import numpy as np
from scipy import stats


def _finite(score, truth) -> tuple[np.ndarray, np.ndarray] | None:
    score, truth = np.asarray(score, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if len(score) < 3 or not np.isfinite(score).all() or np.ptp(score) == 0 or np.ptp(truth) == 0:
        return None
    return score, truth


def kendall(score, truth) -> float:
    """Kendall τ-b (ties handled as in scipy.stats.kendalltau)."""
    pair = _finite(score, truth)
    return float("nan") if pair is None else float(stats.kendalltau(*pair).statistic)


def spearman(score, truth) -> float:
    """Spearman ρ: Pearson correlation of the average ranks."""
    pair = _finite(score, truth)
    return float("nan") if pair is None else float(stats.spearmanr(*pair).statistic)


CORRELATIONS = {"kendall": kendall, "spearman": spearman}


def top_k(score, truth, fraction: float, method: str = "kendall") -> float:
    """Correlation among the architectures whose *ground truth* lies in the top ``fraction`` (e.g. 0.1 = 10 %).

    This is the NAS-Bench-Suite-Zero notion: how well the proxy orders the good architectures among themselves.
    """
    score, truth = np.asarray(score), np.asarray(truth)
    k = max(3, int(round(len(truth) * fraction)))
    top = np.argsort(-truth, kind="stable")[:k]
    return CORRELATIONS[method](score[top], truth[top])


def bootstrap_ci(score, truth, method: str = "kendall", n_resamples: int = 1000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the correlation: architectures resampled with replacement (seeded)."""
    score, truth = np.asarray(score, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(truth), size=(n_resamples, len(truth)))
    values = np.array([CORRELATIONS[method](score[i], truth[i]) for i in idx])
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def stratified(score, truth, strata, method: str = "kendall", min_size: int = 3) -> float:
    """Mean correlation within strata (e.g. depth × hidden), over strata with ≥ ``min_size`` members and a
    defined correlation, weighted by stratum size. Answers: does the proxy rank *beyond* the stratifying
    structure?"""
    score, truth, strata = np.asarray(score), np.asarray(truth), np.asarray(strata)
    values, weights = [], []
    for label in np.unique(strata):
        members = strata == label
        if members.sum() >= min_size:
            value = CORRELATIONS[method](score[members], truth[members])
            if np.isfinite(value):
                values.append(value)
                weights.append(members.sum())
    return float(np.average(values, weights=weights)) if values else float("nan")


def partial_spearman(score, truth, covariate) -> float:
    """Spearman ρ of score and truth controlling for a covariate (e.g. parameter count):
    ρ_xy·z = (ρ_xy − ρ_xz ρ_yz) / sqrt((1 − ρ_xz²)(1 − ρ_yz²)), all ρ Spearman."""
    r_xy, r_xz, r_yz = spearman(score, truth), spearman(score, covariate), spearman(truth, covariate)
    denominator = np.sqrt((1 - r_xz**2) * (1 - r_yz**2))
    return float((r_xy - r_xz * r_yz) / denominator) if denominator > 0 else float("nan")
