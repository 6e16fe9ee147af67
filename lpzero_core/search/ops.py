"""Primitive operations of the LPZero search space: 21 unary and 4 binary ops, one registry each.

Conventions
-----------
* ε = 1e-9 (``EPS``). "Scalar" means a 0-d tensor.
* No op modifies its input: every op returns a new tensor.
* Ops contain no data-dependent Python branching, so ``torch.vmap`` can batch them over many sites at once.
* Non-finite values are *not* repaired here (except where a formula says so, e.g. ``normalize``: NaN → 0):
  they propagate, and the proxy evaluation detects and reports them.
* ``std`` is the unbiased sample standard deviation (correction 1), so it is NaN on a single element.
* ``disconnect`` is not a function of its input: it marks a dropped branch (the binary op then returns the other
  branch; both dropped is invalid). Its registry entry is ``None``.
"""
from __future__ import annotations

import warnings
from typing import Callable

import torch

# std of one element is NaN by definition here (see the conventions above); torch's warning about it is noise
warnings.filterwarnings("ignore", message=r"std\(\): degrees of freedom")

#: the proxy inputs, each a list of per-site tensors of one network on one batch (see stats/benchmarks/base.py)
INPUTS = ("act", "grad", "head", "softmax", "weight", "jacobian")

EPS = 1e-9
Tensor = torch.Tensor


def element_wise_log(a: Tensor) -> Tensor:
    """log(A + ε) where A > 0; entries ≤ 0 (and NaN) are first set to 1, so they map to log(1 + ε) ≈ 0."""
    return torch.log(torch.where(a > 0, a, torch.ones_like(a)) + EPS)


def element_wise_abslog(a: Tensor) -> Tensor:
    """log|A|, zero entries first set to 1 (→ 0)."""
    return torch.log(torch.where(a == 0, torch.ones_like(a), a).abs())


def element_wise_abs(a: Tensor) -> Tensor:
    """|A|."""
    return a.abs()


def element_wise_pow(a: Tensor) -> Tensor:
    """A²."""
    return a * a


def element_wise_exp(a: Tensor) -> Tensor:
    """exp(A)."""
    return torch.exp(a)


def normalize(a: Tensor) -> Tensor:
    """(A − mean A) / std A, unbiased std; NaN results (e.g. constant A, or one element) → 0 (±inf are kept)."""
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
    return a.std()


def no_op(a: Tensor) -> Tensor:
    """A (a copy, so that callers may never alias the input)."""
    return a.clone()


#: name -> function; ``disconnect`` maps to None (drops the branch). Order is fixed: it indexes the branch table.
UNARY: dict[str, Callable[[Tensor], Tensor] | None] = {
    f.__name__: f
    for f in (
        element_wise_log, element_wise_abslog, element_wise_abs, element_wise_pow, element_wise_exp, normalize,
        element_wise_relu, element_wise_invert, frobenius_norm, element_wise_normalized_sum, l1_norm, softmax,
        sigmoid, logsoftmax, element_wise_sqrt, element_wise_revert, min_max_normalize, to_mean_scalar,
        to_std_scalar, no_op,
    )
}
UNARY["disconnect"] = None

#: the unary ops that compute something (all but ``disconnect``), in table order
TABLE_OPS: tuple[str, ...] = tuple(name for name, f in UNARY.items() if f is not None)
TABLE_INDEX: dict[str, int] = {name: k for k, name in enumerate(TABLE_OPS)}

#: ops whose output is a scalar whatever the input
SCALAR_OPS = frozenset({"frobenius_norm", "element_wise_normalized_sum", "l1_norm", "to_mean_scalar", "to_std_scalar"})


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


BINARY: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    f.__name__: f for f in (element_wise_sum, element_wise_difference, element_wise_product, matrix_multiplication)
}

#: sampling priors of the original code: 0.1 per unary op, 0.2 for disconnect; binary 0.6/0.3/0.05/0.05
UNARY_PRIOR: dict[str, float] = {name: (0.2 if name == "disconnect" else 0.1) for name in UNARY}
BINARY_PRIOR: dict[str, float] = dict(zip(BINARY, (0.6, 0.3, 0.05, 0.05)))

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
    """The per-site reduction of the template: the mean of all elements, as a Python float.

    Accumulated in the tensor's dtype (fast) and redone in float64 only when that overflows, so a non-finite
    result always means non-finite elements, never an overflow of the summation.
    """
    mean = y.mean()
    if not torch.isfinite(mean):
        mean = y.mean(dtype=torch.float64)
    return float(mean)


def branch_table(x: Tensor) -> Tensor:
    """Per-site means of every two-op chain: ``T[i, j] = site_mean(op_j(op_i(x)))`` over ``TABLE_OPS``,
    float64 [20, 20]. This is all the n_unary = 2 template needs from one site, at full fidelity."""
    table = torch.empty(len(TABLE_OPS), len(TABLE_OPS), dtype=torch.float64)
    for i, first in enumerate(TABLE_OPS):
        y = UNARY[first](x)
        for j, second in enumerate(TABLE_OPS):
            table[i, j] = site_mean(UNARY[second](y))
    return table


def branch_tables(sites: Tensor) -> Tensor:
    """``branch_table`` for a stack of many small same-shaped sites at once (``torch.vmap`` over dim 0), means
    in float64: float64 [N, 20, 20]. Used where sites are many and tiny (the synthetic benchmark)."""
    table = torch.empty(sites.shape[0], len(TABLE_OPS), len(TABLE_OPS), dtype=torch.float64)
    for i, first in enumerate(TABLE_OPS):
        y = torch.vmap(UNARY[first])(sites)
        for j, second in enumerate(TABLE_OPS):
            table[:, i, j] = torch.vmap(lambda t: UNARY[second](t).mean(dtype=torch.float64))(y)
    return table
