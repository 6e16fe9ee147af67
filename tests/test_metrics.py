import numpy as np
import pytest
from scipy import stats

from lpzero_core.search import metrics


def test_against_scipy():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=60), rng.normal(size=60)
    y = x + 0.5 * y
    assert metrics.kendall(x, y) == pytest.approx(stats.kendalltau(x, y).statistic)
    assert metrics.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)


def test_hand_computed_case():
    score, truth = [1, 2, 3, 4], [1, 3, 2, 4]
    # 6 pairs, one discordant (2,3): τ = (5 − 1) / 6; ρ = 1 − 6·Σd²/(n(n²−1)) = 1 − 6·2/60
    assert metrics.kendall(score, truth) == pytest.approx(4 / 6)
    assert metrics.spearman(score, truth) == pytest.approx(0.8)


def test_undefined_is_nan():
    assert np.isnan(metrics.spearman([1, 1, 1, 1], [1, 2, 3, 4]))
    assert np.isnan(metrics.kendall([1, np.inf, 2, 3], [1, 2, 3, 4]))


def test_top_k_uses_best_by_truth():
    truth = np.arange(100.0)
    score = truth.copy()
    score[:50] = -truth[:50]  # the worse half is ranked backwards, the top half perfectly
    assert metrics.top_k(score, truth, 0.3) == pytest.approx(1.0)
    assert metrics.kendall(score, truth) < 0.6


def test_bootstrap_ci_is_seeded():
    rng = np.random.default_rng(1)
    x = rng.normal(size=80)
    y = x + rng.normal(size=80)
    a = metrics.bootstrap_ci(x, y, seed=7, n_resamples=200)
    assert a == metrics.bootstrap_ci(x, y, seed=7, n_resamples=200)
    assert a != metrics.bootstrap_ci(x, y, seed=8, n_resamples=200)
    assert a[0] < metrics.kendall(x, y) < a[1]


def test_stratified_and_partial():
    depth = np.repeat([2, 4], 50)
    rng = np.random.default_rng(2)
    truth = depth + rng.normal(scale=0.1, size=100)
    assert metrics.spearman(depth, truth) > 0.8
    assert np.isnan(metrics.stratified(depth, truth, depth))  # constant within every stratum: undefined
    # a defined case: within stratum 2 the score ranks truth perfectly, within stratum 4 reversed; sizes 50 and 25
    strata = np.repeat([2, 4], [50, 25])
    inner = rng.normal(size=75)
    score = np.where(strata == 2, inner, -inner)
    assert metrics.stratified(score, inner, strata) == pytest.approx((50 * 1.0 + 25 * -1.0) / 75)
    assert abs(metrics.partial_spearman(depth + rng.normal(scale=1e-6, size=100), truth, depth)) < 0.2
    assert metrics.partial_spearman(truth, truth, depth) == pytest.approx(1.0)
