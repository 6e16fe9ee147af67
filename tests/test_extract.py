"""Extraction into the cache: fidelity against direct computation, resumption, Dask equivalence; proxy_inputs on a toy.

Tiny settings (one short sequence, the smallest architectures, no baselines) keep each test to seconds.
"""
import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from torch import nn

from lpzero_core.errors import LPZeroError
from lpzero_core.search.ops import INPUTS, TABLE_INDEX, branch_tables
from lpzero_core.search.proxy import RELEASED
from lpzero_core.stats import benchmarks
from lpzero_core.stats.benchmarks.base import Sites
from lpzero_core.stats.cache import StatsCache, arch_path, cache_key, missing_archs
from lpzero_core.stats.extract import extract, parse_archs, proxy_inputs, settings, torch_threads

pytestmark = pytest.mark.needs_data

SMALLEST = {"flexibert": [3, 20, 25], "gpt2-wt103": [93, 155, 168]}
TINY = dict(batch_size=1, seq_len=16, with_baselines=False, progress=False)


@pytest.mark.parametrize("name", SMALLEST)
def test_cached_tables_and_released_proxies_equal_direct(name, tmp_path):
    """Every cached table entry equals its definition mean(op_j(op_i(site))), computed op by op
    (``ops.branch_tables``), on every site of three real architectures — except mean(normalize(·)), exactly 0 in the
    table where the op-by-op mean is rounding noise (up to ~1e-12 after logsoftmax); and the released proxies from
    the cache equal their direct values."""
    benchmark = benchmarks.get(name)
    ids = SMALLEST[name]
    directory = extract(benchmark, ids, directory=tmp_path, **TINY)
    cache = StatsCache.load(directory, allow_partial=True)
    config = settings(benchmark, 1, 16, 0, False)
    batch = benchmark.batch(config["batch_size"], config["seq_len"], 0)
    for position, i in enumerate(ids):
        with torch_threads(1):  # as extraction runs: the same float32 inputs, bit for bit
            inputs = proxy_inputs(benchmark, benchmark.build(i, 0), batch)
        assert all(len(inputs[x]) > 0 for x in inputs), "every input must be live"
        assert any(g.abs().max() > 1e-4 for g in inputs["grad"]), "gradients must carry signal"
        for x in INPUTS:
            for site, tensor in enumerate(inputs[x]):
                table, reference = cache.tables[x][position, :, :, site], branch_tables(tensor[None])[0].numpy()
                normalize = TABLE_INDEX["normalize"]
                assert np.all(table[np.isfinite(reference[:, normalize]), normalize] == 0.0)
                reference[:, normalize] = np.where(np.isfinite(reference[:, normalize]), 0.0, reference[:, normalize])
                np.testing.assert_allclose(table, reference, rtol=1e-9, atol=1e-12,
                                           err_msg=f"{name} arch {i} {x} site {site}")
        for proxy in RELEASED.values():
            direct = proxy.score_tensors(inputs)
            cached = proxy.evaluate(cache, [position])[0]
            assert cached == pytest.approx(direct, rel=1e-9, abs=1e-12), (name, i, str(proxy))


def test_interrupted_extraction_recomputes_only_what_is_missing(tmp_path):
    benchmark = benchmarks.get("flexibert")
    ids = SMALLEST["flexibert"]
    extract(benchmark, ids, directory=tmp_path, **TINY)
    key = cache_key(settings(benchmark, 1, 16, 0, False))
    kept = arch_path(tmp_path, ids[0]).stat().st_mtime_ns
    arch_path(tmp_path, ids[1]).unlink()  # killed before this file was renamed into place
    arch_path(tmp_path, ids[2]).write_bytes(b"half a file")  # corrupt
    assert missing_archs(tmp_path, key, ids) == ids[1:]
    extract(benchmark, ids, directory=tmp_path, **TINY)
    assert missing_archs(tmp_path, key, ids) == []
    assert arch_path(tmp_path, ids[0]).stat().st_mtime_ns == kept


def test_other_settings_are_refused(tmp_path):
    benchmark = benchmarks.get("flexibert")
    extract(benchmark, [3], directory=tmp_path, **TINY)
    with pytest.raises(LPZeroError, match="other settings"):
        extract(benchmark, [3], directory=tmp_path, **{**TINY, "seq_len": 32})


@pytest.mark.slow
def test_dask_workers_give_the_same_statistics(tmp_path):
    benchmark = benchmarks.get("flexibert")
    ids = SMALLEST["flexibert"][:2]
    extract(benchmark, ids, directory=tmp_path / "serial", **TINY)
    extract(benchmark, ids, directory=tmp_path / "dask", workers=2, **TINY)
    for i in ids:
        a, b = load_file(arch_path(tmp_path / "serial", i)), load_file(arch_path(tmp_path / "dask", i))
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_extraction_leaves_no_process_state(tmp_path):
    """In-process extraction runs on one thread with glibc's heap tuned, and restores the caller's thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        extract(benchmarks.get("flexibert"), [3], directory=tmp_path, **TINY)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_parse_archs():
    assert parse_archs("0:3", 10) == [0, 1, 2]
    assert parse_archs(":2", 10) == [0, 1]
    assert parse_archs("4,7", 10) == [4, 7]
    with pytest.raises(LPZeroError, match="0..9"):
        parse_archs("12", 10)
    with pytest.raises(LPZeroError, match="START:STOP"):
        parse_archs("a:b", 10)


class Toy(nn.Module):
    """x → pre → embed → l1 → tanh → l2, loss Σ: a linear site before the embedding site as well as after it."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.pre, self.embed, self.l1 = nn.Linear(4, 4), nn.Identity(), nn.Linear(4, 3)
        self.act, self.l2 = nn.Tanh(), nn.Linear(3, 1)

    def forward(self, x):
        return self.l2(self.act(self.l1(self.embed(self.pre(x))))).sum()


class ToyProtocol:
    name = "toy"

    @staticmethod
    def sites(model):
        return Sites(act=[model.act], head=[model.l1], softmax=[], linear=[model.pre, model.l1, model.l2],
                     embedding=model.embed, taps={"head": lambda args, output: args[0]})

    @staticmethod
    def loss(model, batch):
        return model(batch)


def test_proxy_inputs_read_only_what_is_needed_and_leave_the_model_clean():
    model, x = Toy(), torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    model.l2.bias.requires_grad_(False)
    inputs = proxy_inputs(ToyProtocol, model, x)
    embedded = model.pre(x)
    weights = [model.pre.weight, model.l1.weight, model.l2.weight]
    inner = model.act(model.l1(embedded))
    *grads, jacobian = torch.autograd.grad(model.l2(inner).sum(), [*weights, embedded])
    expected = {"act": [inner], "head": [embedded], "softmax": [], "weight": weights, "grad": grads,
                "jacobian": [jacobian]}
    assert list(inputs) == list(INPUTS)
    for name, tensors in expected.items():
        assert len(inputs[name]) == len(tensors)
        for got, want in zip(inputs[name], tensors):
            torch.testing.assert_close(got, want.detach())
    for needed in ({"act"}, {"jacobian"}, {"grad", "head"}):  # jacobian alone: no weight requires grad
        some = proxy_inputs(ToyProtocol, model, x, needed)
        assert set(some) == needed
        assert all(torch.equal(a, b) for name in needed for a, b in zip(some[name], inputs[name], strict=True))
    assert all(p.grad is None for p in model.parameters())
    assert [p.requires_grad for p in model.parameters()] == [True] * 5 + [False]
