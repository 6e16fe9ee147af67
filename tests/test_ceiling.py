"""What a benchmark allows: configuration features, retraining noise, the Gaussian noise ceiling, the learning curve."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lpzero_core.errors import LPZeroError
from lpzero_core.stats.benchmarks.base import Benchmark
from lpzero_core.workbench import ceiling
from lpzero_core.workbench.cli import main


class Toy(Benchmark):
    """Depth-and-width architectures whose target is a known function of the configuration plus noise."""

    def descriptors(self, i: int) -> dict[str, float]:
        c = self.configs[i]
        depth = len(c["layers"])
        return {"n_layers": depth, "hidden": c["hidden"], "params_total": c["hidden"] ** 2 * depth}


def toy(n=120, noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    configs = [{"hidden": int(rng.choice([64, 128])),
                "layers": [{"op": str(rng.choice(["sa", "conv"])), "ffn": int(rng.choice([256, 512]))}
                           for _ in range(int(rng.integers(2, 5)))]} for _ in range(n)]
    quality = np.array([c["hidden"] / 64 + sum(layer["op"] == "sa" for layer in c["layers"]) for c in configs])
    return Toy(name="toy", variant="v", arch_keys=[str(i) for i in range(n)], configs=configs,
               target=quality + noise * rng.standard_normal(n), target_name="quality",
               strata=np.array([f"h{c['hidden']}" for c in configs]), search_ids=np.arange(30))


def test_config_table_flattens_one_hot_pads_and_drops_constants():
    table = ceiling.config_table([
        {"hidden": 64, "kind": "a", "fixed": 1, "layers": [{"op": "sa", "w": 2}, {"op": "conv", "w": 4}]},
        {"hidden": 128, "kind": "b", "fixed": 1, "layers": [{"op": "sa", "w": 6}]},
    ])
    assert "fixed" not in table and "layers.0.op_sa" not in table  # constant columns go
    assert table["hidden"].tolist() == [64, 128]
    assert table["kind_a"].tolist() == [1.0, 0.0] and table["layers.1.op_conv"].tolist() == [1.0, 0.0]
    assert table["layers.1.w"].tolist() == [4.0, -1.0]  # the one-layer configuration lacks layer 1
    assert table.dtypes.eq(float).all()


def test_config_table_summarises_numeric_lists():
    table = ceiling.config_table([{"d_inner": [100, 300]}, {"d_inner": [200, 200, 500]}])
    assert table["d_inner.mean"].tolist() == [200.0, 300.0]
    assert table["d_inner.max"].tolist() == [300.0, 500.0]


def test_retraining_noise_is_the_pooled_within_group_sd():
    bench = toy(n=60)
    bench.configs = [{"i": i % 54} for i in range(60)]  # configurations 0..5 occur twice
    bench.target[54:] = bench.target[:6] + np.array([0.2, -0.2, 0.4, 0.0, -0.4, 0.1])
    noise = ceiling.retraining_noise(bench)
    assert (noise["groups"], noise["df"]) == (6, 6)
    expected = np.sqrt(np.sum(np.array([0.2, -0.2, 0.4, 0.0, -0.4, 0.1]) ** 2 / 2) / 6)
    assert noise["sd"] == pytest.approx(expected)
    assert noise["sd_low"] < noise["sd"] < noise["sd_high"]
    bench.configs = [{"i": i} for i in range(60)]
    assert np.isnan(ceiling.retraining_noise(bench)["sd"])


def test_measurement_noise_is_the_sd_of_the_halves_mean_and_ignores_their_offset():
    rng = np.random.default_rng(1)
    n, sd_half = 400, 0.2
    quality = rng.standard_normal(n)
    halves = [quality + sd_half * rng.standard_normal(n) + offset for offset in (0.0, 0.7)]
    bench = toy(n=n)
    bench.extra = {"target_halves": halves}
    noise = ceiling.target_noise(bench)
    assert noise["df"] == n - 1 and noise["groups"] == n
    assert noise["sd_low"] < sd_half / np.sqrt(2) < noise["sd_high"]  # the mean of two halves: σ_h / √2
    assert noise["sd"] == pytest.approx(np.std((halves[0] + halves[1]) / 2 - quality - 0.35, ddof=1), rel=0.15)
    assert ceiling.target_noise(toy()) == ceiling.retraining_noise(toy())  # without halves: repeats, as before


def test_noise_ceiling_matches_simulation():
    rng = np.random.default_rng(0)
    quality = rng.standard_normal(20000)
    observed = quality + 0.5 * rng.standard_normal(20000)
    rho, tau = ceiling.noise_ceiling(observed, 0.5)
    assert rho == pytest.approx(stats.spearmanr(quality, observed).statistic, abs=0.01)
    assert tau == pytest.approx(stats.kendalltau(quality[:4000], observed[:4000]).statistic, abs=0.02)
    assert ceiling.noise_ceiling(observed, 0.0) == pytest.approx((1.0, 1.0))
    assert ceiling.noise_ceiling(observed, 10.0) == (0.0, 0.0)  # the noise exceeds the spread: nothing to rank


def test_learning_curve_rows_and_the_search_split_fit():
    bench = toy()
    curve = ceiling.learning_curve(bench, sizes=[20, 60], repeats=2)
    search = curve[curve["fit"] == "forest on the search split"].iloc[0]
    assert (search["n_train"], search["n_test"]) == (30, 90)
    draws = curve[curve["fit"] == "forest on random draws"]
    assert draws.groupby("n_train").size().to_dict() == {20: 2, 60: 2}
    assert (draws["n_test"] == 120 - draws["n_train"]).all()
    assert draws.loc[draws["n_train"] == 60, "spearman"].min() > 0.8  # the target is a function of the config
    pd.testing.assert_frame_equal(curve, ceiling.learning_curve(bench, sizes=[20, 60], repeats=2))


def test_learning_curve_rejects_sizes_that_leave_no_test_set():
    with pytest.raises(LPZeroError, match="training sizes must lie in 2..117"):
        ceiling.learning_curve(toy(), sizes=[119])


@pytest.mark.needs_data
def test_flexibert_repeats_and_the_ceiling_command(tmp_path, capsys, monkeypatch):
    from lpzero_core.stats.benchmarks import get

    monkeypatch.setenv("LPZERO_CACHE_DIR", str(tmp_path))  # no statistics cache: no oracle rows, the rest still runs

    noise = ceiling.retraining_noise(get("flexibert"))
    assert (noise["groups"], noise["df"]) == (9, 9) and noise["sd"] == pytest.approx(0.603, abs=1e-3)
    status = main(["ceiling", "--benchmark", "flexibert", "--sizes", "50", "--repeats", "1",
                   "--out", str(tmp_path), "--figures", str(tmp_path), "--runs", str(tmp_path)])
    assert status == 0
    curve = pd.read_csv(tmp_path / "flexibert-ceiling.csv")
    assert curve["fit"].tolist()[:3] == ["noise ceiling (σ)", "noise ceiling (σ at its 95 % CI's low end)",
                                         "noise ceiling (σ at its 95 % CI's high end)"]
    assert curve["fit"].tolist()[-2:] == ["forest on the search split", "forest on random draws"]
    out = capsys.readouterr().out
    assert (tmp_path / "flexibert_ceiling.png").exists() and "σ = 0.603" in out and "no held-out oracle rows" in out


def test_oracle_rows_are_the_best_held_out_scalar_chain_and_pair(synthetic_cache):
    from lpzero_core.search import metrics
    from lpzero_core.stats.benchmarks.synthetic import PLANTED

    cache = synthetic_cache.subset(np.arange(80))  # the 50 search architectures and 30 held out: quicker
    single, chain, pair = ceiling.oracle_rows(cache)
    h = cache.heldout_ids
    columns = [*cache.descriptors, *cache.baselines]
    values = {c: (cache.descriptors[c] if c in cache.descriptors else cache.baselines[c]).to_numpy(float)[h]
              for c in columns}
    best = max(abs(metrics.spearman(v, cache.target[h])) for v in values.values() if np.nanstd(v) > 0)
    assert single["spearman"] == pytest.approx(best)
    for m in ceiling.METRICS:  # the pair oracle's candidates include every single score
        assert pair[m] >= max(single[m], chain[m]) - 1e-12
    assert single["best"].startswith("spearman: ")
    # the planted proxy sums two per-site chains; one of them, reduced across sites, already ranks well
    planted = metrics.spearman(PLANTED.evaluate(cache)[h], cache.target[h])
    assert planted > 0.9 and chain["spearman"] > 0.5


def test_ceiling_figure_draws_the_modes_and_the_best_structural_baseline():
    from lpzero_core.workbench import plots

    curve = ceiling.learning_curve(toy(), sizes=[20, 60], repeats=2)
    seeds = pd.DataFrame({"mode": ["tree", "tree", "combine"], "heldout_spearman": [0.8, 0.9, 0.85],
                          "heldout_kendall": [0.6, 0.7, 0.65], "strata_kendall": [0.1, 0.2, 0.15],
                          "top10_kendall": [0.0, 0.1, 0.2]})
    table = pd.DataFrame({"proxy": ["depth", "width", "nwot"], "kind": ["structural", "structural", "baseline"],
                          **{m: [0.5, 0.7, 0.99] for m in ceiling.METRICS}})
    fig = plots.ceiling_curve(curve, seeds, table)
    labels = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    assert "search mode tree: 0.850" in labels and "search mode combine: 0.850" in labels
    assert "width: 0.700" in labels and not any(label.startswith("nwot") for label in labels)
    assert len(fig.axes) == 4
