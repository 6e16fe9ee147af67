import numpy as np
import pytest
import torch

from lpzero_core.errors import LPZeroError
from lpzero_core.search.gp import GPConfig, random_proxy
from lpzero_core.search.ops import TABLE_INDEX, branch_table
from lpzero_core.search.proxy import RELEASED, Proxy
from lpzero_core.stats.benchmarks.base import INPUTS


def test_string_round_trip_on_random_genotypes():
    rng = np.random.default_rng(0)
    for n_unary in (1, 2, 3, 5):
        config = GPConfig(n_unary=n_unary, aggregation="sum" if n_unary == 3 else "mean")
        for _ in range(200):
            proxy = random_proxy(rng, config)
            assert Proxy.parse(str(proxy)) == proxy
            assert Proxy.from_dict(proxy.to_dict()) == proxy


def test_short_aliases_parse_to_canonical():
    proxy = Proxy.parse("sum(weight.pow.l1_norm, grad.softmax.pow)@mean")
    assert proxy == RELEASED["lpzero_gpt2"]
    assert str(proxy) == "element_wise_sum(weight.element_wise_pow.l1_norm, grad.softmax.element_wise_pow)@mean"


def test_readable_formula():
    assert RELEASED["lpzero_gpt2"].formula() == "mean_l[ ‖W²‖₁/n + mean(softmax(G)²) ]"
    assert Proxy.parse("product(act.disconnect.pow, head.abs)@sum").formula() == "sum_l[ mean(|H|) ]"


@pytest.mark.parametrize("text, token", [
    ("sum(weight.powr.l1_norm, grad.softmax)@mean", "'powr'"),
    ("sum(weights.pow, grad)@mean", "'weights'"),
    ("plus(weight.pow, grad)@mean", "'plus'"),
    ("sum(weight.pow, grad)@median", "'median'"),
])
def test_bad_string_names_the_token(text, token):
    with pytest.raises(LPZeroError) as error:
        Proxy.parse(text)
    message = str(error.value)
    assert token in message and "\n" not in message


def _tensors(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {x: [torch.randn(3 + k, 4, generator=g) for k in range(n)]
            for x, n in zip(INPUTS, (2, 3, 2, 4, 3, 1))}


def test_score_tensors_by_hand():
    inputs = _tensors()
    proxy = Proxy.parse("difference(act.abs, jacobian.pow)@mean")
    # act has 2 sites, jacobian 1: pairing truncates to the first site
    expected = inputs["act"][0].abs().double().mean() - (inputs["jacobian"][0].double() ** 2).mean()
    assert proxy.score_tensors(inputs) == pytest.approx(expected.item(), rel=1e-6)  # ops in float32
    single = Proxy.parse("sum(act.disconnect, weight.pow)@sum")
    assert single.score_tensors(inputs) == pytest.approx(sum((t.double() ** 2).mean().item() for t in inputs["weight"]))


def test_cache_evaluation_equals_direct(synthetic_cache):
    from lpzero_core.stats.benchmarks.synthetic import generate

    archs, tensors = generate(150, seed=0)
    rng = np.random.default_rng(3)
    ids = np.arange(10)
    for _ in range(25):
        proxy = random_proxy(rng, GPConfig())
        cached = proxy.evaluate(synthetic_cache, ids)
        direct = np.array([proxy.score_tensors({x: tensors[x][a] for x in INPUTS}) for a in ids])
        np.testing.assert_allclose(cached, direct, rtol=1e-6, atol=1e-9, equal_nan=True, err_msg=str(proxy))


@pytest.mark.parametrize("text", ["sum(weight.to_std_scalar.exp.sigmoid, act.abs.l1_norm.log)@mean",
                                  "product(grad.frobenius_norm.invert.sqrt, head.pow.to_mean_scalar.abslog)@mean"])
def test_three_op_chains_reduced_early_are_exact(synthetic_cache, text):
    """Op 1 or op 2 reduces to a scalar: the cache reads that scalar from the table, so the result is exact."""
    from lpzero_core.stats.benchmarks.synthetic import generate

    archs, tensors = generate(150, seed=0)
    proxy, ids = Proxy.parse(text), np.arange(10)
    direct = np.array([proxy.score_tensors({x: tensors[x][a] for x in INPUTS}) for a in ids])
    np.testing.assert_allclose(proxy.evaluate(synthetic_cache, ids), direct, rtol=1e-6)


def test_non_finite_values_are_reported_not_averaged(synthetic_cache):
    proxy = Proxy.parse("sum(weight.exp.exp, act.abs)@mean")  # exp(exp(x)) overflows on large entries
    scores = proxy.evaluate(synthetic_cache)
    assert not np.isfinite(scores).all()


def test_a_cancelling_sum_below_the_table_resolution_is_zero():
    """‖H‖_F read from the table two ways (the scalar op, and the moment identity √(n · mean(H²))) agree to
    rounding; their difference is then 0, not noise that a fitness could rank."""
    proxy = Proxy.parse("difference(head.frobenius_norm.no_op, head.no_op.frobenius_norm)@mean")
    x = torch.randn(6, 50, generator=torch.Generator().manual_seed(0)) * 7 + 3
    table = branch_table(x)
    b1 = np.array([table[TABLE_INDEX["frobenius_norm"], TABLE_INDEX["no_op"]].item()])
    b2 = np.array([table[TABLE_INDEX["no_op"], TABLE_INDEX["frobenius_norm"]].item()])
    assert abs(b1 - b2)[0] < 1e-12 * b1[0]
    assert proxy.combine(b1, b2)[0] == 0.0
    assert proxy.combine(b1, b2 * (1 + 1e-6))[0] != 0.0  # a resolved difference is kept
    assert Proxy.parse("product(head.abs, act.abs)@mean").combine(np.array([1e-10]), np.array([1.0]))[0] == 1e-10
