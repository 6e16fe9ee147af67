"""Within-layer MLP channel rules of a LLaMA-like model, and sub-networks materialised by slicing.

A gated MLP computes ``y = D a`` with ``a = act(G x) ⊙ (U x)`` (gate ``G`` and up ``U``: rows ``[I, h]``; down
``D``: ``[h, I]``). Channel ``j`` of a layer is gate row ``G[j]``, up row ``U[j]`` and down column ``D[:, j]``; it
adds ``D[:, j] a_j`` to the output, so dropping it is exactly zeroing ``a_j`` (or ``D[:, j]``).

Rules (:data:`RULES`, per layer a float32 score per channel; higher = keep)
---------------------------------------------------------------------------
``magnitude``   data-free: ``‖G[j]‖₂ · ‖U[j]‖₂ · ‖D[:, j]‖₂`` (for SiLU, ``|act(z)| ≤ |z|``, so the bound on the
                channel's contribution ``‖D[:, j] a_j‖`` without the input).
``activation``  Wanda / FLAP style: ``mean_t |a_j(t)| · ‖D[:, j]‖₂``, the mean over the calibration tokens ``t``
                of the channel's intermediate activation (the input of ``down_proj``) times its down column norm.
``taylor``      LLM-Pruner style first order: ``Σ_w |w · ∂L/∂w|`` over the channel's weights (gate row, up row,
                down column; gate / up bias entries when present), ``L`` the mean next-token loss on the
                calibration tokens (one forward / backward, ``torch.autograd.grad``: no ``.grad`` is left behind).

The calibration tokens are ``calibration`` (LongTensor ``[B, T]``; train-split windows, see
:func:`lpzero_core.stats.parents.calibration_batch`); ``magnitude`` ignores them.

Sub-networks (:func:`slice_model`)
----------------------------------
A layer of width ``w`` keeps its ``w`` highest-scoring channels (:func:`ranking`: stable descending sort, ties by
lower index), in their original order, so narrower sub-networks are nested in wider ones. The sub-network is a
real, smaller model: the decoder is copied with every tensor *shared* with the parent except the MLP
projections, which become new ``nn.Linear`` modules holding the kept gate / up rows and down columns
(``mlp.intermediate_size`` is set per layer; ``config.intermediate_size`` keeps the parent's). At full width every
weight keeps its order, so the logits are the parent's bit for bit.

Widths (:func:`widths`): ``m · round(r · I / m)`` for the ratios ``r`` (default :data:`LONAS_RATIOS`: the LoNAS set
11008, 9632, 8256, 6880, 5504 over 11008 = 100, 87.5, 75, 62.5, 50 %) and the multiple ``m`` (default 32).
"""
from __future__ import annotations

import copy
import itertools

import torch
from torch import nn

from lpzero_core.errors import LPZeroError

RULES = ("magnitude", "activation", "taylor")
LONAS_RATIOS = tuple(w / 11008 for w in (11008, 9632, 8256, 6880, 5504))
PROJECTIONS = ("gate_proj", "up_proj", "down_proj")


def mlps(model: nn.Module) -> list[nn.Module]:
    """The gated MLP of every decoder layer (``model.model.layers[l].mlp``)."""
    return [layer.mlp for layer in model.model.layers]


def widths(intermediate: int, ratios=LONAS_RATIOS, multiple: int = 32) -> tuple[int, ...]:
    """The distinct allowed widths, widest first (module docstring)."""
    out = sorted({multiple * round(r * intermediate / multiple) for r in ratios}, reverse=True)
    if not out or any(not 0 < r <= 1 for r in ratios) or out[-1] < multiple:
        raise LPZeroError(f"ratios {tuple(ratios)} must lie in (0, 1] and give widths of at least one multiple "
                          f"({multiple}) of the intermediate size {intermediate}")
    return tuple(out)


def scores(model: nn.Module, rule: str = "magnitude", calibration: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Per layer, the channel scores of ``rule`` (module docstring), float32 ``[I]`` on the CPU."""
    if rule not in RULES:
        raise LPZeroError(f"unknown channel rule {rule!r}; choose one of {', '.join(RULES)}")
    if rule != "magnitude" and calibration is None:
        raise LPZeroError(f"the {rule} channel rule needs calibration tokens")
    weights = [[getattr(mlp, name).weight.detach().float() for name in PROJECTIONS] for mlp in mlps(model)]
    if rule == "magnitude":
        return [(g.norm(dim=1) * u.norm(dim=1) * d.norm(dim=0)).cpu() for g, u, d in weights]
    if rule == "activation":
        return [(a * d.norm(dim=0)).cpu() for a, (_, _, d) in zip(_mean_abs_activation(model, calibration), weights)]
    return _taylor(model, calibration)


def ranking(score: torch.Tensor) -> torch.Tensor:
    """Channel indices by descending score, ties by lower index."""
    return torch.sort(score, descending=True, stable=True).indices


def kept(order: torch.Tensor, width: int) -> torch.Tensor:
    """The ``width`` first channels of ``order``, ascending."""
    return order[:width].sort().values


@torch.no_grad()
def _mean_abs_activation(model: nn.Module, calibration: torch.Tensor) -> list[torch.Tensor]:
    sums, handles = [], []

    def accumulate(total: torch.Tensor):
        def hook(module, args) -> None:  # returns None: the input of down_proj is left as it is
            total.add_(args[0].detach().abs().double().sum(dim=(0, 1)).cpu())
        return hook

    for mlp in mlps(model):
        sums.append(torch.zeros(mlp.down_proj.in_features, dtype=torch.float64))
        handles.append(mlp.down_proj.register_forward_pre_hook(accumulate(sums[-1])))
    try:
        model(input_ids=calibration.to(_device(model)))
    finally:
        for handle in handles:
            handle.remove()
    return [(total / calibration.numel()).float() for total in sums]


def _taylor(model: nn.Module, calibration: torch.Tensor) -> list[torch.Tensor]:
    ids = calibration.to(_device(model))
    # per layer: (tensor, axis its channel index runs along; None for a bias vector)
    parts = [[(mlp.gate_proj.weight, 0), (mlp.up_proj.weight, 0), (mlp.down_proj.weight, 1)]
             + [(b, None) for b in (mlp.gate_proj.bias, mlp.up_proj.bias) if b is not None] for mlp in mlps(model)]
    with torch.enable_grad():
        loss = model(input_ids=ids, labels=ids).loss
        grads = iter(torch.autograd.grad(loss, [t for layer in parts for t, _ in layer]))
    out = []
    for layer in parts:
        total = 0
        for t, axis in layer:
            contribution = (t.detach() * next(grads)).abs().float()
            total = total + (contribution if axis is None else contribution.sum(dim=1 - axis))
        out.append(total.cpu())
    return out


def slice_model(model: nn.Module, keep: list[torch.Tensor]) -> nn.Module:
    """The sub-network keeping channels ``keep[l]`` (ascending indices) of layer ``l`` (module docstring)."""
    shared = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
    sub = copy.deepcopy(model, shared)
    for mlp, channels in zip(mlps(sub), keep, strict=True):
        channels = channels.to(mlp.gate_proj.weight.device)
        mlp.gate_proj, mlp.up_proj = _rows(mlp.gate_proj, channels), _rows(mlp.up_proj, channels)
        mlp.down_proj = _columns(mlp.down_proj, channels)
        mlp.intermediate_size = len(channels)
    return sub


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


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
