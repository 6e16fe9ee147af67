"""Shared fixtures. Tests run offline (HF_HUB_OFFLINE=1, LPZERO_OFFLINE=1) with a headless matplotlib backend.

Tests marked ``needs_data`` read the benchmark ground truth (data/README.md: found through LPZERO_DATA_DIR,
data/ or ../shared/data; never committed). Where it cannot be found offline they are skipped with the reason,
unless LPZERO_REQUIRE_DATA=1 makes that a failure.
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LPZERO_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    from lpzero_core.errors import LPZeroError
    from lpzero_core.stats import data

    if os.environ.get("LPZERO_REQUIRE_DATA") == "1" or not any("needs_data" in item.keywords for item in items):
        return
    try:
        data.verify_all(download=False)
    except LPZeroError as error:
        skip = pytest.mark.skip(reason=f"benchmark data not available offline: {error}")
        for item in items:
            if "needs_data" in item.keywords:
                item.add_marker(skip)


SYNTHETIC = dict(n_archs=150, seed=0, n_search=50)


@pytest.fixture(scope="session")
def synthetic_cache_dir(tmp_path_factory):
    """Directory of a small synthetic statistics cache (``SYNTHETIC``: 150 architectures, 50 in the search
    split), written once per session."""
    from lpzero_core.stats.benchmarks.synthetic import make_cache

    directory = tmp_path_factory.mktemp("synthetic")
    make_cache(directory, **SYNTHETIC)
    return directory


@pytest.fixture(scope="session")
def synthetic_cache(synthetic_cache_dir):
    """The cache of ``synthetic_cache_dir``, loaded."""
    from lpzero_core.stats.cache import StatsCache

    return StatsCache.load(synthetic_cache_dir)


@pytest.fixture(scope="session")
def poisoned():
    """``poisoned(cache, features)``: the cache with every held-out target NaN (and, with ``features``, every
    held-out statistic, descriptor and baseline NaN too) — a search that reads no held-out id cannot tell."""
    import dataclasses

    import numpy as np

    def poison(cache, features: bool):
        heldout = cache.heldout_ids
        target = np.array(cache.target)
        target[heldout] = np.nan
        changes = {"manifest": {**cache.manifest, "target": target.tolist()}, "_memo": {}}
        if features:
            tables = {x: t.copy() for x, t in cache.tables.items()}
            for t in tables.values():
                t[heldout] = np.nan
            descriptors, baselines = cache.descriptors.copy(), cache.baselines.copy()
            descriptors.iloc[heldout] = np.nan
            baselines.iloc[heldout] = np.nan
            changes |= {"tables": tables, "descriptors": descriptors, "baselines": baselines}
        return dataclasses.replace(cache, **changes)

    return poison
