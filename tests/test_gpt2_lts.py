"""LTS GPT-2 (hf_gpt2_flex) benchmark: published parameter counts, tying, the adaptive softmax, masking, sites."""
import math

import numpy as np
import pytest
import torch
import yaml
from transformers.pytorch_utils import Conv1D

from lpzero_core.errors import LPZeroError
from lpzero_core.stats.benchmarks import get
from lpzero_core.stats.benchmarks.gpt2_lts import GPT2Flex, clean_cutoffs, from_config_dir, load

pytestmark = pytest.mark.needs_data

#: one architecture per (div_val, d_embed == d_model); the first five are the spec's worked examples
SAMPLE = {"config_0_j0": (4, False), "config_0_j8": (1, False), "config_10_j6": (1, True),
          "config_1_j6": (2, True), "config_12_j4": (4, True), "config_15_j5": (2, False)}
V = 50264


@pytest.fixture(scope="module")
def bench():
    return load()


@pytest.fixture(scope="module")
def small(bench):
    """A 2-layer model (div_val 4, d_model 64, d_embed 128) in eval mode, for exact comparisons."""
    return bench.build(bench.arch_keys.index("config_9_j3")).eval()


def index(bench, key):
    return bench.arch_keys.index(key)


def test_registry_order_and_variants(bench):
    assert get("gpt2-wt103").arch_keys == bench.arch_keys
    assert len(bench) == 200 and bench.variant == "hf_gpt2_flex" and bench.name == "gpt2-wt103"
    assert bench.arch_keys[:11] == [f"config_0_j{m}" for m in range(10)] + ["config_1_j0"]
    assert bench.arch_keys.index("config_2_j0") < bench.arch_keys.index("config_10_j0")
    with pytest.raises(LPZeroError, match="only variant is 'hf_gpt2_flex'") as err:
        load("as_trained")
    assert "\n" not in str(err.value)


def test_param_check_exact_on_all_six_layouts(bench):
    layouts = {(bench.archs[index(bench, k)].div_val, bench.archs[index(bench, k)].d_embed ==
                bench.archs[index(bench, k)].d_model) for k in SAMPLE}
    assert layouts == set(SAMPLE.values()) and len(layouts) == 6
    for key in SAMPLE:
        i = index(bench, key)
        check = bench.param_check(i)
        assert set(check) == {"AdaEmb", "Attn", "FFN", "nonembedding", "total"}
        assert all(published == rebuilt for published, rebuilt in check.values()), (key, check)
        d = bench.descriptors(i)
        assert (d["params_embedding"], d["params_attention"], d["params_ffn"], d["params_decoder"],
                d["params_total"]) == tuple(check[f][0] for f in ("AdaEmb", "Attn", "FFN", "nonembedding", "total"))
    assert bench.param_check(0)["total"] == (8505006, 8505006)


def test_descriptors_flops(bench):
    a = bench.archs[0]
    T, d = 192, a.d_model
    decoder = sum(4 * T * d * d + 2 * T * T * d + 2 * T * d * di for di in a.d_inner)
    output = T * ((d * 256 + 256 * 19999) + (d * 64 + 64 * 20000) + (d * 16 + 16 * 10267))
    desc = bench.descriptors(0)
    assert (desc["n_layers"], desc["hidden"]) == (5, 128)
    assert (desc["flops_decoder"], desc["flops"]) == (decoder, decoder + output)


def test_tying_is_by_reference(bench):
    for key in ("config_15_j5", "config_11_j5"):  # div_val 2 and 1, both with d_embed != d_model
        model = bench.build(index(bench, key))
        wte, head = model.transformer.wte, model.lm_head
        assert all(w is e.weight for w, e in zip(head.out_weights, wte.emb_layers))
        tied = wte.emb_projs if len(wte.emb_projs) == 3 else [wte.emb_projs[0]] * 3
        assert head.out_projs[1] is tied[1] and head.out_projs[2] is tied[2]
        assert all(head.out_projs[0] is not p for p in wte.emb_projs)
        assert sum(p.numel() for p in model.parameters()) == bench.param_check(index(bench, key))["total"][0]


def test_only_four_matrices_per_block(small):
    matrices = [m for m in small.modules() if isinstance(m, (Conv1D, torch.nn.Linear))]
    assert len(matrices) == 4 * len(small.transformer.h)


def test_log_probs_normalised_and_consistent_with_nll(small):
    ids = torch.randint(0, V, (2, 8), generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([[0, 19996, 19997, 39996, 39997, 50263, 5, 45000]] * 2)
    with torch.no_grad():
        logp = small(ids)
        nll = small(ids, labels)
    assert logp.shape == (2, 8, V)
    assert logp.logsumexp(-1).abs().max() < 1e-5
    torch.testing.assert_close(nll, -logp.gather(-1, labels[..., None]).squeeze(-1), atol=1e-5, rtol=0)


def test_causal_mask(small):
    ids = torch.randint(0, V, (1, 12), generator=torch.Generator().manual_seed(1))
    changed = ids.clone()
    changed[0, 7] = (ids[0, 7] + 1) % V
    with torch.no_grad():
        before, after = small(ids), small(changed)
    torch.testing.assert_close(before[:, :7], after[:, :7], atol=1e-6, rtol=0)
    assert (before[:, 7:] - after[:, 7:]).abs().amax(-1).min() > 1e-4


def test_initial_loss_on_uniform_targets(bench):
    """Expected initial NLL of a uniform random target, E = mean over all V ids of −log p (no sampling noise).
    Near-uniform cluster softmaxes give (Σ_c size_c·(log 19999 + [c is a tail]·log size_c)) / V = 15.73: the
    ~60 % of ids in the tails pay two log-softmaxes."""
    sizes = (19997, 20000, 10267)
    flat = (sizes[0] * math.log(19999) + sum(s * (math.log(19999) + math.log(s)) for s in sizes[1:])) / V
    with torch.no_grad():
        logp = bench.build(0)(torch.randint(0, V, (1, 16), generator=torch.Generator().manual_seed(2)))
    assert abs(-logp.mean().item() - flat) < 0.1


def test_init_scales(bench):
    model = bench.build(0)  # L = 5
    assert model.training
    assert abs(model.transformer.wpe.weight.std().item() - 0.02) < 0.002
    assert abs(model.transformer.wte.emb_projs[0].std().item() - 0.01) < 0.001
    assert abs(model.lm_head.out_projs[0].std().item() - 0.01) < 0.001
    assert abs(model.transformer.h[0].mlp.c_proj.weight.std().item() - 0.02 / math.sqrt(10)) < 0.001
    assert abs(model.transformer.h[0].attn.c_attn.weight.std().item() - 0.02) < 0.001
    assert model.lm_head.out_layers_biases[0].abs().sum() == 0


def test_sites_capture_distinct_tensors(bench, small):
    sites = bench.sites(small)
    L, d = len(small.transformer.h), small.arch.d_model
    assert (len(sites.act), len(sites.head), len(sites.softmax), len(sites.linear)) == (4 * L, L, L, 4 * L)
    assert not {id(m) for m in sites.head} & {id(m) for m in sites.act}
    seen = {}
    hooks = [m.register_forward_hook(lambda m, a, out, n=n: seen.setdefault(n, out))
             for n, m in [("qkv", sites.act[0]), ("query", sites.head[0]), ("probs", sites.softmax[0]),
                          ("embedding", sites.embedding)]]
    ids = torch.randint(0, V, (2, 6), generator=torch.Generator().manual_seed(3))
    small(ids, ids).mean().backward()
    for hook in hooks:
        hook.remove()
    assert seen["qkv"].shape == (2, 6, 3 * d) and seen["query"].shape == (2, 6, d)
    torch.testing.assert_close(seen["query"], seen["qkv"][..., :d])
    probs = seen["probs"]
    assert probs.shape == (2, small.arch.n_head[0], 6, 6)
    torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:-1]))
    assert probs.triu(1).abs().max() == 0
    assert seen["embedding"].shape == (2, 6, d) and seen["embedding"].requires_grad
    assert all(m.weight.grad is not None for m in sites.linear)
    small.zero_grad()


def test_block_matches_transformers_gpt2block(small):
    from transformers.models.gpt2.modeling_gpt2 import GPT2Block, GPT2Config

    a, T = small.arch, 10
    x = torch.randn(2, T, a.d_model, generator=torch.Generator().manual_seed(4))
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    mask = torch.zeros(1, 1, T, T).masked_fill(future, torch.finfo(torch.float32).min)
    for layer, block in enumerate(small.transformer.h):
        config = GPT2Config(n_embd=a.d_model, n_head=a.n_head[layer], n_inner=a.d_inner[layer],
                            n_positions=a.tgt_len, layer_norm_epsilon=1e-5, activation_function="gelu_new")
        config._attn_implementation = "eager"
        reference = GPT2Block(config, layer_idx=layer).eval()
        reference.load_state_dict(block.state_dict())
        with torch.no_grad():
            torch.testing.assert_close(block(x, future), reference(x, attention_mask=mask), atol=1e-6, rtol=1e-5)


def test_build_is_deterministic_per_seed_and_arch(bench):
    i = index(bench, "config_9_j3")
    first, again, other = bench.build(i, seed=0), bench.build(i, seed=0), bench.build(i, seed=1)
    for (name, p), q, r in zip(first.state_dict().items(), again.state_dict().values(), other.state_dict().values()):
        assert torch.equal(p, q), name
    assert not torch.equal(first.transformer.wpe.weight, other.transformer.wpe.weight)


def test_target_sign_strata_and_split(bench):
    ppl = np.array([bench.extra["ppl_summary"][k]["valid_ppl"] for k in bench.arch_keys])
    assert np.array_equal(bench.target, -ppl) and bench.target_name == "-valid_ppl"
    assert int(np.argmax(bench.target)) == int(np.argmin(ppl))
    assert set(bench.strata) == {"L1-4", "L5-8", "L9-12", "L13-16"}
    assert all(s == f"L{4 * ((c['n_layer'] - 1) // 4) + 1}-{4 * ((c['n_layer'] - 1) // 4) + 4}"
               for s, c in zip(bench.strata, bench.configs))
    assert np.array_equal(bench.search_ids, np.sort(np.random.default_rng(0).choice(200, 50, replace=False)))
    assert len(bench.heldout_ids) == 150


def test_clean_cutoffs():
    assert clean_cutoffs([19997, 39997, 199997, 50264], V) == (19997, 39997, 50264)
    assert clean_cutoffs([59997, 99997, 639997, 50264], V) == (50264,)
    assert clean_cutoffs([100, 200], 300) == (100, 200, 300)
    with pytest.raises(LPZeroError):
        clean_cutoffs([200, 100], 300)


def test_from_config_dir(bench, tmp_path):
    base = bench.configs[index(bench, "config_9_j3")]
    variants = {"config_10/j1": base,
                "config_2/j0": {**base, "d_embed": -1, "div_val": 1, "tie_weight": False},
                "config_3/j0": {**base, "d_embed": -1, "cutoffs": [59997, 99997, 639997, V], "tie_projs": [False] * 4}}
    for folder, config in variants.items():
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "model_config.yaml").write_text(yaml.safe_dump(config))
    mine = from_config_dir(tmp_path)
    assert mine.arch_keys == ["config_2_j0", "config_3_j0", "config_10_j1"] and np.isnan(mine.target).all()
    models = [GPT2Flex(arch).eval() for arch in mine.archs]
    assert [m.param_counts() for m in models] == [arch.param_counts() for arch in mine.archs]
    assert mine.archs[1].cutoffs == (V,)  # lm1b-style cutoffs: one plain softmax over V, still projected (d × d)
    with torch.no_grad():
        assert models[1](torch.arange(8)[None] * 6000).logsumexp(-1).abs().max() < 1e-5
    with pytest.raises(LPZeroError, match="params_summary"):
        mine.param_check(0)
    with pytest.raises(LPZeroError, match="exceeds"):
        mine.batch(seq_len=193)
    (tmp_path / "config_2/j0/model_config.yaml").write_text(yaml.safe_dump({"n_layer": 2}))
    with pytest.raises(LPZeroError, match="missing keys"):
        from_config_dir(tmp_path)
