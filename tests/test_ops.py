import math

import numpy as np
import pytest
import torch

from lpzero_core.search import ops
from lpzero_core.search.ops import EPS, UNARY, apply_chain, estimate_chain

X = torch.tensor([[0.0, -2.0, 3.0], [float("nan"), 0.5, -0.25]], dtype=torch.float64)
FINITE = torch.tensor([[0.0, -2.0, 3.0], [1.0, 0.5, -0.25]], dtype=torch.float64)


def expected(name, x):
    """Reference formulas written with numpy, element by element where possible."""
    a = x.numpy()
    n = a.size
    with np.errstate(all="ignore"):
        return {
            "element_wise_log": np.log(np.where(a > 0, a, 1.0) + EPS),
            "element_wise_abslog": np.log(np.abs(np.where(a == 0, 1.0, a))),
            "element_wise_abs": np.abs(a),
            "element_wise_pow": a**2,
            "element_wise_exp": np.exp(a),
            "element_wise_relu": np.where(a > 0, a, 0.0) if not np.isnan(a).any() else np.maximum(a, 0),
            "element_wise_invert": 1 / (a + EPS),
            "frobenius_norm": np.sqrt(np.sum(a**2)),
            "element_wise_normalized_sum": np.sum(a) / n,
            "l1_norm": np.sum(np.abs(a)) / n,
            "sigmoid": 1 / (1 + np.exp(-a)),
            "element_wise_sqrt": np.sqrt(np.maximum(a, 0)),
            "element_wise_revert": -a,
            "min_max_normalize": (a - a.min()) / (a.max() - a.min() + EPS),
            "to_mean_scalar": np.mean(a),
            "to_std_scalar": np.std(a, ddof=1),
            "no_op": a,
            "softmax": np.exp(a) / np.exp(a).sum(axis=0, keepdims=True),
            "logsoftmax": a - np.log(np.exp(a).sum(axis=0, keepdims=True)),
            "normalize": np.nan_to_num((a - a.mean()) / a.std(ddof=1), nan=0.0, posinf=np.inf, neginf=-np.inf),
        }[name]


@pytest.mark.parametrize("name", ops.TABLE_OPS)
@pytest.mark.parametrize("x", [FINITE, X], ids=["finite", "with-nan"])
def test_unary_formula(name, x):
    before = x.clone()
    got = UNARY[name](x)
    assert torch.equal(x.nan_to_num(7.0), before.nan_to_num(7.0)), "op modified its input"
    np.testing.assert_allclose(got.numpy(), expected(name, x), rtol=1e-12, atol=1e-12, equal_nan=True)


def test_registry_sizes_and_disconnect():
    assert len(UNARY) == 21 and UNARY["disconnect"] is None
    assert len(ops.BINARY) == 4
    assert "disconnect" not in ops.TABLE_OPS and len(ops.TABLE_OPS) == 20


def test_special_values():
    zeros = torch.zeros(4)
    assert torch.equal(UNARY["element_wise_log"](zeros), torch.log(torch.ones(4) + EPS))  # ≈ 0
    assert torch.equal(UNARY["element_wise_abslog"](zeros), torch.zeros(4))
    assert torch.equal(UNARY["normalize"](zeros), torch.zeros(4))  # 0/0 → NaN → 0
    assert UNARY["softmax"](torch.tensor(5.0)).item() == 1.0
    assert UNARY["logsoftmax"](torch.tensor(5.0)).item() == 0.0
    assert math.isnan(UNARY["to_std_scalar"](torch.tensor(5.0)).item())
    assert torch.isinf(UNARY["element_wise_exp"](torch.tensor([1000.0]))).all()  # reported later, not repaired


def test_binary_ops():
    a, b = torch.tensor(3.0), torch.tensor(-2.0)
    assert ops.BINARY["element_wise_sum"](a, b) == 1.0
    assert ops.BINARY["element_wise_difference"](a, b) == 5.0
    assert ops.BINARY["element_wise_product"](a, b) == -6.0
    assert ops.BINARY["matrix_multiplication"](a, b) == -6.0
    m = torch.eye(2) * 2
    assert torch.equal(ops.BINARY["matrix_multiplication"](m, m), torch.eye(2) * 4)


def test_op_table_entries_are_complete_and_true():
    """Every op has every field, and the flags say what the function does (on a matrix and on two scalars)."""
    matrix = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    scalars = torch.tensor(2.5), torch.tensor(-1.3)
    for name, op in ops.UNARY_OPS.items():
        assert op.prior > 0 and all(isinstance(f, bool) for f in (op.bracket, op.scalar, op.constant_on_scalar)), name
        if op.fn is None:
            assert name == "disconnect"
            continue
        assert op.formula.count("{}") == 1, name
        assert (op.fn(matrix).dim() == 0) == op.scalar, name
        a, b = (op.fn(s) for s in scalars)
        assert bool(torch.equal(a, b) or (a.isnan() and b.isnan())) == op.constant_on_scalar, name
        enclosed = op.formula == "{}" or any(d in op.formula for d in ("({})", "|{}|", "‖{}‖"))
        assert op.bracket == (not enclosed), name
    for name, op in ops.BINARY_OPS.items():
        assert op.prior > 0 and op.symbol and all(isinstance(f, bool) for f in (op.commutative, op.cancels)), name
        x, y = torch.tensor(3.0), torch.tensor(-2.0)
        assert torch.equal(op.fn(x, y), op.fn(y, x)) == op.commutative, name
        assert (op.fn(x, -x if name == "element_wise_sum" else x) == 0).item() == op.cancels, name


def _reference_table(x):
    """T[i, j] = mean(op_j(op_i(x))) computed op by op in float64: the definition of the branch table."""
    x = x.double()
    return torch.tensor([[float(apply_chain(x, (first, second)).mean()) for second in ops.TABLE_OPS]
                         for first in ops.TABLE_OPS], dtype=torch.float64)


_G = torch.Generator().manual_seed(1)
SITES = {
    "normal": torch.randn(7, 5, 3, generator=_G),
    "edges": torch.tensor([[0.0, -3.0, 5e6, 0.0], [2.5, -7e5, 0.0, 1e-3], [-1e-30, 4.0, 80.0, -0.5]]),
    "large": 1e4 * torch.randn(6, 9, generator=_G) + 3e4,
    "negative": -torch.rand(5, 4, generator=_G),
    "one_row": torch.randn(1, 8, generator=_G),
    "vector": torch.randn(11, generator=_G),
    "scalar": torch.tensor(2.5),
    "with_nan": X,
}


@pytest.mark.parametrize("name", SITES)
def test_branch_table_equals_float64_reference(name):
    table, reference = ops.branch_table(SITES[name]), _reference_table(SITES[name])
    torch.testing.assert_close(table, reference, rtol=1e-9, atol=1e-12, equal_nan=True)


def test_branch_table_is_exact_where_the_reference_is_rounding_noise():
    """On zeros, invert gives the constant 1/ε, whose float64 mean differs from it by an ulp: the reference's
    normalize of it is then noise of order 1, where the table gives the exact 0; every other entry agrees. And
    mean(normalize(x)) is exactly 0, not the reference's noise of order 1e-17."""
    table, reference = ops.branch_table(torch.zeros(4, 5)), _reference_table(torch.zeros(4, 5))
    row, column = ops.TABLE_INDEX["element_wise_invert"], ops.TABLE_INDEX["normalize"]
    assert table[row, column] == 0.0 and abs(reference[row, column]) > 0.1
    reference[row, column] = 0.0
    torch.testing.assert_close(table, reference, rtol=1e-9, atol=1e-12, equal_nan=True)
    x = SITES["normal"]
    assert (ops.branch_table(x)[ops.TABLE_INDEX["normalize"], ops.TABLE_INDEX["no_op"]] == 0.0).item()  # not ~1e-17


def test_branch_table_does_not_depend_on_summation_order():
    """Rows permuted (every entry is invariant to that) give the same table to ~1e-12 (float64 accumulation); the
    worst entry, mean(1/logsoftmax) whose terms near 0 amplify an ulp of the log-sum-exp, differs by ~1e-11."""
    x = torch.randn(64, 300, generator=torch.Generator().manual_seed(3)) * 5 + 1
    permuted = x[torch.randperm(64, generator=torch.Generator().manual_seed(4))]
    torch.testing.assert_close(ops.branch_table(permuted), ops.branch_table(x), rtol=1e-10, atol=1e-15, equal_nan=True)


def test_branch_tables_batched_equals_single():
    stack = torch.randn(3, 4, 6, generator=torch.Generator().manual_seed(2))
    batched = ops.branch_tables(stack)
    for n in range(3):
        torch.testing.assert_close(batched[n], ops.branch_table(stack[n]), equal_nan=True, rtol=1e-9, atol=1e-12)


def test_site_mean_never_overflows_the_summation():
    big = torch.full((1000,), 3e38)  # float32 sum overflows; the mean does not
    assert ops.site_mean(big) == pytest.approx(3e38, rel=1e-6)
    assert ops.site_mean(torch.tensor([1.0, float("inf")])) == float("inf")


THREE_OP_CHAINS = [("softmax", "element_wise_log", "element_wise_abs"), ("logsoftmax", "element_wise_pow", "no_op"),
                   ("frobenius_norm", "element_wise_exp", "softmax"), ("normalize", "element_wise_pow", "sigmoid"),
                   ("element_wise_abs", "l1_norm", "element_wise_log"), ("min_max_normalize", "softmax", "logsoftmax")]


def _site_stats(x):
    return (torch.tensor(float(x.shape[0])), torch.tensor(float(x.numel())), x.mean(), x.std())


@pytest.mark.parametrize("ops", THREE_OP_CHAINS)
def test_estimate_chain_is_exact_on_a_complete_sample(ops):
    x = torch.randn(16, 32, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(estimate_chain(x, ops, *_site_stats(x)), apply_chain(x, ops))


def test_estimate_chain_corrects_for_missing_rows_and_elements():
    x = torch.randn(256, 64, generator=torch.Generator().manual_seed(1))
    sample = x[::16, ::2]  # 16 of 256 rows, half the columns
    stats = _site_stats(x)
    softmax_mean = estimate_chain(sample, ("softmax", "no_op", "no_op"), *stats).mean()
    assert softmax_mean == pytest.approx(1 / 256, rel=0.05)  # exact: mean softmax over dim 0 = 1 / rows
    uncorrected = torch.softmax(sample, dim=0).mean()
    assert uncorrected == pytest.approx(1 / 16, rel=0.05)
    norm = estimate_chain(sample, ("frobenius_norm", "no_op", "no_op"), *stats)
    assert norm == pytest.approx(float(torch.linalg.vector_norm(x)), rel=0.05)
    log_mean = estimate_chain(sample, ("logsoftmax", "to_mean_scalar", "no_op"), *stats)
    assert log_mean == pytest.approx(float(apply_chain(x, ("logsoftmax", "to_mean_scalar", "no_op"))), rel=0.02)


def test_fused_row_sums_equal_eager_and_fall_back_to_it_with_a_warning(monkeypatch):
    """The compiled pass (``_row_sums``) gives the eager sums (``_sums``) to rounding; where compiling fails the
    table is computed eagerly, with one warning, and stays exact."""
    x = (torch.randn(16, 40, generator=torch.Generator().manual_seed(5)) * 3 - 1).double()
    args = (x, x.mean(), x.min(), x.amax(dim=0))
    for fused, eager in zip(ops._row_sums(*args), ops._sums(*args)):
        torch.testing.assert_close(fused, eager, rtol=1e-12, atol=0)

    def no_compiler(fn, **kwargs):
        def fail(*args):
            raise RuntimeError("no C++ compiler")
        return fail

    monkeypatch.setattr(ops, "_compiled_sums", None)
    monkeypatch.setattr(torch, "compile", no_compiler)
    with pytest.warns(UserWarning, match="torch.compile failed"):
        table = ops.branch_table(x)
    assert ops._compiled_sums is ops._sums
    torch.testing.assert_close(table, _reference_table(x), rtol=1e-9, atol=1e-12, equal_nan=True)


def test_branch_table_compiles_once_whatever_the_site_layout():
    """Sites of any rank and shape reach the fused pass as fresh [rows, columns] tensors: after the warm-up no new
    site layout recompiles it (a recompilation costs ~0.2 s per layout and process)."""
    ops.warm_up()
    with torch._dynamo.config.patch(error_on_recompile=True):  # dynamo's own patch: restored on exit
        for shape in [(4, 8, 16), (2, 3, 5, 7), (6, 10), (3, 4, 5)]:
            x = torch.randn(shape, generator=torch.Generator().manual_seed(len(shape)))
            torch.testing.assert_close(ops.branch_table(x), _reference_table(x), rtol=1e-9, atol=1e-12,
                                       equal_nan=True)


def test_site_tables_equal_the_reference_site_by_site():
    """All sites of an input at once (the scalar first ops' rows batched) give each site's op-by-op table; an input
    without sites gives an empty table."""
    g = torch.Generator().manual_seed(11)
    sites = [torch.randn(4, 6, 5, generator=g), torch.randn(7, 3, generator=g).abs(), torch.tensor(2.5),
             torch.randn(1, 1, generator=g), torch.zeros(3, 4)]
    tables = ops.site_tables(sites)
    assert tables.shape == (20, 20, len(sites))
    for k, x in enumerate(sites):
        torch.testing.assert_close(tables[..., k], _reference_table(x), rtol=1e-9, atol=1e-12, equal_nan=True)
    assert ops.site_tables([]).shape == (20, 20, 0)
