"""LPZero's third setting: a zero-cost proxy guides the choice of a LLaMA sub-network, judged by lm-eval.

Pipeline (:func:`run`): load a LLaMA-like model (:mod:`.model`) → per-layer MLP width space with magnitude channel
ranking and real slicing (:mod:`.space`) → evolutionary search maximising the proxy under a parameter budget,
plus uniform / magnitude / random baselines (:mod:`.search`) → lm-evaluation-harness on the full model, the
proxy-chosen sub-network and the baselines, optional LoRA recovery (:mod:`.evaluate`) → one pandas table.

Offline (tests, CI, no GPU)::

    from lpzero_core.llama import run
    run("tiny", budget=0.75, threads=1)   # tiny BBC-trained LLaMA, local lm-eval tasks, CPU, under a minute

GPU, a real 7B (hub datasets for boolq … openbookqa and wikitext; ≈ 36 GB peak in bf16, see
:mod:`lpzero_core.llama.evaluate`)::

    run("huggyllama/llama-7b", budget=0.75, device="cuda", population=20, iterations=100, n_random=3,
        output_dir="runs/llama7b")
"""
from lpzero_core.llama.evaluate import (
    COMMONSENSE,
    LOCAL_TASKS,
    build_local_tasks,
    conclusion,
    evaluate,
    headline,
    lora_recover,
    resolve_task,
    run,
)
from lpzero_core.llama.model import load_model, tiny_model, validate
from lpzero_core.llama.search import DEFAULT_PROXY, Budget, proxy_inputs, random_configs, score, search
from lpzero_core.llama.space import LONAS_RATIOS, SubnetSpace
from lpzero_core.stats.parents import calibration_batch

__all__ = ["COMMONSENSE", "DEFAULT_PROXY", "LOCAL_TASKS", "LONAS_RATIOS", "Budget", "SubnetSpace",
           "build_local_tasks", "calibration_batch", "conclusion", "evaluate", "headline", "load_model", "lora_recover",
           "proxy_inputs", "random_configs", "resolve_task", "run", "score", "search", "tiny_model", "validate"]
