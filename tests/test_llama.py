"""LLaMA downstream (lpzero_core.llama): slicing, parameter counts, proxy inputs, budget, search, bad inputs,
local lm-eval tasks, the end-to-end table and notebook 04.

Unit tests use small random LLaMAs. The end-to-end run and the notebook use the tiny BBC-trained LLaMA, trained once
by the code (about 15 s on one thread) and cached under ``data/cache`` (or ``$LPZERO_CACHE_DIR``). torch runs on one
thread here: on a busy two-core machine that is many times faster than two contending threads.
"""
import importlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lpzero_core.errors import LPZeroError
from lpzero_core.llama import (
    DEFAULT_PROXY,
    LOCAL_TASKS,
    Budget,
    SubnetSpace,
    build_local_tasks,
    evaluate,
    load_model,
    lora_recover,
    proxy_inputs,
    resolve_task,
    run,
    score,
    search,
    validate,
)
from lpzero_core.llama.evaluate import TASK_DIR
from lpzero_core.llama.model import ATTENTION_PROJECTIONS, MLP_PROJECTIONS
from lpzero_core.search.proxy import Proxy
from lpzero_core.stats.extract import torch_threads

ROOT = Path(__file__).resolve().parent.parent
HIDDEN, INTERMEDIATE, LAYERS, VOCAB = 32, 64, 3, 128
VARIANTS = ["full", "proxy", "uniform", "magnitude", "random-1"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    with torch_threads(1):
        yield


def random_llama(mlp_bias: bool = False, seed: int = 0):
    """A 3-layer LLaMA with weights ~ N(0, 0.3²) (norm weights ~ N(1, 0.3²)), so pruning visibly changes it."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTERMEDIATE,
                         num_hidden_layers=LAYERS, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=64, mlp_bias=mlp_bias)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(1.0 if "norm" in name else 0.0, 0.3)
    return model


def batch(n: int = 2, t: int = 12, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (n, t), generator=torch.Generator().manual_seed(seed))


def assert_one_line(excinfo) -> None:
    message = str(excinfo.value)
    assert message and "\n" not in message


# -- sub-network space ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("mlp_bias", [False, True])
def test_sliced_subnetwork_equals_full_model_with_masked_channels(mlp_bias):
    model = random_llama(mlp_bias)
    space = SubnetSpace(model, multiple=8)
    assert space.widths == (64, 56, 48, 40, 32)
    genes, ids = (4, 0, 2), batch()
    with torch.no_grad():
        full = model(input_ids=ids).logits
        sub_model = space.materialise(genes)
        sub = sub_model(input_ids=ids).logits
        hooks = []
        for l, layer in enumerate(model.model.layers):
            mask = torch.zeros(INTERMEDIATE)
            mask[space.kept_channels(l, space.widths[genes[l]])] = 1.0
            hooks.append(layer.mlp.down_proj.register_forward_pre_hook(lambda m, args, mask=mask: (args[0] * mask,)))
        masked = model(input_ids=ids).logits
        for hook in hooks:
            hook.remove()
        after = model(input_ids=ids).logits
    torch.testing.assert_close(sub, masked, rtol=1e-5, atol=1e-5)
    assert (sub - full).abs().max() > 0.1  # the channels removed mattered: the comparison is not vacuous
    assert torch.equal(after, full)  # the parent is untouched
    for l, (layer, parent) in enumerate(zip(sub_model.model.layers, model.model.layers)):
        width = space.widths[genes[l]]
        assert layer.mlp.gate_proj.weight.shape == layer.mlp.up_proj.weight.shape == (width, HIDDEN)
        assert layer.mlp.down_proj.weight.shape == (HIDDEN, width)
        assert layer.mlp.gate_proj.weight.data_ptr() != parent.mlp.gate_proj.weight.data_ptr()
        assert layer.self_attn.q_proj.weight is parent.self_attn.q_proj.weight  # shared, not copied
    assert sub_model.lm_head.weight is model.lm_head.weight


def test_kept_channels_are_the_most_important_and_nested():
    model = random_llama()
    space = SubnetSpace(model, multiple=8)
    for l, layer in enumerate(model.model.layers):
        mlp = layer.mlp
        importance = (mlp.gate_proj.weight.norm(dim=1) * mlp.up_proj.weight.norm(dim=1)
                      * mlp.down_proj.weight.norm(dim=0)).detach()
        previous = set(range(INTERMEDIATE))
        for width in space.widths:
            kept = space.kept_channels(l, width)
            dropped = torch.ones(INTERMEDIATE, dtype=torch.bool)
            dropped[kept] = False
            assert len(kept) == width and bool((kept[1:] > kept[:-1]).all())
            if dropped.any():
                assert importance[kept].min() >= importance[dropped].max()
            assert set(kept.tolist()) <= previous
            previous = set(kept.tolist())


@pytest.mark.parametrize("mlp_bias", [False, True])
def test_parameter_count_of_materialised_subnetwork_matches_formula(mlp_bias):
    model = random_llama(mlp_bias)
    space = SubnetSpace(model, multiple=8)
    total = sum(p.numel() for p in model.parameters())
    per_channel = 3 * HIDDEN + 2 * int(mlp_bias)  # gate row, up row, down column (+ gate and up bias entries)
    for genes in [(0, 0, 0), (4, 4, 4), (1, 3, 2)]:
        sub = space.materialise(genes)
        widths = [space.widths[g] for g in genes]
        expected = total - per_channel * sum(INTERMEDIATE - w for w in widths)
        assert sum(p.numel() for p in sub.parameters()) == expected == space.params(genes)
        mlp = sum(p.numel() for layer in sub.model.layers for p in layer.mlp.parameters())
        assert mlp == space.mlp_params(genes) == per_channel * sum(widths) + LAYERS * HIDDEN * int(mlp_bias)
    halves = (32 * per_channel * LAYERS + LAYERS * HIDDEN * int(mlp_bias)) / space.mlp_params(space.full)
    assert space.fraction((4, 4, 4)) == pytest.approx(halves) and (halves == 0.5) == (not mlp_bias)


# -- proxy inputs ---------------------------------------------------------------------------------------------
def test_proxy_inputs_are_read_after_backward_and_leave_models_clean():
    model = random_llama()
    space = SubnetSpace(model, multiple=8)
    genes, ids = (2, 1, 0), batch()
    sub = space.materialise(genes)
    inputs = proxy_inputs(sub, ids)
    weights = [getattr(getattr(layer, part), name).weight for layer in sub.model.layers
               for part, names in (("self_attn", ATTENTION_PROJECTIONS), ("mlp", MLP_PROJECTIONS)) for name in names]
    embeds = sub.get_input_embeddings()(ids).detach().requires_grad_(True)
    expected = torch.autograd.grad(sub(inputs_embeds=embeds, labels=ids).loss, [embeds, *weights])
    assert len(inputs["grad"]) == len(inputs["weight"]) == 7 * LAYERS
    for got, want in zip([*inputs["jacobian"], *inputs["grad"]], expected):  # eager (proxy) vs sdpa (here)
        assert got.shape == want.shape and 0 < (got - want).norm() <= 1e-4 * want.norm()
    assert [a.shape for a in inputs["act"]] == [(2, 12, space.widths[g]) for g in genes]
    assert [h.shape for h in inputs["head"]] == [(2, 12, HIDDEN)] * LAYERS
    assert [p.shape for p in inputs["softmax"]] == [(2, 4, 12, 12)] * LAYERS
    torch.testing.assert_close(inputs["softmax"][0].sum(-1), torch.ones(2, 4, 12))
    for net in (model, sub):
        assert all(p.grad is None and p.requires_grad for p in net.parameters())
        assert net.config._attn_implementation == "sdpa"


# -- budget and search ----------------------------------------------------------------------------------------
def test_budget_candidates_fit_and_are_maximal():
    space = SubnetSpace(random_llama(), multiple=8)
    budget = Budget(space, 0.7)
    rng = np.random.default_rng(0)
    for _ in range(30):  # repaired random configurations fit, and widening any layer one step breaks the budget
        genes = budget.repair(space.random(rng), rng)
        assert budget.fits(genes)
        assert not any(budget.fits(genes[:l] + (g - 1,) + genes[l + 1:]) for l, g in enumerate(genes) if g)
    assert budget.uniform() == (3, 3, 3) and not budget.fits((2, 2, 2))  # widths 40/64 ≤ 0.7 < 48/64
    assert budget.fits(budget.magnitude())


def test_search_is_at_least_uniform_and_seeded():
    space = SubnetSpace(random_llama(), multiple=8)
    budget, ids, proxy = Budget(space, 0.75), batch(4, 16), Proxy.parse(DEFAULT_PROXY)
    result = search(space, proxy, ids, budget, population=6, iterations=12, seed=0)
    uniform = score(space, budget.uniform(), proxy, ids)
    assert result.best_score >= uniform
    assert result.best_score == max(result.scores.values())
    assert budget.fits(result.best) and len(result.scores) > 6
    assert score(space, result.best, proxy, ids) == result.best_score
    again = search(space, proxy, ids, budget, population=6, iterations=12, seed=0)
    assert again.best == result.best and again.scores == result.scores
    assert list(result.history["iteration"]) == list(range(13))
    assert result.history["best"].is_monotonic_increasing


def test_one_batch_loss_guides_a_search_by_the_negated_calibration_loss():
    from lpzero_core.llama.search import ONE_BATCH_LOSS

    space = SubnetSpace(random_llama(), multiple=8)
    budget, ids = Budget(space, 0.75), batch(4, 16)
    result = search(space, ONE_BATCH_LOSS, ids, budget, population=6, iterations=8, seed=0)
    sub = space.materialise(result.best)
    with torch.no_grad():
        loss = sub(input_ids=ids, labels=ids).loss.item()
    assert result.best_score == pytest.approx(-loss, rel=1e-6)
    assert result.best_score == max(result.scores.values()) >= score(space, budget.uniform(), ONE_BATCH_LOSS, ids)
    assert all(p.grad is None for p in space.model.parameters())


def test_search_improves_on_its_initial_population():
    """A case where uniform is not optimal: evolution, not the initial population, finds the best configuration."""
    space = SubnetSpace(random_llama(), multiple=8)
    budget, ids, proxy = Budget(space, 0.75), batch(4, 16), Proxy.parse(DEFAULT_PROXY)
    result = search(space, proxy, ids, budget, population=6, iterations=12, seed=0)
    assert result.best_score > score(space, budget.uniform(), proxy, ids), "uniform is not optimal here"
    initial_best = result.history["best"].iloc[0]
    assert result.best_score > initial_best
    assert result.history.loc[result.history["best"] > initial_best, "iteration"].min() > 0


def test_lora_recovery_trains_the_subnetwork_mlps_only():
    model = random_llama()
    space = SubnetSpace(model, multiple=8)
    sub = space.materialise((1, 2, 3))
    before = {n: p.detach().clone() for n, p in sub.named_parameters()}
    parent_logits = model(input_ids=batch()).logits.detach()
    stream = torch.randint(0, VOCAB, (4000,), generator=torch.Generator().manual_seed(0))
    merged = lora_recover(sub, stream, steps=2, lr=1e-2, rank=2)
    assert type(merged).__name__ == "LlamaForCausalLM"
    after = dict(merged.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed and all(".mlp." in n for n in changed)
    assert torch.equal(model(input_ids=batch()).logits, parent_logits)
    assert all(p.requires_grad for p in model.parameters())


# -- bad inputs -----------------------------------------------------------------------------------------------
def test_non_llama_model_is_a_one_line_error(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64, n_positions=32)
    for call in (lambda: validate(GPT2LMHeadModel(config)), lambda: SubnetSpace(GPT2LMHeadModel(config))):
        with pytest.raises(LPZeroError, match="not LLaMA-like") as excinfo:
            call()
        assert_one_line(excinfo)
    config.save_pretrained(tmp_path)  # a config only: refused before any weight is looked for
    with pytest.raises(LPZeroError, match="not LLaMA-like") as excinfo:
        load_model(str(tmp_path))
    assert_one_line(excinfo)
    with pytest.raises(LPZeroError, match="could not be loaded") as excinfo:
        load_model(str(tmp_path / "missing"))
    assert_one_line(excinfo)


def test_budget_no_subnetwork_meets_is_a_one_line_error():
    space = SubnetSpace(random_llama(), multiple=8)  # smallest sub-network: 50 % of the MLP parameters
    for limit in (0.4, 0.0, 1.5):
        with pytest.raises(LPZeroError) as excinfo:
            Budget(space, limit)
        assert_one_line(excinfo)
    assert Budget(space, 0.5).uniform() == space.smallest
    with pytest.raises(LPZeroError) as excinfo:
        space.materialise((0, 5, 0))
    assert_one_line(excinfo)


def test_missing_task_file_is_a_one_line_error(tmp_path, monkeypatch):
    with pytest.raises(LPZeroError, match="not found") as excinfo:
        resolve_task(str(tmp_path / "missing.yaml"))
    assert_one_line(excinfo)
    yaml_only = tmp_path / "lpzero_bbc_ppl.yaml"  # the task YAML without its JSONL data
    yaml_only.write_text((TASK_DIR / "lpzero_bbc_ppl.yaml").read_text())
    with pytest.raises(LPZeroError, match="bbc_ppl.jsonl not found") as excinfo:
        resolve_task(str(yaml_only))
    assert_one_line(excinfo)

    def no_model(*args, **kwargs):
        raise AssertionError("a missing task file must fail before any model is built")

    monkeypatch.setattr(importlib.import_module("lpzero_core.llama.evaluate"), "tiny_model", no_model)
    with pytest.raises(LPZeroError, match="not found"):
        run("tiny", tasks=[str(yaml_only)])


# -- local tasks, end to end, notebook ------------------------------------------------------------------------
def test_shipped_local_tasks_are_rebuilt_identically(tmp_path):
    build_local_tasks(tmp_path, seed=0)
    for name in ("bbc_ppl.jsonl", "bbc_cloze.jsonl"):
        assert (tmp_path / name).read_bytes() == (TASK_DIR / name).read_bytes()
    specs = [resolve_task(t) for t in LOCAL_TASKS]
    assert all(Path(f).is_absolute() for s in specs for f in s["dataset_kwargs"]["data_files"].values())


def test_unknown_lm_eval_task_is_a_one_line_error():
    with pytest.raises(LPZeroError, match="unknown lm-eval task") as excinfo:
        evaluate(None, None, ["no_such_task_lpzero"])  # refused before any model is wrapped
    assert_one_line(excinfo)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("llama")
    return run("tiny", budget=0.75, population=6, iterations=10, n_random=1, threads=1, output_dir=out), out


def test_tiny_end_to_end_table(tiny_run):
    table, out = tiny_run
    assert list(table["variant"]) == VARIANTS
    assert {"lpzero_bbc_cloze/acc", "lpzero_bbc_cloze/acc_norm", "lpzero_bbc_ppl/word_perplexity"} <= set(table)
    rows = table.set_index("variant")
    assert rows.loc["proxy", "proxy"] >= rows.loc["uniform", "proxy"]  # the search works
    assert rows.loc["full", "mlp_fraction"] == 1.0 and (rows["mlp_fraction"].drop("full") <= 0.75).all()
    assert table.filter(like="/").map(np.isfinite).all().all()
    assert table["lpzero_bbc_cloze/acc"].between(0, 1).all() and (table["lpzero_bbc_ppl/word_perplexity"] > 1).all()
    assert rows.loc["proxy", "widths"] != rows.loc["full", "widths"]
    written = pd.read_csv(out / "llama_downstream.csv")
    pd.testing.assert_frame_equal(written, table, check_dtype=False)
    assert "| proxy" in (out / "llama_downstream.md").read_text()
