"""Training, saving, loading and scoring an inference model end to end on a tiny folder of catalogs; the stage and the
commands on bad input."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest
import torch
from typer.testing import CliRunner

from cosmoseg.cli import build_app
from cosmoseg.data import Box, Cosmology, GalaxyCatalog, save_artifact
from cosmoseg.errors import ArtifactError, ValidationError
from cosmoseg.infer.evaluation import evaluate_models, train_from_folder
from cosmoseg.infer.graphs import GraphSpec
from cosmoseg.infer.stages import OmegaMParams, OmegaMStage
from cosmoseg.infer.systematics import parse_systematics
from cosmoseg.infer.training import TrainSettings, build_graphs, estimate, load_catalogs, load_model
from cosmoseg.pipeline.context import RunContext

pytest.importorskip("torch_geometric")

LENGTH = 25.0


def _catalog(omega_m: float, sigma_8: float, generator: torch.Generator, length: float = LENGTH) -> GalaxyCatalog:
    """Uniform galaxies whose number grows with Ω_m (so the global feature carries it), random velocities."""
    n = int(100 + 400 * omega_m)
    box = Box(length=length, cosmology=Cosmology(omega_m=omega_m, sigma_8=sigma_8))
    columns = {
        "pos": torch.rand((n, 3), generator=generator) * length,
        "vel": torch.randn((n, 3), generator=generator) * 150.0,
        "log_mstar": 9.0 + torch.rand(n, generator=generator),
    }
    return GalaxyCatalog(columns=columns, box=box, meta={"galaxy_model": "toy"})


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("galaxies")
    generator = torch.Generator().manual_seed(0)
    for i in range(12):
        omega_m, sigma_8 = 0.1 + 0.4 * (i + 0.5) / 12, 0.6 + 0.4 * ((7 * i) % 12 + 0.5) / 12
        save_artifact(out / f"galaxies_{i:04d}.h5", {"galaxies": _catalog(omega_m, sigma_8, generator)})
    return out


SETTINGS = TrainSettings(hidden=8, layers=1, max_epochs=3, patience=2, batch_size=4)
SPEC = GraphSpec(r_link=3.0)


@pytest.fixture(scope="module")
def model_file(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, line = train_from_folder(
        folder,
        SPEC,
        "",
        SETTINGS,
        n_validation=2,
        n_test=3,
        seed=0,
        device=torch.device("cpu"),
        command="test",
        output=tmp_path_factory.mktemp("models") / "toy.pt",
    )
    assert line.startswith("omega_m: RMSE")
    return path


def test_a_saved_model_loads_with_its_card_and_predicts_as_before(folder: Path, model_file: Path) -> None:
    model, meta = load_model(model_file)
    assert meta["box_length"] == LENGTH and meta["prior_low"] == pytest.approx([0.0983, 0.5983], abs=1e-3)
    assert len(meta["split"]["test"]) == 3 and not set(meta["split"]["test"]) & set(meta["split"]["train"])
    assert meta["node_feature_names"][0] == "|v|/velocity_unit" and meta["test_metrics"]["omega_m"]["rmse"] > 0
    catalogs = load_catalogs(folder, meta["split"]["test"])
    graphs = build_graphs(catalogs, SPEC, parse_systematics(""), seed=0)
    first = estimate(model, graphs)
    again = estimate(load_model(model_file)[0], graphs)
    torch.testing.assert_close(first.mean, again.mean)
    assert first.truth is not None and first.mean.shape == (3, 2) and bool((first.std > 0).all())


def test_evaluate_writes_the_metrics_the_tarp_and_the_figures(folder: Path, model_file: Path, tmp_path: Path) -> None:
    text = evaluate_models(folder, [model_file], device=torch.device("cpu"), output=tmp_path, n_samples=50)
    assert "| toy | toy → toy | none | 3 |" in text
    with h5py.File(tmp_path / "evaluation.h5") as f:
        assert {"metrics_0", "tarp_0"} <= set(f)
    assert (tmp_path / "toy_omega_m.png").stat().st_size > 0 and (tmp_path / "toy_tarp.png").is_file()


def test_evaluate_against_a_reference_folder_compares_box_by_box(
    folder: Path, model_file: Path, tmp_path: Path
) -> None:
    """--reference: the same catalogs as the reference give zero shifts; thinned ones move the estimates and the
    galaxy-count ratio says by how much they were thinned."""
    _, meta = load_model(model_file)
    test = meta["split"]["test"]
    same = evaluate_models(
        folder, [model_file], device=torch.device("cpu"), output=tmp_path / "same", n_samples=50, reference=folder
    )
    assert "| toy | " in same.split("Box by box")[1]
    with h5py.File(tmp_path / "same" / "evaluation.h5") as f:
        assert f.attrs["reference"] == str(folder)
    row = same.split("\n")[-1].split("|")
    assert [float(row[i]) for i in (3, 4, 5)] == [0.0, 0.0, 0.0] and row[8].strip().startswith("1.00")
    thinned = tmp_path / "thinned"
    thinned.mkdir()
    for index, catalog in load_catalogs(folder, test).items():
        save_artifact(
            thinned / f"galaxies_{index:04d}.h5", {"galaxies": catalog.select(torch.arange(0, len(catalog), 2))}
        )
    text = evaluate_models(
        thinned, [model_file], device=torch.device("cpu"), output=tmp_path / "thin", n_samples=50, reference=folder
    )
    row = text.split("\n")[-1].split("|")
    assert float(row[4]) > 0 and row[8].strip().startswith("0.50")
    assert (tmp_path / "thin" / "toy_omega_m.png").stat().st_size > 0
    missing = tmp_path / "missing"
    missing.mkdir()
    save_artifact(missing / f"galaxies_{test[0]:04d}.h5", {"galaxies": load_catalogs(folder, [test[0]])[test[0]]})
    with pytest.raises(ArtifactError, match="no galaxy file for box"):
        evaluate_models(folder, [model_file], device=torch.device("cpu"), output=tmp_path / "x", reference=missing)


def test_the_stage_refuses_what_the_model_cannot_speak_for(model_file: Path) -> None:
    generator = torch.Generator().manual_seed(3)
    stage = OmegaMStage(OmegaMParams(model=str(model_file)), RunContext(device=torch.device("cpu"), seed=0))
    estimate_ = stage.run(galaxies=_catalog(0.3, 0.8, generator))["estimate"]
    assert estimate_.mean.shape == (2,) and estimate_.meta["model_sha256"]
    with pytest.raises(ValidationError, match="trained on 25 Mpc/h boxes"):
        stage.run(galaxies=_catalog(0.3, 0.8, generator, length=50.0))
    no_velocities = _catalog(0.3, 0.8, generator)
    no_velocities = GalaxyCatalog(columns={"pos": no_velocities["pos"]}, box=no_velocities.box)
    with pytest.raises(ValidationError, match="vel"):
        stage.run(galaxies=no_velocities)
    empty = GalaxyCatalog(columns={"pos": torch.zeros((0, 3)), "vel": torch.zeros((0, 3))}, box=no_velocities.box)
    with pytest.raises(ValidationError, match="empty"):
        stage.run(galaxies=empty)


def test_a_file_that_is_no_model_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    torch.save({"format": "cosmoseg.checkpoint", "version": 1, "metadata": {}, "model": {}}, bad)
    with pytest.raises(ArtifactError):
        load_model(bad)


def test_the_commands_report_bad_input_in_one_line(folder: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    app = build_app()
    result = runner.invoke(app, ["infer", "train", str(folder), "--systematics", "fog:3", "--output", str(tmp_path)])
    assert result.exit_code == 1 and result.output.startswith("error:") and "Traceback" not in result.output
    result = runner.invoke(app, ["infer", "train", str(tmp_path)])
    assert result.exit_code == 1 and "no galaxies_<i>.h5" in result.output
