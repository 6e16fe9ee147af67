"""The benchmark registry: names and paths through one door, cache keys, rebuilding a path benchmark on a worker."""
import warnings

import numpy as np
import pytest
import yaml
from safetensors.numpy import load_file

from lpzero_core.errors import LPZeroError
from lpzero_core.search.proxy import RELEASED
from lpzero_core.stats import benchmarks, cache
from lpzero_core.stats.cache import StatsCache, arch_path, cache_key
from lpzero_core.stats.data import locate
from lpzero_core.stats.extract import open_cache, settings
from lpzero_core.workbench.cli import main

#: cache keys of the registered benchmarks before paths existed, at EXTRACTION_VERSION 1 (with the version of then,
#: the key derivation must give them still: the registry adds nothing to a registered benchmark's settings)
KEYS = {("flexibert", None): "371e2ca1627128be", ("flexibert", "port"): "f243e5235e8a8e1c",
        ("gpt2-wt103", None): "eee927ec4b4a97b6"}
#: tiny LTS architectures (n_layer, d_model, n_head): 12, so that the search split (n // 4) has three
TINY_LTS = [(1 + i % 3, 32 * (1 + i % 4), 2) for i in range(12)]


@pytest.mark.needs_data
@pytest.mark.parametrize("name, variant", KEYS)
def test_registered_cache_keys_are_unchanged(name, variant, monkeypatch):
    config = settings(benchmarks.get(name, variant))
    monkeypatch.setattr(cache, "EXTRACTION_VERSION", 1)
    assert "source" not in config and cache_key(config) == KEYS[name, variant]


@pytest.fixture(scope="module")
def lts_folder(tmp_path_factory):
    """An LTS folder not shipped with the project: wt103's config_0/j0 made tiny, 32 positions, made-up ppl."""
    root = tmp_path_factory.mktemp("lts")
    base = yaml.safe_load(locate("gpt2_wt103/config_0/j0/model_config.yaml").read_text())
    ppl = {}
    for j, (layers, d, heads) in enumerate(TINY_LTS):
        config = {**base, "n_layer": layers, "d_model": d, "d_embed": d, "n_head": heads, "d_inner": 2 * d,
                  "tgt_len": 32}
        (root / "config_0" / f"j{j}").mkdir(parents=True)
        (root / "config_0" / f"j{j}" / "model_config.yaml").write_text(yaml.safe_dump(config))
        ppl[f"config_0_j{j}"] = {"valid_ppl": 100.0 - 5 * layers - d / 32}
    (root / "ppl_summary.yaml").write_text(yaml.safe_dump(ppl))
    return root


@pytest.mark.needs_data
def test_lts_folder_adapts_its_length_and_carries_its_identity(lts_folder, tmp_path):
    with pytest.warns(UserWarning, match="sequence length 32"):
        bench = benchmarks.get(lts_folder)
    assert bench.default_seq_len == 32 and bench.batch()["input_ids"].shape == (4, 32)
    config = settings(bench)
    assert config["source"]["path"] == str(lts_folder.resolve()) and benchmarks.rebuild(config).source == bench.source
    with pytest.raises(LPZeroError, match="apply to Hugging Face"):
        benchmarks.get(lts_folder, target="x")
    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "model_config.yaml").write_text((lts_folder / "config_0/j0/model_config.yaml").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = settings(benchmarks.get(changed))
        (changed / "model_config.yaml").write_text(
            (lts_folder / "config_0/j0/model_config.yaml").read_text().replace("n_layer: 1", "n_layer: 2"))
        with pytest.raises(LPZeroError, match="changed since"):
            benchmarks.rebuild(config)
        assert cache_key(settings(benchmarks.get(changed))) != cache_key(config)


@pytest.mark.needs_data
@pytest.mark.slow
def test_lts_folder_from_the_cli_serial_and_dask_same_bits(lts_folder, tmp_path):
    common = ["--benchmark", str(lts_folder)]
    serial, dask = tmp_path / "serial", tmp_path / "dask"
    extract = ["extract", *common, "--batch-size", "2", "--no-baselines"]
    assert main([*extract, "--workers", "1", "--cache", str(serial)]) == 0
    assert main([*extract, "--workers", "2", "--archs", "0:2", "--cache", str(dask)]) == 0
    for i in range(2):
        a, b = load_file(arch_path(serial, i)), load_file(arch_path(dask, i))
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    out = tmp_path / "run"
    assert main(["search", *common, "--cache", str(serial), "--population", "10", "--iterations", "20", "--out",
                 str(out), "--quiet", "--bootstrap", "20"]) == 0
    assert main(["evaluate", *common, "--cache", str(serial), "--proxy", str(out / "best.json"), "--baseline",
                 "params_total", "--bootstrap", "20"]) == 0
    assert main(["rank", *common, "--cache", str(serial), "--proxy", str(out / "best.json"), "--proxy",
                 str(RELEASED["lpzero_gpt2"]), "--out", str(tmp_path / "ranks.csv")]) == 0
    ranks = (tmp_path / "ranks.csv").read_text().splitlines()
    assert ranks[0].startswith("arch,rank,") and ranks[0].endswith(",target") and len(ranks) == 1 + len(TINY_LTS)


def test_synthetic_through_the_same_door(tmp_path):
    cache = open_cache("synthetic", directory=tmp_path, n_archs=12, n_search=4)
    assert len(cache) == 12 and len(cache.search_ids) == 4
    assert open_cache("synthetic", directory=tmp_path).manifest["key"] == cache.manifest["key"]  # loaded, not made
    again = open_cache("synthetic", directory=tmp_path, n_archs=16, n_search=4)
    assert len(again) == 16 and len(StatsCache.load(tmp_path)) == 16
    with pytest.raises(LPZeroError, match="generated"):
        benchmarks.get("synthetic")
    with pytest.raises(LPZeroError, match="unexpected options"):
        open_cache("flexibert", n_archs=3)


def test_the_cli_names_every_registered_benchmark():
    """The CLI keeps its names without importing the registry (start-up stays light); they must agree, or
    `lpzero results` would skip a registered benchmark's README blocks."""
    from lpzero_core.stats.benchmarks import REGISTRY
    from lpzero_core.workbench.cli import BENCHMARK_NAMES

    assert BENCHMARK_NAMES == tuple(REGISTRY)
