"""Experiment helpers behind the notebooks (lpzero_core/workbench/experiments.py) and the explorer of notebook 00."""

import numpy as np
import pandas as pd
import pytest

from lpzero_core.errors import LPZeroError
from lpzero_core.search import metrics
from lpzero_core.search.gp import GPConfig
from lpzero_core.search.proxy import RELEASED, Proxy
from lpzero_core.stats.benchmarks.synthetic import PLANTED
from lpzero_core.workbench import experiments, runs
from lpzero_core.workbench.evaluation import report

TINY = GPConfig(population=10, iterations=25)


def test_project_path_resolves_against_the_root(tmp_path):
    assert experiments.project_path("runs/x") == experiments.PROJECT_ROOT / "runs" / "x"
    assert experiments.project_path(tmp_path) == tmp_path
    assert experiments.project_path(None) is None
    # the root is the checkout: a wrong number of parents would point into lpzero_core/ or above the repository
    assert 'name = "lpzero-workbench"' in (experiments.PROJECT_ROOT / "pyproject.toml").read_text()


def test_prepare_cache_synthetic_writes_once(tmp_path):
    cache = experiments.prepare_cache("synthetic", directory=tmp_path, n_archs=8, n_search=4)
    assert len(cache) == 8 and cache.search_ids.tolist() == [0, 1, 2, 3]
    stamp = (tmp_path / "manifest.json").stat().st_mtime_ns
    again = experiments.prepare_cache("synthetic", directory=tmp_path, n_archs=8, n_search=4)
    assert (tmp_path / "manifest.json").stat().st_mtime_ns == stamp, "same settings: loaded, not rewritten"
    assert np.array_equal(again.target, cache.target)


def test_best_so_far_is_monotone_and_counts_rejected_iterations():
    history = pd.DataFrame({"phase": ["init", "init", "evolve", "evolve", "evolve", "evolve"],
                            "fitness": [0.3, 0.5, np.nan, 0.4, 0.7, np.nan]})
    curve = experiments.best_so_far(history)
    assert curve["iteration"].tolist() == [0, 1, 2, 3, 4]
    assert curve["best"].tolist() == [0.5, 0.5, 0.5, 0.7, 0.7]


def test_run_search_writes_and_reuses(synthetic_cache, tmp_path):
    summary = experiments.run_search(synthetic_cache, TINY, tmp_path / "run")
    for name in ("history.csv", "best.json", "summary.json", "checkpoint.json"):
        assert (tmp_path / "run" / name).exists()
    best = experiments.load_proxy(tmp_path / "run" / "best.json")
    assert str(best) == summary["proxy"]
    heldout = synthetic_cache.heldout_ids
    assert summary["heldout"]["spearman"] == pytest.approx(
        metrics.spearman(best.evaluate(synthetic_cache, heldout), synthetic_cache.target[heldout]))
    stamp = (tmp_path / "run" / "history.csv").stat().st_mtime_ns
    assert experiments.run_search(synthetic_cache, TINY, tmp_path / "run") == summary
    assert (tmp_path / "run" / "history.csv").stat().st_mtime_ns == stamp, "same settings: reused"
    changed = experiments.run_search(synthetic_cache, GPConfig(population=10, iterations=26), tmp_path / "run")
    assert changed["config"]["iterations"] == 26
    assert len(experiments.best_so_far(experiments.read_history(tmp_path / "run"))) == 27
    subset = synthetic_cache.subset(np.arange(100))
    assert runs.cache_identity(subset) != runs.cache_identity(synthetic_cache)


def test_rps_study_curves_and_summaries(synthetic_cache, tmp_path):
    summaries, curves = experiments.rps_study(synthetic_cache, TINY, [0, 1, 2], tmp_path)
    assert len(summaries) == 6 and summaries["rps"].tolist() == [True] * 3 + [False] * 3
    assert curves.groupby(["rps", "seed"]).size().eq(TINY.iterations + 1).all()
    assert curves.groupby(["rps", "seed"])["best"].apply(lambda b: b.is_monotonic_increasing).all()
    last = curves[curves["iteration"] == TINY.iterations].set_index(["rps", "seed"])["best"]
    assert np.allclose(last.to_numpy(), summaries["search_fitness"].to_numpy())
    for row in summaries.itertuples():  # RPS off keeps only the rules that make a proxy undefined
        rules = set(experiments.read_history(row.out)["rejected_by"]) - {""}
        assert row.rps or rules <= {"both_disconnected", "undefined_correlation"}
    assert (tmp_path / "curves.csv").exists() and (tmp_path / "summaries.csv").exists()


def test_n_unary_study_uses_each_chain_length(synthetic_cache, tmp_path):
    summaries = experiments.n_unary_study(synthetic_cache, GPConfig(population=6, iterations=4), [2, 3], [0],
                                          tmp_path)
    assert summaries["n_unary"].tolist() == [2, 3]
    for row in summaries.itertuples():
        proxy = Proxy.parse(row.proxy)
        assert len(proxy.ops[0]) == len(proxy.ops[1]) == row.n_unary


def test_load_proxy_and_default_scatter(synthetic_cache, tmp_path):
    (tmp_path / "p.json").write_text(PLANTED.to_json())
    assert experiments.load_proxy(tmp_path / "p.json") == PLANTED
    assert experiments.load_proxy(str(PLANTED)) == PLANTED
    with pytest.raises(LPZeroError, match="no proxy file"):
        experiments.load_proxy(tmp_path / "missing.json")
    table = report(synthetic_cache, {"planted": PLANTED}, n_resamples=20)
    names = experiments.default_scatter(table, 5)
    assert names[:1] == ["planted"] and "params_total" in names and len(names) == 5
    assert "lpzero_gpt2 (released)" in names
    scores = experiments.scores_for(synthetic_cache, table, {"planted": PLANTED}, names)
    assert np.allclose(scores["planted"], PLANTED.evaluate(synthetic_cache))
    with pytest.raises(LPZeroError, match="unknown proxy"):
        experiments.scores_for(synthetic_cache, table, {}, ["nope"])


def test_explorer_updates_on_every_change(synthetic_cache, tmp_path):
    from lpzero_core.workbench.explore import Explorer

    experiments.run_search(synthetic_cache, TINY, tmp_path / "runs" / "a")
    app = Explorer(synthetic_cache, tmp_path / "runs")
    heldout = synthetic_cache.heldout_ids
    truth = synthetic_cache.target[heldout]
    assert app.proxy() == RELEASED["lpzero_gpt2"]
    result = app.set_proxy(PLANTED)
    assert app.proxy() == PLANTED
    assert result["spearman"] == pytest.approx(metrics.spearman(PLANTED.evaluate(synthetic_cache, heldout), truth))
    assert app.plot.value[:8] == b"\x89PNG\r\n\x1a\n"  # the rank scatter
    before = app.plot.value
    app.binary.value = "element_wise_product"  # one widget change re-scores and redraws at once
    assert app.plot.value != before
    assert app.last["proxy"].binary == "element_wise_product"
    changed = PLANTED.__class__(PLANTED.inputs, PLANTED.ops, "element_wise_product", "mean")
    assert app.last["kendall"] == pytest.approx(metrics.kendall(changed.evaluate(synthetic_cache, heldout), truth))
    app.split.value = "search"
    assert app.last["n"] == len(synthetic_cache.search_ids)
    app.chains[0][0].value = "disconnect"
    app.chains[1][0].value = "disconnect"
    assert "error" in app.last and "invalid" in app.result.value

    assert app.history_file.options and app.history_top.options  # the GP history tab lists the run's proxies
    picked = app.history_top.options[0][1]
    app.history_top.value = picked
    assert str(app.proxy()) == picked

    (tmp_path / "three.json").write_text(Proxy(("act", "grad"), (("element_wise_abs",) * 3, ("sigmoid",) * 3))
                                         .to_json())
    app.path.value = str(tmp_path / "three.json")
    app.load()
    assert len(app.chains[0]) == 3 and app.last["proxy"].ops[1] == ("sigmoid",) * 3
    app.path.value = str(tmp_path / "missing.json")
    app.load()
    assert "could not load" in app.message.value


def test_lexicographic_ranks_structure_first_and_keeps_ties(synthetic_cache):
    from lpzero_core.workbench.evaluation import lexicographic

    d = synthetic_cache.descriptors
    structure = (d["n_layers"] * 1e6 + d["hidden"]).to_numpy(float)
    ranks = lexicographic(structure, synthetic_cache)  # structure broken by structure: ties stay ties
    assert metrics.kendall(ranks, structure) == pytest.approx(1.0)
    assert len(np.unique(ranks)) == len(np.unique(structure))
    noise = np.random.default_rng(0).normal(size=len(structure))
    ranks = lexicographic(noise, synthetic_cache)  # a proxy only reorders within a stratum
    assert (np.diff(structure[np.argsort(ranks)]) >= 0).all() and len(np.unique(ranks)) == len(ranks)


def test_run_search_resumes_an_interrupted_run(synthetic_cache, tmp_path, monkeypatch):
    """A notebook stopped mid-search continues from its checkpoint (not from scratch) and ends as an uninterrupted
    run would."""
    whole = experiments.run_search(synthetic_cache, TINY, tmp_path / "whole")
    config = GPConfig(population=10, iterations=25, checkpoint_every=5)
    interrupted = runs.search_run(synthetic_cache, config, tmp_path / "run", stop_after=10)
    assert interrupted.summary is None and runs.resumable(tmp_path / "run", synthetic_cache, config)
    starts = []
    search = runs.gp.search

    def spy(*args, state=None, **kwargs):
        starts.append(state)
        return search(*args, state=state, **kwargs)

    monkeypatch.setattr(runs.gp, "search", spy)
    resumed = experiments.run_search(synthetic_cache, config, tmp_path / "run")
    assert starts[0] is not None and starts[0].iteration == 10, "resumed from the checkpoint"
    assert resumed["proxy"] == whole["proxy"]
    assert (tmp_path / "run" / "history.csv").read_text() == (tmp_path / "whole" / "history.csv").read_text()
    assert not runs.resumable(tmp_path / "other", synthetic_cache, config)
