"""Input-path params and ``[run] files``: resolved against the pipeline file (or the working directory for
``--set``), checked before anything runs, and watched by ``--resume``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from cosmoseg import run_pipeline
from cosmoseg.errors import ConfigError
from cosmoseg.pipeline import load_config, plan_pipeline
from cosmoseg.pipeline.files import files_behind, files_signature, resolve_input_path
from cosmoseg.plugins import build_registry

PIPELINE = """
[run]
seed = 1
files = { grid = "data/delta.npy" }

[[stage]]
id = "grid"
uses = "io.field"
params = { path = "$grid", length = 40.0 }

[[stage]]
id = "power"
uses = "measure.power_spectrum"
inputs = { field = "grid.field" }
"""


def write_cube(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.random.default_rng(seed).normal(size=(8, 8, 8)).astype(np.float32))
    return path


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    write_cube(tmp_path / "conf" / "data" / "delta.npy")
    path = tmp_path / "conf" / "pipe.toml"
    path.write_text(PIPELINE)
    return path


def test_a_run_files_entry_is_relative_to_the_pipeline_file(pipeline: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # not the pipeline's folder
    plan = plan_pipeline(load_config(pipeline), build_registry())
    assert plan.stages[0].params.path == str(tmp_path / "conf" / "data" / "delta.npy")


def test_a_missing_file_is_a_config_error_before_anything_runs(pipeline: Path, tmp_path: Path) -> None:
    (tmp_path / "conf" / "data" / "delta.npy").unlink()
    with pytest.raises(ConfigError) as info:
        run_pipeline(load_config(pipeline), output_dir=tmp_path / "out")
    message = str(info.value)
    assert "stage 'grid' (io.field): param 'path'" in message and "no such file or folder" in message
    assert "data/delta.npy" in message
    assert not (tmp_path / "out").exists()


def test_unknown_and_empty_run_files_entries_are_named(pipeline: Path) -> None:
    config = load_config(pipeline, ["grid.path=$cube"])
    with pytest.raises(ConfigError, match=r"\[run\] files has no entry 'cube' \(its entries: grid\)"):
        plan_pipeline(config, build_registry())
    config = load_config(pipeline, ["run.files.grid="])
    with pytest.raises(ConfigError, match=r"files.grid is empty; give the path with --set run.files.grid=PATH"):
        plan_pipeline(config, build_registry())


def test_set_run_files_is_relative_to_the_working_directory(pipeline: Path, tmp_path: Path, monkeypatch) -> None:
    write_cube(tmp_path / "elsewhere" / "other.npy", seed=3)
    monkeypatch.chdir(tmp_path / "elsewhere")
    config = load_config(pipeline, ["run.files.grid=other.npy"])
    assert config.run.files["grid"] == str(tmp_path / "elsewhere" / "other.npy")
    plan = plan_pipeline(config, build_registry())
    assert plan.stages[0].params.path == str(tmp_path / "elsewhere" / "other.npy")


def test_run_files_must_be_a_table_of_names_and_strings(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(PIPELINE.replace('files = { grid = "data/delta.npy" }', 'files = { "9x" = "a", y = 3 }'))
    with pytest.raises(ConfigError, match="files must be a table of name"):
        load_config(path)
    path.write_text(PIPELINE.replace('files = { grid = "data/delta.npy" }', 'files = { "9x" = "a" }'))
    with pytest.raises(ConfigError, match="'9x' is not a name"):
        load_config(path)


def test_resume_reruns_a_reading_stage_when_its_file_changes(pipeline: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_pipeline(load_config(pipeline), output_dir=out)
    assert [r.status for r in first.records] == ["ran", "ran"]
    record = json.loads((out / "manifest.json").read_text())["stages"]["grid"]
    assert record["input_files"]["path"]["path"].endswith("delta.npy")
    same = run_pipeline(load_config(pipeline), output_dir=out, resume=True)
    assert [r.status for r in same.records] == ["skipped", "skipped"]
    time.sleep(0.01)
    write_cube(tmp_path / "conf" / "data" / "delta.npy", seed=9)  # same size, new values
    changed = run_pipeline(load_config(pipeline), output_dir=out, resume=True)
    assert [r.status for r in changed.records] == ["ran", "ran"]


def test_files_behind_a_path_cover_chunks_stems_and_folders(tmp_path: Path) -> None:
    for name in ("snap_005.0.hdf5", "snap_005.1.hdf5", "snap_006.0.hdf5"):
        (tmp_path / name).write_bytes(b"x")
    chunks = [tmp_path / "snap_005.0.hdf5", tmp_path / "snap_005.1.hdf5"]
    assert files_behind(tmp_path / "snap_005.0.hdf5") == chunks
    assert files_behind(tmp_path / "snap_005") == chunks
    assert len(files_behind(tmp_path)) == 3
    assert files_behind(tmp_path / "nothing") == []
    before = files_signature(tmp_path / "snap_005")
    (tmp_path / "snap_005.1.hdf5").write_bytes(b"y")
    assert files_signature(tmp_path / "snap_005") != before
    assert files_signature("") == ""


def test_resolve_input_path_leaves_an_empty_value_alone(tmp_path: Path) -> None:
    assert resolve_input_path("", base_dir=tmp_path, files={}, where="x") == ("", [])
    _, problems = resolve_input_path("~nobody-here/x", base_dir=tmp_path, files={}, where="p")
    assert problems and "no such file or folder" in problems[0]
