"""LPZero's released FlexiBERT proxy by batch size (workbench.batch_study), on tiny batches."""
import numpy as np
import pandas as pd
import pytest

from lpzero_core.search import metrics
from lpzero_core.search.proxy import RELEASED
from lpzero_core.stats import benchmarks
from lpzero_core.stats.extract import proxy_inputs
from lpzero_core.workbench import batch_study

pytestmark = pytest.mark.needs_data


def test_scores_are_the_released_proxy_on_port_and_the_summary_compares_with_lpzero(tmp_path):
    scores = batch_study.released_scores([0, 1, 2, 3], [(2, 16), (3, 32)], progress=False)
    assert len(scores) == 8 and set(scores["seq_len"]) == {16, 32}
    # the reference: the same model built and run directly (dropout seeded as the study seeds it)
    port = benchmarks.get("flexibert", "port")
    model = port.build(2, 0)
    batch_study.torch.manual_seed(batch_study.arch_seed(0, 2))
    direct = RELEASED["lpzero_flexibert"].score_tensors(proxy_inputs(port, model, port.batch(3, 32, 0)))
    assert scores.query("arch == 2 and seq_len == 32")["score"].item() == direct
    table = batch_study.summarize(scores)
    assert list(table["batch"]) == ["2×16", "3×32"] and (table["n"] == 4).all()
    theirs = batch_study.published_lpzero().loc[[0, 1, 2, 3]].to_numpy(float)
    ours = scores.query("seq_len == 16")["score"].to_numpy(float)
    assert table.loc[0, "agreement_spearman"] == pytest.approx(metrics.spearman(ours, theirs))
    assert table.loc[0, "theirs_vs_glue"] == pytest.approx(metrics.spearman(theirs, port.target[[0, 1, 2, 3]]))


def test_published_column_is_lpzero_values_for_all_500():
    column = batch_study.published_lpzero()
    assert len(column) == 500 and list(column.index[:3]) == [0, 1, 2] and np.isfinite(column).all()


def test_bad_batches_are_one_line_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        batch_study.main(["--batches", "4by128"])
    assert exit_info.value.code == 2 and "--batches/--ids" in capsys.readouterr().err


def test_combine_summarises_slices(tmp_path, monkeypatch):
    monkeypatch.setattr(batch_study, "write", lambda *args, **kwargs: None)
    slices = []
    for k, ids in enumerate(([0, 1, 2], [3, 4, 5])):
        path = tmp_path / f"s{k}.csv"
        pd.DataFrame({"arch": ids, "batch_size": 2, "seq_len": 8, "score": np.arange(3.0) + k * 3,
                      "seconds": 0.1}).to_csv(path, index=False)
        slices.append(str(path))
    assert batch_study.main(["--combine", *slices]) == 0
