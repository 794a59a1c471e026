"""The template plugin, installed as a separate package, shows up and works in a pipeline."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cosmoseg import run_pipeline
from cosmoseg.pipeline import load_config


def _installed() -> bool:
    try:
        importlib.metadata.distribution("cosmoseg-plugin-template")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not _installed() and not os.environ.get("CI"),
    reason="cosmoseg-plugin-template is not installed (CI installs it; so does the README's test command)",
)


def test_cosmoseg_stages_list_shows_the_template_stage_with_its_origin() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cosmoseg.cli", "stages", "list"], capture_output=True, text=True, check=True
    )
    line = next(line for line in result.stdout.splitlines() if line.startswith("template.smooth"))
    assert "cosmoseg-plugin-template 0.1.0 (entry point)" in line
    assert "sim.gaussian_field" in result.stdout and "(built-in)" in result.stdout


def test_a_pipeline_can_use_the_template_stage(tmp_path: Path) -> None:
    path = tmp_path / "smooth.toml"
    path.write_text(
        """
[run]
seed = 11

[[stage]]
id = "field"
uses = "sim.gaussian_field"
params = { n = 16, box = 64.0, cosmology = { power_backend = "eisenstein-hu" } }

[[stage]]
id = "smooth"
uses = "template.smooth"
params = { radius = 8.0 }
inputs = { field = "field.field" }
"""
    )
    result = run_pipeline(load_config(path), output_dir=tmp_path / "out")
    raw = result.load("field")["field"].values
    smooth = result.load("smooth")["field"]
    assert smooth.meta["smoothing_radius"] == 8.0
    assert float(smooth.values.std()) < 0.5 * float(raw.std())
    assert "cosmoseg-plugin-template" in result.record("smooth").plugin


def test_the_entry_point_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from cosmoseg.plugins import build_registry

    assert "template.smooth" in build_registry().stages
    monkeypatch.setenv("COSMOSEG_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "template.smooth" not in build_registry().stages
    monkeypatch.delenv("COSMOSEG_DISABLE_PLUGIN_AUTOLOAD")
    assert "template.smooth" not in build_registry(blocked=["cosmoseg-plugin-template"]).stages
