"""`lpzero results`: tables per benchmark with transfer rows, README blocks filled, reproducible, all-or-nothing."""
import re

import numpy as np
import pandas as pd
import pytest

from lpzero_core.errors import LPZeroError
from lpzero_core.workbench.results import embed, write_results

README = """# Title
text before
<!-- results:first -->
old table
<!-- /results:first -->
between
<!-- results:second -->
<!-- /results:second -->
text after
"""
#: the table settings of the tests without the search modes
QUICK = dict(n_resamples=50, progress=False, with_modes=False)
REQUIRED = ["proxy", "kendall", "spearman", "kendall_ci_low", "kendall_ci_high", "top10_kendall", "strata_kendall",
            "partial_spearman", "seconds_per_arch"]


@pytest.fixture
def caches(synthetic_cache):
    return {"first": synthetic_cache, "second": synthetic_cache.subset(np.arange(100))}


def test_tables_transfer_and_readme(caches, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(README)
    tables = write_results(caches, tmp_path / "results", tmp_path / "runs", readme, **QUICK)
    for name, cache in caches.items():
        table = pd.read_csv(tmp_path / "results" / f"{name}.csv")
        assert set(REQUIRED) <= set(table.columns) and len(table) == len(tables[name])
        kinds = dict(zip(table["proxy"], table["kind"]))
        other = "second" if name == "first" else "first"
        assert kinds["searched (seed 0)"] == "searched" and kinds[f"searched on {other} (transfer)"] == "transfer"
        assert {"n_layers", "n_layers_hidden", "params_total"} <= set(table["proxy"])
        assert (table["n"] == len(cache.heldout_ids)).all()
        assert (tmp_path / "runs" / name / "best.json").exists()
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# Title\ntext before\n") and text.endswith("text after\n")
    assert len(re.findall(r"\| searched \(seed 0\) +\|", text)) == 2 and "held-out n = 50 of 100 extracted" in text


def test_rerun_is_identical(caches, tmp_path):
    for run in ("a", "b"):
        write_results(caches, tmp_path / run, tmp_path / f"runs-{run}", None, **QUICK)
    for name in caches:
        assert (tmp_path / "a" / f"{name}.csv").read_bytes() == (tmp_path / "b" / f"{name}.csv").read_bytes()


def test_missing_readme_block_writes_nothing(caches, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(README.replace("<!-- results:second -->\n", ""))
    with pytest.raises(LPZeroError, match="results:second"):
        write_results(caches, tmp_path / "results", tmp_path / "runs", readme, **QUICK)
    assert not (tmp_path / "results").exists() and readme.read_text() == README.replace("<!-- results:second -->\n", "")


def test_embed_replaces_only_its_block():
    out = embed(README, "second", "new")
    assert "<!-- results:second -->\nnew\n<!-- /results:second -->" in out and "old table" in out


def test_default_search_runs_once_for_results_and_notebook_02(caches, tmp_path, monkeypatch):
    """`make paper` = `make results`, then notebook 02 on the run `make results` wrote: one search per benchmark."""
    import json

    from lpzero_core.search import gp
    from lpzero_core.workbench import experiments, results, runs

    notebook = json.loads((experiments.PROJECT_ROOT / "notebooks" / "02_search_proxy.ipynb").read_text())
    parameters = {}
    exec("".join(next(c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", []))["source"]),
         parameters)
    config = gp.GPConfig(population=parameters["population"], iterations=parameters["iterations"],
                         n_unary=parameters["n_unary"], fitness=parameters["fitness"], rps=parameters["rps"],
                         seed=parameters["seed"])
    assert config == results.DEFAULT_SEARCH, "notebook 02's default search is the one of the README tables"
    assert parameters["search_dir"] is None and "runs/results/{benchmark}" in json.dumps(notebook)

    small = gp.GPConfig(population=10, iterations=20)
    monkeypatch.setattr(results, "DEFAULT_SEARCH", small)
    calls, search = [], gp.search
    monkeypatch.setattr(runs.gp, "search", lambda *a, **k: calls.append(1) or search(*a, **k))
    write_results(caches, tmp_path / "results", tmp_path / "runs", None, **QUICK)
    assert len(calls) == len(caches)
    for name, cache in caches.items():
        summary = experiments.run_search(cache, small, tmp_path / "runs" / name)
        assert summary == json.loads((tmp_path / "runs" / name / "summary.json").read_text())
    write_results(caches, tmp_path / "results", tmp_path / "runs", None, **QUICK)
    assert len(calls) == len(caches), "notebook 02 and a second `make results` reuse the run"


TINY_MODES = {"tree": {"population": 12, "offspring": 12, "generations": 2},
              "combine": {"population": 12, "offspring": 12, "generations": 2},
              "template": {"population": 10, "iterations": 20}}


def test_mode_rows_multi_benchmark_row_and_gap_table(caches, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("".join(f"<!-- results:{n} -->\n<!-- /results:{n} -->\n<!-- results:{n}-modes -->\n"
                              f"<!-- /results:{n}-modes -->\n" for n in caches)
                      + "<!-- results:transfer -->\n<!-- /results:transfer -->\n")
    tables = write_results(caches, tmp_path / "results", tmp_path / "runs", readme, n_resamples=20, progress=False,
                           mode_settings=TINY_MODES)
    names = list(caches)
    for name in caches:
        table = tables[name]
        assert table["regret_vs_structure"].notna().all()
        kinds = dict(zip(table["proxy"], table["kind"]))
        for mode in ("tree", "combine", "surrogate"):
            assert [k for p, k in kinds.items() if p.startswith(f"{mode} (seed ")] == ["mode"]
        assert [k for p, k in kinds.items() if p.startswith(f"tree on {' + '.join(names)}")] == ["multi"]
        assert table["lex_kendall"].notna().any()
        gap = pd.read_csv(tmp_path / "results" / f"{name}-modes.csv")
        assert list(gap["mode"]) == ["template", "tree", "combine", "surrogate", f"tree on {' + '.join(names)}"]
        assert (gap["seeds"] == 5).all() and gap["gap"].str.match(r"-?\d\.\d{3} \[").all()
    assert (tmp_path / "runs" / "multi" / "modes" / "tree" / "seeds.csv").is_file()
    text = readme.read_text()
    assert text.count("| surrogate (seed") == len(caches)
    assert text.count("| tree on first + second (seed") == len(caches)
    transfer = tables["transfer"]  # each single-benchmark mode, A → B for both orders; the multi tree saw both
    assert sorted(zip(transfer["searched_on"], transfer["scored_on"])) == sorted(
        [("first", "second"), ("second", "first")] * 4)
    assert set(transfer["mode"]) == {"template", "tree", "combine", "surrogate"}
    np.testing.assert_allclose(transfer["regret_vs_structure"], transfer["spearman"] - transfer["descriptor_spearman"])
    assert (transfer["n"] == [len(caches[n]) for n in transfer["scored_on"]]).all()
    assert "| searched_on" in text and pd.read_csv(tmp_path / "results" / "transfer.csv").shape == transfer.shape
