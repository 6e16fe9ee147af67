import filecmp

import numpy as np
import pytest

from lpzero_core.search.gp import GPConfig, crossover, mutate, offspring, random_proxy, search
from lpzero_core.search.proxy import Proxy

SMALL = dict(population=20, iterations=120, checkpoint_every=25)


@pytest.mark.parametrize("n_unary", [2, 3])
def test_variation_always_gives_valid_genotypes(n_unary):
    rng = np.random.default_rng(0)
    config = GPConfig(n_unary=n_unary)
    population = [random_proxy(rng, config) for _ in range(30)]
    for _ in range(500):
        a, b = population[rng.integers(30)], population[rng.integers(30)]
        for child in (crossover(a, b, rng, config), mutate(a, rng, config), offspring((a, b), rng, config)):
            assert Proxy.parse(str(child)) == child
            assert all(len(chain) == n_unary for chain in child.ops)
        assert not (child.dropped(0) and child.dropped(1))


def test_same_seed_same_history(synthetic_cache, tmp_path):
    config = GPConfig(seed=3, **SMALL)
    a = search(synthetic_cache, config, tmp_path / "a", progress=False)
    b = search(synthetic_cache, config, tmp_path / "b", progress=False)
    assert filecmp.cmp(tmp_path / "a" / "history.csv", tmp_path / "b" / "history.csv", shallow=False)
    assert a.best == b.best and a.fitness == b.fitness
    search(synthetic_cache, GPConfig(seed=4, **SMALL), tmp_path / "c", progress=False)
    assert not filecmp.cmp(tmp_path / "a" / "history.csv", tmp_path / "c" / "history.csv", shallow=False)


def test_killed_run_resumes_to_the_same_end(synthetic_cache, tmp_path):
    config = GPConfig(seed=5, **SMALL)
    full = search(synthetic_cache, config, tmp_path / "full", progress=False)
    search(synthetic_cache, config, tmp_path / "cut", progress=False, stop_after=63)  # killed after iteration 63
    resumed = search(synthetic_cache, config, tmp_path / "cut", resume=True, progress=False)
    assert resumed.best == full.best and resumed.fitness == full.fitness
    assert resumed.evaluations == full.evaluations and resumed.rejected == full.rejected
    assert filecmp.cmp(tmp_path / "full" / "history.csv", tmp_path / "cut" / "history.csv", shallow=False)


def test_resume_refuses_other_settings(synthetic_cache, tmp_path):
    from lpzero_core.errors import LPZeroError

    search(synthetic_cache, GPConfig(seed=5, **SMALL), tmp_path, progress=False, stop_after=30)
    with pytest.raises(LPZeroError, match="other settings"):
        search(synthetic_cache, GPConfig(seed=6, **SMALL), tmp_path, resume=True, progress=False)


def test_search_recovers_the_planted_proxy(synthetic_cache):
    from lpzero_core.search.metrics import spearman

    result = search(synthetic_cache, GPConfig(seed=0, population=40, iterations=400), progress=False)
    heldout = synthetic_cache.heldout_ids
    rho = spearman(result.best.evaluate(synthetic_cache, heldout), synthetic_cache.target[heldout])
    assert rho >= 0.9, (str(result.best), rho)


def test_best_is_never_lost_and_history_logs_every_offspring(synthetic_cache):
    config = GPConfig(seed=1, **SMALL)
    result = search(synthetic_cache, config, progress=False)
    evolve = [r for r in result.history if r["phase"] == "evolve"]
    assert len(evolve) == config.iterations
    accepted = [float(r["fitness"]) for r in result.history if r["fitness"]]
    assert result.fitness == max(accepted)
    assert {r["rejected_by"] for r in result.history} - {""} <= set(result.rejected)
