"""Statistics cache: what the proxy search reads, one safetensors file per architecture.

Layout of a cache directory::

    manifest.json        benchmark, variant, extraction settings, their key, arch keys, target, strata, split
    arch_0000.safetensors
    arch_0001.safetensors
    ...

Each architecture file holds, per proxy input ``X`` with ``S`` sites:

* ``table.X``  float64 [20, 20, S]  ``mean(op_j(op_i(X[s])))`` for every two-op chain, computed in float64
  (``ops.branch_table``);
* ``sample.X`` float32 [S, R, C]    a bounded, seeded sample of each site (rows of dim 0 × columns of the rest),
  used only by chains longer than two ops;

and, as JSON in the safetensors metadata, ``key`` (the manifest key: a file from other settings is stale),
``index``, ``descriptors``, ``baselines``, ``baseline_seconds``, ``seconds`` (time to extract the proxy inputs and
their tables) and ``checksum`` (:func:`checksum` of the tensors and of the architecture's index, so that a file
copied or renamed onto another index fails it; files written before the index was covered record
``"checksum_of": "tensors"`` implicitly and are accepted when their recorded ``index`` is the one their name says;
files written before checksums have none and are read unchecked — bump ``EXTRACTION_VERSION`` to recompute them).
A loaded cache exposes only the network baselines this version defines (``stats.baselines.BASELINES``): one
extracted by an older release may also hold ``params``, a copy of the descriptor ``params_total``, which no
consumer (tables, tree leaves, surrogate features) should see twice; and only those every architecture's file
holds (a baseline added after some files were written, such as ``one_batch_loss``, is left out of such a cache
rather than read as missing values).
Files are written atomically (temporary file + rename): a file that exists is complete; one whose tensors no
longer match its checksum is corrupt, and reads as missing (so ``extract`` recomputes it).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save

from lpzero_core.errors import LPZeroError
from lpzero_core.files import PROJECT_ROOT, atomic_write, load_json, read_text
from lpzero_core.search.ops import INPUTS, SCALAR_OPS, TABLE_INDEX, apply_chain, estimate_chain
from lpzero_core.stats.baselines import BASELINES, PASSES

#: bump when the meaning of stored statistics changes; part of every cache key
EXTRACTION_VERSION = 3  # 2: branch tables computed in float64 (ops.branch_table), was float32 chains; 3: a checksum
#                        of the tensors in every architecture file (same tensors as 2)
SAMPLE_ROWS, SAMPLE_COLS = 16, 128


def cache_root() -> Path:
    """Where caches live: ``$LPZERO_CACHE_DIR``, else ``<repo>/data/cache`` (git-ignored)."""
    return Path(os.environ.get("LPZERO_CACHE_DIR") or PROJECT_ROOT / "data" / "cache")


def cache_dir(settings: dict) -> Path:
    """The cache directory of one extraction: ``<root>/<benchmark>-<variant>-<key>``."""
    return cache_root() / f"{settings['benchmark']}-{settings['variant']}-{cache_key(settings)}"


def cache_key(settings: dict) -> str:
    """Short hash of the extraction settings (benchmark, variant, batch, seed, version, ...)."""
    blob = json.dumps({**settings, "version": EXTRACTION_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def site_sample(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Bounded sample [R, C] of one site: view as (dim 0, rest), pick R rows and C columns (sorted, seeded;
    with replacement only where the tensor has fewer rows/columns than R/C)."""
    x = x.detach().reshape(1, 1) if x.dim() == 0 else x.detach().reshape(x.shape[0], -1)

    def pick(size: int, k: int) -> torch.Tensor:
        if size >= k:
            idx = torch.randperm(size, generator=generator)[:k]
        else:
            idx = torch.randint(size, (k,), generator=generator)
        return idx.sort().values

    return x[pick(x.shape[0], SAMPLE_ROWS)][:, pick(x.shape[1], SAMPLE_COLS)].float()


def arch_path(directory: Path, index: int) -> Path:
    return Path(directory) / f"arch_{index:04d}.safetensors"


def checksum(tensors: dict[str, np.ndarray], index: int | None = None) -> str:
    """SHA-256 (hex) over the architecture ``index`` (when given: the files written since it is bound) and the
    tensors in name order: each name, dtype, shape and bytes."""
    digest = hashlib.sha256()
    if index is not None:
        digest.update(json.dumps({"index": index}).encode())
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        digest.update(json.dumps([name, array.dtype.str, array.shape]).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def write_arch(directory: Path, index: int, tables: dict[str, np.ndarray], samples: dict[str, np.ndarray],
               meta: dict) -> None:
    """Atomically write one architecture's statistics, with the checksum of its tensors in the metadata."""
    tensors = {f"table.{k}": np.ascontiguousarray(v, dtype=np.float64) for k, v in tables.items()}
    tensors |= {f"sample.{k}": np.ascontiguousarray(v, dtype=np.float32) for k, v in samples.items()}
    meta = {**meta, "index": index, "checksum": checksum(tensors, index), "checksum_of": "index+tensors"}
    atomic_write(arch_path(directory, index), save(tensors, metadata={"meta": json.dumps(meta)}))


def check_arch(directory: Path, index: int, key: str) -> tuple[str, tuple[dict[str, np.ndarray], dict] | None]:
    """(status, (tensors, metadata) or None) of one architecture file. Status: ``ok``, ``unchecked`` (readable, no
    checksum: written before checksums), ``missing``, ``corrupt`` (unreadable, incomplete or checksum mismatch) or
    ``stale`` (written for another manifest key). A file whose recorded index is not ``index`` (moved or swapped
    from another architecture) is corrupt."""
    path = arch_path(directory, index)
    if not path.exists():
        return "missing", None
    try:
        tensors = load_file(path)
        with safe_open(path, "np") as f:
            meta = json.loads(f.metadata()["meta"])
    except (SafetensorError, OSError, KeyError, ValueError, TypeError):
        return "corrupt", None
    if any(f"table.{x}" not in tensors for x in INPUTS):
        return "corrupt", None
    if meta.get("index", index) != index:  # another architecture's file under this name
        return "corrupt", None
    bound = index if meta.get("checksum_of") == "index+tensors" else None
    if "checksum" in meta and meta["checksum"] != checksum(tensors, bound):
        return "corrupt", None
    if meta.get("key") != key:
        return "stale", None
    return ("ok" if "checksum" in meta else "unchecked"), (tensors, meta)


def read_arch(directory: Path, index: int, key: str) -> tuple[dict[str, np.ndarray], dict] | None:
    """One architecture's tensors and metadata, or None when missing, corrupt or stale (``check_arch``)."""
    return check_arch(directory, index, key)[1]


def missing_archs(directory: Path, key: str, indices) -> list[int]:
    """Indices whose file is absent, corrupt or stale: exactly what an extraction must (re)compute."""
    return [i for i in indices if read_arch(directory, i, key) is None]


def read_manifest(directory: Path) -> dict:
    """``manifest.json`` of a cache; missing or damaged is an ``LPZeroError`` naming the way out."""
    path = Path(directory) / "manifest.json"
    if not path.exists():
        raise LPZeroError(f"no statistics cache at {directory} (missing manifest.json); run `lpzero extract` first")
    try:
        manifest = load_json(read_text(path, "manifest"), str(path))
        checked = _Manifest.model_validate(manifest)
    except LPZeroError as error:
        raise LPZeroError(f"{path} is damaged ({error}); {refill_hint(None, directory)} to rewrite it") from None
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(map(str, first["loc"])) or "top level"
        raise LPZeroError(f"{path} is damaged: field {field!r} {first['msg'].removeprefix('Value error, ').lower()}; "
                          f"{refill_hint(None, directory)} to rewrite it") from None
    n = len(checked.arch_keys)
    for name in ("target", "strata"):
        if len(manifest[name]) != n:
            raise LPZeroError(f"{path} is damaged: field {name!r} has {len(manifest[name])} entries for {n} "
                              f"architectures; {refill_hint(manifest, directory)} to rewrite it")
    if any(not 0 <= i < n for i in checked.search_ids) or len(set(checked.search_ids)) < len(checked.search_ids):
        raise LPZeroError(f"{path} is damaged: field 'search_ids' holds indices outside 0..{n - 1} or twice; "
                          f"{refill_hint(manifest, directory)} to rewrite it")
    return manifest


class _Manifest(BaseModel):
    """The fields of ``manifest.json`` every reader relies on (others pass)."""

    model_config = ConfigDict(strict=True, extra="allow")
    benchmark: str
    key: str
    arch_keys: list[str]
    target: list[float | None]
    strata: list[str]
    search_ids: list[int]
    settings: dict | None = None


def refill_hint(manifest: dict | None, directory: Path) -> str:
    """The command that (re)computes what a cache misses: extraction of every architecture of the manifest's
    settings into ``directory`` (only missing, corrupt and stale files are computed), or, for the synthetic
    benchmark, deleting and regenerating it."""
    settings = (manifest or {}).get("settings") or {}
    if settings.get("benchmark") == "synthetic":
        return (f"delete {directory} and regenerate it (`lpzero search --benchmark synthetic` without --cache "
                f"regenerates the default one)")
    if not settings:
        return (f"rerun `lpzero extract --cache {directory}` with the --benchmark and settings it was made with (a "
                f"synthetic cache: delete it and regenerate it)")
    command = (f"lpzero extract --benchmark {settings['benchmark']} --variant {settings['variant']} "
               f"--batch-size {settings['batch_size']} --seq-len {settings['seq_len']} --seed {settings['seed']} "
               f"--cache {directory}" + ("" if settings.get("baselines", True) else " --no-baselines"))
    return f"run `{command}` (every architecture; it computes only what is missing or corrupt)"


def verify(directory: Path) -> dict[str, list[int]]:
    """Check every architecture file of a cache against its checksum and key: indices per ``check_arch`` status."""
    manifest = read_manifest(directory)
    found: dict[str, list[int]] = {}
    for i in range(len(manifest["arch_keys"])):
        found.setdefault(check_arch(directory, i, manifest["key"])[0], []).append(i)
    return found


@dataclass
class StatsCache:
    """All statistics of one benchmark extraction, in memory, ready for vectorised proxy evaluation.

    ``tables[X]`` is float64 [A, 20, 20, S_max] (zero-padded past ``n_sites[X][a]``); ``samples[X]`` is a list of
    per-architecture [S, R, C] arrays. ``branch(X, ops)`` memoises per-site branch values over all architectures.
    """

    manifest: dict
    tables: dict[str, np.ndarray]
    n_sites: dict[str, np.ndarray]
    samples: dict[str, list[np.ndarray]]
    descriptors: pd.DataFrame
    baselines: pd.DataFrame
    baseline_seconds: pd.DataFrame
    extract_seconds: np.ndarray
    _memo: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.target)

    @property
    def target(self) -> np.ndarray:
        return np.asarray(self.manifest["target"], dtype=np.float64)

    @property
    def strata(self) -> np.ndarray:
        return np.asarray(self.manifest["strata"])

    @property
    def search_ids(self) -> np.ndarray:
        return np.asarray(self.manifest["search_ids"], dtype=int)

    @property
    def heldout_ids(self) -> np.ndarray:
        return np.setdiff1d(np.arange(len(self)), self.search_ids)

    @property
    def name(self) -> str:
        return self.manifest["benchmark"]

    @property
    def baseline_passes(self) -> dict[str, str]:
        """Per network baseline, the pass it reads (``stats.baselines``: the shared forward + backward, synflow's,
        GraSP's): baselines of one pass cost that pass once when computed together."""
        return {name: PASSES[name] for name in self.baselines.columns}

    @classmethod
    def from_arrays(cls, manifest: dict, per_arch: list[tuple[dict[str, np.ndarray], dict]]) -> "StatsCache":
        """Assemble from per-architecture (tensors, meta) pairs in index order."""
        tables, n_sites, samples = {}, {}, {}
        for x in INPUTS:
            per = [t[f"table.{x}"] for t, _ in per_arch]
            n = np.array([p.shape[-1] for p in per])
            stacked = np.zeros((len(per), *per[0].shape[:2], max(n.max(), 1)))
            for a, p in enumerate(per):
                stacked[a, :, :, : p.shape[-1]] = p
            tables[x], n_sites[x] = stacked, n
            samples[x] = [t[f"sample.{x}"] for t, _ in per_arch]
        metas = [m for _, m in per_arch]
        frame = lambda key: pd.DataFrame([m.get(key, {}) for m in metas], index=manifest["arch_keys"])
        everywhere = set.intersection(*(set(m.get("baselines", {})) for m in metas)) if metas else set()
        current = lambda table: table[[c for c in table.columns if c in BASELINES and c in everywhere]]
        return cls(manifest, tables, n_sites, samples, frame("descriptors"), current(frame("baselines")),
                   current(frame("baseline_seconds")), np.array([m.get("seconds", 0.0) for m in metas]))

    @classmethod
    def load(cls, directory: Path, allow_partial: bool = False) -> "StatsCache":
        """Load a cache. An incomplete one is an error naming how to finish it, unless ``allow_partial``: then
        the architectures present are kept (re-indexed; the search split keeps those it contains)."""
        directory = Path(directory)
        manifest = read_manifest(directory)
        items = {i: read_arch(directory, i, manifest["key"]) for i in range(len(manifest["arch_keys"]))}
        present = [i for i, item in items.items() if item is not None]
        missing = len(items) - len(present)
        if missing and not allow_partial:
            first = next(i for i, item in items.items() if item is None)
            raise LPZeroError(f"statistics cache {directory} is incomplete: {missing} of {len(items)} architectures "
                              f"missing, corrupt or stale (first: {first}); {refill_hint(manifest, directory)}, or "
                              f"pass --allow-partial")
        if not present:
            raise LPZeroError(f"statistics cache {directory} holds no architecture yet; "
                              f"{refill_hint(manifest, directory)}")
        position = {i: k for k, i in enumerate(present)}
        manifest = {**manifest, "arch_keys": [manifest["arch_keys"][i] for i in present],
                    "target": [manifest["target"][i] for i in present],
                    "strata": [manifest["strata"][i] for i in present],
                    "search_ids": [position[i] for i in manifest["search_ids"] if i in position],
                    "indices": present, "n_total": len(items)}
        return cls.from_arrays(manifest, [items[i] for i in present])

    def subset(self, ids) -> "StatsCache":
        """A cache restricted to architectures ``ids`` (re-indexed 0..len(ids)-1); search ids are kept if inside."""
        ids = np.asarray(ids)
        position = {int(i): k for k, i in enumerate(ids)}
        manifest = dict(self.manifest)
        for key in ("arch_keys", "target", "strata"):
            manifest[key] = [self.manifest[key][i] for i in ids]
        manifest["search_ids"] = [position[i] for i in self.search_ids if i in position]
        return StatsCache(manifest, {x: t[ids] for x, t in self.tables.items()},
                          {x: n[ids] for x, n in self.n_sites.items()},
                          {x: [s[i] for i in ids] for x, s in self.samples.items()},
                          self.descriptors.iloc[ids], self.baselines.iloc[ids], self.baseline_seconds.iloc[ids],
                          self.extract_seconds[ids])

    def branch(self, name: str, ops: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Per-site branch values [A, S_max] (zero past ``n_sites``) and site counts [A], memoised.

        Chains of ≤ 2 ops are read from the full-fidelity table (shorter chains padded with ``no_op``); longer
        chains are evaluated on the stored samples, all sites at once with ``torch.vmap``.
        """
        memo_key = (name, ops)
        if memo_key not in self._memo:
            if len(ops) <= 2:
                i, j = (TABLE_INDEX[op] for op in (*ops, "no_op", "no_op")[:2])
                values = self.tables[name][:, i, j, :]
            else:
                values = self._sampled_branch(name, ops)
            self._memo[memo_key] = (values, self.n_sites[name])
        return self._memo[memo_key]

    def _sampled_branch(self, name: str, ops: tuple[str, ...]) -> np.ndarray:
        """Chains of 3+ ops. Exact when op 1 or op 2 reduces to a scalar (that scalar is in the table; the rest
        of the chain acts on it). Otherwise estimated from the samples (:func:`ops.estimate_chain`), with the
        whole site's row count, size, mean and std read from its table: 1 / mean(softmax(x)) = rows (softmax
        runs over dim 0), ‖x‖² / mean(x²) = numel, mean(x), std(x)."""
        table, n_sites = self.tables[name], self.n_sites[name]
        t = lambda first, second: torch.from_numpy(table[:, TABLE_INDEX[first], TABLE_INDEX[second], :])
        reduced_at = next((k for k, op in enumerate(ops[:2]) if op in SCALAR_OPS), None)
        if reduced_at is not None:
            scalars = t(ops[0], ops[1] if reduced_at == 1 else "no_op")
            rest = ops[reduced_at + 1:]
            values = torch.vmap(lambda v: apply_chain(v, rest).double())(scalars.reshape(-1)).reshape(scalars.shape)
            values = values.numpy()
        else:
            samples = self.samples[name]
            live = [(a, s) for a in range(len(samples)) for s in range(n_sites[a])]
            stat = lambda tensor: torch.stack([tensor[a, s] for a, s in live])
            rows, numel = 1.0 / stat(t("softmax", "no_op")), stat(t("frobenius_norm", "no_op")) ** 2
            numel = numel / stat(t("element_wise_pow", "no_op"))
            flat = torch.from_numpy(np.concatenate(samples, axis=0))  # float32, as the models computed
            numel = torch.where(torch.isfinite(numel) & (numel > 0), numel, float(flat[0].numel()))
            site_stats = [v.float() for v in (rows, numel, stat(t("no_op", "to_mean_scalar")),
                                               stat(t("no_op", "to_std_scalar")))]
            chain = torch.vmap(lambda x, *st: estimate_chain(x, ops, *st).mean(dtype=torch.float64))
            means = chain(flat, *site_stats)
            values = np.zeros((table.shape[0], table.shape[-1]))
            values[tuple(np.array(live).T)] = means.numpy()
        values[np.arange(values.shape[1])[None, :] >= n_sites[:, None]] = 0.0
        return values
