"""Selection with a structural fallback: a searched proxy is returned only where it beats what is free.

Every mode's final choice, for every seed (``modes.run_mode``), goes through :func:`select`, with one rule:

* **References**, chosen on the search split only (never on held-out data): d* = the structural descriptor
  (``stats.baselines.structural``: parameter counts, FLOPs, depth, (depth, width)) with the highest search-split
  Spearman ρ, and b* = the hand-crafted network baseline (the cache's baseline columns) chosen the same way; in a
  multi-benchmark run, among the names every benchmark has, by the minimum ρ over benchmarks.
* **Tests**, per benchmark, each one-sided at confidence ``CONFIDENCE`` (90 %), seeded with the mode's seed:

  - candidate vs d* and vs b*: on the mode's inner validation fold V (positions of the search split that its
    fitness did not read; a surrogate is scored there by its fit-fold model; the template has no fold of its own
    and is tested on the same seeded fold, ``resample.inner_split(n, VALIDATION, default_rng(seed))``, which its
    fitness did read, so the test is lenient towards it): the paired bootstrap of Δ = ρ(x) − ρ(y) over V
    (``RESAMPLES`` resamples, ``resample.paired_difference``); x **beats** y when the (1 − ``CONFIDENCE``)
    quantile of Δ is above 0.
  - b* vs d*: the same paired bootstrap over the whole search split: neither was fitted on a fold (both are
    the best of their family on the whole split), so the fold would only discard two thirds of the labels — on a
    15-architecture fold a baseline that is worse on the split beat the descriptor by chance in one seed of five.
  - refinement, where d*'s ties matter and the candidate is not d*. They matter where a perfect within-tie order
    (the target's own) would raise d*'s Spearman ρ on the search split by at least ``MIN_GAIN`` (0.005, the
    tolerance within which this project counts two proxies' ρ as equal): on FlexiBERT (d* = n_layers_hidden, 4
    levels) it would add 0.052, on GPT-2 (params_attention, 32 levels over 50 architectures) 0.0025. Below that,
    what a refinement can add is smaller than the risk it carries to another benchmark, where d*'s ties are other
    groups and a within-tie order learned here need not hold (GPT-2's refinements lost 0.04 ρ on FlexiBERT).
    The test is then the permutation test of the
    candidate's order within d*'s tie groups on the whole search split (``resample.within_group_permutation``:
    size-weighted within-group Spearman ρ over groups of ≥ 3, its null from ``RESAMPLES`` permutations within
    groups); it holds when p < 1 − ``CONFIDENCE``. The validation fold holds too few members per tie group to
    judge a within-group order, so this test is partly in-sample for the candidate (optimistic); a refinement never
    moves an architecture across d*'s levels, so what it risks is the order within them, and breaking ties with
    an order unrelated to the target lowers Spearman ρ (the ranks' variance grows, their covariance does not): on
    FlexiBERT, where d* has 4 levels, a near-random within-tie order costs about 0.02.

* **Choice**: the candidate if it beats d* and b* on every benchmark; else b* if it beats d* on every benchmark;
  else d* *refined* by the candidate (:class:`Refined`: d*'s order, the candidate's within d*'s ties) if the
  refinement test holds on every benchmark; else d*.

The result says which branch was taken and the Δ quantiles behind it (``Selection.details``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lpzero_core.search.resample import inner_split, paired_difference, spearman, within_group_permutation
from lpzero_core.workbench.evaluation import best_on_search, lexicographic_ranks, structural_scores

CONFIDENCE = 0.90
RESAMPLES = 2000
MIN_GAIN = 0.005
RULE = (f"candidate if it beats the best structural descriptor and the best baseline of the search split on the "
        f"inner validation fold (one-sided paired bootstrap of Δρ, {RESAMPLES} resamples, {CONFIDENCE:.0%}); else "
        f"that baseline if it beats the descriptor on the search split (same test); else the descriptor, refined by "
        f"the candidate within its ties where a perfect within-tie order would add ≥ {MIN_GAIN} ρ on the search "
        f"split and the candidate's within-tie order there passes a one-sided permutation test at {CONFIDENCE:.0%}")
#: the validation fraction of the fold the template is tested on (the tree and surrogate defaults)
VALIDATION = 0.3


def network_scores(cache) -> dict[str, np.ndarray]:
    """Every free or hand-crafted network scalar of ``cache`` by name: the structural descriptors, then the
    network baselines (higher = better, over all architectures)."""
    return {**structural_scores(cache), **baseline_scores(cache)}


def baseline_scores(cache) -> dict[str, np.ndarray]:
    return {name: cache.baselines[name].to_numpy(float) for name in cache.baselines.columns}


@dataclass(frozen=True)
class Column:
    """A network scalar chosen by name (a structural descriptor or a hand-crafted baseline)."""

    name: str

    def __str__(self) -> str:
        return self.name

    def evaluate(self, cache) -> np.ndarray:
        return network_scores(cache)[self.name]


@dataclass(frozen=True)
class Refined:
    """``descriptor``'s order, ties broken by ``candidate``: dense ranks of the pair, lexicographically."""

    descriptor: str
    candidate: object

    def __str__(self) -> str:
        return f"lex({self.descriptor}, {self.candidate})"

    def evaluate(self, cache) -> np.ndarray:
        return lexicographic_ranks(network_scores(cache)[self.descriptor], self.candidate.evaluate(cache))


@dataclass(frozen=True)
class Fold:
    """A benchmark's inner validation fold: positions within its search split and, where the returned proxy is
    not the honest scorer there (a surrogate refit on the whole split), the candidate's out-of-fit scores."""

    positions: np.ndarray
    scores: np.ndarray | None = None


def template_fold(n_search: int, seed: int) -> Fold:
    """The fold the template is tested on (see the module docstring)."""
    return Fold(inner_split(n_search, VALIDATION, np.random.default_rng(seed))[1])


@dataclass
class Selection:
    proxy: object
    choice: str  # "candidate", "baseline", "descriptor" or "refined"
    candidate: str
    descriptor: str | None
    baseline: str | None
    details: dict = field(default_factory=dict)


def refinement_room(levels: np.ndarray, truth: np.ndarray) -> float:
    """ρ(lex(levels, truth), truth) − ρ(levels, truth): what a perfect order within the ties of ``levels`` would
    add to their Spearman ρ (0 without ties)."""
    levels, truth = np.asarray(levels, float), np.asarray(truth, float)
    return float(spearman(lexicographic_ranks(levels, truth), truth) - spearman(levels, truth))


def _lower(delta: np.ndarray) -> float:
    return float(np.quantile(delta, 1 - CONFIDENCE)) if len(delta) else float("nan")


def select(candidate, caches, folds: dict[str, Fold], seed: int) -> Selection:
    """The proxy a mode returns for ``candidate`` found on ``caches`` (one or more), with ``folds`` by cache name
    (see the module docstring for the rule)."""
    caches = list(caches)
    descriptor = best_on_search(caches, structural_scores)
    baseline = best_on_search(caches, baseline_scores)
    rng = np.random.default_rng(seed)
    lower = {"candidate_vs_descriptor": [], "candidate_vs_baseline": [], "baseline_vs_descriptor": []}
    within, refine_p, room = [], [], []
    for cache in caches:
        fold = folds[cache.name]
        search = np.asarray(cache.search_ids)
        ids = search[fold.positions]
        truth = np.asarray(cache.target)
        scores = candidate.evaluate(cache)
        mine = scores[ids] if fold.scores is None else np.asarray(fold.scores, float)
        named = network_scores(cache)
        column = lambda name, where: None if name is None else named[name][where]
        tests = {"candidate_vs_descriptor": (mine, column(descriptor, ids), ids),
                 "candidate_vs_baseline": (mine, column(baseline, ids), ids),
                 "baseline_vs_descriptor": (column(baseline, search), column(descriptor, search), search)}
        for pair, (x, y, where) in tests.items():
            beat = np.nan if x is None or y is None else _lower(paired_difference(x, y, truth[where], RESAMPLES, rng))
            lower[pair].append(beat)
        if descriptor:
            levels = named[descriptor][search]
            room.append(refinement_room(levels, truth[search]))
            rho, p = within_group_permutation(scores[search], truth[search], levels, RESAMPLES, rng)
            within.append(rho)
            refine_p.append(p)
    beats = {pair: all(v > 0 for v in values) for pair, values in lower.items()}  # NaN > 0 is False
    details = {"confidence": CONFIDENCE, "resamples": RESAMPLES,
               "lower_delta": {pair: [float(v) for v in values] for pair, values in lower.items()},
               "refinement_room": room, "within_tie_spearman": [float(v) for v in within], "within_tie_p": refine_p}
    if descriptor is None or (beats["candidate_vs_descriptor"] and (baseline is None or
                                                                    beats["candidate_vs_baseline"])):
        return Selection(candidate, "candidate", str(candidate), descriptor, baseline, details)
    if baseline is not None and beats["baseline_vs_descriptor"]:
        return Selection(Column(baseline), "baseline", str(candidate), descriptor, baseline, details)
    if (room and all(r >= MIN_GAIN for r in room) and str(candidate) != descriptor
            and all(p < 1 - CONFIDENCE for p in refine_p)):
        return Selection(Refined(descriptor, candidate), "refined", str(candidate), descriptor, baseline, details)
    return Selection(Column(descriptor), "descriptor", str(candidate), descriptor, baseline, details)


def describe(selection: Selection) -> str:
    """One line saying what the rule returned and why."""
    lows = selection.details.get("lower_delta", {})
    show = lambda pair: ", ".join(f"{v:+.3f}" for v in lows.get(pair, []))
    if selection.choice == "candidate":
        also = f" and {selection.baseline}" if selection.baseline else ""
        return (f"the candidate beats {selection.descriptor}{also} at {CONFIDENCE:.0%} confidence on the validation "
                f"fold (Δρ lower bound {show('candidate_vs_descriptor')}): returned as found")
    why = (f"the candidate does not beat {selection.descriptor} at {CONFIDENCE:.0%} confidence on the validation "
           f"fold (Δρ lower bound {show('candidate_vs_descriptor')})")
    listed = lambda key, form: ", ".join(format(v, form) for v in selection.details.get(key, []))
    room = selection.details.get("refinement_room", [])
    refinement = (f"within-tie ρ {listed('within_tie_spearman', '+.3f')}, permutation p "
                  f"{listed('within_tie_p', '.3f')}")
    if selection.choice == "descriptor" and room:
        refinement = (f"not refined: a perfect within-tie order would add {listed('refinement_room', '.4f')} ρ, "
                      f"less than {MIN_GAIN}" if min(room) < MIN_GAIN else
                      f"not refined: {refinement}, not below {1 - CONFIDENCE:.2f} on every benchmark")
    kept = {"baseline": f"the baseline {selection.baseline} beats it (lower bound {show('baseline_vs_descriptor')})",
            "refined": f"{selection.descriptor} refined by the candidate within its ties ({refinement})",
            "descriptor": f"{selection.descriptor}" + (f" ({refinement})" if room else "")}[selection.choice]
    return f"structural fallback: {why}; returned {kept}"
