"""The ``cosmoseg paint`` commands (cosmoseg.paint.commands): train and evaluate on toy suites, the model card's
command that reruns the training, the split and seeds evaluate reuses, its tables and warnings, its errors."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cosmoseg.cli import build_app
from cosmoseg.data import Box, Cosmology, Particles, load_artifact, save_artifact
from cosmoseg.nn import read_checkpoint
from cosmoseg.paint.models import load_paint_model, save_paint_model
from cosmoseg.paint.suite import load_split, registry_truth

from .helpers import successor_file, toy_halos, toy_suite

N_GRID = 16
ARCH = ["--arch", "local=4", "--arch", "local_layers=1", "--arch", "context=2", "--arch", "context_layers=2",
        "--arch", "pool=2", "--arch", "hidden=8"]  # fmt: skip


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Four toy boxes of 16^3 particles (100 Mpc/h) and an untrained successor at their voxel size."""
    root = tmp_path_factory.mktemp("paint_commands")
    folder = toy_suite(root / "suite", n_grid=N_GRID)
    return folder, successor_file(root / "fcn.pt", 100.0 / N_GRID)


def _evaluate(suite: tuple[Path, Path], out: Path, *options: str) -> dict:
    folder, model = suite
    args = ["paint", "evaluate", str(folder), "--model", str(model), "--hod-stage", "", "--output", str(out)]
    result = CliRunner().invoke(build_app(), [*args, *options])
    assert result.exit_code == 0, result.output
    return load_artifact(out / "evaluation.h5")


def test_commands_train_and_evaluate(tmp_path: Path) -> None:
    suite = toy_suite(tmp_path / "suite")
    runner = CliRunner()
    app = build_app()
    out = tmp_path / "fcn.pt"
    args = ["paint", "train", str(suite), *ARCH, "--steps", "4", "--tile", "8", "--eval-every", "2"]
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
    boxes = ["box_0000", "box_0002"]  # split_suite(4, 1, 2, seed=0)
    per_box = [tables[f"summary_{b}"] for b in boxes]
    assert {f"{t}_{b}" for t in ("power", "bispectrum", "pdf") for b in boxes} <= set(tables)
    for key in ("power_score", "small_scale_score", "total_mass_ratio", "precision"):
        by_hand = (per_box[0][key] + per_box[1][key]) / 2
        assert torch.allclose(tables["summary_mean"][key], by_hand, rtol=1e-6), key
    assert tables["summary_mean"].meta["boxes"] == "box_0000.h5,box_0002.h5"
    assert all((figures / b / "slices.png").is_file() for b in boxes)


def test_the_cards_command_reruns_the_training(tmp_path: Path) -> None:
    """The card records the command as it was parsed, every option with its value: run again, it trains the same
    weights into the same file."""
    suite = toy_suite(tmp_path / "suite", n_boxes=3, n_grid=8)
    out = tmp_path / "fcn.pt"
    args = ["paint", "train", str(suite), *ARCH, "--steps", "2", "--tile", "4", "--eval-every", "2", "--batch", "1"]
    args += ["--selection-draws", "1", "--no-cosine", "--galaxy-param", "variant=moster13", "--output", str(out)]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    first = read_checkpoint(out)
    command = first["metadata"]["card"]["command"]
    words = shlex.split(command)
    assert words[:4] == ["cosmoseg", "paint", "train", str(suite)]
    for option in ("--no-cosine", "--select-on-draws", "--kind fcn", "--grid 0", "--seed 0", "--n-test 1",
                   "--galaxy-param variant=moster13", "--arch pool=2", f"--output {out}"):  # fmt: skip
        assert f" {option}" in command, option
    out.unlink()
    again = CliRunner().invoke(build_app(), words[1:])
    assert again.exit_code == 0, again.output
    second = read_checkpoint(out)
    assert second["metadata"]["card"]["command"] == command
    assert first["model"].keys() == second["model"].keys()
    assert all(torch.equal(first["model"][key], second["model"][key]) for key in first["model"])


def test_errors_are_one_problem_per_line(tmp_path: Path) -> None:
    suite = toy_suite(tmp_path / "suite", n_boxes=3, n_grid=8)
    args = ["paint", "train", str(suite), "--galaxy-param", "variant=nope", "--galaxy-param", "bogus=1"]
    result = CliRunner().invoke(build_app(), [*args, "--output", str(tmp_path / "x.pt")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("error: ") and len(lines) == 3, result.output
    assert any("'bogus'" in line for line in lines[1:]) and any("'variant'" in line for line in lines[1:])
    result = CliRunner().invoke(build_app(), ["paint", "evaluate", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and result.output.startswith("error: ") and "no such suite folder" in result.output


def test_the_train_command_records_the_particle_mass_and_cosmology(tmp_path: Path) -> None:
    n_grid, cosmology = 8, Cosmology(sigma_8=0.75)
    for i in range(3):
        g = torch.Generator().manual_seed(100 + i)
        halos = toy_halos(g, n=60)
        box = Box(length=halos.box.length, cosmology=cosmology)
        halos = type(halos)(columns=halos.columns, box=box)
        cell = box.length / n_grid
        axis = (torch.arange(n_grid, dtype=torch.float64) + 0.5) * cell
        grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
        particles = Particles(pos=grid.float(), vel=torch.zeros_like(grid).float(), ids=torch.arange(n_grid**3),
                              mass=3e13, box=box, n_grid=n_grid)  # fmt: skip
        save_artifact(tmp_path / "suite" / f"box_{i:04d}.h5", {"particles": particles, "halos": halos})
    arch = [f"--arch={a}" for a in ("local=2", "local_layers=1", "context=2", "context_layers=1", "pool=2", "hidden=4")]
    out = tmp_path / "fcn.pt"
    args = ["paint", "train", str(tmp_path / "suite"), *arch, "--steps", "2", "--tile", "4", "--eval-every", "2"]
    result = CliRunner().invoke(build_app(), [*args, "--batch", "1", "--selection-draws", "1", "--output", str(out)])
    assert result.exit_code == 0, result.output
    _, meta = load_paint_model(out)
    assert meta["particle_mass"] == 3e13 and meta["cosmology"]["sigma_8"] == 0.75


def test_the_seed_picks_the_split_and_the_draws_not_the_truth(suite: tuple[Path, Path], tmp_path: Path) -> None:
    """Three test boxes of four with seeds 0 and 1: the boxes both test keep their truth (its P(k) and PDF)."""
    options = ("--n-validation", "0", "--n-test", "3", "--no-redraw")
    first = _evaluate(suite, tmp_path / "a", *options, "--seed", "0")
    second = _evaluate(suite, tmp_path / "b", *options, "--seed", "1")
    common = {k.removeprefix("pdf_") for k in first if k.startswith("pdf_")} & {
        k.removeprefix("pdf_") for k in second if k.startswith("pdf_")
    }
    assert common
    for box in common:
        assert torch.equal(first[f"pdf_{box}"]["count_truth"], second[f"pdf_{box}"]["count_truth"])
        assert torch.equal(first[f"power_{box}"]["power_truth"], second[f"power_{box}"]["power_truth"])
    other = _evaluate(suite, tmp_path / "c", *options, "--seed", "0", "--truth-seed", "5")
    box = sorted(common)[0]
    assert not torch.equal(first[f"power_{box}"]["power_truth"], other[f"power_{box}"]["power_truth"])


def test_each_box_summary_has_the_columns_of_the_mean_and_tables_have_units(
    suite: tuple[Path, Path], tmp_path: Path
) -> None:
    tables = _evaluate(suite, tmp_path / "e", "--n-validation", "1", "--n-test", "2", "--no-redraw")
    boxes = sorted(k.removeprefix("summary_") for k in tables if k.startswith("summary_") and k != "summary_mean")
    mean = tables["summary_mean"]
    for key in ("bispectrum_0", "bispectrum_1", "pdf_ks", "power_score", "total_mass_ratio"):
        per_box = [tables[f"summary_{b}"][key] for b in boxes]
        torch.testing.assert_close(mean[key], (per_box[0] + per_box[1]) / 2, rtol=1e-9, atol=1e-12)
    assert list(tables[f"summary_{boxes[0]}"].columns) == list(mean.columns)
    # the paper "HOD" keeps the true positions: its precision / recall do not apply (the project's missing values)
    for summary in (mean, tables[f"summary_{boxes[0]}"]):
        names = [summary.meta[f"method_{i}"] for i in summary["method"].tolist()]
        hod = names.index("hod_paper")
        assert not bool(summary["precision_resolved"][hod]) and float(summary["precision"][hod]) == 0.0
        assert bool(summary["recall_resolved"][names.index("successor")])
        assert "power_score_resolved" not in summary and "MISSING_FILL" in summary.meta["missing"]
    power, bis, pdf = (tables[f"{t}_{boxes[0]}"] for t in ("power", "bispectrum", "pdf"))
    assert power.units["k"] == "h/Mpc" and power.units["power_truth"] == "(Mpc/h)^3"
    assert power.units["power_successor"] == "(Mpc/h)^3" and power.units["ratio_successor"] == ""
    assert bis.units["k1"] == bis.units["k2"] == "h/Mpc" and bis.units["theta"] == "rad"
    assert bis.units["bispectrum_truth"] == bis.units["bispectrum_successor"] == "(Mpc/h)^6"
    assert pdf.units["log_mstar"] == "log10 Msun/h" and pdf.units["count_truth"] == "voxels"


def test_evaluate_warns_about_another_cosmology_and_refuses_another_resolution(
    suite: tuple[Path, Path], tmp_path: Path
) -> None:
    folder, shipped = suite
    model, meta = load_paint_model(shipped)
    args = ["paint", "evaluate", str(folder), "--hod-stage", "", "--no-redraw", "--output", str(tmp_path / "o")]
    other = save_paint_model(tmp_path / "sigma.pt", model, voxel=meta["voxel"], threshold=1e8, step=1, card={},
                             particle_mass=1e12, cosmology=Cosmology(sigma_8=0.7))  # fmt: skip
    result = CliRunner().invoke(build_app(), [*args, "--model", str(other)])
    assert result.exit_code == 0, result.output
    assert "fcn: warning: cosmology differs from the training runs': sigma_8 0.8102 (trained 0.7)" in result.output
    coarse = save_paint_model(tmp_path / "coarse.pt", model, voxel=meta["voxel"], threshold=1e8, step=1, card={},
                              particle_mass=8e12, cosmology=Cosmology())  # fmt: skip
    result = CliRunner().invoke(build_app(), [*args, "--model", str(coarse)])
    assert result.exit_code == 1 and "8 times the mass" not in result.output
    assert "0.125 times the mass at equal Omega_m" in " ".join(result.output.split())


def test_docs_make_every_per_voxel_model_file_before_using_it() -> None:
    """runs/paint/v15dm/dm2gal.pt is not shipped: the page gives the exact command that makes it (--output PATH)
    before the first command that reads it, and so for every --per-voxel file."""
    text = (Path(__file__).parents[2] / "docs" / "paint.md").read_text()
    flat = " ".join(text.split())
    used = set(re.findall(r"--per-voxel (runs/\S+?\.pt)", flat))
    assert "runs/paint/v15dm/dm2gal.pt" in used
    for path in used:
        made = flat.find(f"--output {path}")
        assert made >= 0, f"docs/paint.md never says how to make {path}"
        assert made < flat.find(f"--per-voxel {path}"), f"docs/paint.md uses {path} before saying how to make it"
