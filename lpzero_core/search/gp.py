"""Genetic programming over proxy genotypes: LPZero's steady-state algorithm, seeded and resumable.

Kept apart as in DEAP: representation (``proxy.Proxy``), variation (``random_proxy``, ``crossover``, ``mutate``),
the fitness of one candidate (``evaluate_candidate``), and selection/replacement: the loop of ``steady_state``,
which ``search`` runs after filling the initial population.

Defaults (LPZero code): population 80, 1000 iterations, one offspring per iteration; two distinct parents drawn
uniformly from the top 50 % by fitness; uniform crossover with p 0.5 (each input and unary op from either parent
with p 0.5, the binary op from the first parent with p 0.2); mutation with p 0.5 (each gene resampled with p 0.5,
inputs uniformly, ops by their prior); (μ + 1) replacement (``steady_state.plus_one``): an accepted offspring joins
and the worst individual leaves, so the best is never lost. Fitness is the rank correlation on the *search split
only*; a candidate RPS rejects leaves the population unchanged.

Determinism: one ``numpy.random.Generator(seed)`` drives every random choice; evaluation is deterministic, so the
same seed gives the same history bit for bit. The search writes no file: it reports every candidate and, every
``checkpoint_every`` iterations, a ``SearchState`` (generator state, population, RPS memory, counters) to an
``Observer``; passing a snapshot back as ``state`` continues exactly where the uninterrupted run would be.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Annotated, Literal

import numpy as np
from pydantic import Field
from tqdm.auto import tqdm

from lpzero_core.errors import LPZeroError
from lpzero_core.search.budget import check as check_budget
from lpzero_core.search.metrics import CORRELATIONS
from lpzero_core.search.ops import BINARY_PRIOR, INPUTS, UNARY_PRIOR
from lpzero_core.search.proxy import AGGREGATIONS, Proxy
from lpzero_core.search.pruning import RPS
from lpzero_core.search.settings import Count, Positive, Probability, listed, settings
from lpzero_core.search.steady_state import steady_state

HISTORY_FIELDS = ("step", "phase", "proxy", "fitness", "rejected_by", "evaluations")
#: longest unary chain: longer chains are almost always disconnected (prior 0.2 vs 0.1 per op), and chains past two
#: ops are estimated from bounded samples
MAX_N_UNARY = 8


@settings
class GPConfig:
    """LPZero's GP settings (schema: ``search.settings``)."""

    population: Annotated[int, Field(ge=2)] = 80
    iterations: Count = 1000
    n_unary: Annotated[int, Field(ge=1, le=MAX_N_UNARY)] = 2
    fitness: Literal[tuple(CORRELATIONS)] = "spearman"
    parent_fraction: Annotated[float, Field(gt=0, le=1)] = 0.5
    crossover_p: Probability = 0.5
    binary_from_first_p: Probability = 0.2
    mutation_p: Probability = 0.5
    gene_mutation_p: Probability = 0.5
    aggregation: Literal[AGGREGATIONS] = "mean"
    inputs: Annotated[listed(Literal[INPUTS]), Field(min_length=1)] = INPUTS
    rps: bool = True
    rps_k: Positive = 4
    checkpoint_every: Positive = 100
    seed: Count = 0


# -- variation -------------------------------------------------------------------------------------------------
_UNARY_NAMES = list(UNARY_PRIOR)
_UNARY_P = np.array(list(UNARY_PRIOR.values())) / sum(UNARY_PRIOR.values())
_BINARY_NAMES = list(BINARY_PRIOR)
_BINARY_P = np.array(list(BINARY_PRIOR.values())) / sum(BINARY_PRIOR.values())


def _unary(rng: np.random.Generator) -> str:
    return _UNARY_NAMES[rng.choice(len(_UNARY_NAMES), p=_UNARY_P)]


def _binary(rng: np.random.Generator) -> str:
    return _BINARY_NAMES[rng.choice(len(_BINARY_NAMES), p=_BINARY_P)]


def _input(rng: np.random.Generator, inputs) -> str:
    return inputs[rng.integers(len(inputs))]


def _defined(proxy: Proxy) -> bool:
    return not (proxy.dropped(0) and proxy.dropped(1))


def random_proxy(rng: np.random.Generator, config: GPConfig) -> Proxy:
    """A random genotype (inputs uniform, ops by prior), redrawn until at least one branch is live."""
    for _ in range(10_000):
        proxy = Proxy(
            (_input(rng, config.inputs), _input(rng, config.inputs)),
            tuple(tuple(_unary(rng) for _ in range(config.n_unary)) for _ in (0, 1)),
            _binary(rng), config.aggregation)
        if _defined(proxy):
            return proxy
    raise LPZeroError(f"no random proxy with a live branch in 10000 draws (n_unary {config.n_unary})")


def crossover(a: Proxy, b: Proxy, rng: np.random.Generator, config: GPConfig) -> Proxy:
    """Uniform crossover: each input and unary op from either parent (p 0.5), binary from ``a`` with p 0.2."""
    pick = lambda x, y: x if rng.random() < 0.5 else y
    inputs = tuple(pick(x, y) for x, y in zip(a.inputs, b.inputs))
    ops = tuple(tuple(pick(x, y) for x, y in zip(ca, cb)) for ca, cb in zip(a.ops, b.ops))
    binary = a.binary if rng.random() < config.binary_from_first_p else b.binary
    return Proxy(inputs, ops, binary, a.agg)


def mutate(proxy: Proxy, rng: np.random.Generator, config: GPConfig) -> Proxy:
    """Resample each gene with probability ``gene_mutation_p``."""
    hit = lambda: rng.random() < config.gene_mutation_p
    inputs = tuple(_input(rng, config.inputs) if hit() else x for x in proxy.inputs)
    ops = tuple(tuple(_unary(rng) if hit() else op for op in chain) for chain in proxy.ops)
    binary = _binary(rng) if hit() else proxy.binary
    return Proxy(inputs, ops, binary, proxy.agg)


def offspring(parents: tuple[Proxy, Proxy], rng: np.random.Generator, config: GPConfig) -> Proxy:
    """Crossover (p ``crossover_p``) then mutation (p ``mutation_p``), repeated until the child is defined."""
    while True:
        child = crossover(*parents, rng, config) if rng.random() < config.crossover_p else parents[0]
        if rng.random() < config.mutation_p:
            child = mutate(child, rng, config)
        if _defined(child):
            return child


# -- fitness ---------------------------------------------------------------------------------------------------
@dataclass
class Evaluation:
    proxy: Proxy
    fitness: float  # NaN when rejected
    rejected_by: str  # "" when accepted
    evaluations: int  # architectures scored


def evaluate_candidate(proxy: Proxy, cache, rps: RPS, fitness: str = "spearman") -> Evaluation:
    """Static RPS rules, then the first k search architectures (dynamic rules), then the rest; the fitness is
    the rank correlation with the ground truth on the search split."""
    ids = cache.search_ids
    rule = rps.static(proxy)
    if rule:
        return Evaluation(proxy, float("nan"), rule, 0)
    head = proxy.evaluate(cache, ids[: rps.k])
    rule = rps.dynamic(head)
    if rule:
        return Evaluation(proxy, float("nan"), rule, len(head))
    scores = np.concatenate([head, proxy.evaluate(cache, ids[rps.k:])])
    value = CORRELATIONS[fitness](scores, cache.target[ids])
    if not np.isfinite(value):
        return Evaluation(proxy, float("nan"), rps.undefined(), len(ids))
    return Evaluation(proxy, value, "", len(ids))


# -- the search ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchState:
    """A snapshot of a search between two iterations: ``search(cache, config, state=snapshot)`` continues it bit
    for bit. ``step`` counts candidates evaluated (the ``step`` of the next one), ``iteration`` offspring;
    ``population`` holds (canonical proxy, fitness) pairs, ``seen``/``rejected`` the RPS memory and counters."""

    step: int = 0
    iteration: int = 0
    population: tuple[tuple[str, float], ...] = ()
    rng_state: dict | None = None
    seen: tuple[str, ...] = ()
    rejected: dict[str, int] = field(default_factory=dict)
    evaluations: int = 0

    def to_json(self) -> dict:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_json(cls, data: dict) -> "SearchState":
        """Inverse of ``to_json``; a ``KeyError``/``TypeError`` means the data is no snapshot."""
        return cls(**{**data, "population": tuple((p, f) for p, f in data["population"]),
                      "seen": tuple(data["seen"])})


@dataclass
class SearchResult:
    best: Proxy
    fitness: float
    population: list[tuple[Proxy, float]]
    rejected: dict[str, int]
    evaluations: int
    wall_seconds: float
    state: SearchState  # the last snapshot (the end of the run, or where ``stop_after`` stopped it)


class Observer:
    """Receives a search's progress, as DEAP's algorithms fill a logbook; this base class ignores it.

    ``evaluated`` is called once per candidate, in ``step`` order; ``checkpoint`` every ``checkpoint_every``
    iterations and when the run completes, with the snapshot to pass back as ``search(..., state=…)``. The search
    itself writes no file: the workbench's run directory (``workbench/runs.py``) is one observer.
    """

    def evaluated(self, step: int, phase: str, evaluation: Evaluation, seconds: float) -> None:
        pass

    def checkpoint(self, state: SearchState) -> None:
        pass


def history_row(step: int, phase: str, evaluation: Evaluation) -> dict:
    """One row of a search history (``HISTORY_FIELDS``): fitness as ``repr`` (exact), "" when rejected."""
    return {"step": step, "phase": phase, "proxy": str(evaluation.proxy),
            "fitness": "" if np.isnan(evaluation.fitness) else repr(evaluation.fitness),
            "rejected_by": evaluation.rejected_by, "evaluations": evaluation.evaluations}


def search(cache, config: GPConfig = GPConfig(), *, state: SearchState | None = None,
           observer: Observer | None = None, progress: bool = True, stop_after: int | None = None) -> SearchResult:
    """Run the steady-state GP on ``cache``, from scratch or from a snapshot ``state``; progress goes to ``observer``.

    ``stop_after`` stops after that many iterations without finishing (used to test resumption). A search split of
    fewer than 3 architectures, or an initial population that ``100 × population`` candidates cannot fill, is an
    ``LPZeroError`` (no correlation can be defined, so the search could not progress).
    """
    if len(cache.search_ids) < 3:
        raise LPZeroError(f"the search split of this cache holds {len(cache.search_ids)} architecture(s); a rank "
                          f"correlation needs at least 3: extract more of the search split")
    check_budget("template", config.population, config.population + config.iterations, len(cache.search_ids),
                 f"population {config.population} with {config.iterations} iterations")
    observer = observer or Observer()
    state = state or SearchState()
    rng = np.random.default_rng(config.seed)
    rps = RPS(enabled=config.rps, k=config.rps_k)
    if state.rng_state is not None:
        rng.bit_generator.state = state.rng_state
    rps.seen, rps.rejected = set(state.seen), Counter(state.rejected)
    step, iteration, evaluations = state.step, state.iteration, state.evaluations
    population = [(Proxy.parse(p), f) for p, f in state.population]
    start = time.perf_counter()

    def run(proxy: Proxy, phase: str) -> Evaluation:
        nonlocal step, evaluations
        t0 = time.perf_counter()
        ev = evaluate_candidate(proxy, cache, rps, config.fitness)
        observer.evaluated(step, phase, ev, time.perf_counter() - t0)
        step += 1
        evaluations += ev.evaluations
        return ev

    def snapshot() -> SearchState:
        return SearchState(step, iteration, tuple((str(p), f) for p, f in population), rng.bit_generator.state,
                           tuple(sorted(rps.seen)), dict(rps.rejected), evaluations)

    budget = step + 100 * config.population
    while len(population) < config.population:  # initial population: rejection sampling of valid proxies
        if step >= budget:
            rule, count = rps.rejected.most_common(1)[0]
            raise LPZeroError(f"the initial population holds {len(population)} of {config.population} proxies after "
                              f"{step} candidates (most rejected by {rule}: {count}); the search cannot progress "
                              f"on this cache")
        ev = run(random_proxy(rng, config), "init")
        if not ev.rejected_by:
            population.append((ev.proxy, ev.fitness))

    bar = tqdm(total=config.iterations, initial=iteration, disable=not progress, desc="GP", unit="it")

    def fitness_of(proxy: Proxy) -> float | None:
        ev = run(proxy, "evolve")
        return None if ev.rejected_by else ev.fitness

    def after(done: int, members: list) -> None:
        nonlocal iteration
        iteration = done
        bar.update(1)
        bar.set_postfix(best=f"{max(f for _, f in members):.4f}", refresh=False)
        if iteration % config.checkpoint_every == 0 and iteration < config.iterations:
            observer.checkpoint(snapshot())

    stop = config.iterations if stop_after is None else min(stop_after, config.iterations)
    steady_state(population, rng, lambda parents, rng: offspring(parents, rng, config), fitness_of, start=iteration,
                 stop=stop, parent_fraction=config.parent_fraction, after=after)
    bar.close()
    last = snapshot()
    if iteration == config.iterations:
        observer.checkpoint(last)
    best, fitness = max(population, key=lambda pf: pf[1])
    return SearchResult(best, fitness, population, dict(rps.rejected), evaluations, time.perf_counter() - start,
                        last)


def config_json(config: GPConfig) -> dict:
    """The settings as plain JSON values (as stored in checkpoints and summary.json)."""
    return json.loads(json.dumps(asdict(config)))
