"""Typed expression trees over the statistics cache: representation, parsing, simplification, evaluation.

Types (DEAP strongly-typed GP, ``deap.gp.PrimitiveSetTyped``)
-------------------------------------------------------------
* ``Sites`` — one scalar per site of a network, for every architecture: values [A, S] with site counts n [A]
  (entries past n_a are padding and never read).
* ``Net``   — one scalar per network, [A]. The root of a tree is a ``Net``.

Leaves
------
* per-site chain means (``Sites``): ``input.op1.op2`` = mean(op2(op1(X[s]))) for each site s of input X, read
  exactly from the cache's two-op table (``cache.branch``), e.g. ``act.pow.no_op`` = mean(A²),
  ``weight.no_op.frobenius_norm`` = ‖W‖_F;
* network scalars (``Net``): structural descriptors (``n_layers``, ``hidden``, ``params_*``, ``flops``) and the
  hand-crafted baseline scores (``nwot``, ``synflow``, …), by column name;
* constants (``Net``), written as floats (``0.1``, ``0.5``, ``2.0``).

Ops (the same name at both levels; the type of the arguments decides the level)
-------------------------------------------------------------------------------
* unary, element-wise, from ``ops.UNARY``: ``log abslog abs pow exp relu invert sigmoid sqrt revert`` (the ops
  that normalise over elements or reduce are constant on a scalar and are left out);
* binary, element-wise, from ``ops.BINARY``: ``sum difference product`` (``matrix_multiplication`` is the product
  on scalars). Two site vectors are paired by position and truncated to the shorter (the template's rule);
* reductions ``Sites → Net``: ``mean_sites sum_sites max_sites min_sites std_sites`` (std unbiased: NaN on one
  site), ``first_site last_site``, and ``depth_mean_sites`` = Σ_s (s+1)·x_s / Σ_s (s+1), s = 0 … n−1 the position
  of the site in the network (later sites weigh more). ``sum_sites`` and ``depth_mean_sites`` make depth
  expressible; chains such as ``‖W‖_F`` make width expressible;
* ``rank`` (``Net → Net``): the mid-rank empirical CDF of x against the *reference* architectures (the search
  split), r(x) = (#{ref < x} + #{ref ≤ x}) / (2·#ref) ∈ [0, 1]; NaN when x or a reference value is not finite.
  An architecture's score thus depends on its own statistics and those of the search split only.

Canonical string: prefix calls, e.g. ``sum(rank(nwot), rank(depth_mean_sites(pow(act.abs.no_op))))``; the parser
accepts the long op names (``element_wise_pow``) and chains of fewer than two ops (padded with ``no_op``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, NamedTuple, Union

import numpy as np
import torch
from deap import gp

from lpzero_core.errors import LPZeroError
from lpzero_core.search.ops import BINARY, INPUTS, TABLE_OPS, UNARY

Expr = Union[str, float, tuple]


class Sites:
    """Type tag: per-site scalars."""


class Net:
    """Type tag: one scalar per network."""


class SiteValues(NamedTuple):
    values: np.ndarray  # [A, S]
    n: np.ndarray  # [A] live sites


def _short(name: str) -> str:
    return name.removeprefix("element_wise_")


_ELEMENTWISE = ("element_wise_log", "element_wise_abslog", "element_wise_abs", "element_wise_pow", "element_wise_exp",
                "element_wise_relu", "element_wise_invert", "sigmoid", "element_wise_sqrt", "element_wise_revert")
UNARY_OPS: dict[str, Callable] = {_short(name): UNARY[name] for name in _ELEMENTWISE}
BINARY_OPS: dict[str, Callable] = {_short(name): BINARY[name] for name in
                                   ("element_wise_sum", "element_wise_difference", "element_wise_product")}
COMMUTATIVE = frozenset({"sum", "product"})
_LONG = {name: _short(name) for name in (*_ELEMENTWISE, *BINARY)} | {"matrix_multiplication": "product"}
_CHAIN_LONG = {_short(name): name for name in TABLE_OPS}


def _mask(s: SiteValues) -> np.ndarray:
    return np.arange(s.values.shape[1])[None, :] < s.n[:, None]


def _mean(s: SiteValues) -> np.ndarray:
    return np.where(_mask(s), s.values, 0.0).sum(axis=1) / s.n


def _std(s: SiteValues) -> np.ndarray:
    centred = np.where(_mask(s), s.values - _mean(s)[:, None], 0.0)
    return np.sqrt((centred * centred).sum(axis=1) / (s.n - 1))


def _depth_mean(s: SiteValues) -> np.ndarray:
    weights = np.where(_mask(s), np.arange(1, s.values.shape[1] + 1)[None, :], 0.0)
    return (weights * np.where(weights > 0, s.values, 0.0)).sum(axis=1) / weights.sum(axis=1)


REDUCTIONS: dict[str, Callable[[SiteValues], np.ndarray]] = {
    "mean_sites": _mean,
    "sum_sites": lambda s: np.where(_mask(s), s.values, 0.0).sum(axis=1),
    "max_sites": lambda s: np.where(_mask(s), s.values, -np.inf).max(axis=1),
    "min_sites": lambda s: np.where(_mask(s), s.values, np.inf).min(axis=1),
    "std_sites": _std,
    "first_site": lambda s: s.values[:, 0],
    "last_site": lambda s: s.values[np.arange(len(s.n)), np.maximum(s.n - 1, 0)],
    "depth_mean_sites": _depth_mean,
}


def rank(x: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Mid-rank empirical CDF of ``x`` against ``reference`` (see the module docstring)."""
    if not np.isfinite(reference).all():
        return np.full(x.shape, np.nan)
    ref = np.sort(reference)
    r = (np.searchsorted(ref, x, "left") + np.searchsorted(ref, x, "right")) / (2.0 * len(ref))
    return np.where(np.isfinite(x), r, np.nan)


# -- leaves ------------------------------------------------------------------------------------------------------
def chain_name(text: str) -> str | None:
    """The canonical ``input.op1.op2`` of a chain token (short or long op names, fewer ops padded with ``no_op``),
    or None when ``text`` is not a chain."""
    parts = text.split(".")
    if parts[0] not in INPUTS or not 1 <= len(parts) <= 3:
        return None
    ops = [_short(op) for op in parts[1:]] + ["no_op"] * (3 - len(parts))
    return ".".join([parts[0], *ops]) if all(op in _CHAIN_LONG for op in ops) else None


#: default per-site leaves: for every input, the mean, mean |x|, mean x², ‖x‖_F, std, mean log|x|, mean |x| after
#: normalisation, and mean softmax-entropy-like logsoftmax — chains whose values differ in kind, not just in scale
DEFAULT_CHAINS = tuple(f"{x}.{ops}" for x in INPUTS for ops in (
    "no_op.no_op", "abs.no_op", "pow.no_op", "no_op.frobenius_norm", "no_op.to_std_scalar", "abslog.no_op",
    "normalize.abs", "logsoftmax.no_op"))


@dataclass(frozen=True)
class LeafSet:
    """Which leaves a tree may use: chains (``Sites``), network columns and constants (``Net``), and whether
    ``rank`` is available. No chains ⇒ no ``Sites`` type at all (the ``combine`` mode)."""

    chains: tuple[str, ...] = DEFAULT_CHAINS
    network: tuple[str, ...] = ()
    constants: tuple[float, ...] = (0.1, 0.5, 1.0, 2.0)
    rank: bool = True

    def __post_init__(self):
        for chain in self.chains:
            if chain_name(chain) != chain:
                raise LPZeroError(f"chain leaf {chain!r}: expected 'input.op1.op2' in canonical short names, "
                                  f"e.g. 'act.pow.no_op'")


def network_columns(cache, descriptors: bool = True, baselines: bool = True) -> tuple[str, ...]:
    """Network-scalar leaf names a cache offers: its descriptor and/or baseline columns, in column order."""
    columns = (list(cache.descriptors.columns) if descriptors else []) + (
        list(cache.baselines.columns) if baselines else [])
    return tuple(dict.fromkeys(columns))


def common_network_columns(caches, descriptors: bool = True, baselines: bool = True) -> tuple[str, ...]:
    """Columns present in every cache (a multi-benchmark search may only use those), in the first cache's order."""
    sets = [set(network_columns(c, descriptors, baselines)) for c in caches]
    return tuple(c for c in network_columns(caches[0], descriptors, baselines) if all(c in s for s in sets))


class Leaves:
    """Leaf values of architectures ``ids`` of one cache; ``reference`` are the positions (within ``ids``) of the
    architectures that anchor ``rank`` — the search split."""

    def __init__(self, cache, ids: np.ndarray, reference: np.ndarray):
        self.cache, self.ids, self.reference = cache, np.asarray(ids), np.asarray(reference)
        self._memo: dict[str, np.ndarray | SiteValues] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def value(self, leaf: str) -> np.ndarray | SiteValues:
        if leaf not in self._memo:
            chain = chain_name(leaf)
            if chain is not None:
                x, op1, op2 = chain.split(".")
                values, n = self.cache.branch(x, (_CHAIN_LONG[op1], _CHAIN_LONG[op2]))
                self._memo[leaf] = SiteValues(values[self.ids], n[self.ids])
            else:
                for frame in (self.cache.descriptors, self.cache.baselines):
                    if leaf in frame:
                        self._memo[leaf] = frame[leaf].to_numpy(float)[self.ids]
                        break
                else:
                    raise LPZeroError(f"leaf {leaf!r} is neither a chain nor a descriptor/baseline column of the "
                                      f"{self.cache.name} cache")
        return self._memo[leaf]


def search_leaves(cache) -> Leaves:
    """Leaves of the search split only (the reference is the whole split): what every fitness reads."""
    return Leaves(cache, cache.search_ids, np.arange(len(cache.search_ids)))


def all_leaves(cache) -> Leaves:
    """Leaves of every architecture, ``rank`` anchored on the search split: how a found proxy scores a benchmark."""
    return Leaves(cache, np.arange(len(cache)), cache.search_ids)


# -- evaluation ----------------------------------------------------------------------------------------------------
def _torch(f: Callable, *arrays: np.ndarray) -> np.ndarray:
    return f(*(torch.from_numpy(np.asarray(a, dtype=np.float64)) for a in arrays)).numpy()


def _pair(a: SiteValues, b: SiteValues) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    width = max(a.values.shape[1], b.values.shape[1])
    pad = lambda v: np.pad(v, ((0, 0), (0, width - v.shape[1])))
    return pad(a.values), pad(b.values), np.minimum(a.n, b.n)


def evaluate(expr: Expr, leaves: Leaves) -> np.ndarray:
    """Scores [len(leaves)] of a ``Net`` expression (non-finite values propagate; warnings are silenced)."""
    with np.errstate(all="ignore"):
        value = _evaluate(expr, leaves)
    return np.broadcast_to(value, (len(leaves),)).astype(np.float64)


def _evaluate(expr: Expr, leaves: Leaves):
    if isinstance(expr, float):
        return np.float64(expr)
    if isinstance(expr, str):
        return leaves.value(expr)
    name, *args = expr
    values = [_evaluate(a, leaves) for a in args]
    if name in REDUCTIONS:
        return REDUCTIONS[name](values[0])
    if name == "rank":
        x = np.broadcast_to(values[0], (len(leaves),))
        return rank(x, x[leaves.reference])
    if name in UNARY_OPS:
        v = values[0]
        if isinstance(v, SiteValues):
            return SiteValues(_torch(UNARY_OPS[name], v.values), v.n)
        return _torch(UNARY_OPS[name], v)
    a, b = values
    if isinstance(a, SiteValues):
        va, vb, n = _pair(a, b)
        return SiteValues(_torch(BINARY_OPS[name], va, vb), n)
    return _torch(BINARY_OPS[name], a, b)


# -- string form ---------------------------------------------------------------------------------------------------
def to_string(expr: Expr) -> str:
    """The prefix-call string of an expression (floats in ``repr``)."""
    if isinstance(expr, float):
        return repr(expr)
    if isinstance(expr, str):
        return expr
    return f"{expr[0]}({', '.join(to_string(a) for a in expr[1:])})"


_TOKEN = re.compile(r"\s*(?:(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
                    r"|(?P<name>[A-Za-z_][\w.]*)|(?P<punct>[(),]))")


def _tokens(text: str) -> list[str]:
    tokens, position = [], 0
    while position < len(text.rstrip()):
        match = _TOKEN.match(text, position)
        if not match:
            raise LPZeroError(f"tree {text!r}: unexpected character {text[position:].strip()[0]!r} at {position}")
        tokens.append(match.group(match.lastgroup))
        position = match.end()
    return tokens


def parse(text: str, leafset: LeafSet | None = None) -> Expr:
    """Parse and type-check a tree string; the root must be a network scalar. With ``leafset``, leaves must be in
    it. Errors are one-line ``LPZeroError`` naming the offending token."""
    tokens = _tokens(text)
    network = None if leafset is None else set(leafset.network)

    def fail(message: str):
        raise LPZeroError(f"tree {text!r}: {message}")

    def node(k: int) -> tuple[Expr, type, int]:
        if k >= len(tokens):
            fail("unexpected end")
        token = tokens[k]
        if token in "(),":
            fail(f"unexpected {token!r}")
        if k + 1 < len(tokens) and tokens[k + 1] == "(":
            name = _LONG.get(token, token)
            if name not in UNARY_OPS and name not in BINARY_OPS and name not in REDUCTIONS and name != "rank":
                fail(f"unknown op {token!r}")
            args, types, k = [], [], k + 2
            while True:
                arg, type_, k = node(k)
                args.append(arg)
                types.append(type_)
                if k < len(tokens) and tokens[k] == ",":
                    k += 1
                elif k < len(tokens) and tokens[k] == ")":
                    break
                else:
                    fail(f"expected ',' or ')' after the arguments of {token!r}")
            arity = 2 if name in BINARY_OPS else 1
            if len(args) != arity:
                fail(f"op {token!r} takes {arity} argument(s), got {len(args)}")
            if name in REDUCTIONS:
                if types[0] is not Sites:
                    fail(f"op {token!r} reduces per-site values, got a network scalar {to_string(args[0])!r}")
                return (name, *args), Net, k + 1
            if name == "rank" and types[0] is not Net:
                fail(f"op {token!r} takes a network scalar, got per-site values {to_string(args[0])!r}")
            if len(set(types)) > 1:
                fail(f"op {token!r} mixes per-site values and network scalars; reduce the sites first")
            return (name, *args), types[0], k + 1
        try:
            return float(token), Net, k + 1
        except ValueError:
            pass
        chain = chain_name(token)
        if chain is not None:
            if leafset is not None and chain not in leafset.chains:
                fail(f"chain {token!r} is not among the allowed leaves")
            return chain, Sites, k + 1
        if network is not None and token not in network:
            fail(f"unknown leaf {token!r}")
        if "." in token:
            fail(f"unknown leaf {token!r} (a chain is 'input.op1.op2' with inputs {', '.join(INPUTS)})")
        return token, Net, k + 1

    expr, type_, k = node(0)
    if k != len(tokens):
        fail(f"unexpected {tokens[k]!r} after the expression")
    if type_ is not Net:
        fail("the root must be a network scalar; reduce the sites (e.g. mean_sites(...))")
    return expr


# -- simplification ------------------------------------------------------------------------------------------------
_NON_NEGATIVE = frozenset({"abs", "pow", "exp", "sigmoid", "relu", "sqrt"})  # f(x) ≥ 0, so abs(f x) = relu(f x) = f x


def size(expr: Expr) -> int:
    """Number of nodes."""
    return 1 if not isinstance(expr, tuple) else 1 + sum(size(a) for a in expr[1:])


def has_leaf(expr: Expr) -> bool:
    """Whether the expression reads any architecture statistic (else it is a constant)."""
    return isinstance(expr, str) or (isinstance(expr, tuple) and any(has_leaf(a) for a in expr[1:]))


def _per_site(expr: Expr) -> bool:
    """Whether an expression has the ``Sites`` type (it reads a chain outside any reduction)."""
    if isinstance(expr, str):
        return chain_name(expr) is not None
    if not isinstance(expr, tuple) or expr[0] in REDUCTIONS or expr[0] == "rank":
        return False
    return any(_per_site(a) for a in expr[1:])


def simplify(expr: Expr) -> Expr:
    """A canonical form with the same values wherever the original is finite, bottom-up:

    * constant folding: an op whose arguments are all constants becomes its value (computed by the op itself);
    * identities: revert(revert x) = x; abs(f x) = relu(f x) = f x for f ≥ 0 (abs, pow, exp, sigmoid, relu,
      sqrt); rank(rank x) = rank x; x + 0 = x; x − 0 = x; 0 − x = revert x;
      x · 1 = x; x · (−1) = revert x; x · 0 = 0 and x − x = 0 (finite network scalars x);
    * arguments of ``sum`` and ``product`` sorted by their canonical string.
    """
    if not isinstance(expr, tuple):
        return expr
    name, *args = expr
    args = [simplify(a) for a in args]
    if all(isinstance(a, float) for a in args):
        if name in UNARY_OPS:
            return float(_torch(UNARY_OPS[name], np.float64(args[0])))
        if name in BINARY_OPS:
            return float(_torch(BINARY_OPS[name], np.float64(args[0]), np.float64(args[1])))
    if len(args) == 1:
        (a,) = args
        inner = a[0] if isinstance(a, tuple) else None
        if name == inner == "revert":
            return a[1]
        if name in ("abs", "relu") and inner in _NON_NEGATIVE:
            return a
        if name == inner == "rank":
            return a
        return (name, a)
    a, b = sorted(args, key=to_string) if name in COMMUTATIVE else args
    if name == "sum":
        if 0.0 in (a, b):
            return b if a == 0.0 else a
    elif name == "difference":
        if b == 0.0:
            return a
        if a == 0.0:
            return ("revert", b)
        if a == b and not _per_site(a):
            return 0.0
    elif name == "product":
        if 1.0 in (a, b):
            return b if a == 1.0 else a
        if 0.0 in (a, b) and not _per_site(a) and not _per_site(b):
            return 0.0
        if -1.0 in (a, b):
            return ("revert", b if a == -1.0 else a)
    return (name, a, b)


def order_key(expr: Expr) -> str:
    """A key equal for expressions that rank architectures identically: the canonical string after removing
    order-preserving ops at the root (``rank``, adding a constant, multiplying by a positive constant). Trees with
    the same key have the same rank-correlation fitness and are evaluated once."""
    expr = simplify(expr)
    while isinstance(expr, tuple):
        name, *args = expr
        constants = [a for a in args if isinstance(a, float)]
        if name == "rank":
            expr = args[0]
        elif name == "sum" and constants:
            expr = next(a for a in args if not isinstance(a, float))
        elif name == "product" and constants and constants[0] > 0:
            expr = next(a for a in args if not isinstance(a, float))
        else:
            break
    return to_string(expr)


# -- DEAP representation -------------------------------------------------------------------------------------------
def primitive_set(leafset: LeafSet) -> gp.PrimitiveSetTyped:
    """The DEAP typed primitive set of ``leafset``. Per-site copies of the element-wise ops are named ``site.<op>``
    (DEAP needs unique names); :func:`to_expr` drops the prefix, the argument types decide the level."""
    pset = gp.PrimitiveSetTyped("proxy", [], Net)
    for name in leafset.network:
        pset.addTerminal(name, Net, name=name)
    for value in leafset.constants:
        pset.addTerminal(float(value), Net, name=repr(float(value)))
    levels = [("", Net)]
    if leafset.chains:
        levels.append(("site.", Sites))
        for chain in leafset.chains:
            pset.addTerminal(chain, Sites, name=chain)
        for name, f in REDUCTIONS.items():
            pset.addPrimitive(f, [Sites], Net, name=name)
    for prefix, type_ in levels:
        for name, f in UNARY_OPS.items():
            pset.addPrimitive(f, [type_], type_, name=prefix + name)
        for name, f in BINARY_OPS.items():
            pset.addPrimitive(f, [type_, type_], type_, name=prefix + name)
    if leafset.rank:
        pset.addPrimitive(rank, [Net], Net, name="rank")
    return pset


def to_expr(tree: gp.PrimitiveTree) -> Expr:
    """The nested-tuple expression of a DEAP tree (constants as floats, ``site.`` prefixes dropped)."""
    stack: list[list] = []
    for node in tree:
        if isinstance(node, gp.Terminal):
            item: Expr = float(node.name) if _is_float(node.name) else node.name
        else:
            stack.append([node.name.removeprefix("site."), node.arity])
            continue
        while stack:
            stack[-1].append(item)
            if len(stack[-1]) - 2 < stack[-1][1]:
                break
            name, _, *args = stack.pop()
            item = (name, *args)
        if not stack:
            return item
    raise LPZeroError(f"incomplete tree {tree}")


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
