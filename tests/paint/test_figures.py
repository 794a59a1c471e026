"""Figures of the held-out comparison (cosmoseg.paint.figures): one file per figure, the PDF on log axes."""

from __future__ import annotations

from pathlib import Path

import pytest

import cosmoseg.paint.figures as figures
from cosmoseg.paint.data import load_suite_box
from cosmoseg.paint.network import Dm2GalFCN
from cosmoseg.paint.report import PaintReport, evaluate_box
from cosmoseg.paint.suite import registry_truth

from .helpers import FCN_TINY, toy_suite


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> PaintReport:
    suite = toy_suite(tmp_path_factory.mktemp("paint_figures"), n_boxes=2)
    truth = registry_truth("galaxies.model", {}, seed=0)
    train, box = (load_suite_box(suite / f"box_{i:04d}.h5", truth, 0) for i in range(2))
    successor = Dm2GalFCN(**FCN_TINY).eval()
    return evaluate_box(box, [train], successor=successor, per_voxel=None, threshold=1e8, hod_stage="")


def test_every_figure_is_written(report: PaintReport, tmp_path: Path) -> None:
    paths = figures.write_paint_figures(report, tmp_path / "figs")
    bis = report.tables["bispectrum"]
    triangles = len(set(zip(bis["k1"].tolist(), bis["k2"].tolist(), strict=True)))
    expected = ["slices.png", "power.png", *(f"bispectrum_{i}.png" for i in range(triangles)), "pdf.png"]
    assert [p.name for p in paths] == expected and all(p.is_file() for p in paths)


def test_the_pdf_figure_has_log_axes(report: PaintReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counts and their ratio to the truth on log axes: a factor of 3 too few shows as far from 1 as 3 too many."""
    drawn = {}

    def keep(fig: object, path: Path, **_: object) -> Path:
        drawn[Path(path).name] = fig
        return Path(path)

    monkeypatch.setattr(figures, "save_figure", keep)
    figures.write_paint_figures(report, tmp_path / "figs")
    counts, ratio = drawn["pdf.png"].axes[:2]
    assert counts.get_yscale() == "log" and ratio.get_yscale() == "log"
    assert ratio.get_ylabel() == "ratio to truth"
