"""The ``surrogate`` mode (NAS-Bench-Suite-Zero): a scikit-learn regressor on rank-normalised network scalars.

* Features: the descriptor and/or baseline columns of the cache that are finite on every search architecture
  (the others are dropped and listed), each mapped by ``tree.rank``: the mid-rank empirical CDF against the
  search split, in [0, 1]. A non-finite feature of a scored architecture becomes 0.5 (the middle rank).
* Target: the mid-ranks of the search-split ground truth, scaled to [0, 1].
* Fit on the search split only. ``validation`` > 0 first fits on the fit fold of a seeded inner split and reports
  ρ on the validation fold; the returned model is then refit on the whole search split.
* Models: ``ridge`` (RidgeCV, α ∈ 10^[-3, 3], 13 values), ``forest`` (RandomForestRegressor, 300 trees, min 2
  samples per leaf), ``boosting`` (GradientBoostingRegressor, 200 stages of depth 2, learning rate 0.05,
  subsample 0.8); ``seed`` is the random_state.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from pydantic import Field
from scipy import stats
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import RidgeCV

from lpzero_core.errors import LPZeroError
from lpzero_core.search import metrics
from lpzero_core.search.resample import inner_split
from lpzero_core.search.settings import Count, settings
from lpzero_core.search.tree import Leaves, all_leaves, network_columns, rank, search_leaves

MODELS = {
    "ridge": lambda seed: RidgeCV(alphas=np.logspace(-3, 3, 13)),
    "forest": lambda seed: RandomForestRegressor(n_estimators=300, min_samples_leaf=2, random_state=seed),
    "boosting": lambda seed: GradientBoostingRegressor(n_estimators=200, max_depth=2, learning_rate=0.05,
                                                       subsample=0.8, random_state=seed),
}


@settings
class SurrogateConfig:
    """Settings of the surrogate mode (schema: ``search.settings``)."""

    model: Literal[tuple(MODELS)] = "forest"
    descriptors: bool = True
    baselines: bool = True
    validation: Annotated[float, Field(gt=0, lt=1)] = 0.3
    seed: Count = 0

    def __post_init__(self):
        if not self.descriptors and not self.baselines:
            raise LPZeroError("the surrogate needs descriptors and/or baselines as features")


def features(leaves: Leaves, columns: tuple[str, ...]) -> np.ndarray:
    """[len(leaves), len(columns)] rank features (ECDF against ``leaves.reference``; non-finite → 0.5)."""
    columns_ = []
    for name in columns:
        x = leaves.value(name)
        columns_.append(rank(x, x[leaves.reference]))
    x = np.stack(columns_, axis=1)
    return np.where(np.isfinite(x), x, 0.5)


@dataclass
class SurrogateProxy:
    """A fitted surrogate; ``evaluate(cache)`` predicts every architecture of a cache."""

    model: object
    columns: tuple[str, ...]
    name: str

    def __str__(self) -> str:
        return f"{self.name}({', '.join(self.columns)})"

    def evaluate(self, cache) -> np.ndarray:
        return self.model.predict(features(all_leaves(cache), self.columns))


@dataclass
class SurrogateResult:
    proxy: SurrogateProxy
    dropped: tuple[str, ...]
    fit: float  # ρ on the fit fold (in-sample)
    validation: float  # ρ on the validation fold, model fit on the fit fold
    search: float  # ρ on the whole search split, final model (in-sample)
    wall_seconds: float
    validation_positions: np.ndarray  # the inner validation fold (positions in the search split)
    validation_scores: np.ndarray  # the fit-fold model's predictions there (out of fit)


def surrogate_search(cache, config: SurrogateConfig = SurrogateConfig()) -> SurrogateResult:
    """Fit the surrogate on the search split of ``cache`` (reads no held-out target)."""
    start = time.perf_counter()
    leaves = search_leaves(cache)
    candidates = network_columns(cache, config.descriptors, config.baselines)
    finite = {c: np.isfinite(leaves.value(c)).all() for c in candidates}
    columns = tuple(c for c in candidates if finite[c])
    if not columns:
        raise LPZeroError(f"the {cache.name} cache has no descriptor/baseline column finite on the search split")
    x = features(leaves, columns)
    truth = np.asarray(cache.target)[cache.search_ids]
    y = (stats.rankdata(truth) - 0.5) / len(truth)
    fit, validation = inner_split(len(y), config.validation, np.random.default_rng(config.seed))
    model = MODELS[config.model](config.seed).fit(x[fit], y[fit])
    fit_rho = metrics.spearman(model.predict(x[fit]), truth[fit])
    held = model.predict(x[validation]) if len(validation) else np.empty(0)
    val_rho = metrics.spearman(held, truth[validation]) if len(validation) else np.nan
    model = MODELS[config.model](config.seed).fit(x, y)
    proxy = SurrogateProxy(model, columns, config.model)
    return SurrogateResult(proxy, tuple(c for c in candidates if not finite[c]), fit_rho, val_rho,
                           metrics.spearman(model.predict(x), truth), time.perf_counter() - start, validation, held)
