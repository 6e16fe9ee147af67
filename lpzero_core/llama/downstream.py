"""Downstream, as in the paper: allocations of a pretrained parent's MLP widths at a fixed budget, chosen by
proxy-guided search and by established rules, judged on held-out perplexity (and cloze accuracy).

Methods (:func:`choose`; each returns genes within the budget and the seconds it took to choose them)
------------------------------------------------------------------------------------------------------
* ``search:<name>`` per entry of ``guides`` (``{name: guide}``, a guide being a proxy text, a ``Proxy``,
  ``ONE_BATCH_LOSS`` or a function of the genes, e.g. :func:`benchmark_guide`):
  :func:`lpzero_core.llama.search.search` (its population, iterations and seed; higher guide value = preferred);
* ``uniform`` (the widest single width that fits), ``greedy`` (narrow the layer whose next block of channels has
  the least importance under the space's channel rule: ``Budget.magnitude``), ``owl`` and ``flap``
  (``Budget.allocation``), and ``random-1`` … ``random-n`` (repaired random allocations, the second seed stream).

Evaluation (:func:`compare`): every chosen allocation is materialised with the space's channel ranking and its
per-window NLL measured on the given held-out windows (:func:`lpzero_core.stats.parents.window_nll`); perplexity =
``exp(Σ NLL / Σ predicted tokens)``. An allocation whose NLLs on these windows are already ``known`` (a committed
benchmark row) is not measured again (``eval_s`` = 0, ``source`` = ``benchmark row``). With a ``tokenizer``, the
cloze accuracy of the shipped 4-way task ``lpzero_bbc_cloze`` (60 held-out sentences, chance 0.25) through
lm-eval is added (``cloze_acc``).

On SmolLM2 (:func:`smollm2`): the space is the ``smollm2-mlp`` benchmark's (activation rule on its calibration
tokens, so a sub-network is the benchmark's sub-network of the same genes), proxies are scored exactly as the
benchmark's statistics score its architectures (:func:`benchmark_guide`), the held-out windows are an evenly spaced
subset of the benchmark's 64 (``windows`` of them: indices ``0, 64/windows, …``), and per budget the table adds
``benchmark best``: the committed row of lowest perplexity on the same windows among the rows whose MLP fraction
lies in ``(budget − NEAR, budget]``.

Budgets: the LoNAS ratios end at 50 %, so at an MLP budget of 50 % the only allocation is uniform 50 %: no method
has anything to choose there. :data:`BUDGETS` therefore holds 75 % and 62.5 %.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from lpzero_core.errors import LPZeroError
from lpzero_core.llama.search import ONE_BATCH_LOSS, Budget, guide, random_configs, search
from lpzero_core.llama.space import SubnetSpace
from lpzero_core.search.proxy import Proxy
from lpzero_core.stats import extract, parents
from lpzero_core.stats.benchmarks import smollm2_mlp

BUDGETS = (0.75, 0.625)
RULE_METHODS = ("uniform", "greedy", "owl", "flap")
#: a committed row counts as "at the budget" when its MLP fraction lies in (budget − NEAR, budget]: three width
#: steps of one layer of SmolLM2 (3 · 192 / (30 · 1536))
NEAR = 0.0125
CLOZE_TASK = "lpzero_bbc_cloze"


def choose(space: SubnetSpace, budget: Budget, calibration: torch.Tensor, guides: dict, n_random: int = 10,
           population: int = 8, iterations: int = 16, seed: int = 0) -> dict[str, tuple[tuple[int, ...], float]]:
    """``{method: (genes, seconds)}`` at ``budget`` (module docstring)."""
    chosen = {}
    for name, how in guides.items():
        start = time.perf_counter()
        result = search(space, how, calibration, budget, population, iterations, seed)
        chosen[f"search:{name}"] = (result.best, time.perf_counter() - start)
    rules = {"uniform": budget.uniform, "greedy": budget.magnitude,
             **{rule: lambda rule=rule: budget.allocation(rule, calibration) for rule in ("owl", "flap")}}
    for name in RULE_METHODS:
        start = time.perf_counter()
        genes = rules[name]()
        chosen[name] = (genes, time.perf_counter() - start)
    start = time.perf_counter()
    randoms = random_configs(budget, n_random, seed)
    seconds = (time.perf_counter() - start) / max(n_random, 1)
    chosen |= {f"random-{k + 1}": (genes, seconds) for k, genes in enumerate(randoms)}
    return chosen


def window_nll(space: SubnetSpace, genes, windows: torch.Tensor, batch_size: int = 4) -> np.ndarray:
    """Per-window summed NLL of the materialised allocation ``genes`` on ``windows`` (tokens 2..T predicted)."""
    model = space.model if tuple(genes) == space.full else space.materialise(genes)
    return parents.window_nll(model, windows, batch_size)


def perplexity(space: SubnetSpace, genes, windows: torch.Tensor, batch_size: int = 4) -> float:
    """Perplexity of the materialised allocation ``genes`` on ``windows``."""
    return parents.perplexity(window_nll(space, genes, windows, batch_size), windows.shape[1] - 1)


def cloze_accuracy(space: SubnetSpace, genes, tokenizer, seed: int = 0) -> float:
    """Accuracy of the materialised allocation on the 4-way cloze task :data:`CLOZE_TASK` (lm-eval, zero-shot)."""
    from lpzero_core.llama.evaluate import evaluate

    model = space.model if tuple(genes) == space.full else space.materialise(genes)
    return evaluate(model, tokenizer, [CLOZE_TASK], seed=seed)[f"{CLOZE_TASK}/acc"]


def compare(space: SubnetSpace, calibration: torch.Tensor, windows: torch.Tensor, guides: dict,
            budgets=BUDGETS, n_random: int = 10, population: int = 8, iterations: int = 16, seed: int = 0,
            known: dict | None = None, tokenizer=None, progress: bool = False) -> pd.DataFrame:
    """One row per budget and method: ``budget, method, widths, mlp_fraction, ppl, choose_s, eval_s, source``
    (and ``cloze_acc`` with a ``tokenizer``; module docstring), plus per budget the summary rows
    ``random (mean)`` (mean perplexity of the random allocations) and ``random (best)``. ``known``: per-window
    NLLs on ``windows`` of allocations measured before, by genes. ``progress``: a bar per budget over the
    allocations evaluated."""
    known, tokens = known or {}, windows.shape[1] - 1
    rows = []
    for limit in budgets:
        budget = Budget(space, limit)
        chosen = choose(space, budget, calibration, guides, n_random, population, iterations, seed)
        for method, (genes, seconds) in tqdm(chosen.items(), desc=f"budget {limit:g}: evaluate", unit="allocation",
                                             disable=not progress):
            start = time.perf_counter()
            nll = known.get(tuple(genes))
            source = "benchmark row" if nll is not None else "measured"
            nll = window_nll(space, genes, windows) if nll is None else nll
            row = {"budget": limit, "method": method, "widths": space.describe(genes),
                   "mlp_fraction": space.fraction(genes), "ppl": parents.perplexity(nll, tokens),
                   "choose_s": seconds, "eval_s": time.perf_counter() - start, "source": source}
            if tokenizer is not None:
                row["cloze_acc"] = cloze_accuracy(space, genes, tokenizer, seed)
            rows.append(row)
        randoms = [r for r in rows if r["budget"] == limit and r["method"].startswith("random-")]
        if randoms:
            best = min(randoms, key=lambda r: r["ppl"])
            rows.append({**best, "method": "random (best)"})
            rows.append({"budget": limit, "method": "random (mean)", "widths": "", "source": "",
                         **{c: float(np.mean([r[c] for r in randoms]))
                            for c in ("ppl", "mlp_fraction", "choose_s", "eval_s", "cloze_acc") if c in best}})
    return pd.DataFrame(rows)


# -- SmolLM2: the smollm2-mlp benchmark's parent ----------------------------------------------------------------
def benchmark_guide(benchmark, space: SubnetSpace, how: Proxy | str, seed: int = 0) -> Callable[[tuple], float]:
    """A function of the genes: the value the benchmark's extraction gives that sub-network (its proxy batch with
    ``seed``, its sites, its linear rows; ``extract.proxy_value``), or for ``ONE_BATCH_LOSS`` the benchmark's
    ``one_batch_loss`` baseline (the proxy batch's loss, negated). ``space`` must rank channels as the benchmark
    does, so that ``space.materialise(genes)`` is the benchmark's sub-network."""
    how, batch = guide(how), benchmark.batch(seed=seed)

    def value(genes) -> float:
        model = benchmark.prepare(space.materialise(genes))
        if how == ONE_BATCH_LOSS:
            with torch.no_grad():
                return -float(benchmark.loss(model, batch))
        return extract.proxy_value(benchmark, model, batch, how, seed)

    return value


def window_subset(n: int, total: int = smollm2_mlp.WINDOWS) -> np.ndarray:
    """``n`` evenly spaced indices of the benchmark's ``total`` held-out windows: ``0, total/n, …``."""
    if not 1 <= n <= total or total % n:
        raise LPZeroError(f"windows={n}: choose a divisor of {total} (e.g. 16, 32 or {total})")
    return np.arange(0, total, total // n)


def measured_nll(rows: pd.DataFrame, indices: np.ndarray) -> dict[tuple[int, ...], np.ndarray]:
    """Per-window NLLs on the windows ``indices`` of every committed benchmark row, by genes."""
    return {smollm2_mlp.parse_genes(row.genes): smollm2_mlp.parse_nll_windows(row.nll_windows)[indices]
            for row in rows.itertuples()}


def best_measured(rows: pd.DataFrame, known: dict, limit: float, tokens: int) -> tuple[dict, tuple[int, ...]]:
    """The committed row of lowest perplexity on the chosen windows among those at budget ``limit`` (``NEAR``), as a
    table row, and its genes."""
    near = rows[(rows.mlp_fraction <= limit + 1e-9) & (rows.mlp_fraction > limit - NEAR)]
    if near.empty:
        raise LPZeroError(f"no benchmark row has an MLP fraction in ({limit - NEAR:g}, {limit:g}]")
    ppl = {row.id: parents.perplexity(known[smollm2_mlp.parse_genes(row.genes)], tokens)
           for row in near.itertuples()}
    best = near.set_index("id").loc[min(ppl, key=ppl.get)]
    row = {"budget": limit, "method": "benchmark best", "widths": best.widths, "mlp_fraction": best.mlp_fraction,
           "ppl": ppl[best.name], "choose_s": np.nan, "eval_s": 0.0,
           "source": f"benchmark row {best.name} (best of {len(near)})"}
    return row, smollm2_mlp.parse_genes(best.genes)


def smollm2(proxies: dict, budgets=BUDGETS, windows: int = 16, n_random: int = 10, population: int = 8,
            iterations: int = 16, seed: int = 0, cloze: bool = True, progress: bool = True) -> pd.DataFrame:
    """:func:`compare` on the SmolLM2 parent of ``smollm2-mlp`` (module docstring), each entry of ``proxies``
    (``{name: proxy text | ONE_BATCH_LOSS}``) a search guide scored as the benchmark scores it, plus the
    ``benchmark best`` row per budget and the full parent's row (``budget`` 1.0)."""
    benchmark = smollm2_mlp.load()
    model, tokenizer = smollm2_mlp.smollm2_parent()
    calibration = parents.calibration_batch(tokenizer, **smollm2_mlp.CALIBRATION)
    space = SubnetSpace(model, rule=smollm2_mlp.RULE, calibration=calibration)
    indices = window_subset(windows)
    held = parents.heldout_windows(tokenizer, smollm2_mlp.WINDOWS, smollm2_mlp.SEQ_LEN)[indices]
    rows = smollm2_mlp.read_rows()
    known = measured_nll(rows, indices)
    guides = {name: benchmark_guide(benchmark, space, how, seed) for name, how in proxies.items()}
    table = compare(space, calibration, held, guides, budgets, n_random, population, iterations, seed, known,
                    tokenizer if cloze else None, progress)
    tokens = held.shape[1] - 1
    full = {"budget": 1.0, "method": "full parent", "widths": space.describe(space.full), "mlp_fraction": 1.0,
            "ppl": parents.perplexity(known[space.full], tokens), "choose_s": np.nan, "eval_s": 0.0,
            "source": "benchmark row 0"}
    extra = [(full, space.full), *(best_measured(rows, known, limit, tokens) for limit in budgets)]
    if cloze:
        for row, genes in extra:
            row["cloze_acc"] = cloze_accuracy(space, genes, tokenizer, seed)
    return pd.concat([table, pd.DataFrame([row for row, _ in extra])], ignore_index=True) \
        .sort_values("budget", ascending=False, kind="stable").reset_index(drop=True)


def verdict(table: pd.DataFrame, tolerance: float = 0.05) -> pd.DataFrame:
    """Per budget and searched guide of a :func:`smollm2` table: its perplexity relative to uniform's, to the best
    established rule's (``uniform``, ``greedy``, ``owl``, ``flap``), to the random allocations' mean and to the
    benchmark's best measured row at that budget (ratios, lower is better), and whether it is ≤ uniform, ≤ every
    rule and within ``tolerance`` of the benchmark's best."""
    out = []
    for limit, rows in table[table["budget"] < 1].groupby("budget", sort=False):
        ppl = rows.set_index("method")["ppl"]
        rules = ppl[[m for m in RULE_METHODS if m in ppl.index]]
        for method in (m for m in ppl.index if m.startswith("search:")):
            out.append({"budget": limit, "method": method, "ppl": ppl[method],
                        "vs_uniform": ppl[method] / ppl["uniform"], "vs_best_rule": ppl[method] / rules.min(),
                        "best_rule": rules.idxmin(), "vs_random_mean": ppl[method] / ppl.get("random (mean)", np.nan),
                        "vs_benchmark_best": ppl[method] / ppl.get("benchmark best", np.nan),
                        "le_uniform": bool(ppl[method] <= ppl["uniform"]),
                        "le_every_rule": bool(ppl[method] <= rules.min()),
                        f"within_{tolerance:.0%}_of_best": bool(ppl[method] <= (1 + tolerance)
                                                                   * ppl.get("benchmark best", np.nan))})
    return pd.DataFrame(out)
