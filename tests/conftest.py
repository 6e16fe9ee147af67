"""Shared fixtures. Tests run offline (HF_HUB_OFFLINE=1, LPZERO_OFFLINE=1) with a headless matplotlib backend."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LPZERO_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def synthetic_cache(tmp_path_factory):
    """A small synthetic statistics cache (150 architectures, 50 in the search split)."""
    from lpzero_core.benchmarks.synthetic import make_cache

    return make_cache(tmp_path_factory.mktemp("synthetic"), n_archs=150, seed=0, n_search=50)
