"""Training of the protohalo networks: checkpoints, metadata, resume, load_model and the CLI command."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cosmoseg.cli import build_app
from cosmoseg.data import Box, Cosmology, Field, Segmentation, load_artifact, save_artifact
from cosmoseg.errors import ArtifactError, ConfigError, ValidationError
from cosmoseg.protohalo.training import TrainConfig, find_boxes, load_model, split_boxes, train
from cosmoseg.sim.suites import split_suite

TINY = TrainConfig(size_in=8, size_out=4, base_filters=2, depth=1, batch_size=2, steps=3, validate_every=2)


def _suite(folder: Path, n_boxes: int = 2, n: int = 8, length: float = 16.0) -> list[Path]:
    """Box files like those of `cosmoseg simulate`: (δ, φ) fields and a segmentation with a few cubic haloes."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n_boxes):
        gen = torch.Generator().manual_seed(i)
        box = Box(length=length)
        fields = Field(values=torch.randn((2, n, n, n), generator=gen), box=box, channels=("delta", "phi"))
        labels = torch.zeros((n, n, n), dtype=torch.int64)
        labels[0:3, 0:3, 0:3] = 1
        labels[4:6, 4:7, 2:5] = 2
        labels[1:3, 5:8, 5:7] = 3
        path = folder / f"box_{i:04d}.h5"
        save_artifact(path, {"fields": fields, "segmentation": Segmentation(labels=labels, box=box)})
        paths.append(path)
    return paths


def test_semantic_training_writes_a_plain_checkpoint_with_metadata(tmp_path: Path) -> None:
    paths = _suite(tmp_path / "suite")
    losses: list[tuple[int, float]] = []
    path = train(TINY, paths, tmp_path / "out", progress=lambda step, loss: losses.append((step, loss)))
    assert path == tmp_path / "out" / "semantic.pt"
    assert [s for s, _ in losses] == [1, 2, 3] and all(math.isfinite(v) for _, v in losses)
    payload = torch.load(path, weights_only=True)
    meta = payload["metadata"]
    assert payload["step"] == 3
    assert meta["task"] == "semantic" and meta["in_channels"] == 2 and meta["channels"] == ["delta", "phi"]
    assert (meta["size_in"], meta["size_out"], meta["base_filters"], meta["depth"]) == (8, 4, 2, 1)
    assert (meta["grid_n"], meta["box_length"]) == (8, 16.0)
    frac = (27 + 18 + 12) / 512
    assert meta["collapsed_fraction"] == pytest.approx(frac) and meta["beta"] == pytest.approx(1 - frac)
    assert meta["particle_mass"] == pytest.approx(Box(length=16.0).cosmology.particle_mass(8, 16.0))
    assert math.isfinite(meta["validation_loss"]) and meta["final"] is True
    assert meta["threshold_calibrated"] is True and 0.0 <= meta["threshold"] <= 1.0
    assert meta["train_boxes"] and meta["validation_boxes"] and len(meta["train_boxes"] + meta["validation_boxes"]) == 2


def test_calibrated_threshold_reproduces_the_training_collapsed_fraction(tmp_path: Path) -> None:
    from cosmoseg.data import load_artifact
    from cosmoseg.protohalo.panoptic import semantic_probabilities

    paths = _suite(tmp_path / "suite")
    path = train(TINY, paths, tmp_path / "out")
    model, meta = load_model(path, "semantic")
    train_box = tmp_path / "suite" / meta["train_boxes"][0]
    probs = semantic_probabilities(load_artifact(train_box)["fields"], model, size_in=8, size_out=4)
    predicted = float((probs > meta["threshold"]).double().mean())
    assert predicted == pytest.approx(meta["collapsed_fraction"], abs=2 / 512)


def test_uncalibrated_threshold_is_flagged(tmp_path: Path) -> None:
    path = train(dataclasses.replace(TINY, calibrate=False), _suite(tmp_path / "s"), tmp_path / "out")
    meta = torch.load(path, weights_only=True)["metadata"]
    assert meta["threshold"] == 0.5 and meta["threshold_calibrated"] is False


def test_instance_training_and_load_model(tmp_path: Path) -> None:
    config = dataclasses.replace(TINY, task="instance", n_validation=0)
    path = train(config, _suite(tmp_path / "suite"), tmp_path / "out")
    assert path.name == "instance.pt"
    model, meta = load_model(path, "instance", expect={"grid_n": 8, "in_channels": 5})
    assert meta["in_channels"] == 5 and meta["embedding_dim"] == 3 and meta["channels"][2:] == ["q_x", "q_y", "q_z"]
    assert meta["delta_pull"] == 0.5 and meta["delta_push"] == 1.5 and meta["c_reg"] == 0.001
    assert meta["validation_loss"] is None and "threshold" not in meta
    assert not model.training
    with torch.no_grad():
        out = model(torch.randn(1, 5, 8, 8, 8))
    assert out.shape == (1, 3, 4, 4, 4) and bool(torch.isfinite(out).all())
    state = torch.load(path, weights_only=True)["model"]
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_the_background_term_is_recorded_and_changes_the_training(tmp_path: Path) -> None:
    paths = _suite(tmp_path / "suite")
    config = dataclasses.replace(TINY, task="instance", n_validation=0)
    plain = train(config, paths, tmp_path / "plain")
    pushed = train(dataclasses.replace(config, c_background=1.0), paths, tmp_path / "pushed")
    _, meta = load_model(pushed, "instance")
    assert meta["c_background"] == 1.0 and load_model(plain, "instance")[1]["c_background"] == 0.0
    a, b = (torch.load(p, weights_only=True)["model"] for p in (plain, pushed))
    assert any(not torch.equal(a[k], b[k]) for k in a)
    assert "c_background must be >= 0" in "; ".join(dataclasses.replace(config, c_background=-1.0).problems())


def test_the_small_halo_boost_is_recorded_and_changes_the_semantic_training(tmp_path: Path) -> None:
    paths = _suite(tmp_path / "suite")
    config = dataclasses.replace(TINY, task="semantic", n_validation=0)
    plain = train(config, paths, tmp_path / "plain")
    boosted = train(dataclasses.replace(config, small_halo_boost=2.0), paths, tmp_path / "boosted")
    assert load_model(boosted, "semantic")[1]["small_halo_boost"] == 2.0
    assert "small_halo_boost" not in load_model(plain, "semantic")[1]
    a, b = (torch.load(p, weights_only=True)["model"] for p in (plain, boosted))
    assert any(not torch.equal(a[k], b[k]) for k in a)
    problems = "; ".join(dataclasses.replace(config, small_halo_boost=-1.0).problems())
    assert "small_halo_boost must be a number >= 0" in problems
    problems = "; ".join(dataclasses.replace(config, task="offsets", small_halo_boost=1.0).problems())
    assert "small_halo_boost weights the semantic loss" in problems


def test_mass_bins_task_learns_classes_from_the_chosen_channels(tmp_path: Path) -> None:
    config = dataclasses.replace(TINY, task="mass-bins", n_validation=0, channels=("delta", "shear"), n_mass_bins=2)
    path = train(config, _suite(tmp_path / "suite"), tmp_path / "out")
    assert path.name == "mass-bins.pt"
    model, meta = load_model(path, "mass-bins", expect={"in_channels": 2})
    assert meta["channels"] == ["delta", "shear"] and meta["embedding_dim"] == 3 and meta["n_mass_bins"] == 2
    # haloes of 12, 18 and 27 voxels, the labelling limit the smallest (12): edges from 12 to 27 voxels in log M
    particle_mass = meta["particle_mass"]
    assert meta["log_mass_edges"] == pytest.approx(
        [
            math.log10(12 * particle_mass),
            math.log10(math.sqrt(12 * 27 * 1.0001) * particle_mass),
            math.log10(27 * 1.0001 * particle_mass),
        ]
    )
    with torch.no_grad():
        out = model(torch.randn(1, 2, 8, 8, 8))
    assert out.shape == (1, 3, 4, 4, 4) and bool(torch.isfinite(out).all())
    problems = "; ".join(dataclasses.replace(TINY, task="semantic", channels=("shear",)).problems())
    assert "channels are chosen for the mass-bins task only" in problems
    problems = "; ".join(dataclasses.replace(config, channels=("delta", "tide")).problems())
    assert "each must be one of ['delta', 'phi', 'shear']" in problems


def test_position_residual_embedding_is_scaled_positions_plus_the_net(tmp_path: Path) -> None:
    config = dataclasses.replace(TINY, task="instance", n_validation=0, position_residual=0.5)
    paths = _suite(tmp_path / "suite")
    path = train(config, paths, tmp_path / "out")
    model, meta = load_model(path, "instance")
    assert meta["position_residual"] == 0.5
    x = torch.randn(1, 5, 8, 8, 8)
    with torch.no_grad():
        expected = model.net(x) + 0.5 * x[:, 2:5, 2:6, 2:6, 2:6]
        torch.testing.assert_close(model(x), expected)
    with pytest.raises(ArtifactError, match="position_residual"):
        train(dataclasses.replace(config, position_residual=0.25, steps=4), paths, tmp_path / "out", resume=True)


def test_fine_tuning_starts_from_the_given_weights_and_cosine_ends_at_zero(tmp_path: Path) -> None:
    paths = _suite(tmp_path / "suite")
    source = train(TINY, paths, tmp_path / "a")
    unchanged = train(dataclasses.replace(TINY, steps=0, init_from=str(source)), paths, tmp_path / "b")
    a, b = torch.load(source, weights_only=True), torch.load(unchanged, weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert b["metadata"]["init_from"] == "semantic.pt"
    tuned = train(
        dataclasses.replace(TINY, steps=4, lr_schedule="cosine", init_from=str(source)), paths, tmp_path / "c"
    )
    state = torch.load(tuned, weights_only=True)
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert state["metadata"]["lr_schedule"] == "cosine"
    other = dataclasses.replace(TINY, base_filters=3, init_from=str(source))
    with pytest.raises(ArtifactError, match="base_filters"):
        train(other, paths, tmp_path / "d")


def test_position_residual_needs_3d_instance_embeddings() -> None:
    for bad in (
        dataclasses.replace(TINY, position_residual=1.0),
        dataclasses.replace(TINY, task="instance", embedding_dim=2, position_residual=1.0),
    ):
        assert any("position_residual" in p for p in bad.problems())
    assert any(
        "positive scale" in p for p in dataclasses.replace(TINY, task="instance", position_residual=-1.0).problems()
    )


def test_resume_continues_the_step_count_and_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    paths = _suite(tmp_path / "suite")
    config = dataclasses.replace(TINY, steps=4, calibrate=False, validate_every=10)
    full: list[float] = []
    train(config, paths, tmp_path / "a", progress=lambda s, v: full.append(v))
    first: list[tuple[int, float]] = []
    second: list[tuple[int, float]] = []
    train(dataclasses.replace(config, steps=2), paths, tmp_path / "b", progress=lambda s, v: first.append((s, v)))
    path = train(config, paths, tmp_path / "b", resume=True, progress=lambda s, v: second.append((s, v)))
    assert [s for s, _ in first] == [1, 2] and [s for s, _ in second] == [3, 4]
    assert torch.load(path, weights_only=True)["step"] == 4
    assert [v for _, v in first + second] == pytest.approx(full, rel=1e-5)


def test_resume_refuses_another_architecture(tmp_path: Path) -> None:
    paths = _suite(tmp_path / "suite")
    train(dataclasses.replace(TINY, steps=1, calibrate=False), paths, tmp_path / "out")
    with pytest.raises(ArtifactError, match="base_filters"):
        train(dataclasses.replace(TINY, base_filters=4), paths, tmp_path / "out", resume=True)


def test_load_model_refuses_mismatched_metadata(tmp_path: Path) -> None:
    path = train(dataclasses.replace(TINY, steps=1, calibrate=False), _suite(tmp_path / "suite"), tmp_path / "out")
    with pytest.raises(ArtifactError) as info:
        load_model(path, "semantic", expect={"grid_n": 64, "in_channels": 5})
    text = str(info.value)
    assert "'grid_n' is 8 in the checkpoint, expected 64" in text and "'in_channels' is 2" in text
    with pytest.raises(ArtifactError, match="'task' is 'semantic' in the checkpoint, expected 'instance'"):
        load_model(path, "instance")


def test_bad_inputs_give_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValidationError, match=r"no box_\*\.h5 files"):
        find_boxes(tmp_path / "empty")
    with pytest.raises(ConfigError, match="size_in - size_out = 3 must be even"):
        train(dataclasses.replace(TINY, size_out=5), _suite(tmp_path / "s"), tmp_path / "out")
    with pytest.raises(ValidationError, match=r"2 box\(es\) cannot give 2 validation .* leave one to train on"):
        train(dataclasses.replace(TINY, n_validation=2), _suite(tmp_path / "s"), tmp_path / "out")


def test_the_split_is_the_suite_split_or_the_one_a_checkpoint_records(tmp_path: Path) -> None:
    """A new run splits by split_suite, as every trainer; split_from takes the boxes (and training order) a checkpoint
    records, as the shipped models' were split before."""
    paths = [f"box_{i:04d}.h5" for i in range(7)]
    for seed in (0, 1, 5):
        train_paths, val_paths = split_boxes(paths, 2, seed=seed)
        split = split_suite(7, 2, seed=seed)
        assert (train_paths, val_paths) == (split.pick(paths, "train"), split.pick(paths, "validation"))
        assert len(val_paths) == 2 and sorted(train_paths + val_paths) == paths
    assert split_boxes(paths, 0, seed=3) == (paths, [])
    with pytest.raises(ValidationError, match="repeats"):
        split_boxes([*paths, "box_0000.h5"], 1, seed=0)
    with pytest.raises(ValidationError, match="cannot give 7 validation"):
        split_boxes(paths, 7, seed=0)
    boxes = _suite(tmp_path / "suite", n_boxes=3)
    first = train(dataclasses.replace(TINY, steps=1), boxes, tmp_path / "a")
    meta = torch.load(first, weights_only=True)["metadata"]
    order = {"train_boxes": ["box_0002.h5", "box_0000.h5"], "validation_boxes": ["box_0001.h5"]}
    torch.save({**torch.load(first, weights_only=True), "metadata": {**meta, **order}}, tmp_path / "recorded.pt")
    recorded = split_boxes(boxes, 1, seed=0, split_from=tmp_path / "recorded.pt")
    assert recorded == ([boxes[2], boxes[0]], [boxes[1]])
    again = train(dataclasses.replace(TINY, steps=1, split_from=str(tmp_path / "recorded.pt")), boxes, tmp_path / "b")
    again_meta = torch.load(again, weights_only=True)["metadata"]
    assert {k: again_meta[k] for k in order} == order
    with pytest.raises(ValidationError, match=r"records 1 validation box\(es\), but n_validation is 2"):
        split_boxes(boxes, 2, seed=0, split_from=tmp_path / "recorded.pt")
    with pytest.raises(ValidationError, match=r"the boxes lack \['box_0002.h5'\]"):
        split_boxes(boxes[:2], 1, seed=0, split_from=tmp_path / "recorded.pt")


def test_the_shipped_models_record_their_held_out_boxes() -> None:
    """They were split by a torch permutation before split_suite was shared: their files say which boxes they held
    out, and evaluation takes those (cosmoseg.protohalo.pretrained.validation_boxes)."""
    from cosmoseg.protohalo.pretrained import default_checkpoint

    for task in ("semantic", "instance"):
        meta = torch.load(default_checkpoint(task), weights_only=True)["metadata"]
        assert meta["validation_boxes"] == ["box_0007.h5", "box_0001.h5"] and len(meta["train_boxes"]) == 14


def test_cli_train_end_to_end_and_help(tmp_path: Path) -> None:
    _suite(tmp_path / "suite")
    runner = CliRunner()
    app = build_app()
    help_result = runner.invoke(app, ["protohalo", "train", "--help"])
    assert help_result.exit_code == 0 and "--task" in help_result.output
    args = ["protohalo", "train", str(tmp_path / "suite"), "--task", "instance", "--steps", "2", "--size-in", "8"]
    args += ["--size-out", "4", "--base-filters", "2", "--depth", "1", "--device", "cpu", "-q"]
    result = runner.invoke(app, [*args, "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "instance.pt").is_file()
    load_model(tmp_path / "out" / "instance.pt", "instance")
    source = str(tmp_path / "out" / "instance.pt")
    exported = runner.invoke(app, ["protohalo", "export", source, str(tmp_path / "w.pt"), "--n-dens", "9"])
    assert exported.exit_code == 0, exported.output
    _, meta = load_model(tmp_path / "w.pt", "instance")
    assert meta["exported_from"] == "instance.pt" and meta["n_dens"] == 9 and "p_thresh" not in meta
    refused = runner.invoke(app, ["protohalo", "export", source, str(tmp_path / "v.pt"), "--p-thresh", "0.5"])
    assert refused.exit_code == 1 and "density ratio" in refused.output and not (tmp_path / "v.pt").exists()
    assert (tmp_path / "w.pt").stat().st_size < (tmp_path / "out" / "instance.pt").stat().st_size
    # --suite records the span of the training boxes' cosmologies (for checkpoints trained before it was recorded)
    (name,) = meta["train_boxes"]
    suite_box = tmp_path / "suite" / name
    objects = load_artifact(suite_box)
    other = Box(length=16.0, cosmology=Cosmology(sigma_8=0.7))
    moved = {"fields": dataclasses.replace(objects["fields"], box=other), "segmentation": objects["segmentation"]}
    save_artifact(suite_box, moved)
    args = ["protohalo", "export", source, str(tmp_path / "s.pt"), "--suite", str(tmp_path / "suite")]
    assert runner.invoke(app, args).exit_code == 0
    _, meta = load_model(tmp_path / "s.pt", "instance")
    assert meta["cosmology"]["sigma_8"] == 0.7 and meta["cosmology_range"] == {}
    assert meta["particle_mass_range"] == [meta["particle_mass"]] * 2
    empty = tmp_path / "empty-suite"
    empty.mkdir()
    args = ["protohalo", "export", source, str(tmp_path / "t.pt"), "--suite", str(empty)]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 1 and "lacks the checkpoint's train_boxes" in refused.output


def test_cli_errors_name_one_problem_per_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    runner = CliRunner()
    app = build_app()
    result = runner.invoke(app, ["protohalo", "train", str(tmp_path / "empty"), "--device", "cpu"])
    assert result.exit_code == 1 and "error:" in result.output and "no box_*.h5 files" in result.output
    _suite(tmp_path / "suite")
    result = runner.invoke(app, ["protohalo", "train", str(tmp_path / "suite"), "--size-in", "8", "--size-out", "5"])
    assert result.exit_code == 1 and "must be even" in result.output
    args = ["protohalo", "train", str(tmp_path / "suite"), "--size-in", "8", "--size-out", "5", "--lr", "-1"]
    lines = runner.invoke(app, [*args, "--batch-size", "0"]).output.strip().splitlines()
    assert lines[0] == "error: protohalo training settings:" and len(lines) == 4, lines
    assert any("must be even" in line for line in lines) and any("lr must be a positive" in line for line in lines)
    assert any("batch_size must be >= 1" in line for line in lines)
    result = runner.invoke(app, ["protohalo", "train", str(tmp_path / "suite"), "--task", "embedding"])
    assert result.exit_code == 1
    assert "--task must be semantic, instance, offsets, panoptic or mass-bins" in result.output


def test_offsets_training_regresses_the_centre_offsets(tmp_path: Path) -> None:
    paths = _suite(tmp_path / "suite")
    config = dataclasses.replace(TINY, task="offsets", n_validation=0)
    path = train(config, paths, tmp_path / "out")
    model, meta = load_model(path, "offsets", expect={"in_channels": 2})
    assert path.name == "offsets.pt" and meta["channels"] == ["delta", "phi"] and meta["embedding_dim"] == 3
    assert meta["offset_weighting"] == "halo" and meta["offset_unit"] == "cells" and "threshold" not in meta
    with torch.no_grad():
        assert model(torch.randn(1, 2, 8, 8, 8)).shape == (1, 3, 4, 4, 4)
    # the weighting changes the training; a longer run lowers the loss it is trained on
    voxel = train(dataclasses.replace(config, offset_weighting="voxel"), paths, tmp_path / "voxel")
    a, b = (torch.load(p, weights_only=True)["model"] for p in (path, voxel))
    assert any(not torch.equal(a[k], b[k]) for k in a)
    logged: list[float] = []
    longer = dataclasses.replace(config, steps=40, lr=3e-3, validate_every=40)
    train(longer, paths, tmp_path / "longer", progress=lambda step, loss: logged.append(loss))
    assert sum(logged[-5:]) < sum(logged[:5])
    assert "offset_weighting" in "; ".join(dataclasses.replace(config, offset_weighting="mass").problems())


def test_panoptic_training_has_both_heads_and_a_calibrated_threshold(tmp_path: Path) -> None:
    paths = _suite(tmp_path / "suite")
    path = train(dataclasses.replace(TINY, task="panoptic", n_validation=0, c_offset=0.5), paths, tmp_path / "out")
    model, meta = load_model(path, "panoptic")
    assert meta["embedding_dim"] == 4 and meta["c_offset"] == 0.5 and meta["threshold_calibrated"]
    with torch.no_grad():
        assert model(torch.randn(2, 2, 8, 8, 8)).shape == (2, 4, 4, 4, 4)
    assert "c_offset" in "; ".join(dataclasses.replace(TINY, task="panoptic", c_offset=0.0).problems())


def test_mass_bins_training_stores_the_class_biases_of_its_training_boxes(tmp_path: Path) -> None:
    from cosmoseg.protohalo.training import mass_bin_class_bias

    config = dataclasses.replace(TINY, task="mass-bins", n_validation=0, n_mass_bins=2)
    paths = _suite(tmp_path / "suite")
    model, meta = load_model(train(config, paths, tmp_path / "out"), "mass-bins")
    boxes = [(box["fields"], box["segmentation"]) for box in map(load_artifact, paths)]
    assert len(meta["class_log_bias"]) == 3 and meta["class_log_bias"][0] == 0.0
    assert meta["class_log_bias"] == pytest.approx(mass_bin_class_bias(model, meta, boxes))
    uncalibrated = train(dataclasses.replace(config, calibrate=False), paths, tmp_path / "plain")
    assert "class_log_bias" not in load_model(uncalibrated, "mass-bins")[1]


def test_the_unetr_backbone_trains_a_mass_bin_net_and_refuses_other_sizes(tmp_path: Path) -> None:
    pytest.importorskip("monai")
    pytest.importorskip("einops")
    from cosmoseg.nn.unetr import UNETR

    config = dataclasses.replace(
        TINY,
        task="mass-bins",
        backbone="unetr",
        size_in=16,
        size_out=8,
        base_filters=2,
        hidden_size=8,
        num_heads=2,
        n_validation=0,
        n_mass_bins=2,
        steps=1,
        batch_size=1,
    )
    paths = _suite(tmp_path / "suite", n=16)
    model, meta = load_model(train(config, paths, tmp_path / "out"), "mass-bins")
    assert isinstance(model, UNETR) and meta["backbone"] == "unetr" and meta["norm"] == "instance"
    assert (meta["hidden_size"], meta["num_heads"], meta["depth"]) == (8, 2, 4)
    with torch.no_grad():
        assert model(torch.randn(1, 2, 16, 16, 16)).shape == (1, 3, 8, 8, 8)
    problems = "; ".join(dataclasses.replace(config, size_in=40, size_out=32).problems())
    assert "the UNETR input side must be a multiple of its 16-voxel patch, got 40" in problems
    problems = "; ".join(dataclasses.replace(config, task="semantic").problems())
    assert "the UNETR backbone serves the mass-bins task (VIPR), not 'semantic'" in problems
    assert "backbone must be one of" in "; ".join(dataclasses.replace(config, backbone="vit").problems())
    # a V-Net cannot resume the UNETR's checkpoint
    vnet = dataclasses.replace(config, backbone="vnet", depth=1, steps=2)
    with pytest.raises(ArtifactError):
        train(vnet, paths, tmp_path / "out", resume=True)


def test_cli_refuses_a_unetr_crop_off_its_patch(tmp_path: Path) -> None:
    _suite(tmp_path / "suite")
    result = CliRunner().invoke(
        build_app(),
        [
            "protohalo",
            "train",
            str(tmp_path / "suite"),
            "--task",
            "mass-bins",
            "--backbone",
            "unetr",
            "--size-in",
            "40",
        ],
    )
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "the UNETR input side must be a multiple of its 16-voxel patch, got 40" in result.output
