"""The interactive explorer of notebook 00 (ipywidgets): compose a proxy and watch its correlation update.

Three tabs:

* **compose** — one input and ``n_unary`` unary ops per branch, the binary op and the site aggregation; every
  change re-scores the proxy on the chosen split (held-out by default) and redraws τ, ρ and the rank scatter;
* **GP history** — pick any ``history.csv`` under ``runs_dir``: its best-so-far curve and its best distinct
  proxies; selecting one loads it into the composer;
* **load** — a ``best.json`` path (relative to the project root or absolute) or a canonical proxy string.

All state lives in the widgets; ``Explorer.proxy()`` is the proxy they describe and ``Explorer.last`` the latest
result (``proxy``, ``kendall``, ``spearman``, ``n``, or ``error``), so the explorer can be driven from code too.
Plots are PNG ``Image`` widgets, not ``Output`` widgets: a headless run (papermill/nbclient) then only sees widget
state updates, never output captured by a widget, which nbclient can wait on forever (jupyter/nbclient#312).
"""
from __future__ import annotations

import io

import ipywidgets as w
import matplotlib.pyplot as plt
import numpy as np

from lpzero_core.errors import LPZeroError
from lpzero_core.search import metrics
from lpzero_core.search.ops import BINARY, INPUTS, UNARY
from lpzero_core.search.proxy import AGGREGATIONS, RELEASED, Proxy
from lpzero_core.stats.cache import StatsCache
from lpzero_core.workbench import experiments, plots

SPLITS = ("held-out", "search", "all")


def _png(fig) -> bytes:
    """The figure as PNG bytes (100 dpi); the figure is closed."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


class Explorer:
    """Widgets over one statistics cache; ``Explorer(cache).widget`` is what the notebook displays."""

    def __init__(self, cache: StatsCache, runs_dir=None, proxy: Proxy | None = None):
        self.cache, self.runs_dir, self.last = cache, runs_dir, {}
        self._hold = False
        proxy = proxy or RELEASED["lpzero_gpt2"]
        self.inputs = [w.Dropdown(options=INPUTS, description=f"input {k + 1}") for k in (0, 1)]
        self.chains: list[list[w.Dropdown]] = [[], []]
        self.branch_boxes = [w.VBox(), w.VBox()]
        self.binary = w.Dropdown(options=list(BINARY), description="binary")
        self.agg = w.Dropdown(options=AGGREGATIONS, description="aggregate")
        self.split = w.ToggleButtons(options=SPLITS, description="split")
        self.result = w.HTML()
        self.plot = w.Image(format="png", layout=w.Layout(width="380px"))
        for control in (*self.inputs, self.binary, self.agg, self.split):
            control.observe(self.update, names="value")
        composer = w.VBox([w.HBox(self.branch_boxes), w.HBox([self.binary, self.agg]), self.split, self.result,
                           self.plot])

        files = experiments.history_files(runs_dir)
        root = experiments.project_path(runs_dir)
        self.history_file = w.Dropdown(options=[(str(p.relative_to(root)), str(p)) for p in files],
                                       description="history", layout=w.Layout(width="70%"))
        self.history_top = w.Select(options=[], rows=10, description="best", layout=w.Layout(width="95%"))
        self.history_plot = w.Image(format="png", layout=w.Layout(width="560px"))
        self.history_file.observe(self.show_history, names="value")
        self.history_top.observe(self._pick_from_history, names="value")
        history = w.VBox([self.history_file if files else w.HTML(f"no history.csv under {root}"),
                          self.history_plot, self.history_top])

        self.path = w.Text(placeholder="runs/results/<benchmark>/best.json or a proxy string",
                           description="proxy", layout=w.Layout(width="80%"))
        self.load_button = w.Button(description="load", button_style="primary")
        self.load_button.on_click(self.load)
        self.message = w.HTML()
        loader = w.VBox([w.HBox([self.path, self.load_button]), self.message])

        self.widget = w.Tab(children=[composer, history, loader])
        self.widget.titles = ("compose", "GP history", "load")
        self.set_proxy(proxy)
        if files:
            self.show_history()

    # -- composer ------------------------------------------------------------------------------------------------
    def _set_chain_length(self, n: int) -> None:
        for k in (0, 1):
            if len(self.chains[k]) != n:
                self.chains[k] = [w.Dropdown(options=list(UNARY), description=f"op {j + 1}") for j in range(n)]
                for control in self.chains[k]:
                    control.observe(self.update, names="value")
            self.branch_boxes[k].children = [self.inputs[k], *self.chains[k]]

    def proxy(self) -> Proxy:
        """The proxy the widgets describe."""
        return Proxy((self.inputs[0].value, self.inputs[1].value),
                     tuple(tuple(c.value for c in chain) for chain in self.chains), self.binary.value, self.agg.value)

    def set_proxy(self, proxy: Proxy) -> dict:
        """Show ``proxy`` in the composer (any chain length) and score it once."""
        self._hold = True
        try:
            self._set_chain_length(len(proxy.ops[0]))
            for k in (0, 1):
                self.inputs[k].value = proxy.inputs[k]
                for control, name in zip(self.chains[k], proxy.ops[k]):
                    control.value = name
            self.binary.value, self.agg.value = proxy.binary, proxy.agg
        finally:
            self._hold = False
        return self.update()

    def ids(self) -> np.ndarray:
        """Architectures of the chosen split."""
        return {"held-out": self.cache.heldout_ids, "search": self.cache.search_ids,
                "all": np.arange(len(self.cache))}[self.split.value]

    def update(self, *_) -> dict:
        """Score the current proxy on the split, refresh τ/ρ and the rank scatter; returns ``self.last``."""
        if self._hold:
            return self.last
        proxy, ids = self.proxy(), self.ids()
        try:
            score = proxy.evaluate(self.cache, ids)
        except LPZeroError as error:
            self.last = {"proxy": proxy, "error": str(error)}
            self.result.value = f"<b>invalid:</b> {error}"
            self.plot.value = b""
            return self.last
        truth = self.cache.target[ids]
        tau, rho = metrics.kendall(score, truth), metrics.spearman(score, truth)
        self.last = {"proxy": proxy, "kendall": tau, "spearman": rho, "n": len(ids)}
        self.result.value = (f"<code>{proxy}</code><br>{proxy.formula()}<br>"
                             f"<b>τ = {tau:.4f} &nbsp; ρ = {rho:.4f}</b> on {len(ids)} {self.split.value} "
                             f"architectures" + ("" if np.isfinite(score).all() else " (non-finite scores)"))
        fig, ax = plt.subplots(figsize=(4.2, 4.2))
        plots.rank_scatter(ax, score, truth, self.split.value)
        ax.set_xlabel("proxy rank (1 = best)")
        ax.set_ylabel("ground-truth rank (1 = best)")
        self.plot.value = _png(fig)
        return self.last

    # -- history and loading -------------------------------------------------------------------------------------
    def show_history(self, *_) -> None:
        """Plot the chosen history's best-so-far curve and list its best distinct proxies."""
        if not self.history_file.value:
            return
        history = experiments.read_history(self.history_file.value)
        top = experiments.top_proxies(history)
        self.history_top.options = [(f"{row.fitness:.4f}  {row.proxy}", row.proxy) for row in top.itertuples()]
        curve = experiments.best_so_far(history)
        fig, ax = plt.subplots(figsize=(6, 2.6))
        ax.plot(curve["iteration"], curve["best"], color="#d62728")
        ax.set_xlabel("iteration")
        ax.set_ylabel("best-so-far fitness")
        self.history_plot.value = _png(fig)

    def _pick_from_history(self, change) -> None:
        if change["new"]:
            self.set_proxy(Proxy.parse(change["new"]))
            self.widget.selected_index = 0

    def load(self, *_) -> None:
        """Load the proxy named in the path box (a ``best.json`` or a canonical string) into the composer."""
        try:
            proxy = experiments.load_proxy(self.path.value.strip())
        except LPZeroError as error:
            self.message.value = f"<b>could not load:</b> {error}"
            return
        self.message.value = f"loaded <code>{proxy}</code>"
        self.set_proxy(proxy)
        self.widget.selected_index = 0
