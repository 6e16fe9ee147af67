"""Layer-wise allocation rules from the pruning literature, snapped to the LoNAS widths under an MLP budget.

An *allocation* gives every decoder layer ``l`` a keep ratio ``r_l`` of its MLP channels; its budget is the mean
ratio (the kept fraction of the MLP parameters, the MLPs having no biases or one width-independent down bias).
Each rule turns statistics of the parent on calibration tokens into continuous target ratios with mean = budget;
:func:`snap` maps them onto the allowed widths. Only the allocation comes from the rule: which channels a layer
keeps stays the benchmark's channel rule (:mod:`lpzero_core.stats.channels`), so rules are compared on the same
sub-networks as every other method.

OWL (Yin et al., ICML 2024, "Outlier Weighed Layerwise Sparsity") — :func:`owl`
    For every linear weight of layer ``l`` (attention and MLP projections alike), the Wanda score
    ``A_ij = |W_ij| · ‖X_j‖₂`` with ``X_j`` the projection's input feature ``j`` over all calibration tokens. The
    layer's outlier ratio ``D_l`` is the fraction of all its scores above ``M`` times their mean (``M`` =
    :data:`OWL_M` = 5). Layers with more outliers are pruned less: the outlier ratios mapped linearly onto a range
    of width ``2λ`` (``λ`` = :data:`OWL_LAMBDA` = 0.08) and centred on the budget,
    ``r_l = budget + s_l − mean(s)`` with ``s_l = 2λ (D_l − min D) / (max D − min D)``.

FLAP (An et al., AAAI 2024, "Fluctuation-based Adaptive Structured Pruning") — :func:`flap`
    The fluctuation score of MLP channel ``j`` of layer ``l``: ``F_j = Var_t(x_tj) · ‖W_down[:, j]‖₂²``, with
    ``x_t`` the input of ``down_proj`` (``act(G h) ⊙ U h``) at calibration token ``t`` (variance over tokens, ``1/n``).
    Scores are standardised within each layer (``(F − mean) / std``) and the channels are ranked globally: the
    ``(1 − budget) · L · I`` lowest are removed, and layer ``l`` keeps ``r_l`` = its surviving fraction. (FLAP's bias
    compensation of the removed channels is not part of the allocation.)

Snapping (:func:`snap`): start from the allowed ratio nearest each ``r_l``; while the mean ratio exceeds the budget,
narrow by one step the layer furthest above its target; then, while some layer can widen by one step and the
mean still fits, widen the one furthest below its target (ties: the lower layer index). The result is within one
step of the budget and deterministic.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lpzero_core.errors import LPZeroError
from lpzero_core.llama.model import ATTENTION_PROJECTIONS, MLP_PROJECTIONS, decoder_layers

OWL_M, OWL_LAMBDA = 5.0, 0.08


def _check_budget(budget: float) -> None:
    if not 0 < budget <= 1:
        raise LPZeroError(f"budget must be a fraction of the MLP channels in (0, 1], got {budget!r}")


@torch.no_grad()
def _input_statistics(model: nn.Module, calibration: torch.Tensor) -> dict[nn.Module, dict[str, torch.Tensor]]:
    """Per linear projection of every decoder layer: the token count ``n``, and over the calibration tokens the sum
    and the sum of squares of each input feature (float64)."""
    linears = [getattr(block, name) for layer in decoder_layers(model)
               for block, names in ((layer.self_attn, ATTENTION_PROJECTIONS), (layer.mlp, MLP_PROJECTIONS))
               for name in names]
    stats = {m: {"n": 0, "sum": 0.0, "sum_sq": 0.0} for m in linears}

    def hook(module, args, output):
        x = args[0].detach().reshape(-1, args[0].shape[-1]).double()
        entry = stats[module]
        entry["n"] += len(x)
        entry["sum"] = entry["sum"] + x.sum(0)
        entry["sum_sq"] = entry["sum_sq"] + (x * x).sum(0)

    handles = [m.register_forward_hook(hook) for m in linears]
    try:
        model(input_ids=calibration.to(next(model.parameters()).device))
    finally:
        for handle in handles:
            handle.remove()
    return stats


def owl(model: nn.Module, calibration: torch.Tensor, budget: float, m: float = OWL_M,
        lam: float = OWL_LAMBDA) -> np.ndarray:
    """OWL's target keep ratios per layer (module docstring)."""
    _check_budget(budget)
    stats = _input_statistics(model, calibration)
    outlier_ratios = []
    for layer in decoder_layers(model):
        scores = torch.cat([(module.weight.detach().double().abs() * stats[module]["sum_sq"].sqrt()).flatten()
                            for module in (*(getattr(layer.self_attn, n) for n in ATTENTION_PROJECTIONS),
                                           *(getattr(layer.mlp, n) for n in MLP_PROJECTIONS))])
        outlier_ratios.append(float((scores > m * scores.mean()).double().mean()))
    d = np.asarray(outlier_ratios)
    spread = d.max() - d.min()
    s = 2 * lam * (d - d.min()) / spread if spread > 0 else np.zeros_like(d)
    return budget + s - s.mean()


def flap(model: nn.Module, calibration: torch.Tensor, budget: float) -> np.ndarray:
    """FLAP's target keep ratios per layer (module docstring)."""
    _check_budget(budget)
    stats = _input_statistics(model, calibration)
    standardised = []
    for layer in decoder_layers(model):
        down = layer.mlp.down_proj
        s = stats[down]
        variance = s["sum_sq"] / s["n"] - (s["sum"] / s["n"]) ** 2
        fluctuation = variance * down.weight.detach().double().pow(2).sum(0)
        standardised.append(((fluctuation - fluctuation.mean()) / fluctuation.std()).numpy())
    scores = np.stack(standardised)  # [L, I]
    removed = int(round((1 - budget) * scores.size))
    lowest = np.argsort(scores, axis=None, kind="stable")[:removed]
    kept = np.ones(scores.size, dtype=bool)
    kept[lowest] = False
    return kept.reshape(scores.shape).mean(axis=1)


#: the established rules by name: ``RULES[name](model, calibration, budget)`` → target keep ratio per layer
RULES = {"owl": owl, "flap": flap}


def snap(target: np.ndarray, ratios: tuple[float, ...], budget: float) -> tuple[int, ...]:
    """Genes (indices into ``ratios``, widest first) for target keep ratios ``target`` within ``budget`` (module
    docstring)."""
    _check_budget(budget)
    ratios_arr, target = np.asarray(ratios, dtype=float), np.asarray(target, dtype=float)
    if budget < ratios_arr.min() - 1e-12:
        raise LPZeroError(f"budget {budget:g} is below the narrowest ratio {ratios_arr.min():g}")
    genes = [int(np.argmin(np.abs(ratios_arr - r))) for r in target]
    last = len(ratios_arr) - 1
    mean = lambda g: float(ratios_arr[g].mean())
    while mean(genes) > budget + 1e-12:
        over = [(ratios_arr[g] - r, -l) for l, (g, r) in enumerate(zip(genes, target)) if g < last]
        genes[-max(over)[1]] += 1
    while True:
        under = [(r - ratios_arr[g], -l) for l, (g, r) in enumerate(zip(genes, target))
                 if g > 0 and mean(genes[:l] + [g - 1] + genes[l + 1:]) <= budget + 1e-12]
        if not under:
            return tuple(genes)
        genes[-max(under)[1]] -= 1
