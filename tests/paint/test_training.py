"""dm2gal training, model files, evaluation and the `cosmoseg paint` commands, on tiny boxes and networks."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cosmoseg.cli import build_app
from cosmoseg.data import Box, GalaxyCatalog, Particles, load_artifact, save_artifact
from cosmoseg.errors import ArtifactError, ValidationError
from cosmoseg.galaxies.sampler_stage import toy_halos
from cosmoseg.paint.data import PaintBox, load_suite_box, periodic_crop, random_crop
from cosmoseg.paint.evaluation import occupancy_scores, power_ratio_score, score_painting
from cosmoseg.paint.fields import from_log_mass, to_log_mass
from cosmoseg.paint.models import check_voxel, load_paint_model, recorded_split, save_paint_model, seen_box_note
from cosmoseg.paint.network import Dm2Gal, Dm2GalFCN
from cosmoseg.paint.suite import load_split, redraw_truth, registry_truth, split_three
from cosmoseg.paint.tiling import predict_voxels
from cosmoseg.paint.training import (
    TrainConfig,
    _weight_volumes,
    paint_with_fcn,
    paint_with_oracle,
    train_dm2gal,
    train_fcn,
)

TINY = {"channels": (2, 2, 2, 2, 2, 2), "hidden": 4, "large_kernel": 3}
FCN_TINY = {"local": 4, "local_layers": 1, "context": 2, "context_layers": 2, "pool": 2, "hidden": 8}
N = 16
LENGTH = 32.0


def synthetic_box(seed: int, n: int = N) -> PaintBox:
    """A box whose truth is a function of the inputs: galaxies where the halo field is set, M* = 1% of the DM."""
    g = torch.Generator().manual_seed(seed)
    dm = (0.5 + torch.rand(n, n, n, generator=g)) * 1e12
    occupied = torch.rand(n, n, n, generator=g) < 0.05
    halo = torch.where(occupied, torch.full_like(dm, 1e13), torch.zeros_like(dm))
    mstar = torch.where(occupied, 0.01 * dm, torch.zeros_like(dm))
    return PaintBox(f"box_{seed:04d}.h5", LENGTH, torch.stack([to_log_mass(dm), to_log_mass(halo)]),
                    to_log_mass(mstar), None, None)  # type: ignore[arg-type]  # fmt: skip


def test_random_crop_keeps_inputs_target_and_extras_aligned() -> None:
    box = synthetic_box(1)
    marker = torch.arange(N**3, dtype=torch.float32).view(N, N, N)
    box = PaintBox(box.name, box.length, torch.stack([marker, marker]), marker, None, None)  # type: ignore[arg-type]
    for seed in range(5):
        inputs, target, extra = random_crop(box, 4, 2, torch.Generator().manual_seed(seed), extras=[marker])
        assert inputs.shape == (2, 8, 8, 8) and target.shape == (4, 4, 4)
        torch.testing.assert_close(inputs[0, 2:-2, 2:-2, 2:-2], target)
        torch.testing.assert_close(extra, target)
    crop = periodic_crop(marker, (-1, 0, N - 1), 2)  # wraps on both sides
    assert crop[0, 0, 0] == marker[N - 1, 0, N - 1] and crop[1, 1, 1] == marker[0, 1, 0]


def test_oracle_painting_equals_one_crop_per_voxel() -> None:
    net = Dm2Gal(input_size=29, **TINY).eval()
    box = synthetic_box(2)
    painted = paint_with_oracle(net, box, 1e8)
    voxels = torch.nonzero(box.target > 0)
    direct = from_log_mass(predict_voxels(net, box.inputs, voxels, batch=16))
    torch.testing.assert_close(painted[voxels[:, 0], voxels[:, 1], voxels[:, 2]], direct, rtol=1e-4, atol=1e-3)
    assert float(painted[box.target == 0].abs().max()) == 0.0


def test_fcn_training_learns_and_selects_by_power() -> None:
    train, validation = [synthetic_box(3), synthetic_box(4)], synthetic_box(5)
    model = Dm2GalFCN(**FCN_TINY)
    config = TrainConfig(steps=60, batch=2, tile=8, lr=1e-2, eval_every=20)
    seen: list[tuple[int, float, float | None]] = []
    result = train_fcn(model, train, validation, config, torch.Generator().manual_seed(0), lambda *a: seen.append(a))
    assert [s for s, *_ in seen] == [20, 40, 60] and len(result.history) == 3
    scores = [score for *_, score in result.history]
    assert result.best_score == min(scores) and result.best_step == result.history[scores.index(min(scores))][0]
    assert seen[-1][1] < seen[0][1]  # the loss went down
    assert not model.training  # left in eval mode with the selected weights
    # the total stellar mass is calibrated on the training boxes (one factor: the P(k) of δ does not change)
    painted = sum(float(paint_with_fcn(model, box)[0].double().sum()) for box in train)
    assert painted == pytest.approx(sum(float(from_log_mass(b.target.double()).sum()) for b in train), rel=1e-4)
    assert float(model.log_mass_offset) != 0.0
    torch.testing.assert_close(model.state_dict()["head.bias"], result.best_state["head.bias"])


def test_selection_averages_the_validation_boxes() -> None:
    from cosmoseg.paint.evaluation import power_ratio_score

    train, validation = [synthetic_box(3)], [synthetic_box(5), synthetic_box(11)]
    model = Dm2GalFCN(**FCN_TINY)
    config = TrainConfig(steps=2, batch=1, tile=8, eval_every=2, select_on_draws=False)
    result = train_fcn(model, train, validation, config, torch.Generator().manual_seed(0))
    model.log_mass_offset.zero_()  # the calibration after training scales all masses: P(k) of δ does not see it
    expected = [power_ratio_score(paint_with_fcn(model, box)[0], from_log_mass(box.target), LENGTH)[0]
                for box in validation]  # fmt: skip
    assert result.best_score == pytest.approx(sum(expected) / 2, rel=1e-5)
    # on draws: the mean over the boxes and over `selection_draws` draws of seeds 0, 1, ...
    model = Dm2GalFCN(**FCN_TINY)
    config = TrainConfig(steps=2, batch=1, tile=8, eval_every=2, selection_draws=3)
    result = train_fcn(model, train, validation, config, torch.Generator().manual_seed(0))
    model.log_mass_offset.zero_()
    drawn = [power_ratio_score(paint_with_fcn(model, box, generator=torch.Generator().manual_seed(seed))[0],
                               from_log_mass(box.target), LENGTH)[0]
             for box in validation for seed in range(3)]  # fmt: skip
    assert len(set(drawn)) == 6 and result.best_score == pytest.approx(sum(drawn) / 6, rel=1e-5)
    with pytest.raises(ValidationError, match="no validation box"):
        train_fcn(model, train, [], config, torch.Generator())


def test_dm2gal_training_runs_on_weighted_samples() -> None:
    train, validation = [synthetic_box(6)], synthetic_box(7)
    net = Dm2Gal(input_size=29, **TINY)
    config = TrainConfig(steps=6, batch=4, eval_every=3)
    result = train_dm2gal(net, train, validation, config, torch.Generator().manual_seed(0))
    assert len(result.history) == 2 and math.isfinite(result.best_score)
    with pytest.raises(ValidationError, match="no training voxel"):
        train_dm2gal(net, train, validation, TrainConfig(steps=1, threshold=1e30), torch.Generator())


def test_boxes_of_other_voxel_sizes_are_refused() -> None:
    other = synthetic_box(8)
    other = PaintBox(other.name, 2 * LENGTH, other.inputs, other.target, None, None)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="different voxel sizes"):
        train_fcn(Dm2GalFCN(**FCN_TINY), [synthetic_box(9)], other, TrainConfig(steps=1),
                  torch.Generator())  # fmt: skip


def test_power_score_and_occupancy() -> None:
    box = synthetic_box(10)
    truth = from_log_mass(box.target)
    assert power_ratio_score(truth, truth, LENGTH)[0] == pytest.approx(0.0, abs=1e-12)
    assert power_ratio_score(3.0 * truth, truth, LENGTH)[0] == pytest.approx(0.0, abs=1e-6)  # δ is scale-free
    moved = torch.roll(truth, 3, dims=0)  # same P(k): a periodic shift
    assert power_ratio_score(moved, truth, LENGTH)[0] == pytest.approx(0.0, abs=1e-6)
    noisy = truth + 1e9 * torch.rand(truth.shape, generator=torch.Generator().manual_seed(0))
    assert power_ratio_score(noisy, truth, LENGTH)[0] > 0.05
    pred = torch.zeros(4, 4, 4, dtype=torch.bool)
    true = torch.zeros(4, 4, 4, dtype=torch.bool)
    pred[0, 0, :3] = True
    true[0, 0, 1:] = True  # 2 hits of 3 predicted, of 3 true
    assert occupancy_scores(pred, true) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    scores = score_painting(2.0 * truth, truth, LENGTH)
    assert scores.total_mass_ratio == pytest.approx(2.0) and scores.precision == 1.0 and scores.recall == 1.0
    with pytest.raises(ValidationError, match="non-finite"):
        score_painting(truth * float("nan"), truth, LENGTH)


def test_model_file_round_trip_and_voxel_check(tmp_path: Path) -> None:
    model = Dm2GalFCN(**FCN_TINY).eval()
    path = save_paint_model(tmp_path / "m.pt", model, voxel=2.0, threshold=1e8, step=3, card={"data": "toy"})
    again, meta = load_paint_model(path)
    assert isinstance(again, Dm2GalFCN) and meta["voxel"] == 2.0 and meta["card"]["data"] == "toy"
    x = torch.randn(1, 2, 20, 20, 20)
    torch.testing.assert_close(again(x), model(x))
    check_voxel(2.0, meta, "test")
    with pytest.raises(ValidationError, match=r"voxels of 1 Mpc/h .* trained on voxels of 2 Mpc/h"):
        check_voxel(1.0, meta, "test")
    # a file written before the linear path and the hinges existed (neither in its architecture) loads without them
    with_path = Dm2GalFCN(**FCN_TINY, linear=1).eval()
    path = save_paint_model(tmp_path / "linear.pt", with_path, voxel=2.0, threshold=1e8, step=3, card={})
    assert load_paint_model(path)[0].skip is not None
    with_hinges = Dm2GalFCN(**FCN_TINY).eval()  # hinges=1, the default
    path = save_paint_model(tmp_path / "hinges.pt", with_hinges, voxel=2.0, threshold=1e8, step=3, card={})
    torch.testing.assert_close(load_paint_model(path)[0](x), with_hinges(x))
    old = Dm2GalFCN(**FCN_TINY, hinges=0).eval()
    path = save_paint_model(tmp_path / "old.pt", old, voxel=2.0, threshold=1e8, step=3, card={})
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["metadata"]["arch"]["linear"], checkpoint["metadata"]["arch"]["hinges"]
    torch.save(checkpoint, path)
    again, _ = load_paint_model(path)
    assert again.skip is None
    torch.testing.assert_close(again(x), old(x))
    torch.save({"format": "something else"}, tmp_path / "bad.pt")
    with pytest.raises(ArtifactError):
        load_paint_model(tmp_path / "bad.pt")


def _toy_suite(folder: Path, n_boxes: int = 4, n_grid: int = 16) -> Path:
    for i in range(n_boxes):
        g = torch.Generator().manual_seed(100 + i)
        halos = toy_halos(g, n=150)
        box = halos.box
        cell = box.length / n_grid
        axis = (torch.arange(n_grid, dtype=torch.float64) + 0.5) * cell
        grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
        pos = (grid + 0.3 * cell * torch.randn(grid.shape, generator=g, dtype=torch.float64)) % box.length
        particles = Particles(pos=pos.float(), vel=torch.zeros_like(pos).float(), ids=torch.arange(n_grid**3),
                              mass=1e12, box=Box(length=box.length), n_grid=n_grid)  # fmt: skip
        save_artifact(folder / f"box_{i:04d}.h5", {"particles": particles, "halos": halos})
    return folder


def test_suite_split_truth_and_boxes(tmp_path: Path) -> None:
    assert split_three(6, 1, 1, seed=0)[0] and len(split_three(6, 1, 2, seed=0)[2]) == 2
    with pytest.raises(ValidationError, match="cannot give"):
        split_three(3, 2, 1, seed=0)
    truth = registry_truth("galaxies.model", {"variant": "moster13"}, seed=1)
    suite = _toy_suite(tmp_path)
    box = load_suite_box(suite / "box_0001.h5", truth, 0)
    assert box.n == 16 and box.voxel == pytest.approx(100.0 / 16) and isinstance(box.galaxies, GalaxyCatalog)
    assert box.index == 1  # the truth's seed offset, from the file name
    assert float(from_log_mass(box.target).sum()) == pytest.approx(
        float((10.0 ** box.galaxies["log_mstar"].double()).sum()), rel=1e-4
    )
    with pytest.raises(ValidationError, match="variant"):
        registry_truth("galaxies.model", {"variant": "nope"}, seed=0)
    with pytest.raises(ValidationError, match="must take 'halos'"):
        registry_truth("sim.fof", {}, seed=0)
    save_artifact(tmp_path / "halos_only.h5", {"halos": toy_halos(torch.Generator().manual_seed(0), n=10)})
    with pytest.raises(ValidationError, match="save_particles"):
        load_suite_box(tmp_path / "halos_only.h5", truth, 0)


def test_commands_train_and_evaluate(tmp_path: Path) -> None:
    suite = _toy_suite(tmp_path / "suite")
    runner = CliRunner()
    app = build_app()
    arch = ["--arch", "local=4", "--arch", "local_layers=1", "--arch", "context=2", "--arch", "context_layers=2",
            "--arch", "pool=2", "--arch", "hidden=8"]  # fmt: skip
    out = tmp_path / "fcn.pt"
    args = ["paint", "train", str(suite), *arch, "--steps", "4", "--tile", "8", "--eval-every", "2"]
    result = runner.invoke(app, [*args, "--output", str(out)])
    assert result.exit_code == 0, result.output
    _, meta = load_paint_model(out)
    assert meta["voxel"] == pytest.approx(100.0 / 16) and "paint train" in meta["card"]["command"]
    split = load_split(suite, registry_truth("galaxies.model", {}, seed=0), grid=0, n_validation=1, n_test=1, seed=0)
    assert meta["max_log_halo"] == pytest.approx(max(float(b.inputs[1].max()) for b in split.train))
    figures = tmp_path / "figures"
    result = runner.invoke(
        app, ["paint", "evaluate", str(suite), "--model", str(out), "--output", str(tmp_path / "eval"),
              "--figures", str(figures)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "successor" in result.output and "hod_paper" in result.output and "zheng07" in result.output
    assert "truth_redraw" in result.output
    tables = load_artifact(tmp_path / "eval" / "evaluation.h5")
    assert {"summary", "power", "bispectrum", "pdf"} <= set(tables)
    assert (figures / "slices.png").is_file() and (figures / "power.png").is_file()
    bad = runner.invoke(app, ["paint", "train", str(suite), "--kind", "nope", "--output", str(tmp_path / "x.pt")])
    assert bad.exit_code == 1 and "unknown dm2gal model kind" in bad.output

    assert meta["split"] == {"n_validation": 1, "n_test": 1, "seed": 0, "train": ["box_0001.h5", "box_0003.h5"],
                             "validation": ["box_0000.h5"], "test": ["box_0002.h5"], "seeds": {}}  # fmt: skip
    assert "not held out" not in result.output

    # two test boxes: each box's tables and figures, the mean of their summaries, and a note on the box the model
    # was selected on (box 0, its validation box)
    result = runner.invoke(
        app, ["paint", "evaluate", str(suite), "--model", str(out), "--n-test", "2", "--hod-stage", "",
              "--output", str(tmp_path / "eval2"), "--figures", str(figures)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "mean over the 2 test boxes" in result.output
    assert "box_0000.h5, fcn: was a validation box of this fcn model" in result.output
    tables = load_artifact(tmp_path / "eval2" / "evaluation.h5")
    boxes = ["box_0000", "box_0002"]  # split_three(4, 1, 2, seed=0)
    per_box = [tables[f"summary_{b}"] for b in boxes]
    assert {f"{t}_{b}" for t in ("power", "bispectrum", "pdf") for b in boxes} <= set(tables)
    for key in ("power_score", "small_scale_score", "total_mass_ratio", "precision"):
        by_hand = (per_box[0][key] + per_box[1][key]) / 2
        assert torch.allclose(tables["summary_mean"][key], by_hand, rtol=1e-6), key
    assert tables["summary_mean"].meta["boxes"] == "box_0000.h5,box_0002.h5"
    assert all((figures / b / "slices.png").is_file() for b in boxes)


def test_seen_box_note_names_the_role() -> None:
    meta = {"kind": "fcn", "split": {"n_validation": 1, "n_test": 1, "seed": 0, "train": ["a.h5"],
                                     "validation": ["b.h5"], "test": ["c.h5"]}}  # fmt: skip
    assert "was a train box" in seen_box_note("a.h5", meta)
    assert "was a validation box" in seen_box_note("b.h5", meta) and "--n-test 1 --seed 0" in seen_box_note(
        "b.h5", meta
    )
    assert seen_box_note("c.h5", meta) is None and seen_box_note("a.h5", {"kind": "fcn"}) is None
    # with simulation seeds, a box of another suite that shares a file name is not flagged, a renamed one is
    meta["split"]["seeds"] = {"a.h5": 11, "b.h5": 12, "c.h5": 13}
    assert seen_box_note("a.h5", meta, box_seed=99) is None
    assert "was a validation box" in seen_box_note("x.h5", meta, box_seed=12)


def test_evaluate_box_compares_successor_and_dm2gal_where_both_apply(tmp_path: Path) -> None:
    from cosmoseg.paint.report import evaluate_box

    suite = _toy_suite(tmp_path)
    truth = registry_truth("galaxies.model", {}, seed=0)
    train, box = load_suite_box(suite / "box_0000.h5", truth, 0), load_suite_box(suite / "box_0001.h5", truth, 0)
    successor = Dm2GalFCN(**FCN_TINY).eval()
    net = Dm2Gal(input_size=29, **TINY).eval()
    report = evaluate_box(box, [train], successor=successor, per_voxel=net, threshold=1e8, hod_stage="")
    assert set(report.fields) == {"truth", "successor", "successor_mean", "dm2gal", "hod_paper"}
    occupied = from_log_mass(box.target) >= 1e8
    expected = predict_tiled_log_mass(successor, box)[occupied]
    rms = float(((expected - box.target[occupied]) ** 2).mean().sqrt())
    assert report.extra["rms_log_mstar_successor"] == pytest.approx(rms, rel=1e-5)
    assert report.extra["rms_log_mstar_dm2gal"] > 0
    assert "truth_redraw" not in report.fields

    # the truth's own galaxies as the "redraw": it paints the truth (up to the float32 log target), so every score
    # is at its ideal
    same = evaluate_box(box, [train], successor=None, per_voxel=None, threshold=1e8, hod_stage="",
                        redraw=box.galaxies)  # fmt: skip
    assert torch.allclose(same.fields["truth_redraw"], same.fields["truth"].double(), rtol=1e-5)
    ideal = same.scores["truth_redraw"]
    assert ideal.power_score == pytest.approx(0.0, abs=1e-5) and ideal.total_mass_ratio == pytest.approx(1.0)
    assert (ideal.precision, ideal.recall) == (1.0, 1.0)


def test_truth_redraws_are_other_realisations_of_the_same_haloes(tmp_path: Path) -> None:
    halos = toy_halos(torch.Generator().manual_seed(3), n=150)
    truth = registry_truth("galaxies.model", {}, seed=0)(halos, 1)
    first, again = (redraw_truth("galaxies.model", {}, seed=0)(halos, 1) for _ in range(2))
    second = redraw_truth("galaxies.model", {}, seed=0, draw=1)(halos, 1)
    assert torch.equal(first["log_mstar"], again["log_mstar"])  # a redraw is reproducible
    for other in (truth, second):
        assert not torch.equal(first["pos"], other["pos"]) or not torch.equal(first["log_mstar"], other["log_mstar"])
    # no redraw of a box takes the seed of another box's truth
    for index in range(4):
        other_truth = registry_truth("galaxies.model", {}, seed=0)(halos, index)
        assert not torch.equal(first["log_mstar"], other_truth["log_mstar"])
    with pytest.raises(ValidationError, match="redraw index"):
        redraw_truth("galaxies.model", {}, seed=0, draw=-1)


def predict_tiled_log_mass(model: Dm2GalFCN, box: PaintBox) -> torch.Tensor:
    from cosmoseg.paint.tiling import predict_tiled

    return model.mean_log_mstar(predict_tiled(model, box.inputs, tile=8)).float()


def test_bispectrum_deviations_and_pdf_distance_by_hand() -> None:
    from cosmoseg.data import Table
    from cosmoseg.paint.evaluation import bispectrum_deviations, pdf_distance

    bis = Table(columns={"k1": torch.tensor([1.0, 1.0, 2.0, 2.0]), "k2": torch.tensor([2.0, 2.0, 3.0, 3.0]),
                         "ratio_m": torch.tensor([1.1, 0.8, 1.0, 1.5])})  # fmt: skip
    assert bispectrum_deviations(bis, "m") == [pytest.approx(0.15), pytest.approx(0.25)]
    pdf = Table(columns={"count_truth": torch.tensor([1.0, 1.0, 2.0]), "count_m": torch.tensor([2.0, 0.0, 2.0]),
                         "count_empty": torch.zeros(3)})  # fmt: skip
    assert pdf_distance(pdf, "m") == pytest.approx(0.25)  # CDFs (0.25, 0.5, 1) and (0.5, 0.5, 1)
    assert pdf_distance(pdf, "empty") == 1.0


def test_host_mass_weights_by_hand() -> None:
    """host_mass: each occupied voxel weighs the inverse count of its bin of the heaviest halo within its periodic
    3³ (0.25 dex bins), normalised to a mean of 1; empty voxels weigh 0. Three galaxies next to a 10^12 halo and one
    next to a 10^14.1 halo across the periodic edge: weights 1/3 and 1 before normalising, 2/3 and 2 after."""
    n = 8
    dm = torch.full((n, n, n), 1e12)
    halo, mstar = torch.zeros(n, n, n), torch.zeros(n, n, n)
    halo[2, 2, 2], halo[0, 0, 0] = 1e12, 10**14.1
    for voxel in [(2, 2, 2), (3, 2, 2), (2, 1, 3), (7, 7, 1)]:
        mstar[voxel] = 1e10
    box = PaintBox("box_0000.h5", LENGTH, torch.stack([to_log_mass(dm), to_log_mass(halo)]), to_log_mass(mstar),
                   None, None)  # type: ignore[arg-type]  # fmt: skip
    (volume,) = _weight_volumes([box], TrainConfig(mass_weighting="host_mass", max_weight=0))
    expected = torch.zeros(n, n, n)
    expected[2, 2, 2] = expected[3, 2, 2] = expected[2, 1, 3] = 2 / 3
    expected[7, 7, 1] = 2.0
    torch.testing.assert_close(volume, expected)
    (capped,) = _weight_volumes([box], TrainConfig(mass_weighting="host_mass", max_weight=1.5))
    assert float(capped.max()) / float(capped[2, 2, 2]) == pytest.approx(1.5 / (2 / 3))


def test_box_seed_is_read_and_carried_by_the_split(tmp_path: Path) -> None:
    from cosmoseg.paint.data import read_box_seed
    from cosmoseg.paint.suite import Split

    halos = toy_halos(torch.Generator().manual_seed(0), n=10)
    save_artifact(tmp_path / "box_0000.h5", {"halos": halos}, attrs={"box_seed": 1234})
    save_artifact(tmp_path / "box_0001.h5", {"halos": halos})
    assert read_box_seed(tmp_path / "box_0000.h5") == 1234 and read_box_seed(tmp_path / "box_0001.h5") is None
    a, b, c = (dataclasses.replace(synthetic_box(i), seed=seed) for i, seed in enumerate((7, None, 9)))
    split = Split(train=[a], validation=[b], test=[c])
    assert split.seeds() == {a.name: 7, c.name: 9} and split.seeds("test") == {c.name: 9}


def test_recorded_split_fills_what_is_not_given() -> None:
    meta = {"split": {"n_validation": 2, "n_test": 3, "seed": 5}}
    assert recorded_split(meta, None, None, None) == (2, 3, 5)
    assert recorded_split(meta, 0, None, 7) == (0, 3, 7)
    assert recorded_split({}, None, 2, None) == (1, 2, 0)
