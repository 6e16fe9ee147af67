"""The structural fallback (workbench/fallback.py): a searched proxy is returned only where it beats the free
descriptor on the inner validation fold; planted signals on the synthetic cache decide which way it must go."""
import dataclasses

import numpy as np

from lpzero_core.search import metrics
from lpzero_core.search.proxy import Proxy
from lpzero_core.search.resample import paired_difference, within_group_permutation
from lpzero_core.stats.benchmarks.synthetic import PLANTED
from lpzero_core.workbench import fallback
from lpzero_core.workbench.evaluation import lexicographic_ranks, regret_reference
from lpzero_core.workbench.modes import run_mode

#: a formula of the search space unrelated to the planted one
UNRELATED = Proxy.parse("element_wise_product(softmax.element_wise_abs.to_mean_scalar, "
                        "jacobian.element_wise_exp.to_std_scalar)@mean")


def _descriptor_planted(cache, noise: float = 0.3):
    """The cache with its ground truth replaced by log(params_total) plus Gaussian noise (noise × its std)."""
    signal = np.log(cache.descriptors["params_total"].to_numpy(float))
    rng = np.random.default_rng(7)
    target = signal + rng.normal(0.0, noise * signal.std(), size=len(signal))
    return dataclasses.replace(cache, manifest={**cache.manifest, "target": target.tolist()}, _memo={})


def _fold(cache, seed=0):
    return {cache.name: fallback.template_fold(len(cache.search_ids), seed)}


def test_planted_formula_beats_the_descriptor_and_is_returned(synthetic_cache):
    selection = fallback.select(PLANTED, [synthetic_cache], _fold(synthetic_cache), seed=0)
    assert selection.choice == "candidate" and selection.proxy is PLANTED
    assert all(v > 0 for v in selection.details["lower_delta"]["candidate_vs_descriptor"])
    assert "returned as found" in fallback.describe(selection)


def test_descriptor_plus_noise_returns_the_descriptor(synthetic_cache):
    cache = _descriptor_planted(synthetic_cache)
    selection = fallback.select(UNRELATED, [cache], _fold(cache), seed=0)
    assert selection.choice in ("descriptor", "refined")
    assert selection.descriptor in ("params_total", "n_layers_hidden")  # chosen on the search split
    assert str(selection.proxy).startswith(("params_total", "n_layers_hidden", "lex(params_total",
                                            "lex(n_layers_hidden"))
    assert "structural fallback" in fallback.describe(selection)
    held = cache.heldout_ids
    rho = lambda scores: np.corrcoef(np.argsort(np.argsort(scores[held])), np.argsort(np.argsort(cache.target[held])))
    assert rho(selection.proxy.evaluate(cache))[0, 1] > rho(UNRELATED.evaluate(cache))[0, 1]


def test_refinement_keeps_the_descriptor_order_and_breaks_ties_by_the_candidate():
    descriptor = np.array([1.0, 1.0, 2.0, 2.0, 3.0])
    candidate = np.array([0.5, 0.1, np.nan, 9.0, 0.0])
    ranks = lexicographic_ranks(descriptor, candidate)
    np.testing.assert_array_equal(ranks, [2, 1, 3, 4, 5])  # NaN lowest within its tie
    assert np.isnan(lexicographic_ranks(np.array([np.nan, 1.0]), np.array([1.0, 2.0]))[0])


def test_paired_difference_of_a_score_with_itself_is_zero():
    rng = np.random.default_rng(0)
    a, truth = rng.normal(size=30), rng.normal(size=30)
    assert np.all(paired_difference(a, a, truth, 200, np.random.default_rng(1)) == 0)
    better = paired_difference(truth + 0.1 * rng.normal(size=30), a, truth, 500, np.random.default_rng(1))
    assert np.quantile(better, 0.1) > 0


def test_fallback_reads_no_heldout_id(synthetic_cache, poisoned):
    """Held-out targets and statistics NaN: every seed's choice and returned proxy are unchanged."""
    cache = _descriptor_planted(synthetic_cache)
    settings = {"iterations": 20, "population": 10}
    clean = run_mode("template", cache, seeds=(0, 1), overrides=settings, n_resamples=10)
    dirty = run_mode("template", poisoned(cache, features=True), seeds=(0, 1), overrides=settings, n_resamples=10)
    assert clean["choices"] == dirty["choices"] and clean["chosen_proxy"] == dirty["chosen_proxy"]
    assert list(clean["table"]["proxy"]) == list(dirty["table"]["proxy"])
    assert set(clean["choices"].values()) <= {"descriptor", "refined", "baseline"}


def test_regret_is_heldout_rho_minus_the_search_split_descriptor(synthetic_cache):
    cache = _descriptor_planted(synthetic_cache)
    summary = run_mode("template", cache, seeds=(0,), overrides={"iterations": 20, "population": 10},
                       n_resamples=10, with_fallback=False)
    name, reference = regret_reference(cache)
    row = summary["table"].iloc[0]
    assert name is not None and row["choice"] == "candidate"
    np.testing.assert_allclose(row["regret_vs_structure"], row["heldout_spearman"] - reference)


class _Fixed:
    """A candidate with fixed scores over every architecture of the cache."""

    def __init__(self, scores):
        self.scores = np.asarray(scores, float)

    def __str__(self) -> str:
        return "fixed"

    def evaluate(self, cache):
        return self.scores


def _levels_planted(cache, within: np.ndarray, descriptor: str):
    """Ground truth = ``descriptor``'s level, far apart, + ``within``: only a within-tie order can add to it."""
    levels = np.unique(fallback.structural_scores(cache)[descriptor], return_inverse=True)[1]
    target = 100.0 * levels + within
    return dataclasses.replace(cache, manifest={**cache.manifest, "target": target.tolist()}, _memo={})


def test_refinement_needs_a_within_tie_order_that_passes_the_permutation_test(synthetic_cache):
    rng = np.random.default_rng(3)
    within = rng.normal(size=len(synthetic_cache))
    cache = _levels_planted(synthetic_cache, within, "n_layers")  # few levels: ties hold much of the order
    informed = fallback.select(_Fixed(within + 0.3 * rng.normal(size=len(within))), [cache], _fold(cache), seed=0)
    assert informed.descriptor == "n_layers" and informed.choice == "refined"
    assert informed.details["refinement_room"][0] >= fallback.MIN_GAIN
    assert informed.details["within_tie_p"][0] < 1 - fallback.CONFIDENCE
    noise = [fallback.select(_Fixed(rng.normal(size=len(within))), [cache], _fold(cache), seed=0) for _ in range(30)]
    refined = [n.choice == "refined" for n in noise]
    assert np.mean(refined) <= 0.25  # a 10 % test: about 3 in 30 noise orders pass by chance
    assert all(n.details["within_tie_p"][0] >= 1 - fallback.CONFIDENCE for n, r in zip(noise, refined) if not r)
    h = cache.heldout_ids
    rho = lambda s: metrics.spearman(s[h], cache.target[h])
    assert rho(informed.proxy.evaluate(cache)) > rho(noise[refined.index(False)].proxy.evaluate(cache))


def test_no_refinement_where_even_a_perfect_within_tie_order_adds_little(synthetic_cache):
    """n_layers_hidden has 19 levels over the 50 search architectures: its ties hold too little of the order."""
    within = np.random.default_rng(3).normal(size=len(synthetic_cache))
    cache = _levels_planted(synthetic_cache, within, "n_layers_hidden")
    selection = fallback.select(_Fixed(within), [cache], _fold(cache), seed=0)
    assert selection.descriptor == "n_layers_hidden" and selection.choice == "descriptor"
    assert 0 < selection.details["refinement_room"][0] < fallback.MIN_GAIN
    assert selection.details["within_tie_p"][0] < 1 - fallback.CONFIDENCE  # the order is right, but it adds little
    assert "not refined: a perfect within-tie order would add" in fallback.describe(selection)


def test_within_group_permutation_p_values():
    rng = np.random.default_rng(0)
    groups, truth = np.repeat(np.arange(4), 12), rng.normal(size=48)
    rho, p = within_group_permutation(truth + 0.5 * rng.normal(size=48), truth, groups, 500, np.random.default_rng(1))
    assert rho > 0.5 and p < 0.01
    p_null = [within_group_permutation(rng.normal(size=48), truth, groups, 200, np.random.default_rng(k))[1]
              for k in range(40)]
    assert 0.3 < np.mean(p_null) < 0.7  # uniform under the null
    rho, p = within_group_permutation(np.arange(4.0), np.arange(4.0), np.arange(4), 10, rng)  # no group of 3
    assert np.isnan(rho) and p == 1.0
