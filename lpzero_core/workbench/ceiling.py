"""How far any score can rank a benchmark: its retraining noise, and what the architecture description predicts.

A searched proxy is judged against targets such as "held-out ρ ≥ 0.94". Whether such a number is reachable is a
property of the benchmark, measured here without any proxy:

1. **Retraining noise** (:func:`retraining_noise`). Architectures whose configuration occurs more than once were
   trained more than once; the pooled within-group variance of their targets estimates the noise variance σ²
   (``df`` = Σ(group size − 1) degrees of freedom, a χ² 95 % interval). With target y = q + ε, q the noise-free
   quality and ε ~ N(0, σ²) independent of q, both Gaussian, the best possible score (q itself) has
   corr(q, y) = c = √(1 − σ²/var y), hence Spearman ρ = (6/π)·arcsin(c/2) and Kendall τ = (2/π)·arcsin(c)
   (:func:`noise_ceiling`). Within a stratum var y is the stratum's own, so the ceiling there is lower; the
   strata row averages the per-stratum τ ceilings as ``metrics.stratified`` averages τ.
   A *measured* benchmark whose target is the mean of two disjoint halves of its evaluation data
   (``benchmark.extra["target_halves"]``: ``smollm2-mlp``, −log perplexity on two halves of equal token count) has
   measurement noise instead (:func:`measurement_noise`): with y_h = q + e_h and y = (y_0 + y_1)/2, the centred
   difference d = y_0 − y_1 − mean(d) has variance 2σ_h², so σ² = var(y − q) = Σ d² / (4 (n − 1)) (a χ² interval
   with n − 1 degrees of freedom). Centring removes the halves' common offset (one half's text is easier for every
   sub-network), which no ranking sees.
2. **A supervised learning curve over the architecture description** (:func:`learning_curve`). Features: the
   flattened configuration (:func:`config_table`) and the benchmark's structural descriptors; model: a random
   forest (500 trees, ≥ 2 samples per leaf) fit on the targets of n labelled architectures, scored on all the
   others, ``repeats`` random draws per n, plus one fit on the benchmark's own search split scored on its held-out
   set — the same labels and the same held-out architectures a proxy search gets. A zero-cost proxy found on the
   search split competes with that row; the curve shows how much more labelled data would buy. The forest is one
   learner, so the curve is a reference, not a bound.
3. **Held-out oracles** (:func:`oracle_rows`, where the statistics cache exists): the best single descriptor or
   baseline, the best single reduced chain (a per-site chain under a cross-site reduction), and the best weighted
   pair of those, each metric maximised on the held-out set itself — the most any score of that simple form could
   reach there, however it was found. Without a cache, only the best single descriptor
   (:func:`descriptor_oracle_rows`).

Run: ``lpzero ceiling --benchmark flexibert`` (the oracle rows need the benchmark's complete statistics cache)
writes ``results/<benchmark>-ceiling.csv`` (every fit), ``results/<benchmark>-ceiling.md`` (the summary) and
``figures/<benchmark>_ceiling.png|pdf``; the figure adds the search modes' held-out values where ``lpzero results``
left their runs.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.ensemble import RandomForestRegressor

from lpzero_core.errors import LPZeroError
from lpzero_core.files import atomic_write_text
from lpzero_core.search import metrics
from lpzero_core.search.ops import INPUTS, TABLE_OPS
from lpzero_core.search.tree import REDUCTIONS, SiteValues
from lpzero_core.stats.benchmarks.base import Benchmark

#: the learning curve's training sizes, as fractions of the benchmark
FRACTIONS = (0.05, 0.1, 0.2, 0.4, 0.6, 0.8)
METRICS = ("spearman", "kendall", "strata_kendall", "top10_kendall")


def _flatten(value, prefix: str = "") -> dict:
    """Nested dicts by key and lists by position into ``{"a.0.b": leaf}``; a list of numbers also gives its
    mean, min and max (``a.mean``), which stay comparable across architectures of different depth."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}{key}.").items()}
    if isinstance(value, (list, tuple)):
        flat = {k: v for i, item in enumerate(value) for k, v in _flatten(item, f"{prefix}{i}.").items()}
        if value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            flat |= {f"{prefix}mean": float(np.mean(value)), f"{prefix}min": min(value), f"{prefix}max": max(value)}
        return flat
    return {prefix.rstrip("."): value}


def config_table(configs: list[dict]) -> pd.DataFrame:
    """One numeric row per configuration: numbers as they are, anything else (strings, booleans, None) one-hot;
    positions a shorter configuration lacks (fewer layers) are −1; columns constant over all rows are dropped."""
    frame = pd.DataFrame([_flatten(c) for c in configs])
    categorical = [c for c in frame.columns
                   if not pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])]
    frame = pd.get_dummies(frame.astype({c: str for c in categorical}), columns=categorical, dtype=float)
    frame = frame.astype(float).fillna(-1.0)
    return frame.loc[:, frame.nunique() > 1]


def architecture_features(benchmark: Benchmark) -> pd.DataFrame:
    """:func:`config_table` beside the benchmark's structural descriptors (parameter counts, FLOPs)."""
    descriptors = pd.DataFrame([benchmark.descriptors(i) for i in range(len(benchmark.arch_keys))], dtype=float)
    return pd.concat([config_table(benchmark.configs), descriptors.add_prefix("descriptor.")], axis=1)


def retraining_noise(benchmark: Benchmark) -> dict:
    """Pooled within-group standard deviation of the target over architectures with identical configurations:
    ``{"groups", "df", "sd", "sd_low", "sd_high"}`` (χ² 95 % interval); ``sd`` is NaN without repeats."""
    groups: dict[str, list[float]] = {}
    for config, y in zip(benchmark.configs, benchmark.target):
        if np.isfinite(y):
            groups.setdefault(json.dumps(config, sort_keys=True, default=str), []).append(float(y))
    repeated = [np.asarray(v) for v in groups.values() if len(v) > 1]
    df = sum(len(v) - 1 for v in repeated)
    if df == 0:
        return {"groups": 0, "df": 0, "sd": np.nan, "sd_low": np.nan, "sd_high": np.nan}
    sum_sq = sum(float(((v - v.mean()) ** 2).sum()) for v in repeated)
    return {"groups": len(repeated), "df": df, "sd": np.sqrt(sum_sq / df),
            "sd_low": np.sqrt(sum_sq / stats.chi2.ppf(0.975, df)),
            "sd_high": np.sqrt(sum_sq / stats.chi2.ppf(0.025, df))}


def measurement_noise(benchmark: Benchmark) -> dict:
    """σ of a target measured on two halves (module docstring, 1.), in :func:`retraining_noise`'s form;
    ``groups`` = the number of architectures measured on both halves."""
    y0, y1 = (np.asarray(h, dtype=float) for h in benchmark.extra["target_halves"])
    d = (y0 - y1)[np.isfinite(y0) & np.isfinite(y1)]
    df = len(d) - 1
    if df < 1:
        return {"groups": len(d), "df": 0, "sd": np.nan, "sd_low": np.nan, "sd_high": np.nan}
    sum_sq = float(((d - d.mean()) ** 2).sum()) / 4
    return {"groups": len(d), "df": df, "sd": np.sqrt(sum_sq / df),
            "sd_low": np.sqrt(sum_sq / stats.chi2.ppf(0.975, df)),
            "sd_high": np.sqrt(sum_sq / stats.chi2.ppf(0.025, df))}


def target_noise(benchmark: Benchmark) -> dict:
    """:func:`measurement_noise` where the benchmark records its target's halves, else :func:`retraining_noise`."""
    return measurement_noise(benchmark) if "target_halves" in benchmark.extra else retraining_noise(benchmark)


def noise_ceiling(target: np.ndarray, sd: float) -> tuple[float, float]:
    """(Spearman ρ, Kendall τ) of the noise-free quality with ``target`` when the noise has standard deviation
    ``sd`` (the Gaussian model of the module docstring): 0 where the spread is no larger than the noise, NaN where
    ``sd`` is NaN."""
    var = float(np.var(target, ddof=1)) if len(target) > 1 else np.nan
    if not (np.isfinite(sd) and var > 0):
        return np.nan, np.nan
    c = np.sqrt(max(1.0 - sd ** 2 / var, 0.0))
    return 6 / np.pi * np.arcsin(c / 2), 2 / np.pi * np.arcsin(c)


def ceiling_rows(benchmark: Benchmark, ids: np.ndarray) -> list[dict]:
    """The noise ceiling on architectures ``ids`` at the estimated σ and at both ends of its interval."""
    noise = target_noise(benchmark)
    target, strata = benchmark.target[ids], benchmark.strata[ids]
    rows = []
    for which, label in (("sd", "σ"), ("sd_low", "σ at its 95 % CI's low end"),
                         ("sd_high", "σ at its 95 % CI's high end")):
        rho, tau = noise_ceiling(target, noise[which])
        per_stratum = [noise_ceiling(target[strata == s], noise[which])[1] for s in np.unique(strata)
                       if (strata == s).sum() >= 3]
        rows.append({"fit": f"noise ceiling ({label})",
                     "n_train": 0, "repeat": 0, "n_test": len(ids), "spearman": rho, "kendall": tau,
                     "strata_kendall": float(np.mean(per_stratum)) if per_stratum else np.nan,
                     "top10_kendall": np.nan, "noise_sd": noise[which], "noise_groups": noise["groups"],
                     "noise_df": noise["df"]})
    return rows


def _ranked(values: np.ndarray) -> np.ndarray | None:
    """Mid-ranks scaled to (0, 1] over all architectures, a missing value at the median; None when constant."""
    finite = np.isfinite(values)
    if finite.sum() < 2 or np.nanstd(np.where(finite, values, np.nan)) == 0:
        return None
    return stats.rankdata(np.where(finite, values, np.nanmedian(np.where(finite, values, np.nan)))) / len(values)


def network_scalars(cache) -> dict[str, np.ndarray]:
    """The cache's descriptor and baseline columns, ranked (:func:`_ranked`; constant columns left out)."""
    frames = (cache.descriptors, cache.baselines)
    ranked = {name: _ranked(frame[name].to_numpy(float)) for frame in frames for name in frame}
    return {name: r for name, r in ranked.items() if r is not None}


def reduced_chains(cache) -> dict[str, np.ndarray]:
    """Every two-op chain of every input (``input.op1.op2`` per site, from the tables) under every cross-site
    reduction of the tree mode (``tree.REDUCTIONS``), ranked; constant ones and exact duplicates left out."""
    found, seen = {}, set()
    for x in INPUTS:
        for op1 in TABLE_OPS:
            for op2 in TABLE_OPS:
                sites = SiteValues(*cache.branch(x, (op1, op2)))
                for reduction, reduce in REDUCTIONS.items():
                    with np.errstate(all="ignore"):
                        r = _ranked(reduce(sites))
                    if r is not None and r.tobytes() not in seen:
                        seen.add(r.tobytes())
                        chain = ".".join(op.removeprefix("element_wise_") for op in (x, op1, op2))
                        found[f"{reduction}({chain})"] = r
    return found


def _held_out(x: np.ndarray, target: np.ndarray, strata: np.ndarray) -> dict[str, float]:
    return {"spearman": metrics.spearman(x, target), "kendall": metrics.kendall(x, target),
            "strata_kendall": metrics.stratified(x, target, strata), "top10_kendall": metrics.top_k(x, target, 0.10)}


def _oracle(fit: str, values: dict[str, dict[str, float]], n_test: int) -> dict:
    best = {m: max(values, key=lambda name: np.nan_to_num(values[name][m], nan=-np.inf)) for m in METRICS}
    return {"fit": fit, "n_train": 0, "repeat": 0, "n_test": n_test, **{m: values[best[m]][m] for m in METRICS},
            "best": "; ".join(f"{m}: {best[m]}" for m in METRICS)}


def _signed(name: str, sign: int) -> str:
    return name if sign > 0 else f"−{name}"


def _singles(scores: dict[str, np.ndarray], ids: np.ndarray, target: np.ndarray,
             strata: np.ndarray) -> dict[str, dict[str, float]]:
    """Held-out metrics of every score on ``ids``, with either sign (τ(−x) = −τ(x), for each metric)."""
    values = {name: _held_out(x[ids], target, strata) for name, x in scores.items()}
    return {_signed(name, sign): {m: sign * v[m] for m in METRICS} for name, v in values.items() for sign in (1, -1)}


def descriptor_oracle_rows(benchmark: Benchmark) -> list[dict]:
    """Without a statistics cache: the held-out oracle over the benchmark's descriptors alone (the free scores),
    each metric maximised on the held-out set itself, as in :func:`oracle_rows`."""
    ids = benchmark.heldout_ids
    frame = pd.DataFrame([benchmark.descriptors(i) for i in range(len(benchmark))], dtype=float)
    ranked = {name: _ranked(frame[name].to_numpy()) for name in frame}
    values = _singles({n: r for n, r in ranked.items() if r is not None}, ids, benchmark.target[ids],
                      benchmark.strata[ids])
    return [_oracle("held-out oracle: one descriptor", values, len(ids))]


def oracle_rows(cache, weights=(0.25, 0.5, 0.75), pool: int = 20) -> list[dict]:
    """Upper references on the held-out architectures of a statistics cache, each metric maximised *separately
    over the held-out set itself*: not a method (it reads held-out targets) but the most a score of the form can
    reach there. Scores are ranked (:func:`_ranked`) and used with either sign. Forms: one network scalar
    (:func:`network_scalars`); one reduced chain (:func:`reduced_chains`, the template's and the tree mode's
    per-site leaves under a cross-site reduction); w·a + (1 − w)·b of two scores from the network scalars and the
    ``pool`` reduced chains of highest held-out |τ|, w ∈ ``weights``. Column ``best`` names the maximising score
    of each metric."""
    ids = cache.heldout_ids
    target, strata = cache.target[ids], cache.strata[ids]
    network, chains = network_scalars(cache), reduced_chains(cache)
    network_values, chain_values = (_singles(scores, ids, target, strata) for scores in (network, chains))
    best_chains = sorted(chains, key=lambda name: -abs(np.nan_to_num(chain_values[name]["kendall"])))[:pool]
    candidates = {**network, **{name: chains[name] for name in best_chains}}
    names = list(candidates)
    pairs = {f"{w:g}·{_signed(a, sa)} + {1 - w:g}·{_signed(b, sb)}":
             _held_out((w * sa * candidates[a] + (1 - w) * sb * candidates[b])[ids], target, strata)
             for k, a in enumerate(names) for b in names[k + 1:] for sa in (1, -1) for sb in (1, -1) for w in weights}
    return [_oracle("held-out oracle: one network scalar", network_values, len(ids)),
            _oracle(f"held-out oracle: one of {len(chains)} reduced chains", chain_values, len(ids)),
            _oracle(f"held-out oracle: a weighted pair of network scalars and the {pool} best reduced chains",
                    network_values | chain_values | pairs, len(ids))]


def _scores(features: np.ndarray, benchmark: Benchmark, train: np.ndarray, seed: int) -> np.ndarray:
    forest = RandomForestRegressor(n_estimators=500, min_samples_leaf=2, random_state=seed)
    return forest.fit(features[train], benchmark.target[train]).predict(features)


def _row(fit: str, scores: np.ndarray, benchmark: Benchmark, train: np.ndarray, test: np.ndarray,
         repeat: int) -> dict:
    return {"fit": fit, "n_train": len(train), "repeat": repeat, "n_test": len(test),
            **_held_out(scores[test], benchmark.target[test], benchmark.strata[test])}


def learning_curve(benchmark: Benchmark, sizes=None, repeats: int = 5, seed: int = 0, cache=None) -> pd.DataFrame:
    """The noise-ceiling rows, the held-out oracle rows (:func:`oracle_rows` where a statistics ``cache`` is
    given, else :func:`descriptor_oracle_rows`), the forest fit on the search split (scored on the held-out set)
    and ``repeats`` random draws per training size in ``sizes`` (default ``FRACTIONS`` of the benchmark; scored on
    the architectures not drawn). Draw r of size n uses ``numpy.random.default_rng([seed, n, r])``."""
    finite = np.flatnonzero(np.isfinite(benchmark.target))
    n_total = len(finite)
    sizes = sorted({max(2, int(round(f * n_total))) for f in FRACTIONS} if sizes is None else set(sizes))
    if not sizes or min(sizes) < 2 or max(sizes) > n_total - 3:
        raise LPZeroError(f"ceiling: training sizes must lie in 2..{n_total - 3} for {n_total} labelled "
                          f"architectures, got {', '.join(map(str, sizes))}")
    features = architecture_features(benchmark).to_numpy()
    search = np.intersect1d(benchmark.search_ids, finite)
    heldout = np.setdiff1d(finite, search)
    rows = ceiling_rows(benchmark, heldout) + (descriptor_oracle_rows(benchmark) if cache is None
                                               else oracle_rows(cache))
    rows.append(_row("forest on the search split", _scores(features, benchmark, search, seed), benchmark, search,
                     heldout, 0))
    for n in sizes:
        for r in range(repeats):
            train = np.sort(np.random.default_rng([seed, n, r]).choice(finite, n, replace=False))
            test = np.setdiff1d(finite, train)
            rows.append(_row("forest on random draws", _scores(features, benchmark, train, seed + r), benchmark,
                             train, test, r))
    return pd.DataFrame(rows)


def summarize(curve: pd.DataFrame) -> pd.DataFrame:
    """One row per fit and training size: the median over draws of each metric, with its [min, max]."""
    rows = []
    for (fit, n), part in curve.groupby(["fit", "n_train"], sort=False):
        row = {"fit": fit, "n_train": int(n), "draws": len(part), "n_test": int(part["n_test"].median())}
        if "best" in part and isinstance(part["best"].iloc[0], str):
            row["fit"] += f" ({part['best'].iloc[0]})"
        for m in METRICS:
            v = part[m].to_numpy(float)
            v = v[np.isfinite(v)]
            row[m] = ("" if len(v) == 0 else f"{v[0]:.3f}" if len(v) == 1
                      else f"{np.median(v):.3f} [{v.min():.3f}, {v.max():.3f}]")
        rows.append(row)
    return pd.DataFrame(rows)


def mode_seeds(runs: str | Path, benchmark: str) -> pd.DataFrame | None:
    """The per-seed rows of the mode runs ``lpzero results`` left under ``runs`` for ``benchmark``
    (``<runs>/<benchmark>/modes/*/seeds.csv``; a multi-benchmark run's rows as mode ``<mode> (multi)``), or None."""
    runs = Path(runs)
    frames = [pd.read_csv(p) for p in sorted((runs / benchmark / "modes").glob("*/seeds.csv"))]
    for path in sorted((runs / "multi" / "modes").glob("*/seeds.csv")):
        multi = pd.read_csv(path)
        frames.append(multi[multi["benchmark"] == benchmark].assign(mode=lambda f: f["mode"] + " (multi)"))
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else None


def write(curve: pd.DataFrame, benchmark: Benchmark, results: str | Path, figures: str | Path,
          seeds: pd.DataFrame | None = None) -> str:
    """``<results>/<name>-ceiling.csv|md`` and ``<figures>/<name>_ceiling.png|pdf`` (drawing the mode ``seeds``
    and, where ``<results>/<name>.csv`` exists, its best structural baselines); returns the markdown."""
    from lpzero_core.workbench import evaluation, plots

    noise = curve.iloc[0]
    if "target_halves" in benchmark.extra:
        noise_text = (f"measurement noise from the two halves of {int(noise['noise_groups'])} architectures "
                      f"({int(noise['noise_df'])} df): σ = {noise['noise_sd']:.4f}")
    elif noise["noise_groups"]:
        noise_text = (f"retraining noise from {int(noise['noise_groups'])} repeated configurations "
                      f"({int(noise['noise_df'])} df): σ = {noise['noise_sd']:.3f}")
    else:
        noise_text = "no configuration repeats, so the retraining noise is not estimable"
    caption = (f"{benchmark.name}: {benchmark.target_name}, {int(np.isfinite(benchmark.target).sum())} labelled "
               f"architectures. {noise_text[0].upper()}{noise_text[1:]}. Forest rows: held-out value, median "
               f"[min, max] over draws (`lpzero_core/workbench/ceiling.py` states the model and the formulas).")
    text = f"{caption}\n\n{evaluation.to_markdown(summarize(curve))}\n"
    results, figures = Path(results), Path(figures)
    atomic_write_text(results / f"{benchmark.name}-ceiling.csv", curve.to_csv(index=False))
    atomic_write_text(results / f"{benchmark.name}-ceiling.md", text)
    table = results / f"{benchmark.name}.csv"
    table = pd.read_csv(table) if table.exists() else None
    plots.save(plots.ceiling_curve(curve, seeds, table, title=caption.split(".")[0]),
               figures / f"{benchmark.name}_ceiling")
    return text
