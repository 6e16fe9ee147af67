"""What every benchmark provides: architectures, ground truth, a model builder, a text batch and proxy sites.

Conventions shared by all benchmarks
------------------------------------
* ``target`` is oriented so that **higher = better** (perplexity targets are negated here, once).
* ``build(i, seed)`` returns a freshly initialised model whose weights depend only on ``(seed, i)``
  (``torch.manual_seed(seeds.arch_seed(seed, i))`` before construction), in the mode the benchmark's proxy protocol
  prescribes (train mode, dropout active, as in the original proxy scripts).
* ``loss(model, batch)`` is the scalar that the extraction back-propagates once.
* ``sites(model)`` names, per proxy input, the modules whose tensors form the input's per-site list:

  ============  =====================================================================================
  input         tensor captured per site
  ============  =====================================================================================
  act           forward output of each module in ``Sites.act``
  head          forward output of each module in ``Sites.head``
  softmax       forward output of each module in ``Sites.softmax`` (attention probabilities)
  weight        ``m.weight`` of each module in ``Sites.linear``
  grad          ``m.weight.grad`` of the same modules, read **after** ``loss.backward()``
  jacobian      d loss / d (forward output of ``Sites.embedding``): one site, the input embeddings
  ============  =====================================================================================

  Where the tensor of an act/head/softmax site is not its module's output, ``Sites.taps[input](args, output)``
  reads it from the module's call (the LLaMA search: ``act`` is the input of ``down_proj``); read by the extraction,
  while the hand-crafted baselines read module outputs.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lpzero_core.search.ops import INPUTS  # noqa: F401  (re-exported for the benchmark layer)


def content_hash(root: Path, files: list[Path]) -> str:
    """sha256 over the files' paths relative to ``root`` and their bytes, in sorted path order: the identity of a
    benchmark given as a folder."""
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda f: f.relative_to(root).as_posix()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def natural_key(key: str) -> list:
    """Sort key comparing digit runs as numbers: config_2_j0 < config_10_j0."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


@dataclass
class Sites:
    """Modules at which one model's proxy inputs are read (see the module docstring for what each gives)."""

    act: list[nn.Module]
    head: list[nn.Module]
    softmax: list[nn.Module]
    linear: list[nn.Module]
    embedding: nn.Module
    taps: dict[str, Callable] = field(default_factory=dict)


@dataclass
class Benchmark:
    """A benchmark's static description; subclasses implement the model side.

    Attributes
    ----------
    name, variant: registry name and model variant (e.g. ``flexibert`` / ``as_trained``).
    arch_keys: stable key of each architecture, as in the source files (``"0"``, ``"config_3_j7"``).
    configs: the architecture hyper-parameters, one dict per architecture.
    target: ground truth, higher = better, float64 array aligned with ``arch_keys``.
    target_name: what ``target`` is (e.g. ``"GLUE average"``, ``"-valid_ppl"``).
    strata: one label per architecture for stratified metrics (e.g. ``"L4-h256"``).
    search_ids: indices of the architectures the search may see; every other index is held out.
    source: for a benchmark given as a folder, ``{"path", "sha256", "options"}`` (see ``benchmarks.rebuild``);
        None for a registered one.
    linear_rows: the fraction f of each linear site's rows (output channels, dim 0 of ``.weight``) that the
        ``weight`` and ``grad`` inputs keep: the same seeded ⌈f·rows⌉ rows for both (``seeds.row_seed``), so that
        the statistics of a large network stay affordable; 1 (every row) unless a benchmark states otherwise.
    """

    name: str
    variant: str
    arch_keys: list[str]
    configs: list[dict]
    target: np.ndarray
    target_name: str
    strata: np.ndarray
    search_ids: np.ndarray
    default_batch_size: int = 16
    default_seq_len: int = 128
    extra: dict = field(default_factory=dict)
    source: dict | None = None
    linear_rows: float = 1.0

    def __len__(self) -> int:
        return len(self.arch_keys)

    @property
    def heldout_ids(self) -> np.ndarray:
        return np.setdiff1d(np.arange(len(self)), self.search_ids)

    # -- model side, implemented per benchmark ------------------------------------------------------------
    def descriptors(self, i: int) -> dict[str, float]:
        """Structural descriptors: at least n_layers, hidden, params_total, params_decoder, params_attention,
        params_ffn, flops (forward multiply-adds of one sequence of default length)."""
        raise NotImplementedError

    def build(self, i: int, seed: int = 0) -> nn.Module:
        raise NotImplementedError

    def batch(self, batch_size: int | None = None, seq_len: int | None = None,
              seed: int = 0) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def sites(self, model: nn.Module) -> Sites:
        raise NotImplementedError

    def param_check(self, i: int) -> dict[str, tuple[int, int]]:
        """``{field: (published, rebuilt)}`` parameter counts of architecture ``i``; equal pairs are a match."""
        raise NotImplementedError
