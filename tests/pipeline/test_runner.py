"""The runner: artifacts, manifest, seeds, hooks, resume, failures and a kill in the middle of a stage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cosmoseg import hookimpl, run_pipeline
from cosmoseg.data import load_artifact
from cosmoseg.errors import StageError
from cosmoseg.pipeline import derive_seed, load_config
from cosmoseg.plugins import build_registry
from cosmoseg.testing import assert_data_equal

TOY = Path(__file__).resolve().parents[1] / "fixtures" / "toy_plugin.py"
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
id = "mean"
uses = "toy.mean"
inputs = {{ field = "scaled.field" }}
"""


def run(tmp_path: Path, out: str, text: str = PIPELINE, **kwargs):
    path = tmp_path / f"{out}.toml"
    path.write_text(text)
    return run_pipeline(load_config(path, kwargs.pop("overrides", ())), output_dir=tmp_path / out, **kwargs)


def test_outputs_manifest_and_seeds(tmp_path: Path) -> None:
    result = run(tmp_path, "a")
    out = tmp_path / "a"
    assert sorted(p.name for p in out.iterdir()) == ["field.h5", "manifest.json", "mean.h5", "scaled.h5"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run_seed"] == 5 and manifest["device"] == "cpu"
    assert manifest["config"]["stage"][0]["uses"] == "sim.gaussian_field"
    assert {"python", "torch", "numpy", "cosmoseg"} <= set(manifest["packages"])
    assert any(p["origin"] == "local" and p["name"] == "toy_plugin" for p in manifest["plugins"])
    field = manifest["stages"]["field"]
    assert field["seed"] == derive_seed(5, "field") and field["status"] == "ran"
    assert field["params"]["n"] == 8 and len(field["sha256"]) == 64 and field["seconds"] >= 0
    assert manifest["stages"]["mean"]["inputs"] == {"field": "scaled.field"}
    assert result.load("mean")["table"]["mean"].shape == (1,)


def test_same_seed_same_bytes_of_data_other_seed_other_data(tmp_path: Path) -> None:
    a, b = run(tmp_path, "a"), run(tmp_path, "b")
    c = run(tmp_path, "c", overrides=["run.seed=6"])
    assert_data_equal(a.load("scaled"), b.load("scaled"))
    with pytest.raises(AssertionError):
        assert_data_equal(a.load("scaled"), c.load("scaled"))


def test_resume_skips_unchanged_stages_and_reruns_changed_ones(tmp_path: Path) -> None:
    first = run(tmp_path, "a")
    again = run(tmp_path, "a", resume=True)
    assert [r.status for r in again.records] == ["skipped", "skipped", "skipped"]
    changed = run(tmp_path, "a", resume=True, overrides=["scaled.factor=3.0"])
    assert [r.status for r in changed.records] == ["skipped", "ran", "ran"]
    assert_data_equal(first.load("field"), changed.load("field"))
    without_resume = run(tmp_path, "a")
    assert [r.status for r in without_resume.records] == ["ran", "ran", "ran"]


def test_resume_reruns_a_stage_whose_artifact_was_damaged(tmp_path: Path) -> None:
    run(tmp_path, "a")
    (tmp_path / "a" / "scaled.h5").write_bytes(b"garbage")
    again = run(tmp_path, "a", resume=True)
    # 'scaled' is rebuilt; 'mean' depends only on its (unchanged) inputs and params, so it stays
    assert [r.status for r in again.records] == ["skipped", "ran", "skipped"]
    load_artifact(tmp_path / "a" / "scaled.h5")


def test_a_failing_stage_names_itself_and_keeps_earlier_outputs_aside(tmp_path: Path) -> None:
    run(tmp_path, "a")
    before = (tmp_path / "a" / "scaled.h5").read_bytes()
    with pytest.raises(
        StageError, match=r"stage 'scaled' \(toy\.scale\) failed: RuntimeError: toy\.scale was told to fail"
    ):
        run(tmp_path, "a", overrides=["scaled.fail=true"])
    # the earlier run's outputs are kept, moved aside: the folder holds only what the failed run wrote
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "told to fail" in manifest["error"]
    stale = tmp_path / "a" / manifest["stale"]["folder"]
    assert (stale / "scaled.h5").read_bytes() == before
    assert not (tmp_path / "a" / "scaled.h5").exists() and not (tmp_path / "a" / "mean.h5").exists()
    assert not [p for p in (tmp_path / "a").rglob("*") if p.name.endswith(".tmp")]


def test_a_stage_that_breaks_its_output_contract(tmp_path: Path) -> None:
    text = PIPELINE + '\n[[stage]]\nid = "broken"\nuses = "toy.broken"\ninputs = { field = "field.field" }\n'
    with pytest.raises(StageError, match="output 'table' is a Field, not a Table"):
        run(tmp_path, "a", text=text)
    assert not (tmp_path / "a" / "broken.h5").exists()


def test_observer_hooks_see_every_stage(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []

    class Observer:
        @hookimpl
        def cosmoseg_stage_started(self, ctx, stage_id):
            seen.append(("started", stage_id))

        @hookimpl
        def cosmoseg_stage_finished(self, ctx, stage_id, outputs, seconds):
            seen.append(("finished", stage_id))

    path = tmp_path / "p.toml"
    path.write_text(PIPELINE)
    config = load_config(path)
    registry = build_registry(config.run.plugins, autoload=False)
    registry.manager.register(Observer())
    run_pipeline(config, registry=registry, output_dir=tmp_path / "o")
    assert seen == [(kind, sid) for sid in ("field", "scaled", "mean") for kind in ("started", "finished")]


def test_killed_in_the_middle_of_a_stage_then_resumed(tmp_path: Path) -> None:
    path = tmp_path / "kill.toml"
    path.write_text(PIPELINE)
    out = tmp_path / "killed"
    sentinel = tmp_path / "scaled-started"
    command = [sys.executable, "-m", "cosmoseg.cli", "run", str(path), "--output", str(out), "--quiet"]
    env = {**os.environ, "COSMOSEG_TEST_PAUSE_FILE": str(sentinel)}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 60
    while not sentinel.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the stage never started"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert (out / "field.h5").exists() and not (out / "scaled.h5").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert list(manifest["stages"]) == ["field"]

    resumed = run_pipeline(load_config(path), output_dir=out, resume=True)
    assert [r.status for r in resumed.records] == ["skipped", "ran", "ran"]
    clean = run_pipeline(load_config(path), output_dir=tmp_path / "clean")
    for stage in ("field", "scaled", "mean"):
        assert_data_equal(resumed.load(stage), clean.load(stage), name=stage)
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_a_failing_observer_is_reported_with_its_hook_and_stage(tmp_path: Path) -> None:
    from cosmoseg.errors import PluginError

    class Grumpy:
        @hookimpl
        def cosmoseg_stage_started(self, ctx, stage_id):
            raise ValueError("no thanks")

    path = tmp_path / "p.toml"
    path.write_text(PIPELINE)
    config = load_config(path)
    registry = build_registry(config.run.plugins, autoload=False)
    registry.manager.register(Grumpy())
    with pytest.raises(PluginError, match="a cosmoseg_stage_started hook failed for stage 'field': ValueError"):
        run_pipeline(config, registry=registry, output_dir=tmp_path / "o")
