"""The paper's figures (lpzero_core/workbench/plots.py) on the synthetic cache: content, labels and files."""
import itertools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer
from matplotlib.text import Text

from lpzero_core.search import metrics
from lpzero_core.search.proxy import Proxy
from lpzero_core.stats.benchmarks.synthetic import PLANTED
from lpzero_core.workbench import evaluation, plots


@pytest.fixture(scope="module")
def table(synthetic_cache):
    return evaluation.report(synthetic_cache, {"planted": PLANTED}, n_resamples=50)


def _check_files(paths):
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[1].read_bytes()[:5] == b"%PDF-"
    assert not [p for p in paths[0].parent.iterdir() if p.name.startswith(".")], "temporary file left behind"


def _labelled(fig):
    visible = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    assert visible
    for ax in visible:
        assert ax.get_xlabel() or ax.get_title(), "axes without a label"


def test_save_writes_png_and_pdf(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    _check_files(plots.save(fig, tmp_path / "sub" / "figure"))


def test_spearman_bars(table, tmp_path):
    fig = plots.spearman_bars(table)
    ax = fig.axes[0]
    _labelled(fig)
    containers = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(containers) == 1  # one barh call; legend patches and error bars are not bars
    bars = list(containers[0])
    drawn = table[(table["proxy"] != "params_total") & table["spearman"].notna()]
    assert len(bars) == len(drawn)
    widths = [b.get_width() for b in sorted(bars, key=lambda b: b.get_y())]
    assert widths == sorted(widths), "bars are sorted by ρ"
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[-1] == drawn.sort_values("spearman")["proxy"].iloc[-1]
    params_rho = table.set_index("proxy").loc["params_total", "spearman"]
    assert any(np.allclose(line.get_xdata(), params_rho) for line in ax.lines), "the #params line"
    _check_files(plots.save(fig, tmp_path / "bars"))


def test_rank_scatter_grid_titles_hold_tau_and_rho(synthetic_cache, tmp_path):
    ids = synthetic_cache.heldout_ids
    truth = synthetic_cache.target[ids]
    scores = {"planted": PLANTED.evaluate(synthetic_cache, ids), "n_layers": synthetic_cache.descriptors[
        "n_layers"].to_numpy(float)[ids], "noise": np.random.default_rng(0).normal(size=len(ids))}
    fig = plots.rank_scatter_grid(truth, scores, ncols=2)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 3 and len(fig.axes) == 4
    for ax, (name, score) in zip(visible, scores.items()):
        title = ax.get_title()
        assert title.startswith(name)
        assert f"τ = {metrics.kendall(score, truth):.3f}" in title
        assert f"ρ = {metrics.spearman(score, truth):.3f}" in title
        x, y = ax.collections[0].get_offsets().T
        assert sorted(y) == sorted(plots.ranks(truth))
    assert "proxy rank" in visible[-1].get_xlabel() and "ground-truth rank" in visible[0].get_ylabel()
    _check_files(plots.save(fig, tmp_path / "grid"))


def test_ranks_best_is_one_and_nonfinite_last():
    assert plots.ranks([0.1, 5.0, np.nan, 2.0]).tolist() == [3.0, 1.0, 4.0, 2.0]


def test_evolution_curves_mean_and_band(tmp_path):
    rows = []
    for rps, seed in itertools.product((True, False), (0, 1, 2)):
        best = np.maximum.accumulate(np.linspace(0.2, 0.8, 11) + 0.05 * seed - 0.1 * (not rps))
        rows += [{"rps": rps, "seed": seed, "iteration": i, "best": b} for i, b in enumerate(best)]
    curves = pd.DataFrame(rows)
    fig = plots.evolution_curves(curves)
    ax = fig.axes[0]
    _labelled(fig)
    on = curves[curves["rps"]].groupby("iteration")["best"]
    assert np.allclose(ax.lines[0].get_ydata(), on.mean())
    assert "RPS on" in ax.get_legend().get_texts()[0].get_text()
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(on.min().min()) and band.max() == pytest.approx(on.max().max())
    _check_files(plots.save(fig, tmp_path / "evolution"))


def test_n_unary_ablation(tmp_path):
    summaries = pd.DataFrame([{"n_unary": n, "seed": s, "iterations": 50, "search_fitness": 0.5 + 0.1 * n,
                               "heldout_spearman": 0.4 + 0.1 * n, "wall_seconds": 0.1 * 10 ** (n - 2)}
                              for n in (2, 3, 4, 5) for s in (0, 1)])
    fig = plots.n_unary_ablation(summaries)
    left, right = fig.axes
    _labelled(fig)
    assert [t.get_text() for t in left.get_xticklabels()] == ["2", "3", "4", "5"]
    assert np.allclose(left.lines[1].get_ydata(), [0.6, 0.7, 0.8, 0.9])
    assert [p.get_height() for p in right.patches] == pytest.approx([0.1, 1, 10, 100])
    _check_files(plots.save(fig, tmp_path / "ablation"))


def test_cost_scatter_labels_do_not_overlap(table, tmp_path):
    crowded = pd.concat([table.assign(proxy=table["proxy"] + f"_{k}", kendall=table["kendall"] + 0.001 * k)
                         for k in range(4)], ignore_index=True)  # many labels at nearly the same place
    fig = plots.cost_scatter(crowded)
    ax = fig.axes[0]
    _labelled(fig)
    renderer = fig.canvas.get_renderer()
    texts = [t for t in ax.texts if t.get_text() in set(crowded["proxy"])]
    assert len(texts) == crowded["kendall"].notna().sum()
    boxes = [Text.get_window_extent(t, renderer) for t in texts]  # without the annotation lines
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b)
    _check_files(plots.save(fig, tmp_path / "cost"))


def test_expression_tree_shows_every_node(tmp_path):
    proxy = Proxy.parse("element_wise_product(grad.element_wise_abs.l1_norm, act.disconnect.sigmoid)@sum")
    fig = plots.expression_tree(proxy)
    texts = {t.get_text(): t for t in fig.axes[0].texts}
    for fragment in ("sum over sites", "product", "abs", "l1_norm", "G: gradients", "A: activations", "sigmoid",
                     "disconnect"):
        assert any(fragment in text for text in texts), fragment
    dropped = [t for text, t in texts.items() if "activations" in text][0]
    assert dropped.get_alpha() < 1, "the dropped branch is greyed out"
    assert proxy.formula() in fig.axes[0].get_title()
    _check_files(plots.save(fig, tmp_path / "tree"))


def test_mode_comparison_always_draws_the_strongest_structural_baseline():
    """Beside the named references, the structural row of highest held-out ρ gets a line: on GPT-2 that is a
    parameter count, not (n_layers, hidden), and a figure without it would flatter the searched modes."""
    seeds = pd.DataFrame({"mode": ["tree", "tree"], "heldout_spearman": [0.97, 0.96]})
    table = pd.DataFrame({"proxy": ["tree (seed 0 of 2)", "n_layers_hidden", "params_attention", "flops"],
                          "kind": ["mode", "structural", "structural", "structural"],
                          "spearman": [0.97, 0.54, 0.976, 0.73], "spearman_ci_low": [0.96, 0.5, 0.97, 0.7],
                          "spearman_ci_high": [0.98, 0.6, 0.98, 0.76], "n": [150] * 4})
    fig = plots.mode_comparison(seeds, table)
    lines = {line.get_label(): line.get_ydata()[0] for line in fig.axes[0].get_lines() if "ρ =" in line.get_label()}
    assert set(lines) == {"n_layers_hidden: ρ = 0.540", "params_attention: ρ = 0.976"}
    plt.close(fig)
