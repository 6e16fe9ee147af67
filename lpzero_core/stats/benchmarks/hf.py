"""Any folder of Hugging Face ``config.json`` files as a benchmark, with proxy sites found generically.

Folder
------
One architecture per sub-folder holding a transformers ``config.json`` (key = the sub-folder name) or per
``<key>.json`` file at the top; keys are sorted with digit runs compared as numbers. Optional ``scores.csv``: column
``arch`` (the keys) and the score column ``target`` (default ``score``), optionally ``split`` (rows ``search`` form
the search split; without the column, ⌊n/4⌋ of the n scored architectures drawn by ``default_rng(0)``, as for
LTS, but at least 3, the fewest a rank correlation takes, where n > 3).
``target`` is the score oriented higher = better: the score itself, or its negation with ``higher_is_better=False``
(``target_name`` then ``-<column>``). Architectures without a score (or a folder without ``scores.csv``) have a NaN
target: they are ranked and scored, never searched on, and correlations over them are NaN. Identity
(``Benchmark.source``): the resolved folder, the sha256 of every config and ``scores.csv``, the loader options.

Models
------
``AutoConfig.for_model(**config.json)`` then ``AutoModelForMaskedLM.from_config`` when transformers has a masked-LM
class for the model type (BERT, RoBERTa, …), else ``AutoModelForCausalLM.from_config`` (GPT-2, LLaMA, …), always
with ``attn_implementation="eager"`` (the other implementations never form the attention probabilities), after
``torch.manual_seed(arch_seed(seed, i))``, in eval mode (dropout off: no protocol prescribes it for these sets).
Batch: the project's offline text (:mod:`lpzero_core.stats.text`): GPT-2 byte-level BPE ids for causal models,
BBC WordPiece ids for masked ones (each config's ``vocab_size`` must hold them). Loss: the model's own loss, causal
LM (``labels = input_ids``, shifted inside the model) or masked LM (15 % of the real tokens, every
⌈1/0.15⌉-th chosen by a seeded permutation, replaced by ``[MASK]``; loss on those only).
Sequence length: ``min(128, smallest max_position_embeddings)``, batch 4; a shorter length is announced with a
warning.

Proxy sites (generic; ``sites(model)``, per-site lists in block order)
---------------------------------------------------------------------
Blocks: the first ``nn.ModuleList`` (in module order) with ``num_hidden_layers`` entries. The attention of a block:
its innermost module whose class name ends in ``Attention``; with eager attention it returns
``(output, probabilities)``. ``build`` adds two parameter-free ``nn.Identity`` taps to it, so that both tensors are
forward outputs of modules, as the extraction's hooks need: ``attention.probabilities`` (called by a forward hook
on the attention's second output) and ``attention.block_input`` (a forward pre-hook passes the attention's
``hidden_states`` through it).

========  ========================================================================================================
input     modules (tensor)
========  ========================================================================================================
act       activation modules (``torch.nn`` activations, ``transformers.activations``) of a block outside its
          attention: the MLP non-linearity (GPT-2 ``mlp.act``, LLaMA ``mlp.act_fn``); forward outputs
head      query projections: ``nn.Linear``/``Conv1D`` of the attention named ``q_proj``, ``query``, ``q``, ``q_lin``
          or ``wq``; where there is none (GPT-2's fused ``c_attn``), ``attention.block_input``: the attention's input
softmax   ``attention.probabilities``: the attention probabilities (B, H, T, T)
weight    ``.weight`` of every ``nn.Linear`` and ``Conv1D`` in the blocks, in module order
grad      ``.weight.grad`` of those, after backward
jacobian  d loss / d output of ``model.get_input_embeddings()`` (the token embeddings)
========  ========================================================================================================

Descriptors (counted on a model built on the meta device): ``n_layers``; ``hidden`` (``hidden_size``);
``params_total`` (unique parameters); ``params_embedding`` (``nn.Embedding`` tables plus an output layer not tied
to them); ``params_decoder`` = total − embedding; ``params_attention`` (parameters inside the blocks' outermost
``…Attention`` modules); ``params_ffn`` (the block linears outside them); ``flops`` / ``flops_decoder``: forward
multiply-adds of one sequence of T = ``default_seq_len`` tokens, decoder = T·Σ(block linear weights) + L·2·T²·hidden
(QKᵀ and PV over the full T × T), total = decoder + T·(output layer weights).
"""
from __future__ import annotations

import functools
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from lpzero_core.errors import LPZeroError
from lpzero_core.seeds import arch_seed
from lpzero_core.stats.benchmarks.base import Benchmark, Sites, content_hash, natural_key

VARIANT = "hf"
DEFAULT_SEQ_LEN, DEFAULT_BATCH = 128, 4
QUERY_NAMES = ("q_proj", "query", "q", "q_lin", "wq")
MASK_FRACTION = 0.15


def config_files(root: Path) -> dict[str, Path]:
    """``{key: config file}`` of a folder: ``<key>/config.json`` and top-level ``<key>.json``, naturally sorted."""
    found = {f.parent.name: f for f in root.glob("*/config.json")}
    found.update({f.stem: f for f in root.glob("*.json")})
    return dict(sorted(found.items(), key=lambda kv: natural_key(kv[0])))


def load(path: str | Path, *, target: str | None = None, higher_is_better: bool | None = None) -> HFBenchmark:
    """The benchmark of a Hugging Face config folder (module docstring); one-line errors for a folder without
    configs, a config transformers cannot read, and a ``scores.csv`` without the columns or with unknown keys."""
    root = Path(path).expanduser()
    files = config_files(root)
    if not files:
        raise LPZeroError(f"{root}: no Hugging Face configs (expected <arch>/config.json or <arch>.json)")
    empty = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")
                   and not (d / "config.json").is_file())
    if empty:
        raise LPZeroError(f"{root / empty[0]}: an architecture folder without config.json; add its config or move "
                          f"the folder out of the benchmark")
    configs = {key: _read_config(f) for key, f in files.items()}  # checked here: one line per bad file
    keys = list(configs)
    column, higher = target or "score", True if higher_is_better is None else higher_is_better
    scores_file = root / "scores.csv"
    scores, search_keys = _read_scores(scores_file, column, keys) if scores_file.is_file() else ({}, None)
    values = np.array([scores.get(k, np.nan) for k in keys], dtype=np.float64)
    scored = np.flatnonzero(np.isfinite(values))
    if search_keys is None:
        size = max(len(scored) // 4, min(3, len(scored) - 1))
        search_ids = np.sort(np.random.default_rng(0).choice(scored, size=size, replace=False))
    else:
        search_ids = np.array([i for i, k in enumerate(keys) if k in search_keys], dtype=int)
    positions = min(_positions(c) for c in configs.values())
    seq_len = min(DEFAULT_SEQ_LEN, positions)
    name = f"hf-{root.resolve().name}"
    if seq_len < DEFAULT_SEQ_LEN:
        warnings.warn(f"{name}: sequence length {seq_len} (the models' positions), not the default "
                      f"{DEFAULT_SEQ_LEN}", stacklevel=2)
    options = {"target": column, "higher_is_better": higher}
    hashed = list(files.values()) + ([scores_file] if scores_file.is_file() else [])
    return HFBenchmark(
        name=name, variant=VARIANT, arch_keys=keys, configs=[json.loads(f.read_text()) for f in files.values()],
        target=values if higher else -values, target_name=column if higher else f"-{column}",
        strata=np.array([f"{c.model_type}-L{c.num_hidden_layers}" for c in configs.values()]),
        search_ids=search_ids.astype(int), default_batch_size=DEFAULT_BATCH, default_seq_len=seq_len,
        source={"path": str(root.resolve()), "sha256": content_hash(root, hashed), "options": options},
        extra={"config_paths": [str(f) for f in files.values()]},
    )


@dataclass
class HFBenchmark(Benchmark):
    """Architectures of a Hugging Face config folder; ``extra["config_paths"]`` names their files."""

    def __post_init__(self):
        from transformers import AutoConfig

        self.hf_configs = [AutoConfig.for_model(**c) for c in self.configs]
        self.masked = [_has_masked_lm(c.model_type) for c in self.hf_configs]
        self._descriptors: dict[int, dict] = {}
        if any(self.masked) and not all(self.masked):
            raise LPZeroError(f"{self.name}: mixes masked-LM and causal-LM model types; one batch serves one kind")

    def _model(self, i: int) -> nn.Module:
        from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

        auto = AutoModelForMaskedLM if self.masked[i] else AutoModelForCausalLM
        try:
            return auto.from_config(self.hf_configs[i], attn_implementation="eager")
        except Exception as err:  # any construction failure of a user config is reported as one line
            raise LPZeroError(f"{self.extra['config_paths'][i]}: transformers cannot build this config "
                              f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None

    def build(self, i: int, seed: int = 0) -> nn.Module:
        torch.manual_seed(arch_seed(seed, i))
        return add_taps(self._model(i)).eval()

    def batch(self, batch_size: int | None = None, seq_len: int | None = None,
              seed: int = 0) -> dict[str, torch.Tensor]:
        """Causal: ``text.gpt2_batch`` ids; masked: ``text.bert_batch`` with ``labels`` (module docstring)."""
        from lpzero_core.stats import text

        batch_size, seq_len = batch_size or self.default_batch_size, seq_len or self.default_seq_len
        positions = min(_positions(c) for c in self.hf_configs)
        if seq_len > positions:
            raise LPZeroError(f"seq_len={seq_len} exceeds the {positions} positions of these models; use ≤ {positions}")
        if self.masked[0]:
            batch = _masked(text.bert_batch(batch_size, seq_len, seed), text.bert_tokenizer().mask_token_id, seed)
        else:
            ids = text.gpt2_batch(batch_size, seq_len, seed)["input_ids"]
            batch = {"input_ids": ids, "labels": ids.clone()}
        vocab = min(c.vocab_size for c in self.hf_configs)
        if int(batch["input_ids"].max()) >= vocab:
            raise LPZeroError(f"{self.name}: the offline batch has token ids up to {int(batch['input_ids'].max())} "
                              f"but a config has vocab_size {vocab}; give every config the tokenizer's vocabulary")
        return batch

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The model's own LM / MLM loss (mean over the labelled tokens)."""
        return model(**batch).loss

    def sites(self, model: nn.Module) -> Sites:
        return generic_sites(model)

    def descriptors(self, i: int) -> dict[str, float]:
        """Structure, parameter counts and FLOPs (module docstring), from a model on the meta device (memoised)."""
        if i not in self._descriptors:
            self._descriptors[i] = self._count(i)
        return self._descriptors[i]

    def _count(self, i: int) -> dict[str, float]:
        with torch.device("meta"):
            model = self._model(i)
        blocks, T = _blocks(model), self.default_seq_len
        total = _count(model.parameters())
        embedding = {id(p): p for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
        output = model.get_output_embeddings()
        output_weights = output.weight.numel() if output is not None else 0
        if output is not None and id(output.weight) not in embedding:
            embedding |= {id(p): p for p in output.parameters()}
        outer = [next(m for m in b.modules() if type(m).__name__.endswith("Attention")) for b in blocks]
        attention = _count(p for a in outer for p in a.parameters())
        inside = {id(m) for a in outer for m in a.modules()}
        ffn = _count(p for b in blocks for m in b.modules() if _is_linear(m) and id(m) not in inside
                     for p in m.parameters())
        hidden = int(self.hf_configs[i].hidden_size)
        decoder_flops = T * sum(m.weight.numel() for b in blocks for m in b.modules() if _is_linear(m)) \
            + len(blocks) * 2 * T * T * hidden
        return {"n_layers": len(blocks), "hidden": hidden, "params_total": total,
                "params_embedding": _count(embedding.values()),
                "params_decoder": total - _count(embedding.values()), "params_attention": attention,
                "params_ffn": ffn, "flops": decoder_flops + T * output_weights, "flops_decoder": decoder_flops}

    def param_check(self, i: int) -> dict[str, tuple[int, int]]:
        raise LPZeroError(f"{self.name}: a config folder has no published parameter counts to check")


# -- generic site discovery --------------------------------------------------------------------------------------
def add_taps(model: nn.Module) -> nn.Module:
    """``model`` with the two parameter-free taps of every block's attention (module docstring:
    ``attention.probabilities``, and ``attention.block_input`` where the attention has no query projection)."""
    for block in _blocks(model):
        attention = _attention(block)
        attention.add_module("probabilities", nn.Identity())
        attention.register_forward_hook(_tap_probabilities)
        if _query(attention) is None:
            attention.add_module("block_input", nn.Identity())
            attention.register_forward_pre_hook(_tap_input, with_kwargs=True)
    return model


def generic_sites(model: nn.Module) -> Sites:
    """The proxy sites of a model built with :func:`add_taps` (module docstring's table)."""
    blocks = _blocks(model)
    attentions = [_attention(b) for b in blocks]
    act, linear = [], []
    for block, attention in zip(blocks, attentions):
        inside = {id(m) for m in attention.modules()}
        act += [m for m in block.modules() if _is_activation(m) and id(m) not in inside]
        linear += [m for m in block.modules() if _is_linear(m)]
    head = [_query(a) or a.block_input for a in attentions]
    return Sites(act=act, head=head, softmax=[a.probabilities for a in attentions], linear=linear,
                 embedding=model.get_input_embeddings())


def _blocks(model: nn.Module) -> nn.ModuleList:
    n = model.config.num_hidden_layers
    found = next((m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) == n), None)
    if found is None:
        raise LPZeroError(f"{type(model).__name__}: no list of {n} blocks (num_hidden_layers) among its modules")
    return found


def _attention(block: nn.Module) -> nn.Module:
    named = [m for m in block.modules() if type(m).__name__.endswith("Attention")]
    inner = [m for m in named if not any(o is not m and type(o).__name__.endswith("Attention") for o in m.modules())]
    if not inner:
        raise LPZeroError(f"{type(block).__name__}: no attention module (class name ending in 'Attention')")
    return inner[0]


def _query(attention: nn.Module) -> nn.Module | None:
    return next((getattr(attention, n) for n in QUERY_NAMES if _is_linear(getattr(attention, n, None))), None)


def _is_linear(module) -> bool:
    from transformers.pytorch_utils import Conv1D

    return isinstance(module, (nn.Linear, Conv1D))


def _is_activation(module: nn.Module) -> bool:
    return type(module).__module__ in ("torch.nn.modules.activation", "transformers.activations")


def _tap_probabilities(attention: nn.Module, args, output) -> None:
    if not isinstance(output, tuple) or len(output) < 2 or output[1] is None:
        raise LPZeroError(f"{type(attention).__name__} returned no attention probabilities under eager attention")
    attention.probabilities(output[1])


def _tap_input(attention: nn.Module, args, kwargs):
    if args:
        return (attention.block_input(args[0]), *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": attention.block_input(kwargs["hidden_states"])}


# -- helpers -----------------------------------------------------------------------------------------------------
def _count(params) -> int:
    return sum(p.numel() for p in {id(p): p for p in params}.values())


def _positions(config) -> int:
    return int(getattr(config, "max_position_embeddings", None) or DEFAULT_SEQ_LEN)


@functools.cache
def _has_masked_lm(model_type: str) -> bool:
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    return model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def _masked(batch: dict[str, torch.Tensor], mask_id: int, seed: int) -> dict[str, torch.Tensor]:
    """Every ⌈1/MASK_FRACTION⌉-th real token (first and last of each row excluded: [CLS], [SEP]) in a seeded order
    becomes ``mask_id``; ``labels`` hold the original ids there and -100 elsewhere."""
    ids = batch["input_ids"]
    real = batch["attention_mask"].bool().clone()
    real[:, 0] = False
    real[torch.arange(len(ids)), batch["attention_mask"].sum(1) - 1] = False
    order = torch.randperm(ids.numel(), generator=torch.Generator().manual_seed(seed)).view(ids.shape)
    chosen = real & (order % round(1 / MASK_FRACTION) == 0)
    return {**batch, "input_ids": ids.masked_fill(chosen, mask_id), "labels": ids.masked_fill(~chosen, -100)}


def _read_config(path: Path):
    from transformers import AutoConfig

    try:
        data = json.loads(path.read_text())
        return AutoConfig.for_model(**data)
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise LPZeroError(f"{path}: transformers cannot read this config ({str(err).splitlines()[0]})") from None


def _read_scores(path: Path, column: str, keys: list[str]) -> tuple[dict[str, float], set[str] | None]:
    """``{arch: score}`` and the ``search`` keys (None without a ``split`` column) of ``scores.csv``."""
    try:
        table = pd.read_csv(path, dtype={"arch": str})
    except (OSError, ValueError) as err:
        raise LPZeroError(f"{path}: cannot read it as CSV ({str(err).splitlines()[0]})") from None
    if "arch" not in table.columns or column not in table.columns:
        raise LPZeroError(f"{path}: needs columns 'arch' and {column!r} (has {', '.join(map(str, table.columns))}); "
                          f"name the score column with --target")
    unknown = sorted(set(table["arch"]) - set(keys))
    if unknown:
        raise LPZeroError(f"{path}: {len(unknown)} unknown architecture(s) ({', '.join(unknown[:3])}); the keys "
                          f"are the config folder/file names")
    duplicated = sorted(set(table.loc[table["arch"].duplicated(), "arch"]))
    if duplicated:
        raise LPZeroError(f"{path}: architecture {duplicated[0]!r} has {int((table['arch'] == duplicated[0]).sum())} "
                          f"rows; give each architecture one score")
    values = pd.to_numeric(table[column], errors="coerce")
    bad = table.loc[table[column].notna() & ~np.isfinite(values), "arch"]  # text (coerced to NaN), ±inf
    if len(bad):
        row = table.loc[bad.index[0]]
        raise LPZeroError(f"{path}: {column}={row[column]!r} of architecture {row['arch']!r} is not a finite number "
                          f"(leave the cell empty for an unscored architecture)")
    scores = dict(zip(table["arch"], values.astype(float)))
    search = set(table.loc[table["split"] == "search", "arch"]) if "split" in table.columns else None
    return scores, search
