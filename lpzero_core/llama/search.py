"""Proxy-guided evolutionary search over MLP widths under a parameter budget, and its baselines.

Proxy inputs of a sub-network (one calibration batch, eval mode, next-token loss, one backward pass)
------------------------------------------------------------------------------------------------------
==========  ==============================================================================================
input       per-site tensors, in layer order
==========  ==============================================================================================
weight      the 7 projection weights of every decoder layer: q, k, v, o, gate, up, down (7·L sites)
grad        their gradients ``∂loss/∂W``, read after ``loss.backward()`` (same 7·L sites)
act         the MLP activation output ``act(G x) ⊙ (U x)`` = the input of ``down_proj`` (L sites, [B, T, w_l])
head        the query projection output ``q_proj(x)`` (L sites)
softmax     the attention probabilities (L sites, [B, heads, T, T]; the pass runs eager attention for it)
jacobian    ``∂loss/∂E`` for the input embeddings ``E`` (1 site)
==========  ==============================================================================================
Only the inputs the proxy reads are collected, by the extraction's ``proxy_inputs`` (``ProxyProtocol`` names the
sites and the loss); tensors stay in the model's dtype. The embedding and head weights are not sites. During the pass
only the site weights require grad (the input embeddings too for ``jacobian``); afterwards every ``.grad`` of the
model is ``None`` and the ``requires_grad`` flags are restored, also on the parent's tensors a sub-network shares.
The default proxy (:data:`DEFAULT_PROXY`) is the one LPZero released for GPT-2
(``lpzero_core.search.proxy.RELEASED["lpzero_gpt2"]``), ``mean_l[ mean(W_l²) + mean(softmax(G_l)²) ]`` (softmax
over dim 0 of each gradient), here over the 7·L projections.

Budget
------
A configuration is *feasible* when its kept fraction (of the MLP parameters, ``budget_of="mlp"``, or of all
parameters, ``"total"``) is at most ``budget``. A budget below the smallest sub-network's fraction is an
:class:`LPZeroError`. Random and evolved configurations are *repaired* to be feasible and maximal: random layers
are narrowed one step until the configuration fits, then random layers are widened one step while it still fits,
so every candidate sits within one width step of the budget and candidates are compared at (nearly) equal size.

Evolution (steady state, like LPZero's GP; ``rng = numpy.random.default_rng`` of the first of two
``seeds.streams(seed, 2)`` — ``SeedSequence(seed).spawn(2)`` — the second one draws the random baselines)
------------------------------------------------------------------------------------------------------
* population: the uniform configuration plus ``population - 1`` repaired random ones (distinct);
* each of ``iterations`` steps of the loop in ``lpzero_core.search.steady_state``: two parents drawn uniformly
  *with replacement* from the better half; uniform crossover (each layer's width from either parent, p = 1/2);
  mutation (each layer redrawn uniformly with p = 1/L); repair; an offspring already in the population is dropped,
  otherwise the worst member leaves and the offspring joins (``replace_worst``; the best is never lost);
* fitness = proxy value (higher is better; a non-finite value counts as −inf), each configuration scored once;
  the guide :data:`ONE_BATCH_LOSS` instead scores a sub-network by its calibration-batch loss, negated (the
  cheapest data-driven score, forward only); a guide that is a function of the genes is called as is (the
  downstream comparison scores proxies as a benchmark does: ``llama.downstream.benchmark_guide``).
Because the uniform configuration starts in the population, the result's proxy value is never below uniform's.

Baselines (same budget): ``uniform`` (the widest single width that fits), ``magnitude`` (from the full model,
repeatedly narrow by one step the layer whose next removed channel block has the least total importance, until
the budget fits), ``random`` (repaired random configurations) and the established layer-wise allocations ``owl``
and ``flap`` (:meth:`Budget.allocation`, :mod:`lpzero_core.llama.allocation`).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from lpzero_core.errors import LPZeroError
from lpzero_core.llama import allocation
from lpzero_core.llama.model import ATTENTION_PROJECTIONS, MLP_PROJECTIONS, decoder_layers
from lpzero_core.llama.space import SubnetSpace
from lpzero_core.search.ops import INPUTS
from lpzero_core.search.proxy import RELEASED, Proxy
from lpzero_core.search.steady_state import replace_worst, steady_state
from lpzero_core.seeds import streams
from lpzero_core.stats import extract
from lpzero_core.stats.benchmarks.base import Sites

DEFAULT_PROXY = str(RELEASED["lpzero_gpt2"])
#: the search guide that is no proxy: the sub-network's loss on the calibration batch, negated
ONE_BATCH_LOSS = "one_batch_loss"


class ProxyProtocol:
    """The proxy inputs of a LLaMA-like model as the extraction reads a benchmark (``stats.extract.proxy_inputs``):
    the sites of the module docstring and the next-token loss of one batch of token ids."""

    name = "llama"

    @staticmethod
    def sites(model: nn.Module) -> Sites:
        layers = decoder_layers(model)
        linear = [m for layer in layers for m in (*(getattr(layer.self_attn, n) for n in ATTENTION_PROJECTIONS),
                                                  *(getattr(layer.mlp, n) for n in MLP_PROJECTIONS))]
        return Sites(act=[layer.mlp.down_proj for layer in layers], head=[layer.self_attn.q_proj for layer in layers],
                     softmax=[layer.self_attn for layer in layers], linear=linear,
                     embedding=model.get_input_embeddings(),
                     taps={"act": lambda args, output: args[0], "softmax": lambda args, output: output[1]})

    @staticmethod
    def loss(model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
        ids = input_ids.to(model.device)
        return model(input_ids=ids, labels=ids, use_cache=False).loss


def proxy_inputs(model: nn.Module, input_ids: torch.Tensor, needed=INPUTS) -> dict[str, list[torch.Tensor]]:
    """The proxy inputs ``needed`` of ``model`` on one batch (see the module docstring for the sites), under eager
    attention while ``softmax`` is read."""
    with _attention("eager" if "softmax" in needed else None, model):
        return extract.proxy_inputs(ProxyProtocol, model, input_ids, needed)


@contextmanager
def _attention(implementation: str | None, model: nn.Module):
    """Temporarily switch the attention implementation (``None``: leave it)."""
    before = model.config._attn_implementation
    if implementation is None or implementation == before:
        yield
        return
    model.set_attn_implementation(implementation)
    try:
        yield
    finally:
        model.set_attn_implementation(before)


def guide(proxy):
    """What a search maximises: a proxy (its text is parsed), :data:`ONE_BATCH_LOSS`, or a function of the genes
    (kept as is)."""
    return proxy if callable(proxy) or isinstance(proxy, Proxy) or proxy == ONE_BATCH_LOSS else Proxy.parse(proxy)


def score(space: SubnetSpace, genes, proxy: Proxy | str, input_ids: torch.Tensor) -> float:
    """Value of the materialised sub-network ``genes`` on the calibration batch: the proxy's, or for
    :data:`ONE_BATCH_LOSS` its next-token loss negated (no backward pass)."""
    sub = space.model if tuple(genes) == space.full else space.materialise(genes)
    if proxy == ONE_BATCH_LOSS:
        with torch.no_grad():
            return -float(ProxyProtocol.loss(sub, input_ids))
    return proxy.score_tensors(proxy_inputs(sub, input_ids, proxy.live_inputs()))


# -- budget ---------------------------------------------------------------------------------------------------
class Budget:
    """Feasibility (kept fraction ≤ ``limit``) and repair of configurations of one space."""

    def __init__(self, space: SubnetSpace, limit: float, of: str = "mlp"):
        smallest = space.fraction(space.smallest, of)
        if not 0 < limit <= 1:
            raise LPZeroError(f"budget must be a fraction in (0, 1], got {limit!r}")
        if limit < smallest:
            raise LPZeroError(f"budget {limit:g} of the {of} parameters is below the smallest sub-network "
                              f"({smallest:.3f}); raise the budget or add a smaller ratio")
        self.space, self.limit, self.of = space, limit, of

    def fits(self, genes) -> bool:
        return self.space.fraction(genes, self.of) <= self.limit + 1e-12

    def repair(self, genes, rng: np.random.Generator) -> tuple[int, ...]:
        """Narrow random layers until feasible, then widen random layers while still feasible (maximal)."""
        genes, last = list(genes), len(self.space.widths) - 1
        while not self.fits(genes):
            l = rng.choice([l for l, g in enumerate(genes) if g < last])
            genes[l] += 1
        while True:
            growable = [l for l, g in enumerate(genes) if g > 0 and self.fits(_step(genes, l, -1))]
            if not growable:
                return tuple(genes)
            genes = _step(genes, int(rng.choice(growable)), -1)

    def uniform(self) -> tuple[int, ...]:
        """The widest single width for all layers that fits."""
        return next(g for g in ((k,) * self.space.n_layers for k in range(len(self.space.widths))) if self.fits(g))

    def allocation(self, rule: str, calibration: torch.Tensor) -> tuple[int, ...]:
        """An established layer-wise allocation of the parent at this budget (``"owl"`` or ``"flap"``,
        :mod:`lpzero_core.llama.allocation`, on ``calibration`` tokens), snapped onto the space's widths: the
        kept fraction of the MLP parameters is the mean width ratio when the MLPs have no biases (LLaMA)."""
        if rule not in allocation.RULES:
            raise LPZeroError(f"unknown allocation rule {rule!r}; choose from: {', '.join(allocation.RULES)}")
        if self.of != "mlp" or self.space.bias:
            raise LPZeroError("allocation rules take a budget of the MLP parameters (budget_of='mlp') of MLPs "
                              "without biases")
        target = allocation.RULES[rule](self.space.model, calibration, self.limit)
        return allocation.snap(target, tuple(w / self.space.intermediate for w in self.space.widths), self.limit)

    def magnitude(self) -> tuple[int, ...]:
        """Greedy: narrow the layer whose next removed block of channels has the least importance, until it fits."""
        space, genes = self.space, list(self.space.full)
        while not self.fits(genes):
            def removed(l):
                w, narrower = space.widths[genes[l]], space.widths[genes[l] + 1]
                return float(space.importance[l][space.order[l][narrower:w]].sum())
            genes = _step(genes, min((l for l in range(space.n_layers) if genes[l] < len(space.widths) - 1),
                                     key=removed), +1)
        return tuple(genes)


def _step(genes, layer: int, delta: int) -> list[int]:
    out = list(genes)
    out[layer] += delta
    return out


# -- search ---------------------------------------------------------------------------------------------------
@dataclass
class SearchResult:
    """Best configuration, its proxy value, every scored configuration and the per-iteration history."""

    best: tuple[int, ...]
    best_score: float
    scores: dict[tuple[int, ...], float]
    history: pd.DataFrame


def search(space: SubnetSpace, proxy, input_ids: torch.Tensor, budget: Budget,
           population: int = 8, iterations: int = 16, seed: int = 0) -> SearchResult:
    """Steady-state evolution maximising the proxy under the budget (see the module docstring); ``proxy`` is
    anything :func:`guide` takes (a function of the genes is called as is, ``input_ids`` then unused)."""
    if population < 2 or iterations < 0:
        raise LPZeroError(f"search needs population >= 2 and iterations >= 0, got {population} and {iterations}")
    proxy = guide(proxy)
    rng = streams(seed, 2)[0]
    scores: dict[tuple[int, ...], float] = {}

    def fitness(genes):
        if genes not in scores:
            value = proxy(genes) if callable(proxy) else score(space, genes, proxy, input_ids)
            scores[genes] = value if np.isfinite(value) else -np.inf
        return scores[genes]

    def vary(parents, rng: np.random.Generator) -> tuple[int, ...]:
        child = tuple(x if rng.random() < 0.5 else y for x, y in zip(*parents))
        child = tuple(int(rng.integers(len(space.widths))) if rng.random() < 1 / space.n_layers else g
                      for g in child)
        return budget.repair(child, rng)

    def record(iteration: int, members: list) -> None:
        best, value = max(members, key=lambda gf: gf[1])
        rows.append({"iteration": iteration, "evaluated": len(scores), "best": value,
                     "best_widths": space.describe(best)})

    initial = [budget.uniform()]
    for _ in range(50 * population):
        if len(initial) == population:
            break
        genes = budget.repair(space.random(rng), rng)
        if genes not in initial:
            initial.append(genes)
    members, rows = [(genes, fitness(genes)) for genes in initial], []
    record(0, members)
    steady_state(members, rng, vary, fitness, stop=iterations, distinct_parents=False, replace=replace_worst,
                 after=record)
    best, value = max(members, key=lambda gf: gf[1])
    return SearchResult(best, value, scores, pd.DataFrame(rows))


def random_configs(budget: Budget, n: int, seed: int = 0) -> list[tuple[int, ...]]:
    """``n`` repaired random configurations from the second seed stream (independent of the search)."""
    rng = streams(seed, 2)[1]
    return [budget.repair(budget.space.random(rng), rng) for _ in range(n)]
