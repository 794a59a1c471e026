"""The command line, driven in-process with typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cosmoseg.cli import build_app

runner = CliRunner()
APP = build_app()
ROOT = Path(__file__).resolve().parents[2]
PIPELINE = """
[run]
seed = 3

[[stage]]
id = "field"
uses = "sim.gaussian_field"
params = { n = 8, box = 40.0, cosmology = { power_backend = "eisenstein-hu" } }

[[stage]]
id = "power"
uses = "measure.power_spectrum"
inputs = { field = "field.field" }
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "p.toml"
    path.write_text(PIPELINE)
    return path


def invoke(*args: str):
    return runner.invoke(APP, [str(a) for a in args])


def test_run_then_inspect(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke("run", config, "--output", out, "--quiet", "--set", "field.n=16")
    assert result.exit_code == 0, result.output
    assert "ran 2 stage(s), skipped 0 on cpu" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stages"]["field"]["params"]["n"] == 16
    shown = invoke("inspect", out / "field.h5")
    assert shown.exit_code == 0, shown.output
    assert "Field: 1 channel(s) on a 16^3 grid" in shown.output and "box L = 40 Mpc/h" in shown.output
    shown = invoke("inspect", out / "power.h5")
    assert "Table:" in shown.output and "power_linear" in shown.output
    again = invoke("run", config, "--output", out, "--quiet", "--resume", "--set", "field.n=16")
    assert "ran 0 stage(s), skipped 2" in again.output


def test_dry_run_writes_nothing(config: Path, tmp_path: Path) -> None:
    result = invoke("run", config, "--output", tmp_path / "dry", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "power (measure.power_spectrum): field <- field.field" in result.output
    assert not (tmp_path / "dry").exists()


def test_validate_reports_each_problem_on_its_own_line(config: Path) -> None:
    assert "valid, 2 stage(s): field -> power" in invoke("validate", config).output
    config.write_text(PIPELINE.replace("sim.gaussian_field", "sim.gaussian_feild").replace("n = 8", "m = 8"))
    result = invoke("validate", config, "--set", "power.bins=3")
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("- ")]
    assert lines == [
        "- stage 'field': uses unknown stage 'sim.gaussian_feild' (did you mean 'sim.gaussian_field'?)",
        "- stage 'power' (measure.power_spectrum): unknown param 'bins' (known: channel, dk, k_max, with_linear)",
    ]


def test_cuda_request_without_cuda_is_an_error(config: Path, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is present")
    result = invoke("run", config, "--device", "cuda", "--output", tmp_path / "o")
    assert result.exit_code == 1 and "CUDA is not available" in result.output


def test_stages_list_show_and_plugins() -> None:
    listing = invoke("stages", "list").output
    assert "sim.gaussian_field" in listing and "cosmoseg 0.1.0 (built-in)" in listing
    shown = invoke("stages", "show", "measure.power_spectrum").output
    assert "inputs:\n  field: Field" in shown and "with_linear: bool = True" in shown
    missing = invoke("stages", "show", "measure.powr_spectrum")
    assert missing.exit_code == 1 and "did you mean 'measure.power_spectrum'" in missing.output
    assert "cosmoseg.sim.stages" in invoke("plugins").output


def test_inspect_refuses_a_broken_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 50)
    result = invoke("inspect", bad)
    assert result.exit_code == 1 and "not a readable HDF5 file" in result.output


def test_plugin_commands_are_added(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import typer

    from cosmoseg import hookimpl
    from cosmoseg.plugins import build_registry

    class Plugin:
        @hookimpl
        def cosmoseg_register_commands(self, app: typer.Typer) -> None:
            @app.command("hello")
            def hello() -> None:
                """Say hello."""
                print("hello from a plugin")

    registry = build_registry(autoload=False)
    registry.manager.register(Plugin())
    app = build_app(with_plugins=False)
    registry.manager.hook.cosmoseg_register_commands(app=app)
    assert runner.invoke(app, ["hello"]).output.strip() == "hello from a plugin"


@pytest.mark.parametrize("config", sorted((ROOT / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_pipelines_are_valid(config: Path, tmp_path: Path) -> None:
    import tomllib

    # a pipeline of the user's files (configs/mock.toml) leaves them empty: any existing file passes the check
    files = tomllib.loads(config.read_text()).get("run", {}).get("files", {})
    stand_in = tmp_path / "input.hdf5"
    stand_in.write_bytes(b"")
    sets = [item for name, path in files.items() if not path for item in ("--set", f"run.files.{name}={stand_in}")]
    result = invoke("validate", config, *sets)
    assert result.exit_code == 0, result.output


def test_a_failing_stage_is_one_clear_line_and_debug_shows_the_cause(tmp_path: Path) -> None:
    toy = Path(__file__).resolve().parents[1] / "fixtures" / "toy_plugin.py"
    text = PIPELINE.replace("seed = 3", f'seed = 3\nplugins = ["{toy}"]')
    text += (
        '\n[[stage]]\nid = "scaled"\nuses = "toy.scale"\nparams = { fail = true }\ninputs = { field = "field.field" }\n'
    )
    config = tmp_path / "fail.toml"
    config.write_text(text)
    result = invoke("run", config, "--output", tmp_path / "o", "--quiet")
    assert result.exit_code == 1
    assert "stage 'scaled' (toy.scale) failed: RuntimeError: toy.scale was told to fail" in result.output
    assert "Traceback" not in result.output
    debug = invoke("run", config, "--output", tmp_path / "o", "--quiet", "--debug")
    assert debug.exit_code == 1 and isinstance(debug.exception, Exception)
    assert isinstance(debug.exception.__cause__, RuntimeError)


def test_stages_list_can_load_a_pipelines_local_plugins(tmp_path: Path) -> None:
    toy = Path(__file__).resolve().parents[1] / "fixtures" / "toy_plugin.py"
    config = tmp_path / "local.toml"
    config.write_text(PIPELINE.replace("seed = 3", f'seed = 3\nplugins = ["{toy}"]'))
    assert "toy.scale" not in invoke("stages", "list").output
    listing = invoke("stages", "list", "--config", config).output
    assert "toy.scale" in listing and "toy_plugin.py (local)" in listing
    assert "factor: float = 2.0" in invoke("stages", "show", "toy.scale", "--config", config).output
    assert "toy_plugin" in invoke("plugins", "--config", config).output


def test_error_text_keeps_square_brackets(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(PIPELINE.replace("seed = 3", 'seed = 3\ncolour = "red"'))
    result = invoke("validate", config)
    assert result.exit_code == 1 and "[run]: unknown key 'colour'" in result.output


def test_cosmology_values_are_checked_before_running(config: Path) -> None:
    config.write_text(PIPELINE.replace('power_backend = "eisenstein-hu"', "omega_m = 2.0"))
    result = invoke("validate", config)
    assert result.exit_code == 1
    assert "param 'cosmology': omega_m" in result.output


def test_stages_show_wraps_the_params_docstring() -> None:
    result = invoke("stages", "show", "sim.ics")
    assert result.exit_code == 0
    assert max(len(line) for line in result.output.splitlines()) <= 110
    assert "precision" in result.output


def test_run_ends_with_what_it_produced(config: Path, tmp_path: Path) -> None:
    result = invoke("run", config, "--output", tmp_path / "o")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("field.h5") and "field: Field, (1, 8, 8, 8)" in line for line in lines)
    assert any(line.startswith("power.h5") and "spectrum: Table" in line for line in lines)
