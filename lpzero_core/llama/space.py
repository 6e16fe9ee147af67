"""Sub-network space of a LLaMA-like model: per-layer MLP widths, channel importance, real slicing.

Widths
------
A configuration (``genes``) is one index per decoder layer into :attr:`SubnetSpace.widths`, index 0 = widest.
The allowed widths are ``w_k = m * round(r_k * I / m)`` for the ratios ``r_k`` (default :data:`LONAS_RATIOS`,
the LoNAS set 11008, 9632, 8256, 6880, 5504 over 11008 = 100 %, 87.5 %, 75 %, 62.5 %, 50 %), the model's
intermediate size ``I`` and the multiple ``m`` (default 32, which reproduces the LoNAS widths exactly for
LLaMA-7B's I = 11008 and gives 256/224/192/160/128 for the tiny model's I = 256).

Channel importance (computed once, on the full model)
-----------------------------------------------------
Channel ``j`` of a layer contributes ``D[:, j] · act(G[j] x) · (U[j] x)`` to the MLP output; for SiLU
(``|act(z)| ≤ |z|``) its norm is at most ``‖G[j]‖₂ ‖U[j]‖₂ ‖D[:, j]‖₂ ‖x‖²``. The importance is that bound
without the input, ``s_j = ‖G[j]‖₂ · ‖U[j]‖₂ · ‖D[:, j]‖₂`` (computed in float32). A layer of width ``w`` keeps
its ``w`` most important channels (ties: lower index first), in their original order, so narrower sub-networks
are nested in wider ones.

Materialised sub-networks
-------------------------
:meth:`SubnetSpace.materialise` returns a real, smaller model: the decoder structure is copied, the gate/up rows
and down columns of the kept channels are copied into new ``nn.Linear`` modules of the reduced width (transformers'
LLaMA has one ``intermediate_size`` for all layers, so the modules are replaced rather than the config changed;
``mlp.intermediate_size`` is set per layer). Every other tensor (embeddings, attention, norms, head, down bias) is
*shared* with the parent model, so a sub-network costs only its MLP weights. At 100 % width the logits equal the
parent's.
The sub-network's ``config.intermediate_size`` still states the parent's width: it is an in-memory model (proxy,
lm-eval, LoRA), not a checkpoint to save.

Parameter counts
----------------
One channel of a layer holds ``c = 3h + 2b`` parameters (a gate row, an up row, a down column, and a gate and an
up bias entry when the MLP has biases, ``b = 1``, else ``b = 0``; the down bias, ``h·b``, does not depend on the
width). With ``P`` the parent's parameter count (shared tensors counted once)::

    params(genes)     = P - c · Σ_l (I - w_l)
    mlp_params(genes) = c · Σ_l w_l + L·h·b
"""
from __future__ import annotations

import copy
import itertools

import numpy as np
import torch
from torch import nn

from lpzero_core.errors import LPZeroError
from lpzero_core.llama.model import decoder_layers, validate

LONAS_RATIOS = tuple(w / 11008 for w in (11008, 9632, 8256, 6880, 5504))


def channel_importance(mlp: nn.Module) -> torch.Tensor:
    """``s_j = ‖G[j]‖₂ ‖U[j]‖₂ ‖D[:, j]‖₂`` for every channel of one gated MLP, float32 [I]."""
    gate, up, down = (getattr(mlp, name).weight.detach().float() for name in ("gate_proj", "up_proj", "down_proj"))
    return gate.norm(dim=1) * up.norm(dim=1) * down.norm(dim=0)


class SubnetSpace:
    """Per-layer MLP widths of one parent model, with its channel ranking and parameter arithmetic."""

    def __init__(self, model: nn.Module, ratios=LONAS_RATIOS, multiple: int = 32):
        self.model = validate(model)
        layers = decoder_layers(model)
        self.n_layers, self.hidden = len(layers), model.config.hidden_size
        self.intermediate = layers[0].mlp.gate_proj.out_features
        widths = sorted({multiple * round(r * self.intermediate / multiple) for r in ratios}, reverse=True)
        if not widths or any(not 0 < r <= 1 for r in ratios) or widths[-1] < multiple:
            raise LPZeroError(f"ratios {tuple(ratios)} must lie in (0, 1] and give widths of at least one multiple "
                              f"({multiple}) of the intermediate size {self.intermediate}")
        self.widths = tuple(widths)
        self.bias = int(layers[0].mlp.gate_proj.bias is not None)
        self.per_channel = 3 * self.hidden + 2 * self.bias
        self.total_full = sum(p.numel() for p in model.parameters())
        self.importance = [channel_importance(layer.mlp) for layer in layers]
        self.order = [torch.sort(s, descending=True, stable=True).indices for s in self.importance]

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
        return self.order[layer][:width].sort().values

    def materialise(self, genes) -> nn.Module:
        """The sub-network as a model with sliced MLP weights (other tensors shared with the parent)."""
        parent = self.model
        shared = {id(t): t for t in itertools.chain(parent.parameters(), parent.buffers())}
        sub = copy.deepcopy(parent, shared)
        for l, (layer, width) in enumerate(zip(decoder_layers(sub), self.layer_widths(genes))):
            keep = self.kept_channels(l, width).to(layer.mlp.gate_proj.weight.device)
            mlp = layer.mlp
            mlp.gate_proj, mlp.up_proj = _rows(mlp.gate_proj, keep), _rows(mlp.up_proj, keep)
            mlp.down_proj = _columns(mlp.down_proj, keep)
            mlp.intermediate_size = width
        return sub

    def describe(self, genes) -> str:
        """Widths as a compact string, e.g. ``"256,224,192,160"``."""
        return ",".join(map(str, self.layer_widths(genes)))

    def random(self, rng: np.random.Generator) -> tuple[int, ...]:
        """Independent uniform width index per layer."""
        return tuple(int(g) for g in rng.integers(0, len(self.widths), self.n_layers))


def _rows(linear: nn.Linear, keep: torch.Tensor) -> nn.Linear:
    """Output rows ``keep`` of ``linear`` (advanced indexing copies them)."""
    new = _linear(linear.in_features, len(keep), linear)
    new.weight = nn.Parameter(linear.weight.detach()[keep], requires_grad=linear.weight.requires_grad)
    if linear.bias is not None:
        new.bias = nn.Parameter(linear.bias.detach()[keep], requires_grad=linear.bias.requires_grad)
    return new


def _columns(linear: nn.Linear, keep: torch.Tensor) -> nn.Linear:
    """Input columns ``keep`` of ``linear``."""
    new = _linear(len(keep), linear.out_features, linear)
    new.weight = nn.Parameter(linear.weight.detach()[:, keep], requires_grad=linear.weight.requires_grad)
    new.bias = linear.bias  # independent of the width: shared with the parent like every unsliced tensor
    return new


def _linear(n_in: int, n_out: int, like: nn.Linear) -> nn.Linear:
    """An uninitialised ``nn.Linear`` (weights are assigned right after) on ``like``'s device and dtype."""
    return torch.nn.utils.skip_init(nn.Linear, n_in, n_out, bias=like.bias is not None,
                                    device=like.weight.device, dtype=like.weight.dtype)
