"""Bring your own architectures: a Hugging Face config folder becomes a benchmark, offline, end to end.

1. :func:`make_set` writes ``N_ARCHS`` small GPT-2 and LLaMA ``config.json`` files of different depth and width
   (``configs(n)``; 64 positions, the GPT-2 BPE vocabulary), trains each from the same seeded initialisation the
   extraction uses (``benchmark.build(i, 0)``) for ``steps`` AdamW steps (lr 3e-3) on the offline BBC text
   (``text.gpt2_batch`` windows 1..steps, batch 8 × 32 tokens, one torch thread) and writes ``scores.csv``:
   ``arch, val_loss`` = mean causal-LM loss on the windows ``VALID_WINDOWS`` (never trained on; the extraction
   batch is a window of another grid, batch 4). Lower is better.
2. :func:`main` runs the ``lpzero`` commands on the folder: extract (statistics and baselines) → search → evaluate
   → rank, the path form of ``--benchmark`` with ``--target val_loss --lower-is-better``.

``python examples/bring_your_own/bring_your_own.py`` regenerates ``set/`` (configs and scores, committed as this
produced them with the defaults) and reruns the pipeline into ``runs/bring_your_own``; ``--reuse`` keeps the
committed ``set/``. The test reruns both at a few steps on four architectures.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import torch

from lpzero_core.files import atomic_write_text
from lpzero_core.stats import benchmarks, text
from lpzero_core.workbench.cli import main as lpzero

HERE = Path(__file__).resolve().parent
N_ARCHS, STEPS, BATCH, SEQ_LEN, LR = 30, 40, 8, 32, 3e-3
VALID_WINDOWS = range(1000, 1004)
VOCAB, POSITIONS = 50257, 64
STRUCTURAL = ("params_total", "params_decoder", "params_attention", "params_ffn", "flops", "n_layers")


def configs(n: int = N_ARCHS) -> dict[str, dict]:
    """``{key: config.json dict}``: GPT-2 and LLaMA in turn, depth 1..5 and width 32..128 varied by a fixed
    pattern (head width 16), MLP 4× wide for GPT-2 and 8/3× (rounded to 16) for LLaMA; no dropout."""
    out = {}
    for i in range(n):
        layers, width = 1 + (i * 3) % 5, 32 * (1 + (i * 7 // 2) % 4)
        if i % 2 == 0:
            out[f"gpt2-{i:02d}"] = {"model_type": "gpt2", "n_layer": layers, "n_embd": width, "n_head": width // 16,
                                    "n_inner": 4 * width, "n_positions": POSITIONS, "vocab_size": VOCAB,
                                    "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}
        else:
            out[f"llama-{i:02d}"] = {"model_type": "llama", "num_hidden_layers": layers, "hidden_size": width,
                                     "num_attention_heads": width // 16, "num_key_value_heads": width // 16,
                                     "intermediate_size": 16 * round(width * 8 / 3 / 16),
                                     "max_position_embeddings": POSITIONS, "vocab_size": VOCAB,
                                     "tie_word_embeddings": True}
    return out


def make_set(root: str | Path = HERE / "set", *, n_archs: int = N_ARCHS, steps: int = STEPS, batch_size: int = BATCH,
             seq_len: int = SEQ_LEN) -> pd.DataFrame:
    """Write the configs and train every architecture; returns (and writes) ``scores.csv``."""
    root = Path(root)
    for key, config in configs(n_archs).items():
        (root / key).mkdir(parents=True, exist_ok=True)
        atomic_write_text(root / key / "config.json", json.dumps(config, indent=1) + "\n")
    (root / "scores.csv").unlink(missing_ok=True)
    bench = benchmarks.get(root)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = [{"arch": key, "val_loss": train(bench, i, steps, batch_size, seq_len)}
                for i, key in enumerate(bench.arch_keys)]
    finally:
        torch.set_num_threads(threads)
    scores = pd.DataFrame(rows)
    atomic_write_text(root / "scores.csv", scores.to_csv(index=False, float_format="%.6f"))
    return scores


def train(bench, i: int, steps: int, batch_size: int, seq_len: int) -> float:
    """Validation loss of architecture ``i`` after ``steps`` AdamW steps from its seed-0 initialisation."""
    start = time.perf_counter()
    model = bench.build(i, 0).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    for step in range(1, steps + 1):
        ids = text.gpt2_batch(batch_size, seq_len, seed=step)["input_ids"]
        optimizer.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        losses = [model(input_ids=ids, labels=ids).loss.item()
                  for ids in (text.gpt2_batch(batch_size, seq_len, seed=w)["input_ids"] for w in VALID_WINDOWS)]
    loss = sum(losses) / len(losses)
    print(f"{bench.arch_keys[i]}: {steps} steps, val_loss {loss:.4f} ({time.perf_counter() - start:.1f} s)")
    return loss


def main(argv: list[str] | None = None) -> int:
    """Make (or reuse) the set, then extract → search → evaluate → rank with the ``lpzero`` CLI."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default=str(HERE / "set"), help="config folder (default: examples/.../set)")
    parser.add_argument("--out", default="runs/bring_your_own", help="runs and tables")
    parser.add_argument("--reuse", action="store_true", help="keep the set's configs and scores.csv")
    parser.add_argument("--n-archs", type=int, default=N_ARCHS)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--batch-size", default=None, help="extraction batch (default: the benchmark's, 4)")
    parser.add_argument("--seq-len", default=None, help="extraction length (default: min(128, positions))")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--population", default="80")
    parser.add_argument("--iterations", default="1000")
    args = parser.parse_args(argv)
    if not args.reuse:
        make_set(args.set, n_archs=args.n_archs, steps=args.steps)
    out = Path(args.out)
    best = str(out / "search" / "best.json")
    cache = ["--benchmark", args.set, "--target", "val_loss", "--lower-is-better"]
    cache += [v for flag, value in (("--batch-size", args.batch_size), ("--seq-len", args.seq_len)) if value
              for v in (flag, value)]
    commands = [
        ["extract", *cache, "--workers", "1"] + (["--no-baselines"] if args.no_baselines else []),
        ["search", *cache, "--out", str(out / "search"), "--quiet", "--population", args.population,
         "--iterations", args.iterations],
        ["evaluate", *cache, "--proxy", best, "--out", str(out / "heldout"),
         *(v for name in STRUCTURAL for v in ("--baseline", name))],
        ["rank", *cache, "--proxy", best, "--out", str(out / "ranks.csv")],
    ]
    for command in commands:
        print("$ lpzero " + " ".join(command))
        code = lpzero(command)
        if code:
            return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
