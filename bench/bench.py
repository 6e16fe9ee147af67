"""Speed figures of the workbench (`make bench`): medians on this machine, printed as one table per section.

Sections (``--only`` picks some; every figure is measured now, none is read from elsewhere):

* ``search``  — on the 500-architecture synthetic cache: time to score one new candidate (cold = no memoised
  branch, warm = branches memoised), wall time of the default GP (population 80 + 1000 iterations) over seeds,
  and the RPS ablation (architectures scored and final search fitness with vs without RPS, same seeds); the
  ablation is repeated on every complete real-benchmark cache found under the cache root; then the wall time of
  one seed of each search mode (template, tree, combine, surrogate) with its default settings.
* ``extract`` — first the one-time compilation of the branch tables' fused pass (per process; cached on disk by
  inductor, so a second process pays less); then per benchmark, on architectures at the 10/50/90 % quantiles of the
  parameter count, side by side in one run: a bare forward+backward of the model, the extraction of its statistics
  (model build, forward+backward, tables + samples), the baselines (their three passes, each counted once), their
  total, and the overhead ratios statistics / bare and total / bare; and the tables' floor, the fused pass of
  second ops alone (``ops.row_sums``) over every site times the 15 first ops with a tensor output, i.e. what the
  exact float64 tables cost even with free first ops, and its ratio to the bare pass — all on
  one torch thread as extraction runs; the projected single-worker total (Σ over all architectures of the
  per-architecture times of a complete cache's metadata, or the quantile sample's mean × N when incomplete);
  and the Dask speed-up of 2 workers over 1 on the same architectures (cluster start-up included).
* ``fidelity`` — per benchmark with a default cache: for the first 30 cached architectures, proxies whose
  branches have three unary ops (read from the bounded samples, not the full-fidelity tables) scored from the
  cache vs from the model's full tensors (a fresh forward+backward): Spearman ρ across the architectures, the
  median relative error, and the spread of the exact values across architectures (coefficient of variation:
  a proxy that hardly varies cannot keep its ranking under any sampling); LPZero's released proxies (two
  ops: tables) as the exact reference.

* ``smollm2`` — the measured ``smollm2-mlp`` benchmark on its real parent (SmolLM2-135M): loading and
  de-quantising the GGUF, ranking the channels by the default rule (calibration batch), and the ground truth of
  one sub-network per uniform ratio on one torch thread, measured on ``--smollm2-windows`` of the 64 held-out
  windows and scaled to all 64 (time is linear in windows: fixed-size batches of 4); then the projected build of
  the 205 rows on 1 and 2 workers (the mean of those per-row times × 205 / workers, parent set-up per worker
  added). Then the statistics: ``extract_one`` (what a Dask worker runs) of the uniform 100 % and 50 %
  sub-networks, split into the proxy statistics (build, forward + backward, tables at the benchmark's
  ``linear_rows``; the cache's ``seconds``) and the baselines' three passes, and the projected extraction of all
  205 on 1 and 2 workers.

* ``linear-rows`` (not in the default run: 40 minutes on ``smollm2-mlp`` here, beside a 2-worker extraction) —
  for each benchmark that reads a fraction of its linear rows (``Benchmark.linear_rows``; ``smollm2-mlp``), on
  ``--linear-rows-archs`` = 20 architectures evenly spread over its ids: every weight and grad table entry
  (op1, op2), averaged over the sites as a proxy's ``@mean`` reads it, from all rows and from the kept rows; per
  input, the Spearman ρ across the architectures between the two (median, 10th percentile and minimum over the
  entries that vary), i.e. whether the cheaper statistics keep the ranking.

Usage: ``python bench/bench.py [--only search extract fidelity smollm2 linear-rows] [--seeds 3]
[--json runs/bench.json]``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lpzero_core.errors import LPZeroError
from lpzero_core.search import metrics
from lpzero_core.search.evolve import joint_seconds
from lpzero_core.search.gp import GPConfig, evaluate_candidate, random_proxy, search
from lpzero_core.search.ops import INPUTS, TENSOR_FIRST_OPS, row_sums, site_tables, warm_up
from lpzero_core.search.proxy import RELEASED
from lpzero_core.search.pruning import RPS
from lpzero_core.stats import benchmarks, channels
from lpzero_core.stats.baselines import PASSES
from lpzero_core.stats.benchmarks import synthetic
from lpzero_core.stats.cache import StatsCache, cache_dir
from lpzero_core.stats.extract import (
    extract,
    extract_one,
    heap_reuse,
    keep_linear_rows,
    proxy_inputs,
    settings,
    torch_threads,
)
from lpzero_core.workbench import evaluation, modes

REAL = ("flexibert", "gpt2-wt103")


def print_table(title: str, rows: list[dict]) -> None:
    """One titled table on stdout, through the project's table printer."""
    print(f"\n## {title}")
    print(evaluation.to_markdown(pd.DataFrame(rows), digits=4) if rows else "(nothing measured)")


def candidate_scoring(cache: StatsCache, n: int = 200, seed: int = 0) -> dict:
    """Median milliseconds to score one random valid candidate on all search architectures, RPS included."""
    rng, config = np.random.default_rng(seed), GPConfig()
    candidates = [random_proxy(rng, config) for _ in range(n)]
    cold, warm = [], []
    for proxy in candidates:
        cache._memo.clear()
        for times in (cold, warm):
            rps = RPS()  # fresh rule state: the candidate is new to it
            t0 = time.perf_counter()
            evaluate_candidate(proxy, cache, rps)
            times.append(1e3 * (time.perf_counter() - t0))
    all_archs = []  # every architecture, not only the search split
    for proxy in candidates[:20]:
        cache._memo.clear()
        t0 = time.perf_counter()
        proxy.evaluate(cache)
        all_archs.append(1e3 * (time.perf_counter() - t0))
    return {"architectures": len(cache), "search split": len(cache.search_ids),
            "cold ms (median)": statistics.median(cold), "warm ms (median)": statistics.median(warm),
            "cold ms on all archs (median)": statistics.median(all_archs), "target ms": 20.0}


def gp_runs(cache: StatsCache, seeds: int, label: str) -> tuple[list[dict], list[dict]]:
    """Default GP with and without RPS per seed: wall time, architectures scored, final fitness."""
    runs = []
    for seed in range(seeds):
        for rps in (True, False):
            cache._memo.clear()
            result = search(cache, GPConfig(seed=seed, rps=rps), progress=False)
            runs.append({"cache": label, "seed": seed, "rps": rps, "wall s": result.wall_seconds,
                         "archs scored": result.evaluations, "rejected": sum(result.rejected.values()),
                         "fitness": result.fitness})
    summary = []
    for rps in (True, False):
        mine = [r for r in runs if r["rps"] == rps]
        summary.append({"cache": label, "rps": "on" if rps else "off", "seeds": len(mine),
                        "GP wall s (median)": statistics.median(r["wall s"] for r in mine),
                        "archs scored (median)": statistics.median(r["archs scored"] for r in mine),
                        "fitness (median)": statistics.median(r["fitness"] for r in mine),
                        "target wall s": 60.0})
    return runs, summary


def mode_runs(cache: StatsCache, label: str) -> list[dict]:
    """Wall time of one seed of each search mode's default search (``workbench.modes``), and its search ρ."""
    rows = []
    for mode in modes.MODES:
        cache._memo.clear()
        summary = modes.run_mode(mode, cache, seeds=(0,), n_resamples=10)
        part = summary["per_benchmark"][cache.name]["over_seeds"]
        rows.append({"cache": label, "mode": mode, "wall s (one seed)": part["wall_seconds"]["median"],
                     "search ρ": part["search_spearman"]["median"], "target wall s": 120.0 if mode == "tree" else ""})
    return rows


def complete_caches() -> dict[str, StatsCache]:
    """The default-settings caches of the real benchmarks that are complete."""
    found = {}
    for name in REAL:
        directory = cache_dir(settings(benchmarks.get(name)))
        try:
            found[name] = StatsCache.load(directory)
        except LPZeroError:
            continue
    return found


def quantile_archs(benchmark, quantiles=(0.1, 0.5, 0.9)) -> list[int]:
    """Architectures at the given quantiles of the total parameter count."""
    params = np.array([benchmark.descriptors(i)["params_total"] for i in range(len(benchmark))])
    order = np.argsort(params, kind="stable")
    return [int(order[int(q * (len(order) - 1))]) for q in quantiles]


def forward_backward_seconds(benchmark, i: int, config: dict) -> float:
    """A bare forward + backward of architecture ``i`` on the extraction batch (model built outside the timer)."""
    batch = benchmark.batch(config["batch_size"], config["seq_len"], config["seed"])
    model = benchmark.build(i, config["seed"])
    with torch_threads(1), heap_reuse():  # as extraction runs
        benchmark.loss(model, batch).backward()  # warm-up: first-call allocations
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        benchmark.loss(model, batch).backward()
        return time.perf_counter() - t0


def table_floor_seconds(benchmark, i: int, config: dict) -> float:
    """What the branch tables of architecture ``i`` cost even if every first op were free: the fused pass alone
    (``ops.row_sums``: moments and the second ops' sums, float64) once over every site, times the number of first
    ops with a tensor output (``ops.TENSOR_FIRST_OPS``)."""
    batch = benchmark.batch(config["batch_size"], config["seq_len"], config["seed"])
    with torch_threads(1), heap_reuse():
        inputs = proxy_inputs(benchmark, benchmark.build(i, config["seed"]), batch)
        sites = [t for x in INPUTS for t in inputs[x]]
        for t in sites:  # warm-up: a new site layout may still compile once
            row_sums(t)
        t0 = time.perf_counter()
        for t in sites:
            row_sums(t)
        return (time.perf_counter() - t0) * len(TENSOR_FIRST_OPS)


def baselines_seconds(alone: dict[str, float]) -> float:
    """Seconds to compute all network baselines of one architecture, from each one's seconds alone: each pass once
    (``joint_seconds``)."""
    return joint_seconds(alone, alone, PASSES)


def extraction_rows(name: str, n_dask: int) -> tuple[list[dict], dict, dict]:
    """Per-architecture costs, the projected total and the Dask speed-up for one benchmark."""
    benchmark = benchmarks.get(name)
    config = settings(benchmark)
    rows = []
    for i in quantile_archs(benchmark):
        bare = forward_backward_seconds(benchmark, i, config)  # also warms the text batch up
        _, _, meta = extract_one(config, i)
        baselines = baselines_seconds(meta["baseline_seconds"])
        floor = table_floor_seconds(benchmark, i, config)
        rows.append({"benchmark": name, "arch": i, "params M": benchmark.descriptors(i)["params_total"] / 1e6,
                     "fwd+bwd s": bare, "statistics s": meta["seconds"], "baselines s": baselines,
                     "total s": meta["seconds"] + baselines, "statistics overhead ×": meta["seconds"] / bare,
                     "total overhead ×": (meta["seconds"] + baselines) / bare, "table floor s": floor,
                     "floor overhead ×": floor / bare})
    total = {"benchmark": name, "architectures": len(benchmark)}
    try:
        cache = StatsCache.load(cache_dir(config))
        per_arch = cache.extract_seconds + np.array([baselines_seconds(row.dropna().to_dict())
                                                     for _, row in cache.baseline_seconds.iterrows()])
        total["source"] = "complete cache metadata"
    except LPZeroError:
        per_arch = np.array([r["statistics s"] + r["baselines s"] for r in rows] * len(benchmark)) / len(rows)
        total["source"] = "quantile sample × N (cache incomplete)"
    total["1 worker min"] = float(per_arch.sum()) / 60
    total["2 workers min (÷2)"] = total["1 worker min"] / 2
    total["target min"] = {"flexibert": 15.0, "gpt2-wt103": 20.0}[name]

    if n_dask == 0:
        return rows, total, {}
    ids = quantile_archs(benchmark, np.linspace(0.3, 0.7, n_dask))  # typical models: start-up amortised as in a run
    walls = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            extract(benchmark, ids, directory=tmp, workers=workers, with_baselines=False, progress=False)
            walls[workers] = time.perf_counter() - t0
    dask = {"benchmark": name, "architectures": len(ids), "1 worker s": walls[1], "2 workers s": walls[2],
            "speed-up ×": walls[1] / walls[2], "target ×": 1.7}
    return rows, total, dask


def sample_fidelity(name: str, n_archs: int = 30, n_proxies: int = 5, seed: int = 0) -> list[dict]:
    """Spearman ρ between cache-based and direct scores of 3-op proxies over ``n_archs`` cached architectures."""
    benchmark = benchmarks.get(name)
    config = settings(benchmark)
    cache = StatsCache.load(cache_dir(config), allow_partial=True)
    positions = np.arange(min(n_archs, len(cache)))
    rng, proxies = np.random.default_rng(seed), dict(RELEASED)
    while len(proxies) < len(RELEASED) + n_proxies:
        proxy = random_proxy(rng, GPConfig(n_unary=3))
        values = proxy.evaluate(cache, positions)
        if np.isfinite(values).all() and np.ptp(values) > 0:
            proxies[str(proxy)] = proxy
    batch = benchmark.batch(config["batch_size"], config["seq_len"], config["seed"])
    direct = {key: [] for key in proxies}
    for position in positions:
        with torch_threads(1):
            inputs = proxy_inputs(benchmark, benchmark.build(cache.manifest["indices"][position], seed), batch)
        for key, proxy in proxies.items():
            direct[key].append(proxy.score_tensors(inputs))
    rows = []
    for key, proxy in proxies.items():
        cached, exact = proxy.evaluate(cache, positions), np.array(direct[key])
        rows.append({"benchmark": name, "proxy": key, "archs": len(positions),
                     "source": "tables" if max(map(len, proxy.ops)) <= 2 else "samples",
                     "spearman cache vs direct": metrics.spearman(cached, exact),
                     "median rel. error": float(np.median(np.abs(cached - exact) / np.abs(exact).clip(1e-12))),
                     "spread across archs (CV)": float(exact.std() / np.abs(exact.mean()).clip(1e-12))})
    return rows


def smollm2_rows(n_windows: int) -> tuple[list[dict], list[dict]]:
    """(per-sub-network rows, projected build rows) of the ``smollm2`` section (module docstring)."""
    from lpzero_core.stats import parents
    from lpzero_core.stats.benchmarks import smollm2_mlp

    with torch_threads(1):
        start = time.perf_counter()
        model, tokenizer = parents.load_parent(smollm2_mlp.PARENT)
        loaded = time.perf_counter() - start
        parent = smollm2_mlp.parent_from(model, tokenizer)
        setup = time.perf_counter() - start
        windows = list(range(n_windows))
        rows = []
        for gene, ratio in enumerate(channels.LONAS_RATIOS):
            seconds = smollm2_mlp.measure(parent, gene, (gene,) * smollm2_mlp.N_LAYERS, windows)["seconds"]
            rows.append({"sub-network": f"uniform {ratio:.1%}", "windows": n_windows, "seconds": seconds,
                         "seconds_per_row (64 windows)": seconds * smollm2_mlp.WINDOWS / n_windows})
    per_row = float(np.mean([r["seconds_per_row (64 windows)"] for r in rows]))
    n_rows = len(smollm2_mlp.design())
    build = [{"workers": w, "parent_load_s": loaded, "parent_setup_s": setup, "rows": n_rows,
              "projected_build_hours": (setup + per_row * n_rows / w) / 3600} for w in (1, 2)]
    return rows, build


def smollm2_statistics_rows(ids=(0, 4)) -> tuple[list[dict], list[dict]]:
    """(per-sub-network rows, projected extraction rows) of the ``smollm2`` section's statistics."""
    from lpzero_core.stats.benchmarks import smollm2_mlp

    bench = benchmarks.get(smollm2_mlp.NAME)
    config = settings(bench)
    with torch_threads(1):
        start = time.perf_counter()
        smollm2_mlp.smollm2()
        setup = time.perf_counter() - start
        warm_up()
    rows = []
    for i in ids:
        start = time.perf_counter()
        _, _, meta = extract_one(config, i)
        total = time.perf_counter() - start
        rows.append({"sub-network": f"uniform {channels.LONAS_RATIOS[i]:.1%}", "statistics_s": meta["seconds"],
                     "baselines_s": total - meta["seconds"], "total_s": total})
    per = float(np.mean([r["total_s"] for r in rows]))
    projected = [{"workers": w, "parent_setup_s": setup, "sub-networks": len(bench),
                  "projected_extraction_hours": (setup + per * len(bench) / w) / 3600} for w in (1, 2)]
    return rows, projected


def linear_rows_fidelity(name: str, n: int = 20) -> list[dict]:
    """Rows of the ``linear-rows`` section for benchmark ``name`` (module docstring)."""
    bench = benchmarks.get(name)
    config = settings(bench)
    ids = np.unique(np.linspace(0, len(bench) - 1, n).round().astype(int))
    tables = {(x, kind): [] for x in ("weight", "grad") for kind in ("all rows", "kept rows")}
    with torch_threads(1), heap_reuse():
        warm_up()
        batch = bench.batch(config["batch_size"], config["seq_len"], config["seed"])
        for i in ids:
            inputs = proxy_inputs(bench, bench.build(int(i), config["seed"]), batch, needed=("weight", "grad"))
            kept = keep_linear_rows(inputs, bench.linear_rows, config["seed"])
            for x in ("weight", "grad"):
                tables[x, "all rows"].append(site_tables(inputs[x]).mean(-1).numpy())
                tables[x, "kept rows"].append(site_tables(kept[x]).mean(-1).numpy())
    rows = []
    for x in ("weight", "grad"):
        full, part = np.stack(tables[x, "all rows"]), np.stack(tables[x, "kept rows"])
        varying = [(a, b) for a in range(full.shape[1]) for b in range(full.shape[2])
                   if np.isfinite(full[:, a, b]).all() and np.ptp(full[:, a, b]) > 0]
        rho = np.array([metrics.spearman(full[:, a, b], part[:, a, b]) for a, b in varying])
        rho = rho[np.isfinite(rho)]
        rows.append({"benchmark": name, "input": x, "linear_rows": bench.linear_rows, "archs": len(ids),
                     "entries": len(rho), "median_rho": float(np.median(rho)),
                     "p10_rho": float(np.percentile(rho, 10)), "min_rho": float(rho.min()),
                     "share_rho_ge_0.9": float((rho >= 0.9).mean())})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=("search", "extract", "fidelity", "smollm2", "linear-rows"),
                        default=["search", "extract", "fidelity", "smollm2"])
    parser.add_argument("--linear-rows-archs", type=int, default=20,
                        help="architectures compared in the linear-rows section")
    parser.add_argument("--smollm2-windows", type=int, default=8,
                        help="held-out windows measured per sub-network in the smollm2 section (of 64)")
    parser.add_argument("--seeds", type=int, default=3, help="GP seeds per setting")
    parser.add_argument("--benchmarks", nargs="+", choices=REAL, default=list(REAL))
    parser.add_argument("--dask-archs", type=int, default=8,
                        help="architectures in the Dask speed-up run (worker start-up, ~10-30 s, is included; 0: skip)")
    parser.add_argument("--json", default="runs/bench.json", help="also write every figure here")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; load average "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    figures: dict[str, list[dict]] = {}
    if "search" in args.only:
        cache = synthetic.load()
        figures["candidate scoring (synthetic-500)"] = [candidate_scoring(cache)]
        runs, summary = gp_runs(cache, args.seeds, "synthetic-500")
        for name, real in complete_caches().items():
            more_runs, more_summary = gp_runs(real, args.seeds, name)
            runs, summary = runs + more_runs, summary + more_summary
        figures["GP 80+1000 and RPS ablation (median over seeds)"] = summary
        figures["GP runs"] = runs
        figures["search modes, default settings, one seed"] = mode_runs(cache, "synthetic-500") + [
            row for name, real in complete_caches().items() for row in mode_runs(real, name)]
    if "extract" in args.only:
        with torch_threads(1):
            figures["branch tables: one-time compilation (per process, one thread)"] = [{"seconds": warm_up()}]
        per_arch, totals, dask = [], [], []
        for name in args.benchmarks:
            rows, total, speedup = extraction_rows(name, args.dask_archs)
            per_arch, totals, dask = per_arch + rows, totals + [total], dask + ([speedup] if speedup else [])
        figures["extraction per architecture (one thread)"] = per_arch
        figures["extraction total"] = totals
        figures["Dask 2 workers vs 1"] = dask
    if "fidelity" in args.only:
        figures["sample fidelity: cache vs direct (3-op proxies)"] = [
            row for name in args.benchmarks if (cache_dir(settings(benchmarks.get(name))) / "manifest.json").exists()
            for row in sample_fidelity(name)]
    if "smollm2" in args.only:
        rows, build = smollm2_rows(args.smollm2_windows)
        figures["smollm2-mlp ground truth per sub-network (one thread)"] = rows
        figures["smollm2-mlp build, projected from those"] = build
        rows, projected = smollm2_statistics_rows()
        figures["smollm2-mlp statistics per sub-network (one thread)"] = rows
        figures["smollm2-mlp extraction, projected from those"] = projected
    if "linear-rows" in args.only:
        figures["weight/grad statistics: all linear rows vs the kept ones (Spearman across archs)"] = [
            row for name, entry in benchmarks.REGISTRY.items() if entry.measured
            for row in linear_rows_fidelity(name, args.linear_rows_archs)]
    for title, rows in figures.items():
        print_table(title, rows)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(figures, indent=2, default=float))
        print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
