"""Primitive operations of the LPZero search space: 21 unary and 4 binary ops, one table each (``UNARY_OPS``,
``BINARY_OPS``), and the branch table of a site.

Conventions
-----------
* ε = 1e-9 (``EPS``). "Scalar" means a 0-d tensor.
* No op modifies its input: every op returns a new tensor.
* Ops contain no data-dependent Python branching, so ``torch.vmap`` can batch them over many sites at once.
* Non-finite values are *not* repaired here (except where a formula says so, e.g. ``normalize``: NaN → 0):
  they propagate, and the proxy evaluation detects and reports them.
* ``std`` is the unbiased sample standard deviation (correction 1), so it is NaN on a single element.
* The branch table (``branch_table``) runs every chain in float64 and accumulates every mean in float64; its
  entries are resolved to ``RESOLUTION`` (relative), below which RPS and ``Proxy.combine`` treat values as equal.
* ``disconnect`` is not a function of its input: it marks a dropped branch (the binary op then returns the other
  branch; both dropped is invalid). Its registry entry is ``None``.
"""
from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import torch

#: the proxy inputs, each a list of per-site tensors of one network on one batch (see stats/benchmarks/base.py)
INPUTS = ("act", "grad", "head", "softmax", "weight", "jacobian")
#: their symbols in readable formulas
INPUT_SYMBOL = {"act": "A", "grad": "G", "head": "H", "softmax": "P", "weight": "W", "jacobian": "J"}

EPS = 1e-9
#: relative precision of a branch table entry (``branch_table``): float64 means of up to ~10⁷ elements are
#: reproducible to ~1e-12 under another summation order; 1e-9 ≈ 10⁷ · 2⁻⁵³ bounds even a naive float64 sum
RESOLUTION = 1e-9
Tensor = torch.Tensor


def element_wise_log(a: Tensor) -> Tensor:
    """log(A + ε) where A > 0; entries ≤ 0 (and NaN) are first set to 1, so they map to log(1 + ε) ≈ 0."""
    return torch.log(torch.where(a > 0, a + EPS, 1.0 + EPS))


def element_wise_abslog(a: Tensor) -> Tensor:
    """log|A|, zero entries first set to 1 (→ 0)."""
    return torch.log(torch.where(a == 0, 1.0, a.abs()))


def element_wise_abs(a: Tensor) -> Tensor:
    """|A|."""
    return a.abs()


def element_wise_pow(a: Tensor) -> Tensor:
    """A²."""
    return a * a


def element_wise_exp(a: Tensor) -> Tensor:
    """exp(A)."""
    return torch.exp(a)


@contextmanager
def _std_of_one_element_is_nan():
    """Silence torch's warning about std of one element, which is NaN by definition here (see the conventions)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"std\(\): degrees of freedom")
        yield


def normalize(a: Tensor) -> Tensor:
    """(A − mean A) / std A, unbiased std; NaN results (e.g. constant A, or one element) → 0 (±inf are kept)."""
    with _std_of_one_element_is_nan():
        z = (a - a.mean()) / a.std()
    return torch.where(torch.isnan(z), torch.zeros_like(z), z)


def element_wise_relu(a: Tensor) -> Tensor:
    """max(A, 0)."""
    return torch.relu(a)


def element_wise_invert(a: Tensor) -> Tensor:
    """1 / (A + ε)."""
    return 1.0 / (a + EPS)


def frobenius_norm(a: Tensor) -> Tensor:
    """‖A‖_F = sqrt(Σ A²), a scalar."""
    return torch.linalg.vector_norm(a)


def element_wise_normalized_sum(a: Tensor) -> Tensor:
    """Σ A / numel(A), a scalar."""
    return a.sum() / a.numel()


def l1_norm(a: Tensor) -> Tensor:
    """Σ |A| / numel(A), a scalar."""
    return a.abs().sum() / a.numel()


def softmax(a: Tensor) -> Tensor:
    """softmax over dim 0 (a scalar is treated as one element, giving 1)."""
    return torch.softmax(a.reshape(-1) if a.dim() == 0 else a, dim=0).reshape(a.shape)


def sigmoid(a: Tensor) -> Tensor:
    """σ(A) = 1 / (1 + exp(−A))."""
    return torch.sigmoid(a)


def logsoftmax(a: Tensor) -> Tensor:
    """log-softmax over dim 0 (identically 0 on a scalar)."""
    return torch.log_softmax(a.reshape(-1) if a.dim() == 0 else a, dim=0).reshape(a.shape)


def element_wise_sqrt(a: Tensor) -> Tensor:
    """sqrt(max(A, 0))."""
    return torch.sqrt(torch.relu(a))


def element_wise_revert(a: Tensor) -> Tensor:
    """−A."""
    return -a


def min_max_normalize(a: Tensor) -> Tensor:
    """(A − min A) / (max A − min A + ε)."""
    lo, hi = a.min(), a.max()
    return (a - lo) / (hi - lo + EPS)


def to_mean_scalar(a: Tensor) -> Tensor:
    """mean(A), a scalar."""
    return a.mean()


def to_std_scalar(a: Tensor) -> Tensor:
    """std(A), unbiased, a scalar (NaN on a single element)."""
    with _std_of_one_element_is_nan():
        return a.std()


def no_op(a: Tensor) -> Tensor:
    """A (a copy, so that callers may never alias the input)."""
    return a.clone()


def element_wise_sum(a: Tensor, b: Tensor) -> Tensor:
    """A + B."""
    return a + b


def element_wise_difference(a: Tensor, b: Tensor) -> Tensor:
    """A − B."""
    return a - b


def element_wise_product(a: Tensor, b: Tensor) -> Tensor:
    """A · B (element-wise)."""
    return a * b


def matrix_multiplication(a: Tensor, b: Tensor) -> Tensor:
    """A @ B; on per-site scalars (the template's case) this is the product A · B."""
    return a * b if a.dim() == 0 or b.dim() == 0 else a @ b


@dataclass(frozen=True)
class UnaryOp:
    """One unary primitive (DEAP's primitive set, in one row).

    ``fn`` (None: ``disconnect``, which drops its branch); ``prior``: sampling weight (normalised over all ops);
    ``formula``: readable form, ``{}`` standing for the operand; ``bracket``: the formula sets a symbol next to
    the operand (−x, 1/x, √x, x²), so a compound operand needs parentheses, where a call such as ``log(…)`` needs
    none; ``scalar``: the output is a scalar whatever the input; ``constant_on_scalar``: on a scalar input the
    output does not depend on it (read by RPS's ``constant_branch`` rule).
    """

    fn: Callable[[Tensor], Tensor] | None
    prior: float
    formula: str
    bracket: bool
    scalar: bool
    constant_on_scalar: bool


@dataclass(frozen=True)
class BinaryOp:
    """One binary primitive: ``fn``, sampling ``prior``, infix ``symbol`` of the readable form, ``commutative``
    (operands may be swapped: read by RPS's ``duplicate`` rule), ``cancels`` (a ± b: a result below
    ``RESOLUTION`` · (|a| + |b|) is rounding, read as 0 by ``Proxy.combine``)."""

    fn: Callable[[Tensor, Tensor], Tensor]
    prior: float
    symbol: str
    commutative: bool
    cancels: bool


#: The unary op table. Its ORDER indexes the branch table of every statistics cache: appending an op, or changing
#: the order, needs a bump of ``stats.cache.EXTRACTION_VERSION``. Priors are the original code's: 0.1 per op, 0.2
#: for ``disconnect``.
UNARY_OPS: dict[str, UnaryOp] = {
    # name: UnaryOp(fn, prior, formula, bracket, scalar, constant_on_scalar)
    "element_wise_log": UnaryOp(element_wise_log, 0.1, "log({})", False, False, False),
    "element_wise_abslog": UnaryOp(element_wise_abslog, 0.1, "log|{}|", False, False, False),
    "element_wise_abs": UnaryOp(element_wise_abs, 0.1, "|{}|", False, False, False),
    "element_wise_pow": UnaryOp(element_wise_pow, 0.1, "{}²", True, False, False),
    "element_wise_exp": UnaryOp(element_wise_exp, 0.1, "exp({})", False, False, False),
    "normalize": UnaryOp(normalize, 0.1, "z({})", False, False, True),
    "element_wise_relu": UnaryOp(element_wise_relu, 0.1, "relu({})", False, False, False),
    "element_wise_invert": UnaryOp(element_wise_invert, 0.1, "1/{}", True, False, False),
    "frobenius_norm": UnaryOp(frobenius_norm, 0.1, "‖{}‖_F", False, True, False),
    "element_wise_normalized_sum": UnaryOp(element_wise_normalized_sum, 0.1, "Σ({})/n", False, True, False),
    "l1_norm": UnaryOp(l1_norm, 0.1, "‖{}‖₁/n", False, True, False),
    "softmax": UnaryOp(softmax, 0.1, "softmax({})", False, False, True),
    "sigmoid": UnaryOp(sigmoid, 0.1, "σ({})", False, False, False),
    "logsoftmax": UnaryOp(logsoftmax, 0.1, "logsoftmax({})", False, False, True),
    "element_wise_sqrt": UnaryOp(element_wise_sqrt, 0.1, "√{}", True, False, False),
    "element_wise_revert": UnaryOp(element_wise_revert, 0.1, "−{}", True, False, False),
    "min_max_normalize": UnaryOp(min_max_normalize, 0.1, "minmax({})", False, False, True),
    "to_mean_scalar": UnaryOp(to_mean_scalar, 0.1, "mean({})", False, True, False),
    "to_std_scalar": UnaryOp(to_std_scalar, 0.1, "std({})", False, True, True),
    "no_op": UnaryOp(no_op, 0.1, "{}", False, False, False),
    "disconnect": UnaryOp(None, 0.2, "∅", False, False, False),
}

#: The binary op table (priors of the original code).
BINARY_OPS: dict[str, BinaryOp] = {
    # name: BinaryOp(fn, prior, symbol, commutative, cancels)
    "element_wise_sum": BinaryOp(element_wise_sum, 0.6, "+", True, True),
    "element_wise_difference": BinaryOp(element_wise_difference, 0.3, "−", False, True),
    "element_wise_product": BinaryOp(element_wise_product, 0.05, "·", True, False),
    "matrix_multiplication": BinaryOp(matrix_multiplication, 0.05, "@", True, False),
}

# views of the tables, by field
UNARY: dict[str, Callable[[Tensor], Tensor] | None] = {name: op.fn for name, op in UNARY_OPS.items()}
BINARY: dict[str, Callable[[Tensor, Tensor], Tensor]] = {name: op.fn for name, op in BINARY_OPS.items()}
UNARY_PRIOR: dict[str, float] = {name: op.prior for name, op in UNARY_OPS.items()}
BINARY_PRIOR: dict[str, float] = {name: op.prior for name, op in BINARY_OPS.items()}
SCALAR_OPS = frozenset(name for name, op in UNARY_OPS.items() if op.scalar)

#: the unary ops that compute something (all but ``disconnect``), in table order
TABLE_OPS: tuple[str, ...] = tuple(name for name, f in UNARY.items() if f is not None)
TABLE_INDEX: dict[str, int] = {name: k for k, name in enumerate(TABLE_OPS)}

#: short names accepted by the parser (``pow`` → ``element_wise_pow``, ``sum`` → ``element_wise_sum``)
ALIASES: dict[str, str] = {
    name.removeprefix("element_wise_"): name for name in (*UNARY, *BINARY) if name.startswith("element_wise_")
}
ALIASES.update({"difference": "element_wise_difference", "matmul": "matrix_multiplication"})


def apply_chain(x: Tensor, ops: tuple[str, ...]) -> Tensor:
    """Apply unary ops left to right (``ops`` must not contain ``disconnect``)."""
    for name in ops:
        x = UNARY[name](x)
    return x


def estimate_chain(sample: Tensor, ops: tuple[str, ...], rows: Tensor, numel: Tensor, mean: Tensor,
                   std: Tensor) -> Tensor:
    """``apply_chain(x, ops)`` estimated from a sample of ``x``: ``sample`` [R, C] holds R of the ``rows`` rows of
    ``x`` viewed as [rows, numel / rows]; ``mean`` and ``std`` are exact statistics of the whole ``x``.

    Element-wise ops need no correction; those that normalise over elements the sample lacks are corrected:

    * softmax over dim 0: the column normaliser Σ_rows e^x is estimated as (rows / R) · Σ_R e^x, so
      softmax(x) ≈ softmax_R(x) · R / rows, and logsoftmax(x) ≈ logsoftmax_R(x) − log(rows / R);
    * frobenius_norm: ‖x‖ ≈ ‖sample‖ · √(numel / (R·C));
    * normalize as the first op uses the exact ``mean`` and ``std``; later it (and min_max_normalize, the
      scalar means) uses the sample's own statistics as estimates.

    Once an op has reduced to a scalar the rest of the chain is exact. Static control flow only (vmap-safe).
    """
    x, r, n = sample, sample.shape[0], sample.numel()
    for k, name in enumerate(ops):
        if x.dim() == 0:
            x = UNARY[name](x)
        elif name == "softmax":
            x = torch.softmax(x, dim=0) * (r / rows)
        elif name == "logsoftmax":
            x = torch.log_softmax(x, dim=0) - torch.log(rows / r)
        elif name == "frobenius_norm":
            x = torch.linalg.vector_norm(x) * torch.sqrt(numel / n)
        elif name == "normalize" and k == 0:
            z = (x - mean) / std
            x = torch.where(torch.isnan(z), torch.zeros_like(z), z)
        else:
            x = UNARY[name](x)
    return x


def site_mean(y: Tensor) -> float:
    """The per-site reduction of the template: the mean of all elements, accumulated in float64."""
    return float(y.mean(dtype=torch.float64))


def branch_table(x: Tensor) -> Tensor:
    """Per-site means of every two-op chain, float64 [20, 20] over ``TABLE_OPS``: ``T[i, j] = mean(op_j(op_i(x)))``
    with the chain computed on ``x`` converted to float64 and every mean accumulated in float64, so that the table
    is the same to ~1e-12 relative whatever the CPU's summation order. This is all the n_unary = 2 template needs
    from one site, at full fidelity. :func:`site_tables` computes it for the sites of a whole input at once.

    One pass per first op yields ``y = op_i(x)``; its row follows from shared moments (:func:`_row`). Rows of a
    scalar ``y``, or of a ``y`` with non-finite elements, are computed op by op (:func:`_direct_row`), as is the
    reference :func:`branch_tables`. ``x`` is first copied into a fresh [rows, columns] float64 tensor: every op is
    element-wise, over all elements or over dim 0, so the values do not change, and the fused pass then always
    sees a two-dimensional tensor that is no view of a higher-dimensional one — which would otherwise make
    ``torch.compile`` recompile for each new site layout (about 0.2 s each).
    """
    return site_tables([x])[..., 0]


def site_tables(sites: list[Tensor]) -> Tensor:
    """:func:`branch_table` of every site in ``sites``, stacked on the last axis: float64 [20, 20, len(sites)].

    The first ops that reduce a site to one number (``SCALAR_OPS``) leave a row of second ops applied to a scalar;
    those rows, 5 per site, are computed for all sites in one batched call (``torch.vmap`` of
    :func:`_direct_row`, the same values as one scalar at a time) instead of 100 tiny calls per site."""
    columns = [_columns(x) for x in sites]
    if not columns:
        return torch.zeros(len(TABLE_OPS), len(TABLE_OPS), 0, dtype=torch.float64)
    scalars = torch.stack([UNARY[first](c) for c in columns for first in _SCALAR_FIRST_OPS])
    scalar_rows = torch.vmap(_direct_row)(scalars).reshape(len(columns), len(_SCALAR_FIRST_OPS), len(TABLE_OPS))
    tables = []
    for c, rows in zip(columns, scalar_rows):
        by_op = dict(zip(_SCALAR_FIRST_OPS, rows))
        tables.append(torch.stack([by_op[first] if first in by_op else _row(UNARY[first](c), _EXACT_MEAN.get(first))
                                   for first in TABLE_OPS]))
    return torch.stack(tables, dim=-1)


def _columns(x: Tensor) -> Tensor:
    """``x`` as a fresh float64 [rows, columns] tensor (dim 0 kept, the rest flattened; 0-d and 1-d as they are)."""
    return (x.detach().reshape(x.shape[0], -1) if x.dim() > 1 else x.detach()).to(torch.float64, copy=True)


#: first ops that reduce a site to one number, and those whose output is a tensor, in table order
_SCALAR_FIRST_OPS = tuple(name for name in TABLE_OPS if name in SCALAR_OPS)
TENSOR_FIRST_OPS = tuple(name for name in TABLE_OPS if name not in SCALAR_OPS)


#: first ops whose output has a known mean: mean(normalize(x)) ≡ 0 (its NaN → 0 rule covers a constant x);
#: computed, it would be rounding noise of order 1e-17 that varies from site to site
_EXACT_MEAN = {"normalize": 0.0}


def _direct_row(y: Tensor) -> Tensor:
    """``mean(op_j(y))`` for every op j, each op applied to ``y`` itself."""
    return torch.stack([UNARY[second](y).mean(dtype=torch.float64) for second in TABLE_OPS])


def _row(y: Tensor, mean: float | None = None) -> Tensor:
    """``mean(op_j(y))`` for every op j, for a float64 ``y`` of n elements viewed as [rows, columns] (softmax runs
    over rows, dim 0), from the sums of one fused pass (:func:`_row_sums`). With m = mean y (``mean``: m when known
    exactly), v = Σ(y − m)² / (n − 1), lo / hi = min / max y, and per column c its max M_c, s = y − M_c ≤ 0 and
    E_c = Σ_rows e^s ≥ 1, for finite y:

    * no_op = to_mean_scalar = normalized_sum = m; revert = −m; to_std_scalar = √v; pow = mean(y²) =
      v (n−1)/n + m²; frobenius = √(n · mean(y²));
    * normalize ≡ 0 (its NaN → 0 rule covers a constant y); softmax ≡ 1 / rows (each column sums to 1);
    * exp = Σ_c e^(M_c) E_c / n and logsoftmax = Σ_c (Σ_rows s − rows · log E_c) / n, with no cancellation
      (every term of logsoftmax is ≤ 0; it is exactly 0 on one row);
    * min_max = Σ(y − lo) / n / (hi − lo + ε), a sum of non-negative terms;
    * log, abslog, abs = l1, relu, invert, sigmoid, sqrt: the mean of the op itself, summed in the same pass.

    A finite v implies a finite y (an inf or NaN element makes v non-finite); otherwise, and for a single element
    (v undefined), :func:`_direct_row`.
    """
    n = y.numel()
    if n < 2:
        return _direct_row(y)
    columns = y.reshape(y.shape[0], -1)
    mean = columns.sum() / n if mean is None else y.new_tensor(mean)
    lo, hi = torch.aminmax(columns)
    top = columns.amax(dim=0)
    sums, exp_sums = _row_sums(columns, mean, lo, top)
    total = dict(zip(_SUMMED, sums))
    var = total["square"] / (n - 1)
    if not torch.isfinite(var):
        return _direct_row(y)
    square = var * (n - 1) / n + mean.square()
    rows = columns.shape[0]
    values = {name: total[name] / n for name in _SUMMED[3:]}
    values |= {
        "element_wise_pow": square,
        "element_wise_exp": (top.exp() * exp_sums).sum() / n,
        "normalize": y.new_tensor(0.0),
        "frobenius_norm": (square * n).sqrt(),
        "element_wise_normalized_sum": mean,
        "l1_norm": values["element_wise_abs"],
        "softmax": y.new_tensor(1.0 / rows),
        "logsoftmax": (total["shifted"] - rows * exp_sums.log().sum()) / n,
        "element_wise_revert": -mean,
        "min_max_normalize": total["above_min"] / n / (hi - lo + EPS),
        "to_mean_scalar": mean,
        "to_std_scalar": var.sqrt(),
        "no_op": mean,
    }
    return torch.stack([values[name] for name in TABLE_OPS])


#: what :func:`_sums` returns, in order: Σ(y − m)², Σ(y − M_c), Σ(y − lo), then Σ op(y) for the element-wise ops
_SUMMED = ("square", "shifted", "above_min", "element_wise_log", "element_wise_abslog", "element_wise_abs",
           "element_wise_relu", "element_wise_invert", "sigmoid", "element_wise_sqrt")


def _sums(columns: Tensor, mean: Tensor, lo: Tensor, top: Tensor) -> tuple[Tensor, Tensor]:
    """The sums of a row (``_SUMMED``, float64 [10]) and the column sums E_c = Σ_rows e^(y − M_c) [columns] of
    ``columns`` = y [rows, columns], given m = ``mean``, lo = ``lo`` and M_c = ``top``. The ops' own functions,
    so every entry is the op's definition; no data-dependent branching, so it compiles to one pass."""
    shifted = columns - top
    element_wise = (UNARY[name](columns).sum() for name in _SUMMED[3:])
    sums = torch.stack([(columns - mean).square().sum(), shifted.sum(), (columns - lo).sum(), *element_wise])
    return sums, shifted.exp().sum(dim=0)


_compiled_sums: Callable | None = None


def _row_sums(columns: Tensor, mean: Tensor, lo: Tensor, top: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`_sums`, fused into one pass by ``torch.compile`` (inductor; dynamic shapes, so one compilation per
    process, which inductor also caches on disk) — 3–8× faster than eager on CPU. Where compiling fails (e.g. no
    C++ compiler), eager, with a warning; both agree to ~1e-13 relative, far below ``RESOLUTION``."""
    global _compiled_sums
    if _compiled_sums is None:
        compiled = torch.compile(_sums, dynamic=True)
        try:
            result = compiled(columns, mean, lo, top)
        except Exception as error:  # the backends raise many types (no compiler, unsupported platform, ...)
            warnings.warn(f"branch tables: torch.compile failed ({type(error).__name__}); computing them eagerly")
            _compiled_sums = _sums
            return _sums(columns, mean, lo, top)
        _compiled_sums = compiled
        return result
    return _compiled_sums(columns, mean, lo, top)


def row_sums(y: Tensor) -> tuple[Tensor, Tensor]:
    """The fused pass of one row alone, on ``y`` viewed as float64 [rows, columns]: its moments and
    :func:`_row_sums`, without the first op or the entries derived from the sums. This is the part of
    :func:`branch_table` paid per element and per first op with a tensor output; ``make bench`` times it as the
    tables' floor."""
    columns = _columns(y)
    return _row_sums(columns, columns.sum() / columns.numel(), columns.min(), columns.amax(dim=0))


def warm_up() -> float:
    """Compile the fused pass of :func:`branch_table` now, if it is not yet (once per process); returns the seconds
    taken, so that timers (extraction's per-architecture seconds, ``make bench``) can leave the compilation out."""
    start = time.perf_counter()
    branch_table(torch.arange(12.0).reshape(3, 4))
    return time.perf_counter() - start


def branch_tables(sites: Tensor) -> Tensor:
    """The reference for :func:`branch_table`, op by op, batched for a stack of many small same-shaped sites
    (``torch.vmap`` over dim 0): float64 [N, 20, 20], chains computed in float64. Used where sites are many and
    tiny (the synthetic benchmark)."""
    sites = sites.double()
    return torch.stack([torch.vmap(lambda x: _direct_row(UNARY[first](x)))(sites) for first in TABLE_OPS], dim=1)
