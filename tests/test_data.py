"""Benchmark data files: located in the shared folder or an override, verified by sha256, never half-used."""
import hashlib
import os
import shutil
import urllib.error

import pytest

from lpzero_core.errors import LPZeroError
from lpzero_core.stats import data

FILES = [
    "flexibert/BERT_benchmark.json",
    "flexibert/BERT_results_activation.csv",
    "gpt2_wt103/ppl_summary.yaml",
    "gpt2_wt103/params_summary.yaml",
    "gpt2_wt103/config_3/j7/model_config.yaml",
]


def refuse(url):
    """Stand-in downloader: fails like an unreachable host."""
    raise urllib.error.URLError("network is unreachable")


def isolate(monkeypatch, tmp_path, fetch=refuse):
    """Search only an empty ``tmp_path/env`` (via LPZERO_DATA_DIR) and ``tmp_path/downloads``; downloads go to
    ``fetch``."""
    env = tmp_path / "env"
    env.mkdir()
    monkeypatch.setenv("LPZERO_DATA_DIR", str(env))
    monkeypatch.setattr(data, "DOWNLOAD_DIR", tmp_path / "downloads")
    monkeypatch.setattr(data, "search_roots", lambda: [env, tmp_path / "downloads"])
    monkeypatch.setattr(data, "_fetch", fetch)
    monkeypatch.delenv("LPZERO_OFFLINE", raising=False)  # downloads allowed; `fetch` plays the network


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setattr(data, "_fetch", refuse)


@pytest.mark.needs_data
@pytest.mark.parametrize("relpath", FILES)
def test_locate_finds_and_verifies(relpath):
    path = data.locate(relpath)
    assert path.is_file() and path.as_posix().endswith(relpath)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == data.manifest()["sha256"][relpath]


@pytest.mark.needs_data
def test_verify_all_is_complete():
    found = data.verify_all(download=False)
    assert len(found) == 207 and sum(p.name == "model_config.yaml" for p in found.values()) == 200


def test_source_urls_are_pinned():
    assert data.source_url("gpt2_wt103/LICENSE") == (
        "https://raw.githubusercontent.com/microsoft/archai/af79c739e04cec045cf5a5cedd01f354aa3463d1/LICENSE")
    assert data.source_url("flexibert/BERT_benchmark.json") == (
        "https://raw.githubusercontent.com/aaronserianni/training-free-nas/"
        "2d76e01b9586cad7340e8268dadba3056efd070b/data/BERT_benchmark.json")


def test_unknown_name_is_refused():
    with pytest.raises(LPZeroError, match="not a known benchmark file"):
        data.locate("flexibert/../../etc/passwd")


@pytest.mark.needs_data
def test_env_override_wins(monkeypatch, tmp_path):
    relpath = FILES[2]
    copy = tmp_path / relpath
    copy.parent.mkdir(parents=True)
    shutil.copyfile(data.locate(relpath), copy)
    monkeypatch.setenv("LPZERO_DATA_DIR", str(tmp_path))
    assert data.locate(relpath) == copy.resolve()


@pytest.mark.needs_data
def test_corrupted_copy_is_refused(monkeypatch, tmp_path):
    relpath = FILES[2]
    bad = tmp_path / relpath
    bad.parent.mkdir(parents=True)
    bad.write_bytes(data.locate(relpath).read_bytes() + b"#tampered\n")
    monkeypatch.setenv("LPZERO_DATA_DIR", str(tmp_path))
    with pytest.raises(LPZeroError, match="checksum mismatch.*refusing to use it"):
        data.locate(relpath)


@pytest.mark.needs_data
def test_copy_changed_after_verification_is_rechecked(monkeypatch, tmp_path):
    relpath = FILES[2]
    copy = tmp_path / relpath
    copy.parent.mkdir(parents=True)
    good = data.locate(relpath).read_bytes()
    copy.write_bytes(good)
    monkeypatch.setenv("LPZERO_DATA_DIR", str(tmp_path))
    assert data.locate(relpath) == copy.resolve()
    before = copy.stat().st_mtime_ns
    copy.write_bytes(good[:-1] + b"!")  # same size; pin a new mtime (timestamps can be coarser than this test)
    os.utime(copy, ns=(before + 10**9, before + 10**9))
    with pytest.raises(LPZeroError, match="checksum mismatch"):
        data.locate(relpath)


def test_missing_and_offline_is_one_line_with_three_ways(monkeypatch, tmp_path):
    isolate(monkeypatch, tmp_path)
    with pytest.raises(LPZeroError) as err:
        data.locate(FILES[0])
    msg = str(err.value)
    assert "\n" not in msg and FILES[0] in msg and "network is unreachable" in msg
    assert "LPZERO_DATA_DIR" in msg and "data/flexibert/BERT_benchmark.json" in msg and "allowing the download" in msg


def test_offline_env_forbids_download(monkeypatch, tmp_path):
    isolate(monkeypatch, tmp_path, fetch=lambda url: pytest.fail("must not download"))
    monkeypatch.setenv("LPZERO_OFFLINE", "1")
    with pytest.raises(LPZeroError, match="downloads are disabled.*LPZERO_OFFLINE unset"):
        data.locate(FILES[3])


@pytest.mark.needs_data
def test_download_is_verified_then_written(monkeypatch, tmp_path):
    relpath = FILES[3]
    payload = data.locate(relpath).read_bytes()
    isolate(monkeypatch, tmp_path, fetch=lambda url: payload)
    path = data.locate(relpath)
    assert path == tmp_path / "downloads" / relpath and path.read_bytes() == payload
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_corrupted_download_is_never_written(monkeypatch, tmp_path):
    isolate(monkeypatch, tmp_path, fetch=lambda url: b"<html>rate limited</html>")
    with pytest.raises(LPZeroError, match="checksum mismatch.*refusing to use it"):
        data.locate(FILES[3])
    assert not (tmp_path / "downloads").exists()
