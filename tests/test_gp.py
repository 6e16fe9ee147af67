import filecmp

import numpy as np
import pytest

from lpzero_core.search.gp import GPConfig, Observer, crossover, history_row, mutate, offspring, random_proxy, search
from lpzero_core.search.proxy import Proxy
from lpzero_core.workbench.runs import search_run

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


class Recorder(Observer):
    """History rows and checkpoints in memory."""

    def __init__(self):
        self.rows, self.states = [], []

    def evaluated(self, step, phase, evaluation, seconds):
        self.rows.append(history_row(step, phase, evaluation))

    def checkpoint(self, state):
        self.states.append(state)


def test_same_seed_same_history(synthetic_cache, tmp_path):
    config = GPConfig(seed=3, **SMALL)
    a = search_run(synthetic_cache, config, tmp_path / "a", progress=False)
    b = search_run(synthetic_cache, config, tmp_path / "b", progress=False)
    for name in ("history.csv", "best.json"):
        assert filecmp.cmp(tmp_path / "a" / name, tmp_path / "b" / name, shallow=False)
    assert a.summary["proxy"] == b.summary["proxy"] and a.summary["search"] == b.summary["search"]
    search_run(synthetic_cache, GPConfig(seed=4, **SMALL), tmp_path / "c", progress=False)
    assert not filecmp.cmp(tmp_path / "a" / "history.csv", tmp_path / "c" / "history.csv", shallow=False)


def test_search_resumes_from_a_snapshot_bit_for_bit(synthetic_cache):
    config = GPConfig(seed=5, **SMALL)
    full, cut, rest = Recorder(), Recorder(), Recorder()
    whole = search(synthetic_cache, config, observer=full, progress=False)
    assert [s.iteration for s in full.states] == [25, 50, 75, 100, 120]
    search(synthetic_cache, config, observer=cut, progress=False, stop_after=63)  # killed after iteration 63
    snapshot = cut.states[-1]
    assert snapshot.iteration == 50 and snapshot == type(snapshot).from_json(snapshot.to_json())
    resumed = search(synthetic_cache, config, state=type(snapshot).from_json(snapshot.to_json()), observer=rest,
                     progress=False)
    assert cut.rows[: snapshot.step] + rest.rows == full.rows
    assert resumed.best == whole.best and resumed.evaluations == whole.evaluations
    assert resumed.rejected == whole.rejected and resumed.state == whole.state


def test_killed_run_resumes_to_the_same_end(synthetic_cache, tmp_path):
    config = GPConfig(seed=5, **SMALL)
    full = search_run(synthetic_cache, config, tmp_path / "full", progress=False)
    cut = search_run(synthetic_cache, config, tmp_path / "cut", progress=False, stop_after=63)  # killed at 63
    assert cut.summary is None and not (tmp_path / "cut" / "summary.json").exists()
    resumed = search_run(synthetic_cache, config, tmp_path / "cut", resume=True, progress=False)
    for key in ("proxy", "search", "heldout", "evaluations", "rejected"):
        assert resumed.summary[key] == full.summary[key]
    for name in ("history.csv", "best.json", "checkpoint.json"):
        assert filecmp.cmp(tmp_path / "full" / name, tmp_path / "cut" / name, shallow=False)


def test_resume_refuses_other_settings(synthetic_cache, tmp_path):
    from lpzero_core.errors import LPZeroError

    search_run(synthetic_cache, GPConfig(seed=5, **SMALL), tmp_path, progress=False, stop_after=30)
    with pytest.raises(LPZeroError, match="other settings"):
        search_run(synthetic_cache, GPConfig(seed=6, **SMALL), tmp_path, resume=True, progress=False)


def test_search_recovers_the_planted_proxy(synthetic_cache):
    from lpzero_core.search.metrics import spearman

    result = search(synthetic_cache, GPConfig(seed=0, population=40, iterations=400), progress=False)
    heldout = synthetic_cache.heldout_ids
    rho = spearman(result.best.evaluate(synthetic_cache, heldout), synthetic_cache.target[heldout])
    assert rho >= 0.9, (str(result.best), rho)


def test_best_is_never_lost_and_history_logs_every_offspring(synthetic_cache):
    config = GPConfig(seed=1, **SMALL)
    recorder = Recorder()
    result = search(synthetic_cache, config, observer=recorder, progress=False)
    evolve = [r for r in recorder.rows if r["phase"] == "evolve"]
    assert len(evolve) == config.iterations
    assert [r["step"] for r in recorder.rows] == list(range(len(recorder.rows)))
    accepted = [float(r["fitness"]) for r in recorder.rows if r["fitness"]]
    assert result.fitness == max(accepted)
    assert {r["rejected_by"] for r in recorder.rows} - {""} <= set(result.rejected)
