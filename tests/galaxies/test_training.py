"""Training and evaluating samplers on a suite of boxes, and the `cosmoseg galaxies` commands."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cosmoseg.cli import build_app
from cosmoseg.data import load_artifact, save_artifact
from cosmoseg.errors import ValidationError
from cosmoseg.galaxies.sampler_stage import toy_halos
from cosmoseg.galaxies.samplers.base import load_sampler
from cosmoseg.galaxies.training import evaluate_samplers, find_boxes, split_boxes, suite_rows, train_sampler

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
    assert "c2st_auc" in sampler.card["metrics"] and "galaxies train" in sampler.card["command"]
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
    assert "C2ST AUC" in result.output and len(load_artifact(tmp_path / "eval" / "evaluation.h5")["scores"]) == 1
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
