"""The ``lpzero`` command: extract / info / search / evaluate.

Expected failures (bad arguments, missing data, incomplete caches) print one line and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from lpzero_core.errors import LPZeroError
from lpzero_core.files import atomic_write_text

BENCHMARK_NAMES = ("flexibert", "gpt2-wt103", "synthetic")


def _cache_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--benchmark", required=True, choices=BENCHMARK_NAMES)
    p.add_argument("--variant", default=None, help="model variant (default: the benchmark's own)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seq-len", type=int, default=None)
    p.add_argument("--extract-seed", type=int, default=0, help="seed of the extraction whose cache is read")
    p.add_argument("--cache", default=None, help="statistics cache directory (default: data/cache/<key>)")
    p.add_argument("--allow-partial", action="store_true", help="use the architectures extracted so far")


def _open(args):
    from lpzero_core.stats.extract import open_cache
    return open_cache(args.benchmark, args.variant, args.batch_size, args.seq_len, args.extract_seed, args.cache,
                      args.allow_partial)


def cmd_extract(args) -> int:
    from lpzero_core.stats import benchmarks
    from lpzero_core.stats.extract import extract, parse_archs

    if args.benchmark == "synthetic":
        raise LPZeroError("the synthetic benchmark has no models to extract; `lpzero search` generates its cache")
    benchmark = benchmarks.get(args.benchmark, args.variant)
    directory = extract(benchmark, parse_archs(args.archs, len(benchmark)), args.batch_size, args.seq_len,
                        args.seed, args.workers, args.scheduler, args.cache, not args.no_baselines,
                        device=args.device)
    print(f"cache: {directory}")
    return 0


def cmd_info(args) -> int:
    from lpzero_core.stats import benchmarks

    benchmark = benchmarks.get(args.benchmark, args.variant)
    print(f"benchmark {benchmark.name} / variant {benchmark.variant}: {len(benchmark)} architectures")
    print(f"target: {benchmark.target_name} (higher = better), range {benchmark.target.min():.4g} .. "
          f"{benchmark.target.max():.4g}")
    print(f"split: {len(benchmark.search_ids)} search / {len(benchmark.heldout_ids)} held-out")
    matched, fields = 0, {}
    for i in range(len(benchmark)):
        check = benchmark.param_check(i)
        ok = all(published == rebuilt for published, rebuilt in check.values())
        matched += ok
        for field, (published, rebuilt) in check.items():
            fields.setdefault(field, 0)
            fields[field] += published == rebuilt
        if not ok and args.verbose:
            print(f"  mismatch {benchmark.arch_keys[i]}: {check}")
    for field, count in fields.items():
        print(f"  {field}: {count}/{len(benchmark)} exact")
    print(f"params: {matched}/{len(benchmark)} match")
    return 0 if matched == len(benchmark) else 1


def cmd_search(args) -> int:
    from lpzero_core.search.gp import GPConfig, save_result, search
    from lpzero_core.workbench import evaluation

    cache = _open(args)
    config = GPConfig(population=args.population, iterations=args.iterations, n_unary=args.n_unary,
                      fitness=args.fitness, rps=not args.no_rps, seed=args.seed,
                      checkpoint_every=args.checkpoint_every)
    out = Path(args.out or f"runs/search-{args.benchmark}-seed{args.seed}")
    result = search(cache, config, out, resume=args.resume, progress=not args.quiet)
    summary = save_result(out, result, cache, config)
    search_ids, heldout = cache.search_ids, cache.heldout_ids
    table = evaluation.report(cache, {"searched": result.best}, n_resamples=args.bootstrap)
    columns = ["proxy", "kind", "kendall", "spearman", "kendall_ci_low", "kendall_ci_high"]
    print(f"best: {result.best}\n      {result.best.formula()}")
    print(f"search split (n={len(search_ids)}): ρ {summary['search']['spearman']:.4f} τ "
          f"{summary['search']['kendall']:.4f}   |  evaluations {result.evaluations}, "
          f"rejected {sum(result.rejected.values())}, {result.wall_seconds:.1f} s")
    print(f"held-out (n={len(heldout)}):")
    shown = (table["kind"] == "searched") | (table.index < args.top)  # the top rows and, always, the searched one
    print(evaluation.to_markdown(table.loc[shown, columns]))
    print(f"wrote {out}/best.json, summary.json, history.csv")
    return 0


def cmd_evaluate(args) -> int:
    from lpzero_core.search.proxy import Proxy
    from lpzero_core.workbench import evaluation

    cache = _open(args)
    proxies = {}
    for text in args.proxy or []:
        path = Path(text)
        proxies[text] = Proxy.from_dict(json.loads(path.read_text())) if path.suffix == ".json" else Proxy.parse(text)
    table = evaluation.report(cache, proxies, baselines=args.all or bool(args.baseline), released=args.all,
                              seed=args.seed, n_resamples=args.bootstrap)
    if args.baseline and not args.all:
        unknown = set(args.baseline) - set(table["proxy"])
        if unknown:
            raise LPZeroError(f"--baseline: unknown {', '.join(sorted(unknown))}; known: "
                              f"{', '.join(sorted(set(table['proxy'])))}")
        table = table[table["proxy"].isin(set(args.baseline) | set(proxies))].reset_index(drop=True)
    print(evaluation.to_markdown(table))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out.with_suffix(".csv"), table.to_csv(index=False))
        atomic_write_text(out.with_suffix(".md"), evaluation.to_markdown(table) + "\n")
    return 0


def cmd_results(args) -> int:
    from lpzero_core.stats.extract import open_cache
    from lpzero_core.workbench import evaluation
    from lpzero_core.workbench.results import README_COLUMNS, write_results

    caches = {name: open_cache(name, allow_partial=args.allow_partial) for name in args.benchmarks}
    tables = write_results(caches, args.out, args.runs, None if args.no_readme else args.readme, args.bootstrap,
                           progress=not args.quiet)
    for name, table in tables.items():
        print(f"\n{name}:\n{evaluation.to_markdown(table[README_COLUMNS])}")
    if args.published:
        from lpzero_core.workbench.results import published_comparison

        table = published_comparison(args.published, progress=not args.quiet)
        out = Path(args.out) / "flexibert-port-vs-published"
        atomic_write_text(out.with_suffix(".csv"), table.to_csv(index=False))
        atomic_write_text(out.with_suffix(".md"), evaluation.to_markdown(table) + "\n")
        print(f"\nflexibert port vs the published CSV:\n{evaluation.to_markdown(table)}")
    print(f"wrote {', '.join(f'{args.out}/{n}.csv|md' for n in tables)}"
          + ("" if args.no_readme else f" and the README blocks of {args.readme}"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lpzero", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("extract", help="fill the statistics cache of a benchmark")
    p.add_argument("--benchmark", required=True, choices=BENCHMARK_NAMES)
    p.add_argument("--variant", default=None)
    p.add_argument("--archs", default=None, help="START:STOP, an index or a comma list (default: all)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seq-len", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="Dask local-cluster workers, one torch thread each (default: one per core; 1 = in-process)")
    p.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler")
    p.add_argument("--cache", default=None)
    p.add_argument("--no-baselines", action="store_true", help="skip the hand-crafted baselines")
    p.set_defaults(run=cmd_extract)

    p = sub.add_parser("info", help="architectures, target and the parameter-count check")
    p.add_argument("--benchmark", required=True, choices=BENCHMARK_NAMES[:2])
    p.add_argument("--variant", default=None)
    p.add_argument("--verbose", action="store_true")
    p.set_defaults(run=cmd_info)

    p = sub.add_parser("search", help="genetic search for a proxy on the search split")
    _cache_args(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--population", type=int, default=80)
    p.add_argument("--iterations", type=int, default=1000)
    p.add_argument("--n-unary", type=int, default=2)
    p.add_argument("--fitness", default="spearman", choices=("spearman", "kendall"))
    p.add_argument("--no-rps", action="store_true", help="switch the rule-based pruning off (ablation)")
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.json")
    p.add_argument("--out", default=None, help="output directory (default runs/search-<benchmark>-seed<S>)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the CIs")
    p.add_argument("--top", type=int, default=12, help="rows of the printed table")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=cmd_search)

    p = sub.add_parser("evaluate", help="held-out table for proxies and baselines")
    _cache_args(p)
    p.add_argument("--proxy", action="append", help="proxy string or best.json (repeatable)")
    p.add_argument("--baseline", action="append", help="baseline name (repeatable)")
    p.add_argument("--all", action="store_true", help="every baseline, structural and released proxy")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--out", default=None, help="write OUT.csv and OUT.md")
    p.set_defaults(run=cmd_evaluate)

    p = sub.add_parser("results", help="default search + held-out tables per benchmark, with transfer; README")
    p.add_argument("--benchmarks", nargs="+", default=list(BENCHMARK_NAMES[:2]), choices=BENCHMARK_NAMES)
    p.add_argument("--allow-partial", action="store_true", help="evaluate on the architectures extracted so far")
    p.add_argument("--out", default="results", help="folder of <benchmark>.csv|md")
    p.add_argument("--runs", default="runs/results", help="folder of the default search runs")
    p.add_argument("--readme", default="README.md", help="README whose results blocks are filled")
    p.add_argument("--no-readme", action="store_true")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--published", type=int, default=0, metavar="N",
                   help="also compare our FlexiBERT port baselines with the published CSV on N architectures")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=cmd_results)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except LPZeroError as error:
        print(f"lpzero: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lpzero: interrupted; finished work is kept, rerun the same command to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
