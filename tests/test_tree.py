"""Typed proxy trees (search/tree.py, search/evolve.py) and the mode runner (workbench/modes.py) on the synthetic
cache, with small budgets."""
import dataclasses
import json
import random

import numpy as np
import pytest
from deap import gp

from lpzero_core.errors import LPZeroError
from lpzero_core.search import evolve, tree
from lpzero_core.search.evolve import Problem, TreeConfig, tree_search
from lpzero_core.search.tree import Net

SMALL = dict(population=30, offspring=30, generations=3, hall_of_fame=5)


def _well_typed(individual) -> bool:
    """Every node returns the type its parent's slot expects; the root returns Net."""
    expected = [Net]
    for node in individual:
        if not expected or node.ret is not expected.pop():
            return False
        expected.extend(reversed(node.args) if isinstance(node, gp.Primitive) else ())
    return not expected


def test_variation_yields_well_typed_trees_within_limits(synthetic_cache):
    config = TreeConfig(max_height=5, max_size=15)
    pset = tree.primitive_set(evolve.leafset([synthetic_cache], config))
    toolbox = evolve._variation(pset, config)
    leafset = evolve.leafset([synthetic_cache], config)
    with evolve.seeded_random(3):
        population = [evolve.Individual(toolbox.expr()) for _ in range(40)]
        for _ in range(300):
            a, b = (toolbox.clone(x) for x in random.sample(population, 2))
            children = toolbox.mate(a, b) if random.random() < 0.5 else toolbox.mutate(a)
            for child in children:
                assert _well_typed(child), str(child)
                assert child.height <= config.max_height and len(child) <= config.max_size
                expr = tree.to_expr(child)
                assert tree.parse(tree.to_string(expr), leafset) == expr  # the parser type-checks it again
            population[random.randrange(len(population))] = children[0]


def test_simplification_preserves_values_on_a_cache(synthetic_cache):
    leaves = tree.all_leaves(synthetic_cache)
    config = TreeConfig()
    pset = tree.primitive_set(evolve.leafset([synthetic_cache], config))
    handwritten = ["revert(revert(mean_sites(act.pow.no_op)))", "sum(0.0, n_layers)", "product(hidden, 1.0)",
                   "abs(pow(max_sites(weight.abs.no_op)))", "difference(0.0, std_sites(grad.no_op.no_op))",
                   "product(-1.0, hidden)", "rank(rank(n_layers))", "sum(hidden, product(2.0, 0.5))",
                   "mean_sites(sum(act.abs.no_op, weight.pow.no_op))",
                   "mean_sites(sum(weight.pow.no_op, act.abs.no_op))",
                   "sum_sites(difference(act.pow.no_op, act.pow.no_op))", "difference(hidden, hidden)"]
    exprs = [tree.parse(text) for text in handwritten]
    with evolve.seeded_random(0):
        exprs += [tree.to_expr(gp.PrimitiveTree(gp.genHalfAndHalf(pset, 1, 4))) for _ in range(300)]
    changed = 0
    for expr in exprs:
        simple = tree.simplify(expr)
        changed += simple != expr
        before, after = tree.evaluate(expr, leaves), tree.evaluate(simple, leaves)
        finite = np.isfinite(before)
        np.testing.assert_array_equal(after[finite], before[finite], err_msg=tree.to_string(expr))
        assert tree.simplify(simple) == simple  # canonical: simplification is idempotent
    assert changed >= len(handwritten)
    assert tree.simplify(exprs[8]) == tree.simplify(exprs[9])  # commutative operands sorted
    assert tree.order_key(tree.parse("rank(sum(2.0, n_layers))")) == tree.order_key(tree.parse("n_layers"))


@pytest.mark.parametrize("text, token", [
    ("mean_sites(act.pow.nope)", "act.pow.nope"), ("sum(n_layers, foo)", "foo"), ("bogus(n_layers)", "bogus"),
    ("mean_sites(n_layers)", "mean_sites"), ("sum(n_layers hidden)", "sum"), ("n_layers)", ")"),
    ("rank(act.pow.no_op)", "rank"), ("sum(n_layers, mean_sites(act.pow.no_op)) $", "$"),
])
def test_bad_tree_string_is_a_one_line_error_naming_the_token(synthetic_cache, text, token):
    leafset = evolve.leafset([synthetic_cache], TreeConfig())
    with pytest.raises(LPZeroError) as error:
        tree.parse(text, leafset)
    message = str(error.value)
    assert "\n" not in message and repr(token) in message.replace(repr(text), "")


def test_tree_rps_rules(synthetic_cache):
    problem = Problem([synthetic_cache], TreeConfig())
    assess = lambda text: problem.assess(tree.parse(text)).rejected_by
    assert assess("sum(2.0, invert(0.5))") == "constant_tree"
    assert assess("sum(1.0, product(1e-12, mean_sites(act.no_op.no_op)))") == "numerically_constant"
    assert assess("product(0.0, hidden)") == "constant_tree"
    assert assess("mean_sites(act.to_mean_scalar.softmax)") == "constant"  # softmax of a scalar is 1
    assert assess("std_sites(jacobian.no_op.no_op)") == "non_finite"  # one site: the unbiased std is NaN
    assert assess("mean_sites(act.pow.no_op)") == ""
    assert assess("rank(mean_sites(act.pow.no_op))") == "" and problem.rejected["duplicate"] == 1


def test_strata_weight_rewards_ordering_within_strata_only(synthetic_cache):
    # synthetic strata are the depths: n_layers orders nothing within a stratum, a planted statistic does
    problem = Problem([synthetic_cache], TreeConfig(strata_weight=1.0))
    structural = problem.assess(tree.parse("n_layers"))
    statistic = problem.assess(tree.parse("mean_sites(weight.pow.l1_norm)"))
    assert structural.resampled == 0.0 and structural.validation == 0.0
    assert statistic.resampled > 0.3


def test_search_reads_no_heldout_target_or_statistic(synthetic_cache, poisoned):
    config = TreeConfig(**SMALL, seed=1)
    clean = tree_search(synthetic_cache, config)
    poisoned = tree_search(poisoned(synthetic_cache, features=True), config)
    assert str(poisoned.proxy) == str(clean.proxy)
    assert poisoned.history == clean.history and poisoned.chosen.fitness == clean.chosen.fitness


def test_same_seed_same_result_and_callers_random_untouched(synthetic_cache):
    random.seed(123)
    state = random.getstate()
    a = tree_search(synthetic_cache, TreeConfig(**SMALL, seed=2))
    assert random.getstate() == state
    b = tree_search(synthetic_cache, TreeConfig(**SMALL, seed=2))
    assert str(a.proxy) == str(b.proxy) and a.history == b.history
    c = tree_search(synthetic_cache, TreeConfig(**SMALL, seed=3))
    assert c.history != a.history


class _Hashed(type):
    """A metaclass whose classes' hashes can be swapped: a set of them then iterates in the other order, as a set
    of types does from one interpreter to the next (types hash by address)."""

    swapped = False

    def __hash__(cls):
        return cls.slot if not _Hashed.swapped else 3 - cls.slot


class _Left(metaclass=_Hashed):
    slot = 1


class _Right(metaclass=_Hashed):
    slot = 2


def test_crossover_does_not_depend_on_the_iteration_order_of_types():
    """DEAP's ``cxOnePoint`` drew the node type from a set of types, so a seeded tree search differed between
    processes; the crossover must draw the same children whatever order a set of the types iterates in."""
    pset = gp.PrimitiveSetTyped("t", [], _Left)
    pset.addPrimitive(lambda x, y: x, [_Right, _Left], _Left, name="mix")
    pset.addPrimitive(lambda x: x, [_Left], _Right, name="cast")
    pset.addTerminal(1.0, _Left, name="a")
    pset.addTerminal(2.0, _Right, name="b")
    first, second = (gp.PrimitiveTree.from_string(text, pset) for text in ("mix(cast(a), a)", "mix(b, mix(b, a))"))
    mate = evolve._variation(pset, TreeConfig()).mate
    children = {}
    for swapped in (False, True):
        _Hashed.swapped = swapped
        assert list({_Left, _Right}) == ([_Right, _Left] if swapped else [_Left, _Right])
        for seed in range(20):
            random.seed(seed)
            a, b = mate(evolve.Individual(first), evolve.Individual(second))
            children.setdefault(seed, set()).add((str(a), str(b)))
    _Hashed.swapped = False
    assert all(len(pair) == 1 for pair in children.values())


def test_multi_objective_returns_a_pareto_front(synthetic_cache):
    result = tree_search(synthetic_cache, TreeConfig(**SMALL, multi_objective=True))
    front = [(a.fitness, a.size, a.cost) for a in result.pareto]
    assert front and all(not a.rejected_by for a in result.pareto)
    dominated = lambda p, q: q[0] >= p[0] and q[1] <= p[1] and q[2] <= p[2] and q != p
    assert not any(dominated(p, q) for p in front for q in front)
    assert result.chosen in result.pareto


def test_combine_mode_uses_network_scalars_only(synthetic_cache):
    result = tree_search(synthetic_cache, evolve.combine_config(**SMALL))
    assert all(tree.chain_name(leaf) is None for leaf in str(result.proxy).replace("(", " ").replace(")", " ")
               .replace(",", " ").split())
    with pytest.raises(LPZeroError, match="chain"):
        tree.parse("mean_sites(act.pow.no_op)", evolve.leafset([synthetic_cache], evolve.combine_config()))


def test_multi_benchmark_search_offers_common_leaves_only(synthetic_cache):
    other = dataclasses.replace(synthetic_cache, descriptors=synthetic_cache.descriptors.drop(columns=["hidden"]),
                                _memo={})
    config = evolve.combine_config(**SMALL, constants=())
    assert "hidden" not in evolve.leafset([synthetic_cache, other], config).network
    result = tree_search([synthetic_cache, other], config)
    assert "hidden" not in str(result.proxy)


def test_run_mode_writes_a_run_folder(synthetic_cache, tmp_path):
    from lpzero_core.workbench.modes import run_mode

    summary = run_mode("tree", synthetic_cache, tmp_path, seeds=(0, 1), overrides={**SMALL, "max_size": 12},
                       n_resamples=20)
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["chosen_seed"] in (0, 1) and written["chosen_proxy"] == summary["chosen_proxy"]
    stats = written["per_benchmark"]["synthetic"]
    assert stats["over_seeds"]["heldout_spearman"]["min"] <= stats["over_seeds"]["heldout_spearman"]["max"]
    assert stats["chosen_row"]["n"] == len(synthetic_cache.heldout_ids)
    seed = json.loads((tmp_path / "seed1" / "proxy.json").read_text())
    tree.parse(seed["candidate"])
    assert seed["fallback"]["choice"] in ("candidate", "baseline", "descriptor", "refined")
    assert len(summary["table"]) == 2
    with pytest.raises(LPZeroError, match="'populaton'"):
        run_mode("tree", synthetic_cache, seeds=(0,), overrides={"populaton": 3})


def test_baselines_of_one_pass_cost_it_once():
    """snip and grad_norm read the shared forward + backward: together they cost that pass once, not twice."""
    from lpzero_core.search.evolve import joint_seconds

    seconds = {"snip": 1.0, "grad_norm": 1.2, "synflow": 3.0, "logsynflow": 2.5, "grasp": 4.0}
    passes = {"snip": "shared_pass", "grad_norm": "shared_pass", "synflow": "synflow_pass",
              "logsynflow": "synflow_pass", "grasp": "grasp_pass"}
    assert joint_seconds({"snip", "grad_norm"}, seconds, passes) == 1.2
    assert joint_seconds({"snip", "synflow", "logsynflow", "n_layers"}, seconds, passes) == 4.0
    assert joint_seconds(set(seconds), seconds, passes) == 1.2 + 3.0 + 4.0
    assert joint_seconds({"snip", "grad_norm"}, seconds, {}) == 2.2  # unknown passes: each its own
