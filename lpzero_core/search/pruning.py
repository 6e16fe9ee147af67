"""Rule-based Pruning Strategy (RPS): reject unpromising proxies before they cost a full evaluation.

Static rules (genotype only, no evaluation):

* ``both_disconnected`` — both branches dropped: the proxy is undefined (this one applies with RPS off too).
* ``constant_branch``  — a live branch is constant by construction, whatever the network: softmax / logsoftmax /
  normalize / min_max_normalize of a scalar (→ 1, 0, 0, 0), std of a scalar (→ NaN), anything after those, or a
  final ``normalize`` (its mean is 0). Such a proxy is constant or rank-equivalent to the one-branch proxy that
  ``disconnect`` already reaches. (This rejects LPZero's released FlexiBERT proxy, whose second branch is
  logsoftmax(‖A‖_F) = 0; it is evaluated as a named proxy instead.)
* ``duplicate``        — its canonical form (``canonical_key``) was evaluated before.

Dynamic rules (on the first ``k`` search architectures, before the rest are scored):

* ``non_finite`` — a value is NaN or ±inf;
* ``zero``       — a value is exactly 0 (the original's error marker);
* ``constant``   — the first k values are all equal;
* ``numerically_constant`` — their relative spread (max − min) / max |value| is below ``ops.RESOLUTION`` = 1e-9,
  what the tables resolve (a float64 mean of up to ~10⁷ elements is reproducible to ~1e-12 relative under another
  summation order; 1e-9 ≈ 10⁷ · 2⁻⁵³ bounds even a naive float64 sum). A smaller spread may be rounding, whose
  order of architectures a CPU with another SIMD width could reverse; the fitness must never rank it. (A sum or
  difference of branches that cancels below that resolution is read as 0 by ``Proxy.combine``: ``zero``.)

After a full evaluation, ``undefined_correlation`` marks a fitness that is NaN (with RPS on or off).
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from lpzero_core.search.ops import BINARY_OPS, RESOLUTION, UNARY_OPS
from lpzero_core.search.proxy import Proxy


def constant_by_construction(ops: tuple[str, ...]) -> bool:
    """Whether a branch's per-site value cannot depend on its input."""
    scalar = False
    for name in ops:
        if scalar and UNARY_OPS[name].constant_on_scalar:
            return True
        scalar = scalar or UNARY_OPS[name].scalar
    return bool(ops) and ops[-1] == "normalize"


def canonical_key(proxy: Proxy) -> tuple:
    """A key equal for genotypes that compute the same proxy: ``no_op`` removed, a dropped branch reduced to the
    other branch, operands of commutative binary ops sorted."""
    branches = [(proxy.inputs[k], tuple(op for op in proxy.ops[k] if op != "no_op"))
                for k in (0, 1) if not proxy.dropped(k)]
    if len(branches) == 1:
        return ("single", branches[0], proxy.agg)
    if BINARY_OPS[proxy.binary].commutative:
        branches.sort()
    return (proxy.binary, *branches, proxy.agg)


class RPS:
    """Applies the rules and counts rejections per rule. ``enabled=False`` keeps only what makes a proxy
    undefined (``both_disconnected``, ``undefined_correlation``): the paper's without-RPS ablation."""

    def __init__(self, enabled: bool = True, k: int = 4):
        self.enabled, self.k = enabled, k
        self.rejected: Counter = Counter()
        self.seen: set = set()

    def static(self, proxy: Proxy) -> str | None:
        if proxy.dropped(0) and proxy.dropped(1):
            return self._reject("both_disconnected")
        if not self.enabled:
            return None
        if any(constant_by_construction(proxy.ops[k]) for k in (0, 1) if not proxy.dropped(k)):
            return self._reject("constant_branch")
        key = repr(canonical_key(proxy))
        if key in self.seen:
            return self._reject("duplicate")
        self.seen.add(key)
        return None

    def dynamic(self, first_values: np.ndarray) -> str | None:
        if not self.enabled:
            return None
        if not np.isfinite(first_values).all():
            return self._reject("non_finite")
        if (first_values == 0).any():
            return self._reject("zero")
        if len(first_values) >= 2 and (first_values == first_values[0]).all():
            return self._reject("constant")
        if len(first_values) >= 2 and np.ptp(first_values) < RESOLUTION * np.abs(first_values).max():
            return self._reject("numerically_constant")
        return None

    def undefined(self) -> str:
        return self._reject("undefined_correlation")

    def _reject(self, rule: str) -> str:
        self.rejected[rule] += 1
        return rule
