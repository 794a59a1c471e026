"""cosmoseg paint evaluate: the truth is the box's whatever the seed, the tables' columns and units, the PDF figure."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cosmoseg.cli import build_app
from cosmoseg.data import Box, Particles, load_artifact, save_artifact
from cosmoseg.galaxies.sampler_stage import toy_halos
from cosmoseg.paint.models import save_paint_model
from cosmoseg.paint.network import Dm2GalFCN

N_GRID = 16
FCN_TINY = {"local": 4, "local_layers": 1, "context": 2, "context_layers": 2, "pool": 2, "hidden": 8}


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Four toy boxes of 16^3 particles (100 Mpc/h) and an untrained successor at their voxel size."""
    root = tmp_path_factory.mktemp("paint_report")
    length = 0.0
    for i in range(4):
        g = torch.Generator().manual_seed(100 + i)
        halos = toy_halos(g, n=150)
        box = halos.box
        length = box.length
        cell = box.length / N_GRID
        axis = (torch.arange(N_GRID, dtype=torch.float64) + 0.5) * cell
        grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
        pos = (grid + 0.3 * cell * torch.randn(grid.shape, generator=g, dtype=torch.float64)) % box.length
        particles = Particles(pos=pos.float(), vel=torch.zeros_like(pos).float(), ids=torch.arange(N_GRID**3),
                              mass=1e12, box=Box(length=box.length), n_grid=N_GRID)  # fmt: skip
        save_artifact(root / "suite" / f"box_{i:04d}.h5", {"particles": particles, "halos": halos})
    torch.manual_seed(0)
    model = Dm2GalFCN(**FCN_TINY)
    with torch.no_grad():  # stellar masses around 10^10 (an untrained head paints ~1 Msun/h)
        model.head.bias[1 + model.components : 1 + 2 * model.components] = 10.0
    path = save_paint_model(root / "fcn.pt", model.eval(), voxel=length / N_GRID, threshold=1e8, step=1, card={})
    return root / "suite", path


def _evaluate(suite: tuple[Path, Path], out: Path, *options: str) -> dict:
    folder, model = suite
    args = ["paint", "evaluate", str(folder), "--model", str(model), "--hod-stage", "", "--output", str(out)]
    result = CliRunner().invoke(build_app(), [*args, *options])
    assert result.exit_code == 0, result.output
    return load_artifact(out / "evaluation.h5")


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


def test_the_pdf_figure_has_log_axes(suite: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counts and their ratio to the truth on log axes: a factor of 3 too few shows as far from 1 as 3 too many."""
    import cosmoseg.paint.figures as figures

    drawn = {}

    def keep(fig: object, path: Path, **_: object) -> Path:
        drawn[Path(path).name] = fig
        return Path(path)

    monkeypatch.setattr(figures, "save_figure", keep)
    folder, model = suite
    args = ["paint", "evaluate", str(folder), "--model", str(model), "--hod-stage", "", "--no-redraw"]
    args += ["--output", str(tmp_path / "f"), "--figures", str(tmp_path / "figs")]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    counts, ratio = drawn["pdf.png"].axes[:2]
    assert counts.get_yscale() == "log" and ratio.get_yscale() == "log"
    assert ratio.get_ylabel() == "ratio to truth"


def test_docs_make_every_per_voxel_model_file_before_using_it() -> None:
    """runs/paint/v15dm/dm2gal.pt is not shipped: the page gives the exact command that makes it (--output PATH)
    before the first command that reads it, and so for every --per-voxel file."""
    import re

    text = (Path(__file__).parents[2] / "docs" / "paint.md").read_text()
    flat = " ".join(text.split())
    used = set(re.findall(r"--per-voxel (runs/\S+?\.pt)", flat))
    assert "runs/paint/v15dm/dm2gal.pt" in used
    for path in used:
        made = flat.find(f"--output {path}")
        assert made >= 0, f"docs/paint.md never says how to make {path}"
        assert made < flat.find(f"--per-voxel {path}"), f"docs/paint.md uses {path} before saying how to make it"


def test_evaluate_warns_about_another_cosmology_and_refuses_another_resolution(
    suite: tuple[Path, Path], tmp_path: Path
) -> None:
    from cosmoseg.data import Cosmology
    from cosmoseg.paint.models import load_paint_model

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
