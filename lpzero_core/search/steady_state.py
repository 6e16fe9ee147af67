"""The steady-state evolutionary loop shared by the proxy GP (``gp``) and the LLaMA sub-network search.

Kept apart as in DEAP: the loop knows no genotype. The caller builds the initial population and passes the
variation ``vary(parents, rng) -> child``, the fitness ``fitness(child) -> float`` (higher is better; ``None``:
rejected) and the replacement rule; the loop does the selection.

The population is a list of ``(individual, fitness)`` pairs, changed in place. Iteration ``t`` (1, 2, …):

1. rank the population by fitness, best first; ties keep population order (a stable sort);
2. draw two parents uniformly from the top ``max(2, ⌊n · parent_fraction⌋)`` of the n ranked individuals, without
   replacement (``distinct_parents``) or with it (then one individual may be both parents);
3. ``child = vary(parents, rng)``, ``f = fitness(child)``;
4. unless the child is rejected, ``replace(population, child, f)`` (``plus_one`` or ``replace_worst``);
5. ``after(t, population)``: progress, checkpoints, history.

Determinism and resumption: one ``numpy.random.Generator`` draws the parents and is handed to ``vary``, so with a
deterministic fitness a seed fixes the run; ``steady_state(population, rng, …, start=t)`` with the population and
generator state of iteration ``t`` continues bit for bit where the uninterrupted run would be.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np


def plus_one(population: list, child, fitness: float) -> None:
    """(μ + 1): the child joins, then the first individual of least fitness leaves (the child when it is worse
    than every member), so the best is never lost."""
    population.append((child, fitness))
    population.pop(min(range(len(population)), key=lambda k: population[k][1]))


def replace_worst(population: list, child, fitness: float) -> None:
    """A child equal to a member is dropped; otherwise the worst member (of the least fit, the last) leaves,
    whatever the child's fitness, and the child joins at the end."""
    if any(child == member for member, _ in population):
        return
    population.pop(min(reversed(range(len(population))), key=lambda k: population[k][1]))
    population.append((child, fitness))


def steady_state(population: list, rng: np.random.Generator, vary: Callable, fitness: Callable, *, stop: int,
                 start: int = 0, parent_fraction: float = 0.5, distinct_parents: bool = True,
                 replace: Callable = plus_one, after: Callable | None = None) -> None:
    """Run iterations ``start + 1 … stop`` on ``population`` (see the module docstring)."""
    for iteration in range(start + 1, stop + 1):
        ranked = sorted(population, key=lambda pf: pf[1], reverse=True)
        top = ranked[: max(2, int(len(ranked) * parent_fraction))]
        i, j = rng.choice(len(top), size=2, replace=not distinct_parents)
        child = vary((top[i][0], top[j][0]), rng)
        value = fitness(child)
        if value is not None:
            replace(population, child, value)
        if after is not None:
            after(iteration, population)
