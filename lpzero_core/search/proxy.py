"""Proxy expressions of the LPZero template: genotype, canonical string, JSON, readable formula, evaluation.

Template (faithful mode)::

    proxy = Agg_s  B( mean(U₁ₖ…U₁₁(X₁[s])), mean(U₂ₖ…U₂₁(X₂[s])) )

* ``X₁, X₂`` are proxy inputs (``act, grad, head, softmax, weight, jacobian``), each a list of per-site tensors.
* Each branch applies its unary chain to every site, then reduces the site to its mean (float64).
* ``B`` combines the two branches site by site, pairing sites by list position and truncating to the shorter
  list. On per-site scalars ``matrix_multiplication`` is the product.
* A branch whose chain contains ``disconnect`` is dropped: the proxy is then ``Agg_s`` of the other branch over
  its own sites. Both dropped is invalid.
* ``Agg`` is ``mean`` (LPZero) or ``sum`` over the paired sites.

Canonical string: ``binary(input.op.op, input.op.op)@agg``, e.g.
``element_wise_sum(weight.element_wise_pow.l1_norm, grad.softmax.element_wise_pow)@mean``.
The parser also accepts the short names of ``ops.ALIASES`` (``sum(weight.pow.l1_norm, grad.softmax.pow)@mean``).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np
import torch

from lpzero_core.errors import LPZeroError
from lpzero_core.search.ops import (
    ALIASES,
    BINARY,
    BINARY_OPS,
    INPUT_SYMBOL,
    INPUTS,
    RESOLUTION,
    UNARY,
    UNARY_OPS,
    apply_chain,
    site_mean,
)

AGGREGATIONS = ("mean", "sum")
_STRING = re.compile(r"^\s*(?P<binary>[\w]+)\s*\((?P<b1>[^,()]*),(?P<b2>[^,()]*)\)\s*(@\s*(?P<agg>\w+))?\s*$")


def _atomic(text: str) -> bool:
    """Whether ``text`` needs no parentheses as an operand: a symbol or one call such as ``softmax(G)``."""
    if len(text) == 1 or (text[0] == text[-1] == "|" and text.count("|") == 2):
        return True
    depth = 0
    for k, char in enumerate(text):
        depth += (char == "(") - (char == ")")
        if depth == 0 and char == ")" and k < len(text) - 1:
            return False
    return text.endswith(")") and text[0].isalpha()


def _unary_name(token: str, text: str) -> str:
    name = ALIASES.get(token, token)
    if name not in UNARY:
        raise LPZeroError(f"proxy {text!r}: unknown unary op {token!r} (known: {', '.join(UNARY)})")
    return name


def _parse_branch(branch: str, text: str) -> tuple[str, tuple[str, ...]]:
    tokens = [t.strip() for t in branch.strip().split(".")]
    if tokens[0] not in INPUTS:
        raise LPZeroError(f"proxy {text!r}: unknown input {tokens[0]!r} (known: {', '.join(INPUTS)})")
    return tokens[0], tuple(_unary_name(t, text) for t in tokens[1:])


@dataclass(frozen=True)
class Proxy:
    """One genotype of the template: two inputs, their unary chains, a binary op and a site aggregation."""

    inputs: tuple[str, str]
    ops: tuple[tuple[str, ...], tuple[str, ...]]
    binary: str = "element_wise_sum"
    agg: str = "mean"

    def __post_init__(self):
        if len(self.inputs) != 2 or len(self.ops) != 2:
            raise LPZeroError(f"a proxy has exactly two branches, got inputs={self.inputs} ops={self.ops}")
        for name in self.inputs:
            if name not in INPUTS:
                raise LPZeroError(f"unknown input {name!r} (known: {', '.join(INPUTS)})")
        for name in (*self.ops[0], *self.ops[1]):
            if name not in UNARY:
                raise LPZeroError(f"unknown unary op {name!r}")
        if self.binary not in BINARY:
            raise LPZeroError(f"unknown binary op {self.binary!r} (known: {', '.join(BINARY)})")
        if self.agg not in AGGREGATIONS:
            raise LPZeroError(f"unknown aggregation {self.agg!r} (known: {', '.join(AGGREGATIONS)})")

    # -- representation ----------------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> "Proxy":
        """Parse the canonical string (short op names accepted); a bad token gives a one-line LPZeroError."""
        match = _STRING.match(text)
        if not match:
            raise LPZeroError(f"proxy {text!r}: expected the form 'binary(input.op.op, input.op.op)@agg'")
        binary = ALIASES.get(match["binary"], match["binary"])
        if binary not in BINARY:
            raise LPZeroError(f"proxy {text!r}: unknown binary op {match['binary']!r} (known: {', '.join(BINARY)})")
        agg = match["agg"] or "mean"
        if agg not in AGGREGATIONS:
            raise LPZeroError(f"proxy {text!r}: unknown aggregation {agg!r} (known: {', '.join(AGGREGATIONS)})")
        (in1, ops1), (in2, ops2) = _parse_branch(match["b1"], text), _parse_branch(match["b2"], text)
        return cls((in1, in2), (ops1, ops2), binary, agg)

    def __str__(self) -> str:
        branches = (".".join((name, *chain)) for name, chain in zip(self.inputs, self.ops))
        return f"{self.binary}({', '.join(branches)})@{self.agg}"

    def to_dict(self) -> dict:
        return {"proxy": str(self), "inputs": list(self.inputs), "ops": [list(c) for c in self.ops],
                "binary": self.binary, "agg": self.agg, "formula": self.formula()}

    @classmethod
    def from_dict(cls, data: dict) -> "Proxy":
        return cls(tuple(data["inputs"]), tuple(tuple(c) for c in data["ops"]), data["binary"], data["agg"])

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def dropped(self, k: int) -> bool:
        """Whether branch ``k`` contains ``disconnect`` (and so is dropped)."""
        return "disconnect" in self.ops[k]

    def live_inputs(self) -> set[str]:
        """The inputs the live (not dropped) branches read: all a model must provide to be scored."""
        return {self.inputs[k] for k in (0, 1) if not self.dropped(k)}

    def _branch_formula(self, k: int) -> str:
        text = INPUT_SYMBOL[self.inputs[k]]
        for name in self.ops[k]:
            op = UNARY_OPS[name]
            text = op.formula.format(f"({text})" if op.bracket and not _atomic(text) else text)
        return text if self.ops[k] and UNARY_OPS[self.ops[k][-1]].scalar else f"mean({text})"

    def formula(self) -> str:
        """Readable formula, e.g. ``mean_l[ ‖W²‖₁/n + mean(softmax(G)²) ]``."""
        live = [k for k in (0, 1) if not self.dropped(k)]
        body = f" {BINARY_OPS[self.binary].symbol} ".join(self._branch_formula(k) for k in live) or "∅"
        return f"{self.agg}_l[ {body} ]"

    # -- evaluation ----------------------------------------------------------------------------------------
    def combine(self, b1: np.ndarray | None, b2: np.ndarray | None) -> np.ndarray:
        """Binary op on per-site values (``None`` = dropped branch); matrix multiplication of scalars = product.
        A finite sum or difference below ``RESOLUTION`` · (|b1| + |b2|) is what the tables cannot resolve (e.g. one
        quantity computed two ways, minus itself): it is 0, never rounding noise."""
        if b1 is None or b2 is None:
            return b2 if b1 is None else b1
        if self.binary == "matrix_multiplication":
            return b1 * b2
        value = BINARY[self.binary](b1, b2)
        if BINARY_OPS[self.binary].cancels:
            value = np.where(np.isfinite(value) & (np.abs(value) <= RESOLUTION * (np.abs(b1) + np.abs(b2))), 0.0, value)
        return value

    def score_tensors(self, inputs: dict[str, list[torch.Tensor]]) -> float:
        """The proxy computed directly from one model's per-site tensors (the reference for the cache path)."""
        branches = []
        for k in (0, 1):
            if self.dropped(k):
                branches.append(None)
                continue
            sites = inputs[self.inputs[k]]
            branches.append(np.array([site_mean(apply_chain(t.double(), self.ops[k])) for t in sites]))
        if branches[0] is None and branches[1] is None:
            raise LPZeroError(f"proxy {self}: both branches are disconnected")
        if branches[0] is not None and branches[1] is not None:
            m = min(len(branches[0]), len(branches[1]))
            branches = [branches[0][:m], branches[1][:m]]
        with np.errstate(all="ignore"):
            values = self.combine(*branches)
            return float(values.mean() if self.agg == "mean" else values.sum())

    def evaluate(self, cache, ids: np.ndarray | None = None) -> np.ndarray:
        """Scores of architectures ``ids`` (default all) from a :class:`~lpzero_core.stats.cache.StatsCache`.

        Non-finite per-site values propagate to the score (NaN/inf), never averaged away.
        """
        ids = np.arange(len(cache)) if ids is None else np.asarray(ids)
        branches, counts = [], []
        for k in (0, 1):
            if self.dropped(k):
                branches.append(None)
                counts.append(None)
                continue
            values, n_sites = cache.branch(self.inputs[k], self.ops[k])
            branches.append(values[ids])
            counts.append(n_sites[ids])
        if branches[0] is None and branches[1] is None:
            raise LPZeroError(f"proxy {self}: both branches are disconnected")
        live = [c for c in counts if c is not None]
        n = np.minimum(*live) if len(live) == 2 else live[0]
        width = max(b.shape[1] for b in branches if b is not None)
        mask = np.arange(width)[None, :] < n[:, None]
        pad = [None if b is None else np.pad(b, ((0, 0), (0, width - b.shape[1]))) for b in branches]
        with np.errstate(all="ignore"):  # non-finite values are reported by the caller, not warned about
            total = np.where(mask, self.combine(*pad), 0.0).sum(axis=1)
            return total / n if self.agg == "mean" else total


#: the two proxies released by the LPZero authors (lpzero_search_space.md), in this project's notation
RELEASED = {
    "lpzero_gpt2": Proxy(("weight", "grad"), (("element_wise_pow", "l1_norm"), ("softmax", "element_wise_pow")),
                         "element_wise_sum", "mean"),
    "lpzero_flexibert": Proxy(("head", "act"), (("element_wise_revert", "element_wise_pow"),
                                                ("frobenius_norm", "logsoftmax")), "element_wise_sum", "mean"),
}
