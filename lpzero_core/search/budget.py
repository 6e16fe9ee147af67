"""Resource guards: a search whose memory or time estimate exceeds the machine is refused before it starts, with
the estimate, instead of running until it is killed.

The estimates are deliberately rough upper-side figures (measured on a 2-core laptop, then rounded up), not
promises: per individual kept in memory (a genotype with its fitness, or a DEAP tree with its assessment) and per
candidate evaluated (its canonical string in the RPS / assessment memory, and its vector work over the
architectures). A search is refused when its memory estimate exceeds the machine's physical memory, or its time
estimate exceeds :data:`MAX_HOURS`.
"""
from __future__ import annotations

import os

from lpzero_core.errors import LPZeroError

#: bytes per individual kept (population, offspring) and per candidate remembered, per search kind
BYTES_PER_MEMBER = {"template": 4_096, "tree": 16_384}
BYTES_PER_CANDIDATE = {"template": 512, "tree": 2_048}
#: seconds per candidate: a fixed part and a part per architecture scored
SECONDS_PER_CANDIDATE = {"template": 1e-4, "tree": 1e-3}
SECONDS_PER_ARCH = {"template": 1e-6, "tree": 2e-5}
MAX_HOURS = 24


def machine_memory() -> int:
    """Physical memory of this machine in bytes (a generous 1 TiB where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


def check(kind: str, members: int, candidates: int, n_archs: int, what: str) -> None:
    """Refuse (``LPZeroError``, naming ``what`` and the estimate) a ``kind`` search (``template`` or ``tree``) that
    keeps ``members`` individuals and evaluates ``candidates`` on ``n_archs`` architectures, when it would not fit."""
    memory = members * BYTES_PER_MEMBER[kind] + candidates * BYTES_PER_CANDIDATE[kind]
    seconds = candidates * (SECONDS_PER_CANDIDATE[kind] + n_archs * SECONDS_PER_ARCH[kind])
    if memory > machine_memory():
        raise LPZeroError(f"{what}: about {memory / 2**30:.1f} GiB of memory estimated, more than this machine's "
                          f"{machine_memory() / 2**30:.1f} GiB; use a smaller population or fewer offspring")
    if seconds > MAX_HOURS * 3600:
        raise LPZeroError(f"{what}: about {seconds / 3600:.0f} hours estimated ({candidates} candidates on {n_archs} "
                          f"architectures), more than the {MAX_HOURS} h a search may take; use fewer")
