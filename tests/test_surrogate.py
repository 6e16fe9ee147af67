"""The surrogate mode (search/surrogate.py) and the template mode through workbench/modes.py, on the synthetic
cache."""
import dataclasses

import numpy as np
import pytest

from lpzero_core.errors import LPZeroError
from lpzero_core.search.surrogate import SurrogateConfig, features, surrogate_search
from lpzero_core.search.tree import all_leaves


def _heldout_poisoned(cache):
    """Held-out targets and descriptors NaN: a surrogate fit on search ids only cannot notice."""
    heldout = cache.heldout_ids
    target = np.array(cache.target)
    target[heldout] = np.nan
    descriptors = cache.descriptors.copy()
    descriptors.iloc[heldout] = np.nan
    return dataclasses.replace(cache, manifest={**cache.manifest, "target": target.tolist()},
                               descriptors=descriptors, _memo={})


@pytest.mark.parametrize("model", ["ridge", "forest", "boosting"])
def test_surrogate_is_fit_on_search_ids_only(synthetic_cache, model):
    config = SurrogateConfig(model=model, seed=4)
    clean = surrogate_search(synthetic_cache, config)
    poisoned = surrogate_search(_heldout_poisoned(synthetic_cache), config)
    ids = synthetic_cache.search_ids
    np.testing.assert_array_equal(poisoned.proxy.evaluate(synthetic_cache)[ids],
                                  clean.proxy.evaluate(synthetic_cache)[ids])
    assert (poisoned.fit, poisoned.validation, poisoned.search) == (clean.fit, clean.validation, clean.search)
    assert clean.proxy.model.n_features_in_ == len(clean.proxy.columns)


def test_surrogate_same_seed_same_result(synthetic_cache):
    a = surrogate_search(synthetic_cache, SurrogateConfig(model="boosting", seed=1))
    b = surrogate_search(synthetic_cache, SurrogateConfig(model="boosting", seed=1))
    np.testing.assert_array_equal(a.proxy.evaluate(synthetic_cache), b.proxy.evaluate(synthetic_cache))


def test_rank_features_are_anchored_on_the_search_split(synthetic_cache):
    x = features(all_leaves(synthetic_cache), ("n_layers", "hidden"))
    search = x[synthetic_cache.search_ids]
    assert x.min() >= 0 and x.max() <= 1
    np.testing.assert_allclose(search.mean(axis=0), 0.5)  # mid-ranks of the reference itself average 1/2


def test_bad_surrogate_settings_are_one_line_errors(synthetic_cache):
    from lpzero_core.workbench.config import mode_config
    from lpzero_core.workbench.modes import run_mode

    with pytest.raises(LPZeroError, match='model="svm": should be'):
        mode_config("surrogate", 0, {"model": "svm"})

    with pytest.raises(LPZeroError, match="one benchmark"):
        run_mode("surrogate", [synthetic_cache, synthetic_cache], seeds=(0,))


def test_template_and_surrogate_modes_report_search_and_heldout(synthetic_cache, tmp_path):
    from lpzero_core.workbench.modes import run_mode

    for mode, overrides in (("template", {"iterations": 20, "population": 10}), ("surrogate", {"model": "ridge"})):
        summary = run_mode(mode, synthetic_cache, tmp_path / mode, seeds=(0, 1), overrides=overrides,
                           n_resamples=20)
        table = summary["table"]
        assert list(table["seed"]) == [0, 1]
        np.testing.assert_allclose(table["gap"], table["search_spearman"] - table["heldout_spearman"])
        assert (tmp_path / mode / "seeds.csv").exists()
