"""Genetic programming over proxy genotypes: LPZero's steady-state algorithm, seeded and resumable.

Kept apart as in DEAP: representation (``proxy.Proxy``), variation (``random_proxy``, ``crossover``, ``mutate``),
selection/replacement (``search``), and the fitness of one candidate (``evaluate_candidate``).

Defaults (LPZero code): population 80, 1000 iterations, one offspring per iteration; parents drawn uniformly
from the top 50 % by fitness; uniform crossover with p 0.5 (each input and unary op from either parent with
p 0.5, the binary op from the first parent with p 0.2); mutation with p 0.5 (each gene resampled with p 0.5,
inputs uniformly, ops by their prior); (μ + 1) replacement: the offspring joins and the worst individual leaves,
so the best is never lost. Fitness is the rank correlation on the *search split only*.

Determinism: one ``numpy.random.Generator(seed)`` drives every random choice; evaluation is deterministic, so the
same seed gives the same history bit for bit. Checkpoints store the generator state, the population and the RPS
memory; a resumed run continues exactly where the uninterrupted run would be.
"""
from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from lpzero_core.errors import LPZeroError
from lpzero_core.files import atomic_write_text
from lpzero_core.search.metrics import CORRELATIONS
from lpzero_core.search.ops import BINARY_PRIOR, INPUTS, UNARY_PRIOR
from lpzero_core.search.proxy import Proxy
from lpzero_core.search.pruning import RPS

HISTORY_FIELDS = ("step", "phase", "proxy", "fitness", "rejected_by", "evaluations")


@dataclass(frozen=True)
class GPConfig:
    population: int = 80
    iterations: int = 1000
    n_unary: int = 2
    fitness: str = "spearman"
    parent_fraction: float = 0.5
    crossover_p: float = 0.5
    binary_from_first_p: float = 0.2
    mutation_p: float = 0.5
    gene_mutation_p: float = 0.5
    aggregation: str = "mean"
    inputs: tuple[str, ...] = INPUTS
    rps: bool = True
    rps_k: int = 4
    checkpoint_every: int = 100
    seed: int = 0

    def __post_init__(self):
        if self.fitness not in CORRELATIONS:
            raise LPZeroError(f"--fitness must be one of {', '.join(CORRELATIONS)}, got {self.fitness!r}")
        if self.population < 2 or self.iterations < 0 or self.n_unary < 1:
            raise LPZeroError("need --population ≥ 2, --iterations ≥ 0 and --n-unary ≥ 1")


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
    while True:
        proxy = Proxy(
            (_input(rng, config.inputs), _input(rng, config.inputs)),
            tuple(tuple(_unary(rng) for _ in range(config.n_unary)) for _ in (0, 1)),
            _binary(rng), config.aggregation)
        if _defined(proxy):
            return proxy


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
@dataclass
class SearchState:
    """Everything a checkpoint holds; a resumed run continues from it bit for bit."""

    step: int = 0
    iteration: int = 0
    population: list[tuple[str, float]] = field(default_factory=list)
    rng_state: dict | None = None
    seen: list[str] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)
    evaluations: int = 0
    history_rows: int = 0


@dataclass
class SearchResult:
    best: Proxy
    fitness: float
    population: list[tuple[Proxy, float]]
    rejected: dict[str, int]
    evaluations: int
    history: list[dict]
    wall_seconds: float


class _Log:
    """history.csv (deterministic) and timings.csv (wall time per candidate), appended as the run goes."""

    def __init__(self, out: Path | None, keep_rows: int):
        self.out, self.rows, self.times = out, [], []
        if out is None:
            return
        for name, fields in (("history.csv", HISTORY_FIELDS), ("timings.csv", ("step", "seconds"))):
            path = out / name
            kept = []
            if keep_rows and path.exists():
                with path.open() as f:
                    kept = list(csv.DictReader(f))[:keep_rows]
            if name == "history.csv":
                self.rows = kept
            with path.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=fields)
                writer.writeheader()
                writer.writerows(kept)

    def add(self, step: int, phase: str, ev: Evaluation, seconds: float) -> None:
        row = {"step": step, "phase": phase, "proxy": str(ev.proxy),
               "fitness": "" if np.isnan(ev.fitness) else repr(ev.fitness),
               "rejected_by": ev.rejected_by, "evaluations": ev.evaluations}
        self.rows.append(row)
        self.times.append({"step": step, "seconds": f"{seconds:.6f}"})

    def flush(self) -> None:
        if self.out is None:
            return
        pending = self.rows[len(self.rows) - len(self.times):] if self.times else []
        for name, rows, fields in (("history.csv", pending, HISTORY_FIELDS),
                                   ("timings.csv", self.times, ("step", "seconds"))):
            with (self.out / name).open("a", newline="") as f:
                csv.DictWriter(f, fieldnames=fields).writerows(rows)
        self.times = []


def search(cache, config: GPConfig = GPConfig(), out: str | Path | None = None, resume: bool = False,
           progress: bool = True, stop_after: int | None = None) -> SearchResult:
    """Run the steady-state GP on ``cache``; with ``out``, write history/timings/checkpoints there.

    ``resume=True`` continues from ``out/checkpoint.json`` (written every ``checkpoint_every`` iterations).
    ``stop_after`` stops after that many iterations without finishing (used to test resumption).
    """
    out = None if out is None else Path(out)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    rps = RPS(enabled=config.rps, k=config.rps_k)
    state = SearchState()
    if resume:
        state = _load_checkpoint(out, config)
        rng.bit_generator.state = state.rng_state
        rps.seen, rps.rejected = set(state.seen), rps.rejected.__class__(state.rejected)
    log = _Log(out, state.history_rows if resume else 0)
    population = [(Proxy.parse(p), f) for p, f in state.population]
    start = time.perf_counter()

    def run(proxy: Proxy, phase: str) -> Evaluation:
        t0 = time.perf_counter()
        ev = evaluate_candidate(proxy, cache, rps, config.fitness)
        log.add(state.step, phase, ev, time.perf_counter() - t0)
        state.step += 1
        state.evaluations += ev.evaluations
        return ev

    while len(population) < config.population:  # initial population: rejection sampling of valid proxies
        ev = run(random_proxy(rng, config), "init")
        if not ev.rejected_by:
            population.append((ev.proxy, ev.fitness))

    bar = tqdm(total=config.iterations, initial=state.iteration, disable=not progress, desc="GP", unit="it")
    while state.iteration < config.iterations:
        if stop_after is not None and state.iteration >= stop_after:
            break
        ranked = sorted(population, key=lambda pf: -pf[1])
        top = ranked[: max(2, int(len(ranked) * config.parent_fraction))]
        i, j = rng.choice(len(top), size=2, replace=False)
        ev = run(offspring((top[i][0], top[j][0]), rng, config), "evolve")
        if not ev.rejected_by:
            population.append((ev.proxy, ev.fitness))
            population.pop(int(np.argmin([f for _, f in population])))
        state.iteration += 1
        bar.update(1)
        bar.set_postfix(best=f"{max(f for _, f in population):.4f}", refresh=False)
        if out is not None and (state.iteration % config.checkpoint_every == 0 or state.iteration == config.iterations):
            _save_checkpoint(out, config, state, population, rng, rps, log)
    bar.close()
    if out is not None:
        log.flush()
    best, fitness = max(population, key=lambda pf: pf[1])
    return SearchResult(best, fitness, population, dict(rps.rejected), state.evaluations, log.rows,
                        time.perf_counter() - start)


def _save_checkpoint(out: Path, config: GPConfig, state: SearchState, population, rng, rps: RPS, log: _Log) -> None:
    log.flush()
    state.population = [(str(p), f) for p, f in population]
    state.rng_state = rng.bit_generator.state
    state.seen, state.rejected = sorted(rps.seen), dict(rps.rejected)
    state.history_rows = len(log.rows)
    atomic_write_text(out / "checkpoint.json", json.dumps({"config": config_json(config), "state": asdict(state)}))


def config_json(config: GPConfig) -> dict:
    """The settings as plain JSON values (as stored in checkpoints and summary.json)."""
    return json.loads(json.dumps(asdict(config)))


def _load_checkpoint(out: Path | None, config: GPConfig) -> SearchState:
    path = None if out is None else out / "checkpoint.json"
    if path is None or not path.exists():
        raise LPZeroError(f"--resume: no checkpoint.json in {out}; start the search without --resume")
    data = json.loads(path.read_text())
    if data["config"] != config_json(config):
        raise LPZeroError(f"--resume: {path} was written with other settings; use the same arguments or a new --out")
    return SearchState(**data["state"])


def save_result(out: str | Path, result: SearchResult, cache, config: GPConfig) -> dict:
    """Write ``best.json`` (genotype + search fitness) and ``summary.json`` into ``out``; return the summary.

    The summary holds the canonical proxy, its formula, ρ/τ on the search split and on the held-out architectures
    (reported, never used for selection), rejections per RPS rule, architectures scored, wall time, seed, config.
    """
    from lpzero_core.search import metrics

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scores = result.best.evaluate(cache)

    def split(ids):
        return {"spearman": metrics.spearman(scores[ids], cache.target[ids]),
                "kendall": metrics.kendall(scores[ids], cache.target[ids]), "n": int(len(ids))}

    best = {**result.best.to_dict(), "fitness": result.fitness, "fitness_metric": config.fitness}
    summary = {"proxy": str(result.best), "formula": result.best.formula(), "benchmark": cache.name,
               "search": split(cache.search_ids), "heldout": split(cache.heldout_ids), "rejected": result.rejected,
               "evaluations": result.evaluations, "wall_seconds": result.wall_seconds, "seed": config.seed,
               "config": config_json(config)}
    atomic_write_text(out / "best.json", json.dumps(best, indent=2, ensure_ascii=False))
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False))
    return summary
