"""lm-evaluation-harness evaluation of in-memory models, local offline tasks, LoRA recovery, and the whole run.

Tasks
-----
A task is an lm-eval hub task name (:data:`COMMONSENSE` + ``wikitext``: the GPU path, needs the hub datasets),
the name of a shipped local task (:data:`LOCAL_TASKS`, in ``lpzero_core/llama/tasks/``), or a path to a task
YAML. YAML tasks are read here (:func:`resolve_task`) and handed to lm-eval as inline config dicts (which
``simple_evaluate`` / ``TaskManager.load`` accept), with relative ``dataset_kwargs.data_files`` resolved against the
YAML's folder. A missing YAML or data file, or an unknown hub task name, is an :class:`LPZeroError`.

Shipped local tasks (built by :func:`build_local_tasks` from the held-out BBC articles, seed 0):

* ``lpzero_bbc_ppl`` (``loglikelihood_rolling``, the offline stand-in for WikiText-2): the first
  :data:`PPL_WORDS` words of the first :data:`N_PPL` held-out articles; metrics word/byte perplexity, bits per byte.
* ``lpzero_bbc_cloze`` (``multiple_choice``, 4 choices, a HellaSwag-like sentence completion): for each following
  held-out article, its first body sentence of 10-30 words is cut after ``⌈n/2⌉`` words; the choices are its true
  ending and the endings of 3 other items (uniformly drawn), in random order; metrics acc, acc_norm.

Evaluation: ``lm_eval.simple_evaluate`` with an ``HFLM`` wrapping the in-memory model and tokenizer, zero-shot,
no bootstrap (``bootstrap_iters=0``), seeds fixed by ``seed``. Every metric lm-eval reports (stderr excluded)
becomes a column ``task/metric``.

LoRA recovery (optional, off by default: ``lora_steps=0``)
-----------------------------------------------------------
peft LoRA of rank ``r`` (default 8, alpha 2r, no dropout) on each sub-network's ``gate_proj``, ``up_proj`` and
``down_proj`` (the tensors a sub-network owns; attention and embeddings are shared with the full model and stay
frozen), AdamW at ``lora_lr`` (default 2e-4), ``lora_steps`` steps of 8 train-split windows of 128 tokens, next-token
loss; the adapters are then merged. The budget, ``lora_steps · 8 · 128`` training tokens per sub-network, is the
table's ``lora_tokens`` column. The full model is never fine-tuned.

GPU path: a real LLaMA-7B
-------------------------
::

    python -c "from lpzero_core.llama import run; print(run('huggyllama/llama-7b', budget=0.75, device='cuda', \\
        population=20, iterations=100, n_random=3, output_dir='runs/llama7b').to_markdown())"

(``tasks`` defaults to the commonsense suite + ``wikitext`` for a non-tiny model.) Memory, bf16: the model
≈ 13.5 GB; while scoring, one sub-network's sliced MLP copy (≤ 8.7 GB at 100 %), the gradients of its projection
weights (≤ 13 GB) and the activations of the 4 x 64-token calibration batch (< 1 GB): ≈ 36 GB peak; lm-eval
adds its batches (``eval_batch_size``). A 40 GB GPU is tight, a 48 GB or 80 GB GPU is comfortable. These are
arithmetic estimates, not measurements: the 7B path has not been run in this repository.
"""
from __future__ import annotations

import json
import logging
import math
import re
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from lpzero_core.errors import LPZeroError
from lpzero_core.files import atomic_write_text
from lpzero_core.llama.model import load_model, tiny_model
from lpzero_core.llama.search import DEFAULT_PROXY, Budget, guide, random_configs, score, search
from lpzero_core.llama.space import LONAS_RATIOS, SubnetSpace
from lpzero_core.stats.extract import torch_threads
from lpzero_core.stats.parents import bbc_split, calibration_batch, text_windows, train_stream
from lpzero_core.workbench.evaluation import to_markdown

TASK_DIR = Path(__file__).resolve().parent / "tasks"
LOCAL_TASKS = ("lpzero_bbc_cloze", "lpzero_bbc_ppl")
COMMONSENSE = ("boolq", "piqa", "social_iqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa")
N_PPL, PPL_WORDS, N_CLOZE = 40, 100, 60
#: LoRA recovery batches: windows per step and tokens per window
LORA_BATCH, LORA_SEQ_LEN = 8, 128


# -- tasks ----------------------------------------------------------------------------------------------------
def build_local_tasks(directory: Path = TASK_DIR, seed: int = 0) -> None:
    """Write ``bbc_ppl.jsonl`` and ``bbc_cloze.jsonl`` (the data of :data:`LOCAL_TASKS`) into ``directory``."""
    heldout = bbc_split()[1]
    ppl = [{"text": " ".join(doc.split()[:PPL_WORDS])} for doc in heldout[:N_PPL]]
    items = []
    for doc in heldout[N_PPL:]:
        body = " ".join(doc.split("\n", 1)[1].split())  # drop the title line, normalise whitespace
        words = next((s.split() for s in re.split(r"(?<=[.!?])\s+", body) if 10 <= len(s.split()) <= 30), None)
        if words and len(items) < N_CLOZE:
            cut = math.ceil(len(words) / 2)
            items.append((" ".join(words[:cut]), " ".join(words[cut:])))
    rng = np.random.default_rng(seed)
    cloze = []
    for i, (context, ending) in enumerate(items):
        others = rng.choice([j for j in range(len(items)) if j != i], 3, replace=False)
        endings = [ending, *(items[j][1] for j in others)]
        order = rng.permutation(4)
        cloze.append({"context": context, "endings": [endings[k] for k in order],
                      "label": int(np.flatnonzero(order == 0)[0])})
    for name, rows in (("bbc_ppl.jsonl", ppl), ("bbc_cloze.jsonl", cloze)):
        atomic_write_text(Path(directory) / name, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def resolve_task(task: str) -> str | dict:
    """A hub task name as is; a local task name or YAML path as an inline config dict with absolute data files.

    The YAML is read with ``yaml.safe_load`` (plain YAML: no ``!function`` or ``include``); relative
    ``dataset_kwargs.data_files`` are resolved against the YAML's folder (lm-eval itself would resolve them
    against the working directory).
    """
    path = TASK_DIR / f"{task}.yaml" if task in LOCAL_TASKS else Path(task)
    if path.suffix not in (".yaml", ".yml"):
        return task
    if not path.is_file():
        raise LPZeroError(f"task file {path} not found; pass an existing lm-eval task YAML, a shipped local task "
                          f"({', '.join(LOCAL_TASKS)}) or an lm-eval task name")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise LPZeroError(f"task file {path} is not plain YAML ({type(err).__name__}); local tasks take no "
                          f"!function or include") from err
    if not isinstance(config, dict) or "task" not in config:
        raise LPZeroError(f"task file {path} has no 'task' key; it is not an lm-eval task config")
    files = (config.get("dataset_kwargs") or {}).get("data_files") or {}
    for split, name in files.items():
        data = path.parent / name
        if not data.is_file():
            raise LPZeroError(f"task {config['task']}: data file {data} not found (split {split}); "
                              f"restore it or rebuild the local tasks with build_local_tasks()")
        files[split] = str(data)
    return config


def evaluate(model, tokenizer, tasks, batch_size: int | str = 8, limit: int | float | None = None,
             seed: int = 0) -> dict[str, float]:
    """``{"task/metric": value}`` of ``model`` on ``tasks`` through ``lm_eval.simple_evaluate``.

    ``tasks``: hub task names, local task names or YAML paths (see :func:`resolve_task`), or config dicts.
    """
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    specs = [resolve_task(t) if isinstance(t, str) else t for t in tasks]
    hub = [s for s in specs if isinstance(s, str)]
    with _quiet("lm_eval"):
        manager = TaskManager(include_defaults=bool(hub))
        unknown = [t for t in hub if t not in manager.all_tasks]
        if unknown:
            raise LPZeroError(f"unknown lm-eval task(s) {', '.join(unknown)}; list them with `lm_eval ls tasks`, "
                              f"or pass a task YAML path")
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
        out = simple_evaluate(lm, tasks=specs, limit=limit, bootstrap_iters=0, log_samples=False,
                              task_manager=manager, random_seed=seed, numpy_random_seed=seed,
                              torch_random_seed=seed, fewshot_random_seed=seed)
    return {f"{task}/{metric.split(',')[0]}": float(value)
            for task, metrics in out["results"].items() for metric, value in metrics.items()
            if "," in metric and "_stderr" not in metric and isinstance(value, (int, float))}


@contextmanager
def _quiet(name: str):
    """Only errors from logger ``name`` inside the block."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


# -- LoRA recovery --------------------------------------------------------------------------------------------
def lora_recover(model, stream: torch.Tensor, steps: int, lr: float = 2e-4, rank: int = 8, seed: int = 0):
    """Fine-tune LoRA adapters on the MLP projections for ``steps`` steps, merge them, return the model.

    The ``requires_grad`` flags of ``model`` (which peft clears, and which a sub-network shares with its parent)
    are restored afterwards.
    """
    from peft import LoraConfig, get_peft_model

    flags = [(p, p.requires_grad) for p in model.parameters()]
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0,
                        target_modules=["gate_proj", "up_proj", "down_proj"])
    torch.manual_seed(seed)
    peft_model = get_peft_model(model, config)
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=lr)
    generator = torch.Generator().manual_seed(seed)
    peft_model.train()
    for _ in range(steps):
        ids = text_windows(stream, LORA_BATCH, LORA_SEQ_LEN, generator).to(model.device)
        peft_model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    merged = peft_model.merge_and_unload().eval()
    for p, flag in flags:
        p.requires_grad_(flag)
    return merged


# -- the whole setting ----------------------------------------------------------------------------------------
def run(model: str = "tiny", budget: float = 0.75, *, budget_of: str = "mlp", ratios=LONAS_RATIOS,
        multiple: int = 32, proxy: str = DEFAULT_PROXY, population: int = 8, iterations: int = 16,
        n_random: int = 1, tasks=None, limit: int | float | None = None, calib_batch_size: int = 4,
        calib_seq_len: int = 64, lora_steps: int = 0, lora_rank: int = 8, lora_lr: float = 2e-4,
        eval_batch_size: int | str = 8, tiny_steps: int = 200, seed: int = 0, device: str = "cpu",
        dtype: str | None = None, threads: int | None = None,
        output_dir: str | Path | None = None) -> pd.DataFrame:
    """Search a sub-network with the proxy, evaluate it beside the baselines, return one table.

    Rows: ``full``, ``proxy`` (the search's best), ``uniform``, ``magnitude``, ``random-1`` … ``random-n``.
    Columns: ``variant, widths, mlp_fraction, params, proxy`` (``lora_tokens`` with LoRA recovery) then one column
    per ``task/metric``. ``model="tiny"`` is the offline tiny LLaMA (:func:`~lpzero_core.llama.model.tiny_model`,
    ``tiny_steps`` training steps) with the local tasks; any other value is a LLaMA-like checkpoint (path or hub
    id) with the commonsense suite + wikitext. ``threads`` sets torch's CPU threads for the call (``None``: as
    is; 1 is the fastest for the tiny model on a busy machine). With ``output_dir``, the table is also written
    there as ``llama_downstream.csv`` and ``llama_downstream.md``.
    """
    tasks = list(tasks or (LOCAL_TASKS if model == "tiny" else (*COMMONSENSE, "wikitext")))
    specs = [resolve_task(t) for t in tasks]  # fail on a missing task file before any model work
    with torch_threads(threads):
        parent, tokenizer = (tiny_model(seed, tiny_steps, device) if model == "tiny"
                             else load_model(model, device, dtype))
        proxy = guide(proxy)
        space = SubnetSpace(parent, ratios, multiple)
        limits = Budget(space, budget, budget_of)
        batch = calibration_batch(tokenizer, calib_batch_size, calib_seq_len, seed)
        result = search(space, proxy, batch, limits, population, iterations, seed)
        variants = {"full": space.full, "proxy": result.best, "uniform": limits.uniform(),
                    "magnitude": limits.magnitude(),
                    **{f"random-{k + 1}": g for k, g in enumerate(random_configs(limits, n_random, seed))}}
        stream = train_stream(tokenizer) if lora_steps else None
        rows = []
        for name, genes in variants.items():
            value = result.scores[genes] if genes in result.scores else score(space, genes, proxy, batch)
            net = parent if name == "full" else space.materialise(genes)
            lora = {}
            if lora_steps:
                lora = {"lora_tokens": 0 if name == "full" else lora_steps * LORA_BATCH * LORA_SEQ_LEN}
                if name != "full":
                    net = lora_recover(net, stream, lora_steps, lora_lr, lora_rank, seed)
            rows.append({"variant": name, "widths": space.describe(genes), "mlp_fraction": space.fraction(genes),
                         "params": space.params(genes), "proxy": value, **lora,
                         **evaluate(net, tokenizer, specs, eval_batch_size, limit, seed)})
    table = pd.DataFrame(rows)
    if output_dir is not None:
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "llama_downstream.csv", table.to_csv(index=False))
        atomic_write_text(out / "llama_downstream.md", to_markdown(table, digits=4) + "\n")
    return table

