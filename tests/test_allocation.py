"""Layer-wise allocation rules (OWL, FLAP) and their snapping to the LoNAS widths (lpzero_core.llama.allocation)."""
import numpy as np
import pytest
import torch

from lpzero_core.errors import LPZeroError
from lpzero_core.llama import allocation
from lpzero_core.stats.channels import LONAS_RATIOS

RATIOS = tuple(float(r) for r in LONAS_RATIOS)  # 1, 0.875, 0.75, 0.625, 0.5


def random_llama(n_layers=4, seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=n_layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(1.0 if "norm" in name else 0.0, 0.3)
    return model


def tokens(seed=1):
    return torch.randint(0, 128, (4, 16), generator=torch.Generator().manual_seed(seed))


def test_snap_keeps_targets_on_the_grid_and_fits_the_budget_maximally():
    assert allocation.snap([1.0, 0.5, 0.75, 0.75], RATIOS, 0.75) == (0, 4, 2, 2)
    rng = np.random.default_rng(0)
    for budget in (0.5, 0.6, 0.75, 0.9, 1.0):
        for _ in range(20):
            target = rng.uniform(0.3, 1.1, 6)
            genes = allocation.snap(target, RATIOS, budget)
            kept = np.array(RATIOS)[list(genes)]
            assert kept.mean() <= budget + 1e-12
            for layer, gene in enumerate(genes):  # maximal: no single layer can widen and still fit
                if gene > 0:
                    assert kept.mean() + RATIOS[gene - 1] / 6 - RATIOS[gene] / 6 > budget + 1e-12
            assert allocation.snap(target, RATIOS, budget) == genes
    with pytest.raises(LPZeroError, match="narrowest"):
        allocation.snap([0.5] * 3, RATIOS, 0.4)


def test_owl_centres_on_the_budget_and_spares_the_layer_with_outliers():
    model = random_llama()
    with torch.no_grad():
        model.model.layers[2].mlp.up_proj.weight[:, :3] *= 40  # a few outlier input columns in layer 2
    ratios = allocation.owl(model, tokens(), 0.75)
    assert ratios.mean() == pytest.approx(0.75)
    assert ratios.max() - ratios.min() == pytest.approx(2 * allocation.OWL_LAMBDA)
    assert int(np.argmax(ratios)) == 2


def test_flap_removes_the_lowest_standardised_fluctuations_across_layers():
    model, ids = random_llama(), tokens()
    inputs = []
    handles = [layer.mlp.down_proj.register_forward_hook(lambda m, args, out: inputs.append(args[0].reshape(-1, 64)))
               for layer in model.model.layers]
    with torch.no_grad():
        model(input_ids=ids)
    for handle in handles:
        handle.remove()
    z = []
    for x, layer in zip(inputs, model.model.layers):
        f = x.double().var(0, unbiased=False) * layer.mlp.down_proj.weight.detach().double().pow(2).sum(0)
        z.append(((f - f.mean()) / f.std()).numpy())
    z = np.stack(z)
    threshold = np.sort(z, axis=None)[int(0.25 * z.size) - 1]
    expected = (z > threshold).mean(axis=1)
    ratios = allocation.flap(model, ids, 0.75)
    np.testing.assert_allclose(ratios, expected)
    assert ratios.mean() == pytest.approx(0.75) and ratios.std() > 0


def test_flap_scores_are_the_fluctuation_of_the_down_projection_input():
    model, ids = random_llama(n_layers=2), tokens()
    stats = allocation._input_statistics(model, ids)
    inputs = []
    down = model.model.layers[0].mlp.down_proj
    handle = down.register_forward_hook(lambda m, args, out: inputs.append(args[0].reshape(-1, 64).double()))
    with torch.no_grad():
        model(input_ids=ids)
    handle.remove()
    s = stats[down]
    torch.testing.assert_close(s["sum_sq"] / s["n"] - (s["sum"] / s["n"]) ** 2, inputs[0].var(0, unbiased=False))


def test_budget_outside_zero_one_is_a_one_line_error():
    for call in (lambda: allocation.owl(random_llama(), tokens(), 1.5), lambda: allocation.snap([1.0], RATIOS, 0)):
        with pytest.raises(LPZeroError) as excinfo:
            call()
        assert "\n" not in str(excinfo.value)


@pytest.mark.parametrize("rule", sorted(allocation.RULES))
def test_budget_allocation_snaps_the_rule_onto_the_space_within_its_budget(rule):
    from lpzero_core.llama import Budget, SubnetSpace

    model = random_llama(n_layers=6)
    space = SubnetSpace(model, multiple=8)  # widths 64, 56, 48, 40, 32
    for limit in (0.5, 0.75, 0.9):
        budget = Budget(space, limit)
        genes = budget.allocation(rule, tokens())
        target = allocation.RULES[rule](model, tokens(), limit)
        ratios = tuple(w / 64 for w in space.widths)
        assert genes == allocation.snap(target, ratios, limit) and budget.fits(genes)
        assert space.fraction(genes) == pytest.approx(np.mean([ratios[g] for g in genes]))
    with pytest.raises(LPZeroError, match="unknown allocation rule"):
        Budget(space, 0.75).allocation("wanda", tokens())


def test_downstream_compares_every_method_within_the_budget():
    from lpzero_core.llama import Budget, SubnetSpace, downstream
    from lpzero_core.llama.search import DEFAULT_PROXY, ONE_BATCH_LOSS, score

    model = random_llama(n_layers=4)
    space = SubnetSpace(model, multiple=8, rule="activation", calibration=tokens(seed=3))
    calibration, windows = tokens(seed=4), tokens(seed=5)
    guides = {"gpt2": DEFAULT_PROXY, "loss": ONE_BATCH_LOSS}
    table = downstream.compare(space, calibration, windows, guides, budgets=(0.75,), n_random=3, population=4,
                               iterations=4)
    assert table["method"].tolist() == ["search:gpt2", "search:loss", "uniform", "greedy", "owl", "flap",
                                        "random-1", "random-2", "random-3", "random (best)", "random (mean)"]
    assert (table["mlp_fraction"] <= 0.75 + 1e-12).all() and np.isfinite(table["ppl"]).all()
    randoms = table[table["method"].str.startswith("random-")]
    rows = table.set_index("method")
    assert rows.loc["random (best)", "ppl"] == randoms["ppl"].min()
    assert rows.loc["random (mean)", "ppl"] == pytest.approx(randoms["ppl"].mean())
    widths = {m: tuple(space.widths.index(int(w)) for w in rows.loc[m, "widths"].split(","))
              for m in ("search:loss", "uniform")}
    assert score(space, widths["search:loss"], ONE_BATCH_LOSS, calibration) >= \
        score(space, widths["uniform"], ONE_BATCH_LOSS, calibration)
    with torch.no_grad():
        direct = np.exp(model(input_ids=windows, labels=windows).loss.item())
    assert downstream.perplexity(space, space.full, windows) == pytest.approx(direct, rel=1e-5)
    again = downstream.compare(space, calibration, windows, guides, budgets=(0.75,), n_random=3, population=4,
                               iterations=4)
    assert again["widths"].tolist() == table["widths"].tolist()
    assert Budget(space, 0.75).fits(widths["search:loss"])
