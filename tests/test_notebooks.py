"""Every notebook of the paper workflow runs headless through papermill with tiny parameters on a synthetic
cache, and writes its figures (PNG and PDF, non-empty)."""
import json

import pytest

papermill = pytest.importorskip("papermill")

from conftest import SYNTHETIC  # noqa: E402

from lpzero_core.workbench.experiments import PROJECT_ROOT  # noqa: E402

NOTEBOOKS = PROJECT_ROOT / "notebooks"
FIGURES = {"02_search_proxy": ("evolution", "ablation_n_unary", "modes", "pareto"),
           "03_correlation_plots": ("spearman_bars", "rank_scatter", "cost", "best_proxy_tree")}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, synthetic_cache_dir):
    """Paths shared by the notebooks of one test module, and a runner that executes each notebook once."""
    root = tmp_path_factory.mktemp("paper")
    common = {"benchmark": "synthetic", "cache_dir": str(synthetic_cache_dir)}
    parameters = {
        "01_extract_statistics": {**common, "n_archs": SYNTHETIC["n_archs"], "n_search": SYNTHETIC["n_search"]},
        "02_search_proxy": {**common, "population": 10, "iterations": 30, "study_seeds": [0, 1, 2],
                            "ablation_n_unary": [2, 3], "ablation_population": 6, "ablation_iterations": 4,
                            "runs_dir": str(root / "runs"), "search_dir": str(root / "runs" / "search"),
                            "figures_dir": str(root / "figures"),
                            "mode_settings": {m: {"population": 10, "offspring": 10, "generations": 1}
                                              for m in ("tree", "combine")}
                            | {"template": {"population": 10, "iterations": 20}}},
        "03_correlation_plots": {**common, "runs_dir": str(root / "runs"), "search_dir": str(root / "runs" / "search"),
                                 "figures_dir": str(root / "figures"), "n_resamples": 50},
        "00_explore": {**common, "runs_dir": str(root / "runs")},
    }
    done = {}

    def run(name):
        if name not in done:
            output = root / "executed" / f"{name}.ipynb"
            output.parent.mkdir(exist_ok=True)
            papermill.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(output), parameters=parameters[name],
                                       kernel_name="python3", progress_bar=False, cwd=str(PROJECT_ROOT),
                                       execution_timeout=600)  # a hung cell fails the test, never blocks CI
            done[name] = json.loads(output.read_text())
        return done[name]

    return root, run


def _errors(executed):
    return [o for cell in executed["cells"] for o in cell.get("outputs", []) if o.get("output_type") == "error"]


def _figures_exist(root, name):
    for figure in FIGURES.get(name, ()):
        for ext in ("png", "pdf"):
            path = root / "figures" / f"synthetic_{figure}.{ext}"
            assert path.exists() and path.stat().st_size > 1000, path


@pytest.mark.parametrize("name", ["01_extract_statistics", "02_search_proxy", "03_correlation_plots", "00_explore"])
def test_notebook_has_one_parameters_cell_and_no_outputs(name):
    cells = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1
    assert all(not c.get("outputs") for c in cells if c["cell_type"] == "code"), "committed notebooks are clean"


def test_01_extract_statistics(workspace):
    root, run = workspace
    executed = run("01_extract_statistics")
    assert not _errors(executed)
    text = "".join("".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))
    assert f"synthetic: {SYNTHETIC['n_archs']} architectures" in text


def test_02_search_proxy(workspace):
    root, run = workspace
    assert not _errors(run("02_search_proxy"))
    assert json.loads((root / "runs" / "search" / "best.json").read_text())["proxy"]
    assert len(list((root / "runs" / "rps").glob("rps-*/seed*/history.csv"))) == 6
    _figures_exist(root, "02_search_proxy")


def test_03_correlation_plots(workspace):
    root, run = workspace
    run("02_search_proxy")
    assert not _errors(run("03_correlation_plots"))
    assert "searched" in (root / "runs" / "report.csv").read_text()
    _figures_exist(root, "03_correlation_plots")


def test_00_explore(workspace):
    root, run = workspace
    run("02_search_proxy")
    executed = run("00_explore")
    assert not _errors(executed)
    views = [o for c in executed["cells"] for o in c.get("outputs", [])
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert views, "the explorer displays a widget"
