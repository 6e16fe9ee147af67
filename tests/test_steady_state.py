"""The steady-state loop (lpzero_core.search.steady_state): replacement rules, parent draws, resumption."""
import numpy as np

from lpzero_core.search.steady_state import plus_one, replace_worst, steady_state


def test_plus_one_drops_the_first_least_fit_and_may_drop_the_child():
    population = [("a", 0.5), ("b", 0.1), ("c", 0.1)]
    plus_one(population, "d", 0.3)
    assert population == [("a", 0.5), ("c", 0.1), ("d", 0.3)]
    plus_one(population, "e", 0.0)  # worse than every member: the population is unchanged
    assert population == [("a", 0.5), ("c", 0.1), ("d", 0.3)]


def test_replace_worst_drops_the_last_least_fit_and_refuses_a_copy():
    population = [("a", 0.5), ("b", 0.1), ("c", 0.1)]
    replace_worst(population, "d", 0.0)  # joins whatever its fitness
    assert population == [("a", 0.5), ("b", 0.1), ("d", 0.0)]
    replace_worst(population, "a", 0.5)
    assert population == [("a", 0.5), ("b", 0.1), ("d", 0.0)]


def test_parents_are_distinct_unless_drawn_with_replacement():
    def draws(distinct):
        seen = []

        def vary(parents, rng):
            seen.append(parents)
            return "child"

        steady_state([(k, float(k)) for k in range(4)], np.random.default_rng(0), vary, lambda child: None, stop=200,
                     distinct_parents=distinct)
        return seen

    assert all(a != b for a, b in draws(True))
    assert any(a == b for a, b in draws(False))
    assert {x for pair in draws(True) for x in pair} == {3, 2}  # the top half of 4 by fitness


def test_continuing_from_an_iteration_is_the_same_run():
    def run(population, rng, start, stop, log):
        steady_state(population, rng, lambda p, rng: p[0] + p[1] + rng.integers(3), lambda child: -abs(child - 40),
                     start=start, stop=stop, after=lambda t, members: log.append((t, list(members))))

    whole, first, rest = [], [], []
    run([(k, -abs(k - 40)) for k in range(6)], np.random.default_rng(1), 0, 30, whole)
    population, rng = [(k, -abs(k - 40)) for k in range(6)], np.random.default_rng(1)
    run(population, rng, 0, 12, first)
    run(population, rng, 12, 30, rest)
    assert first + rest == whole and [t for t, _ in whole] == list(range(1, 31))
