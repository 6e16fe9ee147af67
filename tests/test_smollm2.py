"""Real parents, channel rules and the measured ``smollm2-mlp`` benchmark (lpzero_core.stats.parents / channels /
benchmarks.smollm2_mlp).

Channel rules and slicing run on small random LLaMAs (with and without MLP biases), the measurement on the tiny
BBC-trained LLaMA of :func:`lpzero_core.llama.tiny_model` (cached after its first training). Only the ``slow``
tests load the real 135 M parent: one rebuilds a committed row on 4 of its 64 windows (about a minute on a loaded
two-core machine: loading and de-quantising the GGUF dominates), one runs notebook 04 with small settings.
"""
import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lpzero_core.errors import LPZeroError
from lpzero_core.stats import channels, parents
from lpzero_core.stats.benchmarks import smollm2_mlp
from lpzero_core.stats.extract import torch_threads


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    with torch_threads(1):
        yield


def random_llama(mlp_bias: bool, seed: int = 0):
    """A 3-layer LLaMA, MLP width 64, weights ~ N(0, 0.3²) (norm weights ~ N(1, 0.3²))."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, mlp_bias=mlp_bias)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(1.0 if "norm" in name else 0.0, 0.3)
    return model


def tokens(n: int = 2, t: int = 12, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 128, (n, t), generator=torch.Generator().manual_seed(seed))


def assert_one_line(excinfo) -> None:
    message = str(excinfo.value)
    assert message and "\n" not in message


# -- parents --------------------------------------------------------------------------------------------------
def test_gguf_sha256_mismatch_is_a_one_line_error(tmp_path, monkeypatch):
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not the SmolLM2 weights")
    with pytest.raises(LPZeroError, match="sha256") as excinfo:
        parents.check_sha256(fake, parents.SMOLLM2_SHA256)
    assert_one_line(excinfo)
    monkeypatch.setattr(parents, "SMOLLM2_SHA256", "0" * 64)  # the installed file, refused before loading
    with pytest.raises(LPZeroError, match="sha256") as excinfo:
        parents.load_parent(parents.SMOLLM2)
    assert_one_line(excinfo)


def test_heldout_windows_are_fixed_spread_and_split_by_parity():
    from lpzero_core.llama import tiny_model

    _, tokenizer = tiny_model()
    ids = parents.stream(tokenizer, "heldout")
    windows = parents.heldout_windows(tokenizer, 8, 32)
    assert windows.shape == (8, 32)
    assert torch.equal(windows[0], ids[:32]) and torch.equal(windows[-1], ids[-32:])
    assert torch.equal(windows, parents.heldout_windows(tokenizer, 8, 32))


# -- channel rules ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mlp_bias", [False, True])
@pytest.mark.parametrize("rule", channels.RULES)
def test_every_rule_keeps_the_full_width_network_bit_identical(rule, mlp_bias):
    model = random_llama(mlp_bias)
    order = [channels.ranking(s) for s in channels.scores(model, rule, tokens(seed=2))]
    assert all(p.grad is None for p in model.parameters())  # the Taylor rule leaves no gradient behind
    full = channels.slice_model(model, [channels.kept(o, 64) for o in order])
    with torch.no_grad():
        assert torch.equal(full(input_ids=tokens()).logits, model(input_ids=tokens()).logits)


@pytest.mark.parametrize("mlp_bias", [False, True])
@pytest.mark.parametrize("rule", channels.RULES)
def test_subnetwork_forward_equals_the_parent_with_dropped_channels_zeroed(rule, mlp_bias):
    model = random_llama(mlp_bias)
    order = [channels.ranking(s) for s in channels.scores(model, rule, tokens(seed=2))]
    keep = [channels.kept(o, w) for o, w in zip(order, (48, 32, 56))]
    sub = channels.slice_model(model, keep)
    masked = copy.deepcopy(model)
    for mlp, channels_kept in zip(channels.mlps(masked), keep):
        dropped = torch.ones(64, dtype=torch.bool)
        dropped[channels_kept] = False
        with torch.no_grad():
            mlp.down_proj.weight[:, dropped] = 0
    assert [mlp.down_proj.in_features for mlp in channels.mlps(sub)] == [48, 32, 56]
    with torch.no_grad():
        torch.testing.assert_close(sub(input_ids=tokens()).logits, masked(input_ids=tokens()).logits,
                                   rtol=1e-5, atol=1e-5)


def test_rules_score_what_their_formulas_say():
    model, ids = random_llama(False), tokens(seed=2)
    mlp = channels.mlps(model)[1]
    g, u, d = mlp.gate_proj.weight, mlp.up_proj.weight, mlp.down_proj.weight
    magnitude, activation, taylor = (channels.scores(model, rule, ids)[1] for rule in channels.RULES)
    torch.testing.assert_close(magnitude, g.norm(dim=1) * u.norm(dim=1) * d.norm(dim=0))
    inputs = []
    handle = mlp.register_forward_pre_hook(lambda module, args: inputs.append(args[0]))
    with torch.no_grad():
        model(input_ids=ids)
    handle.remove()
    a = mlp.act_fn(inputs[0] @ g.T) * (inputs[0] @ u.T)
    torch.testing.assert_close(activation, a.abs().mean(dim=(0, 1)) * d.norm(dim=0))
    loss = model(input_ids=ids, labels=ids).loss
    gg, gu, gd = torch.autograd.grad(loss, [g, u, d])
    expected = (g * gg).abs().sum(1) + (u * gu).abs().sum(1) + (d * gd).abs().sum(0)
    torch.testing.assert_close(taylor, expected.detach())


def test_unknown_rule_and_missing_calibration_are_one_line_errors():
    for rule, calibration in (("random", None), ("activation", None)):
        with pytest.raises(LPZeroError) as excinfo:
            channels.scores(random_llama(False), rule, calibration)
        assert_one_line(excinfo)


# -- the benchmark ----------------------------------------------------------------------------------------------
def test_design_is_seeded_balanced_over_layer0_and_spans_the_budgets():
    genes = smollm2_mlp.design()
    assert genes == smollm2_mlp.design() and len(genes) == 5 + smollm2_mlp.N_SAMPLED
    assert genes[:5] == [(k,) * 30 for k in range(5)]
    sampled = np.array(genes[5:])
    assert np.bincount(sampled[:, 0]).tolist() == [smollm2_mlp.N_SAMPLED // 5] * 5
    budgets = 1 - 0.125 * sampled.mean(axis=1)
    assert budgets.min() < 0.6 and budgets.max() > 0.9 and len(set(genes)) == len(genes)


@pytest.fixture(scope="module")
def tiny_parent():
    from lpzero_core.llama import tiny_model

    model, tokenizer = tiny_model()
    return smollm2_mlp.parent_from(model, tokenizer, "activation", "tiny", windows=6, seq_len=32,
                                   calibration={"batch_size": 2, "seq_len": 32, "seed": 0})


def test_measured_row_is_the_perplexity_of_its_windows(tiny_parent):
    genes = (0, 4, 2, 1)
    row = smollm2_mlp.measure(tiny_parent, 7, genes)
    sub = tiny_parent.subnetwork(genes)
    with torch.no_grad():
        losses = [sub(input_ids=w[None], labels=w[None]).loss.item() for w in tiny_parent.windows]
    assert row["ppl"] == pytest.approx(np.exp(np.mean(losses)), rel=1e-5)
    assert row["ppl_half1"] == pytest.approx(np.exp(np.mean(losses[1::2])), rel=1e-5)
    assert row["tokens"] == 6 * 31 and row["tokens_half0"] == 3 * 31
    assert row["widths"] == "256,128,192,224" and row["stratum"] == 1.0
    assert row["mlp_fraction"] == pytest.approx((256 + 128 + 192 + 224) / 1024)
    assert row["params"] == sum(p.numel() for p in tiny_parent.model.parameters()) - 3 * 64 * (128 + 64 + 32)
    some = smollm2_mlp.measure(tiny_parent, 7, genes, windows=[1, 4])
    assert some["nll_windows"].split(";") == [row["nll_windows"].split(";")[k] for k in (1, 4)]


def fake_row(i, genes, rule="activation"):
    identity = {"parent_sha256": parents.SMOLLM2_SHA256, "rule": rule, "tokens": 64 * 255,
                "version": smollm2_mlp.VERSION}
    return {"id": i, "genes": ",".join(map(str, genes)), "ppl": 40.0 + i, **identity}


def test_build_appends_resumes_and_refuses_to_mix(tmp_path, monkeypatch):
    measured = []
    monkeypatch.setattr(smollm2_mlp, "measure_smollm2",
                        lambda i, genes, rule: measured.append(i) or fake_row(i, genes, rule))
    path = tmp_path / "rows.csv"
    smollm2_mlp.build(path, [3, 0], progress=False)
    smollm2_mlp.build(path, [0, 1, 3], progress=False)
    assert measured == [3, 0, 1]
    assert pd.read_csv(path)["id"].tolist() == [0, 1, 3]
    with pytest.raises(LPZeroError, match="rule") as excinfo:
        smollm2_mlp.build(path, [2], rule="taylor", progress=False)
    assert_one_line(excinfo)
    rows = pd.read_csv(path)
    rows.loc[0, "genes"] = "1" + rows.loc[0, "genes"][1:]
    rows.to_csv(path, index=False)
    with pytest.raises(LPZeroError, match="another design") as excinfo:
        smollm2_mlp.build(path, [2], progress=False)
    assert_one_line(excinfo)


@pytest.mark.slow
def test_committed_rows_regenerate_on_four_windows():
    """Loads the real parent: the committed rows' first measured sub-network, rebuilt on windows 0..3."""
    rows = smollm2_mlp.read_rows()
    if rows.empty:
        pytest.skip("no committed rows yet")
    row = rows.iloc[0]
    genes = smollm2_mlp.parse_genes(row["genes"])
    assert smollm2_mlp.genes_text(genes) == row["genes"]
    rebuilt = smollm2_mlp.measure(smollm2_mlp.smollm2(row["rule"]), int(row["id"]), genes, windows=[0, 1, 2, 3])
    committed = smollm2_mlp.parse_nll_windows(row["nll_windows"])[:4]
    assert rebuilt["parent_sha256"] == row["parent_sha256"]
    np.testing.assert_allclose(smollm2_mlp.parse_nll_windows(rebuilt["nll_windows"]), committed, rtol=1e-9)


def test_halves_reports_overall_and_within_strata_rank_correlation():
    rng = np.random.default_rng(0)
    genes = smollm2_mlp.design()[:45]
    truth = rng.lognormal(4, 0.5, len(genes))
    rows = pd.DataFrame({"id": range(len(genes)), "kind": [smollm2_mlp.kind(i) for i in range(len(genes))],
                         "stratum": [channels.LONAS_RATIOS[g[0]] for g in genes],
                         "ppl_half0": truth, "ppl_half1": truth * rng.lognormal(0, 0.01, len(genes))})
    table = smollm2_mlp.halves(rows).set_index("rows")
    assert table.loc["all", "n"] == 45 and len(table) == 7
    assert table.loc["within strata (weighted mean)", "n"] == 40
    assert table["spearman"].min() > 0.9


def test_build_benchmark_refuses_other_benchmarks_and_empty_rows(tmp_path, capsys):
    from lpzero_core.workbench.cli import main

    assert main(["build-benchmark", "flexibert"]) == 2
    assert main(["build-benchmark", "smollm2-mlp", "--halves", "--rows", str(tmp_path / "none.csv")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and "not a measured benchmark" in errors[0] and "no rows" in errors[1]


def test_build_on_a_dask_scheduler_writes_the_same_rows(tmp_path, monkeypatch):
    from dask.distributed import LocalCluster

    monkeypatch.setattr(smollm2_mlp, "measure_smollm2", lambda i, genes, rule: fake_row(i, genes, rule))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        smollm2_mlp.build(tmp_path / "dask.csv", [2, 4, 1], scheduler=cluster.scheduler_address, progress=False)
    smollm2_mlp.build(tmp_path / "local.csv", [2, 4, 1], progress=False)
    assert (tmp_path / "dask.csv").read_text() == (tmp_path / "local.csv").read_text()


# -- as a benchmark like the others -----------------------------------------------------------------------------
def test_search_split_is_ten_sampled_ids_per_layer0_gene_and_never_changes():
    genes = smollm2_mlp.design()
    split = smollm2_mlp.search_split()
    assert len(split) == 50 and (split >= 5).all() and np.array_equal(split, np.sort(np.unique(split)))
    assert np.bincount([genes[i][0] for i in split]).tolist() == [10] * 5
    assert split[:12].tolist() == [5, 6, 7, 10, 11, 15, 19, 27, 33, 35, 46, 50]  # stated once, never redrawn


def test_descriptors_count_the_parameters_of_the_sliced_subnetwork(tiny_parent):
    shape = smollm2_mlp.Shape.of(tiny_parent.model)
    for genes in ((0, 0, 0, 0), (0, 4, 2, 1), (4, 4, 4, 4)):
        sub = tiny_parent.subnetwork(genes)
        widths = [tiny_parent.widths[g] for g in genes]
        described = smollm2_mlp.descriptors_of(widths, shape)
        assert described["params_total"] == sum(p.numel() for p in sub.parameters())
        assert described["params_ffn"] == sum(p.numel() for mlp in channels.mlps(sub) for p in mlp.parameters())
        assert described["params_attention"] == sum(p.numel() for layer in sub.model.layers
                                                    for p in layer.self_attn.parameters())
        assert described["layer0_ratio"] == widths[0] / shape.intermediate
        assert described["min_ratio"] == min(widths) / shape.intermediate


def write_rows(path, n=None, ppl=None):
    genes = smollm2_mlp.design()
    n = len(genes) if n is None else n
    rows = pd.DataFrame([fake_row(i, genes[i]) for i in range(n)])
    rows["ppl"] = np.arange(40.0, 40.0 + n) if ppl is None else ppl
    rows["ppl_half0"], rows["ppl_half1"] = rows["ppl"] * 0.99, rows["ppl"] * 1.01
    rows["params"] = [int(smollm2_mlp.descriptors_of([channels.widths(1536)[g] for g in genes[i]])["params_total"])
                      for i in range(n)]
    rows.to_csv(path, index=False)
    return path


def test_load_reads_complete_rows_and_refuses_incomplete_ones(tmp_path):
    bench = smollm2_mlp.load(path=write_rows(tmp_path / "rows.csv"))
    assert len(bench) == 205 and bench.target_name == "-log_ppl"
    np.testing.assert_allclose(bench.target, -np.log(np.arange(40.0, 245.0)))
    np.testing.assert_allclose(bench.extra["target_halves"][1], -np.log(np.arange(40.0, 245.0) * 1.01))
    assert np.array_equal(bench.search_ids, smollm2_mlp.search_split())
    assert bench.strata[0] == "L0-1.000" and bench.strata[9] == "L0-0.500"
    assert bench.param_check(3)["params_total"][0] == bench.param_check(3)["params_total"][1]
    assert bench.descriptors(4)["mlp_fraction"] == pytest.approx(0.5, abs=0.01)
    pd.read_csv(tmp_path / "rows.csv").drop(columns="ppl_half1").to_csv(tmp_path / "cut.csv", index=False)
    for call, match in ((lambda: smollm2_mlp.load(path=write_rows(tmp_path / "part.csv", n=120)), "120 of 205"),
                        (lambda: smollm2_mlp.load(path=tmp_path / "cut.csv"), "ppl_half1"),
                        (lambda: smollm2_mlp.load("taylor", path=tmp_path / "rows.csv"), "only the channel rule")):
        with pytest.raises(LPZeroError, match=match) as excinfo:
            call()
        assert_one_line(excinfo)


def tiny_benchmark(tiny_parent, monkeypatch):
    """A SmolLM2Benchmark over the tiny parent (4 layers): three sub-networks."""
    from lpzero_core.llama import tiny_model

    monkeypatch.setattr(smollm2_mlp, "smollm2", lambda rule=smollm2_mlp.RULE: tiny_parent)
    monkeypatch.setattr(smollm2_mlp, "smollm2_parent", tiny_model)
    genes = [(0, 0, 0, 0), (0, 4, 2, 1), (4, 4, 4, 4)]
    return smollm2_mlp.SmolLM2Benchmark(
        name="smollm2-mlp", variant="activation", arch_keys=["0", "1", "2"],
        configs=[{"genes": list(g), "widths": [tiny_parent.widths[k] for k in g]} for g in genes],
        target=np.array([-3.0, -3.5, -4.0]), target_name="-log_ppl", strata=np.array(["a", "a", "b"]),
        search_ids=np.array([0, 1]), default_batch_size=2, default_seq_len=16, linear_rows=0.25)


def test_extraction_reads_the_pretrained_subnetwork_and_leaves_the_parent_untouched(tiny_parent, monkeypatch):
    from lpzero_core.stats import baselines, extract

    bench = tiny_benchmark(tiny_parent, monkeypatch)
    before = {k: v.clone() for k, v in tiny_parent.model.state_dict().items()}
    flags = [p.requires_grad for p in tiny_parent.model.parameters()]
    attention = tiny_parent.model.config._attn_implementation
    batch = bench.batch(seed=0)
    model = bench.build(1)
    inputs = extract.proxy_inputs(bench, model, batch)
    assert len(inputs["act"]) == len(inputs["head"]) == len(inputs["softmax"]) == 4
    assert len(inputs["weight"]) == len(inputs["grad"]) == 4 * 7
    assert inputs["softmax"][0].shape == (2, tiny_parent.model.config.num_attention_heads, 16, 16)
    assert [a.shape[-1] for a in inputs["act"]] == [tiny_parent.widths[g] for g in (0, 4, 2, 1)]
    kept = extract.keep_linear_rows(inputs, 0.25, 7)
    again = extract.keep_linear_rows(inputs, 0.25, 7)
    other = extract.keep_linear_rows(extract.proxy_inputs(bench, bench.build(2), batch), 0.25, 7)
    for k in range(4 * 7):  # attention sites (shared with the parent) keep the same rows in every sub-network
        if k % 7 < 4:
            assert torch.equal(kept["weight"][k], other["weight"][k])
    for w, g, full_w, full_g, w2 in zip(kept["weight"], kept["grad"], inputs["weight"], inputs["grad"],
                                        again["weight"]):
        assert len(w) == -(-len(full_w) // 4) and torch.equal(w, w2)
        rows = [next(r for r in range(len(full_w)) if torch.equal(full_w[r], row)) for row in w]
        assert rows == sorted(rows) and torch.equal(g, full_g[rows])  # the same rows of weight and grad
    scores, _ = baselines.compute(bench, 1, batch, names=["one_batch_loss", "synflow", "grasp", "snip"])
    with torch.no_grad():
        assert scores["one_batch_loss"] == pytest.approx(-bench.loss(bench.build(1), batch).item(), rel=1e-6)
    after = tiny_parent.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [p.requires_grad for p in tiny_parent.model.parameters()] == flags
    assert all(p.grad is None for p in tiny_parent.model.parameters())
    assert tiny_parent.model.config._attn_implementation == attention != "eager"  # the copy alone went eager


def test_a_baseline_missing_from_some_architecture_files_is_left_out_of_the_cache():
    from lpzero_core.search.ops import INPUTS
    from lpzero_core.stats.cache import StatsCache

    table = {f"table.{x}": np.zeros((20, 20, 1)) for x in INPUTS} | {f"sample.{x}": np.zeros((1, 4)) for x in INPUTS}
    metas = [{"descriptors": {"params_total": 1.0}, "baselines": {"snip": 1.0, "one_batch_loss": -2.0}},
             {"descriptors": {"params_total": 2.0}, "baselines": {"snip": 2.0}}]
    manifest = {"arch_keys": ["0", "1"], "benchmark": "x", "variant": "y", "key": "k", "target": [0.0, 1.0],
                "target_name": "t", "strata": ["a", "a"], "search_ids": [0], "settings": {}}
    cache = StatsCache.from_arrays(manifest, [(table, metas[0]), (table, metas[1])])
    assert list(cache.baselines.columns) == ["snip"]


# -- downstream on the benchmark's parent -----------------------------------------------------------------------
def test_downstream_guide_scores_a_subnetwork_as_the_benchmark_extraction_does(tiny_parent, monkeypatch):
    """A space ranking channels as the benchmark does materialises the benchmark's sub-network, and the guide's
    value is the extraction's (proxy inputs, linear rows with the extraction seed); one-batch loss = the baseline."""
    from lpzero_core.llama import SubnetSpace, downstream
    from lpzero_core.llama.search import DEFAULT_PROXY, ONE_BATCH_LOSS
    from lpzero_core.search.proxy import Proxy
    from lpzero_core.stats import baselines, extract

    bench = tiny_benchmark(tiny_parent, monkeypatch)
    calibration = parents.calibration_batch(smollm2_mlp.smollm2_parent()[1], batch_size=2, seq_len=32, seed=0)
    space = SubnetSpace(tiny_parent.model, rule="activation", calibration=calibration)
    batch = bench.batch(seed=3)
    proxy = Proxy.parse(DEFAULT_PROXY)
    inputs = extract.keep_linear_rows(extract.proxy_inputs(bench, bench.build(1), batch), 0.25, 3)
    value = downstream.benchmark_guide(bench, space, DEFAULT_PROXY, seed=3)(bench.genes(1))
    assert value == pytest.approx(proxy.score_tensors(inputs), rel=1e-9)
    full_rows = proxy.score_tensors(extract.proxy_inputs(bench, bench.build(1), batch))
    assert value != pytest.approx(full_rows, rel=1e-6)  # the rows were subsampled
    grad_only = extract.proxy_inputs(bench, bench.build(1), batch, {"grad", "act"})
    act_only = extract.proxy_inputs(bench, bench.build(1), batch, {"act"})
    assert torch.equal(extract.keep_linear_rows(grad_only, 0.25, 3)["grad"][5], inputs["grad"][5])
    assert extract.keep_linear_rows(act_only, 0.25, 3) is act_only  # nothing linear to subsample
    scores, _ = baselines.compute(bench, 1, batch, names=["one_batch_loss"])
    loss = downstream.benchmark_guide(bench, space, ONE_BATCH_LOSS, seed=3)(bench.genes(1))
    assert loss == pytest.approx(scores["one_batch_loss"], rel=1e-6)


def test_downstream_reads_committed_rows_on_a_window_subset():
    from lpzero_core.llama import downstream

    assert downstream.window_subset(16).tolist() == list(range(0, 64, 4))
    for bad in (0, 5, 65):
        with pytest.raises(LPZeroError, match="divisor of 64") as excinfo:
            downstream.window_subset(bad)
        assert_one_line(excinfo)
    nll = {(0, 0): np.full(64, 2.0), (0, 1): np.arange(64.0), (1, 1): np.full(64, 9.0)}
    rows = pd.DataFrame({"id": [0, 1, 2], "genes": ["0,0", "0,1", "1,1"], "widths": ["8,8", "8,6", "6,6"],
                         "mlp_fraction": [1.0, 0.875, 0.75],
                         "nll_windows": [";".join(repr(float(x)) for x in v) for v in nll.values()]})
    indices = downstream.window_subset(4)
    known = downstream.measured_nll(rows, indices)
    np.testing.assert_array_equal(known[(0, 1)], [0.0, 16.0, 32.0, 48.0])
    row, genes = downstream.best_measured(rows, known, 0.875, tokens=10)
    assert genes == (0, 1) and row["ppl"] == pytest.approx(np.exp(96 / 40)) and "row 1 (best of 1)" in row["source"]
    with pytest.raises(LPZeroError, match="no benchmark row"):
        downstream.best_measured(rows, known, 0.6, tokens=10)


def test_downstream_verdict_compares_each_search_with_the_rules_and_the_best_row():
    from lpzero_core.llama import downstream

    ppl = {"search:a": 60.0, "search:b": 80.0, "uniform": 70.0, "greedy": 90.0, "owl": 65.0, "flap": 75.0,
           "random (mean)": 100.0, "benchmark best": 58.0}
    table = pd.DataFrame([{"budget": 1.0, "method": "full parent", "ppl": 35.0}]
                         + [{"budget": 0.75, "method": m, "ppl": v} for m, v in ppl.items()])
    verdict = downstream.verdict(table).set_index("method")
    assert verdict.loc["search:a", "le_uniform"] and verdict.loc["search:a", "le_every_rule"]
    assert verdict.loc["search:a", "within_5%_of_best"] and verdict.loc["search:a", "best_rule"] == "owl"
    assert verdict.loc["search:b", "vs_uniform"] == pytest.approx(80 / 70)
    assert not verdict.loc["search:b", "le_every_rule"] and not verdict.loc["search:b", "within_5%_of_best"]
    assert verdict.loc["search:a", "vs_random_mean"] == pytest.approx(0.6)


@pytest.mark.slow
def test_notebook_04_runs_on_the_real_parent(tmp_path):
    """Loads SmolLM2: notebook 04 with one budget, one window, tiny searches and no cloze writes its table and
    figure; every chosen allocation fits the budget; the rows present in the benchmark are read, not measured."""
    import json

    papermill = pytest.importorskip("papermill")
    root = Path(__file__).resolve().parents[1]
    notebook = root / "notebooks" / "04_llama_downstream.ipynb"
    cells = json.loads(notebook.read_text())["cells"]
    assert [c for c in cells if "parameters" in c["metadata"].get("tags", [])] and not any(
        c.get("outputs") for c in cells if c["cell_type"] == "code"), "one parameters cell, committed without outputs"
    papermill.execute_notebook(str(notebook), str(tmp_path / "04.ipynb"), kernel_name="python3",
                               progress_bar=False, cwd=str(root),
                               parameters={"budgets": [0.75], "windows": 1, "n_random": 1, "population": 2,
                                           "iterations": 1, "cloze": False, "threads": 2,
                                           "output_dir": str(tmp_path), "figures_dir": str(tmp_path)})
    table = pd.read_csv(tmp_path / "smollm2-downstream.csv")
    assert (tmp_path / "smollm2_downstream.png").is_file() and (tmp_path / "smollm2-downstream.md").is_file()
    methods = set(table["method"])
    assert {"full parent", "search:lpzero_gpt2", "search:one_batch_loss", "uniform", "greedy", "owl", "flap",
            "random-1", "random (mean)", "benchmark best"} <= methods
    assert (table.loc[table["budget"] < 1, "mlp_fraction"] <= 0.75 + 1e-9).all()
    uniform = table.set_index("method").loc["uniform"]
    rows = smollm2_mlp.read_rows().set_index("id")
    assert uniform["source"] == "benchmark row"  # uniform 75 % is row 2: its first window read, not measured
    first = float(rows.loc[2, "nll_windows"].split(";")[0])
    assert uniform["ppl"] == pytest.approx(np.exp(first / (smollm2_mlp.SEQ_LEN - 1)), rel=1e-12)
