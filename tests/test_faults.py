"""Fault injection against `lpzero` (issue 12): bad arguments, damaged files, interruptions, mixed runs.

Every case asserts the exit status, a one-line message without a traceback, and that nothing already computed was
lost or replaced (the files of the run or cache compared before/after). Cases run in-process through ``cli.main``
(the same code path as the console script; argparse's exit is caught) on a small synthetic cache; the FlexiBERT
cases share one extraction of architectures 0 and 1 (``needs_data``).
"""
import json
import os
import shlex
import shutil
import stat
import time

import pytest
from safetensors.numpy import load_file

from lpzero_core.errors import LPZeroError
from lpzero_core.files import PROJECT_ROOT, atomic_write, check_writable, load_json, non_regular
from lpzero_core.search import gp
from lpzero_core.stats.benchmarks.synthetic import make_cache
from lpzero_core.stats.cache import arch_path, checksum, verify
from lpzero_core.workbench import cli, runs
from lpzero_core.workbench.config import NOTEBOOKS, check_notebook

RUN = ["--population", "6", "--iterations", "20", "--checkpoint-every", "5", "--quiet", "--bootstrap", "20"]


@pytest.fixture(scope="session")
def syn(tmp_path_factory):
    """A synthetic cache of 40 architectures, 12 in the search split (never modified: copy it first)."""
    directory = tmp_path_factory.mktemp("faults") / "syn"
    make_cache(directory, n_archs=40, n_search=12)
    return directory


@pytest.fixture
def syn_copy(syn, tmp_path):
    return shutil.copytree(syn, tmp_path / "syn")


@pytest.fixture
def lpzero(capsys):
    """Run ``lpzero ARGV`` in-process: (exit status, stdout, stderr, seconds)."""
    def run(*argv):
        capsys.readouterr()
        start = time.perf_counter()
        try:
            code = cli.main([str(a) for a in argv])
        except SystemExit as exit_:  # argparse
            code = exit_.code
        captured = capsys.readouterr()
        return code, captured.out, captured.err, time.perf_counter() - start
    return run


def one_line(err: str, *fragments: str) -> None:
    assert err.strip() and err.strip().count("\n") == 0 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def snapshot(directory) -> dict:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()} if directory.exists() else {}


def search(cache, out, *extra):
    return ["search", "--benchmark", "synthetic", "--cache", cache, "--out", out, *RUN, *extra]


# -- former hangs: each ends in ≤ 5 s with a message -----------------------------------------------------------
def test_search_split_of_two_is_refused(syn_copy, tmp_path, lpzero):
    for i in range(2, 12):  # the search split keeps architectures 0 and 1
        arch_path(syn_copy, i).unlink()
    code, _, err, seconds = lpzero(*search(syn_copy, tmp_path / "run", "--allow-partial"), "--population", "2",
                                   "--iterations", "0")
    assert code == 2 and seconds <= 5
    one_line(err, "holds 2 architecture", "at least 3")


def test_n_unary_beyond_the_bound_is_refused(syn, tmp_path, lpzero):
    code, _, err, seconds = lpzero(*search(syn, tmp_path / "run"), "--n-unary", "99")
    assert code == 2 and seconds <= 5 and not (tmp_path / "run").exists()
    one_line(err, "--n-unary", "99", f"from 1 to {gp.MAX_N_UNARY}")


def test_initial_population_that_cannot_fill_stops(syn):
    from lpzero_core.errors import LPZeroError
    from lpzero_core.stats.cache import StatsCache

    cache = StatsCache.load(syn)
    cache.manifest = {**cache.manifest, "target": [1.0] * len(cache)}  # constant: every correlation undefined
    start = time.perf_counter()
    with pytest.raises(LPZeroError, match="initial population holds 0 of 5"):
        gp.search(cache, gp.GPConfig(population=5, iterations=0), progress=False)
    assert time.perf_counter() - start <= 5


# -- ordinary mistakes: one line, exit 2, nothing written -------------------------------------------------------
@pytest.mark.parametrize("flag, value, allowed", [
    ("--seed", "-1", "≥ 0"), ("--checkpoint-every", "0", "≥ 1"), ("--bootstrap", "-1", "≥ 0"),
    ("--population", "1", "≥ 2"), ("--iterations", "-1", "≥ 0"), ("--batch-size", "0", "≥ 1"),
    ("--seq-len", "x", "not an integer"), ("--top", "-1", "≥ 0"), ("--seeds", "1,x", "comma list"),
])
def test_search_argument_out_of_range(syn, tmp_path, lpzero, flag, value, allowed):
    code, _, err, _ = lpzero(*search(syn, tmp_path / "run"), flag, value)
    assert code == 2 and not (tmp_path / "run").exists()
    one_line(err, flag, value, allowed)


def test_out_naming_a_file_or_lying_under_one(syn, tmp_path, lpzero):
    (tmp_path / "file").write_text("keep")
    for out, says in ((tmp_path / "file", "is a file"), (tmp_path / "file" / "run", "lies under the file")):
        code, _, err, _ = lpzero(*search(syn, out))
        assert code == 2
        one_line(err, "--out", says)
    assert (tmp_path / "file").read_text() == "keep"


def test_out_in_an_unwritable_folder(syn, tmp_path, lpzero, monkeypatch):
    monkeypatch.setattr(cli.os, "access", lambda path, mode: False)  # chmod does not bind root
    code, _, err, _ = lpzero(*search(syn, tmp_path / "run"))
    assert code == 2
    one_line(err, "--out", "not writable")


@pytest.mark.parametrize("content, says", [
    (None, "no proxy file"), ('{"inputs": ["act", "wei', "damaged"), ('{"proxy": "x"}', "is no proxy"),
])
def test_evaluate_proxy_file_missing_truncated_or_wrong(syn, tmp_path, lpzero, content, says):
    path = tmp_path / "best.json"
    if content is not None:
        path.write_text(content)
    code, out, err, _ = lpzero("evaluate", "--benchmark", "synthetic", "--cache", syn, "--proxy", path)
    assert code == 2 and out == ""
    one_line(err, says)


def test_evaluate_out_under_a_file_is_refused_before_printing(syn, tmp_path, lpzero):
    (tmp_path / "file").write_text("")
    code, out, err, _ = lpzero("evaluate", "--benchmark", "synthetic", "--cache", syn, "--all", "--out",
                               tmp_path / "file" / "table")
    assert code == 2 and out == ""
    one_line(err, "--out", "is a file, not a folder")


def test_results_readme_missing(tmp_path, lpzero):
    code, _, err, _ = lpzero("results", "--readme", tmp_path / "missing.md", "--out", tmp_path / "results")
    assert code == 2 and not (tmp_path / "results").exists()
    one_line(err, "--readme", "is not a file")


def test_truncated_manifest(syn_copy, tmp_path, lpzero):
    manifest = syn_copy / "manifest.json"
    manifest.write_text(manifest.read_text()[:100])
    before = snapshot(syn_copy)
    code, _, err, _ = lpzero(*search(syn_copy, tmp_path / "run"))
    assert code == 2 and snapshot(syn_copy) == before
    one_line(err, "manifest.json is damaged", "delete")


def test_truncated_checkpoint(syn, tmp_path, lpzero):
    run = tmp_path / "run"
    assert lpzero(*search(syn, run), "--iterations", "12")[0] == 0
    (run / "summary.json").unlink()
    (run / "checkpoint.json").write_text((run / "checkpoint.json").read_text()[:50])
    before = snapshot(run)
    code, _, err, _ = lpzero(*search(syn, run), "--iterations", "12", "--resume")
    assert code == 2 and snapshot(run) == before
    one_line(err, "checkpoint", "damaged", "--force")


# -- silent loss or mixing: refused, with the files unchanged --------------------------------------------------
def test_ctrl_c_hint_names_the_resume_command_and_resuming_matches(syn, tmp_path, lpzero, monkeypatch):
    argv = search(syn, tmp_path / "cut")
    full = tmp_path / "full"
    assert lpzero(*search(syn, full))[0] == 0
    checkpoint = runs.RunDirectory.checkpoint

    def interrupted(self, state):
        checkpoint(self, state)
        if state.iteration == 10:
            raise KeyboardInterrupt

    monkeypatch.setattr(runs.RunDirectory, "checkpoint", interrupted)
    code, _, err, _ = lpzero(*argv)
    assert code == 130
    one_line(err, "continue with: lpzero search", "--resume")
    monkeypatch.setattr(runs.RunDirectory, "checkpoint", checkpoint)
    command = shlex.split(err.split("continue with: ", 1)[1])
    assert command[0] == "lpzero" and command[1:] == [str(a) for a in argv] + ["--resume"]
    assert lpzero(*command[1:])[0] == 0
    assert (tmp_path / "cut" / "history.csv").read_bytes() == (full / "history.csv").read_bytes()
    assert (tmp_path / "cut" / "best.json").read_bytes() == (full / "best.json").read_bytes()


def test_rerun_without_resume_keeps_the_unfinished_run(syn, tmp_path, lpzero):
    run = tmp_path / "run"
    runs.search_run(runs_cache(syn), runs_config(), run, progress=False, stop_after=12)
    before = snapshot(run)
    code, _, err, _ = lpzero(*search(syn, run))
    assert code == 2 and snapshot(run) == before
    one_line(err, "unfinished run of these settings", "--resume", "--force")


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_resume_with_lost_history_rows_refuses(syn, tmp_path, lpzero, damage):
    run = tmp_path / "run"
    runs.search_run(runs_cache(syn), runs_config(), run, progress=False, stop_after=12)
    history = run / "history.csv"
    if damage == "delete":
        history.unlink()
    else:
        history.write_text("".join(history.read_text().splitlines(keepends=True)[:-3]))
    before = snapshot(run)
    code, _, err, _ = lpzero(*search(syn, run), "--resume")
    assert code == 2 and snapshot(run) == before
    one_line(err, "history.csv holds", "would lose rows", "--force")


def test_rows_past_the_checkpoint_are_recomputed_identically(syn, tmp_path, lpzero):
    assert lpzero(*search(syn, tmp_path / "full"))[0] == 0
    run = tmp_path / "run"
    runs.search_run(runs_cache(syn), runs_config(), run, progress=False, stop_after=12)
    with (run / "history.csv").open("a") as f:  # killed between the history append and the checkpoint
        f.write("999,evolve,partial row")
    assert lpzero(*search(syn, run), "--resume")[0] == 0
    assert (run / "history.csv").read_bytes() == (tmp_path / "full" / "history.csv").read_bytes()


def test_checkpoint_resumed_on_another_benchmark_or_cache(syn, syn_copy, tmp_path, lpzero):
    run = tmp_path / "run"
    runs.search_run(runs_cache(syn), runs_config(), run, progress=False, stop_after=12)
    before = snapshot(run)
    code, _, err, _ = lpzero(*search(syn, run), "--resume", "--benchmark", "flexibert")
    assert code == 2 and snapshot(run) == before
    one_line(err, "holds a synthetic cache, not flexibert")
    for i in range(30, 40):  # another cache of the same benchmark (fewer architectures)
        arch_path(syn_copy, i).unlink()
    code, _, err, _ = lpzero(*search(syn_copy, run), "--resume", "--allow-partial")
    assert code == 2 and snapshot(run) == before
    one_line(err, "other settings (cache)")


@pytest.mark.parametrize("command", ["search", "evaluate"])
def test_cache_of_another_benchmark_is_refused(syn, tmp_path, lpzero, command):
    argv = search(syn, tmp_path / "run") if command == "search" else [
        "evaluate", "--benchmark", "synthetic", "--cache", syn, "--all"]
    code, out, err, _ = lpzero(*argv[:2], "gpt2-wt103", *argv[3:])
    assert code == 2 and out == "" and not (tmp_path / "run").exists()
    one_line(err, "holds a synthetic cache, not gpt2-wt103")


def test_new_run_into_a_finished_runs_folder(syn, tmp_path, lpzero):
    run = tmp_path / "run"
    assert lpzero(*search(syn, run))[0] == 0
    before = snapshot(run)
    code, out, _, _ = lpzero(*search(syn, run))
    assert code == 0 and "reused" in out and snapshot(run) == before
    code, _, err, _ = lpzero(*search(syn, run), "--seed", "1")
    assert code == 2 and snapshot(run) == before
    one_line(err, "another run's files", "--force")
    assert lpzero(*search(syn, run), "--seed", "1", "--force")[0] == 0
    assert json.loads((run / "summary.json").read_text())["seed"] == 1
    assert json.loads((run / "checkpoint.json").read_text())["run"]["config"]["seed"] == 1


def test_flipped_bytes_in_a_cache_file(syn_copy, tmp_path, lpzero):
    path = arch_path(syn_copy, 3)
    data = bytearray(path.read_bytes())
    data[-64:-56] = bytes(b ^ 0xFF for b in data[-64:-56])  # 8 bytes inside the last tensor
    path.write_bytes(bytes(data))
    assert verify(syn_copy) == {"ok": [i for i in range(40) if i != 3], "corrupt": [3]}
    code, out, _, _ = lpzero("cache", "verify", "--benchmark", "synthetic", "--cache", syn_copy)
    assert code == 1 and "1 corrupt" in out and "corrupt: 3" in out
    code, _, err, _ = lpzero(*search(syn_copy, tmp_path / "run"))
    assert code == 2
    one_line(err, "1 of 40 architectures missing, corrupt or stale (first: 3)", f"delete {syn_copy}")


# -- arguments said out loud ----------------------------------------------------------------------------------
def test_evaluate_with_nothing_to_evaluate(syn, lpzero):
    code, out, err, _ = lpzero("evaluate", "--benchmark", "synthetic", "--cache", syn)
    assert code == 2 and out == ""
    one_line(err, "nothing to evaluate")


def test_partial_table_says_n_and_warns(syn_copy, lpzero):
    for i in range(12, 40):  # only the search split is left: no held-out architecture
        arch_path(syn_copy, i).unlink()
    code, out, err, _ = lpzero("evaluate", "--benchmark", "synthetic", "--cache", syn_copy, "--allow-partial",
                               "--baseline", "n_layers", "--bootstrap", "20")
    assert code == 0 and "held-out (n=0; cache holds 12 of 40 architectures)" in out
    one_line(err, "warning: only 0 held-out")


def test_evaluate_reads_a_proxy_text_file(syn, tmp_path, lpzero):
    (tmp_path / "best.txt").write_text("element_wise_sum(weight.pow.l1_norm, act.abs.to_mean_scalar)\n")
    code, out, _, _ = lpzero("evaluate", "--benchmark", "synthetic", "--cache", syn, "--proxy",
                             tmp_path / "best.txt", "--bootstrap", "20")
    assert code == 0 and str(tmp_path / "best.txt") in out
    (tmp_path / "bad.txt").write_text("not a proxy")
    code, _, err, _ = lpzero("evaluate", "--benchmark", "synthetic", "--cache", syn, "--proxy", tmp_path / "bad.txt")
    assert code == 2
    one_line(err, "expected the form")


def test_atomic_files_get_normal_permissions(syn, tmp_path, lpzero):
    assert lpzero(*search(syn, tmp_path / "run"))[0] == 0
    expected = 0o666 & ~_umask()
    for name in runs.RUN_FILES:
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == expected, name


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def runs_cache(directory):
    from lpzero_core.stats.cache import StatsCache

    return StatsCache.load(directory)


def runs_config() -> gp.GPConfig:
    """The settings ``RUN`` gives on the command line."""
    return gp.GPConfig(population=6, iterations=20, checkpoint_every=5)


# -- FlexiBERT, architectures 0 and 1 (one extraction per session) ---------------------------------------------
@pytest.fixture(scope="session")
def flexibert2(tmp_path_factory):
    directory = tmp_path_factory.mktemp("flexibert2") / "cache"
    assert cli.main(["extract", "--benchmark", "flexibert", "--archs", "0:2", "--workers", "1", "--no-baselines",
                     "--cache", str(directory)]) == 0
    return directory


EXTRACT = ["extract", "--benchmark", "flexibert", "--workers", "1", "--no-baselines"]


@pytest.mark.needs_data
@pytest.mark.parametrize("archs, says", [("0:9999", "0 ≤ START < STOP ≤ 500"), ("5:2", "0 ≤ START < STOP ≤ 500"),
                                         ("7,x", "expected START:STOP"), ("600", "indices must lie in 0..499")])
def test_archs_out_of_range(tmp_path, lpzero, archs, says):
    code, _, err, _ = lpzero(*EXTRACT, "--archs", archs, "--cache", tmp_path / "c")
    assert code == 2 and not (tmp_path / "c" / "manifest.json").exists()
    one_line(err, "--archs", says)


@pytest.mark.needs_data
def test_extract_seq_len_beyond_the_positions(tmp_path, lpzero):
    code, _, err, _ = lpzero(*EXTRACT, "--archs", "0", "--seq-len", "100000", "--cache", tmp_path / "c")
    assert code == 2
    one_line(err, "--seq-len 100000", "≤ 512")


@pytest.mark.needs_data
def test_extract_unreachable_scheduler(tmp_path, lpzero):
    code, _, err, seconds = lpzero(*EXTRACT, "--archs", "0", "--scheduler", "tcp://127.0.0.1:1",
                                   "--cache", tmp_path / "c")
    assert code == 2 and seconds < 20
    one_line(err, "127.0.0.1:1")


@pytest.mark.needs_data
def test_search_split_of_two_on_flexibert(flexibert2, tmp_path, lpzero):
    code, _, err, seconds = lpzero("search", "--benchmark", "flexibert", "--cache", flexibert2, "--allow-partial",
                                   "--population", "2", "--iterations", "0", "--out", tmp_path / "run")
    assert code == 2 and seconds <= 5
    one_line(err, "holds 2 architecture")


@pytest.mark.needs_data
def test_partial_extraction_hint_names_the_finishing_command(flexibert2, tmp_path, lpzero):
    code, _, err, _ = lpzero("search", "--benchmark", "flexibert", "--cache", flexibert2, "--out", tmp_path / "r")
    assert code == 2
    one_line(err, "498 of 500", "lpzero extract --benchmark flexibert --variant as_trained --batch-size",
             f"--cache {flexibert2} --no-baselines", "--allow-partial")
    assert "--archs" not in err


@pytest.mark.needs_data
def test_cache_with_nothing_to_do_is_not_rewritten(flexibert2, lpzero):
    before = {p.name: p.stat().st_mtime_ns for p in flexibert2.iterdir()}
    if os.geteuid() != 0:
        flexibert2.chmod(0o555)
    try:
        code, _, err, _ = lpzero(*EXTRACT, "--archs", "0:2", "--cache", flexibert2)
    finally:
        flexibert2.chmod(0o755)
    assert code == 0, err
    assert {p.name: p.stat().st_mtime_ns for p in flexibert2.iterdir()} == before


@pytest.mark.needs_data
def test_corrupt_flexibert_file_is_detected_and_recomputed(flexibert2, tmp_path, lpzero):
    cache = shutil.copytree(flexibert2, tmp_path / "cache")
    path = arch_path(cache, 1)
    good = checksum(load_file(path))
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01  # one bit of one byte
    path.write_bytes(bytes(data))
    code, out, _, _ = lpzero("cache", "verify", "--benchmark", "flexibert", "--cache", cache)
    assert code == 1 and "corrupt: 1" in out
    assert lpzero(*EXTRACT, "--archs", "0:2", "--cache", cache)[0] == 0
    assert verify(cache) == {"ok": [0, 1], "missing": list(range(2, 500))}
    assert checksum(load_file(path)) == good, "recomputed: the same tensors (the metadata holds timings)"


# -- issue 20: output only to regular files ------------------------------------------------------------------------
def _kinds(tmp_path):
    """A FIFO and a folder in ``tmp_path``: the non-regular targets a write must leave as they are."""
    fifo, folder = tmp_path / "fifo", tmp_path / "folder"
    os.mkfifo(fifo)
    folder.mkdir()
    return {"a FIFO": fifo, "a folder": folder}


def _unchanged(targets) -> bool:
    return stat.S_ISFIFO(targets["a FIFO"].stat().st_mode) and targets["a folder"].is_dir() \
        and not any(targets["a folder"].iterdir())


def test_rank_out_fifo_or_folder_is_refused_and_left_as_it_was(syn, tmp_path, lpzero):
    targets = _kinds(tmp_path)
    for kind, path in targets.items():
        code, out, err, seconds = lpzero("rank", "--benchmark", "synthetic", "--cache", syn, "--proxy",
                                         "act|log|abs|grad|sqrt|no_op|element_wise_product", "--out", path)
        assert code == 2 and out == "" and seconds < 5
        one_line(err, "--out", kind, "not a regular file")
    assert _unchanged(targets)


def test_evaluate_and_search_out_naming_a_fifo_are_refused(syn, tmp_path, lpzero):
    targets = _kinds(tmp_path)
    os.mkfifo(tmp_path / "table.md")
    code, _, err, _ = lpzero("evaluate", "--benchmark", "synthetic", "--cache", syn, "--all", "--out",
                             tmp_path / "table")
    assert code == 2
    one_line(err, "--out", "a FIFO")
    code, _, err, _ = lpzero(*search(syn, targets["a FIFO"]))
    assert code == 2
    one_line(err, "--out", "a FIFO, not a folder")
    assert _unchanged(targets) and stat.S_ISFIFO((tmp_path / "table.md").stat().st_mode)


def test_atomic_write_never_renames_over_a_non_regular_file(tmp_path):
    targets = _kinds(tmp_path)
    for kind, path in targets.items():
        with pytest.raises(LPZeroError, match=kind):
            atomic_write(path, b"x")
    assert _unchanged(targets) and os.listdir(tmp_path) == sorted(os.listdir(tmp_path)) and len(
        os.listdir(tmp_path)) == 2  # no temporary left behind


def test_character_devices_are_refused_by_the_same_check(tmp_path, monkeypatch):
    # read-only on the real /dev/null (stat only), then a regular path made to look like a device
    assert non_regular("/dev/null") == "a character device"
    with pytest.raises(LPZeroError, match="character device"):
        check_writable("/dev/null")
    path = tmp_path / "looks-like-a-device"
    path.write_text("keep")
    real = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: os.stat_result((stat.S_IFCHR | 0o666, *real(p)[1:]))
                        if str(p) == str(path) else real(p, *a, **k))
    with pytest.raises(LPZeroError, match="character device"):
        atomic_write(path, b"lost")
    monkeypatch.undo()
    assert path.read_text() == "keep" and os.listdir(tmp_path) == ["looks-like-a-device"]


def test_history_in_a_run_folder_that_became_a_fifo_is_refused(syn, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / "history.csv")
    observer = runs.RunDirectory(run, {})
    with pytest.raises(LPZeroError, match="FIFO"):
        observer.checkpoint(None)
    assert stat.S_ISFIFO((run / "history.csv").stat().st_mode)


def test_json_nested_past_the_bound_is_one_line(tmp_path, lpzero, syn):
    path = tmp_path / "deep.json"
    path.write_text('{"a": ' * 100_000 + "1" + "}" * 100_000)
    code, out, err, seconds = lpzero("evaluate", "--benchmark", "synthetic", "--cache", syn, "--proxy", path)
    assert code == 2 and out == "" and seconds < 5
    one_line(err, "nests deeper than 64")
    with pytest.raises(LPZeroError, match="nests deeper"):
        load_json('{"a": ' * 65 + "1" + "}" * 65, "x")
    assert load_json('{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', "x")


# -- issue 20: one schema for --set, the search flags and the notebooks' parameters --------------------------------
@pytest.mark.parametrize("mode, item, says", [
    ("tree", "population=\"10\"", "population=\"10\": should be a valid integer"),
    ("tree", "population=10.5", "population=10.5: should be a valid integer"),
    ("tree", "population=[10]", "population=[10]: should be a valid integer"),
    ("tree", "generations=-1", "generations=-1: should be greater than or equal to 0"),
    ("tree", "init_height=[-1, 3]", "init_height.0=-1: should be greater than or equal to 0"),
    ("tree", "max_height=0", "max_height=0: should be greater than or equal to 1"),
    ("tree", "rank=1", "rank=1: should be a valid boolean"),
    ("tree", "aggregate=\"max\"", "aggregate=\"max\": should be 'min' or 'mean'"),
    ("tree", "generalisation={\"quantile\": 2}", "generalisation.quantile=2: should be less than or equal to 1"),
    ("tree", "generalisation={\"kind\": 3}", "generalisation.kind=3"),
    ("tree", "strata_weight=NaN", "strata_weight=NaN: should be a finite number"),
    ("tree", "seed=3", "seed is the flag --seeds"),
    ("tree", "nope=1", "unknown setting 'nope'"),
    ("tree", "=1", "expected KEY=JSON"),
    ("tree", "generations=", "not valid JSON"),
    ("combine", "chains=[\"act.zz\"]", "chain leaf 'act.zz'"),
    ("surrogate", "model=\"svm\"", "model=\"svm\": should be 'ridge', 'forest' or 'boosting'"),
    ("surrogate", "validation=0", "validation=0: should be greater than 0"),
    ("template", "seed=1", "seed is the flag --seed"),
    ("template", "population=10", "the flag --population"),
    ("template", "crossover_p=1.5", "crossover_p=1.5: should be less than or equal to 1"),
    ("template", "inputs=[\"act\", \"nope\"]", "inputs.1=\"nope\""),
])
def test_set_values_are_checked_by_the_schema(syn, tmp_path, lpzero, mode, item, says):
    code, out, err, seconds = lpzero(*search(syn, tmp_path / "run")[:7], "--mode", mode, "--set", item, "--quiet")
    assert code == 2 and out == "" and seconds < 5 and not (tmp_path / "run").exists()
    one_line(err, says)


def test_set_given_twice_and_template_flags_on_a_mode_run_are_refused(syn, tmp_path, lpzero):
    base = search(syn, tmp_path / "run")[:7]
    cases = [(["--mode", "tree", "--set", "generations=1", "--set", "generations=2"], "given twice"),
             (["--mode", "tree", "--population", "10"], "--population applies to a single template run"),
             (["--mode", "combine", "--seed", "3"], "--seed applies to a single template run"),
             (["--seeds", "0,1", "--seed", "3"], "--seed applies"),
             (["--seeds", "0,1", "--resume"], "--resume applies")]
    for extra, says in cases:
        code, _, err, _ = lpzero(*base, *extra, "--quiet")
        assert code == 2, extra
        one_line(err, says)
    assert not (tmp_path / "run").exists()


def test_set_reaches_a_template_run(syn, tmp_path, lpzero):
    code, _, err, _ = lpzero(*search(syn, tmp_path / "run"), "--set", "crossover_p=0.25")
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["config"]["crossover_p"] == 0.25


def _notebook_namespace(name: str) -> dict:
    """The globals a notebook's parameters cell leaves (as the kernel would run it)."""
    import nbformat

    cells = nbformat.read(PROJECT_ROOT / "notebooks" / f"{name}.ipynb", 4).cells
    cell = next(c for c in cells if "parameters" in c.metadata.get("tags", []))
    namespace = {"In": [], "Out": {}, "_": None}
    exec(cell.source, namespace)
    namespace.pop("__builtins__")
    return namespace


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_parameters_are_checked_in_one_line(name):
    namespace = _notebook_namespace(name)
    check_notebook(name, namespace)  # the notebook's own parameters pass
    with pytest.raises(LPZeroError, match=f"notebook {name}: unknown parameter 'seeed'"):
        check_notebook(name, {**namespace, "seeed": 1})
    wrong = next(k for k, v in namespace.items() if isinstance(v, (int, str)) and not isinstance(v, bool))
    with pytest.raises(LPZeroError, match=f"notebook {name}: parameter {wrong}=") as error:
        check_notebook(name, {**namespace, wrong: [1.5]})
    assert "\n" not in str(error.value)


def test_notebook_mode_settings_go_through_the_mode_schema():
    namespace = _notebook_namespace("02_search_proxy")
    says = "notebook 02_search_proxy: parameter mode tree: mode_settings\\['tree'\\] generations=\"5\": should be"
    with pytest.raises(LPZeroError, match=says):
        check_notebook("02_search_proxy", {**namespace, "mode_settings": {"tree": {"generations": "5"}}})
    with pytest.raises(LPZeroError, match="study_seeds"):
        check_notebook("02_search_proxy", {**namespace, "study_seeds": []})


def test_every_notebook_checks_its_parameters_first():
    import nbformat

    for name in NOTEBOOKS:
        cells = nbformat.read(PROJECT_ROOT / "notebooks" / f"{name}.ipynb", 4).cells
        i = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
        assert f"check_notebook({name!r}, globals())" in cells[i + 1].source


# -- issue 20: state files validated on load, reuse and resume check what they reuse -------------------------------
def _finished_run(syn, run, lpzero):
    assert lpzero(*search(syn, run))[0] == 0
    return snapshot(run)


@pytest.mark.parametrize("damage, says", [
    (lambda run: (run / "best.json").unlink(), "best.json is missing"),
    (lambda run: (run / "best.json").write_text('{"inputs": []}'), "best.json differs"),
    (lambda run: (run / "history.csv").write_text("".join(
        (run / "history.csv").read_text().splitlines(keepends=True)[:-4])), "history.csv holds"),
    (lambda run: (run / "history.csv").write_text((run / "history.csv").read_text().replace("evolve", "evolvE", 1)),
     "history.csv differs"),
    (lambda run: (run / "timings.csv").write_text("step,seconds\r\n"), "timings.csv holds 0 rows"),
])
def test_a_finished_run_whose_files_changed_is_not_reused(syn, tmp_path, lpzero, damage, says):
    run = tmp_path / "run"
    _finished_run(syn, run, lpzero)
    damage(run)
    before = snapshot(run)
    code, out, err, _ = lpzero(*search(syn, run))
    assert code == 2 and "wrote" not in out and snapshot(run) == before
    one_line(err, says, "not reused", "--force")
    code, out, err, _ = lpzero(*search(syn, run), "--force")
    assert code == 0 and "recomputing the run" in err
    assert lpzero(*search(syn, run))[0] == 0  # and now it is reused


def test_resume_of_an_edited_history_is_refused(syn, tmp_path, lpzero):
    run = tmp_path / "run"
    runs.search_run(runs_cache(syn), runs_config(), run, progress=False, stop_after=12)
    history = run / "history.csv"
    history.write_text(history.read_text().replace("init", "evolve", 1))
    before = snapshot(run)
    code, _, err, _ = lpzero(*search(syn, run), "--resume")
    assert code == 2 and snapshot(run) == before
    one_line(err, "history.csv differs from what the checkpoint recorded", "--force")


@pytest.mark.parametrize("edit, field", [
    (lambda data: data["state"].pop("step"), "state.step"),
    (lambda data: data["state"].update(step="12"), "state.step"),
    (lambda data: data["state"].update(population=[["x"]]), "state.population.0"),
    (lambda data: data["state"].update(population=[]), "state.population"),
    (lambda data: data["state"].update(rng_state={"bit_generator": "nope"}), "state.rng_state"),
    (lambda data: data.update(files={"history.csv": {"rows": -1, "sha256": "0" * 64}}), "files.history.csv.rows"),
    (lambda data: data.clear(), "run"),
])
def test_checkpoint_of_the_wrong_shape_is_one_line(syn, tmp_path, lpzero, edit, field):
    run = tmp_path / "run"
    runs.search_run(runs_cache(syn), runs_config(), run, progress=False, stop_after=12)
    data = json.loads((run / "checkpoint.json").read_text())
    edit(data)
    (run / "checkpoint.json").write_text(json.dumps(data))
    before = snapshot(run)
    code, _, err, _ = lpzero(*search(syn, run), "--resume")
    assert code == 2 and snapshot(run) == before
    one_line(err, "checkpoint.json is damaged", field, "--force")


@pytest.mark.parametrize("content, says", [
    (b"step,phase,proxy,fitness,rejected_by,evaluations\r\n0,init,\xff\xfe,1\r\n", "not UTF-8"),
    (b"step,phase\r\n0,init\r\n", "header"),
    (b"step,phase,proxy,fitness,rejected_by,evaluations\r\n0,init\r\n", "line 2 does not have the 6 fields"),
])
def test_history_that_is_not_a_history_is_one_line(syn, tmp_path, lpzero, content, says):
    run = tmp_path / "run"
    runs.search_run(runs_cache(syn), runs_config(), run, progress=False, stop_after=12)
    (run / "history.csv").write_bytes(content)
    before = snapshot(run)
    code, _, err, _ = lpzero(*search(syn, run), "--resume")
    assert code == 2 and snapshot(run) == before
    one_line(err, "history.csv", says)


def test_summary_of_the_wrong_shape_is_one_line(syn, tmp_path, lpzero):
    run = tmp_path / "run"
    _finished_run(syn, run, lpzero)
    data = json.loads((run / "summary.json").read_text())
    data["evaluations"] = "many"
    (run / "summary.json").write_text(json.dumps(data))
    before = snapshot(run)
    code, _, err, _ = lpzero(*search(syn, run))
    assert code == 2 and snapshot(run) == before
    one_line(err, "summary.json is damaged", "evaluations")


def test_a_run_folder_is_locked_while_a_search_writes_it(syn, tmp_path, lpzero):
    from filelock import FileLock

    run = tmp_path / "run"
    run.mkdir()
    with FileLock(run / runs.LOCK):  # another search holds it (an OS lock: the same in another process)
        code, _, err, seconds = lpzero(*search(syn, run))
        assert code == 2 and seconds < 10
        one_line(err, "being written by another search", "another --out")
        code, _, err, _ = lpzero(*search(syn, run)[:7], "--mode", "combine", "--seeds", "0", "--set",
                                 "generations=1", "--quiet")
        assert code == 2
        one_line(err, "being written by another search")
    assert not (run / "history.csv").exists()
    assert lpzero(*search(syn, run))[0] == 0


# -- issue 20: artefacts bound to their identity ---------------------------------------------------------------------
def test_swapped_architecture_files_are_found_by_cache_verify(syn_copy, lpzero):
    first, second = arch_path(syn_copy, 3), arch_path(syn_copy, 4)
    a, b = first.read_bytes(), second.read_bytes()
    first.write_bytes(b)
    second.write_bytes(a)
    found = verify(syn_copy)
    assert found["corrupt"] == [3, 4]
    code, out, _, _ = lpzero("cache", "verify", "--benchmark", "synthetic", "--cache", syn_copy)
    assert code == 1 and "corrupt: 3, 4" in out


def test_checksum_covers_the_index_and_older_files_still_read(syn_copy):
    from safetensors import safe_open
    from safetensors.numpy import save

    from lpzero_core.stats.cache import check_arch, read_manifest

    key = read_manifest(syn_copy)["key"]
    path = arch_path(syn_copy, 5)
    tensors = load_file(path)
    with safe_open(path, "np") as f:
        meta = json.loads(f.metadata()["meta"])
    assert meta["checksum"] == checksum(tensors, 5) and meta["checksum"] != checksum(tensors)
    older = {k: v for k, v in meta.items() if k != "checksum_of"} | {"checksum": checksum(tensors)}
    path.write_bytes(save(tensors, metadata={"meta": json.dumps(older)}))
    assert check_arch(syn_copy, 5, key)[0] == "ok"  # a file from before the binding: accepted at its index
    path.rename(arch_path(syn_copy, 6))
    assert check_arch(syn_copy, 6, key)[0] == "corrupt"  # ... and only there


# -- issue 20: flags that cannot apply are refused ---------------------------------------------------------------
@pytest.mark.parametrize("extra, says", [
    (["--batch-size", "4"], "--batch-size cannot apply with --cache"),
    (["--seq-len", "16"], "--seq-len cannot apply with --cache"),
])
def test_extraction_flags_with_a_cache_are_refused(syn, tmp_path, lpzero, extra, says):
    code, out, err, _ = lpzero("evaluate", "--benchmark", "synthetic", "--cache", syn, "--all", *extra)
    assert code == 2 and out == ""
    one_line(err, says)


def test_repeated_seeds_and_empty_archs_are_refused(syn, tmp_path, lpzero):
    code, _, err, _ = lpzero(*search(syn, tmp_path / "run")[:7], "--seeds", "0,0", "--mode", "tree")
    assert code == 2
    one_line(err, "--seeds", "listed twice")
    from lpzero_core.stats.extract import parse_archs

    for text, says in (("", "--archs is empty"), (" ", "--archs is empty"), ("1,1", "listed twice")):
        with pytest.raises(LPZeroError, match=says):
            parse_archs(text, 10)


# -- issue 20: resource guards and Ctrl-C ----------------------------------------------------------------------------
@pytest.mark.parametrize("extra, says", [
    (["--population", "100000000"], "GiB of memory estimated"),
    (["--iterations", "100000000000"], "estimated"),
])
def test_a_search_beyond_the_machine_is_refused_up_front(syn, tmp_path, lpzero, extra, says):
    code, out, err, seconds = lpzero(*search(syn, tmp_path / "run"), *extra)
    assert code == 2 and seconds < 10 and not (tmp_path / "run" / "history.csv").exists()
    one_line(err, says)
    code, _, err, seconds = lpzero(*search(syn, tmp_path / "tree")[:7], "--mode", "tree", "--seeds", "0", "--set",
                                   "population=100000000", "--quiet")
    assert code == 2 and seconds < 10
    one_line(err, "GiB of memory estimated")


def test_ctrl_c_while_parsing_or_importing_is_one_line(lpzero, monkeypatch):
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    code, out, err, _ = lpzero("search", "--benchmark", "synthetic")
    assert code == 130 and out == ""
    one_line(err, "interrupted")


# -- issue 20: user benchmark folders and scores validated where they are read ------------------------------------
LTS_CONFIG = {"n_layer": 2, "d_model": 16, "n_head": 2, "d_inner": 32, "d_embed": -1, "div_val": 1, "cutoffs": [100],
              "n_token": 100, "tgt_len": 32, "tie_weight": True, "tie_projs": [False], "dropout": 0.1,
              "dropatt": 0.0, "weight_init_std": 0.02, "proj_init_std": 0.01}


def _lts(root, config=LTS_CONFIG, ppl=None, raw=None):
    import yaml

    for j in range(4):
        folder = root / "config_0" / f"j{j}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model_config.yaml").write_text(raw if raw is not None and j == 0 else yaml.safe_dump(config))
    if ppl is not None:
        (root / "ppl_summary.yaml").write_text(ppl)
    return root


@pytest.mark.parametrize("config, raw, ppl, says", [
    (LTS_CONFIG, "", None, "expected a YAML mapping, found nothing"),
    (LTS_CONFIG, "[1, 2]", None, "expected a YAML mapping, found list"),
    ({**LTS_CONFIG, "n_layer": 0}, None, None, "n_layer=0: should be greater than or equal to 1"),
    ({**LTS_CONFIG, "d_model": -16}, None, None, "d_model=-16"),
    ({**LTS_CONFIG, "d_inner": "wide"}, None, None, "d_inner='wide'"),
    ({**LTS_CONFIG, "n_head": [2, 0]}, None, None, "n_head=[2, 0]"),
    (LTS_CONFIG, None, "config_0_j0: {train_ppl: 3.0}\n", "config_0_j0: valid_ppl should be a finite number > 0"),
    (LTS_CONFIG, None, "config_0_j0: {valid_ppl: -3.0}\n", "got -3.0"),
    (LTS_CONFIG, None, "config_0_j0: {valid_ppl: .inf}\n", "got inf"),
    (LTS_CONFIG, None, "", "ppl_summary.yaml: expected a YAML mapping, found nothing"),
])
def test_lts_folder_that_cannot_be_built_is_one_line(tmp_path, lpzero, config, raw, ppl, says):
    _lts(tmp_path / "lts", config, ppl, raw)
    code, out, err, _ = lpzero("info", "--benchmark", tmp_path / "lts")
    assert code == 2 and out == ""
    one_line(err, says)


def _hf(root, scores: str | None):
    root.mkdir()
    for key in ("a", "b", "c", "d"):
        (root / key).mkdir()
        (root / key / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 1, "n_embd": 16,
                                                            "n_head": 2, "vocab_size": 50257, "n_positions": 32}))
    if scores is not None:
        (root / "scores.csv").write_text(scores)
    return root


@pytest.mark.parametrize("scores, says", [
    ("arch,score\na,1\nb,fast\nc,3\n", "score='fast' of architecture 'b' is not a finite number"),
    ("arch,score\na,1\nb,inf\nc,3\n", "of architecture 'b' is not a finite number"),
    ("arch,score\na,1\nb,-inf\nc,3\n", "of architecture 'b' is not a finite number"),
    ("arch,score\na,1\na,2\nc,3\n", "architecture 'a' has 2 rows"),
])
def test_scores_that_are_not_scores_are_one_line(tmp_path, lpzero, scores, says):
    root = _hf(tmp_path / "hf", scores)
    code, out, err, _ = lpzero("info", "--benchmark", root)
    assert code == 2 and out == ""
    one_line(err, "scores.csv", says)


def test_arch_folder_without_config_is_refused(tmp_path, lpzero):
    root = _hf(tmp_path / "hf", "arch,score\na,1\nb,2\nc,3\nd,4\n")
    (root / "e").mkdir()
    code, _, err, _ = lpzero("info", "--benchmark", root)
    assert code == 2
    one_line(err, "e: an architecture folder without config.json")


def test_a_cache_whose_scores_changed_is_refused(tmp_path, lpzero, monkeypatch):
    from lpzero_core.stats import benchmarks
    from lpzero_core.stats.extract import same_source

    root = _hf(tmp_path / "hf", "arch,score\na,1\nb,2\nc,3\nd,4\n")
    bench = benchmarks.get(root)
    manifest = {"settings": {"source": bench.source}, "target": bench.target.tolist()}
    same_source(bench, manifest, tmp_path / "cache")  # unchanged: accepted
    (root / "scores.csv").write_text("arch,score\na,4\nb,3\nc,2\nd,1\n")
    with pytest.raises(LPZeroError, match="before its scores changed"):
        same_source(benchmarks.get(root), manifest, tmp_path / "cache")
    with pytest.raises(LPZeroError, match="higher_is_better=True; pass the same"):
        same_source(benchmarks.get(root, higher_is_better=False), manifest, tmp_path / "cache")


def test_ctrl_c_while_the_command_imports_is_one_line(capsys, monkeypatch):
    import builtins

    from lpzero_core.workbench import console

    real = builtins.__import__

    def interrupted(name, *args, **kwargs):
        if name == "lpzero_core.workbench.cli":
            raise KeyboardInterrupt
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted)
    assert console.main() == 130
    one_line(capsys.readouterr().err, "interrupted while starting")
