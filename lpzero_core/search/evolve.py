"""Evolution of typed proxy trees (``tree`` and ``combine`` modes) with DEAP, fitness on the search split only.

Kept apart as in DEAP: representation (``tree``: primitive set, expressions), variation (``_variation``: one-point
crossover and four mutations under static height/size limits), fitness (``Problem.assess``) and selection
(``_survivors``: (μ + λ) truncation on distinct trees, or NSGA-II).

Algorithm (defaults in ``TreeConfig``): ramped half-and-half initial population of μ trees; per generation λ
offspring by ``deap.algorithms.varOr`` (crossover p 0.5, mutation p 0.4, else a copy); survivors = the μ best
distinct trees (by ``order_key``) of parents + offspring — or, with ``multi_objective``, NSGA-II over (fitness ↑,
size ↓, cost ↓) where cost is the extraction seconds per architecture of the statistics the tree reads.

Fitness of a tree on benchmark b (``resample``): F_b = (1 − w)·A_r[ρ(score, truth) on resample r of the fit fold]
+ w·ρ_strata(fit fold), with ρ_strata the size-weighted mean Spearman ρ within the benchmark's strata (e.g. depth ×
width; 0 where undefined, e.g. for a purely structural score) and w = ``strata_weight`` (default 0.3; 0: plain ρ); then
F = min_b F_b (or mean, ``aggregate``) − parsimony · size(simplified tree). The validation score is the same
combination on the validation fold (without resampling). Only leaves present on every benchmark
are offered. Rule-based pruning for trees, in order: ``constant_tree`` (the simplified tree reads no statistic),
``duplicate`` (same ``order_key`` as an earlier tree: its fitness is reused, not recomputed), then on the search
split ``non_finite`` (a score is NaN/±inf), ``constant`` (the first ``rps_k`` scores are equal),
``numerically_constant`` (max − min ≤ 1e-9 · max|score|) and ``undefined_correlation``. Rejected trees get fitness
−2 (below any correlation). The whole search split is scored at once (a vector op), so the first-k rule saves no
time here; it is kept so that the rules read as in the template's RPS.

Choice of the final tree (never held-out data): candidates = the ``hall_of_fame`` best distinct trees by fitness
(NSGA-II: the first Pareto front); the validation score (inner validation fold, min over benchmarks) of each;
among those within ``tolerance`` of the best validation score, the smallest tree, then the higher score.

Determinism: DEAP draws from Python's global ``random``; the search seeds it with ``seed`` and restores the
caller's state afterwards; the inner split and resamples use ``numpy.random.default_rng(seed)``. Nothing may
depend on the iteration order of a set of types or strings, which changes from one interpreter to the next (types
hash by address, strings by ``PYTHONHASHSEED``): crossover draws its node type from a list sorted by type name
(``_crossover``; DEAP's ``cxOnePoint`` draws it from a set), and ``cost`` sums in sorted order.
"""
from __future__ import annotations

import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Annotated, Literal

import numpy as np
from deap import algorithms, base, gp, tools
from pydantic import Field, field_validator
from tqdm.auto import tqdm

from lpzero_core.errors import LPZeroError
from lpzero_core.search import budget, metrics
from lpzero_core.search.resample import Generalisation, inner_split, resampled_correlation, resamples, spearman
from lpzero_core.search.settings import Count, Positive, Probability, listed, settings
from lpzero_core.search.tree import (
    DEFAULT_CHAINS,
    Expr,
    LeafSet,
    all_leaves,
    chain_name,
    common_network_columns,
    evaluate,
    has_leaf,
    order_key,
    primitive_set,
    search_leaves,
    simplify,
    size,
    to_expr,
    to_string,
)

REJECTED = -2.0
AGGREGATES = {"min": min, "mean": lambda values: float(np.mean(values))}


@settings
class TreeConfig:
    """Settings of the tree and combine modes (schema: ``search.settings``)."""

    population: Annotated[int, Field(ge=2)] = 200
    offspring: Positive = 200
    generations: Count = 25
    crossover_p: Probability = 0.5
    mutation_p: Probability = 0.4
    init_height: Annotated[tuple[Count, Count], Field(strict=False)] = (1, 3)
    max_height: Positive = 6
    max_size: Positive = 20
    chains: listed(str) = DEFAULT_CHAINS  # () ⇒ network scalars only (the combine mode)
    descriptors: bool = True
    baselines: bool = True
    constants: listed(float) = (0.1, 0.5, 1.0, 2.0)
    rank: bool = True
    generalisation: Generalisation = field(default_factory=Generalisation)  # a JSON object too
    aggregate: Literal[tuple(AGGREGATES)] = "min"
    strata_weight: Probability = 0.3
    multi_objective: bool = False
    hall_of_fame: Positive = 20
    tolerance: Annotated[float, Field(ge=0)] = 0.02
    rps_k: Positive = 4
    seed: Count = 0

    @field_validator("generalisation", mode="before")
    @classmethod
    def _from_json(cls, value):
        return Generalisation(**value) if isinstance(value, dict) else value

    def __post_init__(self):
        if self.crossover_p + self.mutation_p > 1:
            raise LPZeroError(f"crossover_p + mutation_p must be ≤ 1, got {self.crossover_p} + {self.mutation_p}")
        low, high = self.init_height
        if not low <= high <= self.max_height:
            raise LPZeroError(f"init_height [{low}, {high}]: need low ≤ high ≤ max_height ({self.max_height})")
        LeafSet(chains=self.chains)  # refuses a chain that is not 'input.op1.op2'


def combine_config(**overrides) -> TreeConfig:
    """The ``combine`` mode (Phan & Luong): trees over network scalars only (baselines, descriptors, constants)
    with ``rank`` and the log/abs/… transforms."""
    return TreeConfig(**{"chains": (), **overrides})


@contextmanager
def seeded_random(seed: int):
    """Seed Python's global ``random`` (DEAP's source of randomness) for a block; restore the caller's state."""
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


# -- fitness -----------------------------------------------------------------------------------------------------
@dataclass
class Assessment:
    """One distinct tree (by ``order_key``): simplified expression, penalised fitness, the aggregate resampled
    objective before parsimony, the ρ on the fit fold, the validation score (both aggregated over benchmarks), size,
    cost."""

    expr: Expr
    fitness: float
    resampled: float
    fit: float
    validation: float
    size: int
    cost: float
    rejected_by: str = ""

    def row(self) -> dict:
        return {"tree": to_string(self.expr), "fitness": self.fitness, "objective": self.resampled,
                "fit_spearman": self.fit, "validation_score": self.validation, "size": self.size,
                "seconds_per_arch": self.cost, "rejected_by": self.rejected_by}


@dataclass
class _Task:
    """The fitness data of one benchmark: search-split leaves, target and strata, fit/validation positions,
    resamples."""

    cache: object
    leaves: object
    target: np.ndarray
    strata: np.ndarray
    seconds: dict[str, float]  # per leaf: mean seconds per search architecture ("" = the chains' extraction)
    passes: dict[str, str]  # per baseline leaf: the extraction pass it reads (``cache.baseline_passes``)
    fit: np.ndarray
    validation: np.ndarray
    index: np.ndarray


def joint_seconds(names, seconds: dict[str, float], passes: dict[str, str]) -> float:
    """Seconds to compute the baselines ``names`` together, from each one's ``seconds`` alone (its pass plus its
    own reduction): baselines that read one pass (``passes``: name → pass) pay it once, so each pass counts as its
    most expensive reader. Names without seconds (descriptors) cost nothing."""
    per_pass: dict[str, float] = {}
    for name in sorted(names):
        if name in seconds:
            key = passes.get(name, name)
            per_pass[key] = max(per_pass.get(key, 0.0), seconds[name])
    return sum(sorted(per_pass.values()))


class Problem:
    """Fitness of trees on the search splits of ``caches`` (``Problem.assess``), memoised by ``order_key``.

    Reads ``cache.search_ids``, the target of those ids and their statistics — nothing of a held-out id.
    """

    def __init__(self, caches, config: TreeConfig):
        rng = np.random.default_rng(config.seed)
        self.config, self.tasks = config, []
        for cache in caches:
            leaves = search_leaves(cache)
            fit, validation = inner_split(len(leaves), config.generalisation.validation, rng)
            index = resamples(fit, config.generalisation, rng)
            ids = cache.search_ids
            seconds = {x: float(cache.baseline_seconds[x].to_numpy(float)[ids].mean())
                       for x in cache.baseline_seconds.columns} | {"": float(np.mean(cache.extract_seconds[ids]))}
            self.tasks.append(_Task(cache, leaves, np.asarray(cache.target)[ids], np.asarray(cache.strata)[ids],
                                    seconds, cache.baseline_passes, fit, validation, index))
        self.memo: dict[str, Assessment] = {}
        self.rejected: dict[str, int] = {}
        self.evaluations = 0

    def _reject(self, expr: Expr, rule: str) -> Assessment:
        self.rejected[rule] = self.rejected.get(rule, 0) + 1
        return Assessment(expr, REJECTED, np.nan, np.nan, np.nan, size(expr), np.nan, rule)

    def cost(self, expr: Expr) -> float:
        """Seconds per architecture to compute what the tree reads (mean over search archs, max over benchmarks):
        the extraction time if it reads a chain, plus the baselines it reads (:func:`joint_seconds`)."""
        leaves, stack = set(), [expr]
        while stack:
            node = stack.pop()
            if isinstance(node, tuple):
                stack.extend(node[1:])
            elif isinstance(node, str):
                leaves.add(node)
        used = {"" if chain_name(x) else x for x in leaves}
        return max(task.seconds[""] * ("" in used) + joint_seconds(used - {""}, task.seconds, task.passes)
                   for task in self.tasks)

    def assess(self, expr: Expr) -> Assessment:
        simple = simplify(expr)
        if not has_leaf(simple):
            return self._reject(simple, "constant_tree")
        key = order_key(simple)
        if key in self.memo:
            self.rejected["duplicate"] = self.rejected.get("duplicate", 0) + 1
            return self.memo[key]
        self.memo[key] = self._assess(simple)
        return self.memo[key]

    def _assess(self, expr: Expr) -> Assessment:
        g = self.config.generalisation
        resampled, fit, validation = [], [], []
        for task in self.tasks:
            scores = evaluate(expr, task.leaves)
            self.evaluations += len(scores)
            head = scores[: self.config.rps_k]
            if not np.isfinite(scores).all():
                return self._reject(expr, "non_finite")
            if len(head) >= 2 and (head == head[0]).all():
                return self._reject(expr, "constant")
            if np.ptp(scores) <= 1e-9 * np.abs(scores).max():
                return self._reject(expr, "numerically_constant")
            within = lambda p: np.nan_to_num(metrics.stratified(scores[p], task.target[p], task.strata[p], "spearman"))
            w = self.config.strata_weight
            resampled.append((1 - w) * resampled_correlation(scores, task.target, task.index, g.quantile)
                             + (w * within(task.fit) if w else 0.0))
            fit.append(spearman(scores[task.fit], task.target[task.fit]))
            validation.append((1 - w) * spearman(scores[task.validation], task.target[task.validation])
                              + (w * within(task.validation) if w else 0.0) if len(task.validation) else np.nan)
        aggregate = AGGREGATES[self.config.aggregate]
        if not np.isfinite(resampled).all():
            return self._reject(expr, "undefined_correlation")
        value = aggregate(resampled)
        return Assessment(expr, value - g.parsimony * size(expr), value, aggregate(fit), aggregate(validation),
                          size(expr), self.cost(expr))


# -- variation -----------------------------------------------------------------------------------------------------
class _Fitness(base.Fitness):
    weights = (1.0,)


class _ParetoFitness(base.Fitness):
    weights = (1.0, -1.0, -1.0)  # fitness, size, seconds per architecture


class Individual(gp.PrimitiveTree):
    """A DEAP tree with a fitness (single- or multi-objective)."""

    def __init__(self, content, fitness_class: type = _Fitness):
        super().__init__(content)
        self.fitness = fitness_class()


def _crossover(a: Individual, b: Individual) -> tuple[Individual, Individual]:
    """Typed one-point crossover: a node type ``t`` drawn among the types both trees return below their roots
    (sorted by name), a node of type ``t`` drawn in each tree, and the two subtrees rooted there swapped."""
    def by_type(tree):
        nodes: dict[type, list[int]] = {}
        for position, node in enumerate(tree[1:], start=1):
            nodes.setdefault(node.ret, []).append(position)
        return nodes

    in_a, in_b = by_type(a), by_type(b)
    shared = sorted(in_a.keys() & in_b.keys(), key=lambda t: t.__name__)
    if not shared:
        return a, b
    node_type = random.choice(shared)
    slice_a, slice_b = a.searchSubtree(random.choice(in_a[node_type])), b.searchSubtree(random.choice(in_b[node_type]))
    a[slice_a], b[slice_b] = b[slice_b], a[slice_a]
    return a, b


def _mutate(individual: Individual, pset: gp.PrimitiveSetTyped):
    """One of: a new random subtree (grow, height 0–2), a node replaced by one of the same type signature, a
    subtree replaced by one of its same-typed arguments (shrink), a new node inserted above a subtree."""
    kind = random.randrange(4)
    if kind == 0:
        return gp.mutUniform(individual, expr=lambda pset, type_: gp.genGrow(pset, 0, 2, type_), pset=pset)
    if kind == 1:
        return gp.mutNodeReplacement(individual, pset)
    if kind == 2:
        return gp.mutShrink(individual)
    return gp.mutInsert(individual, pset)


def _variation(pset: gp.PrimitiveSetTyped, config: TreeConfig) -> base.Toolbox:
    """DEAP toolbox: ``expr`` (ramped half-and-half), ``mate`` and ``mutate`` under static height and size limits
    (an over-limit child is replaced by a parent, ``gp.staticLimit``)."""
    toolbox = base.Toolbox()
    toolbox.register("expr", gp.genHalfAndHalf, pset=pset, min_=config.init_height[0], max_=config.init_height[1])
    toolbox.register("mate", _crossover)
    toolbox.register("mutate", _mutate, pset=pset)
    for operator in ("mate", "mutate"):
        toolbox.decorate(operator, gp.staticLimit(attrgetter("height"), config.max_height))
        toolbox.decorate(operator, gp.staticLimit(len, config.max_size))
    return toolbox


# -- selection -----------------------------------------------------------------------------------------------------
def _survivors(pool: list[Individual], mu: int, multi_objective: bool) -> list[Individual]:
    """The μ survivors among distinct trees (first of each ``order_key`` kept; duplicates only fill up a short
    pool): truncation by fitness, or NSGA-II."""
    distinct, duplicates, seen = [], [], set()
    for ind in pool:
        key = ind.key
        (duplicates if key in seen else distinct).append(ind)
        seen.add(key)
    if len(distinct) < mu:
        distinct += duplicates[: mu - len(distinct)]
    if multi_objective:
        return tools.selNSGA2(distinct, mu)
    return sorted(distinct, key=lambda ind: -ind.fitness.values[0])[:mu]


def choose(candidates: list[Assessment], tolerance: float) -> Assessment:
    """The stated choice rule: the smallest candidate whose validation score is within ``tolerance`` of the best
    validation score (ties: higher validation score, then higher fitness); without a validation fold, the best
    fitness."""
    valid = [c for c in candidates if np.isfinite(c.validation)]
    if not valid:
        return max(candidates, key=lambda c: c.fitness)
    best = max(c.validation for c in valid)
    eligible = [c for c in valid if c.validation >= best - tolerance]
    return min(eligible, key=lambda c: (c.size, -c.validation, -c.fitness))


# -- the search ----------------------------------------------------------------------------------------------------
@dataclass
class TreeProxy:
    """A found tree; ``evaluate(cache)`` scores every architecture of a cache (``rank`` anchored on its search
    split)."""

    expr: Expr

    def __str__(self) -> str:
        return to_string(self.expr)

    def evaluate(self, cache) -> np.ndarray:
        return evaluate(self.expr, all_leaves(cache))


@dataclass
class TreeResult:
    proxy: TreeProxy
    chosen: Assessment
    candidates: list[Assessment]
    pareto: list[Assessment]
    rejected: dict[str, int]
    evaluations: int
    distinct: int
    history: list[dict]
    wall_seconds: float
    validation: dict[str, np.ndarray]  # per benchmark name: the inner validation fold (positions in its search split)


def leafset(caches, config: TreeConfig) -> LeafSet:
    """The leaves of a search over ``caches``: the configured chains, the network columns common to all caches,
    the constants."""
    return LeafSet(tuple(config.chains), common_network_columns(caches, config.descriptors, config.baselines),
                   tuple(config.constants), config.rank)


def tree_search(caches, config: TreeConfig = TreeConfig(), progress: bool = False) -> TreeResult:
    """Evolve trees on the search splits of ``caches`` (one cache or a list: a multi-benchmark search)."""
    caches = list(caches) if isinstance(caches, (list, tuple)) else [caches]
    budget.check("tree", config.population + config.offspring,
                 config.population + config.generations * config.offspring,
                 sum(len(c.search_ids) for c in caches) * config.generalisation.resamples,
                 f"population {config.population}, offspring {config.offspring}, generations {config.generations}")
    start = time.perf_counter()
    pset = primitive_set(leafset(caches, config))
    toolbox = _variation(pset, config)
    problem = Problem(caches, config)
    fitness_class = _ParetoFitness if config.multi_objective else _Fitness

    def assign(individuals):
        for ind in individuals:
            if not ind.fitness.valid:
                a = problem.assess(to_expr(ind))
                ind.key = order_key(a.expr) if not a.rejected_by else f"rejected:{ind}"
                # a rejected tree is dominated in every objective, whatever its size
                objectives = (a.fitness, config.max_size + 1, 1e6) if a.rejected_by else (a.fitness, a.size, a.cost)
                ind.fitness.values = objectives if config.multi_objective else (a.fitness,)

    history = []
    with seeded_random(config.seed):
        population = [Individual(toolbox.expr(), fitness_class) for _ in range(config.population)]
        assign(population)
        for generation in tqdm(range(config.generations + 1), disable=not progress, desc="tree", unit="gen"):
            if generation:
                offspring = algorithms.varOr(population, toolbox, config.offspring, config.crossover_p,
                                             config.mutation_p)
                assign(offspring)
                population = _survivors(population + offspring, config.population, config.multi_objective)
            best = max(population, key=lambda ind: ind.fitness.values[0])
            history.append({"generation": generation, "best_fitness": best.fitness.values[0],
                            "median_fitness": float(np.median([i.fitness.values[0] for i in population])),
                            "distinct_evaluated": len(problem.memo), "best": best.key})
    accepted = sorted((a for a in problem.memo.values() if not a.rejected_by), key=lambda a: -a.fitness)
    if not accepted:
        raise LPZeroError("the tree search found no valid tree (every candidate was rejected); widen the leaves")
    pareto = []
    if config.multi_objective:
        front = tools.sortNondominated(population, len(population), first_front_only=True)[0]
        pareto = list({problem.memo[ind.key].expr: problem.memo[ind.key] for ind in front
                       if ind.key in problem.memo}.values())
    candidates = pareto or accepted[: config.hall_of_fame]
    chosen = choose(candidates, config.tolerance)
    return TreeResult(TreeProxy(chosen.expr), chosen, candidates, pareto, dict(problem.rejected),
                      problem.evaluations, len(problem.memo), history, time.perf_counter() - start,
                      {task.cache.name: task.validation for task in problem.tasks})
