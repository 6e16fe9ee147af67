"""Shared fixtures. Tests run offline (HF_HUB_OFFLINE=1, LPZERO_OFFLINE=1) with a headless matplotlib backend."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LPZERO_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402


SYNTHETIC = dict(n_archs=150, seed=0, n_search=50)


@pytest.fixture(scope="session")
def synthetic_cache_dir(tmp_path_factory):
    """Directory of a small synthetic statistics cache (``SYNTHETIC``: 150 architectures, 50 in the search
    split), written once per session."""
    from lpzero_core.benchmarks.synthetic import make_cache

    directory = tmp_path_factory.mktemp("synthetic")
    make_cache(directory, **SYNTHETIC)
    return directory


@pytest.fixture(scope="session")
def synthetic_cache(synthetic_cache_dir):
    """The cache of ``synthetic_cache_dir``, loaded."""
    from lpzero_core.cache import StatsCache

    return StatsCache.load(synthetic_cache_dir)
