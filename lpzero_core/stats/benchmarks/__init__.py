"""Benchmark registry: ``get(name, variant)`` returns a loaded :class:`Benchmark`."""
from __future__ import annotations

import importlib

from lpzero_core.errors import LPZeroError
from lpzero_core.stats.benchmarks.base import INPUTS, Benchmark, Sites, seed_for

#: registry name -> (module, loader function)
REGISTRY = {
    "flexibert": ("lpzero_core.stats.benchmarks.flexibert", "load"),
    "gpt2-wt103": ("lpzero_core.stats.benchmarks.gpt2_lts", "load"),
}


def get(name: str, variant: str | None = None) -> Benchmark:
    """Load benchmark ``name`` (model variant ``variant``, or its default)."""
    if name not in REGISTRY:
        raise LPZeroError(f"unknown benchmark {name!r}; choose one of: {', '.join(sorted(REGISTRY))}, synthetic")
    module, loader = REGISTRY[name]
    return getattr(importlib.import_module(module), loader)(variant)


__all__ = ["INPUTS", "Benchmark", "Sites", "seed_for", "get", "REGISTRY"]
