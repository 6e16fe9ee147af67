"""Every seed the project derives, in one place.

One user-facing ``seed`` drives a whole extraction, search or study. Where a part of it needs its own seed, it is
derived here, and nowhere else:

* :func:`arch_seed` — the torch seed of architecture ``index`` (model initialisation and its dropout):
  the first 4 bytes, little-endian, of sha256(``"{seed}:{index}"``). Stable across processes and machines and
  independent of the order in which architectures are built.
* :func:`sample_seed` — the torch generator seed of architecture ``index``'s bounded site samples in the cache:
  ``seed · 1 000 003 + index``.
* :func:`row_seed` — the torch generator seed of the rows that linear site ``site`` keeps in the ``weight`` and
  ``grad`` inputs, for a benchmark that reads a fraction of each linear site (``Benchmark.linear_rows``): the first
  4 bytes, little-endian, of sha256(``"rows:{seed}:{site}"``). It does not depend on the architecture, so sites
  of equal shape keep the same rows in every architecture (common random numbers).
* :func:`streams` — ``n`` independent numpy generators for the parts of one run (e.g. the search and its random
  baselines; one search seed per repetition): ``numpy.random.SeedSequence(seed).spawn(n)``.

The first two predate this module and are kept exactly as they were, so that statistics caches keep their bits
(a new derivation would change every cache); so is the synthetic benchmark's (``numpy.random.default_rng(seed)``
for its architectures, ``default_rng(seed + 1)`` for its search split). The GP draws from
``numpy.random.default_rng(seed)`` and the tree search seeds DEAP's ``random`` with ``seed``. New code asks
:func:`streams`.
"""
from __future__ import annotations

import hashlib

import numpy as np


def arch_seed(seed: int, index: int) -> int:
    """Torch seed of architecture ``index`` under the run seed ``seed`` (see the module docstring)."""
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def sample_seed(seed: int, index: int) -> int:
    """Seed of the generator that draws architecture ``index``'s cache samples."""
    return seed * 1_000_003 + index


def row_seed(seed: int, site: int) -> int:
    """Seed of the generator that draws the kept rows of linear site ``site`` (module docstring)."""
    digest = hashlib.sha256(f"rows:{seed}:{site}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def streams(seed: int, n: int) -> list[np.random.Generator]:
    """``n`` independent generators spawned from ``SeedSequence(seed)``."""
    return [np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(n)]
