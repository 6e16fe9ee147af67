"""FlexiBERT benchmark: metadata, the three model variants, parameter counts, sites, determinism and masking."""
import numpy as np
import pytest
import scipy.fft
import torch
from torch import nn

from lpzero_core.errors import LPZeroError
from lpzero_core.stats.benchmarks import flexibert as fb
from lpzero_core.stats.benchmarks import get

pytestmark = pytest.mark.needs_data

SAMPLE = list(range(0, 500, 25))  # 20 archs per variant; all 500 are checked by `lpzero info`


def layer(op, param, heads, nff=1, f=512):
    return {"operation_type": op, "operation_parameter": param, "num_operation_heads": heads,
            "feed_forward_dimension": f, "num_feed_forward": nff}


#: one layer of every op type and head count (FFN widths vary too)
ALL_OPS = {"hidden_size": 128, "encoder_layers": [
    layer("SA", "SDP", 2), layer("SA", "WMA", 4, nff=3), layer("LT", "DFT", 2), layer("LT", "DCT", 4),
    layer("DSC", 5, 2), layer("DSC", 9, 4, nff=3, f=1024)]}


@pytest.fixture(scope="module", params=fb.VARIANTS)
def bench(request):
    return fb.load(request.param)


def tiny_batch(batch_size=2, seq_len=16, seed=0):
    ids = torch.randint(5, 30000, (batch_size, seq_len), generator=torch.Generator().manual_seed(seed))
    return {"input_ids": ids, "token_type_ids": torch.zeros_like(ids), "attention_mask": torch.ones_like(ids)}


def test_metadata():
    b = get("flexibert")
    assert (b.name, b.variant, len(b)) == ("flexibert", "as_trained", 500)
    assert b.arch_keys[:3] == ["0", "1", "2"] and b.target_name == "GLUE average"
    assert b.target[0] == pytest.approx(74.73375) and b.target.dtype == np.float64
    assert b.strata[0] == "L4-h256" and set(b.strata) == {"L2-h128", "L2-h256", "L4-h128", "L4-h256"}
    assert list(b.search_ids) == list(range(50)) and list(b.heldout_ids) == list(range(50, 500))
    assert (b.default_batch_size, b.default_seq_len) == (4, 128)
    with pytest.raises(LPZeroError, match="unknown flexibert variant 'trained'"):
        fb.load("trained")


def test_param_counts_match_published(bench):
    for i in SAMPLE:
        published, rebuilt = bench.param_check(i)["params"]
        assert published == rebuilt, (bench.variant, i)


def test_param_counts_spec_examples():
    """Spec §6.4 examples (ID: CSV / T) and ranges."""
    port, trained = fb.load("port"), fb.load("as_trained")
    assert [port.param_check(i)["params"][0] for i in (0, 2, 3, 153)] == [13330176, 8840082, 5526167, 13367442]
    assert [trained.param_check(i)["params"][1] for i in (0, 2, 3, 153)] == [10576896, 5291264, 4369408, 6341888]


def test_descriptors(bench):
    d = bench.descriptors(0)
    assert (d["n_layers"], d["hidden"]) == (4, 256)
    assert d["params_total"] == bench.param_check(0)["params"][1]
    assert d["params_decoder"] == d["params_attention"] + d["params_ffn"]
    assert d["params_total"] - d["params_decoder"] == fb.EMBEDDING_PARAMS + 128 * 256 + 256
    assert d["flops"] > 0


def test_flops_formula():
    """One SDP layer, h = 128, nff = 1, T = 128: T·(4h² + 2·4h²) linear MACs + 2T²h attention MACs."""
    b = fb.load("as_trained")
    b.configs = [{"hidden_size": 128, "encoder_layers": [layer("SA", "SDP", 2)]}]
    h, t = 128, 128
    assert b.descriptors(0)["flops"] == t * 12 * h * h + 2 * t * t * h


def test_forward_backward_every_op(bench):
    torch.manual_seed(0)
    model = fb.make_model(bench.variant, ALL_OPS).train()
    sites = bench.sites(model)
    calls, probs = [], []
    for m in sites.act:
        m.register_forward_hook(lambda *_: calls.append(1))
    for m in sites.softmax:
        m.register_forward_hook(lambda _m, _i, out: probs.append(out))
    y = model(**tiny_batch())
    assert y.shape == (2, 16, 256 if bench.variant == "port" else 128)
    assert len(calls) == sum(x["num_feed_forward"] for x in ALL_OPS["encoder_layers"])
    assert len(probs) == len(sites.softmax) and all(torch.allclose(p.sum(-1), torch.ones(())) for p in probs)
    loss = bench.loss(model, tiny_batch())
    loss.backward()
    assert loss.shape == () and torch.isfinite(loss)
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("variant, n_softmax, n_linear", [("as_trained", 4, 31), ("port", 4, 29), ("intended", 3, 30)])
def test_sites_of_arch_0(variant, n_softmax, n_linear):
    """Arch 0: WMA (N4, nff3), DCT (N2, nff3), SDP (N4, nff3), SDP (N4, nff1); h = 256 (projection present)."""
    b = fb.load(variant)
    model = fb.make_model(variant, b.configs[0], device="meta")
    s = b.sites(model)
    assert len(s.act) == 10 == len({id(m) for m in s.act}) and all(isinstance(m, nn.GELU) for m in s.act)
    assert len(s.head) == 4 and all(isinstance(m, nn.Linear) for m in s.head)
    assert len(s.softmax) == n_softmax and all(isinstance(m, nn.Softmax) for m in s.softmax)
    assert len(s.linear) == n_linear and model.embeddings.project in s.linear
    assert s.embedding is model.embeddings.norm
    assert s.head[0] is model.layers[0].op.query
    assert s.head[1] is (model.layers[1].op.query if variant == "as_trained" else model.layers[1].op.input)


def test_dct_matrix_is_unnormalised_dct2():
    x = torch.randn(7, dtype=torch.float64)
    assert np.allclose((fb._dct_matrix(7, x) @ x).numpy(), scipy.fft.dct(x.numpy(), type=2))


def test_build_is_deterministic():
    b = fb.load("as_trained")
    first, again, other_arch, other_seed = b.build(3), b.build(3), b.build(7), b.build(3, seed=1)
    assert first.training
    assert all(torch.equal(p, q) for p, q in zip(first.state_dict().values(), again.state_dict().values()))
    table = first.embeddings.word.weight
    assert not torch.equal(table, other_arch.embeddings.word.weight)
    assert not torch.equal(table, other_seed.embeddings.word.weight)
    assert table.abs().max() <= 0.04  # truncated at 2σ


def test_as_trained_honours_hidden_and_ffn():
    """Arch 210: h = 128, SDP (N4) + WMA (N2), both nff = 3 with f = 1024 ≠ 4h; the port replaced h and f."""
    config = fb.load("as_trained").configs[210]
    assert config["hidden_size"] == 128
    for variant, hidden in (("as_trained", 128), ("port", 256)):
        model = fb.make_model(variant, config, device="meta")
        assert isinstance(model.embeddings.project, nn.Identity) == (hidden == 128)
        for spec, block in zip(config["encoder_layers"], model.layers):
            shapes = [(m.in_features, m.out_features) for m in block.ffn.modules() if isinstance(m, nn.Linear)]
            if variant == "port":
                widths = [1024] * spec["num_feed_forward"]
            else:
                f = spec["feed_forward_dimension"]
                widths = [4 * hidden] + ([f, f] if spec["num_feed_forward"] == 3 else [])
            dims = [hidden, *widths, hidden]
            assert shapes == list(zip(dims, dims[1:]))
            assert block.op.query.in_features == hidden and block.op.attend.heads == spec["num_operation_heads"]


@pytest.mark.parametrize("variant, honoured", [("as_trained", True), ("port", False)])
def test_padding_mask(variant, honoured):
    """Changing a padded token leaves the real tokens' outputs unchanged in (T); the port ignores the mask."""
    model = fb.load(variant).build(3).eval()
    batch = tiny_batch(seq_len=12)
    batch["attention_mask"][:, 8:] = 0
    changed = {**batch, "input_ids": batch["input_ids"].clone()}
    changed["input_ids"][:, 9] = 7
    with torch.no_grad():
        y, z = model(**batch), model(**changed)
    assert torch.allclose(y[:, :8], z[:, :8], atol=1e-5) == honoured
    assert not torch.allclose(y[:, 9], z[:, 9], atol=1e-5)


def test_batch_uses_text_bert_batch(monkeypatch):
    """batch() delegates to text.bert_batch with the benchmark defaults (4 × 128) unless told otherwise."""
    seen = []
    monkeypatch.setattr(fb, "bert_batch", lambda *args, **kw: seen.append((args, kw)))
    b = fb.load("as_trained")
    b.batch(seed=3)
    b.batch(2, 16)
    assert seen == [((4, 128), {"seed": 3}), ((2, 16), {"seed": 0})]
