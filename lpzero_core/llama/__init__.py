"""LPZero's third setting: a zero-cost proxy chooses the MLP widths of a pretrained LLaMA's layers.

On a real parent, offline (:mod:`.downstream`, notebook 04, ``make downstream``): SmolLM2-135M, the
``smollm2-mlp`` benchmark's sub-networks; proxy-guided evolutionary searches against uniform, greedy, OWL, FLAP and
random allocations at fixed MLP budgets, judged on held-out perplexity and cloze accuracy::

    from lpzero_core.llama import downstream
    downstream.smollm2({"one_batch_loss": "one_batch_loss"}, budgets=(0.75,), windows=16)

Any LLaMA-like checkpoint through lm-evaluation-harness (:func:`run`): load it (:mod:`.model`) → per-layer MLP
width space with real slicing (:mod:`.space`) → evolutionary search maximising the proxy under a parameter budget,
plus uniform / importance-greedy / random baselines (:mod:`.search`) → lm-eval on the full model, the proxy-chosen
sub-network and the baselines, optional LoRA recovery (:mod:`.evaluate`) → one pandas table. GPU, a real 7B (hub
datasets for boolq … openbookqa and wikitext; ≈ 36 GB peak in bf16, see :mod:`lpzero_core.llama.evaluate`)::

    run("huggyllama/llama-7b", budget=0.75, device="cuda", population=20, iterations=100, n_random=3,
        output_dir="runs/llama7b")

``run("tiny")`` runs the same pipeline on the tiny BBC-trained LLaMA in under a minute: a test fixture (below
chance on the cloze task), from which no table or figure is made.
"""
from lpzero_core.llama.evaluate import (
    COMMONSENSE,
    LOCAL_TASKS,
    build_local_tasks,
    evaluate,
    lora_recover,
    resolve_task,
    run,
)
from lpzero_core.llama.model import load_model, tiny_model, validate
from lpzero_core.llama.search import DEFAULT_PROXY, Budget, proxy_inputs, random_configs, score, search
from lpzero_core.llama.space import LONAS_RATIOS, SubnetSpace
from lpzero_core.stats.parents import calibration_batch

__all__ = ["COMMONSENSE", "DEFAULT_PROXY", "LOCAL_TASKS", "LONAS_RATIOS", "Budget", "SubnetSpace",
           "build_local_tasks", "calibration_batch", "evaluate", "load_model", "lora_recover",
           "proxy_inputs", "random_configs", "resolve_task", "run", "score", "search", "tiny_model", "validate"]
