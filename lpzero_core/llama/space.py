"""Sub-network space of a LLaMA-like model: per-layer MLP widths, channel importance, real slicing.

Widths, channel rules and slicing
---------------------------------
A configuration (``genes``) is one index per decoder layer into :attr:`SubnetSpace.widths`, index 0 = widest;
the widths (LoNAS ratios by default; 256/224/192/160/128 for the tiny model's I = 256, 1536/1344/1152/960/768
for SmolLM2's I = 1536), the channel rules and the slicing are those of :mod:`lpzero_core.stats.channels`. The
channel scores are computed once, on the full model, by ``rule`` (default ``magnitude``, data-free; ``activation``
and ``taylor`` take ``calibration`` tokens). :meth:`SubnetSpace.materialise` returns a real, smaller model whose
non-MLP tensors are shared with the parent; at 100 % width its logits equal the parent's. It is an in-memory
model (proxy, lm-eval, LoRA), not a checkpoint to save.

Parameter counts
----------------
One channel of a layer holds ``c = 3h + 2b`` parameters (a gate row, an up row, a down column, and a gate and an
up bias entry when the MLP has biases, ``b = 1``, else ``b = 0``; the down bias, ``h·b``, does not depend on the
width). With ``P`` the parent's parameter count (shared tensors counted once)::

    params(genes)     = P - c · Σ_l (I - w_l)
    mlp_params(genes) = c · Σ_l w_l + L·h·b
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lpzero_core.errors import LPZeroError
from lpzero_core.llama.model import decoder_layers, validate
from lpzero_core.stats.channels import LONAS_RATIOS, kept, ranking, scores, slice_model, widths


class SubnetSpace:
    """Per-layer MLP widths of one parent model, with its channel ranking and parameter arithmetic."""

    def __init__(self, model: nn.Module, ratios=LONAS_RATIOS, multiple: int = 32, rule: str = "magnitude",
                 calibration: torch.Tensor | None = None):
        self.model = validate(model)
        layers = decoder_layers(model)
        self.n_layers, self.hidden = len(layers), model.config.hidden_size
        self.intermediate = layers[0].mlp.gate_proj.out_features
        self.widths = widths(self.intermediate, ratios, multiple)
        self.bias = int(layers[0].mlp.gate_proj.bias is not None)
        self.per_channel = 3 * self.hidden + 2 * self.bias
        self.total_full = sum(p.numel() for p in model.parameters())
        self.rule = rule
        self.importance = scores(model, rule, calibration)
        self.order = [ranking(s) for s in self.importance]

    @property
    def full(self) -> tuple[int, ...]:
        return (0,) * self.n_layers

    @property
    def smallest(self) -> tuple[int, ...]:
        return (len(self.widths) - 1,) * self.n_layers

    def layer_widths(self, genes) -> list[int]:
        """The MLP width of every layer; ``genes`` must hold one index in ``range(len(widths))`` per layer."""
        genes = tuple(genes)
        if len(genes) != self.n_layers or not all(0 <= g < len(self.widths) for g in genes):
            raise LPZeroError(f"configuration {genes} needs {self.n_layers} width indices in "
                              f"0..{len(self.widths) - 1} (widths {self.widths})")
        return [self.widths[g] for g in genes]

    def mlp_params(self, genes) -> int:
        return sum(self.layer_widths(genes)) * self.per_channel + self.n_layers * self.hidden * self.bias

    def params(self, genes) -> int:
        return self.total_full - sum(self.intermediate - w for w in self.layer_widths(genes)) * self.per_channel

    def fraction(self, genes, of: str = "mlp") -> float:
        """Parameters kept relative to the parent: of the MLPs (``"mlp"``) or of the whole model (``"total"``)."""
        if of == "mlp":
            return self.mlp_params(genes) / self.mlp_params(self.full)
        if of == "total":
            return self.params(genes) / self.total_full
        raise LPZeroError(f"budget_of must be 'mlp' or 'total', got {of!r}")

    def kept_channels(self, layer: int, width: int) -> torch.Tensor:
        """Indices of the ``width`` most important channels of ``layer``, ascending."""
        return kept(self.order[layer], width)

    def materialise(self, genes) -> nn.Module:
        """The sub-network as a model with sliced MLP weights (other tensors shared with the parent)."""
        return slice_model(self.model, [self.kept_channels(l, w) for l, w in enumerate(self.layer_widths(genes))])

    def describe(self, genes) -> str:
        """Widths as a compact string, e.g. ``"256,224,192,160"``."""
        return ",".join(map(str, self.layer_widths(genes)))

    def random(self, rng: np.random.Generator) -> tuple[int, ...]:
        """Independent uniform width index per layer."""
        return tuple(int(g) for g in rng.integers(0, len(self.widths), self.n_layers))

