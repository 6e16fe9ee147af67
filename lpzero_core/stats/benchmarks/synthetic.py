"""Synthetic benchmark: random per-site tensors whose ground truth is a planted proxy plus noise.

It exercises the whole search pipeline without building a network, and has a known answer: the planted formula
lies inside the search space, so a working GP must recover a proxy that ranks held-out architectures almost as
well as the planted one does.

Generative model (architecture a, seeded by ``seed``):

* depth L_a ∈ {2, …, 8}, width h_a ∈ {64, 128, 256} (descriptors only, with params = 12·L·h²);
* independent log-normal scales s_a,X per input X; site l of input X is ``s_a,X · (1 + 0.1·l) · Z`` with Z
  standard normal (``softmax`` sites are softmax(Z / s) over the last axis, so they stay probabilities);
* sites per input: weight and grad 2L, act, head and softmax L, jacobian 1 — small fixed shapes;
* ground truth = planted proxy score + N(0, (noise · std(score))²).

Split: the first ``n_search`` architectures (default 100) are the search split; the rest are held out.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from lpzero_core.files import atomic_write_text
from lpzero_core.search.ops import INPUTS, branch_tables
from lpzero_core.search.proxy import Proxy
from lpzero_core.stats.cache import StatsCache, cache_dir, cache_key, site_sample, write_arch

PLANTED = Proxy.parse("element_wise_sum(weight.element_wise_pow.l1_norm, act.element_wise_abs.to_mean_scalar)@mean")
SHAPES = {"act": (8, 32), "grad": (16, 24), "head": (8, 16), "softmax": (2, 8, 8), "weight": (16, 24),
          "jacobian": (8, 16)}


def _sites_per_input(depth: int) -> dict[str, int]:
    return {"act": depth, "grad": 2 * depth, "head": depth, "softmax": depth, "weight": 2 * depth, "jacobian": 1}


def generate(n_archs: int = 500, seed: int = 0) -> tuple[list[dict], dict[str, list[list[torch.Tensor]]]]:
    """Architectures (depth, width, scales) and their per-input lists of site tensors."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    archs, tensors = [], {x: [] for x in INPUTS}
    for _ in range(n_archs):
        depth, width = int(rng.integers(2, 9)), int(rng.choice([64, 128, 256]))
        scales = {x: float(np.exp(rng.normal(0.0, 0.5))) for x in INPUTS}
        archs.append({"n_layers": depth, "hidden": width, "scales": scales})
        for x, count in _sites_per_input(depth).items():
            sites = []
            for layer in range(count):
                z = torch.randn(SHAPES[x], generator=gen)
                scale = scales[x] * (1 + 0.1 * layer)
                sites.append(torch.softmax(z / scale, dim=-1) if x == "softmax" else scale * z)
            tensors[x].append(sites)
    return archs, tensors


def settings(n_archs: int = 500, seed: int = 0, noise: float = 0.05, planted: Proxy = PLANTED) -> dict:
    return {"benchmark": "synthetic", "variant": "planted", "n_archs": n_archs, "seed": seed, "noise": noise,
            "planted": str(planted)}


def open_cache(directory: str | Path | None = None, *, seed: int = 0, allow_partial: bool = False,
               **options) -> StatsCache:
    """The synthetic cache (the registry's door for this generated benchmark).

    ``options`` are those of :func:`make_cache` (``n_archs``, ``noise``, ``n_search``, ``planted``). Without
    options, an explicit ``directory`` is loaded as it is; otherwise the cache at ``directory`` (default: the cache
    root, named by the settings) is reused when it was generated with exactly these settings and split, and
    generated afresh when not.
    """
    if directory is not None and not options:
        return StatsCache.load(directory, allow_partial)
    n_search = options.pop("n_search", 100)
    config = settings(seed=seed, **options)
    directory = Path(directory) if directory is not None else cache_dir(config)
    manifest = directory / "manifest.json"
    if manifest.exists():
        data = json.loads(manifest.read_text())
        if data.get("settings") == config and data["search_ids"] == list(range(n_search)):
            return StatsCache.load(directory, allow_partial)
    return make_cache(directory, seed=seed, n_search=n_search, **options)


def load(n_archs: int = 500, seed: int = 0) -> StatsCache:
    """The default synthetic cache in the cache root, generated on first use (``bench/`` reads it this way)."""
    return open_cache(seed=seed, n_archs=n_archs)


def make_cache(directory: str | Path, n_archs: int = 500, seed: int = 0, noise: float = 0.05,
               n_search: int = 100, planted: Proxy = PLANTED) -> StatsCache:
    """Write a complete synthetic statistics cache to ``directory`` and return it loaded."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    archs, tensors = generate(n_archs, seed)
    score = np.array([planted.score_tensors({x: tensors[x][a] for x in INPUTS}) for a in range(n_archs)])
    rng = np.random.default_rng(seed + 1)
    target = score + rng.normal(0.0, noise * score.std(), size=n_archs)

    tables = {}
    for x in INPUTS:  # one vmapped table computation per input over every site of every architecture
        flat = branch_tables(torch.stack([t for sites in tensors[x] for t in sites])).numpy()
        bounds = np.cumsum([0] + [len(sites) for sites in tensors[x]])
        tables[x] = [flat[bounds[a]:bounds[a + 1]].transpose(1, 2, 0) for a in range(n_archs)]

    config = settings(n_archs, seed, noise, planted)
    key = cache_key(config)
    sample_gen = torch.Generator().manual_seed(seed)
    for a, arch in enumerate(archs):
        samples = {x: np.stack([site_sample(t, sample_gen).numpy() for t in tensors[x][a]]) for x in INPUTS}
        descriptors = {"n_layers": arch["n_layers"], "hidden": arch["hidden"],
                       "params_total": 12 * arch["n_layers"] * arch["hidden"] ** 2}
        write_arch(directory, a, {x: tables[x][a] for x in INPUTS}, samples,
                   {"key": key, "arch": str(a), "descriptors": descriptors, "planted_score": float(score[a])})
    manifest = {**config, "key": key, "settings": config, "arch_keys": [str(a) for a in range(n_archs)],
                "target": target.tolist(), "target_name": f"planted {planted} + noise",
                "strata": [f"L{a['n_layers']}" for a in archs], "search_ids": list(range(n_search))}
    atomic_write_text(directory / "manifest.json", json.dumps(manifest))
    return StatsCache.load(directory)
