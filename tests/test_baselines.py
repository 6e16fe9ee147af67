"""Hand-crafted baselines on tiny benchmarks that implement the contract, where values are known by hand."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from lpzero_core.errors import LPZeroError
from lpzero_core.seeds import arch_seed
from lpzero_core.stats import baselines
from lpzero_core.stats.benchmarks.base import Benchmark, Sites


# -- a two-layer linear network: y = W2 W1 x, L = Σ y -----------------------------------------------------------
class TwoLinear(nn.Module):
    def __init__(self, d_in: int, hidden: int, d_out: int):
        super().__init__()
        self.embed = nn.Identity()
        self.l1 = nn.Linear(d_in, hidden, bias=False)
        self.l2 = nn.Linear(hidden, d_out, bias=False)

    def forward(self, x):
        return self.l2(self.l1(self.embed(x)))


class TinyLinear(Benchmark):
    def build(self, i, seed=0):
        torch.manual_seed(arch_seed(seed, i))
        return TwoLinear(**self.configs[i])

    def batch(self, batch_size=None, seq_len=None, seed=0):
        g = torch.Generator().manual_seed(seed)
        return {"x": torch.rand(batch_size or 4, self.configs[0]["d_in"], generator=g)}  # positive inputs

    def loss(self, model, batch):
        return model(batch["x"]).sum()

    def sites(self, model):
        return Sites(act=[model.l1], head=[model.l1], softmax=[], linear=[model.l1, model.l2], embedding=model.embed)


# -- a one-layer post-LN attention encoder with an LM head ------------------------------------------------------
class Attention(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.softmax = nn.Softmax(dim=-1)
        self.drop = nn.Dropout(0.1)

    def split(self, z):
        return z.view(*z.shape[:2], self.heads, -1).transpose(1, 2)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.split(self.q(x)), self.split(self.k(x)), self.split(self.v(x))
        p = self.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]))
        return self.o((self.drop(p) @ v).transpose(1, 2).reshape(b, t, d))


class TinyEncoder(nn.Module):
    def __init__(self, vocab: int, d: int, heads: int, ff: int, max_len: int):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(max_len, d)
        self.embed = nn.LayerNorm(d)
        self.attn = Attention(d, heads)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.fc1, self.act, self.fc2 = nn.Linear(d, ff), nn.GELU(), nn.Linear(ff, d)
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(d, vocab)

    def forward(self, ids):
        x = self.embed(self.tok(ids) + self.pos(torch.arange(ids.shape[1])))
        x = self.ln1(x + self.drop(self.attn(x)))
        x = self.ln2(x + self.drop(self.fc2(self.act(self.fc1(x)))))
        return self.head(x)


def encoder_params(vocab, d, heads, ff, max_len):
    """Parameter count by hand, module by module."""
    embeddings = vocab * d + max_len * d + 2 * d
    attention = 4 * (d * d + d)
    ffn = (d * ff + ff) + (ff * d + d)
    return embeddings + attention + ffn + 2 * (2 * d) + (d * vocab + vocab)


class TinyAttention(Benchmark):
    def build(self, i, seed=0):
        torch.manual_seed(arch_seed(seed, i))
        return TinyEncoder(**self.configs[i])

    def batch(self, batch_size=None, seq_len=None, seed=0):
        g = torch.Generator().manual_seed(seed)
        return {"ids": torch.randint(0, 50, (batch_size or 4, seq_len or 12), generator=g)}

    def loss(self, model, batch):
        logits = model(batch["ids"])
        return nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), batch["ids"][:, 1:].flatten())

    def sites(self, model):
        a = model.attn
        return Sites(act=[model.act], head=[a.q], softmax=[a.softmax],
                     linear=[a.q, a.k, a.v, a.o, model.fc1, model.fc2], embedding=model.embed)

    def descriptors(self, i):
        c = self.configs[i]
        d, ff = c["d"], c["ff"]
        attention, ffn = 4 * (d * d + d), 2 * d * ff + ff + d
        return {"n_layers": 1, "hidden": d, "params_total": encoder_params(**c), "params_decoder": attention + ffn,
                "params_attention": attention, "params_ffn": ffn, "flops": 12 * (4 * d * d + 2 * d * ff)}


def make(cls, configs):
    n = len(configs)
    return cls(name="tiny", variant="test", arch_keys=[str(k) for k in range(n)], configs=configs,
               target=np.zeros(n), target_name="none", strata=np.array(["all"] * n), search_ids=np.arange(n))


LINEAR = make(TinyLinear, [{"d_in": 5, "hidden": 16, "d_out": 3}])
ATTENTION = make(TinyAttention, [{"vocab": 50, "d": 16, "heads": 2, "ff": 32, "max_len": 12},
                                 {"vocab": 50, "d": 24, "heads": 4, "ff": 48, "max_len": 12}])


def run(bench, name, i=0, seed=0):
    return baselines.BASELINES[name](bench, bench.build(i, seed), bench.batch())


# -- closed forms -------------------------------------------------------------------------------------------------
def test_synflow_two_layer_linear_closed_form():
    """|θ| net, positive x, R = Σ_b 1ᵀ|W2||W1|x_b: each layer carries the whole flow, so synflow = 2R."""
    model, x = LINEAR.build(0), LINEAR.batch()["x"].double()
    w1, w2 = model.l1.weight.detach().double().abs(), model.l2.weight.detach().double().abs()
    flow = float(torch.ones(3, dtype=torch.float64) @ w2 @ w1 @ x.sum(0))
    assert baselines.BASELINES["synflow"](LINEAR, model, LINEAR.batch()) == pytest.approx(2 * flow, rel=1e-12)
    # logsynflow, term by term: ∂R/∂W1 = (|W2|ᵀ1) sᵀ, ∂R/∂W2 = 1 (|W1| s)ᵀ with s = Σ_b x_b
    s = x.sum(0)
    g1, g2 = torch.outer(w2.sum(0), s), torch.outer(torch.ones(3, dtype=torch.float64), w1 @ s)
    expected = float((w1 * torch.log1p(g1)).sum() + (w2 * torch.log1p(g2)).sum())
    assert run(LINEAR, "logsynflow") == pytest.approx(expected, rel=1e-12)


def test_snip_two_layer_linear_closed_form():
    """L = Σ_b 1ᵀW2W1x_b: ∂L/∂W1 = (W2ᵀ1) sᵀ, ∂L/∂W2 = 1 (W1 s)ᵀ."""
    model, x = LINEAR.build(0), LINEAR.batch()["x"].double()
    w1, w2 = model.l1.weight.detach().double(), model.l2.weight.detach().double()
    s = x.sum(0)
    g1, g2 = torch.outer(w2.sum(0), s), torch.outer(torch.ones(3, dtype=torch.float64), w1 @ s)
    expected = float((w1 * g1).abs().sum() + (w2 * g2).abs().sum())
    assert run(LINEAR, "snip") == pytest.approx(expected, rel=1e-6)
    assert run(LINEAR, "grad_norm") == pytest.approx(float(g1.norm() + g2.norm()), rel=1e-6)
    # GraSP: H g for L bilinear in (W1, W2): (Hg)_W1 = (g2ᵀ1) sᵀ, (Hg)_W2 = 1 (g1 s)ᵀ
    hg1, hg2 = torch.outer(g2.sum(0), s), torch.outer(torch.ones(3, dtype=torch.float64), g1 @ s)
    assert run(LINEAR, "grasp") == pytest.approx(-float((w1 * hg1).sum() + (w2 * hg2).sum()), rel=1e-6)


def test_jacobians_two_layer_linear_closed_form():
    """∂L/∂x_b = W1ᵀW2ᵀ1 for every b: all B Jacobians equal, so corr = 11ᵀ with eigenvalues (B, 0, …, 0) and every
    cosine is 1."""
    b, k = 4, baselines.EPS_EIG
    expected = -(math.log(b + k) + 1 / (b + k) + (b - 1) * (math.log(k) + 1 / k))
    assert run(LINEAR, "jacob_cov") == pytest.approx(expected, rel=1e-6)
    assert run(LINEAR, "jacobian_cosine") == pytest.approx(0.0, abs=1e-6)


def test_nwot_two_layer_linear_by_hand():
    model, x = LINEAR.build(0), LINEAR.batch()["x"]
    c = (model.l1(x) > 0).double().detach()
    kernel = c @ c.T + (1 - c) @ (1 - c).T  # = N_A − Hamming distance
    expected = float(torch.linalg.slogdet(kernel).logabsdet)
    assert math.isfinite(expected) and run(LINEAR, "nwot") == pytest.approx(expected, rel=1e-12)


def test_grad_norm_matches_manual_autograd():
    model = ATTENTION.build(1)
    ATTENTION.loss(model, ATTENTION.batch()).backward()
    manual = sum(m.weight.grad.norm().item() for m in ATTENTION.sites(model).linear)
    assert run(ATTENTION, "grad_norm", 1) == pytest.approx(manual, rel=1e-5)


def test_attention_split_and_its_sums():
    """Attention linears = q, k, v, o (inside the block holding the head and the softmax); FFN = fc1, fc2."""
    model = ATTENTION.build(0)
    sites = ATTENTION.sites(model)
    a = model.attn
    assert baselines._attention_weight_ids(model, sites) == {id(m.weight) for m in (a.q, a.k, a.v, a.o)}
    snip = run(ATTENTION, "snip")
    assert run(ATTENTION, "head_importance") + run(ATTENTION, "synaptic_saliency") == pytest.approx(snip, rel=1e-9)
    model = ATTENTION.build(0)  # rebuilt: the seeded build also fixes the dropout masks of the next forward
    a = model.attn
    ATTENTION.loss(model, ATTENTION.batch()).backward()
    nuc = [(torch.linalg.svdvals(m.weight.detach()).sum(), torch.linalg.svdvals(m.weight.grad).sum())
           for m in (a.q, a.k, a.v, a.o)]
    manual = sum(float(w * g) for w, g in nuc)
    assert run(ATTENTION, "synaptic_diversity") == pytest.approx(manual, rel=1e-5)


def test_eznas_equals_its_float64_definition_bit_for_bit():
    """The Gram matrix of signs is formed in float32 (exact: integers below 2²⁴); the score is the float64 formula's."""
    g = torch.Generator().manual_seed(3)
    grads = [torch.randn(40, 3000, generator=g), torch.randn(700, 30, generator=g), torch.randn(64, 64, generator=g)]
    grads[2][:, :8] = 0.0  # zero signs too
    expected = 0.0
    for grad in grads:
        s = torch.sign(grad.double())
        s = s.T if s.shape[0] > s.shape[1] else s
        expected += float(torch.sigmoid(torch.linalg.slogdet(s @ s.T / s.shape[1]).logabsdet / s.shape[0]))
    assert baselines.eznas(baselines.Pass(weights=grads, grads=grads, seconds=0.0, forward_seconds=0.0)) == expected


def test_confidences_by_hand():
    model, batch = ATTENTION.build(0), ATTENTION.batch()
    probs = []
    handle = model.attn.softmax.register_forward_hook(lambda m, i, o: probs.append(o.detach()))
    with torch.no_grad():
        ATTENTION.loss(model, batch)
    handle.remove()
    p = probs[0]
    assert run(ATTENTION, "attention_confidence") == pytest.approx(float(p.max(-1).values.mean()), rel=1e-6)
    assert run(ATTENTION, "head_softmax_confidence") == pytest.approx(float(p.max(1).values.mean()), rel=1e-6)


def test_structural():
    s = baselines.structural(ATTENTION.descriptors(1))
    assert s["n_layers_hidden"] == 1e6 + 24 and s["params_total"] == encoder_params(**ATTENTION.configs[1])
    assert set(s) == set(baselines.STRUCTURAL)
    table = pd.DataFrame([ATTENTION.descriptors(0), ATTENTION.descriptors(1)])  # the same, over a cache's rows
    over_rows = baselines.structural(table)
    assert over_rows.keys() == s.keys() and all(over_rows[k][1] == s[k] for k in s)
    assert "params" not in baselines.BASELINES  # the network count is params_total, not a second row


# -- every baseline, through compute ------------------------------------------------------------------------------
def test_every_baseline_is_finite_and_reproducible():
    batch = ATTENTION.batch()
    scores, seconds = baselines.compute(ATTENTION, 1, batch, seed=3)
    assert list(scores) == list(baselines.NAMES) and len(baselines.BASELINES) >= 18
    assert all(math.isfinite(v) for v in scores.values()), scores
    assert all(t >= 0 for t in seconds.values())
    again, _ = baselines.compute(ATTENTION, 1, batch, seed=3)
    assert again == scores  # bit for bit
    other, _ = baselines.compute(ATTENTION, 1, batch, seed=4, names=["snip", "nwot"])
    assert other != {k: scores[k] for k in other}


#: every network baseline of ATTENTION architecture 1 (seed 0, its default batch) as computed before the passes were
#: shared (commit 76155af): each on its own freshly built model, by its own forward (+ backward)
PER_BASELINE = {"synflow": 0.34137574126453435, "logsynflow": 0.34105221188726964, "snip": 1.2653158605098724,
                "grasp": -0.09826555126346648, "fisher": 4.3746231172939574e-05, "grad_norm": 0.6068821579698609,
                "jacob_cov": -4.040809071004211, "nwot": 23.158905402406635, "synaptic_diversity": 7.134108456387571,
                "synaptic_saliency": 0.8543001413345337, "attention_confidence": 0.1337977796792984,
                "attention_importance": 0.007802019699379326, "head_importance": 0.41101571917533875,
                "head_confidence": 0.9255860447883606, "head_softmax_confidence": 0.10950366407632828,
                "jacobian_score": -428.1148464548266, "jacobian_cosine": 0.12267885396172196,
                "eznas": 1.2772879214524435}


def test_shared_passes_keep_the_per_baseline_values():
    """Three passes give what 18 separate ones gave (same bits on the machine that pinned them; the tolerance only
    allows for other float32 kernels): same initialisation, dropout masks, loss and gradients."""
    scores, _ = baselines.compute(ATTENTION, 1, ATTENTION.batch(), names=list(PER_BASELINE))
    assert scores == pytest.approx(PER_BASELINE, rel=1e-6)


def test_a_baseline_alone_equals_it_among_all():
    """Every pass directly follows its own seeded build, so what else is asked for changes nothing."""
    batch = ATTENTION.batch()
    together, _ = baselines.compute(ATTENTION, 0, batch, seed=5)
    for name in baselines.BASELINES:
        alone, _ = baselines.compute(ATTENTION, 0, batch, seed=5, names=[name])
        assert alone == {name: together[name]}
    assert baselines.BASELINES["snip"](ATTENTION, ATTENTION.build(0, 5), batch) == together["snip"]


def test_compute_rejects_unknown_names():
    with pytest.raises(LPZeroError, match="unknown baseline"):
        baselines.compute(ATTENTION, 0, ATTENTION.batch(), names=["snip", "magic"])


@pytest.mark.parametrize("name", sorted(baselines.BASELINES))
def test_model_left_untouched_and_hooks_removed(name):
    model, batch = ATTENTION.build(0), ATTENTION.batch()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    baselines.BASELINES[name](ATTENTION, model, batch)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters()) and model.training
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules())


def test_hooks_removed_on_error():
    class Failing(TinyAttention):
        def loss(self, model, batch):
            model(batch["ids"])
            raise RuntimeError("boom")

    bench = make(Failing, ATTENTION.configs)
    model = bench.build(0)
    for name in ("fisher", "nwot", "jacob_cov", "attention_importance"):
        with pytest.raises(RuntimeError, match="boom"):
            baselines.BASELINES[name](bench, model, bench.batch())
        assert not any(m._forward_hooks for m in model.modules())
