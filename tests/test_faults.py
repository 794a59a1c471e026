"""Faults and attacks on the run folder and the command line (issue #18, items 1–9): concurrent runs, kills during
writes, runs that stop half-way, resumed files, operating-system errors, memory, wrongly typed files and plugins
that exit. The concurrency and kill cases run real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from cosmoseg import run_pipeline
from cosmoseg.cli import build_app
from cosmoseg.data import Table, save_artifact
from cosmoseg.pipeline import SilentReporter, load_config
from cosmoseg.pipeline.lock import LOCK_NAME

TOY = Path(__file__).resolve().parent / "fixtures" / "toy_plugin.py"
PIPELINE = f"""
[run]
seed = 5
plugins = ["{TOY}"]

[[stage]]
id = "field"
uses = "sim.gaussian_field"
params = {{ n = 8, box = 50.0, cosmology = {{ power_backend = "eisenstein-hu" }} }}

[[stage]]
id = "scaled"
uses = "toy.scale"
inputs = {{ field = "field.field" }}

[[stage]]
id = "same"
uses = "toy.identity"
inputs = {{ field = "field.field" }}

[[stage]]
id = "mean"
uses = "toy.mean"
inputs = {{ field = "scaled.field" }}
"""
runner = CliRunner()
APP = build_app()


def invoke(*args: object):
    return runner.invoke(APP, [str(a) for a in args])


def one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    path = tmp_path / "p.toml"
    path.write_text(PIPELINE)
    return path


def start_paused(pipeline: Path, out: Path, sentinel: Path, *extra: str) -> subprocess.Popen:
    """A ``cosmoseg run`` in another process, paused inside toy.scale (its pid written to ``sentinel``)."""
    command = [sys.executable, "-m", "cosmoseg.cli", "run", str(pipeline), "--output", str(out), "--quiet", *extra]
    env = {**os.environ, "COSMOSEG_TEST_PAUSE_FILE": str(sentinel)}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    deadline = time.monotonic() + 90
    while not sentinel.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the stage never started"
        time.sleep(0.05)
    return process


def record_as_written(out: Path, stage: str) -> None:
    """Make the manifest vouch for the stage's artifact as it is now (as if the run had written it), so that
    ``--resume`` reuses it and a later stage reads it back."""
    from cosmoseg.pipeline.manifest import file_sha256

    manifest = json.loads((out / "manifest.json").read_text())
    manifest["stages"][stage]["sha256"] = file_sha256(out / f"{stage}.h5")
    (out / "manifest.json").write_text(json.dumps(manifest))


# ---- 1. one run at a time -------------------------------------------------------------------------------------


def test_a_second_run_is_refused_while_the_first_holds_the_folder(pipeline: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = start_paused(pipeline, out, tmp_path / "paused")
    try:
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "cosmoseg.cli",
                "run",
                str(pipeline),
                "--output",
                str(out),
                "-q",
                "--set",
                "run.seed=7",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 1
        message = one_line(second.stderr)
        assert f"in use by another cosmoseg run (pid {first.pid}" in message and "started" in message
        assert "Traceback" not in message
    finally:
        first.kill()
        first.wait()
    # the holder died (kill -9): its lock is taken over, and the folder holds one run, not a mixture
    reporter = SilentReporter()
    run_pipeline(load_config(pipeline, ["run.seed=7"]), output_dir=out, reporter=reporter)
    assert any(f"from pid {first.pid}, which is no longer running" in m for m in reporter.messages)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["run_seed"] == 7
    for stage in ("field", "scaled", "same", "mean"):
        with h5py.File(out / f"{stage}.h5", "r") as f:
            assert f.attrs["fingerprint"] == manifest["stages"][stage]["fingerprint"]
    assert not (out / LOCK_NAME).exists()


# ---- 2. a run that stops half-way leaves no mixture ------------------------------------------------------------


def test_a_failed_run_moves_the_earlier_runs_files_aside_and_inspect_says_so(pipeline: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_pipeline(load_config(pipeline), output_dir=out)
    (out / "notes.txt").write_text("mine")
    result = invoke("run", pipeline, "--output", out, "-q", "--set", "run.seed=7", "--set", "scaled.fail=true")
    assert result.exit_code == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["run_seed"] == 7
    assert set(manifest["stages"]) == {"field"} and manifest["planned"] == ["field", "scaled", "same", "mean"]
    assert manifest["other_files"] == ["notes.txt"]  # the manifest describes every file; the user's stays
    assert sorted(p.name for p in out.glob("*.h5")) == ["field.h5"]
    stale = out / manifest["stale"]["folder"]
    assert sorted(manifest["stale"]["files"]) == ["field.h5", "mean.h5", "same.h5", "scaled.h5"]
    assert json.loads((stale / "stale.json").read_text())["files"] == manifest["stale"]["files"]
    shown = invoke("inspect", stale / "mean.h5")
    assert shown.exit_code == 0 and "stale: moved aside" in one_line(shown.output)
    assert "stale" not in invoke("inspect", out / "field.h5").output
    # an artifact of another run copied into the folder is not what its manifest describes
    (out / "mean.h5").write_bytes((stale / "mean.h5").read_bytes())
    assert "manifest.json beside it does not list stage mean" in one_line(invoke("inspect", out / "mean.h5").output)


# ---- 3. a write killed half-way leaves nothing for long ------------------------------------------------------


def test_the_next_run_removes_what_a_killed_write_left(pipeline: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    writer = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from cosmoseg.data import atomic_write
        def write(tmp):
            tmp.write_bytes(b"half an artifact")
            print("writing", flush=True)
            time.sleep(60)
        atomic_write(Path({str(out)!r}) / "field.h5", write, suffix=".h5")
        """
    )
    process = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "writing"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    left = [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    assert len(left) == 1 and left[0].startswith(".field.h5.")
    reporter = SilentReporter()
    run_pipeline(load_config(pipeline), output_dir=out, reporter=reporter)
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert any("left by a write that was interrupted" in m for m in reporter.messages)


# ---- 5. a resumed stage writes the bytes a fresh run writes ---------------------------------------------------


def test_resumed_files_are_byte_identical_to_a_fresh_runs(pipeline: Path, tmp_path: Path) -> None:
    fresh = run_pipeline(load_config(pipeline), output_dir=tmp_path / "fresh").output_dir
    resumed = tmp_path / "resumed"
    run_pipeline(load_config(pipeline), output_dir=resumed)
    for stage in ("scaled", "same", "mean"):  # re-run from field.h5 read back from disk
        (resumed / f"{stage}.h5").unlink()
    records = run_pipeline(load_config(pipeline), output_dir=resumed, resume=True).records
    assert [r.status for r in records] == ["skipped", "ran", "ran", "ran"]
    for stage in ("field", "scaled", "same", "mean"):
        assert (fresh / f"{stage}.h5").read_bytes() == (resumed / f"{stage}.h5").read_bytes(), stage


def test_an_object_read_back_and_written_again_has_the_same_bytes(tmp_path: Path) -> None:
    import torch

    from cosmoseg.data import load_artifact

    table = Table(columns={"x": torch.arange(3)}, meta={"zeta": 1, "alpha": 2, "mid": "x", "beta": True, "a": 0.5})
    save_artifact(tmp_path / "a.h5", {"t": table})
    save_artifact(tmp_path / "b.h5", {"t": load_artifact(tmp_path / "a.h5")["t"]})
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


# ---- 6. operating-system errors are one line -------------------------------------------------------------------


def test_an_output_path_that_is_a_file(pipeline: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    result = invoke("run", pipeline, "--output", tmp_path / "file", "-q")
    assert result.exit_code == 1
    assert one_line(result.output) == f"error: {tmp_path / 'file'}: the output folder is a file"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder(pipeline: Path, tmp_path: Path) -> None:
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        result = invoke("run", pipeline, "--output", out, "-q")
    finally:
        out.chmod(0o755)
    assert result.exit_code == 1 and "cannot write in the output folder: Permission denied" in one_line(result.output)


def test_a_folder_that_refuses_writes(pipeline: Path, tmp_path: Path, monkeypatch) -> None:
    """The same as a read-only folder, where the tests run as root (which may write anywhere)."""
    real_open = os.open

    def refusing_open(path, flags, *args, **kwargs):
        if str(path).endswith(LOCK_NAME):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_open)
    result = invoke("run", pipeline, "--output", tmp_path / "ro", "-q")
    assert result.exit_code == 1
    assert f"{tmp_path / 'ro'}: cannot write in the output folder: Permission denied" in one_line(result.output)


def test_a_stage_id_too_long_for_a_file_name(pipeline: Path, tmp_path: Path) -> None:
    long_id = "s" * 300
    text = PIPELINE + f'\n[[stage]]\nid = "{long_id}"\nuses = "toy.mean"\ninputs = {{ field = "field.field" }}\n'
    pipeline.write_text(text)
    result = invoke("run", pipeline, "--output", tmp_path / "out", "-q")
    assert result.exit_code == 1 and "the id has 300 characters; at most 100" in one_line(result.output)
    assert not (tmp_path / "out").exists()


def test_a_manifest_of_the_wrong_shape_on_resume(pipeline: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_pipeline(load_config(pipeline), output_dir=out)
    (out / "manifest.json").write_text("[1, 2, 3]")
    reporter = SilentReporter()
    records = run_pipeline(load_config(pipeline), output_dir=out, resume=True, reporter=reporter).records
    assert [r.status for r in records] == ["ran"] * 4
    assert any("is a JSON list, not a cosmoseg manifest" in m for m in reporter.messages)
    (out / "manifest.json").write_text('{"stages": [1]}')
    result = invoke("run", pipeline, "--output", out, "--resume")
    assert result.exit_code == 0 and "'stages' must be an object" in one_line(result.output)


def test_a_column_stored_as_byte_strings(pipeline: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_pipeline(load_config(pipeline), output_dir=out)
    with h5py.File(out / "mean.h5", "a") as f:
        del f["table/columns/mean"]
        f["table/columns"].create_dataset("mean", data=np.array([b"x"]))
    shown = invoke("inspect", out / "mean.h5")
    assert shown.exit_code == 1
    assert one_line(shown.output).endswith("dataset /table/columns/mean holds |S1, not numbers or booleans")
    # a stage that reads such a file back: scaled.h5 rewritten with a string column, its manifest sha updated
    with h5py.File(out / "scaled.h5", "a") as f:
        del f["field/values"]
        f["field"].create_dataset("values", data=np.array([b"x"]))
    record_as_written(out, "scaled")
    (out / "mean.h5").unlink()
    result = invoke("run", pipeline, "--output", out, "-q", "--resume")
    assert result.exit_code == 1
    assert "scaled.h5: dataset /field/values holds |S1, not numbers or booleans" in one_line(result.output)
    assert "Traceback" not in result.output


# ---- 7. memory ----------------------------------------------------------------------------------------------


def test_a_grid_beyond_the_machines_memory_is_refused_before_anything_runs(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_text('[[stage]]\nid = "ics"\nuses = "sim.ics"\nparams = { n = 4096 }\n')
    result = invoke("validate", path)
    assert result.exit_code == 1
    assert "stage 'ics' (sim.ics) needs about 8,704.0 GiB of memory" in one_line(result.output)
    assert "--force" in result.output
    assert invoke("validate", path, "--force").exit_code == 0
    result = invoke("run", path, "--output", tmp_path / "out", "-q")
    assert result.exit_code == 1 and not (tmp_path / "out").exists()


# ---- 8. inputs read back are checked against the declared type ------------------------------------------------


def test_an_input_read_back_of_another_type(pipeline: Path, tmp_path: Path) -> None:
    import torch

    out = tmp_path / "out"
    run_pipeline(load_config(pipeline), output_dir=out)
    save_artifact(out / "scaled.h5", {"field": Table(columns={"x": torch.arange(2)})}, attrs={"stage_id": "scaled"})
    record_as_written(out, "scaled")
    (out / "mean.h5").unlink()
    result = invoke("run", pipeline, "--output", out, "-q", "--resume")
    assert result.exit_code == 1
    text = one_line(result.output)
    assert "stage 'mean' (toy.mean)" in text and "scaled.h5: 'field' is a Table, but the stage declares a Field" in text


# ---- 9. plugins that exit --------------------------------------------------------------------------------------


EXITING_STAGE = """
import sys
from cosmoseg import Field, Stage, hookimpl

class Quit(Stage):
    \"\"\"Calls sys.exit.\"\"\"
    name = "quitter.quit"
    inputs = {"field": Field}
    outputs = {"field": Field}

    def run(self, field):
        sys.exit(3)

@hookimpl
def cosmoseg_register_stages(register):
    register(Quit)
"""


def test_a_stage_that_calls_sys_exit_is_named(pipeline: Path, tmp_path: Path) -> None:
    (tmp_path / "quitter.py").write_text(EXITING_STAGE)
    text = PIPELINE.replace(f'plugins = ["{TOY}"]', f'plugins = ["{TOY}", "quitter.py"]')
    text += '\n[[stage]]\nid = "quit"\nuses = "quitter.quit"\ninputs = { field = "field.field" }\n'
    pipeline.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "cosmoseg.cli", "run", str(pipeline), "--output", str(tmp_path / "o"), "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    message = one_line(done.stderr)
    assert "stage 'quit' (quitter.quit) stopped the run" in message and "called sys.exit(3)" in message
    assert "quitter" in message and json.loads((tmp_path / "o" / "manifest.json").read_text())["status"] == "failed"


def test_a_plugin_that_exits_when_imported_is_named(pipeline: Path, tmp_path: Path) -> None:
    (tmp_path / "leaver.py").write_text("import sys\nsys.exit(4)\n")
    pipeline.write_text(PIPELINE.replace(f'plugins = ["{TOY}"]', f'plugins = ["{TOY}", "leaver.py"]'))
    done = subprocess.run(
        [sys.executable, "-m", "cosmoseg.cli", "validate", str(pipeline)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert "leaver.py failed to import: it called sys.exit(4)" in one_line(done.stderr)


def test_running_the_same_pipeline_again_replaces_its_files_without_keeping_copies(
    pipeline: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = run_pipeline(load_config(pipeline), output_dir=out)
    second = run_pipeline(load_config(pipeline), output_dir=out)
    assert [r.sha256 for r in first.records] == [r.sha256 for r in second.records]
    assert not (out / "stale").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["stale"]["replaced"]) == ["field.h5", "mean.h5", "same.h5", "scaled.h5"]


# ---- 4. files a stage writes stay in the run folder (the writing itself: tests/galaxies/test_model_files.py) ---


@pytest.mark.parametrize("where", ["/tmp/elsewhere.pt", "../up.pt", "~/home.pt"])
def test_a_stage_cannot_be_told_to_write_outside_the_run_folder(where: str, tmp_path: Path) -> None:
    path = tmp_path / "save.toml"
    path.write_text(f'[[stage]]\nid = "fit"\nuses = "galaxies.gauss"\nparams = {{ save_model = "{where}" }}\n')
    result = invoke("validate", path)
    assert result.exit_code == 1
    text = one_line(result.output)
    assert "stage 'fit' (galaxies.gauss): param 'save_model' must" in text and "run's output folder" in text
