"""Evaluation of the protohalo models: tables, the twin baseline and the CLI command."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from cosmoseg.cli import build_app
from cosmoseg.data import Box, Cosmology, Field, Segmentation, Table, load_artifact, save_artifact
from cosmoseg.errors import ValidationError
from cosmoseg.protohalo.evaluation import MISSING, evaluate, oracle_instances
from cosmoseg.protohalo.training import TrainConfig, train

Trained = tuple[Path, Path, list[Path]]
TINY = TrainConfig(size_in=8, size_out=4, base_filters=2, depth=1, batch_size=2, steps=2, validate_every=2)


def _labels(n: int = 8) -> torch.Tensor:
    labels = torch.zeros((n, n, n), dtype=torch.int64)
    labels[0:3, 0:3, 0:3] = 1
    labels[4:6, 4:7, 2:5] = 2
    labels[1:3, 5:8, 5:7] = 3
    return labels


def _fields(seed: int, box: Box, n: int = 8) -> Field:
    gen = torch.Generator().manual_seed(seed)
    return Field(values=torch.randn((2, n, n, n), generator=gen), box=box, channels=("delta", "phi"))


def _suite(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    box = Box(length=16.0)
    paths = []
    for i in range(2):
        path = folder / f"box_{i:04d}.h5"
        save_artifact(path, {"fields": _fields(i, box), "segmentation": Segmentation(labels=_labels(), box=box)})
        paths.append(path)
    return paths


def _twin(path: Path, same: bool) -> Path:
    box = Box(length=16.0)
    b = _labels()
    if not same:
        b = torch.roll(b, 1, dims=0)
    objects = {
        "fields": _fields(7, box),
        "segmentation_a": Segmentation(labels=_labels(), box=box),
        "segmentation_b": Segmentation(labels=b, box=box),
    }
    save_artifact(path, objects)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root = tmp_path_factory.mktemp("evaluation")
    paths = _suite(root / "suite")
    sem = train(TINY, paths, root / "out")
    ins = train(dataclasses.replace(TINY, task="instance", n_validation=0), paths, root / "out")
    return sem, ins, paths


def _all_finite(table: Table) -> bool:
    return all(bool(torch.isfinite(v.double()).all()) for v in table.columns.values())


def test_tables_have_the_expected_columns_and_finite_values(trained: Trained, tmp_path: Path) -> None:
    sem, ins, paths = trained
    twin = _twin(tmp_path / "twin.h5", same=False)
    tables = evaluate(sem, ins, paths, twin_paths=[twin], batch_size=2)
    assert set(tables) == {"scores", "per_mass", "mass_function"}
    scores = tables["scores"]
    assert scores["source"].tolist() == [0, 1]
    assert scores.meta["source_0"] == "model" and scores.meta["source_1"] == "baseline"
    for key in ("TPR", "TNR", "PPV", "ACC", "F1", "instance_precision", "instance_recall", "ARI", "VI"):
        assert key in scores
    assert float(scores["TP"][0] + scores["FP"][0] + scores["TN"][0] + scores["FN"][0]) == 2 * 512
    per_mass = tables["per_mass"]
    for key in ("source", "m_mid", "TPR", "FNR", "FDR", "n_violin", "q05", "q50", "q95"):
        assert key in per_mass
    assert len(per_mass) == 16 and per_mass["source"].tolist() == [0] * 8 + [1] * 8
    mf = tables["mass_function"]
    for key in ("m_mid", "dndlnm_pred", "dndlnm_true", "counts_true", "ratio"):
        assert key in mf
    assert int(mf["counts_true"].sum()) == 6  # three haloes in each of the two boxes
    assert all(_all_finite(t) for t in tables.values())
    rates = torch.cat([per_mass["TPR"], per_mass["FNR"], per_mass["FDR"]])
    assert bool(((rates == MISSING) | ((rates >= 0) & (rates <= 1))).all())


def test_identical_twins_give_a_perfect_baseline(trained: Trained, tmp_path: Path) -> None:
    sem, ins, paths = trained
    twin = _twin(tmp_path / "twin.h5", same=True)
    scores = evaluate(sem, ins, paths[:1], twin_paths=[twin, twin])["scores"]
    baseline = {key: float(v[1]) for key, v in scores.columns.items()}
    assert baseline["F1"] == pytest.approx(1.0) and baseline["ARI"] == pytest.approx(1.0)
    assert baseline["VI"] == pytest.approx(0.0, abs=1e-12)
    assert baseline["instance_precision"] == 1.0 and baseline["instance_recall"] == 1.0
    assert baseline["n_true_haloes"] == 6  # the two files are pooled with distinct ids


def test_without_twins_only_the_model_row(trained: Trained) -> None:
    sem, ins, paths = trained
    tables = evaluate(sem, ins, paths[1:])
    assert tables["scores"]["source"].tolist() == [0]
    assert set(tables["per_mass"]["source"].tolist()) == {0}


def test_cli_evaluate_writes_the_tables(trained: Trained, tmp_path: Path) -> None:
    sem, ins, paths = trained
    twin = _twin(tmp_path / "twin.h5", same=True)
    args = ["protohalo", "evaluate", "--semantic", str(sem), "--instance", str(ins), *map(str, paths)]
    args += ["--twins", str(twin), "--output", str(tmp_path / "eval"), "--device", "cpu"]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    assert "model: F1" in result.output and "baseline: F1 1.0000" in result.output
    objects = load_artifact(tmp_path / "eval" / "evaluation.h5")
    assert set(objects) == {"scores", "per_mass", "mass_function"}


def test_cli_evaluate_errors_are_one_line(trained: Trained, tmp_path: Path) -> None:
    sem, ins, _ = trained
    twin = _twin(tmp_path / "twin.h5", same=True)
    args = ["protohalo", "evaluate", "--semantic", str(sem), "--instance", str(ins), str(twin), "--device", "cpu"]
    result = CliRunner().invoke(build_app(), [*args, "--output", str(tmp_path / "eval")])
    assert result.exit_code == 1 and "error:" in result.output and "lacks ['segmentation']" in result.output


def test_labelled_precision_drops_predicted_haloes_below_the_labelling_limit() -> None:
    from cosmoseg.protohalo.evaluation import _Pool, _scores, drop_below, labelling_limit

    truth = _labels()  # haloes of 27, 18 and 12 voxels
    pred = truth.clone()
    pred[7, 0, 0] = 4  # two haloes of fewer voxels than the smallest labelled one
    pred[7, 7, 0:2] = 5
    seg = Segmentation(labels=truth, box=Box(length=16.0), meta={"min_particles": 12})
    assert labelling_limit(seg) == 12
    assert labelling_limit(Segmentation(labels=truth, box=Box(length=16.0))) == 12  # the smallest halo
    assert torch.equal(drop_below(pred, 12), truth)
    pool = _Pool()
    pool.add(truth, pred, pred > 0, labelling_limit(seg))
    scores = _scores(pool)
    assert scores["instance_precision"] == pytest.approx(3 / 5) and scores["n_pred_haloes"] == 5
    assert scores["instance_precision_labelled"] == 1.0 and scores["n_pred_haloes_labelled"] == 3
    assert scores["instance_recall_labelled"] == scores["instance_recall"] == 1.0
    assert scores["F1"] < 1.0  # the semantic scores keep every predicted voxel


def test_missing_values_are_the_fill_value_beside_a_zero_count(trained: Trained) -> None:
    from cosmoseg.data.table import MISSING_FILL

    sem, ins, paths = trained
    tables = evaluate(sem, ins, paths)
    per_mass = tables["per_mass"]
    empty_true, empty_violin = per_mass["n_true"] == 0, per_mass["n_violin"] == 0
    assert bool(empty_true.any()) and bool(empty_violin.any())
    assert bool((per_mass["TPR"][empty_true] == MISSING_FILL).all())
    assert bool((per_mass["FNR"][empty_true] == MISSING_FILL).all())
    assert bool((per_mass["q50"][empty_violin] == MISSING_FILL).all())
    assert bool((per_mass["FDR"][per_mass["n_pred"] == 0] == MISSING_FILL).all())
    mf = tables["mass_function"]
    assert bool((mf["ratio"][mf["counts_true"] == 0] == MISSING_FILL).all())
    assert all("count beside" in t.meta["missing"] for t in tables.values())
    assert per_mass.units["q50"] == "log10 Msun/h"


def _box_in(path: Path, cosmology: Cosmology, seed: int = 0) -> Path:
    box = Box(length=16.0, cosmology=cosmology)
    save_artifact(path, {"fields": _fields(seed, box), "segmentation": Segmentation(labels=_labels(), box=box)})
    return path


def test_boxes_of_two_cosmologies_are_refused_by_name(trained: Trained, tmp_path: Path) -> None:
    sem, ins, paths = trained
    heavy = _box_in(tmp_path / "heavy.h5", Cosmology(omega_m=0.35))
    with pytest.raises(ValidationError, match=r"different cosmologies: heavy.h5 has omega_m 0.35 \(box_0000.h5 0.3111"):
        evaluate(sem, ins, [paths[0], heavy])
    low = _twin_in(tmp_path / "low.h5", Cosmology(sigma_8=0.7))
    with pytest.raises(ValidationError, match=r"different cosmologies: twin low.h5 has sigma_8 0.7 \(box_0000.h5"):
        evaluate(sem, ins, [paths[0]], twin_paths=[low])


def _twin_in(path: Path, cosmology: Cosmology) -> Path:
    box = Box(length=16.0, cosmology=cosmology)
    labels = Segmentation(labels=_labels(), box=box)
    save_artifact(path, {"fields": _fields(7, box), "segmentation_a": labels, "segmentation_b": labels})
    return path


def test_cli_evaluate_warns_about_another_cosmology_and_keeps_crop_centres(trained: Trained, tmp_path: Path) -> None:
    sem, ins, _ = trained
    low = _box_in(tmp_path / "low.h5", Cosmology(sigma_8=0.7))
    args = ["protohalo", "evaluate", "--semantic", str(sem), "--instance", str(ins), str(low), "--device", "cpu"]
    result = CliRunner().invoke(build_app(), [*args, "--output", str(tmp_path / "eval"), "--keep", "2"])
    assert result.exit_code == 0, result.output
    assert "warning: low.h5: cosmology differs from the training boxes': sigma_8 0.7 (trained 0.8102)" in (
        " ".join(result.output.split())
    )
    assert "haloes below the labelling limit dropped" in result.output
    bad = CliRunner().invoke(build_app(), [*args, "--output", str(tmp_path / "eval"), "--keep", "3"])
    assert bad.exit_code == 1 and "keep=3" in bad.output


def _benchmark(name: str) -> Any:
    """The script ``benchmarks/<name>.py`` loaded as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[2] / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_accuracy_benchmark_takes_the_boxes_as_arguments(
    trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = _benchmark("accuracy_protohalo")
    sem, ins, paths = trained
    module.main([str(paths[1]), "--semantic", str(sem), "--instance", str(ins)])
    out = capsys.readouterr().out
    assert "boxes: ['box_0001.h5']" in out and "| model |" in out and "instance_precision_labelled" in out
    held_out = torch.load(sem, weights_only=True)["metadata"]["validation_boxes"]
    assert held_out == ["box_0000.h5"]  # split_suite(2, 1, seed=0)
    with pytest.raises(SystemExit, match=r"lacks the models' validation boxes \['box_0000.h5'\]"):
        module.main(["--suite", str(tmp_path), "--semantic", str(sem), "--instance", str(ins)])
    module.main(["--suite", str(paths[0].parent), "--semantic", str(sem), "--instance", str(ins)])
    assert "boxes: ['box_0000.h5']" in capsys.readouterr().out


def test_evaluate_scores_the_boxes_the_models_held_out(trained: Trained, tmp_path: Path) -> None:
    from cosmoseg.protohalo.pretrained import validation_boxes

    sem, ins, paths = trained
    assert validation_boxes(paths[0].parent, sem) == [paths[0]]
    with pytest.raises(ValidationError, match=r"lacks the models' validation boxes \['box_0000.h5'\]"):
        validation_boxes(tmp_path, sem)
    args = ["protohalo", "evaluate", "--semantic", str(sem), "--instance", str(ins), "--device", "cpu"]
    result = CliRunner().invoke(build_app(), [*args, "--suite", str(paths[0].parent), "--output", str(tmp_path / "e")])
    assert result.exit_code == 0, result.output
    assert load_artifact(tmp_path / "e" / "evaluation.h5")["scores"].meta["n_boxes"] == 1
    result = CliRunner().invoke(build_app(), [*args, "--output", str(tmp_path / "f")])
    assert result.exit_code == 1 and "give the boxes to score (BOX.h5 ...) or --suite" in result.output
    shipped = r"\['box_0007.h5', 'box_0001.h5'\]"  # the shipped models' held-out boxes
    with pytest.raises(ValidationError, match=rf"lacks the models' validation boxes {shipped}"):
        validation_boxes(tmp_path)


def test_oracle_instances_take_the_nearest_true_halo_across_the_boundary() -> None:
    truth = torch.zeros((6, 6, 6), dtype=torch.int64)
    truth[0:2, 0:2, 0:2] = 4
    truth[3:5, 3:5, 3:5] = 9
    mask = torch.zeros((6, 6, 6), dtype=torch.bool)
    mask[0:2, 0:2, 0:2] = True  # inside halo 4
    mask[5, 0, 0] = True  # one voxel from halo 4 across the x face, far from halo 9
    mask[3, 3, 2] = True  # next to halo 9
    labels = oracle_instances(mask, truth)
    assert bool((labels[0:2, 0:2, 0:2] == 4).all())
    assert int(labels[5, 0, 0]) == 4 and int(labels[3, 3, 2]) == 9
    assert int((labels > 0).sum()) == int(mask.sum())
    assert not bool(oracle_instances(mask, torch.zeros_like(truth)).any())


def test_oracles_separate_the_mask_from_the_instances(trained: Trained) -> None:
    sem, ins, paths = trained
    scores = evaluate(sem, ins, paths, oracles=True)["scores"]
    assert scores["source"].tolist() == [0, 2, 3]
    names = [scores.meta[f"source_{i}"] for i in (2, 3)]
    assert names == ["true mask + model instances", "model mask + true instances"]
    # clustering the true mask: the semantic scores are perfect, the instances are the instance model's
    assert float(scores["F1"][1]) == pytest.approx(1.0) and float(scores["FP"][1]) == 0
    # the model's mask with the true instances: the model's semantic scores, every true halo it touches kept whole
    assert float(scores["F1"][2]) == pytest.approx(float(scores["F1"][0]))
    assert float(scores["n_pred_haloes"][2]) <= float(scores["n_true_haloes"][2])


def test_eulerian_errors_by_hand() -> None:
    from cosmoseg.protohalo.catalog import halo_catalog_from_segmentation
    from cosmoseg.protohalo.eulerian import fof_rows_of_labels, matched_halo_errors

    box = Box(length=16.0)
    fields = Field(values=0.01 * _fields(3, box).values, box=box, channels=("delta", "phi"))
    truth = Segmentation(labels=_labels(), box=box)  # sizes 27, 18, 12: labels 1..3 in decreasing size
    placed, _ = halo_catalog_from_segmentation(truth, fields)
    shift = torch.tensor([[0.3, 0.0, 0.0], [0.0, -0.4, 0.0], [0.0, 0.0, 15.5]], dtype=placed["pos"].dtype)
    fof = dataclasses.replace(placed, columns={**placed.columns, "pos": placed["pos"] + shift})  # 15.5 = -0.5 periodic
    assert fof_rows_of_labels(truth, fof).tolist() == [-1, 0, 1, 2]
    exact = matched_halo_errors(*halo_catalog_from_segmentation(truth, fields), truth, fof)
    assert torch.allclose(exact["pos_error"], torch.tensor([0.3, 0.4, 0.5], dtype=torch.float64), atol=1e-5)
    assert torch.equal(exact["m_pred"], exact["m_fof"]) and len(exact["m_fof_all"]) == 3
    # halo 1 grown by 3 voxels: still matched (IoU 27/30), mass ratio 30/27
    grown = _labels()
    grown[3, 0, 0:3] = 1
    errors = matched_halo_errors(
        *halo_catalog_from_segmentation(Segmentation(labels=grown, box=box), fields), truth, fof
    )
    ratio = errors["m_pred"] / errors["m_fof"]
    assert torch.allclose(torch.sort(ratio).values, torch.tensor([1.0, 1.0, 30 / 27], dtype=torch.float64))
    # labels that are not the catalog's rows in order are refused
    swapped = torch.where(truth.labels == 1, 2, torch.where(truth.labels == 2, 1, truth.labels))
    with pytest.raises(ValidationError, match="label k must be the halo of row k - 1"):
        fof_rows_of_labels(Segmentation(labels=swapped, box=box), fof)


def test_evaluate_writes_the_eulerian_table_and_the_twins_mass_function(tmp_path: Path, trained: Trained) -> None:
    from cosmoseg.protohalo.catalog import halo_catalog_from_segmentation

    paths = []
    for path in _suite(tmp_path / "suite"):
        objects = load_artifact(path)
        fof, _ = halo_catalog_from_segmentation(objects["segmentation"], objects["fields"])
        save_artifact(path, {**objects, "halos": dataclasses.replace(fof, meta={"finder": "test"})})
        paths.append(path)
    sem, ins, _ = trained
    tables = evaluate(sem, ins, paths, twin_paths=[_twin(tmp_path / "twin.h5", same=True)])
    table = tables["eulerian"]
    truth_rows = table["source"] == 1
    assert table.meta["source_1"] == "true segmentation + 2LPT"
    # the true segmentation placed by 2LPT is the "FoF" catalog here: every halo matched, no mass or position error
    matched = table["n_matched"][truth_rows]
    assert int(matched.sum()) == 6 and torch.equal(matched, table["n_fof"][truth_rows])
    assert float(table["pos_error_q84"][truth_rows].abs().max()) < 1e-5
    mf = tables["mass_function"]
    assert torch.equal(mf["counts_twins"], mf["counts_true"] // 2)  # one twin box, the same haloes as each box

    # the per-mass instance counts in the caller's bins: they add up to the pooled matches, and identical twins match
    # every halo of every bin
    edges = [1e8, 1e12, 1e14, 1e18]
    binned = evaluate(sem, ins, paths, twin_paths=[_twin(tmp_path / "twin.h5", same=True)], mass_edges=edges)
    per_mass, scores = binned["per_mass"], binned["scores"]
    assert per_mass["source"].tolist() == [0, 0, 0, 1, 1, 1]
    assert per_mass["m_low"][:3].tolist() == pytest.approx(edges[:-1])
    for source in (0, 1):
        rows = per_mass["source"] == source
        assert float(per_mass["n_true_matched"][rows].sum()) == float(scores["n_matched"][source])
        assert float(per_mass["n_pred_matched"][rows].sum()) == float(scores["n_matched"][source])
        assert float(per_mass["n_true_haloes"][rows].sum()) == float(scores["n_true_haloes"][source])
    twins = per_mass["source"] == 1
    assert torch.equal(per_mass["n_true_matched"][twins], per_mass["n_true_haloes"][twins])


def test_instances_benchmark_scores_pairs_side_by_side_with_figures(
    trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cosmoseg.protohalo.catalog import halo_catalog_from_segmentation

    module = _benchmark("protohalo_instances")
    sem, ins, paths = trained
    offsets = train(dataclasses.replace(TINY, task="offsets", n_validation=0), paths, tmp_path / "offsets")
    boxes = []
    for path in _suite(tmp_path / "suite"):
        objects = load_artifact(path)
        fof, _ = halo_catalog_from_segmentation(objects["segmentation"], objects["fields"])
        save_artifact(path, {**objects, "halos": fof})
        boxes.append(str(path))
    twin = str(_twin(tmp_path / "twin.h5", same=False))
    args = ["--pair", "paper", str(sem), str(ins), "--pair", "offsets", str(sem), str(offsets)]
    module.main([*args, "--set", "a", *boxes, "--set", "b", boxes[0], "--twins", twin, "--symmetries", "2"])
    out = capsys.readouterr().out
    for row in ("| paper | a |", "| offsets | b |", "| offsets + TTA 2 | a |", "| twin baseline | twins |"):
        assert row in out, row
    assert "| true segmentation + 2LPT |" in out and "twins / FoF (per volume)" in out
    by_mass = out.split("instance recall / precision by mass (FoF haloes), a boxes:")[1]
    assert "| paper |" in by_mass and "| twins |" in by_mass and "| offsets + TTA" not in by_mass.split("\n\n")[0]
    module.main([*args, "--set", "a", *boxes, "--figures", str(tmp_path / "fig")])
    for name in ("instances_mass_function.png", "instances_eulerian.png", "instances_by_mass.png"):
        assert (tmp_path / "fig" / name).stat().st_size > 1000
