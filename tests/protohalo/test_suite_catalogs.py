"""Halo catalogs of a suite's boxes from their initial conditions alone (``cosmoseg protohalo catalogs``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cosmoseg.cli import build_app
from cosmoseg.data import Box, Cosmology, HaloCatalog, Segmentation, load_artifact, save_artifact
from cosmoseg.errors import ArtifactError, ConfigError
from cosmoseg.protohalo.catalog import halo_catalog_from_segmentation
from cosmoseg.protohalo.predict import predict_protohaloes, truth_scores
from cosmoseg.protohalo.suite_catalogs import CatalogSettings, catalog_suite, scores_summary
from cosmoseg.protohalo.training import TrainConfig, train
from cosmoseg.sim.ics import initial_conditions

TINY = TrainConfig(size_in=8, size_out=4, base_filters=2, depth=1, batch_size=2, steps=2, validate_every=2)
COSMO = Cosmology(power_backend="eisenstein-hu")
N, LENGTH = 8, 16.0


def _labels() -> torch.Tensor:
    labels = torch.zeros((N, N, N), dtype=torch.int64)
    labels[0:3, 0:3, 0:3] = 4  # 27 voxels
    labels[-2:, 4:7, 2:5] = 9  # 18 voxels, across the x face with the next block
    labels[0:1, 4:7, 2:5] = 9  # +9
    labels[5:6, 0:2, 6:8] = 2  # 4 voxels
    return labels


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Box files as `cosmoseg simulate` writes them: (δ, φ), the true segmentation, and the FoF haloes."""
    folder = tmp_path_factory.mktemp("suite")
    for i in range(3):
        ics = initial_conditions(COSMO, n=N, length=LENGTH, seed=i, z_start=49.0)
        box = Box(length=LENGTH, cosmology=COSMO)
        truth = Segmentation(labels=_labels(), box=box)
        fof, _ = halo_catalog_from_segmentation(truth, ics.fields)
        save_artifact(folder / f"box_{i:04d}.h5", {"fields": ics.fields, "segmentation": truth, "halos": fof})
    return folder


@pytest.fixture(scope="module")
def models(suite: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("models")
    paths = sorted(suite.glob("box_*.h5"))
    sem = train(TINY, paths, root)
    ins = train(dataclasses.replace(TINY, task="instance", n_validation=0), paths, root)
    return sem, ins


def test_truth_catalogs_are_the_true_segmentation_moved_by_lpt(suite: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    paths = catalog_suite(
        suite, tmp_path, CatalogSettings(source="truth", min_particles=5), boxes=[2, 0], log=lines.append
    )
    assert [p.name for p in paths] == ["halos_0002.h5", "halos_0000.h5"]
    halos = load_artifact(paths[0])["halos"]
    assert isinstance(halos, HaloCatalog)
    assert halos["n_part"].tolist() == [27, 27]  # the 4-voxel halo is below min_particles
    objects = load_artifact(suite / "box_0002.h5")
    expected, _ = halo_catalog_from_segmentation(objects["segmentation"], objects["fields"], min_particles=5)
    torch.testing.assert_close(halos["pos"], expected["pos"])
    torch.testing.assert_close(halos["vel"], expected["vel"])
    assert halos.box.cosmology == COSMO and halos.meta["catalog_source"] == "truth" and halos.meta["box_index"] == 2
    assert "box 2: 2 haloes (truth) against 3 FoF haloes" in lines[0]


def test_predicted_catalogs_are_the_networks_prediction_and_scored(
    suite: Path, models: tuple[Path, Path], tmp_path: Path
) -> None:
    sem, ins = models
    settings = CatalogSettings(semantic_model=str(sem), instance_model=str(ins))
    lines: list[str] = []
    (path,) = catalog_suite(suite, tmp_path, settings, boxes=[1], log=lines.append)
    fields = load_artifact(suite / "box_0001.h5")["fields"]
    _, expected = predict_protohaloes(fields, semantic_model=str(sem), instance_model=str(ins))
    halos = load_artifact(path)["halos"]
    assert len(halos) == len(expected)
    torch.testing.assert_close(halos["mass"], expected["mass"])
    assert "vs the truth: F1" in lines[0] and halos.meta["catalog_source"] == "predicted"
    assert lines[-1].startswith("mean over 1 boxes (± the scatter between boxes): F1 ")
    import h5py

    truth = load_artifact(suite / "box_0001.h5")["segmentation"]
    predicted, _ = predict_protohaloes(fields, semantic_model=str(sem), instance_model=str(ins))
    with h5py.File(path) as f:
        assert f.attrs["score_n_true"] == 3 and f.attrs["score_F1"] == pytest.approx(
            truth_scores(predicted, truth)["F1"]
        )


def test_scores_summary_by_hand() -> None:
    boxes = [
        {"F1": 0.8, "instance_precision": 0.5, "instance_recall": 0.4, "n_pred": 10.0, "n_true": 20.0},
        {"F1": 0.6, "instance_precision": 0.7, "instance_recall": 0.2, "n_pred": 20.0, "n_true": 20.0},
    ]
    line = scores_summary(boxes)
    assert "F1 0.700 ± 0.141" in line and "precision 0.600 ± 0.141" in line and "recall 0.300 ± 0.141" in line
    assert line.endswith("predicted / true haloes 0.750")


def test_resume_keeps_catalogs_of_the_same_settings_only(suite: Path, tmp_path: Path) -> None:
    (path,) = catalog_suite(suite, tmp_path, CatalogSettings(source="truth"), boxes=[0])
    stamp = path.stat().st_mtime_ns
    catalog_suite(suite, tmp_path, CatalogSettings(source="truth"), boxes=[0], resume=True)
    assert path.stat().st_mtime_ns == stamp
    catalog_suite(suite, tmp_path, CatalogSettings(source="truth", lpt_order=1), boxes=[0], resume=True)
    assert path.stat().st_mtime_ns != stamp


def test_bad_settings_and_boxes_are_named(suite: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="source must be 'predicted' or 'truth'"):
        CatalogSettings(source="fof")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="needs no model"):
        CatalogSettings(source="truth", semantic_model=str(tmp_path / "m.pt"))
    with pytest.raises(ConfigError, match="no such model file"):
        CatalogSettings(semantic_model=str(tmp_path / "missing.pt"))
    with pytest.raises(ConfigError, match=r"boxes \[5\]"):
        catalog_suite(suite, tmp_path, CatalogSettings(source="truth"), boxes=[5])
    bare = tmp_path / "bare"
    bare.mkdir()
    objects = load_artifact(suite / "box_0000.h5")
    save_artifact(bare / "box_0000.h5", {"fields": objects["fields"]})
    with pytest.raises(ArtifactError, match="no Segmentation 'segmentation'"):
        catalog_suite(bare, tmp_path / "out", CatalogSettings(source="truth"))


def test_cli_writes_the_default_folder(suite: Path, tmp_path: Path) -> None:
    copy = tmp_path / "suite"
    copy.mkdir()
    (copy / "box_0000.h5").write_bytes((suite / "box_0000.h5").read_bytes())
    result = CliRunner().invoke(build_app(), ["protohalo", "catalogs", str(copy), "--truth", "--min-particles", "5"])
    assert result.exit_code == 0, result.output
    assert (copy / "halos-lpt-truth" / "halos_0000.h5").is_file()
    result = CliRunner().invoke(build_app(), ["protohalo", "catalogs", str(copy), "--truth", "--lpt-order", "3"])
    assert result.exit_code != 0 and "lpt_order must be 1 or 2" in result.output and "Traceback" not in result.output
