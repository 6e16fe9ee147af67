"""LiteTransformerSearch GPT-2 benchmark: 200 heterogeneous ``hf_gpt2_flex`` models trained on WikiText-103.

Benchmark ``gpt2-wt103``, one variant, ``hf_gpt2_flex`` (the default): the models of Archai's ``HfGPT2Flex``
rebuilt in PyTorch (facts in ``shared/specs/gpt2_flex.md``; data from Archai ``neurips-lts`` at af79c739, MIT).

Static side
-----------
* ``arch_keys``: ``config_N_jM``, sorted numerically by N, then M (``config_2_j0`` before ``config_10_j0``).
* ``configs``: the parsed ``model_config.yaml`` of each key, unmodified.
* ``target`` = −valid_ppl (``target_name`` ``"-valid_ppl"``): higher = better, so the best model has the lowest
  validation perplexity.
* ``strata``: depth bands of four, ``"L{4b+1}-{4b+4}"`` with b = ⌊(n_layer − 1)/4⌋; for wt103 ``L1-4`` (n_layer
  2–4, 37 archs), ``L5-8`` (55), ``L9-12`` (49), ``L13-16`` (59).
* ``search_ids``: ⌊n/4⌋ indices (50 of 200) drawn without replacement by ``numpy.random.default_rng(0)``, sorted;
  every other index is held out.
* Defaults: batch 4 × 192 tokens (LTS/LPZero used 16 × 192, i.e. batch 16, bptt = tgt_len = 192), the length cut
  to the models' positions (smallest tgt_len) where that is shorter, with a warning that says so. The smaller
  batch is for the CPU: the extraction's 20×20 branch tables cost ≈ 400 passes over every activation element,
  and at 16 × 192 the (16·192) × 19999 head-cluster logits alone make build + forward + backward a median
  5.9 s of CPU time (max 20.6 s). ``--batch-size 16`` restores the original batch.

:func:`from_config_dir` makes the same benchmark from any folder of LTS-style ``model_config.yaml`` files, with
optional ``ppl_summary.yaml`` (else the target is NaN) and ``params_summary.yaml`` (needed by ``param_check``).

Model (:class:`GPT2Flex`)
-------------------------
Pre-LN GPT-2 with per-layer heads and MLP width, d = d_model, L = n_layer, T ≤ tgt_len, V = n_token::

    x₀ = √d · AdaEmb(ids) + wpe[0..T)                       (embedding dropout p = 0)
    x ← x + Drop₀.₁(Attn_l(LN₁(x)));  x ← x + Drop₀.₁(W₂ gelu_tanh(W₁ LN₂(x)))      l = 1..L
    h = LN_f(x);  NLL(y) = −log p(y | h)  by the projected adaptive log-softmax

* Attention of layer l: n_head[l] heads of width d / n_head[l], probabilities softmax(QKᵀ/√(d/n_head[l]) + causal),
  attention dropout p = dropatt (0). The block is written here rather than taken from transformers' ``GPT2Block``:
  ``GPT2Attention`` computes the query and the probabilities inside a function, so neither is the forward output of
  any module and hooks could not read them. Here ``attn.query`` (an ``nn.Identity`` on the query slice) and
  ``attn.softmax`` (an ``nn.Softmax``) expose them. Parameter names, shapes and arithmetic are those of
  ``GPT2Block`` with eager attention (the tests compare the two with shared weights); the four matrices are
  transformers' ``Conv1D`` (weight layout (in, out)), and nothing else in the model is a Conv1D or ``nn.Linear``.
* Adaptive input (``transformer.wte``): cutoffs cleaned by :func:`clean_cutoffs` (wt103 → clusters [0, 19997),
  [19997, 39997), [39997, 50264)); with div_val k the table of cluster i has width deᵢ = d_embed / kⁱ (k = 1: one
  V × d_embed table) and maps to d by e ↦ e Pᵢᵀ, Pᵢ ∈ ℝ^{d×deᵢ} (k > 1: always; k = 1: one P iff d_embed ≠ d).
* Output (``lm_head``): tables tied by reference to the input tables (the same Parameter objects); cluster i logits
  (h Pᵢ) Wᵢᵀ + bᵢ, where Pᵢ is the input projection if tie_projs[i], else an own (d, deᵢ) parameter (wt103: own
  for the head cluster only). The head softmax spans cluster 0 plus one logit per tail (``cluster_weight``,
  ``cluster_bias``); log p(y) = head[y] for y in cluster 0, head[size₀ + i − 1] + log_softmax(tailᵢ)[y − startᵢ]
  for y in tail i. NLL is returned in positional order (B, T).
* Init (``proj_init_std`` σₚ = 0.01, ``weight_init_std`` σ = 0.02): Conv1D and embedding tables, wpe and
  ``cluster_weight`` ~ N(0, σ²), both ``c_proj`` weights then scaled by 1/√(2L); projections ~ N(0, σₚ²); biases 0;
  LayerNorm (1, 0), eps 1e-5. A built model is in train mode (dropout active), as in the LTS/LPZero proxy scripts.

Proxy sites (``sites(model)``; l = 0..L−1, per-site lists in block order)
------------------------------------------------------------------------
========  ===================================================================  ==============  =====
input     module (tensor)                                                      shape           count
========  ===================================================================  ==============  =====
act       ``transformer.h.l.{attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj}``  (B, T, out)     4L
          (forward outputs: LPZero's GPT-2 "act" = outputs of the linear layers)
head      ``transformer.h.l.attn.query`` (the query: c_attn output[..., :d])   (B, T, d)       L
softmax   ``transformer.h.l.attn.softmax`` (attention probabilities)           (B, H, T, T)    L
weight    ``.weight`` of the same four Conv1D per block as act                 (in, out)       4L
grad      ``.weight.grad`` of those, after backward                            (in, out)       4L
jacobian  d loss / d output of ``transformer.drop`` (the embedding dropout,    (B, T, d)       1
          p = 0), i.e. of √d · AdaEmb(ids) + wpe
========  ===================================================================  ==============  =====

Parameter counts (``param_check``, ``descriptors``) follow ``params_summary.yaml`` (spec §2): AdaEmb = parameters of
``wte`` + T·d (wpe); Attn and FFN by module; nonembedding = Attn + FFN + LayerNorms; total = unique parameters.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn
from torch.nn import functional as F
from transformers.pytorch_utils import Conv1D

from lpzero_core.errors import LPZeroError
from lpzero_core.files import read_text
from lpzero_core.seeds import arch_seed
from lpzero_core.stats.benchmarks.base import Benchmark, Sites, content_hash, natural_key
from lpzero_core.stats.data import locate

NAME = "gpt2-wt103"
VARIANTS = ("hf_gpt2_flex",)
FIELDS = ("AdaEmb", "Attn", "FFN", "nonembedding", "total")
#: model_config.yaml keys the model reads; the other LTS keys are Transformer-XL leftovers and are ignored.
REQUIRED = ("n_layer", "d_model", "n_head", "d_inner", "d_embed", "div_val", "cutoffs", "n_token", "tgt_len",
            "tie_weight", "tie_projs", "dropout", "dropatt", "weight_init_std", "proj_init_std")


def clean_cutoffs(cutoffs: list[int], n_token: int) -> tuple[int, ...]:
    """Cluster ends after Archai's cleaning: keep entries up to the first one > V, clip the last to V, end with V.

    ``[19997, 39997, 199997, 50264]``, V = 50264 → ``(19997, 39997, 50264)``; ``[59997, 99997, …]`` → ``(50264,)``.
    """
    kept = [int(cutoffs[0])]
    for c in cutoffs[1:]:
        if c <= kept[-1]:
            raise LPZeroError(f"cutoffs {list(cutoffs)} must increase until the first entry above n_token={n_token}")
        if c > n_token:
            break
        kept.append(int(c))
    kept[-1] = min(kept[-1], n_token)
    return tuple(kept) if kept[-1] == n_token else (*kept, n_token)


@dataclass(frozen=True)
class Arch:
    """One ``hf_gpt2_flex`` architecture, normalised from its ``model_config.yaml`` (lists per layer, cutoffs
    cleaned, d_embed = −1 resolved to d_model, tie_projs cut to one flag per cluster)."""

    n_layer: int
    d_model: int
    d_embed: int
    div_val: int
    n_head: tuple[int, ...]
    d_inner: tuple[int, ...]
    n_token: int
    tgt_len: int
    cutoffs: tuple[int, ...]
    tie_weight: bool
    tie_projs: tuple[bool, ...]
    dropout: float
    dropatt: float
    init_std: float
    proj_init_std: float

    @classmethod
    def from_config(cls, cfg: dict, where: str) -> Arch:
        """Validate and normalise a parsed config; ``where`` names its file in error messages."""
        missing = [k for k in REQUIRED if k not in cfg]
        if missing:
            raise LPZeroError(f"{where}: missing keys {', '.join(missing)} "
                              "(an hf_gpt2_flex model_config.yaml has them)")
        if cfg.get("primer_square"):
            raise LPZeroError(f"{where}: primer_square=true is not supported; only the gelu_new MLP is rebuilt")
        n_layer, d = int(cfg["n_layer"]), int(cfg["d_model"])

        def per_layer(value) -> tuple[int, ...]:  # short lists are padded with their first entry, long ones cut
            values = list(value) if isinstance(value, (list, tuple)) else [value]
            return tuple(int(v) for v in (values + values[:1] * n_layer)[:n_layer])

        n_head = per_layer(cfg["n_head"])
        if any(d % h for h in n_head):
            raise LPZeroError(f"{where}: d_model={d} is not divisible by every n_head {list(n_head)}")
        cutoffs = clean_cutoffs(cfg["cutoffs"], int(cfg["n_token"]))
        if len(cfg["tie_projs"]) < len(cutoffs):
            raise LPZeroError(f"{where}: tie_projs needs one flag per cluster ({len(cutoffs)})")
        return cls(
            n_layer=n_layer, d_model=d, d_embed=d if cfg["d_embed"] in (-1, None) else int(cfg["d_embed"]),
            div_val=int(cfg["div_val"]), n_head=n_head, d_inner=per_layer(cfg["d_inner"]),
            n_token=int(cfg["n_token"]), tgt_len=int(cfg["tgt_len"]), cutoffs=cutoffs,
            tie_weight=bool(cfg["tie_weight"]), tie_projs=tuple(bool(t) for t in cfg["tie_projs"][: len(cutoffs)]),
            dropout=float(cfg["dropout"]), dropatt=float(cfg["dropatt"]),
            init_std=float(cfg["weight_init_std"]), proj_init_std=float(cfg["proj_init_std"]),
        )

    @property
    def n_clusters(self) -> int:
        """Number of tail clusters (wt103: 2)."""
        return len(self.cutoffs) - 1

    @property
    def ranges(self) -> list[tuple[int, int]]:
        """Token-id range [start, end) of each cluster."""
        starts = (0, *self.cutoffs[:-1])
        return list(zip(starts, self.cutoffs))

    @property
    def widths(self) -> list[int]:
        """Embedding width of each cluster: d_embed / div_valⁱ (all d_embed when div_val = 1)."""
        return [self.d_embed // self.div_val**i for i in range(len(self.cutoffs))]

    @property
    def projected(self) -> bool:
        """Whether embeddings and softmax inputs are projected between d_model and the table widths."""
        return self.div_val > 1 or self.d_embed != self.d_model

    @property
    def input_proj_widths(self) -> list[int]:
        """Widths of the input projections P (d × width each): one per cluster if div_val > 1, else ≤ one."""
        if not self.projected:
            return []
        return self.widths if self.div_val > 1 else [self.d_embed]

    def param_counts(self) -> dict[str, int]:
        """Closed-form counts as in ``params_summary.yaml`` (d, de, L, V, T as in the module docstring)::

            AdaEmb       = Σᵢ sizeᵢ·deᵢ + d·Σ(input projection widths) + T·d
            Attn         = L·(4d² + 4d)            FFN = Σ_l (2·d·d_inner_l + d_inner_l + d)
            nonembedding = Attn + FFN + (2L + 1)·2d
            total        = AdaEmb + nonembedding + n_clusters·(de + 1) + V + d·Σ(untied output projection widths)
                           (+ Σᵢ sizeᵢ·deᵢ again if tie_weight is false)
        """
        d, L = self.d_model, self.n_layer
        tables = sum((end - start) * w for (start, end), w in zip(self.ranges, self.widths))
        ada_emb = tables + d * sum(self.input_proj_widths) + self.tgt_len * d
        attn = L * (4 * d * d + 4 * d)
        ffn = sum(2 * d * di + di + d for di in self.d_inner)
        nonembedding = attn + ffn + (2 * L + 1) * 2 * d
        untied = [w for w, tied in zip(self.widths, self.tie_projs) if self.projected and not tied]
        softmax_own = self.n_clusters * (self.d_embed + 1) + self.n_token + d * sum(untied)
        total = ada_emb + nonembedding + softmax_own + (0 if self.tie_weight else tables)
        return {"AdaEmb": ada_emb, "Attn": attn, "FFN": ffn, "nonembedding": nonembedding, "total": total}

    def flops(self, seq_len: int) -> tuple[int, int]:
        """Forward multiply-adds of one sequence of T = ``seq_len`` tokens, ``(total, decoder)``::

            decoder = Σ_l (4·T·d² + 2·T²·d + 2·T·d·d_inner_l)      (q, k, v, out projections; QKᵀ and PV over the
                                                                     full T × T; the two MLP matrices)
            total   = decoder + T·Σᵢ ([Pᵢ]·d·deᵢ + deᵢ·nᵢ)           (all-vocabulary output: n₀ = size₀ + n_clusters,
                                                                     nᵢ = sizeᵢ; [Pᵢ] = 1 if cluster i is projected)

        Not counted: embedding lookups and input projections (they depend on which cluster each token is in),
        LayerNorms, biases, softmax exponentials.
        """
        T, d = seq_len, self.d_model
        decoder = sum(4 * T * d * d + 2 * T * T * d + 2 * T * d * di for di in self.d_inner)
        rows = [end - start for start, end in self.ranges]
        rows[0] += self.n_clusters
        output = sum(T * ((d * w if self.projected else 0) + w * n) for w, n in zip(self.widths, rows))
        return decoder + output, decoder


class AdaptiveEmbedding(nn.Module):
    """√d · (E_{c(y)}[y − start_c] P_cᵀ): per-cluster lookup, projection to d_model (if any) and scale.

    ``emb_layers``: one ``nn.Embedding`` per cluster (div_val = 1: a single V × d_embed table);
    ``emb_projs``: the projections P (d, width), bare Parameters.
    """

    def __init__(self, arch: Arch):
        super().__init__()
        self.arch = arch
        self.scale = arch.d_model**0.5
        if arch.div_val == 1:
            self.emb_layers = nn.ModuleList([nn.Embedding(arch.n_token, arch.d_embed)])
        else:
            self.emb_layers = nn.ModuleList(nn.Embedding(end - start, w) for (start, end), w in
                                            zip(arch.ranges, arch.widths))
        self.emb_projs = nn.ParameterList(torch.empty(arch.d_model, w) for w in arch.input_proj_widths)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.arch.div_val == 1:
            emb = self.emb_layers[0](ids)
            return (F.linear(emb, self.emb_projs[0]) if len(self.emb_projs) else emb) * self.scale
        flat = ids.reshape(-1)
        out = torch.zeros(flat.numel(), self.arch.d_model, dtype=self.emb_projs[0].dtype, device=ids.device)
        for i, (start, end) in enumerate(self.arch.ranges):
            idx = ((flat >= start) & (flat < end)).nonzero().squeeze(1)
            if idx.numel():
                out = out.index_copy(0, idx, F.linear(self.emb_layers[i](flat[idx] - start), self.emb_projs[i]))
        return out.view(*ids.shape, -1) * self.scale


class ProjectedAdaptiveLogSoftmax(nn.Module):
    """Adaptive log-softmax over V tokens whose cluster weights are the input tables (tie_weight) and whose
    projections are the input ones where tie_projs says so; see the module docstring for the formulas.

    ``out_weights``, ``out_projs``: per-cluster tables and projections (tied entries are the very Parameter
    objects of ``wte``); ``out_layers_biases``: one V vector (div_val = 1, sliced per cluster) or one per cluster.
    """

    def __init__(self, arch: Arch, wte: AdaptiveEmbedding):
        super().__init__()
        self.arch = arch
        tables = [m.weight for m in wte.emb_layers]
        self.out_weights = nn.ParameterList(tables if arch.tie_weight else (torch.empty_like(t) for t in tables))
        self.out_layers_biases = nn.ParameterList(torch.zeros(m.num_embeddings) for m in wte.emb_layers)
        shared = list(wte.emb_projs) * (len(arch.cutoffs) if arch.div_val == 1 else 1)
        self.out_projs = nn.ParameterList(
            shared[i] if tied else torch.empty(arch.d_model, w)
            for i, (w, tied) in enumerate(zip(arch.widths, arch.tie_projs)) if arch.projected)
        if arch.n_clusters:
            self.cluster_weight = nn.Parameter(torch.empty(arch.n_clusters, arch.d_embed))
            self.cluster_bias = nn.Parameter(torch.zeros(arch.n_clusters))

    def logits(self, h: torch.Tensor, i: int) -> torch.Tensor:
        """Logits of cluster i (the head cluster 0 with one extra logit per tail): (h Pᵢ) Wᵢᵀ + bᵢ."""
        if self.arch.div_val == 1:
            start, end = self.arch.ranges[i]
            weight, bias = self.out_weights[0][start:end], self.out_layers_biases[0][start:end]
        else:
            weight, bias = self.out_weights[i], self.out_layers_biases[i]
        if i == 0 and self.arch.n_clusters:
            weight, bias = torch.cat([weight, self.cluster_weight]), torch.cat([bias, self.cluster_bias])
        if len(self.out_projs):
            h = h @ self.out_projs[i]
        return F.linear(h, weight, bias)

    def log_probs(self, h: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (N, V) of every token for hidden states h (N, d)."""
        head = F.log_softmax(self.logits(h, 0), -1)
        size0 = self.arch.cutoffs[0]
        tails = [head[:, size0 + i - 1, None] + F.log_softmax(self.logits(h, i), -1)
                 for i in range(1, len(self.arch.cutoffs))]
        return torch.cat([head[:, :size0], *tails], 1)

    def nll(self, h: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """−log p(target) (N,) for hidden states h (N, d): the head cross-entropy against the target's head class
        (itself in cluster 0, else its cluster's tail logit), plus the tail cross-entropy on the rows of each tail."""
        cluster = torch.bucketize(target, target.new_tensor(self.arch.cutoffs[:-1]), right=True)
        head_class = torch.where(cluster == 0, target, self.arch.cutoffs[0] + cluster - 1)
        nll = F.cross_entropy(self.logits(h, 0), head_class, reduction="none")
        for i, (start, _) in enumerate(self.arch.ranges[1:], start=1):
            idx = (cluster == i).nonzero().squeeze(1)
            if idx.numel():
                tail = F.cross_entropy(self.logits(h[idx], i), target[idx] - start, reduction="none")
                nll = nll.index_add(0, idx, tail)
        return nll


class Attention(nn.Module):
    """Causal multi-head self-attention of GPT-2 with the query and the probabilities exposed as module outputs."""

    def __init__(self, d_model: int, n_head: int, dropatt: float, dropout: float):
        super().__init__()
        self.n_head = n_head
        self.c_attn = Conv1D(3 * d_model, d_model)
        self.c_proj = Conv1D(d_model, d_model)
        self.query = nn.Identity()
        self.softmax = nn.Softmax(dim=-1)
        self.attn_dropout = nn.Dropout(dropatt)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, future: torch.Tensor) -> torch.Tensor:
        """x (B, T, d); ``future`` (T, T) bool, True above the diagonal (masked)."""
        q, k, v = self.c_attn(x).chunk(3, dim=-1)
        q, k, v = (t.unflatten(-1, (self.n_head, -1)).transpose(1, 2) for t in (self.query(q), k, v))
        scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
        probs = self.attn_dropout(self.softmax(scores.masked_fill(future, float("-inf"))))
        return self.resid_dropout(self.c_proj((probs @ v).transpose(1, 2).flatten(2)))


class MLP(nn.Module):
    """c_proj(gelu_tanh(c_fc(x))) with residual dropout; gelu_tanh is GPT-2's gelu_new."""

    def __init__(self, d_model: int, d_inner: int, dropout: float):
        super().__init__()
        self.c_fc = Conv1D(d_inner, d_model)
        self.act = nn.GELU(approximate="tanh")
        self.c_proj = Conv1D(d_model, d_inner)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LN GPT-2 block: x + Attn(LN₁ x), then + MLP(LN₂ ·)."""

    def __init__(self, arch: Arch, layer: int):
        super().__init__()
        d = arch.d_model
        self.ln_1 = nn.LayerNorm(d, eps=1e-5)
        self.attn = Attention(d, arch.n_head[layer], arch.dropatt, arch.dropout)
        self.ln_2 = nn.LayerNorm(d, eps=1e-5)
        self.mlp = MLP(d, arch.d_inner[layer], arch.dropout)

    def forward(self, x: torch.Tensor, future: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), future)
        return x + self.mlp(self.ln_2(x))


class Trunk(nn.Module):
    """Token ids (B, T) → final hidden states LN_f(x_L) (B, T, d)."""

    def __init__(self, arch: Arch):
        super().__init__()
        self.wte = AdaptiveEmbedding(arch)
        self.wpe = nn.Embedding(arch.tgt_len, arch.d_model)
        self.drop = nn.Dropout(0.0)
        self.h = nn.ModuleList(Block(arch, layer) for layer in range(arch.n_layer))
        self.ln_f = nn.LayerNorm(arch.d_model, eps=1e-5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        T = ids.shape[1]
        if T > self.wpe.num_embeddings:
            raise LPZeroError(f"sequence length {T} exceeds this model's {self.wpe.num_embeddings} positions (tgt_len)")
        x = self.drop(self.wte(ids) + self.wpe(torch.arange(T, device=ids.device)))
        future = torch.ones(T, T, dtype=torch.bool, device=ids.device).triu(1)
        for block in self.h:
            x = block(x, future)
        return self.ln_f(x)


class GPT2Flex(nn.Module):
    """The LTS ``hf_gpt2_flex`` language model; parameter names follow Archai's (without its ``model.`` prefix)."""

    def __init__(self, arch: Arch):
        super().__init__()
        self.arch = arch
        self.transformer = Trunk(arch)
        self.lm_head = ProjectedAdaptiveLogSoftmax(arch, self.transformer.wte)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise as in the module docstring (spec §1.6)."""
        std = self.arch.init_std
        for m in self.modules():
            if isinstance(m, (Conv1D, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, std)
            if isinstance(m, (Conv1D, nn.LayerNorm)):
                nn.init.zeros_(m.bias)
            if isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
        with torch.no_grad():
            for block in self.transformer.h:
                for c_proj in (block.attn.c_proj, block.mlp.c_proj):
                    c_proj.weight.mul_((2 * self.arch.n_layer) ** -0.5)
        projections = {id(p): p for p in (*self.transformer.wte.emb_projs, *self.lm_head.out_projs)}
        for p in projections.values():
            nn.init.normal_(p, 0.0, self.arch.proj_init_std)
        if not self.arch.tie_weight:
            for table in self.lm_head.out_weights:
                nn.init.normal_(table, 0.0, std)
        for bias in self.lm_head.out_layers_biases:
            nn.init.zeros_(bias)
        if self.arch.n_clusters:
            nn.init.normal_(self.lm_head.cluster_weight, 0.0, std)
            nn.init.zeros_(self.lm_head.cluster_bias)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Per-token NLL (B, T) of ``labels`` (the next tokens, not shifted again); without labels, log-probs
        (B, T, V)."""
        h = self.transformer(input_ids).flatten(0, 1)
        if labels is None:
            return self.lm_head.log_probs(h).view(*input_ids.shape, -1)
        return self.lm_head.nll(h, labels.reshape(-1)).view(input_ids.shape)

    def param_counts(self) -> dict[str, int]:
        """Counts by module type, as Archai's ``params_summary.yaml`` (see :meth:`Arch.param_counts`)."""
        def params(kind) -> int:
            return sum(p.numel() for m in self.modules() if isinstance(m, kind) for p in m.parameters())

        attn, ffn = params(Attention), params(MLP)
        return {
            "AdaEmb": params(AdaptiveEmbedding) + self.transformer.wpe.weight.numel(),
            "Attn": attn,
            "FFN": ffn,
            "nonembedding": attn + ffn + params(nn.LayerNorm),
            "total": sum(p.numel() for p in self.parameters()),
        }


@dataclass
class GPT2LTS(Benchmark):
    """LTS GPT-2 architectures with their perplexities; ``extra`` holds ``config_paths``, ``ppl_summary`` and
    ``params_summary`` (None when absent)."""

    def __post_init__(self):
        paths = self.extra.get("config_paths", self.arch_keys)
        self.archs = [Arch.from_config(cfg, str(path)) for cfg, path in zip(self.configs, paths)]

    def descriptors(self, i: int) -> dict[str, float]:
        """Structure and closed-form counts: params_decoder = nonembedding, params_embedding = AdaEmb;
        flops / flops_decoder per :meth:`Arch.flops` at ``default_seq_len``."""
        arch = self.archs[i]
        counts = arch.param_counts()
        flops, flops_decoder = arch.flops(self.default_seq_len)
        return {
            "n_layers": arch.n_layer, "hidden": arch.d_model,
            "params_total": counts["total"], "params_decoder": counts["nonembedding"],
            "params_attention": counts["Attn"], "params_ffn": counts["FFN"], "params_embedding": counts["AdaEmb"],
            "flops": flops, "flops_decoder": flops_decoder,
        }

    def build(self, i: int, seed: int = 0) -> GPT2Flex:
        torch.manual_seed(arch_seed(seed, i))
        return GPT2Flex(self.archs[i]).train()

    def batch(self, batch_size: int | None = None, seq_len: int | None = None,
              seed: int = 0) -> dict[str, torch.Tensor]:
        """``text.gpt2_batch``: input_ids and next-token labels, (batch_size, seq_len) each."""
        seq_len = seq_len or self.default_seq_len
        positions = min(arch.tgt_len for arch in self.archs)
        if seq_len > positions:
            raise LPZeroError(f"seq_len={seq_len} exceeds the {positions} positions of these models; use ≤ {positions}")
        from lpzero_core.stats.text import gpt2_batch  # the tokenizer stack loads only when a batch is asked for

        return gpt2_batch(batch_size or self.default_batch_size, seq_len, seed=seed)

    def loss(self, model: GPT2Flex, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean NLL of the labels, as the LTS/LPZero proxy scripts take it."""
        return model(batch["input_ids"], batch["labels"]).float().mean()

    def sites(self, model: GPT2Flex) -> Sites:
        blocks = model.transformer.h
        linear = [m for b in blocks for m in (b.attn.c_attn, b.attn.c_proj, b.mlp.c_fc, b.mlp.c_proj)]
        return Sites(act=list(linear), head=[b.attn.query for b in blocks], softmax=[b.attn.softmax for b in blocks],
                     linear=linear, embedding=model.transformer.drop)

    def param_check(self, i: int) -> dict[str, tuple[int, int]]:
        """Published counts vs those of the rebuilt model (:meth:`GPT2Flex.param_counts`)."""
        published = self.extra.get("params_summary")
        if published is None:
            raise LPZeroError(f"{self.name}: no params_summary.yaml was found beside the configs; nothing to check")
        rebuilt = GPT2Flex(self.archs[i]).param_counts()
        entry = published[self.arch_keys[i]]
        return {f: (int(entry[f]), rebuilt[f]) for f in FIELDS}


def load(variant: str | None = None) -> GPT2LTS:
    """The 200 WikiText-103 architectures of LTS, located (and verified) through
    :func:`lpzero_core.stats.data.locate`."""
    if variant not in (None, *VARIANTS):
        raise LPZeroError(f"{NAME}: unknown variant {variant!r}; the only variant is {VARIANTS[0]!r}")
    ppl = _read_yaml(locate("gpt2_wt103/ppl_summary.yaml"))
    params = _read_yaml(locate("gpt2_wt103/params_summary.yaml"))
    keys = sorted(ppl, key=natural_key)
    paths = [locate("gpt2_wt103/{}/{}/model_config.yaml".format(*key.rsplit("_", 1))) for key in keys]
    return _benchmark(NAME, keys, paths, ppl, params)


def from_config_dir(path: str | Path, name: str | None = None) -> GPT2LTS:
    """A benchmark from a folder of LTS-style files: every ``model_config.yaml`` below ``path`` is one
    architecture, keyed by its folder relative to ``path`` with ``/`` → ``_`` (``config_3/j7`` → ``config_3_j7``).
    Optional ``path/ppl_summary.yaml`` gives the target (−valid_ppl; NaN where missing) and optional
    ``path/params_summary.yaml`` the published counts for ``param_check``. ``name`` defaults to
    ``gpt2-flex-<folder name>``; ``source`` records the folder and the content hash of these files."""
    root = Path(path)
    files = list(root.rglob("model_config.yaml"))
    if not files:
        raise LPZeroError(f"{root}: no model_config.yaml below this folder "
                          "(expected <folder>/config_N/jM/model_config.yaml)")
    keyed = sorted(((("_".join(f.parent.relative_to(root).parts) or root.name), f) for f in files),
                   key=lambda kf: natural_key(kf[0]))
    ppl_file, params_file = root / "ppl_summary.yaml", root / "params_summary.yaml"
    ppl = _read_yaml(ppl_file) if ppl_file.is_file() else {}
    params = _read_yaml(params_file) if params_file.is_file() else None
    hashed = files + [f for f in (ppl_file, params_file) if f.is_file()]
    source = {"path": str(root.resolve()), "sha256": content_hash(root, hashed), "options": {}}
    return _benchmark(name or f"gpt2-flex-{root.resolve().name}", [k for k, _ in keyed], [f for _, f in keyed],
                      ppl, params, source)


def _benchmark(name: str, keys: list[str], paths: list[Path], ppl: dict, params: dict | None,
               source: dict | None = None) -> GPT2LTS:
    """Assemble the benchmark (target, strata, split, default batch as documented in the module docstring)."""
    configs = [_read_config(p) for p in paths]
    n = len(keys)
    positions = min(int(c.get("tgt_len", 192)) for c in configs)
    if positions < 192:
        warnings.warn(f"{name}: sequence length {positions} (the models' positions, tgt_len), not the default 192",
                      stacklevel=3)
    return GPT2LTS(
        name=name, variant=VARIANTS[0], arch_keys=keys, configs=configs,
        target=_targets(ppl, keys, "ppl_summary.yaml"),
        target_name="-valid_ppl",
        strata=np.array([_depth_band(int(c["n_layer"])) for c in configs]),
        search_ids=np.sort(np.random.default_rng(0).choice(n, size=max(1, n // 4), replace=False)),
        default_batch_size=4, default_seq_len=min(192, positions), source=source,
        extra={"config_paths": [str(p) for p in paths], "ppl_summary": ppl, "params_summary": params},
    )


def _depth_band(n_layer: int) -> str:
    """``"L1-4"``, ``"L5-8"``, …: bands of four layers."""
    low = 4 * ((n_layer - 1) // 4) + 1
    return f"L{low}-{low + 3}"


def _read_yaml(path: Path) -> dict:
    """A YAML mapping; an unreadable file, bad YAML, an empty file or a file that is no mapping is one line."""
    try:
        data = yaml.load(read_text(path, "YAML file"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as err:
        raise LPZeroError(f"{path}: cannot read it as YAML ({' '.join(str(err).split())})") from None
    if not isinstance(data, dict):
        found = "nothing" if data is None else type(data).__name__
        raise LPZeroError(f"{path}: expected a YAML mapping, found {found}")
    return data


Width = Annotated[int, Field(ge=1)]


class _ModelConfig(BaseModel):
    """What a ``model_config.yaml`` must hold for the model to be built (types and ranges; other keys pass)."""

    model_config = ConfigDict(extra="allow")
    n_layer: Width
    d_model: Width
    n_head: Width | Annotated[list[Width], Field(min_length=1)]
    d_inner: Width | Annotated[list[Width], Field(min_length=1)]
    d_embed: Annotated[int, Field(ge=-1)] | None
    div_val: Width
    cutoffs: Annotated[list[Width], Field(min_length=1)]
    n_token: Width
    tgt_len: Width
    tie_weight: bool
    tie_projs: list[bool]
    dropout: Annotated[float, Field(ge=0, lt=1)]
    dropatt: Annotated[float, Field(ge=0, lt=1)]
    weight_init_std: Annotated[float, Field(gt=0)]
    proj_init_std: Annotated[float, Field(gt=0)]


def _read_config(path: Path) -> dict:
    """A ``model_config.yaml``, checked against :class:`_ModelConfig` (one line naming the file and the key)."""
    cfg = _read_yaml(path)
    missing = [k for k in REQUIRED if k not in cfg]
    if missing:
        raise LPZeroError(f"{path}: missing keys {', '.join(missing)} (an hf_gpt2_flex model_config.yaml has them)")
    try:
        _ModelConfig.model_validate(cfg)
    except ValidationError as error:
        first = error.errors()[0]
        key = first["loc"][0]
        raise LPZeroError(f"{path}: {key}={cfg[key]!r}: {first['msg'].removeprefix('Input ')}") from None
    if cfg["d_embed"] == 0:
        raise LPZeroError(f"{path}: d_embed=0: should be a width ≥ 1, or -1 / null for d_model")
    return cfg


def _targets(ppl: dict, keys: list[str], where) -> np.ndarray:
    """−valid_ppl per key (NaN where ``ppl`` has no entry); an entry without a finite, positive ``valid_ppl`` is one
    line naming the file and the key."""
    values = []
    for key in keys:
        if key not in ppl:
            values.append(np.nan)
            continue
        entry = ppl[key]
        value = entry.get("valid_ppl") if isinstance(entry, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
            raise LPZeroError(f"{where}: {key}: valid_ppl should be a finite number > 0, got "
                              f"{'nothing' if value is None else repr(value)}")
        values.append(-float(value))
    return np.array(values, dtype=np.float64)
