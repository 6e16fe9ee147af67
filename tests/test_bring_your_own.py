"""The worked example examples/bring_your_own: its committed set is what it generates, and it runs end to end."""
import importlib.util
import json

import numpy as np
import pandas as pd
import pytest

from lpzero_core.files import PROJECT_ROOT

HERE = PROJECT_ROOT / "examples" / "bring_your_own"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("bring_your_own", HERE / "bring_your_own.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_set_is_the_generated_one(example):
    configs = example.configs()
    assert len(configs) == example.N_ARCHS and {c["model_type"] for c in configs.values()} == {"gpt2", "llama"}
    assert {key: json.loads((HERE / "set" / key / "config.json").read_text()) for key in configs} == configs
    scores = pd.read_csv(HERE / "set" / "scores.csv")
    assert sorted(scores["arch"]) == sorted(configs) and np.isfinite(scores["val_loss"]).all()


def test_example_runs_end_to_end_small(example, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LPZERO_CACHE_DIR", str(tmp_path / "cache"))
    code = example.main(["--set", str(tmp_path / "set"), "--out", str(tmp_path / "out"), "--n-archs", "4",
                         "--steps", "2", "--batch-size", "1", "--seq-len", "16", "--no-baselines",
                         "--population", "6", "--iterations", "10"])
    assert code == 0
    scores = pd.read_csv(tmp_path / "set" / "scores.csv")
    assert scores["arch"].tolist() == ["gpt2-00", "gpt2-02", "llama-01", "llama-03"]
    assert np.isfinite(scores["val_loss"]).all()
    heldout = pd.read_csv(tmp_path / "out" / "heldout.csv")
    assert set(heldout["proxy"]) == {str(tmp_path / "out" / "search" / "best.json"), *example.STRUCTURAL}
    ranks = pd.read_csv(tmp_path / "out" / "ranks.csv")
    assert len(ranks) == 4 and ranks["rank"].min() == 1 and "target" in ranks.columns
    assert "$ lpzero rank" in capsys.readouterr().out
