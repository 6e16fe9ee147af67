import numpy as np
import pytest

from lpzero_core.search.gp import evaluate_candidate
from lpzero_core.search.proxy import Proxy
from lpzero_core.search.pruning import RPS, canonical_key, constant_by_construction

STATIC = {
    "both_disconnected": "sum(weight.disconnect.pow, grad.pow.disconnect)@mean",
    "constant_branch": "sum(weight.frobenius_norm.softmax, grad.pow.l1_norm)@mean",
}


@pytest.mark.parametrize("rule", STATIC)
def test_static_rules_fire(rule):
    rps = RPS()
    assert rps.static(Proxy.parse(STATIC[rule])) == rule
    assert rps.rejected[rule] == 1


def test_duplicate_rule_uses_canonical_form():
    rps = RPS()
    assert rps.static(Proxy.parse("sum(weight.pow.abs, grad.sigmoid.no_op)@mean")) is None
    assert rps.static(Proxy.parse("sum(grad.no_op.sigmoid, weight.pow.abs)@mean")) == "duplicate"  # commuted
    assert rps.static(Proxy.parse("difference(grad.no_op.sigmoid, weight.pow.abs)@mean")) is None  # not commutative
    assert rps.static(Proxy.parse("product(act.disconnect.abs, weight.pow.abs)@mean")) is None
    assert rps.static(Proxy.parse("sum(head.exp.disconnect, weight.pow.abs)@mean")) == "duplicate"  # same live branch


def test_constant_by_construction():
    assert constant_by_construction(("l1_norm", "logsoftmax"))
    assert constant_by_construction(("to_mean_scalar", "to_std_scalar"))
    assert constant_by_construction(("element_wise_abs", "normalize"))
    assert not constant_by_construction(("normalize", "element_wise_abs"))
    assert not constant_by_construction(("frobenius_norm", "element_wise_log"))


@pytest.mark.parametrize("rule, values", [
    ("non_finite", [1.0, np.nan, 2.0, 3.0]),
    ("zero", [1.0, 0.0, 2.0, 3.0]),
    ("constant", [2.0, 2.0, 2.0, 2.0]),
    ("numerically_constant", [2.0, 2.0 + 1e-12, 2.0 - 3e-13, 2.0]),
])
def test_dynamic_rules_fire(rule, values):
    rps = RPS()
    assert rps.dynamic(np.array(values)) == rule
    assert RPS(enabled=False).dynamic(np.array(values)) is None


def test_dynamic_rule_stops_after_k_architectures(synthetic_cache):
    rps = RPS(k=4)
    ev = evaluate_candidate(Proxy.parse("sum(weight.exp.exp, act.invert.exp)@mean"), synthetic_cache, rps)
    assert ev.rejected_by == "non_finite" and ev.evaluations == 4


class _RoundingNoiseCache:
    """A cache whose softmax-of-activations branch is 1/rows (exactly constant) plus float32-like rounding noise,
    as the old float32 tables stored it."""

    search_ids = np.arange(8)
    target = np.arange(8.0)

    def branch(self, name, ops):
        values = 0.125 * (1 + 1e-10 * np.sin(np.arange(8.0))) if ops[0] == "softmax" else np.arange(1.0, 9.0)
        return values[:, None], np.ones(8, dtype=int)


def test_numerically_constant_rule_rejects_rounding_noise():
    noise = Proxy.parse("sum(act.softmax.no_op, weight.abs.disconnect)@mean")
    assert evaluate_candidate(noise, _RoundingNoiseCache(), RPS(k=4)).rejected_by == "numerically_constant"
    signal = Proxy.parse("sum(act.abs.no_op, weight.abs.disconnect)@mean")
    assert evaluate_candidate(signal, _RoundingNoiseCache(), RPS(k=4)).rejected_by == ""


def test_rps_off_keeps_only_undefined_proxies():
    rps = RPS(enabled=False)
    assert rps.static(Proxy.parse(STATIC["constant_branch"])) is None
    assert rps.static(Proxy.parse(STATIC["both_disconnected"])) == "both_disconnected"


def test_canonical_key_drops_no_op():
    a = Proxy.parse("sum(weight.no_op.pow, act.abs.no_op)@mean")
    b = Proxy.parse("sum(weight.pow.no_op, act.no_op.abs)@mean")
    assert canonical_key(a) == canonical_key(b)
