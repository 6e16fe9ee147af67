"""LPZero's released FlexiBERT proxy at growing batch sizes, beside the values LPZero published for it.

LPZero committed, for all 500 FlexiBERT architectures, the value of its released FlexiBERT proxy
(``RELEASED["lpzero_flexibert"]`` = mean over layers of mean((−H)²) + logsoftmax(‖A‖_F), the second term ≡ 0) as
the column ``lpzero`` of ``flexibert/BERT_results_activation_lpzero.csv``: computed on the PyTorch port (hidden 256,
FFN 1024 for every architecture: our variant ``port``), on one 128 × 512 batch of the first 128 OpenWebText
documents, on a GPU. This study recomputes the proxy on ``port`` at growing batches and reports per batch:

* ``agreement_spearman`` — Spearman ρ between our values and LPZero's column, across architectures;
* ``ours_vs_glue`` / ``theirs_vs_glue`` — each one's Spearman ρ with the GLUE score, on the same architectures;
* ``seconds_per_arch`` — forward + backward + proxy, model build excluded.

The text stays offline: the BBC News articles of ``stats.text.bert_batch`` (documents in sorted order, a
corpus-built uncased WordPiece vocabulary of 30522 entries) instead of OpenWebText and the ELECTRA tokenizer, so
the same architecture sees other token ids and shorter documents (BBC articles are padded where OpenWebText
documents fill 512 tokens). Each architecture's weights depend only on (seed, arch) and dropout is reseeded the
same way before every pass, so the batch is the only thing that changes along a curve.

Run: ``python -m lpzero_core.workbench.batch_study --device cuda`` (``--help`` for the options); writes
``results/flexibert-lpzero-batch.csv|md``, the per-architecture values ``results/flexibert-lpzero-batch-scores.csv``
and the figure ``figures/flexibert_lpzero_batch.png|pdf``.
"""
from __future__ import annotations

import argparse
import time

import pandas as pd
import torch
from tqdm.auto import tqdm

from lpzero_core.errors import LPZeroError
from lpzero_core.files import PROJECT_ROOT, atomic_write_text
from lpzero_core.search import metrics
from lpzero_core.search.proxy import RELEASED
from lpzero_core.seeds import arch_seed
from lpzero_core.stats import benchmarks
from lpzero_core.stats.data import locate
from lpzero_core.stats.extract import proxy_inputs
from lpzero_core.workbench import evaluation

#: (batch size, sequence length) of the study; the last is LPZero's own
BATCHES = ((4, 128), (16, 128), (32, 512), (128, 512))


def published_lpzero() -> pd.Series:
    """LPZero's ``lpzero`` column, indexed by architecture id."""
    return pd.read_csv(locate("flexibert/BERT_results_activation_lpzero.csv"), index_col="ID")["lpzero"]


def released_scores(ids, batches=BATCHES, *, device: str = "cpu", seed: int = 0,
                    progress: bool = True) -> pd.DataFrame:
    """The released FlexiBERT proxy on ``port`` for every architecture in ``ids`` and batch in ``batches``:
    columns ``arch, batch_size, seq_len, score, seconds``. Each model is built once and run at every batch."""
    if device == "cuda" and not torch.cuda.is_available():
        raise LPZeroError("--device cuda: no CUDA device is visible to torch; use --device cpu")
    benchmark = benchmarks.get("flexibert", "port")
    proxy = RELEASED["lpzero_flexibert"]
    data = {(b, t): {k: v.to(device) for k, v in benchmark.batch(b, t, seed).items()} for b, t in batches}
    rows = []
    for i in tqdm(ids, disable=not progress, desc="released proxy by batch", unit="arch"):
        model = benchmark.build(int(i), seed).to(device)
        for (b, t), batch in data.items():
            torch.manual_seed(arch_seed(seed, int(i)))  # the same dropout draw for every batch
            start = time.perf_counter()
            score = proxy.score_tensors(proxy_inputs(benchmark, model, batch))
            if device == "cuda":
                torch.cuda.synchronize()
            rows.append({"arch": int(i), "batch_size": b, "seq_len": t, "score": score,
                         "seconds": time.perf_counter() - start})
        del model
    return pd.DataFrame(rows)


def summarize(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per batch: agreement with LPZero's column and each one's ρ with GLUE (see the module docstring)."""
    theirs = published_lpzero()
    glue = benchmarks.get("flexibert", "port").target
    rows = []
    for (b, t), group in scores.groupby(["batch_size", "seq_len"], sort=False):
        ids = group["arch"].to_numpy()
        ours = group["score"].to_numpy(float)
        rows.append({"batch": f"{b}×{t}", "batch_size": b, "seq_len": t, "n": len(ids),
                     "agreement_spearman": metrics.spearman(ours, theirs.loc[ids].to_numpy(float)),
                     "ours_vs_glue": metrics.spearman(ours, glue[ids]),
                     "theirs_vs_glue": metrics.spearman(theirs.loc[ids].to_numpy(float), glue[ids]),
                     "seconds_per_arch": float(group["seconds"].mean())})
    return pd.DataFrame(rows)


def write(scores: pd.DataFrame, table: pd.DataFrame, results: str = "results", figures: str = "figures",
          note: str = "") -> None:
    """The tables (CSV + markdown with ``note`` as caption) and the curve figure."""
    from lpzero_core.workbench import plots

    out = PROJECT_ROOT / results
    atomic_write_text(out / "flexibert-lpzero-batch-scores.csv", scores.to_csv(index=False))
    atomic_write_text(out / "flexibert-lpzero-batch.csv", table.to_csv(index=False))
    atomic_write_text(out / "flexibert-lpzero-batch.md",
                      f"{note}\n\n{evaluation.to_markdown(table)}\n")
    plots.save(plots.batch_curve(table), PROJECT_ROOT / figures / "flexibert_lpzero_batch")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--batches", nargs="+", default=[f"{b}x{t}" for b, t in BATCHES],
                        help="BxT batch shapes (default: %(default)s)")
    parser.add_argument("--ids", default="0:500", help="architecture ids START:STOP (default all 500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scores-only", metavar="CSV", help="only write the per-architecture values to CSV (one "
                        "slice of a parallel run)")
    parser.add_argument("--combine", nargs="+", metavar="CSV", help="summarise slices written by --scores-only")
    args = parser.parse_args(argv)
    try:
        batches = [tuple(int(v) for v in text.lower().split("x")) for text in args.batches]
        start, stop = (int(v) for v in args.ids.split(":"))
        if any(len(shape) != 2 or min(shape) < 1 for shape in batches) or not 0 <= start < stop <= 500:
            raise ValueError
    except ValueError:
        parser.error(f"--batches/--ids: expected shapes like 4x128 and START:STOP within 0:500, got "
                     f"{' '.join(args.batches)} / {args.ids}")
    if args.combine:
        scores = pd.concat([pd.read_csv(path) for path in args.combine], ignore_index=True)
    else:
        scores = released_scores(range(start, stop), batches, device=args.device, seed=args.seed)
    if args.scores_only:
        atomic_write_text(args.scores_only, scores.to_csv(index=False))
        return 0
    table = summarize(scores)
    device = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    note = (f"LPZero's released FlexiBERT proxy on the `port` variant, {scores['arch'].nunique()} architectures, "
            f"offline BBC text, seed {args.seed}, {device}, torch {torch.__version__}; agreement = Spearman ρ with "
            f"the `lpzero` column LPZero published (128×512 OpenWebText, GPU).")
    write(scores, table, note=note)
    print(note)
    print(evaluation.to_markdown(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
