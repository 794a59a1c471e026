"""Training and evaluating samplers on a suite of boxes, and the `cosmoseg galaxies` commands."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cosmoseg.cli import build_app
from cosmoseg.data import load_artifact, save_artifact
from cosmoseg.errors import ValidationError
from cosmoseg.galaxies._examples import toy_halos
from cosmoseg.galaxies.samplers.base import load_sampler
from cosmoseg.galaxies.training import (
    TRUTH_REDRAWN,
    TruthRedraw,
    card_split,
    evaluate_samplers,
    find_boxes,
    split_boxes,
    suite_rows,
    train_sampler,
    training_box_notes,
)

CONDITIONS = ["log_mass", "concentration"]
TARGETS = ["log_mstar", "color_gi"]


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("galaxy_suite")
    for i in range(3):
        save_artifact(folder / f"box_{i:04d}.h5", {"halos": toy_halos(torch.Generator().manual_seed(i), n=400)})
    return folder


def test_split_and_rows(suite: Path) -> None:
    paths = find_boxes(suite)
    train, val = split_boxes(paths, 1, seed=0)
    assert len(train) == 2 and len(val) == 1 and not set(train) & set(val)
    x, y = suite_rows(val, CONDITIONS, TARGETS, "fiducial", 0)
    assert x.shape == (400, 2) and y.shape == (400, 2)  # one central per halo
    with pytest.raises(ValidationError, match="n_validation"):
        split_boxes(paths, 3, seed=0)


def test_metrics_tell_a_right_conditional_from_a_scrambled_one(suite: Path) -> None:
    train, val = split_boxes(find_boxes(suite), 1, seed=0)
    good = train_sampler("gauss", train, CONDITIONS, TARGETS, hyper={"epochs": 40, "hidden": 32})
    x, y = suite_rows(val, CONDITIONS, TARGETS, "fiducial", 0)
    table = evaluate_samplers({"good": good, "again": good}, x, y, n_draws=50)
    assert table.meta["method_0"] == "good" and len(table) == 2
    for key in ("ks_log_mstar", "w1_color_gi", "c2st_auc", "cov68_log_mstar", "cov95_color_gi"):
        assert key in table
    assert 0.5 <= float(table["cov68_log_mstar"][0]) <= 0.85 and float(table["cov95_log_mstar"][0]) >= 0.85
    # the same sampler fed the haloes in a scrambled order: right marginals, wrong conditional
    shuffled = evaluate_samplers(
        {"good": good}, x[torch.randperm(len(x), generator=torch.Generator().manual_seed(1))], y
    )
    assert float(shuffled["c2st_auc"][0]) > float(table["c2st_auc"][0]) + 0.1


def test_cli_train_and_evaluate(suite: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    app = build_app()
    out = tmp_path / "gauss.pt"
    args = ["galaxies", "train", str(suite), "--method", "gauss", "--conditions", ",".join(CONDITIONS)]
    args += ["--targets", ",".join(TARGETS), "--hyper", "epochs=5", "--n-validation", "1", "--output", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    sampler = load_sampler(out)
    assert "c2st_auc" in sampler.card["metrics"]
    # the card's command is the one that ran, every option spelled out, and it makes the same sampler again
    command = sampler.card["command"]
    expected = ["cosmoseg", *args[:2], str(suite), "--method", "gauss", "--conditions", ",".join(CONDITIONS)]
    expected += ["--targets", ",".join(TARGETS), "--hyper", "epochs=5", "--variant", "fiducial", "--n-validation", "1"]
    expected += ["--validation-fraction", "0.2", "--min-log-mstar", "9.0", "--seed", "0", "--output", str(out)]
    assert command == shlex.join(expected)
    assert runner.invoke(app, shlex.split(command)[1:]).exit_code == 0
    x = 12.0 + torch.rand(20, len(CONDITIONS), generator=torch.Generator().manual_seed(0))
    draws = [s.sample(x, 2, generator=torch.Generator().manual_seed(1)) for s in (sampler, load_sampler(out))]
    assert torch.equal(*draws)
    result = runner.invoke(
        app,
        [
            "galaxies",
            "evaluate",
            str(suite),
            "--model",
            str(out),
            "--n-validation",
            "1",
            "--output",
            str(tmp_path / "eval"),
            "--n-draws",
            "20",
        ],
    )
    assert result.exit_code == 0, result.output
    scores = load_artifact(tmp_path / "eval" / "evaluation.h5")["scores"]
    assert "C2ST AUC" in result.output and len(scores) == 2  # the model and the floor (the truth redrawn)
    assert [scores.meta["method_0"], scores.meta["method_1"]] == ["truth redrawn", "gauss (gauss.pt)"]
    bad = runner.invoke(app, ["galaxies", "train", str(suite), "--method", "nope", "--output", str(tmp_path / "x.pt")])
    assert bad.exit_code == 1 and "unknown sampler method 'nope'" in bad.output


def test_cli_reverse_direction_learns_halo_given_galaxy(suite: Path, tmp_path: Path) -> None:
    """--reverse trains p(halo | galaxy) with the defaults swapped, and evaluate --reverse scores it."""
    runner = CliRunner()
    app = build_app()
    out = tmp_path / "flow-reverse.pt"
    args = ["galaxies", "train", str(suite), "--method", "flow", "--reverse", "--conditions", ",".join(TARGETS)]
    args += ["--targets", ",".join(CONDITIONS), "--hyper", "epochs=2", "--n-validation", "1", "--output", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    sampler = load_sampler(out)
    assert sampler.condition_names == list(TARGETS) and sampler.target_names == list(CONDITIONS)
    assert "--reverse" in sampler.card["command"] and "p(halo | galaxy)" in sampler.card["data"]
    evaluate = ["galaxies", "evaluate", str(suite), "--model", str(out), "--n-validation", "1", "--reverse"]
    result = runner.invoke(app, [*evaluate, "--n-draws", "10", "--output", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    assert f"KS {CONDITIONS[0]}" in result.output
    result = runner.invoke(app, [*evaluate, "--clustering", "--output", str(tmp_path / "eval2")])
    assert result.exit_code == 1 and "does not apply to --reverse" in result.output


def _evaluate(suite: Path, models: list[Path], out: Path, *extra: str):
    args = ["galaxies", "evaluate", str(suite), *(item for m in models for item in ("--model", str(m)))]
    args += ["--output", str(out), "--n-draws", "10", "--no-clustering", *extra]
    return CliRunner().invoke(build_app(), args)


@pytest.fixture(scope="module")
def gauss_model(suite: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gauss sampler trained with `galaxies train` (n-validation 1, seed 0: boxes 0000 and 0001 train)."""
    out = tmp_path_factory.mktemp("model") / "gauss.pt"
    args = ["galaxies", "train", str(suite), "--method", "gauss", "--conditions", ",".join(CONDITIONS)]
    args += ["--targets", ",".join(TARGETS), "--hyper", "epochs=5", "--n-validation", "1", "--output", str(out)]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    return out


def test_every_box_can_be_scored_but_not_trained_on(suite: Path, gauss_model: Path, tmp_path: Path) -> None:
    paths = find_boxes(suite)
    train, val = split_boxes(paths, 3, seed=0, allow_all=True)
    assert train == [] and val == paths
    result = _evaluate(suite, [gauss_model], tmp_path / "eval", "--n-validation", "3")
    assert result.exit_code == 0, result.output
    assert "scored boxes: ['box_0000.h5', 'box_0001.h5', 'box_0002.h5']" in result.output
    assert load_artifact(tmp_path / "eval" / "evaluation.h5")["scores"].meta["n_rows"] == 3 * 400
    args = ["galaxies", "train", str(suite), "--method", "gauss", "--conditions", ",".join(CONDITIONS)]
    args += ["--targets", ",".join(TARGETS), "--n-validation", "3", "--output", str(tmp_path / "x.pt")]
    refused = CliRunner().invoke(build_app(), args)
    assert refused.exit_code == 1
    assert "n_validation: 3 box(es) cannot give 3 validation" in refused.output
    assert "and still leave one to train on" in refused.output


def test_models_with_the_same_file_name_are_separate_rows(suite: Path, gauss_model: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere" / gauss_model.name
    other.parent.mkdir()
    other.write_bytes(gauss_model.read_bytes())
    result = _evaluate(suite, [gauss_model, other, other], tmp_path / "eval", "--no-truth-redrawn")
    assert result.exit_code == 0, result.output
    scores = load_artifact(tmp_path / "eval" / "evaluation.h5")["scores"]
    names = [scores.meta[f"method_{i}"] for i in range(len(scores))]
    assert names == [f"gauss ({gauss_model})", f"gauss ({other})", f"gauss ({other}) #2"]


def test_scoring_a_training_box_is_reported(suite: Path, gauss_model: Path, tmp_path: Path) -> None:
    card = load_sampler(gauss_model).card
    assert card["train_boxes"] == ["box_0000.h5", "box_0001.h5"] and card["validation_boxes"] == ["box_0002.h5"]
    held_out = _evaluate(suite, [gauss_model], tmp_path / "a", "--n-validation", "1", "--seed", "0")
    assert held_out.exit_code == 0 and "training box" not in held_out.output
    moved = _evaluate(suite, [gauss_model], tmp_path / "b", "--n-validation", "1", "--seed", "1")
    assert moved.exit_code == 0, moved.output
    assert "scored boxes: ['box_0000.h5']" in moved.output
    assert "note: box_0000.h5 scored here is a training box of gauss (gauss.pt)" in moved.output
    # an older card (the shipped flow's) records the split only in its data line: the suite folder decides
    old_card = {"data": f"{suite}: train ['box_0000.h5', 'box_0002.h5'], validate ['box_0001.h5']; truth: ..."}
    assert card_split(old_card) == {
        "suite": str(suite),
        "suite_fingerprint": "",
        "train_boxes": ["box_0000.h5", "box_0002.h5"],
        "validation_boxes": ["box_0001.h5"],
    }

    class Old:
        card = old_card

    boxes = find_boxes(suite)
    assert len(training_box_notes({"old": Old()}, suite, boxes)) == 1
    assert training_box_notes({"old": Old()}, tmp_path / "another_suite", boxes) == []
    # a card written elsewhere: its suite folder is not here, so the folder's name decides
    Old.card = {"data": "/elsewhere/" + old_card["data"].split("/")[-1]}
    assert len(training_box_notes({"old": Old()}, suite, boxes)) == 1
    assert training_box_notes({"old": Old()}, tmp_path / "another_suite", boxes) == []


def test_truth_redrawn_is_the_floor(suite: Path) -> None:
    _, val = split_boxes(find_boxes(suite), 1, seed=0)
    x, y = suite_rows(val, CONDITIONS, TARGETS, "fiducial", 0)
    floor = TruthRedraw(val, CONDITIONS, TARGETS, seed=0)
    draws = floor.sample(x, 3, generator=torch.Generator().manual_seed(4))
    assert draws.shape == (3, 400, 2) and not torch.equal(draws[0], y) and not torch.equal(draws[0], draws[1])
    # the truth is the draw with seed 0 + box index: the same model, so the same conditional
    table = evaluate_samplers({TRUTH_REDRAWN: floor}, x, y, n_draws=60)
    auc, err = float(table["c2st_auc"][0]), float(table["c2st_auc_err"][0])
    assert abs(auc - 0.5) < 3 * err
    assert 0.6 < float(table["cov68_log_mstar"][0]) < 0.76 and float(table["cov95_color_gi"][0]) > 0.9
    with pytest.raises(ValidationError, match="only for the haloes"):
        floor.sample(x[:10], 1)
