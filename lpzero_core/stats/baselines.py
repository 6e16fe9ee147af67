"""Hand-crafted zero-cost proxies (the baselines every searched proxy is compared with).

Each network baseline scores the :class:`Pass` record of one pass over a randomly initialised model and one batch,
computed through the benchmark contract only (:mod:`lpzero_core.stats.benchmarks.base`), so it works for every
benchmark:

* L = ``benchmark.loss(model, batch)``, the scalar the benchmark back-propagates;
* weights W and their gradients ∂L/∂W: the ``.weight`` of each module in ``sites.linear`` (a tied weight once);
* activations: forward outputs of ``sites.act``; head outputs: ``sites.head``; attention probabilities P:
  ``sites.softmax`` (shape [B, heads, …]); input embeddings E [B, T, d]: the output of ``sites.embedding``.

Conventions
-----------
* **Orientation:** every score is oriented so that higher = better model, in the direction its source defines
  (stated per baseline). No sign is ever chosen from observed correlations.
* **Aggregation:** per-site terms are summed over sites (as in the sources); a module listed twice, or shared
  by several layers, is hooked once and each of its calls is one site.
* **No side effects:** gradients come from ``torch.autograd.grad`` (the backward pass itself), so no ``.grad``
  is written; hooks live in a ``with`` block and are removed on exit, also on error; synflow works on a copy.
  A pass leaves its model exactly as it found it.
* **Attention vs FFN linears** (synaptic diversity/saliency, head importance): the attention block of a
  layer is the smallest module that contains the layer's head site and a softmax site (the head module itself
  when no softmax site is near, i.e. when that module would also hold another layer's head). Linear sites inside
  an attention block are *attention linears*; the other linear sites are *FFN linears*. For FlexiBERT this is
  the op block (q, k, v, [WMA weight], output dense; LT input; DSC's six), i.e. Serianni's set.
* Numerics: reductions, determinants, eigenvalues and norms in float64; synflow runs the network in float64.
* **Passes:** one forward + backward of L (:func:`shared_pass`) serves every baseline except three: synflow and
  logsynflow share one float64 pass at θ = |W| (:func:`synflow_pass`), GraSP adds a double backward
  (:func:`grasp_pass`). The confidences and NWOT read only the forward. A baseline's cost is what it would cost
  alone: its pass (for those four, the pass's forward) plus its own reduction.
* "spec §…" refers to ``shared/specs/flexibert.md`` (Serianni & Kalita's metrics as their notebook computed them).

``compute(benchmark, i, batch)`` runs any subset, each pass on its own freshly built model
(``benchmark.build(i, seed)``, the same initialisation as the proxy inputs), and times each baseline;
``structural(descriptors)`` gives the trivial baselines.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from time import perf_counter
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from lpzero_core.errors import LPZeroError
from lpzero_core.stats.benchmarks.base import Benchmark, Sites

EPS_EIG = 1e-5  # the k of Mellor et al.'s −Σ[log(λ + k) + 1/(λ + k)]


# -- plumbing --------------------------------------------------------------------------------------------------
@contextmanager
def _recorded(kinds: dict[str, list[nn.Module]]):
    """Yield ``{kind: list}``: each list receives, per forward call of each (distinct) module of that kind, its output.

    A module of several kinds is hooked once and its output goes to each of their lists. An output that does not
    require grad (e.g. an identity "embedding" over data) is replaced by a leaf copy that does, so d loss / d output
    exists. The hooks are removed when the block exits, whatever happens inside.
    """
    records = {kind: [] for kind in kinds}
    handles = []

    def hook(lists, module, args, output):
        if not output.requires_grad:
            output = output.detach().requires_grad_()
        for records_of_kind in lists:
            records_of_kind.append(output)
        return output

    try:
        for module in {id(m): m for modules in kinds.values() for m in modules}.values():
            lists = [records[kind] for kind, modules in kinds.items() if any(m is module for m in modules)]
            handles.append(module.register_forward_hook(partial(hook, lists)))
        yield records
    finally:
        for handle in handles:
            handle.remove()


def _grad(output: torch.Tensor, inputs: list[torch.Tensor], **kwargs) -> tuple[torch.Tensor, ...]:
    """d output / d inputs by one backward pass; zeros for an input the output does not depend on."""
    if not inputs:
        return ()
    return torch.autograd.grad(output, inputs, allow_unused=True, materialize_grads=True, **kwargs)


def _weights(sites: Sites) -> list[torch.Tensor]:
    """The distinct ``.weight`` tensors of the linear sites."""
    return list({id(m.weight): m.weight for m in sites.linear}.values())


def _attention_weight_ids(model: nn.Module, sites: Sites) -> set[int]:
    """ids of the weights of the attention linears (module docstring: "Attention vs FFN linears")."""
    name = {id(m): n for n, m in model.named_modules(remove_duplicate=False)}
    heads = {name[id(m)] for m in sites.head}
    softmaxes = {name[id(m)] for m in sites.softmax}

    def inside(module: str, block: str) -> bool:
        return block == "" or module == block or module.startswith(block + ".")

    blocks = []
    for head in heads:
        parts = head.split(".")
        ancestors = (".".join(parts[:k]) for k in range(len(parts), -1, -1))
        block = next((a for a in ancestors if any(inside(s, a) for s in softmaxes)), head)
        blocks.append(block if sum(inside(h, block) for h in heads) == 1 else head)
    return {id(m.weight) for m in sites.linear if any(inside(name[id(m)], b) for b in blocks)}


# -- passes: what one run of the network gives -------------------------------------------------------------------
@dataclass
class Pass:
    """The record of one pass of the benchmark loss L over a model; tensors detached, site lists in call order.

    weights          the distinct linear-site weights W (``_weights``; |W| in float64 for :func:`synflow_pass`)
    grads            ∂L/∂W, one per weight
    seconds          wall time of the whole pass, from reading the sites to the last gradient (the build excluded)
    forward_seconds  wall time of its forward alone
    attention        per weight, whether it is an attention linear (module docstring)
    acts, heads, probs     outputs of ``sites.act``, ``sites.head``, ``sites.softmax``, one per call
    act_grads, prob_grads  ∂L/∂acts, ∂L/∂probs
    jacobian         G = ∂L/∂E [B, T, d] (float64) at the output E of ``sites.embedding`` (its first call).
                     Sequences do not interact in the forward pass (no batch statistics), so row b of G is, up to
                     the loss's 1/B, the gradient of sequence b's own loss: one backward gives the per-sequence
                     Jacobians.
    hessian_grads    H g per weight, H the Hessian of L and g = ∂L/∂W
    loss             the value of L

    :func:`shared_pass` fills all but ``hessian_grads``; :func:`synflow_pass` the weights and gradients;
    :func:`grasp_pass` those and ``hessian_grads``.
    """

    weights: list[torch.Tensor]
    grads: list[torch.Tensor]
    seconds: float
    forward_seconds: float
    attention: list[bool] = field(default_factory=list)
    acts: list[torch.Tensor] = field(default_factory=list)
    act_grads: list[torch.Tensor] = field(default_factory=list)
    heads: list[torch.Tensor] = field(default_factory=list)
    probs: list[torch.Tensor] = field(default_factory=list)
    prob_grads: list[torch.Tensor] = field(default_factory=list)
    jacobian: torch.Tensor | None = None
    hessian_grads: list[torch.Tensor] = field(default_factory=list)
    loss: float = float("nan")


def _detached(tensors) -> list[torch.Tensor]:
    """The tensors without their autograd history (same storage)."""
    return [t.detach() for t in tensors]


def shared_pass(benchmark: Benchmark, model: nn.Module, batch: dict) -> Pass:
    """One forward of L that records the act, head, softmax and embedding sites, then one backward (a single
    ``autograd.grad``) to the weights, activations, probabilities and E together.

    Gradients w.r.t. some inputs are the same numbers whichever other inputs are asked for alongside (the backward
    runs its nodes in one fixed order and skips only those no asked-for input needs), and the recorded outputs are
    those of a forward without gradients, so every baseline reads what its own pass gave before passes were shared.
    """
    start = perf_counter()
    sites = benchmark.sites(model)
    weights = _weights(sites)
    attention = _attention_weight_ids(model, sites)
    with _recorded({"act": sites.act, "head": sites.head, "softmax": sites.softmax,
                    "embedding": [sites.embedding]}) as out:
        loss = benchmark.loss(model, batch)
    forward_seconds = perf_counter() - start
    acts, probs = out["act"], out["softmax"]
    grads = _grad(loss, [*weights, *acts, *probs, out["embedding"][0]])
    w, a, p = len(weights), len(weights) + len(acts), len(weights) + len(acts) + len(probs)
    return Pass(_detached(weights), list(grads[:w]), seconds=perf_counter() - start, forward_seconds=forward_seconds,
                attention=[id(weight) in attention for weight in weights], acts=_detached(acts),
                act_grads=list(grads[w:a]), heads=_detached(out["head"]), probs=_detached(probs),
                prob_grads=list(grads[a:p]), jacobian=grads[p].double(), loss=float(loss.detach()))


def synflow_pass(benchmark: Benchmark, model: nn.Module, batch: dict) -> Pass:
    """Synflow's pass: on a float64 copy of the model whose parameters are all replaced by their absolute values,
    weights = |W| and grads = ∂R/∂|W|, with R = the benchmark loss on the batch (float inputs cast to float64)."""
    start = perf_counter()
    net = copy.deepcopy(model).double()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    batch = {k: v.double() if v.is_floating_point() else v for k, v in batch.items()}
    weights = _weights(benchmark.sites(net))
    loss = benchmark.loss(net, batch)
    forward_seconds = perf_counter() - start
    grads = _grad(loss, weights)
    return Pass(_detached(weights), list(grads), seconds=perf_counter() - start, forward_seconds=forward_seconds)


def grasp_pass(benchmark: Benchmark, model: nn.Module, batch: dict) -> Pass:
    """GraSP's pass: g = ∂L/∂W by a backward that keeps its graph, then H g = ∂(gᵀ·stopgrad(g))/∂W by a double
    backward. Attention runs on the math SDPA kernel, the only one with a double backward."""
    start = perf_counter()
    weights = _weights(benchmark.sites(model))
    with sdpa_kernel(SDPBackend.MATH):
        loss = benchmark.loss(model, batch)
        forward_seconds = perf_counter() - start
        grads = _grad(loss, weights, create_graph=True)
        hessian_grads = _grad(sum((g * g.detach()).sum() for g in grads), weights)
    return Pass(_detached(weights), _detached(grads), seconds=perf_counter() - start,
                forward_seconds=forward_seconds, hessian_grads=list(hessian_grads))


def _eigen_score(corr: torch.Tensor) -> float:
    """−Σ_i [log(λ_i + k) + 1/(λ_i + k)] over the eigenvalues λ of a correlation matrix, k = 1e-5 (Mellor et al.).

    Largest (≈ −n, all λ = 1) for uncorrelated rows, very negative for (nearly) collinear ones. An undefined
    correlation (a constant row) gives NaN, as in the original, instead of an error.
    """
    if not torch.isfinite(corr).all():
        return math.nan
    lam = torch.linalg.eigvalsh(corr)
    return float(-(torch.log(lam + EPS_EIG) + 1 / (lam + EPS_EIG)).sum())


def _site_sum(values: list[torch.Tensor]) -> float:
    """Σ over sites of per-site scalars, as a Python float (0 for no sites)."""
    return float(sum(v.detach().double() for v in values)) if values else 0.0


def _saliency(pairs) -> float:
    """Σ_W Σ |W ⊙ G| over (W, G) pairs."""
    return _site_sum([(w * g).abs().sum() for w, g in pairs])


def _split(record: Pass, attention: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(W, ∂L/∂W) of the attention linears (``attention=True``) or of the FFN linears (``False``)."""
    return [(w, g) for w, g, a in zip(record.weights, record.grads, record.attention) if a == attention]


def _nuclear(t: torch.Tensor) -> torch.Tensor:
    """‖t‖_*: the sum of the singular values (float64)."""
    return torch.linalg.matrix_norm(t.double(), ord="nuc")


# -- pruning-at-init family: weights and gradients --------------------------------------------------------------
def synflow(record: Pass) -> float:
    """SynFlow: Σ_W Σ |θ ⊙ ∂R/∂θ| at θ = |W| (:func:`synflow_pass`; Tanaka et al., NeurIPS 2020, "Pruning neural
    networks without any data by iteratively conserving synaptic flow"; network score as in Abdelfattah et al.,
    ICLR 2021).

    Original: all parameters made positive, an all-ones input, R = Σ network output (LTS/LPZero for GPT-2: ones as
    token embeddings, R = Σ head-cluster logits). Here: θ → |θ| for every parameter, in float64, but R = the
    benchmark loss on the real batch. The contract exposes the loss, not the logits; and an all-ones input is
    annihilated by LayerNorm (LN of a constant vector is β = 0 at init): unless something non-constant is added
    after it (LTS added the positions), a pre-LN decoder then gives zero gradients. The |·| of each term (as
    Abdelfattah et al. and LPZero) keeps the score a magnitude.
    Orientation: more synaptic flow = better (Tanaka et al.); higher = better.
    """
    return _saliency(zip(record.weights, record.grads))


def logsynflow(record: Pass) -> float:
    """LogSynflow: Σ_W Σ |θ| ⊙ log(1 + |∂R/∂θ|) with the synflow setting above (Cavagnero et al., WACV 2023,
    "FreeREA: training-free evolution-based architecture search"): the log damps exploding gradients so that no
    single layer dominates. Same deviations as :func:`synflow`. Orientation: as synflow, higher = better.
    """
    return _site_sum([(w * torch.log1p(g.abs())).sum() for w, g in zip(record.weights, record.grads)])


def snip(record: Pass) -> float:
    """SNIP: Σ_W Σ |W ⊙ ∂L/∂W| (Lee et al., ICLR 2019, "SNIP: single-shot network pruning based on connection
    sensitivity"; summed per network by Abdelfattah et al., ICLR 2021). Orientation: more loss-sensitive
    connections = better (Abdelfattah et al.); higher = better.
    """
    return _saliency(zip(record.weights, record.grads))


def grasp(record: Pass) -> float:
    """GraSP: −Σ_W Σ W ⊙ (H g) with g = ∂L/∂W and H the Hessian of L (Wang et al., ICLR 2020, "Picking winning
    tickets before training by preserving gradient flow"), H g from :func:`grasp_pass`. Orientation: the network
    sum of −θ ⊙ Hg as used by Abdelfattah et al. (ICLR 2021); higher = better.
    """
    return -_site_sum([(w * hg).sum() for w, hg in zip(record.weights, record.hessian_grads)])


def fisher(record: Pass) -> float:
    """Fisher: Σ_sites Σ_c ½ · mean_b (Σ_t a[b,t,c] · ∂L/∂a[b,t,c])² over the activations a = outputs of
    ``sites.act`` (Theis et al., 2018, "Faster gaze prediction with dense networks and Fisher pruning"; Turner et
    al., ICLR 2020, "BlockSwap"; network sum as Abdelfattah et al., ICLR 2021). Channels are the last axis, every
    middle axis (tokens) is summed like the spatial axes of a conv map. Orientation: higher = better.
    """
    terms = []
    for a, g in zip(record.acts, record.act_grads):
        per_channel = (a * g).double().reshape(a.shape[0], -1, a.shape[-1]).sum(1)
        terms.append(0.5 * per_channel.pow(2).mean(0).sum())
    return _site_sum(terms)


def grad_norm(record: Pass) -> float:
    """GradNorm: Σ_W ‖∂L/∂W‖_F (Abdelfattah et al., ICLR 2021, "Zero-cost proxies for lightweight NAS").
    Orientation: higher = better (Abdelfattah et al.).
    """
    return _site_sum([torch.linalg.vector_norm(g.double()) for g in record.grads])


# -- transformer-specific (TF-TAS, Serianni & Kalita) -----------------------------------------------------------
def synaptic_diversity(record: Pass) -> float:
    """Synaptic diversity: Σ_{W ∈ attention linears} ‖W‖_* · ‖∂L/∂W‖_* (nuclear norms; Zhou et al., CVPR 2022,
    "Training-free transformer architecture search", TF-TAS; Serianni & Kalita, ACL 2023, spec §7.2.1).

    Serianni's code back-propagated S = Σ last hidden state; after the final post-LN LayerNorm (γ = 1 at init)
    Σ_c LN(z)_c ≡ Σ_c β_c, so ∂S/∂(anything before it) is float rounding (~1e-8). Here: the benchmark loss (which
    the benchmark defines; FlexiBERT keeps the original S, with that caveat). Orientation: higher = better (TF-TAS).
    """
    return _site_sum([_nuclear(w) * _nuclear(g) for w, g in _split(record, attention=True)])


def synaptic_saliency(record: Pass) -> float:
    """Synaptic saliency: Σ_{W ∈ FFN linears} Σ |W ⊙ ∂L/∂W| (TF-TAS, Zhou et al., CVPR 2022; Serianni & Kalita,
    spec §7.2.2, over the FFN Linears). FFN linears = linear sites outside the attention blocks, so for FlexiBERT
    also the embedding projection when it is a site. Orientation: higher = better (TF-TAS).
    """
    return _saliency(_split(record, attention=False))


def head_importance(record: Pass) -> float:
    """Head importance (Serianni & Kalita, ACL 2023, spec §7.2.7): Σ_{W ∈ attention linears} Σ |W ⊙ ∂L/∂W|.

    The original summed over the op module's own Linears with out_features ≥ 128 (q, k, v …, not the output
    dense), with S = Σ last hidden state (see :func:`synaptic_diversity`). Here the attention linears, which also
    hold the output dense where the attention block contains it, and the benchmark loss. Orientation: higher =
    better (Serianni & Kalita). :func:`attention_importance` is the head importance of Michel et al. itself.
    """
    return _saliency(_split(record, attention=True))


def attention_importance(record: Pass) -> float:
    """Attention (head) importance of Michel et al. (NeurIPS 2019, "Are sixteen heads really better than one?"):
    I_h = E_x |∂L(x)/∂ξ_h| for a gate ξ_h = 1 on head h. Gating the probabilities P_h gates the head output
    (P_h V_h is linear in P_h), so ∂L/∂ξ_h = Σ_{i,j} P_h[i,j] · ∂L/∂P_h[i,j]. Score: Σ_sites Σ_h mean_b
    |Σ_{i,j} P[b,h,i,j] · ∂L/∂P[b,h,i,j]| (axis 1 of a softmax site = heads). Orientation: higher = better.
    """
    gates = [(p * g).double().flatten(2).sum(-1) for p, g in zip(record.probs, record.prob_grads)]  # ∂L/∂ξ [B, heads]
    return _site_sum([gate.abs().mean(0).sum() for gate in gates])


def attention_confidence(record: Pass) -> float:
    """Attention confidence (Voita et al., ACL 2019, "Analyzing multi-head self-attention"): the mean over
    sequences, heads and queries of the largest attention weight, max_j P[b,h,i,j], summed over softmax sites.
    This is what Serianni & Kalita's "Head Softmax Confidence" intended (see :func:`head_softmax_confidence`).
    Orientation: confident (peaked) heads = better (Voita et al.; Serianni & Kalita); higher = better.
    """
    return _site_sum([p.max(dim=-1).values.mean().double() for p in record.probs])


def head_confidence(record: Pass) -> float:
    """Head confidence as published (Serianni & Kalita, spec §7.2.8): Σ_sites mean_{b,j} max_t o[b,t,j] over the
    head outputs o [B, T, C] (the maximum over the sequence axis, then the mean). Orientation: higher = better.
    """
    return _site_sum([o.max(dim=1).values.mean().double() for o in record.heads])


def head_softmax_confidence(record: Pass) -> float:
    """Head softmax confidence as published (Serianni & Kalita, spec §7.2.9): Σ_sites mean(max over axis 1 of P).

    Axis 1 of P [B, heads, T, T] is the *head* axis, so this is the largest weight across heads of each
    (query, key) entry, not Voita's maximum over keys; with a single head it is exactly 1/T. Kept as published, to
    be comparable with the CSV column; :func:`attention_confidence` is the intended form. Orientation: higher =
    better (as published).
    """
    return _site_sum([p.max(dim=1).values.mean().double() for p in record.probs])


# -- the loss itself --------------------------------------------------------------------------------------------
def one_batch_loss(record: Pass) -> float:
    """−L, the benchmark loss on the proxy batch, negated (lower loss = better). On a pretrained sub-network
    (``smollm2-mlp``) it is the cheapest data-driven score there is; at random initialisation it is close to
    log(vocabulary size) for every architecture."""
    return -record.loss


# -- activation and Jacobian structure --------------------------------------------------------------------------
def nwot(record: Pass) -> float:
    """NASWOT / activation distance: log|det K| with K[i,j] = Σ_sites (N_A − d_H(c_i, c_j)) over the batch's B
    sequences, c_i = 1[a > 0] the binary code of sequence i's activations a (outputs of ``sites.act``, all tokens
    and channels), N_A the code length and d_H the Hamming distance, i.e. K = Σ_sites c cᵀ + (1−c)(1−c)ᵀ
    (Mellor et al., ICML 2021, "Neural architecture search without training").

    The CSV "Activation Distance" of Serianni & Kalita differs: it used batch element 0 only, a token × token
    kernel, and the raw sum Σ_{i,j} K instead of log|det K|; and its raw column is multiplied by a duplicated-hook
    count (spec §7.2.3; the "Normalized" column is the clean value / Σ nff). Orientation: more distinguishable
    inputs = better (Mellor et al.); higher = better.
    """
    def kernel(a: torch.Tensor) -> torch.Tensor:
        c = (a > 0).reshape(a.shape[0], -1).float()  # 0/1 sums below 2^24 are exact in float32
        return (c @ c.T + (1 - c) @ (1 - c).T).double()

    return float(torch.linalg.slogdet(sum(kernel(a) for a in record.acts)).logabsdet)


def jacob_cov(record: Pass) -> float:
    """Jacobian covariance: −Σ_i [log(λ_i + k) + 1/(λ_i + k)], k = 1e-5, over the eigenvalues of the B × B
    correlation matrix of the per-sequence input Jacobians J_b = vec(∂L/∂E[b]) (Mellor et al., arXiv:2006.04647v1,
    "Neural architecture search without training"; Abdelfattah et al., ICLR 2021). The original differentiated
    Σ output w.r.t. the image; here the loss w.r.t. the input embeddings. Orientation: uncorrelated Jacobians =
    better (Mellor et al.); higher = better.
    """
    g = record.jacobian
    return _eigen_score(torch.corrcoef(g.reshape(g.shape[0], -1)))


def jacobian_score(record: Pass) -> float:
    """Jacobian score, Serianni & Kalita's eigenvalue form (spec §7.2.4): −Σ_i [log(λ_i + k) + 1/(λ_i + k)],
    k = 1e-5, over the eigenvalues of the d × d correlation matrix of the embedding dimensions.

    Original: G = ∂S/∂(position-embedding table) [positions × dims], i.e. the gradient summed over the batch, each
    dimension observed over the 512 positions. Here each dimension is observed over all B·T tokens of the
    per-sequence gradient ∂L/∂E [B, T, d]: with T = 128 ≤ d the batch-summed form would have a rank-deficient
    correlation matrix whose zero eigenvalues (1/k = 1e5 each) swamp the score. A network that reads E only
    through LayerNorms (pre-LN decoders such as GPT-2) has Σ_c ∂L/∂E[…, c] = 0 exactly, hence one zero eigenvalue:
    the same constant −(log k + 1/k) for every architecture, which leaves the ranking unchanged.
    Orientation: higher = better.
    """
    g = record.jacobian
    return _eigen_score(torch.corrcoef(g.reshape(-1, g.shape[-1]).T))


def jacobian_cosine(record: Pass) -> float:
    """Jacobian cosine: 1 − mean_{i≠j} |cos(J_i, J_j)|^{1/20} over the per-sequence input Jacobians
    J_b = vec(∂L/∂E[b]) (Celotti, Balafrej & Calvet, 2020, "Improving zero-shot neural architecture search with
    parameters scoring"). Serianni & Kalita's "Jacobian Score Normalized" column applied it to the 128 embedding
    dims of the position-table gradient and halved the mean (values in [0.5, 1]); here Celotti's per-input form.
    Needs B ≥ 2. Orientation: less similar Jacobians = better (Celotti et al.); higher = better.
    """
    j = nn.functional.normalize(record.jacobian.reshape(record.jacobian.shape[0], -1), dim=1)
    cos = j @ j.T
    off_diagonal = ~torch.eye(len(cos), dtype=torch.bool, device=cos.device)
    return float(1 - cos[off_diagonal].abs().pow(1 / 20).mean())


def eznas(record: Pass) -> float:
    """EZNAS-style proxy: Σ_W σ( (1/k) · log det(S Sᵀ / n) ), S = sign(∂L/∂W) oriented k × n with k ≤ n.

    EZNAS (Akhauri et al., NeurIPS 2022, "EZNAS: evolving zero-cost proxies for neural architecture scoring")
    evolves programs over network statistics; LPZero's adaptation applies sign → log-det → sigmoid → Frobenius
    norm to each weight gradient. As published it read the BERT gradients before the backward pass, called
    ``logdet`` on the generally non-square sign matrix (an error) and mapped a negative determinant to NaN → 0.
    Here: the log-det of the normalised k × k Gram matrix of the sign pattern (defined for any shape; 0 for
    mutually orthogonal sign rows, → −∞ as they become dependent), divided by k so the sigmoid does not saturate
    on large layers; the Frobenius norm of the resulting positive scalar is the scalar itself. Orientation:
    diverse gradient-sign patterns = better (higher log-det); higher = better. The Gram matrix of signs holds
    integers of magnitude ≤ n, which float32 sums exactly (in any order) while n < 2²⁴, so it is formed in float32
    (about 1.5× faster than float64, same values); the log-det is taken in float64.
    """
    total = 0.0
    for g in record.grads:
        s = torch.sign(g.float() if max(g.shape) < 2 ** 24 else g.double())
        s = s.T if s.shape[0] > s.shape[1] else s
        logdet = torch.linalg.slogdet((s @ s.T).double() / s.shape[1]).logabsdet
        total += float(torch.sigmoid(logdet / s.shape[0]))
    return total


class Baseline(NamedTuple):
    """A network baseline: ``score`` of the record of its pass ``run(benchmark, model, batch)``; ``forward_only``:
    the score reads only what the forward records (its cost is the pass's forward)."""

    run: Callable[[Benchmark, nn.Module, dict], Pass]
    score: Callable[[Pass], float]
    forward_only: bool = False

    def __call__(self, benchmark: Benchmark, model: nn.Module, batch: dict) -> float:
        """The baseline alone on ``model``: its pass, then its score."""
        return float(self.score(self.run(benchmark, model, batch)))


#: network baselines, name -> Baseline (callable as f(benchmark, model, batch) -> float)
BASELINES: dict[str, Baseline] = {
    b.score.__name__: b
    for b in (Baseline(synflow_pass, synflow), Baseline(synflow_pass, logsynflow), Baseline(shared_pass, snip),
              Baseline(grasp_pass, grasp), Baseline(shared_pass, fisher), Baseline(shared_pass, grad_norm),
              Baseline(shared_pass, jacob_cov), Baseline(shared_pass, nwot, forward_only=True),
              Baseline(shared_pass, synaptic_diversity), Baseline(shared_pass, synaptic_saliency),
              Baseline(shared_pass, attention_confidence, forward_only=True),
              Baseline(shared_pass, attention_importance), Baseline(shared_pass, head_importance),
              Baseline(shared_pass, head_confidence, forward_only=True),
              Baseline(shared_pass, head_softmax_confidence, forward_only=True),
              Baseline(shared_pass, jacobian_score), Baseline(shared_pass, jacobian_cosine),
              Baseline(shared_pass, eznas), Baseline(shared_pass, one_batch_loss, forward_only=True))
}

#: per network baseline, the name of the pass it reads (``shared_pass``, ``synflow_pass``, ``grasp_pass``): baselines
#: of one pass cost that pass once when computed together
PASSES: dict[str, str] = {name: b.run.__name__ for name, b in BASELINES.items()}

#: structural baselines, read from ``benchmark.descriptors(i)`` (no network)
STRUCTURAL = ("params_total", "params_decoder", "params_attention", "params_ffn", "flops", "n_layers",
              "n_layers_hidden")

#: structural baselines of an allocation of MLP widths (``smollm2-mlp``), used where the descriptors have them
ALLOCATION = ("mlp_fraction", "layer0_ratio", "min_ratio", "first3_ratio")

#: every baseline name ``compute`` accepts
NAMES = STRUCTURAL + tuple(BASELINES)


def structural(descriptors) -> dict:
    """Trivial structural baselines, all higher = better (bigger model): the descriptor values params_total,
    params_decoder, params_attention, params_ffn, flops and n_layers, and an allocation's :data:`ALLOCATION`
    ratios (those present), plus ``n_layers_hidden`` = n_layers · 1e6 + hidden, which orders architectures
    lexicographically by (n_layers, hidden) as long as hidden < 1e6. ``descriptors`` is one architecture's
    (values: floats) or a table of them (a DataFrame: values are arrays over its rows). The network's own
    parameter count is ``params_total``: no network baseline repeats it.
    """
    value = lambda name: np.asarray(descriptors[name], dtype=float)
    scores = {name: value(name) for name in (*STRUCTURAL[:-1], *ALLOCATION) if name in descriptors}
    scores["n_layers_hidden"] = value("n_layers") * 1e6 + value("hidden")
    return scores


def compute(benchmark: Benchmark, i: int, batch: dict, seed: int = 0,
            names: Iterable[str] | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """Baselines ``names`` (default: all of :data:`NAMES`) of architecture ``i`` on ``batch``.

    Each pass the network baselines among ``names`` read (at most three: shared, synflow's, GraSP's) runs once,
    on its own freshly built model ``benchmark.build(i, seed)`` (moved to the batch's device) and directly after
    that build, so in-place tricks never leak between passes and every pass sees the same initialisation (and,
    since its forward follows the seeded build, the same dropout masks). Returns ``(scores, seconds)``: seconds per
    network baseline = what it would cost alone, the pass it reads (its forward for a ``forward_only`` one; never
    the build) plus its own reduction, so baselines that share a pass each count it; the structural ones all
    share the one ``descriptors`` call.
    """
    names = list(NAMES if names is None else names)
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise LPZeroError(f"unknown baseline(s) {', '.join(unknown)}; choose from: {', '.join(NAMES)}")
    device = next((v.device for v in batch.values() if torch.is_tensor(v)), torch.device("cpu"))
    scores, seconds = {}, {}
    if any(n in STRUCTURAL for n in names):
        start = perf_counter()
        trivial = structural(benchmark.descriptors(i))
        elapsed = perf_counter() - start
        for name in (n for n in names if n in STRUCTURAL):
            scores[name], seconds[name] = float(trivial[name]), elapsed
    network = [n for n in names if n in BASELINES]
    for run in dict.fromkeys(BASELINES[n].run for n in network):
        record = run(benchmark, benchmark.build(i, seed).to(device), batch)
        for name in (n for n in network if BASELINES[n].run is run):
            baseline = BASELINES[name]
            start = perf_counter()
            scores[name] = float(baseline.score(record))
            reads = record.forward_seconds if baseline.forward_only else record.seconds
            seconds[name] = reads + perf_counter() - start
        del record  # freed before the next pass runs
    return {n: scores[n] for n in names}, {n: seconds[n] for n in names}
