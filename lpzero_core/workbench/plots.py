"""The paper's figures: one function per figure, each taking data and returning a matplotlib ``Figure``.

=====  ===========================  ==================================================================
 fig   function                     data
=====  ===========================  ==================================================================
 a     ``spearman_bars``            an ``evaluation.report`` table (held-out ρ with bootstrap CIs)
 b     ``rank_scatter_grid``        ground truth and a dict of scores (one panel per proxy)
 c     ``evolution_curves``         best-so-far curves (``experiments.rps_study``)
 d     ``n_unary_ablation``         run summaries (``experiments.n_unary_study``)
 e     ``cost_scatter``             an ``evaluation.report`` table (τ vs seconds per architecture)
 f     ``expression_tree``          a ``Proxy``
=====  ===========================  ==================================================================

Conventions: every score is higher = better, so rank 1 is the best architecture (by ground truth on the y axis
of a rank scatter, by the proxy on its x axis). Colours follow the row ``kind`` of the report (``KIND_COLORS``).
``save(fig, stem)`` writes ``stem.png`` (150 dpi) and ``stem.pdf``, each atomically (``data.atomic_write``).
"""
from __future__ import annotations

import io
from contextlib import contextmanager
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.text import Text
from scipy import stats

from lpzero_core.files import atomic_write
from lpzero_core.search import metrics
from lpzero_core.search.ops import BINARY_OPS, INPUT_SYMBOL, UNARY_OPS
from lpzero_core.search.proxy import Proxy

KIND_COLORS = {"searched": "#d62728", "lpzero": "#ff7f0e", "baseline": "#1f77b4", "structural": "#7f7f7f"}
KIND_LABELS = {"searched": "searched (this run)", "lpzero": "LPZero released", "baseline": "zero-cost baseline",
               "structural": "structural"}
RPS_COLORS = {True: "#d62728", False: "#1f77b4"}


@contextmanager
def _style():
    """Seaborn's whitegrid look at a legible size, for the figures made inside the block."""
    with sns.axes_style("whitegrid"), plt.rc_context({"font.size": 10, "axes.titlesize": 10,
                                                       "axes.labelsize": 10, "legend.fontsize": 9}):
        yield


def save(fig: plt.Figure, stem: str | Path, dpi: int = 150) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` (each through a temporary file and a rename); returns the paths."""
    stem = Path(stem)
    paths = []
    for ext in ("png", "pdf"):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=ext, dpi=dpi, bbox_inches="tight")
        path = stem.with_name(f"{stem.name}.{ext}")
        atomic_write(path, buffer.getvalue())
        paths.append(path)
    return paths


def params_baseline(table: pd.DataFrame) -> str:
    """The #params row of a report: ``params_decoder`` where present (GPT-2 LTS convention), else
    ``params_total``."""
    names = set(table["proxy"])
    for name in ("params_decoder", "params_total"):
        if name in names:
            return name
    raise ValueError("the table has no params_decoder or params_total row")


# -- a: sorted bars ----------------------------------------------------------------------------------------------
def spearman_bars(table: pd.DataFrame, baseline: str | None = None, title: str = "") -> plt.Figure:
    """Held-out Spearman ρ of every row, sorted, with bootstrap 95 % CI whiskers; the #params baseline is the
    dashed vertical line (its CI the shaded band). Rows whose ρ is undefined are listed under the axis."""
    baseline = baseline or params_baseline(table)
    base = table[table["proxy"] == baseline].iloc[0]
    rows = table[table["proxy"] != baseline]
    undefined = rows[rows["spearman"].isna()]["proxy"].tolist()
    rows = rows.dropna(subset=["spearman"]).sort_values("spearman")
    with _style():
        fig, ax = plt.subplots(figsize=(7.5, 0.28 * len(rows) + 1.6))
        y = np.arange(len(rows))
        colors = [KIND_COLORS.get(k, "#444444") for k in rows["kind"]]
        err = np.vstack([rows["spearman"] - rows["spearman_ci_low"], rows["spearman_ci_high"] - rows["spearman"]])
        ax.barh(y, rows["spearman"], color=colors, height=0.7, zorder=2,
                xerr=np.nan_to_num(err), error_kw={"ecolor": "#333333", "elinewidth": 0.8, "capsize": 2})
        ax.axvspan(base["spearman_ci_low"], base["spearman_ci_high"], color="#2ca02c", alpha=0.12, lw=0, zorder=0,
                   label="#params 95 % CI")
        ax.axvline(base["spearman"], color="#2ca02c", ls="--", lw=1.5, zorder=3,
                   label=f"#params ({baseline}): ρ = {base['spearman']:.2f}")
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y, rows["proxy"])
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_xlim(min(-0.1, float(np.nanmin(rows["spearman_ci_low"])) - 0.05), 1.0)
        ax.set_xlabel(f"Spearman ρ on {int(base['n'])} held-out architectures (bars: 95 % bootstrap CI)")
        handles = [plt.Rectangle((0, 0), 1, 1, color=KIND_COLORS[k]) for k in KIND_COLORS if k in set(rows["kind"])]
        labels = [KIND_LABELS[k] for k in KIND_COLORS if k in set(rows["kind"])]
        line = ax.get_legend_handles_labels()
        ax.legend(handles + line[0], labels + line[1], loc="lower center", bbox_to_anchor=(0.4, 1.0), ncol=2,
                  frameon=False)
        fig.suptitle(title or "Held-out Spearman ρ of every proxy")
        if undefined:
            fig.text(0.01, -0.01, "ρ undefined (constant or non-finite scores): " + ", ".join(undefined),
                     fontsize=8, va="top", wrap=True)
        fig.tight_layout()
    return fig


# -- b: rank scatter ---------------------------------------------------------------------------------------------
def ranks(values) -> np.ndarray:
    """Rank 1 = highest value (ties share their average rank); non-finite values rank last."""
    values = np.asarray(values, dtype=float)
    return stats.rankdata(-np.where(np.isfinite(values), values, -np.inf))


def rank_scatter(ax: plt.Axes, score, truth, name: str, color: str = "#1f77b4") -> tuple[float, float]:
    """One rank scatter (x: proxy rank, y: ground-truth rank, 1 = best) titled with τ and ρ; returns (τ, ρ)."""
    tau, rho = metrics.kendall(score, truth), metrics.spearman(score, truth)
    n = len(truth)
    ax.scatter(ranks(score), ranks(truth), s=9, alpha=0.6, color=color, edgecolors="none")
    ax.plot([1, n], [1, n], color="black", lw=0.7, ls=":")
    ax.set_xlim(0, n + 1)
    ax.set_ylim(0, n + 1)
    ax.set_aspect("equal")
    ax.set_title(f"{name}\nτ = {tau:.3f}   ρ = {rho:.3f}")
    return tau, rho


def rank_scatter_grid(truth, scores: dict[str, np.ndarray], kinds: dict[str, str] | None = None,
                      ncols: int = 3, title: str = "") -> plt.Figure:
    """A grid of rank scatters, one per entry of ``scores`` (arrays aligned with ``truth``)."""
    kinds = kinds or {}
    nrows = int(np.ceil(len(scores) / ncols))
    with _style():
        fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 3.5 * nrows + 0.4), squeeze=False)
        for ax, (name, score) in zip(axes.flat, scores.items()):
            rank_scatter(ax, score, truth, name, KIND_COLORS.get(kinds.get(name, ""), "#1f77b4"))
        for ax in axes.flat[len(scores):]:
            ax.set_visible(False)
        for ax in axes[-1]:
            ax.set_xlabel("proxy rank (1 = best)")
        for ax in axes[:, 0]:
            ax.set_ylabel("ground-truth rank (1 = best)")
        fig.suptitle(title or f"Proxy rank vs ground-truth rank ({len(truth)} held-out architectures)")
        fig.tight_layout()
    return fig


# -- c: evolution ------------------------------------------------------------------------------------------------
def evolution_curves(curves: pd.DataFrame, fitness: str = "Spearman ρ", title: str = "") -> plt.Figure:
    """Best-so-far search fitness vs iteration, with and without RPS: the mean over seeds as a line and the
    min–max range over seeds as a band. ``curves`` has columns ``rps``, ``seed``, ``iteration``, ``best``."""
    with _style():
        fig, ax = plt.subplots(figsize=(6.5, 4))
        for rps, group in curves.groupby("rps", sort=False):
            table = group.pivot(index="iteration", columns="seed", values="best")
            color = RPS_COLORS[bool(rps)]
            ax.plot(table.index, table.mean(axis=1), color=color, lw=1.8,
                    label=f"RPS {'on' if rps else 'off'} (mean of {table.shape[1]} seeds)")
            ax.fill_between(table.index, table.min(axis=1), table.max(axis=1), color=color, alpha=0.18, lw=0)
        ax.set_xlabel("iteration (offspring; 0 = initial population)")
        ax.set_ylabel(f"best-so-far fitness ({fitness}, search split)")
        ax.set_title(title or "GP search with and without rule-based pruning (band: min–max over seeds)")
        ax.legend(loc="lower right")
        fig.tight_layout()
    return fig


# -- d: n_unary ablation -----------------------------------------------------------------------------------------
def n_unary_ablation(summaries: pd.DataFrame, title: str = "") -> plt.Figure:
    """Left: held-out ρ and search fitness of the best proxy per n_unary (points: seeds, line: mean).
    Right: wall time per search run. ``summaries`` has the columns of ``experiments.SUMMARY_COLUMNS``."""
    values = sorted(summaries["n_unary"].unique())
    position = {v: k for k, v in enumerate(values)}
    x = summaries["n_unary"].map(position).to_numpy(float)
    jitter = np.linspace(-0.08, 0.08, max(1, summaries["seed"].nunique()))
    offset = summaries["seed"].map({s: jitter[k] for k, s in enumerate(sorted(summaries["seed"].unique()))})
    with _style():
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8), gridspec_kw={"width_ratios": [1.4, 1]})
        for column, color, label in (("search_fitness", "#7f7f7f", "search split (fitness)"),
                                     ("heldout_spearman", "#d62728", "held-out ρ")):
            means = summaries.groupby("n_unary")[column].mean().reindex(values)
            left.scatter(x + offset, summaries[column], color=color, s=22, alpha=0.7)
            left.plot(range(len(values)), means.to_numpy(), color=color, marker="o", lw=1.6, label=label)
        left.set_xticks(range(len(values)), [str(v) for v in values])
        left.set_xlabel("unary ops per branch (n_unary)")
        left.set_ylabel("Spearman ρ of the best proxy")
        left.legend(loc="best")
        iterations = sorted(summaries["iterations"].unique())
        seeds = summaries["seed"].nunique()
        left.set_title(f"Quality ({seeds} seed{'s' if seeds > 1 else ''}, "
                       f"{'/'.join(str(i) for i in iterations)} iterations)")
        seconds = summaries.groupby("n_unary")["wall_seconds"].mean().reindex(values)
        right.bar(range(len(values)), seconds.to_numpy(), color="#1f77b4", width=0.6)
        right.set_xticks(range(len(values)), [str(v) for v in values])
        right.set_xlabel("unary ops per branch (n_unary)")
        right.set_ylabel("seconds per search run (mean)")
        right.set_yscale("log")
        right.set_title("Cost (n_unary > 2: partly estimated from samples)")
        fig.suptitle(title or "Ablation over the unary chain length")
        fig.tight_layout()
    return fig


# -- e: cost vs quality ------------------------------------------------------------------------------------------
def _spread_labels(ax: plt.Axes, texts: list, pad: float = 1.0) -> None:
    """Move annotation texts down (in display space, top label first) until no two label boxes overlap; the
    annotation line keeps each label tied to its point."""
    renderer = ax.figure.canvas.get_renderer()
    boxes = [Text.get_window_extent(t, renderer) for t in texts]  # the text alone, without its annotation line
    placed: list[tuple[float, float, float, float]] = []
    points_per_pixel = 72.0 / ax.figure.dpi
    for i in sorted(range(len(texts)), key=lambda k: -boxes[k].y1):
        x0, y0, x1, y1 = boxes[i].x0, boxes[i].y0, boxes[i].x1, boxes[i].y1
        shift = 0.0
        for _ in range(len(placed) + 1):
            hits = [p for p in placed if x0 < p[2] and p[0] < x1 and y0 + shift < p[3] and p[1] < y1 + shift]
            if not hits:
                break
            shift = min(p[1] for p in hits) - pad - y1
        placed.append((x0, y0 + shift, x1, y1 + shift))
        if shift:
            x, y = texts[i].get_position()
            texts[i].set_position((x, y + shift * points_per_pixel))


def cost_scatter(table: pd.DataFrame, floor: float = 1e-4, title: str = "") -> plt.Figure:
    """Held-out Kendall τ vs cost in seconds per architecture (log axis), one labelled point per row.

    Costs below ``floor`` (the structural baselines read a table: ≈ 0 s) are drawn at ``floor``. Template proxies
    (searched and released) share one cost: the extraction of all six inputs.
    """
    rows = table.dropna(subset=["kendall"]).reset_index(drop=True)
    cost = np.maximum(rows["seconds_per_arch"].to_numpy(float), floor)
    with _style():
        fig, ax = plt.subplots(figsize=(8, 5.5))
        for kind, color in KIND_COLORS.items():
            mask = (rows["kind"] == kind).to_numpy()
            if mask.any():
                ax.scatter(cost[mask], rows["kendall"][mask], color=color, s=36, label=KIND_LABELS[kind],
                           edgecolors="white", linewidths=0.5, zorder=3)
        ax.set_xscale("log")
        texts = [ax.annotate(name, (c, t), xytext=(5, 0), textcoords="offset points", fontsize=7, va="center",
                             arrowprops={"arrowstyle": "-", "color": "#999999", "lw": 0.5})
                 for name, c, t in zip(rows["proxy"], cost, rows["kendall"])]
        ax.set_xlim(floor / 2, max(cost.max() * 8, floor * 10))
        lo, hi = rows["kendall"].min(), rows["kendall"].max()
        ax.set_ylim(lo - 0.08 * (hi - lo + 0.1), hi + 0.08 * (hi - lo + 0.1))
        ax.axhline(0, color="black", lw=0.7)
        ax.set_xlabel(f"cost: seconds per architecture (log; ≈ 0 s drawn at {floor:g} s)")
        ax.set_ylabel(f"Kendall τ on {int(rows['n'].iloc[0])} held-out architectures")
        ax.set_title(title or "Ranking quality vs cost of each proxy")
        ax.legend(loc="best")
        fig.tight_layout()
        _spread_labels(ax, texts)
    return fig


# -- f: expression tree ------------------------------------------------------------------------------------------
_INPUT_NAMES = {"act": "activations", "grad": "gradients", "head": "head outputs", "softmax": "attention softmax",
                "weight": "weights", "jacobian": "jacobian"}


def _op_label(name: str) -> str:
    """``element_wise_pow`` → ``pow  (x²)``: the op name and its formula on a placeholder."""
    short = name.replace("element_wise_", "")
    formula = UNARY_OPS[name].formula.format("x")
    return short if formula in ("x", short + "(x)") else f"{short}  {formula}"


def expression_tree(proxy: Proxy, title: str = "") -> plt.Figure:
    """The proxy as a tree: aggregation over sites at the root, the binary op below it, then each branch's
    unary chain from last op (top) to first op (just above its input leaf). A dropped branch is greyed out."""
    depth = max(len(proxy.ops[0]), len(proxy.ops[1]))
    levels = depth + 4  # root, binary, site mean, ops..., input
    with _style():
        fig, ax = plt.subplots(figsize=(7, 1.0 + 0.85 * levels))
        ax.set_axis_off()
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.6, levels - 0.4)
        box = lambda x, y, text, color, alpha=1.0: ax.text(
            x, y, text, ha="center", va="center", fontsize=10, alpha=alpha, zorder=3,
            bbox={"boxstyle": "round,pad=0.4", "fc": color, "ec": "#333333", "alpha": alpha})
        edge = lambda x0, y0, x1, y1, alpha=1.0: ax.plot([x0, x1], [y0, y1], color="#555555", lw=1.2,
                                                          alpha=alpha, zorder=1)
        top = levels - 1
        box(0.5, top, f"{proxy.agg} over sites l", "#fde0c5")
        box(0.5, top - 1, f"{proxy.binary.replace('element_wise_', '')}  ({BINARY_OPS[proxy.binary].symbol})",
            "#f9c0c0")
        edge(0.5, top, 0.5, top - 1)
        for k, x in ((0, 0.27), (1, 0.73)):
            alpha = 0.35 if proxy.dropped(k) else 1.0
            y = top - 2
            edge(0.5, top - 1, x, y, alpha)
            box(x, y, "mean over elements" + ("  (dropped)" if proxy.dropped(k) else ""), "#e8e8e8", alpha)
            for name in reversed(proxy.ops[k]):
                edge(x, y, x, y - 1, alpha)
                y -= 1
                box(x, y, _op_label(name), "#cfe2f3", alpha)
            edge(x, y, x, 0, alpha)
            box(x, 0, f"{INPUT_SYMBOL[proxy.inputs[k]]}: {_INPUT_NAMES[proxy.inputs[k]]}", "#d9ead3", alpha)
        ax.set_title(title or f"{proxy.formula()}", fontsize=10)
        fig.tight_layout()
    return fig


# -- LPZero's released FlexiBERT proxy by batch size ----------------------------------------------------------------
def batch_curve(table: pd.DataFrame, title: str = "") -> plt.Figure:
    """Per batch shape (x, in the table's order): Spearman ρ of our released-proxy values with LPZero's published
    column, and each one's ρ with GLUE. ``table`` is ``batch_study.summarize``'s."""
    x = np.arange(len(table))
    with _style():
        fig, ax = plt.subplots(figsize=(6, 3.8))
        for column, color, label in (("agreement_spearman", "#2ca02c", "ours vs LPZero's published values"),
                                     ("ours_vs_glue", "#d62728", "ours vs GLUE"),
                                     ("theirs_vs_glue", "#7f7f7f", "LPZero's values vs GLUE")):
            ax.plot(x, table[column].to_numpy(float), marker="o", color=color, lw=1.6, label=label,
                    ls="--" if column == "theirs_vs_glue" else "-")
        ax.set_xticks(x, table["batch"].tolist())
        ax.set_xlabel("batch (sequences × tokens)")
        ax.set_ylabel("Spearman ρ")
        ax.set_title(title or f"LPZero's FlexiBERT proxy on the port, by batch (n = {int(table['n'].max())})")
        ax.legend(loc="best")
        fig.tight_layout()
    return fig


# -- LLaMA downstream ---------------------------------------------------------------------------------------------
def downstream_budgets(table: pd.DataFrame, title: str = "") -> plt.Figure:
    """Held-out perplexity (log axis) against the MLP budget, one line per method of a ``llama.downstream``
    table (``budget, method, ppl``): the searches in red shades, the rules in blue shades, the random allocations
    as their mean and best (grey), the benchmark's best measured row (black, dotted) and the full parent (a
    horizontal line)."""
    methods = [m for m in dict.fromkeys(table["method"]) if not m.startswith("random-") and m != "full parent"]
    searches = [m for m in methods if m.startswith("search:")]
    reds, blues = sns.color_palette("Reds_r", len(searches) + 2), sns.color_palette("Blues_r", 6)
    style = {m: {"color": reds[k], "marker": "o", "lw": 1.8} for k, m in enumerate(searches)}
    style |= {m: {"color": blues[k], "marker": "s", "lw": 1.2} for k, m in enumerate(("uniform", "greedy", "owl",
                                                                                     "flap"))}
    style |= {"random (mean)": {"color": "#7f7f7f", "marker": "x", "lw": 1.0, "ls": "--"},
              "random (best)": {"color": "#7f7f7f", "marker": "^", "lw": 1.0},
              "benchmark best": {"color": "black", "marker": "*", "lw": 1.0, "ls": ":"}}
    with _style():
        fig, ax = plt.subplots(figsize=(8.2, 4.2))
        for method in methods:
            rows = table[table["method"] == method].sort_values("budget")
            ax.plot(rows["budget"], rows["ppl"], label=method, **style.get(method, {"marker": "o"}))
        full = table[table["method"] == "full parent"]
        if len(full):
            ax.axhline(float(full["ppl"].iloc[0]), color="#2ca02c", lw=1, ls="--", label="full parent")
        ax.set_yscale("log")
        ax.set_xlabel("MLP budget (kept fraction of the MLP parameters)")
        ax.set_ylabel("held-out perplexity (lower is better)")
        ax.set_title(title or "Allocations of the MLP widths at each budget")
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
        fig.tight_layout()
    return fig


# -- search modes ---------------------------------------------------------------------------------------------------
def mode_comparison(seeds: pd.DataFrame, table: pd.DataFrame, reference: tuple[str, ...] = ("n_layers_hidden",),
                    title: str = "") -> plt.Figure:
    """Held-out Spearman ρ by search mode: one dot per seed (``seeds``: the ``seeds.csv`` rows of the mode runs,
    column ``mode``), the chosen proxy's ρ with its bootstrap 95 % CI (``table``: rows of kind ``mode``/``multi``
    and ``searched`` of a results table, matched by the mode name they start with), and a line per ``reference``
    row of ``table``, plus the structural baseline of highest held-out ρ in ``table`` (kind ``structural``), so the
    strongest trivial score is always drawn beside the searched ones."""
    modes = list(dict.fromkeys(seeds["mode"]))
    structural = table[table["kind"] == "structural"] if "kind" in table else table.iloc[:0]
    if len(structural):
        reference = tuple(dict.fromkeys((*reference, structural.loc[structural["spearman"].idxmax(), "proxy"])))
    with _style():
        fig, ax = plt.subplots(figsize=(7, 3.8))
        for k, mode in enumerate(modes):
            values = seeds.loc[seeds["mode"] == mode, "heldout_spearman"].to_numpy(float)
            ax.scatter(np.full(len(values), k) + np.linspace(-0.12, 0.12, len(values)), values, s=18,
                       color="#1f77b4", alpha=0.6, zorder=3, label="seeds" if k == 0 else None)
            chosen = table[table["proxy"].str.startswith(f"{mode} (seed")]
            if len(chosen):
                r = chosen.iloc[0]
                ax.errorbar(k + 0.3, r["spearman"], yerr=[[r["spearman"] - r["spearman_ci_low"]],
                                                         [r["spearman_ci_high"] - r["spearman"]]],
                            fmt="D", color="#d62728", capsize=3, zorder=4, label="chosen (95 % CI)" if k == 0 else None)
        for name, style in zip(reference, ("--", ":", "-.", (0, (1, 3)))):
            base = table[table["proxy"] == name]
            if len(base):
                ax.axhline(base["spearman"].iloc[0], color="#2ca02c", ls=style, lw=1.4,
                           label=f"{name}: ρ = {base['spearman'].iloc[0]:.3f}")
        ax.set_xticks(range(len(modes)), modes)
        ax.set_xlabel("search mode")
        ax.set_ylabel(f"held-out Spearman ρ (n = {int(table['n'].max())})")
        ax.set_title(title or "Held-out ρ by search mode, beside structure")
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
    return fig


def pareto_front(points: pd.DataFrame, title: str = "") -> plt.Figure:
    """A multi-objective tree search's first front (``proxy.json["pareto"]`` rows): fitness against tree size,
    colour = extraction seconds per architecture of the statistics the tree reads."""
    with _style():
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        dots = ax.scatter(points["size"], points["fitness"], c=points["seconds_per_arch"], cmap="viridis", s=30)
        fig.colorbar(dots, ax=ax, label="seconds per architecture")
        ax.set_xlabel("tree size (nodes, simplified)")
        ax.set_ylabel("fitness (search split)")
        ax.set_title(title or f"Pareto front ({len(points)} trees)")
        fig.tight_layout()
    return fig


# -- what the benchmark allows ----------------------------------------------------------------------------------------
CEILING_LABELS = {"spearman": "Spearman ρ", "kendall": "Kendall τ-b", "strata_kendall": "mean τ within strata",
                  "top10_kendall": "top-10 % τ"}


def ceiling_curve(curve: pd.DataFrame, seeds: pd.DataFrame | None = None, table: pd.DataFrame | None = None,
                  panels: tuple[str, ...] = tuple(CEILING_LABELS), title: str = "") -> plt.Figure:
    """Per metric in ``panels``: the supervised forest's held-out value against the number of labelled
    architectures (``ceiling.learning_curve`` rows: median line, min–max band over draws; the search-split fit as a
    black square), the noise ceiling as a dotted line where the benchmark has repeats, the held-out oracle over
    pairs of network scalars as a dash-dotted line where it was computed, and the search modes'
    held-out values (``seeds``: ``seeds.csv`` rows with columns ``mode`` and ``heldout_<metric>`` or
    ``<metric>``) as per-mode medians with their seed range, at the search split's size, and per panel the best
    structural baseline of ``table`` (a held-out results table) as a dashed line. Two panels per row."""
    structural = table[table["kind"] == "structural"] if table is not None else None
    draws = curve[curve["fit"] == "forest on random draws"]
    search = curve[curve["fit"] == "forest on the search split"]
    noise = curve[curve["fit"] == "noise ceiling (σ)"]
    pair = curve[curve["fit"].str.startswith("held-out oracle: a weighted pair")]
    with _style():
        rows = (len(panels) + 1) // 2
        fig, axes = plt.subplots(rows, min(2, len(panels)), figsize=(10.4, 3.8 * rows), squeeze=False)
        for ax in axes.flat[len(panels):]:
            ax.set_visible(False)
        for ax, metric in zip(axes.flat, panels):
            grouped = draws.groupby("n_train")[metric]
            n = grouped.median().index.to_numpy()
            ax.fill_between(n, grouped.min(), grouped.max(), color="#1f77b4", alpha=0.2, lw=0)
            ax.plot(n, grouped.median(), marker="o", color="#1f77b4", label="forest on the architecture description")
            if len(search):
                ax.scatter(search["n_train"], search[metric], marker="s", color="black", zorder=4,
                           label=f"forest on the search split: {search[metric].iloc[0]:.3f}")
            if len(noise) and np.isfinite(noise[metric].iloc[0]):
                ax.axhline(noise[metric].iloc[0], color="#7f7f7f", ls=":",
                           label=f"noise ceiling: {noise[metric].iloc[0]:.3f}")
            if len(pair) and np.isfinite(pair[metric].iloc[0]):
                ax.axhline(pair[metric].iloc[0], color="#9467bd", ls="-.", lw=1.2,
                           label=f"held-out oracle, weighted pair: {pair[metric].iloc[0]:.3f}")
            if structural is not None and structural[metric].notna().any():
                best = structural.loc[structural[metric].idxmax()]
                ax.axhline(best[metric], color="#2ca02c", ls="--", lw=1.2, label=f"{best['proxy']}: {best[metric]:.3f}")
            if seeds is not None and len(search):
                column = f"heldout_{metric}" if f"heldout_{metric}" in seeds else metric
                modes = list(dict.fromkeys(seeds["mode"])) if column in seeds else []
                offsets = np.linspace(0.9, 1.1, len(modes)) if len(modes) > 1 else [1.0]
                for k, mode in enumerate(modes):
                    v = seeds.loc[seeds["mode"] == mode, column].to_numpy(float)
                    x = search["n_train"].iloc[0] * offsets[k]
                    ax.errorbar(x, np.median(v), yerr=[[np.median(v) - v.min()], [v.max() - np.median(v)]],
                                fmt="D", ms=5, capsize=2, color=sns.color_palette("Set1")[k % 9], zorder=5,
                                label=f"search mode {mode}: {np.median(v):.3f}")
            ax.set_xscale("log")
            ax.set_xticks(n, [str(int(v)) for v in n])
            ax.minorticks_off()
            ax.set_xlabel("labelled architectures (log scale)")
            ax.set_ylabel(f"held-out {CEILING_LABELS[metric]}")
            ax.legend(loc="best", fontsize=7)
        fig.suptitle(title or "What the architecture description predicts, against labelled architectures")
        fig.tight_layout()
    return fig
