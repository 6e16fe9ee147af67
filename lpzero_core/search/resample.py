"""Generalisation controls shared by the search modes: an inner validation fold, resampled fitness, parsimony.

Conventions
-----------
* Everything here works on *positions within the search split* (0 … n_search − 1), never on architecture ids of
  the whole benchmark: a search cannot name a held-out architecture.
* ``inner_split``: a seeded permutation of the search split; the last ``round(validation · n)`` positions form the
  validation fold (used only to choose the final proxy), the rest the fit fold (used by the fitness).
* ``resamples``: ``count`` index sets over the fit fold, each either a bootstrap resample (n of n with replacement)
  or a subsample (a random ``(K−1)/K`` of the fold without replacement, K = 5).
* Resampled fitness = A_b[ρ_b] − parsimony · size, with ρ_b the Spearman ρ on resample b, A the mean or the
  ``quantile`` (e.g. 0.2, a pessimistic aggregate) over the resamples where ρ_b is defined; undefined everywhere →
  NaN.
* ``within_group_permutation``: the one-sided permutation test of an order within groups (e.g. a descriptor's
  tie groups): the statistic is the size-weighted mean Spearman ρ within groups of ≥ 3 (``metrics.stratified``);
  its null distribution permutes the scores within each group independently (``resamples`` times), which is
  exact for "no association within groups"; p = (1 + #{null ≥ observed}) / (1 + #defined null values).
* ``paired_difference``: the paired bootstrap of a difference of rank correlations, Δ_b = ρ(a[I_b], t[I_b]) −
  ρ(b[I_b], t[I_b]) with the *same* resample I_b (n of n with replacement) for both scores, so that what the two
  share cancels; resamples where either ρ is undefined are dropped.
"""
from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field
from scipy import stats

from lpzero_core.search import metrics
from lpzero_core.search.settings import Positive, Probability, settings

RESAMPLE_KINDS = ("bootstrap", "subsample")


@settings
class Generalisation:
    """Settings of the resampled fitness and of the inner validation fold (see the module docstring; schema:
    ``search.settings``)."""

    validation: Annotated[float, Field(ge=0, lt=1)] = 0.3
    resamples: Positive = 20
    kind: Literal[RESAMPLE_KINDS] = "bootstrap"
    quantile: Probability | None = None  # None: the mean over resamples
    parsimony: Annotated[float, Field(ge=0)] = 0.002  # per tree node (or per feature)


def inner_split(n: int, validation: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Positions (fit, validation) of a seeded random split of n search architectures."""
    order = rng.permutation(n)
    n_val = int(round(validation * n))
    return np.sort(order[: n - n_val]), np.sort(order[n - n_val:])


def resamples(fit: np.ndarray, config: Generalisation, rng: np.random.Generator) -> np.ndarray:
    """[count, m] positions: resamples of the fit fold (bootstrap: m = len(fit); subsample: m = ⌈4/5 len(fit)⌉)."""
    if config.kind == "bootstrap":
        return fit[rng.integers(0, len(fit), size=(config.resamples, len(fit)))]
    m = int(np.ceil(0.8 * len(fit)))
    return np.stack([np.sort(rng.permutation(fit)[:m]) for _ in range(config.resamples)])


def spearman_rows(score: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Spearman ρ of each row pair of ``score`` and ``truth`` [B, m] (average ranks; NaN where a row is constant
    or not finite)."""
    with np.errstate(all="ignore"):
        finite = np.isfinite(score).all(axis=1)
        rs = stats.rankdata(np.where(np.isfinite(score), score, 0.0), axis=1)
        rt = stats.rankdata(truth, axis=1)
        rs, rt = rs - rs.mean(axis=1, keepdims=True), rt - rt.mean(axis=1, keepdims=True)
        rho = (rs * rt).sum(axis=1) / np.sqrt((rs * rs).sum(axis=1) * (rt * rt).sum(axis=1))
    return np.where(finite, rho, np.nan)


def spearman(score: np.ndarray, truth: np.ndarray) -> float:
    """Spearman ρ of two vectors (``spearman_rows`` of one row: NaN when undefined)."""
    return float(spearman_rows(np.asarray(score)[None], np.asarray(truth)[None])[0])


def resampled_correlation(score: np.ndarray, truth: np.ndarray, index: np.ndarray,
                          quantile: float | None = None) -> float:
    """A_b[ρ(score[index_b], truth[index_b])]: mean (``quantile`` None) or quantile over the defined resamples."""
    rho = spearman_rows(score[index], truth[index])
    rho = rho[np.isfinite(rho)]
    if len(rho) == 0:
        return float("nan")
    return float(rho.mean() if quantile is None else np.quantile(rho, quantile))


def paired_difference(a: np.ndarray, b: np.ndarray, truth: np.ndarray, resamples: int,
                      rng: np.random.Generator) -> np.ndarray:
    """Δ_b = ρ(a, truth) − ρ(b, truth) on ``resamples`` paired bootstrap resamples (see the module docstring);
    the defined values only."""
    a, b, truth = (np.asarray(x, dtype=float) for x in (a, b, truth))
    index = rng.integers(0, len(truth), size=(resamples, len(truth)))
    delta = spearman_rows(a[index], truth[index]) - spearman_rows(b[index], truth[index])
    return delta[np.isfinite(delta)]


def within_group_permutation(score: np.ndarray, truth: np.ndarray, groups: np.ndarray, resamples: int,
                             rng: np.random.Generator) -> tuple[float, float]:
    """(observed within-group ρ, one-sided permutation p-value) of ``score`` against ``truth`` within ``groups``
    (see the module docstring); (NaN, 1.0) when no group of ≥ 3 has a defined ρ."""
    score, truth, groups = (np.asarray(x) for x in (score, truth, groups))
    observed = metrics.stratified(score, truth, groups, "spearman")
    if not np.isfinite(observed):
        return float("nan"), 1.0
    total, weights = np.zeros(resamples), np.zeros(resamples)
    for g in np.unique(groups):
        m = np.flatnonzero(groups == g)
        if len(m) < 3:
            continue
        permuted = np.asarray(score[m], float)[rng.permuted(np.tile(np.arange(len(m)), (resamples, 1)), axis=1)]
        rho = spearman_rows(permuted, np.tile(np.asarray(truth[m], float), (resamples, 1)))
        defined = np.isfinite(rho)
        total += np.where(defined, rho * len(m), 0.0)
        weights += defined * len(m)
    with np.errstate(invalid="ignore"):
        null = total / weights
    null = null[np.isfinite(null)]
    return float(observed), float((1 + np.sum(null >= observed)) / (1 + len(null)))
