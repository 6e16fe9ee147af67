"""The statistics cache as its consumers see it."""
import numpy as np

from lpzero_core.search.ops import INPUTS
from lpzero_core.stats.cache import StatsCache


def _arch(baselines: dict) -> tuple[dict, dict]:
    tensors = {f"table.{x}": np.ones((20, 20, 2)) for x in INPUTS}
    tensors |= {f"sample.{x}": np.ones((2, 3, 4), dtype=np.float32) for x in INPUTS}
    return tensors, {"descriptors": {"params_total": 7.0}, "baselines": baselines,
                     "baseline_seconds": {k: 0.1 for k in baselines}, "seconds": 1.0}


def test_a_cache_exposes_only_the_baselines_this_version_defines():
    """An older extraction stored ``params`` (a copy of params_total) among the network baselines: a loaded cache
    must not offer it again as a table row, tree leaf or surrogate feature."""
    manifest = {"arch_keys": ["a", "b"], "target": [1.0, 2.0], "strata": ["s", "s"], "search_ids": [0]}
    cache = StatsCache.from_arrays(manifest, [_arch({"snip": 1.0, "params": 7.0}), _arch({"snip": 2.0, "params": 7.0})])
    assert list(cache.baselines.columns) == ["snip"]
    assert list(cache.baseline_seconds.columns) == ["snip"]
    assert cache.baselines["snip"].tolist() == [1.0, 2.0]
