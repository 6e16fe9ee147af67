"""The committed results tables (`make results` → `lpzero results`): one per benchmark, embedded in the README.

For every benchmark given (with its statistics cache):

1. the default search (``DEFAULT_SEARCH``: GP defaults, seed 0) on the search split, in the run directory
   ``runs/results/<benchmark>/`` (``workbench/runs.py``): a finished run on the same cache is reused, so the search
   runs once per cache; notebook 02 (``make paper``) reads the same run;
2. the held-out table (:func:`lpzero_core.workbench.evaluation.report`): that searched proxy, the proxy searched on
   every *other* benchmark (cross-benchmark transfer, kind ``transfer``), LPZero's released proxies, every network
   baseline in the cache and the structural baselines;
3. ``results/<benchmark>.csv`` and ``.md`` (a caption line naming the cache, the split and the searched proxy,
   then the table), and the README block between ``<!-- results:<benchmark> -->`` and
   ``<!-- /results:<benchmark> -->`` replaced by the caption and the table's main columns.

4. the search modes beyond the template (``workbench.modes``): ``tree``, ``combine`` and ``surrogate`` with
   ``modes.DEFAULT_SEEDS`` each, one row per mode in the held-out table (the proxy chosen across seeds by the
   stated rule, kind ``mode``) and, with two or more benchmarks, one ``tree`` search over all of them at once (kind
   ``multi``), scored on each benchmark's held-out set; the template over the same seeds for comparison. The
   search-split vs held-out gap of every mode, medians and ranges over the seeds, goes to
   ``results/<benchmark>-modes.csv|md`` and the README block ``results:<benchmark>-modes``.

5. with two or more benchmarks, the leave-one-benchmark-out **transfer table** (:func:`transfer_table`):
   for every ordered pair A → B, the proxy each mode chose on A scored on *all* architectures of B, beside the
   structural descriptor chosen on A's search split by the same rule (``fallback``), and the regret
   (ρ on B − that descriptor's ρ on B); with three or more benchmarks, also the multi-benchmark tree searched on
   all but B, scored on B. ``results/transfer.csv|md`` and the README block ``results:transfer``.

Every table carries ``regret_vs_structure``: held-out ρ − that of the structural descriptor chosen on the search
split (``evaluation.regret_reference``). A partial cache (``allow_partial``) is evaluated on the architectures it
holds; the caption says how many.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from lpzero_core.errors import LPZeroError
from lpzero_core.files import atomic_write_text
from lpzero_core.search.gp import GPConfig
from lpzero_core.search.proxy import Proxy
from lpzero_core.stats.cache import StatsCache
from lpzero_core.workbench import evaluation, modes
from lpzero_core.workbench.runs import search_run

README_COLUMNS = ["proxy", "kind", "spearman", "kendall", "kendall_ci_low", "kendall_ci_high", "top10_kendall",
                  "strata_kendall", "lex_kendall", "partial_spearman", "regret_vs_structure", "seconds_per_arch"]
#: the modes of the gap table; all but the template also get a row in the held-out table
MODES = ("template", "tree", "combine", "surrogate")
GAP_COLUMNS = ("search_spearman", "heldout_spearman", "gap", "regret_vs_structure", "strata_kendall", "lex_kendall",
               "wall_seconds")
#: the searched proxy of the tables (and of notebook 02's defaults)
DEFAULT_SEARCH = GPConfig(seed=0)


def caption(cache: StatsCache, searched: Proxy) -> str:
    """One line naming what the table was computed on."""
    extracted = len(cache)
    total = cache.manifest.get("n_total", extracted)
    return (f"{cache.name} ({cache.manifest['variant']}, cache {cache.manifest['key']}): held-out n = "
            f"{len(cache.heldout_ids)} of {extracted} extracted / {total} architectures; search split "
            f"n = {len(cache.search_ids)}; searched proxy (GP defaults, seed 0): `{searched}` = {searched.formula()}")


def embed(readme: str, name: str, block: str) -> str:
    """``readme`` with the text between the ``results:<name>`` markers replaced by ``block``."""
    pattern = re.compile(rf"(<!-- results:{re.escape(name)} -->\n).*?(<!-- /results:{re.escape(name)} -->)", re.S)
    if not pattern.search(readme):
        raise LPZeroError(f"README has no <!-- results:{name} --> … <!-- /results:{name} --> block to fill")
    return pattern.sub(lambda m: m.group(1) + block.rstrip("\n") + "\n" + m.group(2), readme)


def mode_runs(caches: dict[str, StatsCache], runs: str | Path, *, settings: dict | None = None,
              n_resamples: int = 1000, progress: bool = False
              ) -> tuple[dict[str, list[dict]], dict[str, pd.DataFrame], list[dict]]:
    """Every mode of ``MODES`` on every cache (and ``tree`` on all caches at once when there are two or more, and on
    every leave-one-out subset when there are three or more), each over ``modes.DEFAULT_SEEDS`` with each mode's
    defaults (``settings``: per-mode overrides, e.g. smaller budgets in tests), into
    ``runs/<benchmark>/modes/<mode>`` (``runs/multi[-<names>]/tree``). Returns the held-out rows per benchmark,
    the gap table per benchmark (one row per mode: median [min, max] over seeds) and the chosen proxy of every
    search (``mode``, ``label``, ``searched_on``, ``proxy``, ``descriptor``) for the transfer table."""
    rows = {name: [] for name in caches}
    gaps = {name: [] for name in caches}
    chosen_proxies = []
    searches = [(mode, [name]) for mode in MODES for name in caches]
    if len(caches) > 1:
        searches.append(("tree", list(caches)))
    if len(caches) > 2:
        searches += [("tree", [n for n in caches if n != left]) for left in caches]
    for mode, names in searches:
        multi = "multi" if len(names) == len(caches) else "multi-" + "-".join(names)
        folder = Path(runs) / (names[0] if len(names) == 1 else multi) / "modes" / mode
        summary = modes.run_mode(mode, [caches[n] for n in names], folder, overrides=(settings or {}).get(mode),
                                 n_resamples=n_resamples, progress=progress)
        label = mode if len(names) == 1 else f"{mode} on {' + '.join(names)}"
        descriptor = evaluation.best_on_search([caches[n] for n in names], evaluation.structural_scores)
        chosen_proxies.append({"mode": mode, "label": label, "searched_on": names, "proxy": summary["proxy"],
                               "descriptor": descriptor})
        if len(names) not in (1, len(caches)):
            continue  # a leave-one-out search is only scored on the benchmark it left out
        for name in names:
            part = summary["per_benchmark"][caches[name].name]
            if mode != "template" or len(names) > 1:
                chosen = {**part["chosen_row"], "proxy": f"{label} (seed {summary['chosen_seed']} of "
                                                         f"{len(summary['seeds'])})",
                          "kind": "mode" if len(names) == 1 else "multi"}
                rows[name].append(chosen)
            stats = part["over_seeds"]
            gaps[name].append({"mode": label, "seeds": len(summary["seeds"]), "chosen_proxy": summary["chosen_proxy"],
                               **{m: f"{stats[m]['median']:.3f} [{stats[m]['min']:.3f}, {stats[m]['max']:.3f}]"
                                  for m in GAP_COLUMNS}})
    return rows, {name: pd.DataFrame(g) for name, g in gaps.items()}, chosen_proxies


TRANSFER_COLUMNS = ["searched_on", "scored_on", "mode", "proxy", "spearman", "kendall", "strata_kendall",
                    "top10_kendall", "descriptor", "descriptor_spearman", "regret_vs_structure", "n"]


def transfer_table(caches: dict[str, StatsCache], chosen_proxies: list[dict]) -> pd.DataFrame:
    """Leave-one-benchmark-out: every chosen proxy scored on all architectures of each benchmark it did not search
    on, beside the structural descriptor chosen on its search split(s) by the same rule; ``regret_vs_structure`` =
    ρ − the descriptor's ρ on that benchmark. A proxy that reads a column the benchmark lacks is a row of NaN
    saying so."""
    from lpzero_core.errors import LPZeroError
    from lpzero_core.search import metrics

    rows = []
    for entry in chosen_proxies:
        for name, cache in caches.items():
            if name in entry["searched_on"]:
                continue
            ids, truth = np.arange(len(cache)), np.asarray(cache.target)
            try:
                scores = np.asarray(entry["proxy"].evaluate(cache), float)
            except (LPZeroError, KeyError) as error:
                scores = np.full(len(cache), np.nan)
                entry = {**entry, "proxy": f"{entry['proxy']} (not applicable: {str(error).splitlines()[0]})"}
            structure = evaluation.structural_scores(cache)
            descriptor = entry["descriptor"]
            reference = (metrics.spearman(structure[descriptor], truth) if descriptor in structure else np.nan)
            rho = metrics.spearman(scores, truth)
            rows.append({"searched_on": " + ".join(entry["searched_on"]), "scored_on": name, "mode": entry["label"],
                         "proxy": str(entry["proxy"]), "spearman": rho, "kendall": metrics.kendall(scores, truth),
                         "strata_kendall": metrics.stratified(scores, truth, cache.strata),
                         "top10_kendall": metrics.top_k(scores, truth, 0.10), "descriptor": descriptor,
                         "descriptor_spearman": reference, "regret_vs_structure": rho - reference, "n": len(ids)})
    return pd.DataFrame(rows, columns=TRANSFER_COLUMNS)


def transfer_rows(benchmark: str, out: str | Path = "results") -> pd.DataFrame:
    """The rows of ``out/transfer.csv`` (written by ``lpzero results`` with two or more benchmarks) scored on
    ``benchmark``: the proxies chosen on the other benchmarks, on all of this one; no rows before that file
    exists."""
    path = Path(out) / "transfer.csv"
    if not path.is_file():
        return pd.DataFrame(columns=TRANSFER_COLUMNS)
    table = pd.read_csv(path)
    return table[table["scored_on"] == benchmark].reset_index(drop=True)


def write_results(caches: dict[str, StatsCache], out: str | Path = "results", runs: str | Path = "runs/results",
                  readme: str | Path | None = "README.md", n_resamples: int = 1000, progress: bool = True,
                  with_modes: bool = True, mode_settings: dict | None = None,
                  readme_blocks: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """Search, evaluate and write the tables of the named caches (e.g. ``{"flexibert": open_cache("flexibert")}``);
    returns them (and ``"transfer"``, with two or more). ``readme_blocks``: the benchmarks with README blocks
    (default: all; a user's benchmark folder gets its files only). The README is checked for every block before
    anything is written."""
    text = Path(readme).read_text() if readme else None
    blocks = list(caches) if readme_blocks is None else list(readme_blocks)
    for name in blocks if text is not None else ():
        embed(text, name, "")
        if with_modes:
            embed(text, f"{name}-modes", "")
    if text is not None and with_modes and len(caches) > 1:
        embed(text, "transfer", "")
    searched = {}
    for name, cache in caches.items():
        run = search_run(cache, DEFAULT_SEARCH, Path(runs) / name, force=True, progress=progress)
        searched[name] = Proxy.parse(run.summary["proxy"])
    extra, gaps, chosen_proxies = {}, {}, []
    if with_modes:
        extra, gaps, chosen_proxies = mode_runs(caches, runs, settings=mode_settings, n_resamples=n_resamples)
    tables, out = {}, Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, cache in caches.items():
        proxies = {"searched (seed 0)": searched[name]}
        transfer = {f"searched on {other} (transfer)": p for other, p in searched.items() if other != name}
        table = evaluation.report(cache, proxies | transfer, n_resamples=n_resamples)
        table.loc[table["proxy"].isin(list(transfer)), "kind"] = "transfer"
        if extra.get(name):
            table = pd.concat([table, pd.DataFrame(extra[name])[list(table.columns)]], ignore_index=True)
            table = table.sort_values("kendall", ascending=False, na_position="last").reset_index(drop=True)
        head = caption(cache, searched[name])
        atomic_write_text(out / f"{name}.csv", table.to_csv(index=False))
        atomic_write_text(out / f"{name}.md", f"{head}\n\n{evaluation.to_markdown(table)}\n")
        if text is not None and name in blocks:
            text = embed(text, name, f"{head}\n\n{evaluation.to_markdown(table[README_COLUMNS])}\n")
        if name in gaps:
            gap = gaps[name]
            atomic_write_text(out / f"{name}-modes.csv", gap.to_csv(index=False))
            atomic_write_text(out / f"{name}-modes.md", evaluation.to_markdown(gap) + "\n")
            if text is not None and name in blocks:
                text = embed(text, f"{name}-modes", evaluation.to_markdown(gap) + "\n")
        tables[name] = table
    if with_modes and len(caches) > 1:
        transfer = transfer_table(caches, chosen_proxies)
        atomic_write_text(out / "transfer.csv", transfer.to_csv(index=False))
        atomic_write_text(out / "transfer.md", evaluation.to_markdown(transfer) + "\n")
        if text is not None:
            text = embed(text, "transfer", evaluation.to_markdown(transfer) + "\n")
        tables["transfer"] = transfer
    if text is not None:
        atomic_write_text(Path(readme), text)
    return tables


#: ``BERT_results_activation.csv`` column → the baseline of this project computing the same quantity.
PUBLISHED_COLUMNS = {"Number of Parameters": "params_total", "Synaptic Diversity": "synaptic_diversity",
                     "Synaptic Saliency": "synaptic_saliency", "Activation Distance": "nwot",
                     "Jacobian Score": "jacobian_score", "Head Importance": "head_importance",
                     "Head Confidence": "head_confidence", "Head Softmax Confidence": "head_softmax_confidence"}


def published_comparison(n_archs: int = 60, seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Our baselines on FlexiBERT ``port`` (the network behind the published CSV) vs the CSV's columns.

    On ``n_archs`` architectures evenly spaced over the 500, per column: how many values agree to rounding
    (relative difference ≤ 1e-6), Spearman ρ between ours and the published values across architectures, and
    each one's ρ with the GLUE score. Values need not agree beyond ``params``: the published run used another
    batch (128 × 512 OpenWebText tokens vs our default text batch), another random initialisation, and the
    defects listed in each baseline's docstring (e.g. the CSV activation distance counts each layer H times).
    """
    import numpy as np
    from tqdm.auto import tqdm

    from lpzero_core.search import metrics
    from lpzero_core.stats import baselines, benchmarks
    from lpzero_core.stats.benchmarks.flexibert import published_metrics

    benchmark = benchmarks.get("flexibert", "port")
    published = published_metrics()
    ids = np.linspace(0, len(benchmark) - 1, n_archs).round().astype(int)
    batch = benchmark.batch(benchmark.default_batch_size, benchmark.default_seq_len, seed)
    ours = [baselines.compute(benchmark, int(i), batch, seed, names=list(PUBLISHED_COLUMNS.values()))[0]
            for i in tqdm(ids, disable=not progress, desc="port baselines", unit="arch")]
    glue = benchmark.target[ids]
    rows = []
    for column, name in PUBLISHED_COLUMNS.items():
        mine = np.array([o[name] for o in ours])
        theirs = published.loc[ids, column].to_numpy(float)
        agree = np.isclose(mine, theirs, rtol=1e-6, atol=0.0)
        rows.append({"csv column": column, "baseline": name, "n": len(ids), "equal to rounding": int(agree.sum()),
                     "spearman ours vs csv": metrics.spearman(mine, theirs),
                     "spearman ours vs glue": metrics.spearman(mine, glue),
                     "spearman csv vs glue": metrics.spearman(theirs, glue)})
    return pd.DataFrame(rows)
