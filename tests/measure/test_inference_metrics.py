"""Metrics of parameter inference on a hand-computed example; their table and the figures."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from cosmoseg.data import ParameterEstimate, Table
from cosmoseg.measure import figures
from cosmoseg.measure.inference import METRIC_KEYS, inference_metrics, inference_table, paired_shift

NAMES = ("omega_m", "w0")
TRUTH = torch.tensor([[0.2, 0.0], [0.3, 0.0], [0.4, 0.0]], dtype=torch.float64)
MEAN = torch.tensor([[0.25, 0.1], [0.3, -0.1], [0.3, 0.0]], dtype=torch.float64)
STD = torch.tensor([[0.04, 0.1], [0.1, 0.1], [0.02, 0.1]], dtype=torch.float64)


def estimate(**changes: torch.Tensor | None) -> ParameterEstimate:
    fields = {"mean": MEAN, "std": STD, "truth": TRUTH} | changes
    return ParameterEstimate(names=NAMES, **fields)


def test_metrics_by_hand() -> None:
    m = inference_metrics(estimate())["omega_m"]
    # errors μ − θ = 0.05, 0, −0.1; z = 1.25, 0, −5
    assert m["rmse"] == pytest.approx(math.sqrt((0.05**2 + 0.1**2) / 3))
    assert m["relative_error"] == pytest.approx((0.05 / 0.2 + 0 + 0.1 / 0.4) / 3)
    assert m["r2"] == pytest.approx(1 - 0.0125 / 0.02)  # Σ err² = 0.0125, Σ (θ − 0.3)² = 0.02
    assert m["chi2"] == pytest.approx((1.25**2 + 0 + 25) / 3)  # uncut: the z = −5 outlier stays in
    assert m["outlier_fraction"] == pytest.approx(1 / 3)  # z² = 25 > 10
    assert m["coverage_68"] == pytest.approx(1 / 3)  # only |z| = 0 < 1
    assert m["coverage_95"] == pytest.approx(2 / 3)  # |z| = 1.25 and 0 < 1.96
    assert m["bias"] == pytest.approx(-0.05 / 3)
    assert list(m) == list(METRIC_KEYS)
    w0 = inference_metrics(estimate())["w0"]  # truths all 0: ε and R² undefined, the rest is fine
    assert math.isnan(w0["relative_error"]) and math.isnan(w0["r2"])
    assert w0["chi2"] == pytest.approx(2 / 3) and w0["coverage_68"] == pytest.approx(1 / 3)


def test_outlier_threshold() -> None:
    assert inference_metrics(estimate(), outlier_threshold=1.0)["omega_m"]["outlier_fraction"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="outlier_threshold"):
        inference_metrics(estimate(), outlier_threshold=0.0)


def test_coverage_from_samples_uses_their_central_intervals() -> None:
    # 39 samples per estimate, k of them below the truth: mid-rank u = (k + ½)/40
    below = torch.tensor([0.0, 2.0, 20.0])  # u = 0.0125 (outside 95%), 0.0625 (inside 95%, not 68%), 0.5125 (both)
    offsets = torch.arange(39, dtype=torch.float64)[None] - below[:, None] + 0.5  # (3, 39)
    samples = torch.stack([TRUTH[:, 0, None] + 0.01 * offsets, TRUTH[:, 1, None] + 0.01 * offsets], dim=2)
    m = inference_metrics(estimate(samples=samples))["omega_m"]
    assert m["coverage_68"] == pytest.approx(1 / 3) and m["coverage_95"] == pytest.approx(2 / 3)
    assert m["chi2"] == pytest.approx((1.25**2 + 25) / 3)  # the other metrics still come from mean and std
    gaussian = inference_metrics(estimate(samples=samples), use_samples=False)["w0"]
    assert gaussian["coverage_68"] == pytest.approx(1 / 3) and gaussian["coverage_95"] == pytest.approx(1.0)
    assert inference_table(estimate(samples=samples)).meta["source"] == "samples"


def test_calibrated_gaussians_give_the_ideal_values() -> None:
    g = torch.Generator().manual_seed(0)
    truth = 0.1 + 0.4 * torch.rand((20000, 1), generator=g, dtype=torch.float64)
    std = torch.full_like(truth, 0.02)
    mean = truth + std * torch.randn(truth.shape, generator=g, dtype=torch.float64)
    m = inference_metrics(ParameterEstimate(names=("omega_m",), mean=mean, std=std, truth=truth))["omega_m"]
    assert m["chi2"] == pytest.approx(1.0, abs=0.03) and m["rmse"] == pytest.approx(0.02, rel=0.02)
    assert m["coverage_68"] == pytest.approx(0.6827, abs=0.01) and m["coverage_95"] == pytest.approx(0.95, abs=0.005)
    assert m["outlier_fraction"] == pytest.approx(math.erfc(math.sqrt(5)), abs=0.001)
    assert m["r2"] == pytest.approx(1 - 0.02**2 / (0.4**2 / 12), abs=0.005) and abs(m["bias"]) < 0.001


def test_zero_std_and_missing_truth_are_refused_clearly() -> None:
    std = STD.clone()
    std[1, 0] = 0.0
    with pytest.raises(
        ValueError, match=r"std > 0 .*std is 0 for 'omega_m': 1 of 3 estimate\(s\), the first at estimate 1"
    ):
        inference_metrics(estimate(std=std))
    with pytest.raises(ValueError, match=r"truth"):
        inference_metrics(estimate(truth=None))
    with pytest.raises(ValueError, match=r"truth"):
        inference_table(estimate(truth=None))


def test_the_table_has_one_row_per_parameter_and_marks_undefined_metrics(tmp_path: Path) -> None:
    table = inference_table(estimate(), label="GNN")
    assert table.meta["kind"] == "inference_metrics" and table.meta["n_estimates"] == 3
    assert table.meta["parameter_0"] == "omega_m" and table.meta["parameter_1"] == "w0"
    assert table.meta["source"] == "gaussian" and table.meta["outlier_threshold"] == 10.0
    assert list(table.columns) == [
        "parameter",
        "rmse",
        "relative_error",
        "relative_error_resolved",
        "r2",
        "r2_resolved",
        "chi2",
        "outlier_fraction",
        "coverage_68",
        "coverage_95",
        "bias",
    ]
    assert table["r2_resolved"].tolist() == [True, False] and table["r2"][1] == 0.0
    assert float(table["chi2"][0]) == pytest.approx((1.25**2 + 25) / 3)
    assert figures.guess_kind(Table(columns=dict(table.columns))) == "inference_metrics"
    kind, fig = figures.figure_for_table(table)
    assert kind == "inference_metrics"
    cells = fig.axes[0].tables[0].get_celld()  # (row, column); row 0 the header, column 0 the metric names
    assert cells[(3, 0)].get_text().get_text() == "$R^2$"
    assert cells[(3, 1)].get_text().get_text() == "0.375" and cells[(3, 2)].get_text().get_text() == "—"
    assert cells[(0, 2)].get_text().get_text() == "$w_0$"
    figures.save_figure(fig, tmp_path / "metrics.png")
    single = inference_table(
        ParameterEstimate(names=("omega_m",), mean=MEAN[0, :1], std=STD[0, :1], truth=TRUTH[0, :1])
    )
    assert single.meta["n_estimates"] == 1 and "r2_resolved" in single.columns


def test_predicted_vs_true_figure(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(1)
    truth = torch.stack([0.1 + 0.4 * torch.rand(600, generator=g), 0.6 + 0.4 * torch.rand(600, generator=g)], 1)
    std = torch.tensor([0.02, 0.03]).expand(600, 2)
    est = ParameterEstimate(
        names=("omega_m", "sigma_8"), mean=truth + std * torch.randn((600, 2), generator=g), std=std, truth=truth
    )
    fig = figures.plot_predicted_vs_true(est, "omega_m", path=tmp_path / "pvt.png")
    ax = fig.axes[0]
    assert ax.get_xlabel() == r"true $\Omega_{\rm m}$" and ax.get_ylabel() == r"predicted $\Omega_{\rm m}$"
    legend = ax.get_legend()
    title = legend.get_title().get_text()
    assert "RMSE" in title and "R^2" in title and r"\chi^2" in title and r"\epsilon" in title
    assert any("400 of 600 shown" in t.get_text() for t in legend.get_texts())
    assert len(ax.containers) == 1 and ax.containers[0].has_yerr  # the 1σ error bars
    assert (tmp_path / "pvt.png").read_bytes()[:4] == b"\x89PNG"
    fig = figures.plot_predicted_vs_true(est, 1, max_points=None)
    assert fig.axes[0].get_xlabel() == r"true $\sigma_8$"
    assert any("N = 600" in t.get_text() for t in fig.axes[0].get_legend().get_texts())
    with pytest.raises(ValueError, match="not one of"):
        figures.plot_predicted_vs_true(est, "h")
    with pytest.raises(ValueError, match="truth"):
        figures.plot_predicted_vs_true(ParameterEstimate(names=("omega_m",), mean=truth[:, :1], std=std[:, :1]), 0)


def test_paired_shift_by_hand() -> None:
    reference = estimate()
    moved = estimate(
        mean=MEAN + torch.tensor([[0.02, 0.0], [-0.05, 0.0], [0.02, 0.0]], dtype=torch.float64), std=2 * STD
    )
    shift = paired_shift(moved, reference)["omega_m"]
    # Δ = 0.02, −0.05, 0.02; σ_ref = 0.04, 0.1, 0.02 -> Δ/σ_ref = 0.5, −0.5, 1.0
    assert shift["mean_shift"] == pytest.approx(-0.01 / 3)
    assert shift["rms_shift"] == pytest.approx(math.sqrt((0.02**2 * 2 + 0.05**2) / 3))
    assert shift["rms_shift_in_sigma"] == pytest.approx(math.sqrt((0.25 + 0.25 + 1.0) / 3))
    assert shift["within_1sigma"] == pytest.approx(2 / 3)
    assert shift["sigma_ratio"] == pytest.approx(2.0)
    assert paired_shift(reference, reference)["w0"]["rms_shift"] == 0.0


def test_paired_shift_refuses_estimates_of_other_objects() -> None:
    with pytest.raises(ValueError, match="different objects"):
        paired_shift(estimate(mean=MEAN[:2], std=STD[:2], truth=TRUTH[:2]), estimate())
    with pytest.raises(ValueError, match="different parameters"):
        paired_shift(ParameterEstimate(names=("a", "b"), mean=MEAN, std=STD), estimate())
    with pytest.raises(ValueError, match="std of 0"):
        paired_shift(estimate(), estimate(std=torch.zeros_like(STD)))


def test_predicted_vs_true_with_a_reference(tmp_path: Path) -> None:
    fig = figures.plot_predicted_vs_true(
        estimate(), "omega_m", reference=estimate(mean=TRUTH), reference_label="N-body"
    )
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert any(label.startswith("N-body") and "0.00%" in label for label in labels)
    with pytest.raises(ValueError, match="same parameters of the same objects"):
        figures.plot_predicted_vs_true(
            estimate(), "omega_m", reference=estimate(mean=MEAN[:2], std=STD[:2], truth=TRUTH[:2])
        )
