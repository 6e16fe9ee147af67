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
