"""Hugging Face config folders (lpzero_core/stats/benchmarks/hf.py): generic sites, fidelity, errors."""
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from lpzero_core.errors import LPZeroError
from lpzero_core.search.proxy import RELEASED
from lpzero_core.stats import benchmarks
from lpzero_core.stats.cache import StatsCache
from lpzero_core.stats.extract import extract

GPT2 = {"model_type": "gpt2", "n_layer": 2, "n_embd": 32, "n_head": 2, "n_inner": 64, "n_positions": 48,
        "vocab_size": 50257}
LLAMA = {"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2,
         "num_key_value_heads": 2, "intermediate_size": 64, "max_position_embeddings": 256, "vocab_size": 50257}

#: the modules the generic sites read, per family (l = 0, 1)
SITES = {
    "gpt2": {"act": ["transformer.h.{l}.mlp.act"],
             "head": ["transformer.h.{l}.attn.block_input"],
             "softmax": ["transformer.h.{l}.attn.probabilities"],
             "linear": ["transformer.h.{l}.attn.c_attn", "transformer.h.{l}.attn.c_proj",
                        "transformer.h.{l}.mlp.c_fc", "transformer.h.{l}.mlp.c_proj"],
             "embedding": "transformer.wte"},
    "llama": {"act": ["model.layers.{l}.mlp.act_fn"],
              "head": ["model.layers.{l}.self_attn.q_proj"],
              "softmax": ["model.layers.{l}.self_attn.probabilities"],
              "linear": [f"model.layers.{{l}}.{m}" for m in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                            "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj",
                                                            "mlp.down_proj")],
              "embedding": "model.embed_tokens"},
}


def per_layer(names: list[str]) -> list[str]:
    return [n.format(l=l) for l in range(2) for n in names]


def write_set(root, configs: dict, scores: str | None = None):
    for key, config in configs.items():
        (root / key).mkdir(parents=True)
        (root / key / "config.json").write_text(json.dumps(config))
    if scores is not None:
        (root / "scores.csv").write_text(scores)
    return root


def load(root, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return benchmarks.get(root, **options)


@pytest.fixture(scope="module")
def two_families(tmp_path_factory):
    root = write_set(tmp_path_factory.mktemp("hf"), {"gpt2": GPT2, "llama": LLAMA},
                     "arch,loss,split\ngpt2,5.0,search\nllama,4.0,\n")
    return load(root, target="loss", higher_is_better=False)


def test_folder_target_split_and_adapted_length(two_families, tmp_path):
    bench = two_families
    assert bench.arch_keys == ["gpt2", "llama"] and bench.variant == "hf"
    assert bench.target.tolist() == [-5.0, -4.0] and bench.target_name == "-loss"
    assert bench.search_ids.tolist() == [0] and bench.heldout_ids.tolist() == [1]
    assert bench.default_seq_len == 48  # min(128, the GPT-2 config's 48 positions)
    with pytest.warns(UserWarning, match="sequence length 48"):
        benchmarks.get(bench.source["path"], target="loss")
    with pytest.raises(LPZeroError, match="exceeds the 48 positions"):
        bench.batch(seq_len=64)
    unscored = load(write_set(tmp_path, {"a": LLAMA}))
    assert np.isnan(unscored.target).all() and len(unscored.search_ids) == 0 and unscored.default_seq_len == 128


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_generic_sites_read_exactly_these_modules(two_families, family):
    bench = two_families
    model = bench.build(bench.arch_keys.index(family))
    names = {id(m): n for n, m in model.named_modules()}
    sites = bench.sites(model)
    expected = SITES[family]
    for field in ("act", "head", "softmax", "linear"):
        assert [names[id(m)] for m in getattr(sites, field)] == per_layer(expected[field]), field
    assert names[id(sites.embedding)] == expected["embedding"]
    assert model.config._attn_implementation == "eager" and not model.training


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_released_proxies_through_generic_sites_equal_direct(two_families, family, tmp_path):
    """The cache (generic sites → extraction) against the proxies computed from the named modules' tensors."""
    bench = two_families
    i = bench.arch_keys.index(family)
    directory = extract(bench, [i], batch_size=2, seq_len=16, with_baselines=False, progress=False,
                        directory=tmp_path)
    cache = StatsCache.load(directory, allow_partial=True)

    batch = bench.batch(2, 16, 0)
    model = bench.build(i, 0)
    modules = dict(model.named_modules())
    outputs = {}
    spec = SITES[family]
    for field in ("act", "head", "softmax"):
        for name in per_layer(spec[field]):
            modules[name].register_forward_hook(lambda m, a, out, name=name: outputs.setdefault(name, out))
    modules[spec["embedding"]].register_forward_hook(lambda m, a, out: out.retain_grad() or outputs.setdefault(
        "embedding", out))
    model(**batch).loss.backward()
    linear = [modules[n] for n in per_layer(spec["linear"])]
    direct = {field: [outputs[n].detach() for n in per_layer(spec[field])] for field in ("act", "head", "softmax")}
    direct |= {"weight": [m.weight.detach() for m in linear], "grad": [m.weight.grad for m in linear],
               "jacobian": [outputs["embedding"].grad]}
    for name, proxy in RELEASED.items():
        assert proxy.evaluate(cache)[0] == pytest.approx(proxy.score_tensors(direct), rel=1e-6, abs=1e-12), name
    assert direct["softmax"][0].sum(-1).allclose(torch.ones(()))  # they are attention probabilities


def test_descriptors(two_families):
    gpt2 = two_families.descriptors(0)
    d, inner, V, T = 32, 64, 50257, 48
    attention = 2 * (d * 3 * d + 3 * d + d * d + d)
    ffn = 2 * (d * inner + inner + inner * d + d)
    assert gpt2["params_attention"] == attention and gpt2["params_ffn"] == ffn
    assert gpt2["params_embedding"] == V * d + 48 * d  # wte + wpe; the tied lm_head adds nothing
    assert gpt2["params_decoder"] == attention + ffn + 5 * 2 * d  # + the five LayerNorms
    assert gpt2["flops_decoder"] == T * 2 * (4 * d * d + 2 * d * inner) + 2 * 2 * T * T * d
    assert gpt2["flops"] == gpt2["flops_decoder"] + T * V * d
    assert two_families.descriptors(1)["n_layers"] == 2 and two_families.descriptors(1)["hidden"] == 32


@pytest.mark.parametrize("make, fragment", [
    (lambda root: root, "no architecture configs in this folder"),
    (lambda root: write_set(root, {"a": {"model_type": "no-such-model"}}), "transformers cannot read"),
    (lambda root: write_set(root, {"a": LLAMA}, "arch,score\nb,1.0\n"), "unknown architecture"),
    (lambda root: write_set(root, {"a": LLAMA}, "arch,loss\na,1.0\n"), "needs columns 'arch' and 'score'"),
    (lambda root: (root / "notes.txt").write_text("x") and root / "notes.txt", "not a folder"),
    (lambda root: root / "missing", "unknown benchmark"),
])
def test_one_line_errors(tmp_path, make, fragment):
    path = make(tmp_path)
    with pytest.raises(LPZeroError, match=fragment) as error:
        benchmarks.get(path)
    assert "\n" not in str(error.value)


def test_config_that_cannot_be_built_is_one_line(tmp_path):
    bench = load(write_set(tmp_path, {"a": {**GPT2, "n_embd": 30, "n_head": 4}}))  # 30 is not divisible by 4 heads
    with pytest.raises(LPZeroError, match="transformers cannot build this config") as error:
        bench.build(0)
    assert "\n" not in str(error.value)


def test_unscored_folder_is_extracted_and_ranked_from_the_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("LPZERO_CACHE_DIR", str(tmp_path / "cache"))
    from lpzero_core.workbench.cli import main

    root = write_set(tmp_path / "set", {"small": GPT2, "wide": {**GPT2, "n_embd": 64, "n_head": 4}})
    common = ["--benchmark", str(root), "--batch-size", "1", "--seq-len", "8"]
    assert main(["extract", *common, "--workers", "1", "--no-baselines"]) == 0
    assert main(["rank", *common, "--proxy", str(RELEASED["lpzero_gpt2"]), "--out", str(tmp_path / "r.csv")]) == 0
    ranks = pd.read_csv(tmp_path / "r.csv")
    assert ranks.columns.tolist() == ["arch", "rank", str(RELEASED["lpzero_gpt2"])]  # no target: nothing scored
    assert sorted(ranks["arch"]) == ["small", "wide"] and sorted(ranks["rank"]) == [1, 2]
