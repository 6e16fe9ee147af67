"""Benchmark registry: one door for every benchmark, registered by name or given as a path.

``get(benchmark, variant)`` returns a loaded :class:`Benchmark` for

* a registered name (:data:`REGISTRY`): ``flexibert``, ``gpt2-wt103``; ``synthetic`` is registered too but is
  *generated*: it has no models, and :func:`lpzero_core.stats.extract.open_cache` writes its statistics directly
  (``synthetic.open_cache``) instead of extracting them; ``smollm2-mlp`` is *measured*: the project itself
  measures its ground truth (``module.build``, ``lpzero build-benchmark smollm2-mlp``) into a committed rows file,
  and ``get`` loads it like the others once every row is measured (an incomplete rows file is a one-line error);
* a path: an LTS-style folder (``config_N/jM/model_config.yaml`` below it, :func:`gpt2_lts.from_config_dir`) or a
  Hugging Face config folder (one ``<arch>/config.json`` or ``<arch>.json`` per architecture, optional
  ``scores.csv``: :func:`hf.load`).

A path benchmark carries its identity in ``Benchmark.source`` — ``{"path", "sha256", "options"}``: the resolved
folder, the content hash of its configs and score files, and the loader options (target column, direction). The
extraction settings record it, so it is part of the cache key, and :func:`rebuild` makes the same benchmark from
the settings alone (on a Dask worker, say), refusing a folder whose content changed since. Registered benchmarks
have ``source`` None: their settings, and so their cache keys, are what they were before paths existed.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from lpzero_core.errors import LPZeroError
from lpzero_core.stats.benchmarks.base import INPUTS, Benchmark, Sites


@dataclass(frozen=True)
class Entry:
    """A registered benchmark: ``module.load(variant)`` returns its :class:`Benchmark`; a ``generated`` one has
    no models, and ``module.open_cache(directory, seed=..., allow_partial=..., **options)`` opens or writes its
    statistics cache instead; a ``measured`` one has its ground truth built by ``module.build(...)``."""

    module: str
    generated: bool = False
    measured: bool = False


REGISTRY = {
    "flexibert": Entry("lpzero_core.stats.benchmarks.flexibert"),
    "gpt2-wt103": Entry("lpzero_core.stats.benchmarks.gpt2_lts"),
    "synthetic": Entry("lpzero_core.stats.benchmarks.synthetic", generated=True),
    "smollm2-mlp": Entry("lpzero_core.stats.benchmarks.smollm2_mlp", measured=True),
}
PATH_FORMS = ("an LTS folder (config_N/jM/model_config.yaml) or a Hugging Face config folder "
              "(<arch>/config.json or <arch>.json, optional scores.csv)")


def module(name: str):
    """The module of registered benchmark ``name``."""
    return importlib.import_module(REGISTRY[name].module)


def is_generated(benchmark: str | Path) -> bool:
    """Whether ``benchmark`` is a registered generated benchmark (statistics without models)."""
    entry = REGISTRY.get(str(benchmark))
    return entry is not None and entry.generated


def get(benchmark: str | Path, variant: str | None = None, *, target: str | None = None,
        higher_is_better: bool | None = None) -> Benchmark:
    """Load ``benchmark``: a registered name or a path (module docstring), with model variant ``variant`` (or
    its default). ``target`` (score column) and ``higher_is_better`` apply to Hugging Face config folders only."""
    options = {k: v for k, v in (("target", target), ("higher_is_better", higher_is_better)) if v is not None}
    name = str(benchmark)
    if name in REGISTRY:
        if REGISTRY[name].generated:
            raise LPZeroError(f"{name} is generated, it has no models to extract or check; `lpzero search` and "
                              f"`lpzero evaluate` generate its statistics cache on first use")
        if options:
            raise LPZeroError(f"--target / --higher-is-better / --lower-is-better apply to Hugging Face config "
                              f"folders, not to {name}")
        return module(name).load(variant)
    path = Path(benchmark).expanduser()
    if not path.exists():
        raise LPZeroError(f"unknown benchmark {name!r}: neither a registered name ({', '.join(REGISTRY)}) nor an "
                          f"existing path to {PATH_FORMS}")
    from lpzero_core.stats.benchmarks import gpt2_lts, hf

    if not path.is_dir():
        raise LPZeroError(f"{path}: not a folder; a benchmark path is {PATH_FORMS}")
    if next(path.rglob("model_config.yaml"), None) is not None:
        if options:
            raise LPZeroError(f"{path}: an LTS folder has its own target (-valid_ppl from ppl_summary.yaml); "
                              f"--target and the direction flags apply to Hugging Face config folders")
        bench = gpt2_lts.from_config_dir(path)
    elif hf.config_files(path):
        bench = hf.load(path, **options)
    else:
        raise LPZeroError(f"{path}: no architecture configs in this folder; expected {PATH_FORMS}")
    if variant not in (None, bench.variant):
        raise LPZeroError(f"{path}: unknown variant {variant!r}; a folder benchmark has the one variant "
                          f"{bench.variant!r}")
    return bench


def rebuild(settings: dict) -> Benchmark:
    """The benchmark of extraction ``settings`` (``extract.settings``): by registry name, or from its recorded
    source, which must still have the recorded content."""
    source = settings.get("source")
    if source is None:
        return get(settings["benchmark"], settings["variant"])
    bench = get(source["path"], settings["variant"], **source["options"])
    if bench.source != source:
        raise LPZeroError(f"{source['path']}: the folder changed since these extraction settings were made "
                          f"(content hash {bench.source['sha256'][:12]} ≠ {source['sha256'][:12]}); rerun the command")
    return bench


__all__ = ["INPUTS", "Benchmark", "Sites", "get", "rebuild", "is_generated", "module", "REGISTRY",
           "Entry"]
