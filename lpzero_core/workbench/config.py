"""One door for every setting a user gives: ``lpzero search --set KEY=JSON``, the search flags, the search modes'
settings of a notebook, and each notebook's parameters.

The schema itself lives beside what it configures (``search.settings``: ``GPConfig``, ``TreeConfig``,
``Generalisation``, ``SurrogateConfig``) and, for the notebooks, in :data:`NOTEBOOKS` below. Everything here only
routes values through it and words a refusal as one line naming the key, the value and what is allowed:

* :func:`parse_set` reads ``--set KEY=JSON`` items: a malformed item, a repeated key, an unknown key or a key that
  is a flag of ``lpzero search`` (``seed``; the template's ``--population`` …) is refused;
* :func:`mode_config` builds a mode's config from a seed and settings (validated by the schema);
* :func:`check_notebook` validates a notebook's parameters (its first cell after ``parameters`` calls it): an
  unknown (misspelt) name or a wrongly typed value stops the notebook there, not deep inside a later cell.

Conventions: values are strict (``"10"`` or ``10.0`` is no integer, ``1`` is no flag); a JSON list stands for a
tuple; paths are strings.
"""
from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lpzero_core.errors import LPZeroError
from lpzero_core.files import load_json
from lpzero_core.search.evolve import TreeConfig, combine_config
from lpzero_core.search.gp import MAX_N_UNARY, GPConfig
from lpzero_core.search.metrics import CORRELATIONS
from lpzero_core.search.settings import Count, Positive
from lpzero_core.search.surrogate import SurrogateConfig

MODES = {"template": GPConfig, "tree": TreeConfig, "combine": TreeConfig, "surrogate": SurrogateConfig}
#: settings ``lpzero search`` takes as flags, never as ``--set``: per mode, setting → flag
FLAGS = {"template": {"seed": "--seed", "population": "--population", "iterations": "--iterations",
                      "n_unary": "--n-unary", "fitness": "--fitness", "rps": "--no-rps",
                      "checkpoint_every": "--checkpoint-every"},
         "tree": {"seed": "--seeds"}, "combine": {"seed": "--seeds"}, "surrogate": {"seed": "--seeds"}}


def _shown(value) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _key(loc: tuple, data) -> tuple:
    """The part of a pydantic error location that names the input (the rest tags a member of a union type)."""
    key = []
    for part in loc:
        if isinstance(data, dict) and part in data or isinstance(data, (list, tuple)) and isinstance(part, int):
            key.append(part)
            data = data[part]
        else:
            break
    return tuple(key)


def describe(error: ValidationError, data: dict, source: str = "") -> str:
    """The first problem of a pydantic ``ValidationError`` on input ``data`` as ``<source><key>=<value>: <what is
    allowed>`` (the alternatives of a union type joined by "or")."""
    errors = error.errors()
    key = _key(errors[0]["loc"], data)
    messages = [e["msg"].removeprefix("Value error, ") for e in errors if _key(e["loc"], data) == key]
    allowed = [m.removeprefix("Input should be ") for m in dict.fromkeys(messages)]
    text = "should be " + " or ".join(allowed) if all(m.startswith("Input should be ") for m in messages) else \
        messages[0]
    value = data
    for part in key:
        value = value[part]
    return f"{source}{'.'.join(map(str, key)) or 'value'}={_shown(value)}: {text}"


def parse_set(items: list[str], mode: str) -> dict:
    """``--set KEY=JSON`` items of a ``mode`` search as a dict (values parsed, not yet validated: that is
    :func:`mode_config`'s)."""
    known = [f.name for f in fields(MODES[mode])]
    settings = {}
    for item in items:
        key, equals, text = item.partition("=")
        key = key.strip()
        if not equals or not key:
            raise LPZeroError(f"--set {item!r}: expected KEY=JSON, e.g. strata_weight=0.3 or "
                              f"generalisation='{{\"quantile\": 0.2}}'")
        if key in FLAGS[mode]:
            raise LPZeroError(f"--set {key}: {key} is the flag {FLAGS[mode][key]} of `lpzero search --mode {mode}`; "
                              f"pass it as such")
        if key not in known:
            allowed = ", ".join(k for k in known if k not in FLAGS[mode])
            raise LPZeroError(f"--set {key}: unknown setting {key!r} of mode {mode} (known: {allowed})")
        if key in settings:
            raise LPZeroError(f"--set {key}: given twice")
        value = load_json(text, f"--set {key}={text}")
        settings[key] = value
    return settings


def mode_config(mode: str, seed: int, settings: dict | None = None, source: str = "setting "):
    """The config of ``mode`` with ``seed`` and ``settings`` (a ``generalisation`` may be a JSON object), validated
    by the schema; a wrong key or value is one ``LPZeroError`` line starting with ``source``."""
    kind = MODES.get(mode)
    if kind is None:
        raise LPZeroError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    settings = dict(settings or {})
    if "seed" in settings:
        raise LPZeroError(f"mode {mode}: {source}'seed' is not a setting; the run's seeds give it")
    known = {f.name for f in fields(kind)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise LPZeroError(f"mode {mode}: unknown {source}{unknown[0]!r} (known: {', '.join(sorted(known))})")
    try:
        return combine_config(seed=seed, **settings) if mode == "combine" else kind(seed=seed, **settings)
    except ValidationError as error:
        raise LPZeroError(f"mode {mode}: {describe(error, settings, source)}") from None


# -- notebooks ---------------------------------------------------------------------------------------------------
_STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, arbitrary_types_allowed=True)
PathText = str | Path
Benchmark = Annotated[PathText, Field(description="a registered name or a benchmark folder")]


class _Cache(BaseModel):
    model_config = _STRICT
    benchmark: Benchmark = "synthetic"
    variant: str | None = None
    cache_dir: PathText | None = None
    allow_partial: bool = False


class Explore(_Cache):
    runs_dir: PathText = "runs"


class Extract(BaseModel):
    model_config = _STRICT
    benchmark: Benchmark = "synthetic"
    variant: str | None = None
    archs: str | Count | None = None
    batch_size: Positive | None = None
    seq_len: Positive | None = None
    seed: Count = 0
    workers: Positive = 2
    cache_dir: PathText | None = None
    allow_partial: bool = False
    n_archs: Annotated[int, Field(ge=3)] = 500
    n_search: Annotated[int, Field(ge=3)] = 100


class Search(_Cache):
    seed: Count = 0
    population: Annotated[int, Field(ge=2)] = 80
    iterations: Count = 1000
    n_unary: Annotated[int, Field(ge=1, le=MAX_N_UNARY)] = 2
    fitness: Literal[tuple(CORRELATIONS)] = "spearman"
    rps: bool = True
    study_seeds: Annotated[list[Count], Field(min_length=1)] = [0, 1, 2]
    study_iterations: Count | None = None
    ablation_n_unary: Annotated[list[Annotated[int, Field(ge=1, le=MAX_N_UNARY)]], Field(min_length=1)] = [2, 3, 4, 5]
    ablation_seeds: Annotated[list[Count], Field(min_length=1)] = [0, 1, 2]
    ablation_population: Annotated[int, Field(ge=2)] | None = None
    ablation_iterations: Count = 200
    runs_dir: PathText | None = None
    search_dir: PathText | None = None
    mode_settings: dict[Literal[tuple(MODES)], dict[str, Any]] | None = None
    pareto: bool = True
    figures_dir: PathText = "figures"


class Plots(_Cache):
    runs_dir: PathText | None = None
    search_dir: PathText | None = None
    proxies: dict[str, PathText] | None = None
    scatter: list[str] | None = None
    n_scatter: Positive = 9
    n_resamples: Count = 1000
    seed: Count = 0
    figures_dir: PathText = "figures"


class Downstream(BaseModel):
    """Notebook 04's parameters (``llama.downstream.smollm2``); kept flat so that the notebook's cell maps onto it."""

    model_config = _STRICT
    proxies: dict[str, str] = {}
    budgets: list[Annotated[float, Field(gt=0, le=1)]] = [0.75, 0.625]
    windows: Positive = 16
    n_random: Count = 10
    population: Annotated[int, Field(ge=2)] = 8
    iterations: Count = 16
    cloze: bool = True
    seed: Count = 0
    threads: Positive | None = 2
    output_dir: PathText = "runs/llama_downstream"
    figures_dir: PathText = "runs/llama_downstream"


#: each notebook's parameters (file stem → schema)
NOTEBOOKS = {"00_explore": Explore, "01_extract_statistics": Extract, "02_search_proxy": Search,
             "03_correlation_plots": Plots, "04_llama_downstream": Downstream}
#: names a Jupyter kernel puts into a notebook's namespace by itself
_KERNEL_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


def check_notebook(name: str, namespace: dict) -> BaseModel:
    """Validate notebook ``name``'s parameters, read from its ``namespace`` (``globals()`` of the cell right after
    ``parameters`` and papermill's injected cell): every plain value there must be a known parameter of the
    right type. Returns the validated parameters."""
    schema = NOTEBOOKS[name]
    values = {k: v for k, v in namespace.items()
              if not k.startswith("_") and k not in _KERNEL_NAMES and not callable(v) and not isinstance(v, ModuleType)}
    unknown = sorted(set(values) - set(schema.model_fields))
    if unknown:
        raise LPZeroError(f"notebook {name}: unknown parameter {unknown[0]!r} (known: "
                          f"{', '.join(schema.model_fields)})")
    try:
        params = schema(**values)
    except ValidationError as error:
        raise LPZeroError(f"notebook {name}: parameter {describe(error, values)}") from None
    for mode, settings in (getattr(params, "mode_settings", None) or {}).items():
        try:
            mode_config(mode, 0, settings, source=f"mode_settings[{mode!r}] ")
        except LPZeroError as error:
            raise LPZeroError(f"notebook {name}: parameter {error}") from None
    if isinstance(params, Extract) and params.n_search >= params.n_archs:
        raise LPZeroError(f"notebook {name}: n_search={params.n_search} must be below n_archs={params.n_archs}")
    return params
