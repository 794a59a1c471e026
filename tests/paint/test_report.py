"""The held-out comparison (cosmoseg.paint.report): every method painted onto a test box and judged against its
truth, the successor next to dm2gal where both apply, and the truth's redraw as the ideal painter."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cosmoseg.paint.data import PaintBox, load_suite_box
from cosmoseg.paint.fields import from_log_mass
from cosmoseg.paint.network import Dm2Gal, Dm2GalFCN
from cosmoseg.paint.report import evaluate_box
from cosmoseg.paint.suite import registry_truth
from cosmoseg.paint.tiling import predict_tiled

from .helpers import FCN_TINY, TINY, toy_suite


def predict_tiled_log_mass(model: Dm2GalFCN, box: PaintBox) -> torch.Tensor:
    return model.mean_log_mstar(predict_tiled(model, box.inputs, tile=8)).float()


def test_evaluate_box_compares_successor_and_dm2gal_where_both_apply(tmp_path: Path) -> None:
    suite = toy_suite(tmp_path)
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
