"""The ``lpzero`` command: extract / info / search / evaluate / rank / results / ceiling / cache verify.

Arguments are checked when parsed (ranges, paths): a wrong value is one line naming the argument, the value and what
is allowed, exit status 2, before any cache is loaded. Expected failures afterwards (``LPZeroError``, an ``OSError``
on a user path, an unreachable Dask scheduler) print one line and exit with status 2; Ctrl-C prints one line naming
the command that continues the work and exits with 130. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from lpzero_core.errors import LPZeroError
from lpzero_core.files import atomic_write_text, non_regular

BENCHMARK_NAMES = ("flexibert", "gpt2-wt103", "synthetic", "smollm2-mlp")  # = stats.benchmarks.REGISTRY (a test checks)
#: fewer held-out architectures than this: the printed table gets a warning (rank correlations are then noise)
MIN_HELDOUT = 10
#: seconds to reach a Dask scheduler given by --scheduler
CONNECT_TIMEOUT = "5s"


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (the usage itself is under --help)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_range(low: int, high: int | None = None):
    """An argparse type: an integer in [low, high]."""
    allowed = f"an integer ≥ {low}" if high is None else f"an integer from {low} to {high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {allowed}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text} is out of range: need {allowed}")
        return value

    return parse


def _writable_dir(text: str) -> Path:
    """An argparse type: a folder that exists or can be created, and is writable."""
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is {non_regular(path) or 'a file'}, not a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} lies under the file {existing}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text!r}: {existing} is not writable")
    return path


def _out_prefix(text: str) -> Path:
    """An argparse type: OUT of OUT.csv / OUT.md, in a writable folder, neither name taken by a folder."""
    path = Path(text).expanduser()
    _writable_dir(str(path.parent))
    for suffix in (".csv", ".md"):
        kind = non_regular(path.with_suffix(suffix))
        if kind:
            raise argparse.ArgumentTypeError(f"{text!r}: {path.with_suffix(suffix)} is {kind}, not a regular file")
    return path


def _out_file(text: str) -> Path:
    """An argparse type: a file to write, in a writable folder; absent or a regular file (never a device, a FIFO
    or a folder, which the atomic rename would replace)."""
    path = Path(text).expanduser()
    kind = "a folder" if text.endswith(("/", os.sep)) or not text else non_regular(path)
    if kind:
        raise argparse.ArgumentTypeError(f"{text!r} is {kind}, not a regular file; choose a file path")
    _writable_dir(str(path.parent))
    return path


def _seed_list(text: str) -> list[int]:
    """An argparse type: a comma list of seeds ≥ 0."""
    try:
        seeds = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma list of integers") from None
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: seeds must be integers ≥ 0")
    if len(set(seeds)) < len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r}: a seed is listed twice (each seed is one search)")
    return seeds


def _readable_file(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text!r} is not a file")
    return path


COUNT, POSITIVE = _int_range(0), _int_range(1)


BENCHMARK_HELP = ("a registered name (flexibert, gpt2-wt103, synthetic) or a path: an LTS folder "
                  "(config_N/jM/model_config.yaml) or a Hugging Face config folder (<arch>/config.json, scores.csv)")


def _benchmark_args(p: argparse.ArgumentParser) -> None:
    """``--benchmark`` (name or path), ``--variant`` and, for Hugging Face config folders, the score column and
    its direction."""
    p.add_argument("--benchmark", required=True, help=BENCHMARK_HELP)
    p.add_argument("--variant", default=None, help="model variant (default: the benchmark's own)")
    p.add_argument("--target", default=None, help="HF config folder: score column of scores.csv (default: score)")
    direction = p.add_mutually_exclusive_group()
    direction.add_argument("--higher-is-better", dest="higher_is_better", action="store_true", default=None,
                           help="HF config folder: a higher score is a better model (the default)")
    direction.add_argument("--lower-is-better", dest="higher_is_better", action="store_false",
                           help="HF config folder: a lower score (loss, perplexity) is a better model")



def _cache_args(p: argparse.ArgumentParser, partial: bool = True) -> None:
    _benchmark_args(p)
    p.add_argument("--batch-size", type=POSITIVE, default=None)
    p.add_argument("--seq-len", type=POSITIVE, default=None)
    p.add_argument("--extract-seed", type=COUNT, default=0, help="seed of the extraction whose cache is read")
    p.add_argument("--cache", default=None, help="statistics cache directory (default: data/cache/<key>)")
    if partial:
        p.add_argument("--allow-partial", action="store_true", help="use the architectures extracted so far")


def _open(args):
    from lpzero_core.stats.extract import open_cache

    given = [flag for flag, value in (("--batch-size", args.batch_size), ("--seq-len", args.seq_len)) if value]
    if args.cache and given:
        raise LPZeroError(f"{given[0]} cannot apply with --cache: the cache holds what it was extracted with; "
                          f"leave {given[0]} out, or leave --cache out to find the cache of these settings")
    return open_cache(args.benchmark, args.variant, batch_size=args.batch_size, seq_len=args.seq_len,
                      seed=args.extract_seed, directory=args.cache, allow_partial=args.allow_partial,
                      target=args.target, higher_is_better=args.higher_is_better)


def _get(args):
    from lpzero_core.stats import benchmarks
    return benchmarks.get(args.benchmark, args.variant, target=args.target, higher_is_better=args.higher_is_better)


def cmd_extract(args) -> int:
    import dask

    from lpzero_core.stats.benchmarks.flexibert import MAX_POSITIONS
    from lpzero_core.stats.extract import extract, parse_archs

    benchmark = _get(args)
    ids = parse_archs(args.archs, len(benchmark))
    if benchmark.name == "flexibert" and (args.seq_len or 0) > MAX_POSITIONS:  # GPT-2 LTS checks its own
        raise LPZeroError(f"--seq-len {args.seq_len}: FlexiBERT models have {MAX_POSITIONS} positions; use ≤ "
                          f"{MAX_POSITIONS}")
    if args.scheduler or args.workers > 1:
        # distributed registers its config defaults on import; imported inside the block below, they would be
        # dropped again when dask.config.set restores the config on exit (KeyError 'distributed' at shutdown)
        import distributed  # noqa: F401
    with dask.config.set({"distributed.comm.timeouts.connect": CONNECT_TIMEOUT}):
        directory = extract(benchmark, ids, batch_size=args.batch_size, seq_len=args.seq_len, seed=args.seed,
                            workers=args.workers, scheduler=args.scheduler, directory=args.cache,
                            with_baselines=not args.no_baselines, device=args.device)
    print(f"cache: {directory}")
    return 0


def cmd_build_benchmark(args) -> int:
    import dask

    from lpzero_core.files import atomic_write_text
    from lpzero_core.stats import benchmarks
    from lpzero_core.stats.extract import parse_archs
    from lpzero_core.workbench.evaluation import to_markdown

    entry = benchmarks.REGISTRY.get(args.benchmark)
    if entry is None or not entry.measured:
        measured = [name for name, e in benchmarks.REGISTRY.items() if e.measured]
        raise LPZeroError(f"{args.benchmark}: not a measured benchmark; `lpzero build-benchmark` builds "
                          f"{', '.join(measured)}")
    module = benchmarks.module(args.benchmark)
    if args.halves:
        rows = module.read_rows(args.rows or module.ROWS)
        if rows.empty:
            raise LPZeroError(f"{args.rows or module.ROWS}: no rows measured yet; run `lpzero build-benchmark "
                              f"{args.benchmark}` first")
        print(f"{len(rows)} rows; rank correlation of the two held-out halves' perplexities:")
        print(to_markdown(module.halves(rows)))
        return 0
    if args.rule_table:
        table = module.rule_table()
        atomic_write_text(args.rule_table.with_suffix(".csv"), table.to_csv(index=False))
        atomic_write_text(args.rule_table.with_suffix(".md"), to_markdown(table) + "\n")
        print(to_markdown(table))
        return 0
    ids = parse_archs(args.ids, len(module.design()))
    if args.scheduler or args.workers > 1:
        import distributed  # noqa: F401  (see cmd_extract)
    with dask.config.set({"distributed.comm.timeouts.connect": CONNECT_TIMEOUT}):
        path = module.build(args.rows or module.ROWS, ids, workers=args.workers, scheduler=args.scheduler)
    print(f"rows: {path}")
    return 0


def cmd_info(args) -> int:
    benchmark = _get(args)
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


def _search_mode(args, overrides: dict) -> int:
    """``search --mode tree|combine|surrogate`` (or the template over ``--seeds``): ``modes.run_mode`` on the cache
    of ``--benchmark`` and of every ``--also``; prints each benchmark's held-out row of the chosen proxy and the
    search-split vs held-out gap over the seeds."""
    import pandas as pd

    from lpzero_core.stats.extract import open_cache
    from lpzero_core.workbench import modes
    from lpzero_core.workbench.config import mode_config

    seeds = args.seeds or list(modes.DEFAULT_SEEDS)
    for seed in seeds:  # every seed's settings are checked before any search starts
        mode_config(args.mode, seed, overrides, source="--set ")
    caches = [_open(args)] + [open_cache(other, allow_partial=args.allow_partial) for other in args.also]
    summary = modes.run_mode(args.mode, caches, args.out, seeds, overrides, progress=not args.quiet,
                             n_resamples=args.bootstrap, with_fallback=not args.no_fallback)
    print(f"{args.mode}: chosen seed {summary['chosen_seed']} of {len(seeds)} ({summary['choice_rule']})\n"
          f"proxy: {summary['chosen_proxy']}\nfound: {summary['chosen_candidate']}\n{summary['fallback']}")
    columns = ["proxy", "spearman", "spearman_ci_low", "spearman_ci_high", "kendall", "top10_kendall",
               "strata_kendall", "lex_kendall", "regret_vs_structure", "n"]
    for cache in caches:
        part = summary["per_benchmark"][cache.name]
        gap = {m: part["over_seeds"][m] for m in ("search_spearman", "heldout_spearman", "gap", "regret_vs_structure")}
        print(f"\n{cache.name}: over seeds " + ", ".join(f"{m} {v['median']:.3f} [{v['min']:.3f}, {v['max']:.3f}]"
                                                        for m, v in gap.items()))
        _print_table(cache, pd.DataFrame([part["chosen_row"]])[columns])
    print(f"wrote {args.out}/summary.json, seeds.csv, seed<k>/proxy.json")
    return 0


def _single_run(args) -> bool:
    """Whether ``search`` is one resumable template run (else a mode run over seeds)."""
    return args.mode == "template" and not args.seeds and not args.also


def _template_flags(args) -> dict:
    """The template settings given as flags (``config.FLAGS``), by setting name."""
    given = {name: getattr(args, name) for name in ("population", "iterations", "n_unary", "fitness",
                                                    "checkpoint_every") if getattr(args, name) is not None}
    return given | ({"rps": False} if args.no_rps else {})


def _refuse_flags(args) -> None:
    """Flags of a single template run that a mode run over seeds cannot apply."""
    from lpzero_core.workbench.config import FLAGS

    if _single_run(args):
        return
    bad = [flag for name, flag in FLAGS["template"].items()
           if name in _template_flags(args) and args.mode != "template"]
    bad += ["--seed"] * (args.seed is not None) + ["--resume"] * args.resume + ["--force"] * args.force
    if bad:
        fix = (f"give settings of --mode {args.mode} as --set KEY=JSON" if args.mode != "template" else
               "runs over --seeds are not resumable")
        raise LPZeroError(f"{bad[0]} applies to a single template run (--mode template without --seeds/--also), "
                          f"not here; use --seeds for the seeds, {fix}")


def cmd_search(args) -> int:
    from lpzero_core.workbench.config import mode_config, parse_set

    sets = parse_set(args.set, args.mode)
    _refuse_flags(args)
    flags = _template_flags(args) if args.mode == "template" else {}
    if not _single_run(args):
        return _search_mode(args, sets | flags)
    from lpzero_core.search.proxy import Proxy
    from lpzero_core.workbench import evaluation, fallback
    from lpzero_core.workbench.runs import search_run

    config = mode_config("template", args.seed or 0, sets | flags, source="--set ")
    args.seed = config.seed
    cache = _open(args)
    run = search_run(cache, config, args.out, resume=args.resume, force=args.force, progress=not args.quiet)
    summary, best = run.summary, Proxy.parse(run.summary["proxy"])
    if run.reused:
        print(f"{args.out} holds the finished run of these settings on this cache: reused (delete it to recompute)")
    fold = {cache.name: fallback.template_fold(len(cache.search_ids), args.seed)}
    selection = (fallback.Selection(best, "candidate", str(best), None, None) if args.no_fallback else
                 fallback.select(best, [cache], fold, args.seed))
    returned = {} if selection.choice == "candidate" else {f"returned: {selection.proxy}": selection.proxy}
    table = evaluation.report(cache, {"searched": best} | returned, n_resamples=args.bootstrap)
    columns = ["proxy", "kind", "kendall", "spearman", "kendall_ci_low", "kendall_ci_high"]
    print(f"best: {best}\n      {best.formula()}")
    print(f"search split (n={summary['search']['n']}): ρ {summary['search']['spearman']:.4f} τ "
          f"{summary['search']['kendall']:.4f}   |  evaluations {summary['evaluations']}, "
          f"rejected {sum(summary['rejected'].values())}, {summary['wall_seconds']:.1f} s")
    shown = (table["kind"] == "searched") | (table.index < args.top)  # the top rows and, always, the searched one
    _print_table(cache, table.loc[shown, columns + ["regret_vs_structure"]])
    print("structural fallback: off (--no-fallback)" if args.no_fallback else fallback.describe(selection))
    print(f"wrote {args.out}/best.json, summary.json, history.csv")
    return 0


def _print_table(cache, table) -> None:
    """A held-out table under a line saying how many architectures it covers (a warning when too few)."""
    from lpzero_core.workbench import evaluation

    n, total = len(cache.heldout_ids), cache.manifest.get("n_total", len(cache))
    print(f"held-out (n={n}; cache holds {len(cache)} of {total} architectures):")
    if n < MIN_HELDOUT:
        print(f"lpzero: warning: only {n} held-out architectures; correlations need ≥ {MIN_HELDOUT} to mean "
              f"anything (extract more)", file=sys.stderr)
    print(evaluation.to_markdown(table))


def cmd_evaluate(args) -> int:
    from lpzero_core.workbench import evaluation
    from lpzero_core.workbench.experiments import load_proxy

    if not (args.proxy or args.baseline or args.all):
        raise LPZeroError("evaluate: nothing to evaluate; pass --proxy, --baseline or --all")
    proxies = {text: load_proxy(text) for text in args.proxy or []}
    cache = _open(args)
    table = evaluation.report(cache, proxies, with_baselines=args.all or bool(args.baseline), released=args.all,
                              seed=args.seed, n_resamples=args.bootstrap)
    if args.baseline and not args.all:
        unknown = set(args.baseline) - set(table["proxy"])
        if unknown:
            raise LPZeroError(f"--baseline: unknown {', '.join(sorted(unknown))}; known: "
                              f"{', '.join(sorted(set(table['proxy'])))}")
        table = table[table["proxy"].isin(set(args.baseline) | set(proxies))].reset_index(drop=True)
    _print_table(cache, table)
    if args.out:
        atomic_write_text(args.out.with_suffix(".csv"), table.to_csv(index=False))
        atomic_write_text(args.out.with_suffix(".md"), evaluation.to_markdown(table) + "\n")
    return 0


def cmd_rank(args) -> int:
    """Scores of every extracted architecture under each ``--proxy``, best first by the first proxy (rank 1),
    written to ``--out`` as CSV (``arch``, ``rank``, one column per proxy, ``target`` where the set has scores)."""
    import numpy as np
    import pandas as pd

    from lpzero_core.workbench.experiments import load_proxy

    proxies = {text: load_proxy(text) for text in args.proxy}
    cache = _open(args)
    scores = {text: proxy.evaluate(cache) for text, proxy in proxies.items()}
    table = pd.DataFrame({"arch": cache.manifest["arch_keys"], **scores})
    if np.isfinite(cache.target).any():
        table["target"] = cache.target
    first = table[args.proxy[0]]
    table.insert(1, "rank", first.rank(ascending=False, method="min", na_option="bottom").astype(int))
    table = table.sort_values(["rank", "arch"]).reset_index(drop=True)
    out = args.out
    atomic_write_text(out, table.to_csv(index=False))
    print(table.head(args.top).to_string(index=False))
    print(f"wrote {len(table)} architectures to {out}")
    return 0


def cmd_results(args) -> int:
    from lpzero_core.stats.extract import open_cache
    from lpzero_core.workbench import evaluation
    from lpzero_core.workbench.results import README_COLUMNS, write_results

    readme = None if args.no_readme else args.readme or Path("README.md")
    opened = [open_cache(name, allow_partial=args.allow_partial) for name in args.benchmarks]
    caches = {cache.name: cache for cache in opened}
    if len(caches) < len(opened):
        raise LPZeroError(f"--benchmarks: two of {', '.join(map(str, args.benchmarks))} are the same benchmark")
    registered = [cache.name for name, cache in zip(args.benchmarks, opened) if str(name) in BENCHMARK_NAMES]
    tables = write_results(caches, args.out, args.runs, readme, args.bootstrap, progress=not args.quiet,
                           readme_blocks=registered)
    for name, table in tables.items():
        shown = table if name == "transfer" else table[README_COLUMNS]
        print(f"\n{name}:\n{evaluation.to_markdown(shown)}")
    if args.published:
        from lpzero_core.workbench.results import published_comparison

        table = published_comparison(args.published, progress=not args.quiet)
        out = Path(args.out) / "flexibert-port-vs-published"
        atomic_write_text(out.with_suffix(".csv"), table.to_csv(index=False))
        atomic_write_text(out.with_suffix(".md"), evaluation.to_markdown(table) + "\n")
        print(f"\nflexibert port vs the published CSV:\n{evaluation.to_markdown(table)}")
    print(f"wrote {', '.join(f'{args.out}/{n}.csv|md' for n in tables)}"
          + ("" if readme is None else f" and the README blocks of {readme}"))
    return 0


def cmd_ceiling(args) -> int:
    from lpzero_core.stats.extract import open_cache
    from lpzero_core.workbench import ceiling

    bench = _get(args)
    try:
        cache = open_cache(args.benchmark, args.variant, target=args.target, higher_is_better=args.higher_is_better)
    except LPZeroError as error:
        cache = None
        print(f"no held-out oracle rows: {error}")
    curve = ceiling.learning_curve(bench, args.sizes, args.repeats, args.seed, cache)
    print(ceiling.write(curve, bench, args.out, args.figures, ceiling.mode_seeds(args.runs, bench.name)))
    print(f"wrote {args.out}/{bench.name}-ceiling.csv|md and {args.figures}/{bench.name}_ceiling.png|pdf")
    return 0


def cmd_cache_verify(args) -> int:
    from lpzero_core.stats import benchmarks
    from lpzero_core.stats.cache import cache_dir, read_manifest, refill_hint, verify
    from lpzero_core.stats.extract import settings

    directory = args.cache
    if directory is None:
        if args.benchmark == "synthetic":
            raise LPZeroError("cache verify --benchmark synthetic: name the cache with --cache")
        bench = benchmarks.get(args.benchmark, args.variant)
        directory = cache_dir(settings(bench, args.batch_size, args.seq_len, args.extract_seed))
    found = verify(directory)
    total = sum(map(len, found.values()))
    print(f"{directory}: " + ", ".join(f"{len(ids)} {status}" for status, ids in sorted(found.items()))
          + f" of {total} architectures")
    bad = {status: ids for status, ids in found.items() if status in ("corrupt", "stale")}
    for status, ids in bad.items():
        print(f"  {status}: {', '.join(map(str, ids[:20]))}{' …' if len(ids) > 20 else ''}")
    if bad or "missing" in found:
        print(f"to recompute them: {refill_hint(read_manifest(directory), directory)}")
    return 1 if bad else 0


def _search_interrupted(args, argv: list[str]) -> str:
    """The Ctrl-C line of ``search``: the exact command that continues the run."""
    if not (args.out / "checkpoint.json").exists():
        return "nothing was checkpointed yet; rerun the same command"
    continue_argv = [a for a in argv if a != "--force"] + ([] if args.resume else ["--resume"])
    return f"{args.out} is checkpointed; continue with: lpzero {shlex.join(continue_argv)}"


def build_parser() -> argparse.ArgumentParser:
    from lpzero_core.search.gp import MAX_N_UNARY

    parser = _Parser(prog="lpzero", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("extract", help="fill the statistics cache of a benchmark")
    _benchmark_args(p)
    p.add_argument("--archs", default=None, help="START:STOP, an index or a comma list (default: all)")
    p.add_argument("--batch-size", type=POSITIVE, default=None)
    p.add_argument("--seq-len", type=POSITIVE, default=None)
    p.add_argument("--seed", type=COUNT, default=0)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--workers", type=POSITIVE, default=os.cpu_count() or 1,
                   help="Dask local-cluster workers, one torch thread each (default: one per core; 1 = in-process)")
    p.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler")
    p.add_argument("--cache", type=_writable_dir, default=None)
    p.add_argument("--no-baselines", action="store_true", help="skip the hand-crafted baselines")
    p.set_defaults(run=cmd_extract)

    p = sub.add_parser("build-benchmark", help="measure the ground truth of a measured benchmark (resumable)")
    p.add_argument("benchmark", help="a measured benchmark: smollm2-mlp")
    p.add_argument("--ids", default=None, help="START:STOP, an index or a comma list of design ids (default: all)")
    p.add_argument("--workers", type=POSITIVE, default=1,
                   help="Dask local-cluster workers, one torch thread each (default 1 = in-process)")
    p.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler")
    p.add_argument("--rows", type=Path, default=None, help="rows file (default: the committed one)")
    p.add_argument("--rule-table", type=Path, default=None, metavar="PATH",
                   help="instead: measure the channel-rule table into PATH.csv and PATH.md")
    p.add_argument("--halves", action="store_true",
                   help="instead: the rank correlation between the two held-out halves over the rows built so far")
    p.set_defaults(run=cmd_build_benchmark)

    p = sub.add_parser("info", help="architectures, target and the parameter-count check")
    _benchmark_args(p)
    p.add_argument("--verbose", action="store_true")
    p.set_defaults(run=cmd_info)

    p = sub.add_parser("search", help="genetic search for a proxy on the search split")
    _cache_args(p)
    p.add_argument("--mode", default="template", choices=("template", "tree", "combine", "surrogate"),
                   help="template: LPZero's GP (one seed, resumable); tree/combine/surrogate: the modes beyond it, "
                        "over --seeds (docs: lpzero_core/workbench/modes.py)")
    p.add_argument("--seeds", type=_seed_list, default=None,
                   help="comma list of seeds for a mode run (default 0,1,2,3,4); with the template mode it runs the "
                        "template over these seeds instead of one resumable run")
    p.add_argument("--also", action="append", default=[], metavar="BENCHMARK",
                   help="tree/combine: search on this benchmark's cache too (repeatable; leaves common to all)")
    p.add_argument("--no-fallback", action="store_true",
                   help="return each search result as found, without the structural fallback (ablation; "
                        "docs: lpzero_core/workbench/fallback.py)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="a mode setting, e.g. strata_weight=0.3 or generations=10 (repeatable; the template takes "
                        "its GP settings, e.g. crossover_p=0.6; docs: lpzero_core/workbench/config.py)")
    p.add_argument("--seed", type=COUNT, default=None, help="seed of a single template run (default 0)")
    p.add_argument("--population", type=_int_range(2), default=None, help="template population (default 80)")
    p.add_argument("--iterations", type=COUNT, default=None, help="template offspring (default 1000)")
    p.add_argument("--n-unary", type=_int_range(1, MAX_N_UNARY), default=None, help="unary ops per branch (default 2)")
    p.add_argument("--fitness", default=None, choices=("spearman", "kendall"), help="default spearman")
    p.add_argument("--no-rps", action="store_true", help="switch the rule-based pruning off (ablation)")
    p.add_argument("--checkpoint-every", type=POSITIVE, default=None, help="default 100")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.json")
    again.add_argument("--force", action="store_true", help="delete another run's files in OUT first")
    p.add_argument("--out", type=_writable_dir, default=None,
                   help="run folder (default runs/search-<benchmark>-seed<S>); a finished run of the same settings "
                        "and cache there is reused")
    p.add_argument("--bootstrap", type=COUNT, default=1000, help="bootstrap resamples for the CIs")
    p.add_argument("--top", type=COUNT, default=12, help="rows of the printed table (the searched row is always shown)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=cmd_search, interrupted=_search_interrupted)

    p = sub.add_parser("evaluate", help="held-out table for proxies and baselines")
    _cache_args(p)
    p.add_argument("--proxy", action="append", help="proxy string, or a file: best.json or one proxy string")
    p.add_argument("--baseline", action="append", help="baseline name (repeatable)")
    p.add_argument("--all", action="store_true", help="every baseline, structural and released proxy")
    p.add_argument("--seed", type=COUNT, default=0, help="bootstrap seed")
    p.add_argument("--bootstrap", type=COUNT, default=1000)
    p.add_argument("--out", type=_out_prefix, default=None, help="write OUT.csv and OUT.md")
    p.set_defaults(run=cmd_evaluate)

    p = sub.add_parser("rank", help="proxy scores of every extracted architecture, best first, to CSV")
    _cache_args(p)
    p.add_argument("--proxy", action="append", required=True,
                   help="proxy string or best.json (repeatable; the first one orders the rows)")
    p.add_argument("--out", type=_out_file, required=True, help="CSV file to write")
    p.add_argument("--top", type=COUNT, default=10, help="rows to print")
    p.set_defaults(run=cmd_rank)

    p = sub.add_parser("results", help="default search + held-out tables per benchmark, with transfer; README")
    p.add_argument("--benchmarks", nargs="+", default=list(BENCHMARK_NAMES[:2]), metavar="BENCHMARK",
                   help=f"registered names ({', '.join(BENCHMARK_NAMES)}) or benchmark folders (default: the first "
                        f"two); with two or more, the transfer table A → B too")
    p.add_argument("--allow-partial", action="store_true", help="evaluate on the architectures extracted so far")
    p.add_argument("--out", type=_writable_dir, default=Path("results"), help="folder of <benchmark>.csv|md")
    p.add_argument("--runs", type=_writable_dir, default=Path("runs/results"),
                   help="folder of the default search runs (notebook 02 reads them too)")
    readme = p.add_mutually_exclusive_group()
    readme.add_argument("--readme", type=_readable_file, default=None,
                        help="README whose results blocks are filled (default README.md)")
    readme.add_argument("--no-readme", action="store_true")
    p.add_argument("--bootstrap", type=COUNT, default=1000)
    p.add_argument("--published", type=COUNT, default=0, metavar="N",
                   help="also compare our FlexiBERT port baselines with the published CSV on N architectures")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=cmd_results)

    p = sub.add_parser("ceiling", help="what the benchmark allows: retraining noise, and a supervised learning "
                                       "curve over the architecture description (no cache needed)")
    _benchmark_args(p)
    p.add_argument("--sizes", type=POSITIVE, nargs="+", default=None,
                   help="labelled architectures per fit (default: 5, 10, 20, 40, 60, 80 %% of the benchmark)")
    p.add_argument("--repeats", type=POSITIVE, default=5, help="random draws per size")
    p.add_argument("--seed", type=COUNT, default=0)
    p.add_argument("--out", type=_writable_dir, default=Path("results"))
    p.add_argument("--figures", type=_writable_dir, default=Path("figures"))
    p.add_argument("--runs", type=Path, default=Path("runs/results"),
                   help="where `lpzero results` left the mode runs drawn beside the curve")
    p.set_defaults(run=cmd_ceiling)

    p = sub.add_parser("cache", help="statistics cache maintenance")
    actions = p.add_subparsers(dest="action", required=True)
    p = actions.add_parser("verify", help="check every architecture file against its checksum and key")
    _cache_args(p, partial=False)
    p.set_defaults(run=cmd_cache_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The console entry point. Everything after the first line runs under one handler, parsing and the heavy
    imports included, so that Ctrl-C at any moment ends with one line and status 130 (this module itself imports
    only the foundation, so the window before it is the interpreter's start-up)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = None
    try:
        args = build_parser().parse_args(argv)
        if getattr(args, "out", "") is None and args.command == "search":
            name = Path(str(args.benchmark)).name
            args.out = Path(f"runs/search-{name}-seed{args.seed or 0}" if _single_run(args) else
                            f"runs/search-{name}-{args.mode}")
        return args.run(args)
    except (LPZeroError, OSError) as error:  # OSError: a user path, or an unreachable Dask scheduler
        print(f"lpzero: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = args.interrupted(args, argv) if hasattr(args, "interrupted") else \
            "finished work is kept, rerun the same command to continue"
        print(f"lpzero: interrupted; {hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
