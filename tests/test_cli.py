import json
import subprocess
import sys

import pytest

from lpzero_core.stats.benchmarks.synthetic import make_cache
from lpzero_core.workbench.cli import main


def test_search_writes_outputs(tmp_path, capsys):
    out, cache_dir = tmp_path / "run", tmp_path / "syn"
    make_cache(cache_dir, n_archs=60, n_search=20)
    code = main(["search", "--benchmark", "synthetic", "--cache", str(cache_dir), "--population", "10",
                 "--iterations", "30", "--out", str(out), "--quiet", "--bootstrap", "50", "--top", "0"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    for key in ("proxy", "formula", "search", "heldout", "rejected", "evaluations", "wall_seconds", "seed"):
        assert key in summary
    assert summary["search"]["n"] == 20 and summary["heldout"]["n"] == 40
    assert json.loads((out / "best.json").read_text())["proxy"] == summary["proxy"]
    printed = capsys.readouterr().out
    assert "held-out" in printed and "| searched" in printed  # the searched row, even below --top


@pytest.mark.parametrize("argv, fragment", [
    (["evaluate", "--benchmark", "synthetic", "--cache", "/nonexistent", "--all"], "no statistics cache"),
    (["search", "--benchmark", "flexibert", "--cache", "/nonexistent"], "no statistics cache"),
])
def test_bad_input_is_one_line_and_nonzero(argv, fragment):
    proc = subprocess.run([sys.executable, "-m", "lpzero_core.workbench.cli", *argv], capture_output=True, text=True)
    assert proc.returncode == 2
    assert fragment in proc.stderr and proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr


def test_bad_proxy_string(tmp_path, capsys):
    make_cache(tmp_path, n_archs=30, n_search=10)
    code = main(["evaluate", "--benchmark", "synthetic", "--cache", str(tmp_path), "--proxy", "sum(weight.pw, act)"])
    assert code == 2 and "'pw'" in capsys.readouterr().err


def test_search_mode_runs_over_seeds_and_prints_the_chosen_row(tmp_path, capsys):
    cache_dir, out = tmp_path / "syn", tmp_path / "mode"
    make_cache(cache_dir, n_archs=60, n_search=20)
    code = main(["search", "--benchmark", "synthetic", "--cache", str(cache_dir), "--mode", "combine", "--seeds",
                 "0,1", "--set", "generations=1", "--set", "population=10", "--set", "offspring=10", "--out",
                 str(out), "--quiet", "--bootstrap", "20"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "combine" and summary["seeds"] == [0, 1]
    printed = capsys.readouterr().out
    assert f"| combine (seed {summary['chosen_seed']})" in printed and "gap" in printed


@pytest.mark.parametrize("extra, fragment", [
    (["--set", "generations"], "expected KEY=JSON"),
    (["--set", "nope=1"], "unknown setting 'nope'"),
])
def test_bad_mode_settings_are_one_line(tmp_path, capsys, extra, fragment):
    make_cache(tmp_path, n_archs=30, n_search=10)
    code = main(["search", "--benchmark", "synthetic", "--cache", str(tmp_path), "--mode", "tree", *extra,
                 "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and err.strip().count("\n") == 0
