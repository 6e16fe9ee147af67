"""LLaMA-architecture causal LMs: load and validate one, or build the tiny offline stand-in; local text.

Accepted models
---------------
The parents of :func:`lpzero_core.stats.parents.load_parent` (the offline default ``"smollm2"``, or any local /
hub LLaMA-like checkpoint): an ``AutoModelForCausalLM`` whose ``config.model_type`` is in
:data:`lpzero_core.stats.parents.LLAMA_LIKE` and whose decoder layers have
the LLaMA gated MLP ``down_proj(act(gate_proj(x)) * up_proj(x))`` (``model.model.layers[i].mlp``). Anything else
is an :class:`~lpzero_core.errors.LPZeroError`.

Local text (offline, no download)
---------------------------------
The BBC train / held-out splits of :mod:`lpzero_core.stats.parents` (223 held-out articles: the local lm-eval
tasks are built from them; the 2002 train articles: tiny-model training, calibration batches, LoRA recovery).

Tiny model (:func:`tiny_model`)
-------------------------------
A LLaMA of :data:`TINY` (4 layers, hidden 64, MLP 256, 4 heads, tied embeddings, context 256) with a byte-level
BPE tokenizer of 2048 ids trained on the train split (``tokenizers``' BPE trainer; deterministic across runs).
The small vocabulary keeps the output layer, which dominates a model this small, 25x cheaper than GPT-2's 50257.
Training: ``torch.manual_seed(seed)`` before construction, AdamW (lr 3e-3, no weight decay), ``steps`` steps of
``batch_size`` random windows of ``seq_len`` tokens from the train stream (windows drawn by a
``torch.Generator`` seeded with ``seed``), next-token loss. The result is saved once (model + tokenizer, atomic
directory rename) under ``<cache_root>/llama-tiny-<key>`` and reloaded from there; the key hashes the settings.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from lpzero_core.errors import LPZeroError
from lpzero_core.stats.parents import (
    bbc_split,
    check_llama_like,
    load_parent,
    text_windows,
    train_stream,
)

MLP_PROJECTIONS = ("gate_proj", "up_proj", "down_proj")
ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
EOS = "<|endoftext|>"
#: the tiny offline model and its training run (the cache key hashes this dict, the seed and the steps)
TINY = {"vocab_size": 2048, "hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 4,
        "num_attention_heads": 4, "max_position_embeddings": 256, "batch_size": 16, "seq_len": 64, "lr": 3e-3}


def load_model(name: str, device: str = "cpu", dtype: str | torch.dtype | None = None,
               attn_implementation: str = "sdpa"):
    """``(model, tokenizer)`` of a LLaMA-like parent, validated: ``"smollm2"`` (the offline default, a GGUF
    de-quantised to float32) or a local path / hub id (:func:`lpzero_core.stats.parents.load_parent`)."""
    model, tokenizer = load_parent(name, device, dtype, attn_implementation)
    return validate(model), tokenizer


def validate(model: nn.Module) -> nn.Module:
    """Raise :class:`LPZeroError` unless ``model`` is a LLaMA-like causal LM with gated MLPs; return it."""
    config = getattr(model, "config", None)
    check_llama_like(getattr(config, "model_type", type(model).__name__), type(model).__name__)
    for i, layer in enumerate(decoder_layers(model)):
        if not all(isinstance(getattr(layer.mlp, name, None), nn.Linear) for name in MLP_PROJECTIONS):
            raise LPZeroError(f"layer {i} of {type(model).__name__} has no gate/up/down MLP projections; "
                              f"only the LLaMA gated MLP can be sliced")
    return model


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The decoder layers ``model.model.layers`` of a causal LM."""
    return list(model.model.layers)


# -- tiny offline model ---------------------------------------------------------------------------------------
def tiny_model(seed: int = 0, steps: int = 200, device: str = "cpu"):
    """``(model, tokenizer)``: the tiny LLaMA trained ``steps`` steps on the BBC train split (cached on disk)."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    from lpzero_core.stats.cache import cache_root

    key = hashlib.sha256(json.dumps({**TINY, "seed": seed, "steps": steps}, sort_keys=True).encode()).hexdigest()
    folder = cache_root() / f"llama-tiny-{key[:16]}"
    if not (folder / "config.json").is_file():
        _save_atomic(*_train_tiny(seed, steps), folder)
    model = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32)
    return model.to(device).eval(), AutoTokenizer.from_pretrained(folder)


@functools.cache
def _bbc_bpe(vocab_size: int):
    """Byte-level BPE (GPT-2 style pre-tokeniser) trained on the BBC train split; EOS is id 0."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(bbc_split()[0], trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=EOS, eos_token=EOS, unk_token=EOS,
                                   pad_token=EOS)


def _train_tiny(seed: int, steps: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _bbc_bpe(TINY["vocab_size"])
    config = LlamaConfig(**{k: TINY[k] for k in ("vocab_size", "hidden_size", "intermediate_size",
                                                 "num_hidden_layers", "num_attention_heads",
                                                 "max_position_embeddings")},
                         tie_word_embeddings=True, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    stream, generator = train_stream(tokenizer), torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=TINY["lr"], weight_decay=0.0)
    model.train()
    for _ in range(steps):
        ids = text_windows(stream, TINY["batch_size"], TINY["seq_len"], generator)
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return model.eval(), tokenizer


def _save_atomic(model, tokenizer, folder: Path) -> None:
    """Save into a temporary sibling folder, then rename it into place (a present folder is complete)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        os.replace(tmp, folder)
    except OSError:  # another process finished the same folder first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
