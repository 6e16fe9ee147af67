"""Downstream, as in the paper: allocations of a pretrained parent's MLP widths at a fixed budget, chosen by
proxy-guided search and by established rules, judged on held-out perplexity.

Methods (:func:`choose`; each returns genes within the budget and the seconds it took to choose them)
------------------------------------------------------------------------------------------------------
* ``search:<name>`` per entry of ``guides`` (``{name: proxy text, Proxy or ONE_BATCH_LOSS}``):
  :func:`lpzero_core.llama.search.search` on the calibration batch (its population, iterations and seed);
* ``uniform`` (the widest single width that fits), ``greedy`` (narrow the layer whose next block of channels has
  the least importance under the space's channel rule: ``Budget.magnitude``), ``owl`` and ``flap``
  (``Budget.allocation``), and ``random-1`` … ``random-n`` (repaired random allocations, the second seed stream).

Evaluation (:func:`compare`): every chosen allocation is materialised (the space's channel ranking, which is the
benchmark's when the space was built with its rule and calibration tokens) and its perplexity measured on the
given held-out windows (:func:`lpzero_core.stats.parents.window_nll`): ``exp(Σ NLL / Σ predicted tokens)``.

Budgets: the LoNAS ratios end at 50 %, so at an MLP budget of 50 % the only allocation is uniform 50 %: no method
has anything to choose there. :data:`BUDGETS` therefore holds 75 % and 62.5 %.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from lpzero_core.llama.search import Budget, random_configs, search
from lpzero_core.llama.space import SubnetSpace
from lpzero_core.stats import parents

BUDGETS = (0.75, 0.625)
RULE_METHODS = ("uniform", "greedy", "owl", "flap")


def choose(space: SubnetSpace, budget: Budget, calibration: torch.Tensor, guides: dict, n_random: int = 10,
           population: int = 8, iterations: int = 16, seed: int = 0) -> dict[str, tuple[tuple[int, ...], float]]:
    """``{method: (genes, seconds)}`` at ``budget`` (module docstring)."""
    chosen = {}
    for name, guide in guides.items():
        start = time.perf_counter()
        result = search(space, guide, calibration, budget, population, iterations, seed)
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


def perplexity(space: SubnetSpace, genes, windows: torch.Tensor, batch_size: int = 4) -> float:
    """Perplexity of the materialised allocation ``genes`` on ``windows`` (tokens 2..T of each predicted)."""
    model = space.model if tuple(genes) == space.full else space.materialise(genes)
    return parents.perplexity(parents.window_nll(model, windows, batch_size), windows.shape[1] - 1)


def compare(space: SubnetSpace, calibration: torch.Tensor, windows: torch.Tensor, guides: dict,
            budgets=BUDGETS, n_random: int = 10, population: int = 8, iterations: int = 16,
            seed: int = 0) -> pd.DataFrame:
    """One row per budget and method: ``budget, method, widths, mlp_fraction, ppl, choose_s, eval_s`` (module
    docstring), plus per budget the summary rows ``random (mean)`` (mean perplexity of the random allocations)
    and ``random (best)``."""
    rows = []
    for limit in budgets:
        budget = Budget(space, limit)
        for method, (genes, seconds) in choose(space, budget, calibration, guides, n_random, population,
                                               iterations, seed).items():
            start = time.perf_counter()
            ppl = perplexity(space, genes, windows)
            rows.append({"budget": limit, "method": method, "widths": space.describe(genes),
                         "mlp_fraction": space.fraction(genes), "ppl": ppl, "choose_s": seconds,
                         "eval_s": time.perf_counter() - start})
        randoms = [r for r in rows if r["budget"] == limit and r["method"].startswith("random-")]
        if randoms:
            values = np.array([r["ppl"] for r in randoms])
            best = randoms[int(np.argmin(values))]
            rows.append({**best, "method": "random (best)"})
            rows.append({"budget": limit, "method": "random (mean)", "widths": "", "ppl": float(values.mean()),
                         "mlp_fraction": float(np.mean([r["mlp_fraction"] for r in randoms])),
                         "choose_s": randoms[0]["choose_s"], "eval_s": float(np.mean([r["eval_s"] for r in randoms]))})
    return pd.DataFrame(rows)
