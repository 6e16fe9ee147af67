"""Extraction: run each architecture once on one batch and fill the statistics cache.

Per architecture ``i`` (pure function of benchmark, variant, batch settings, seed and ``i``):

1. ``model = benchmark.build(i, seed)`` (seeded by (seed, i)); the batch is the benchmark's fixed text batch;
2. ``proxy_inputs``: forward hooks on the sites record ``act``, ``head`` and ``softmax``; the embedding output keeps
   its gradient; one ``loss.backward()``; **then** ``grad`` (= ``weight.grad``) and ``jacobian`` (= d loss / d
   embeddings) are read; hooks are removed and ``requires_grad`` flags restored whatever happens;
3. per input and site: the full-fidelity 20×20 table of two-op chain means and a bounded sample (cache.py);
4. descriptors (structure, parameter counts, FLOPs) and the hand-crafted baselines (three passes, each on a fresh
   model built with the same seed, so in-place tricks such as synflow's |θ| never leak).

Architectures run in-process (``workers=1``) or as Dask tasks on a local cluster (``workers=N``) or an existing
one (``scheduler=ADDRESS``), each on one torch thread; workers return arrays and the client writes each file
atomically, so the bytes are the same whichever way they were computed. A rerun computes only missing, corrupt or
stale files.
"""
from __future__ import annotations

import ctypes
import json
import math
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from lpzero_core.errors import LPZeroError
from lpzero_core.files import atomic_write_text
from lpzero_core.search.ops import INPUTS, site_tables, warm_up
from lpzero_core.seeds import row_seed, sample_seed
from lpzero_core.stats import baselines as baseline_proxies
from lpzero_core.stats import benchmarks
from lpzero_core.stats.benchmarks.base import Benchmark, Sites
from lpzero_core.stats.cache import (
    StatsCache,
    cache_dir,
    cache_key,
    missing_archs,
    read_manifest,
    site_sample,
    write_arch,
)


def settings(benchmark: Benchmark, batch_size: int | None = None, seq_len: int | None = None, seed: int = 0,
             with_baselines: bool = True) -> dict:
    """The extraction settings that define a cache (and its key). A benchmark given as a folder adds its
    ``source`` (folder, content hash, loader options), from which ``benchmarks.rebuild`` makes it again; a
    registered one adds nothing, so its key is unchanged; one that reads a fraction of its linear rows adds
    ``linear_rows``."""
    config = {"benchmark": benchmark.name, "variant": benchmark.variant,
              "batch_size": batch_size or benchmark.default_batch_size,
              "seq_len": seq_len or benchmark.default_seq_len, "seed": seed, "baselines": with_baselines}
    if benchmark.linear_rows < 1:
        config["linear_rows"] = benchmark.linear_rows
    return config if benchmark.source is None else {**config, "source": benchmark.source}


@contextmanager
def torch_threads(n: int | None = 1):
    """torch on ``n`` intra-op threads inside the block (``None``: unchanged), restored on exit. Extraction runs on
    one thread: float reductions then sum in one fixed order, so an architecture's statistics are the same bits
    in-process and on any Dask worker; parallelism comes from workers instead."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def heap_reuse():
    """glibc only: inside the block, serve large allocations from the heap and keep freed memory there, instead of
    mapping fresh pages (and faulting them in) for every temporary tensor; the branch tables allocate dozens of
    temporaries per site and run ~1.3× faster. On exit both thresholds return to glibc's documented defaults
    (128 KiB; glibc's dynamic mmap threshold, off after any mallopt call, stays off). Elsewhere it does nothing."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        yield
        return
    m_trim_threshold, m_mmap_threshold, default = -1, -3, 128 * 1024
    libc.mallopt(m_mmap_threshold, 1 << 30)
    libc.mallopt(m_trim_threshold, 1 << 30)
    try:
        yield
    finally:
        libc.mallopt(m_mmap_threshold, default)
        libc.mallopt(m_trim_threshold, default)


@contextmanager
def recording(sites: Sites, needed=INPUTS):
    """Hooks that fill ``record`` with the per-site tensors of the ``needed`` ones of act/head/softmax (a site's
    output, or what ``sites.taps`` reads from its call) and with the embedding output.

    For ``jacobian`` the embedding output keeps its gradient: retained where it already requires grad, otherwise
    replaced by a leaf copy that requires it (the values downstream are unchanged)."""
    record: dict[str, list] = {"act": [], "head": [], "softmax": [], "embedding": []}

    def keep(name):
        tap = sites.taps.get(name, lambda args, output: output)
        return lambda module, args, output: record[name].append(tap(args, output).detach())

    def keep_embedding(module, args, output):
        if "jacobian" in needed and output.requires_grad:
            output.retain_grad()
        elif "jacobian" in needed:
            output = output.detach().requires_grad_()
        record["embedding"].append(output)
        return output

    handles = [m.register_forward_hook(keep(name)) for name in ("act", "head", "softmax") if name in needed
               for m in getattr(sites, name)]
    handles.append(sites.embedding.register_forward_hook(keep_embedding))
    try:
        yield record
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def grad_only(model: torch.nn.Module, tensors: list[torch.Tensor]):
    """Inside the block, of the parameters of ``model`` only ``tensors`` require grad, and none holds a ``.grad``;
    on exit every ``.grad`` is None again and the ``requires_grad`` flags are restored (tensors that a sub-network
    shares with its parent stay clean)."""
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.grad = None
            p.requires_grad_(False)
        for t in tensors:
            t.requires_grad_(True)
        yield
    finally:
        for p, flag in zip(params, flags):
            p.grad = None
            p.requires_grad_(flag)


def proxy_inputs(benchmark: Benchmark, model: torch.nn.Module, batch, needed=INPUTS) -> dict[str, list[torch.Tensor]]:
    """The proxy inputs ``needed`` (default all six) of one model on one batch, as ``benchmark.sites(model)`` names
    them (``benchmarks.base``), for the loss ``benchmark.loss(model, batch)``; ``benchmark`` is anything with those
    two methods and a ``name`` (the LLaMA search passes its own).

    Only what the needed inputs read is recorded or differentiated: during the pass the linear sites' weights
    require grad for ``grad``, the embedding output for ``jacobian``, nothing else (``grad_only``); the backward
    pass runs only for those two, and ``grad`` and ``jacobian`` are read after it.
    """
    needed = set(needed)
    sites = benchmark.sites(model)
    weights = [m.weight for m in sites.linear]
    with torch.enable_grad(), grad_only(model, weights if "grad" in needed else []), recording(sites, needed) as record:
        loss = benchmark.loss(model, batch)
        if needed & {"grad", "jacobian"}:
            loss.backward()
        if len(record["embedding"]) != 1:
            raise RuntimeError(f"{benchmark.name}: the embedding site ran {len(record['embedding'])} times, "
                               f"expected 1")
        found = {"act": record["act"], "head": record["head"], "softmax": record["softmax"],
                 "weight": [w.detach() for w in weights],
                 "grad": [w.grad.detach() for w in weights] if "grad" in needed else [],
                 "jacobian": [record["embedding"][0].grad.detach()] if "jacobian" in needed else []}
    return {x: found[x] for x in INPUTS if x in needed}


def extract_one(config: dict, i: int, device: str = "cpu") -> tuple[dict, dict, dict]:
    """Tables, samples and metadata of architecture ``i`` of the benchmark that the settings ``config`` describe
    (``benchmarks.rebuild``; runs on a Dask worker or in-process, single-threaded).

    ``device="cuda"`` runs the model and the tables on the GPU (the baselines stay on the CPU); results then
    match a CPU run to floating-point tolerance, not bit for bit. Untested so far: not yet run or timed on a GPU.
    """
    with torch_threads(1), heap_reuse():
        return _extract_one(config, i, device)


def _extract_one(config, i, device):
    if device == "cuda" and not torch.cuda.is_available():
        raise LPZeroError("--device cuda: no CUDA device is visible to torch; use --device cpu")
    benchmark = benchmarks.rebuild(config)
    warm_up()  # the tables' one-time compilation stays out of the architecture's seconds
    start = time.perf_counter()
    batch = benchmark.batch(config["batch_size"], config["seq_len"], config["seed"])
    model = benchmark.build(i, config["seed"]).to(device)
    inputs = proxy_inputs(benchmark, model, {k: v.to(device) for k, v in batch.items()})
    if benchmark.linear_rows < 1:
        inputs = keep_linear_rows(inputs, benchmark.linear_rows, config["seed"])
    generator = torch.Generator().manual_seed(sample_seed(config["seed"], i))
    tables = {x: site_tables(inputs[x]).cpu().numpy() for x in INPUTS}
    samples = {x: torch.stack([site_sample(t.cpu(), generator) for t in inputs[x]]).numpy() for x in INPUTS}
    seconds = time.perf_counter() - start
    del model, inputs
    scores, baseline_seconds = ({}, {})
    if config["baselines"]:
        scores, baseline_seconds = baseline_proxies.compute(benchmark, i, batch, config["seed"],
                                                            names=list(baseline_proxies.BASELINES))
    meta = {"key": cache_key(config), "arch": benchmark.arch_keys[i], "descriptors": benchmark.descriptors(i),
            "baselines": scores, "baseline_seconds": baseline_seconds, "seconds": seconds}
    return tables, samples, meta


def proxy_value(benchmark: Benchmark, model: torch.nn.Module, batch, proxy, seed: int = 0) -> float:
    """``proxy``'s value on one model as the extraction's statistics give it: the inputs it reads
    (``proxy_inputs``) on ``batch``, restricted to the benchmark's linear rows (``keep_linear_rows`` with the
    extraction ``seed``) where it reads a fraction of them, then ``Proxy.score_tensors``. For a model that the
    benchmark's ``build`` would make, this is the value the cached statistics give (to rounding)."""
    inputs = proxy_inputs(benchmark, model, batch, proxy.live_inputs())
    if benchmark.linear_rows < 1:
        inputs = keep_linear_rows(inputs, benchmark.linear_rows, seed)
    return proxy.score_tensors(inputs)


def keep_linear_rows(inputs: dict[str, list[torch.Tensor]], fraction: float, seed: int) -> dict:
    """``inputs`` with each linear site's ``weight`` and ``grad`` restricted to the same ⌈fraction·n⌉ of its n rows:
    for site k, the first of ``torch.randperm(n)`` under a generator seeded ``seeds.row_seed(seed, k)``, in
    ascending order (``Benchmark.linear_rows``). The rows depend on the site and its size only, not on the
    architecture: a tensor that architectures share (the attention weights of one parent's sub-networks) keeps
    the same rows, hence the same statistics, in each."""
    linear = inputs.get("weight") or inputs.get("grad")  # the same shapes; a proxy may read only one or neither
    if not linear:
        return inputs
    kept = [torch.randperm(len(w), generator=torch.Generator().manual_seed(row_seed(seed, k)))
            [:math.ceil(fraction * len(w))].sort().values for k, w in enumerate(linear)]
    return {**inputs, **{x: [t[rows.to(t.device)] for t, rows in zip(inputs[x], kept)]
                         for x in ("weight", "grad") if x in inputs}}


def parse_archs(text: str | None, n: int) -> list[int]:
    """``"0:500"`` / ``"3"`` / ``"1,5,9"`` → indices; None → all. Anything outside 0..n-1 is an error, not clipped."""
    if text is None:
        return list(range(n))
    if not text.strip():
        raise LPZeroError("--archs is empty: give START:STOP, an index or a comma list (or leave it out for all)")
    try:
        if ":" in text:
            start, stop = (int(v) if v else d for v, d in zip(text.split(":"), (0, n)))
            if not 0 <= start < stop <= n:
                raise LPZeroError(f"--archs {text!r}: need 0 ≤ START < STOP ≤ {n} (this benchmark has {n} "
                                  f"architectures)")
            return list(range(start, stop))
        ids = [int(v) for v in text.split(",")]
    except ValueError:
        raise LPZeroError(f"--archs {text!r}: expected START:STOP, an index or a comma list") from None
    if min(ids) < 0 or max(ids) >= n:
        raise LPZeroError(f"--archs {text!r}: indices must lie in 0..{n - 1}")
    if len(set(ids)) < len(ids):
        raise LPZeroError(f"--archs {text!r}: an index is listed twice")
    return ids


def _manifest_key(text: str) -> str | None:
    """The key of a manifest's text, None when the text is damaged."""
    try:
        return json.loads(text).get("key")
    except (ValueError, AttributeError):
        return None


def extract(benchmark: Benchmark, ids: list[int] | None = None, *, batch_size: int | None = None,
            seq_len: int | None = None, seed: int = 0, workers: int = 1, scheduler: str | None = None,
            directory: str | Path | None = None, with_baselines: bool = True, progress: bool = True,
            device: str = "cpu") -> Path:
    """Fill the cache for architectures ``ids`` (default all); returns the cache directory."""
    config = settings(benchmark, batch_size, seq_len, seed, with_baselines)
    directory = Path(directory) if directory else cache_dir(config)
    directory.mkdir(parents=True, exist_ok=True)
    key = cache_key(config)
    manifest = {"benchmark": benchmark.name, "variant": benchmark.variant, "key": key, "settings": config,
                "arch_keys": benchmark.arch_keys, "target": benchmark.target.tolist(),
                "target_name": benchmark.target_name, "strata": [str(s) for s in benchmark.strata],
                "search_ids": [int(i) for i in benchmark.search_ids]}
    manifest_path, text = directory / "manifest.json", json.dumps(manifest)
    current = manifest_path.read_text() if manifest_path.exists() else None
    if current != text:  # an unchanged manifest is not rewritten: a read-only cache with nothing to do works
        if current is not None and _manifest_key(current) not in (key, None):
            raise LPZeroError(f"{directory} holds a cache of other settings; pass another --cache directory")
        atomic_write_text(manifest_path, text)  # new, or damaged (key None): every arch file carries its own key
    todo = missing_archs(directory, key, range(len(benchmark)) if ids is None else ids)
    bar = tqdm(total=len(todo), disable=not progress, desc=f"extract {benchmark.name}", unit="arch")
    if workers <= 1 and scheduler is None:
        for i in todo:
            write_arch(directory, i, *extract_one(config, i, device))
            bar.update(1)
    elif todo:  # no cluster for nothing to do
        _extract_on_dask(benchmark, config, todo, directory, workers, scheduler, bar, device)
    bar.close()
    return directory


def _extract_on_dask(benchmark, config, todo, directory, workers, scheduler, bar, device) -> None:
    from dask.distributed import Client, LocalCluster, as_completed

    if scheduler:
        client = Client(scheduler)
    else:
        client = Client(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                     dashboard_address=None))
    try:
        futures = {client.submit(extract_one, config, i, device, pure=False): i for i in todo}
        for future in as_completed(futures):
            write_arch(directory, futures[future], *future.result())
            bar.update(1)
    finally:
        client.close()


def open_cache(benchmark: str | Path, variant: str | None = None, *, batch_size: int | None = None,
               seq_len: int | None = None, seed: int = 0, directory: str | Path | None = None,
               allow_partial: bool = False, target: str | None = None, higher_is_better: bool | None = None,
               **options) -> StatsCache:
    """The statistics cache of ``benchmark`` (a registered name or a path, as ``benchmarks.get`` takes it),
    extracted with the same variant / batch_size / seq_len / seed, read from ``directory`` or the cache root.

    Without ``directory``, the cache with baselines is taken, else the one extracted with ``--no-baselines``.
    A generated benchmark (``synthetic``) has its cache opened or written by its own module, which takes
    ``options`` (e.g. ``n_archs``, ``n_search``); the others take none, and a missing cache names the command that
    fills it.
    """
    if benchmarks.is_generated(benchmark):
        if variant is not None or target is not None or higher_is_better is not None:
            raise LPZeroError(f"{benchmark} is generated: --variant, --target and --higher/--lower-is-better do not "
                              f"apply to it; leave them out")
        cache = benchmarks.module(str(benchmark)).open_cache(directory, seed=seed, allow_partial=allow_partial,
                                                             **options)
        return _bound(cache, str(benchmark), directory)
    if options:
        raise LPZeroError(f"{benchmark}: unexpected options {', '.join(options)} (only generated benchmarks take any)")
    name, bench = str(benchmark), None  # a registered benchmark is named without loading it (its data may be absent)
    if directory is None or name not in benchmarks.REGISTRY:
        bench = benchmarks.get(benchmark, variant, target=target, higher_is_better=higher_is_better)
        name = bench.name
    if directory is None:
        found = [cache_dir(settings(bench, batch_size, seq_len, seed, baselines)) for baselines in (True, False)]
        directory = next((d for d in found if (d / "manifest.json").exists()), found[0])
    if not (Path(directory) / "manifest.json").exists():
        raise LPZeroError(f"no statistics cache for {benchmark} at {directory}; run `lpzero extract --benchmark "
                          f"{benchmark}` with the same --variant/--batch-size/--seq-len/--seed/--target first")
    if bench is not None and bench.source is not None:
        same_source(bench, read_manifest(directory), directory)
    return _bound(StatsCache.load(directory, allow_partial), name, directory)


def same_source(bench: Benchmark, manifest: dict, directory) -> None:
    """Refuse a cache of a benchmark folder whose content (scores, configs) or loader options (--target,
    --higher/--lower-is-better) changed since the extraction: its targets would be the old ones."""
    recorded = (manifest.get("settings") or {}).get("source")
    if not isinstance(recorded, dict) or recorded.get("path") != bench.source["path"]:
        return  # another folder: _bound and the key checks speak for it
    if recorded.get("options") != bench.source["options"]:
        was = ", ".join(f"{k}={v}" for k, v in (recorded.get("options") or {}).items())
        raise LPZeroError(f"{directory} was extracted with {was}; pass the same --target and "
                          f"--higher-is-better/--lower-is-better, or extract again into another --cache")
    if recorded.get("sha256") != bench.source["sha256"]:
        old = np.asarray(manifest.get("target", []), dtype=np.float64)
        scores = len(old) != len(bench.target) or not np.array_equal(old, bench.target, equal_nan=True)
        what = "its scores changed" if scores else "its files changed"
        raise LPZeroError(f"{directory} was extracted from {bench.source['path']} before {what} (content sha256 "
                          f"{recorded.get('sha256', '?')[:12]} then, {bench.source['sha256'][:12]} now): its targets "
                          f"would be stale; extract again into another --cache")


def _bound(cache: StatsCache, name: str, directory) -> StatsCache:
    """``cache``, if it is a cache of benchmark ``name``: a cache is bound to its benchmark."""
    if cache.name != name:
        raise LPZeroError(f"{directory} holds a {cache.name} cache, not {name}; pass --benchmark {cache.name} or a "
                          f"{name} cache")
    return cache
