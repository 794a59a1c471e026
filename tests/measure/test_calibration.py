"""Coverage and PIT of calibrated, over-confident and under-confident posteriors."""

import math

import pytest
import torch

from cosmoseg.data import ParameterEstimate
from cosmoseg.measure.calibration import calibration, coverage, pit_histogram, pit_uniformity, pit_values
from cosmoseg.pipeline.context import RunContext

B = 4000


def estimate(width_factor: float, *, seed: int = 0, samples: int = 0) -> ParameterEstimate:
    """Truths scattered by 1 around the means; the posteriors claim a std of ``width_factor``."""
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn((B, 2), generator=g, dtype=torch.float64)
    truth = mean + torch.randn((B, 2), generator=g, dtype=torch.float64)
    std = torch.full((B, 2), width_factor, dtype=torch.float64)
    draws = None
    if samples:
        draws = mean[:, None] + std[:, None] * torch.randn((B, samples, 2), generator=g, dtype=torch.float64)
    return ParameterEstimate(names=("a", "b"), mean=mean, std=std, samples=draws, truth=truth)


def test_pit_values_by_hand() -> None:
    u = pit_values(torch.tensor([1.0, 0.0]), mean=torch.tensor([0.0, 0.0]), std=torch.tensor([1.0, 2.0]))
    assert u[0].tolist() == pytest.approx([0.5 * math.erfc(-1 / math.sqrt(2)), 0.5])
    # samples {1, 2, 3}: truth 2.5 has 2 below -> (2 + ½) / 4; truth 2 has 1 below and 1 equal -> (1 + ½ + ½) / 4
    samples = torch.tensor([[1.0], [2.0], [3.0]])
    assert float(pit_values(torch.tensor([2.5]), samples=samples)) == pytest.approx(0.625)
    assert float(pit_values(torch.tensor([2.0]), samples=samples)) == pytest.approx(0.5)


def test_coverage_by_hand() -> None:
    pit = torch.tensor([0.5, 0.3, 0.9, 0.99])  # |u - ½| = 0, 0.2, 0.4, 0.49
    result = coverage(pit, levels=(0.5, 0.9))
    assert result.coverage[:, 0].tolist() == pytest.approx([0.5, 0.75])  # |u - ½| <= 0.25 and <= 0.45
    assert result.err.tolist() == pytest.approx([math.sqrt(0.25 / 4), math.sqrt(0.09 / 4)])


def test_calibrated_posteriors_cover_their_nominal_levels_and_have_uniform_pit() -> None:
    result = calibration(estimate(1.0))
    cov = result.coverage
    assert (((cov.coverage - cov.levels[:, None]) / cov.err[:, None]).abs() < 4).all()
    assert (result.ks_pvalue > 1e-3).all()
    assert result.counts.sum(0).tolist() == [B, B]
    expected, sigma = B / 10, math.sqrt(B * 0.1 * 0.9)
    assert ((result.counts - expected).abs() < 4 * sigma).all()
    assert result.z_mean.abs().max() < 0.1 and (result.z_std - 1).abs().max() < 0.05


def test_over_confident_posteriors_under_cover_and_under_confident_ones_over_cover() -> None:
    narrow, wide = calibration(estimate(0.5)), calibration(estimate(2.0))
    i = list(narrow.coverage.levels.tolist()).index(0.68)
    err = float(narrow.coverage.err[i])
    # std claimed 0.5 for a true scatter of 1: the 68% interval holds P(|z| < 0.5 × 0.994) = 0.38
    assert float(narrow.coverage.coverage[i, 0]) == pytest.approx(math.erf(0.5 * 0.9945 / math.sqrt(2)), abs=4 * err)
    assert (narrow.coverage.coverage < narrow.coverage.levels[:, None]).all()
    assert (wide.coverage.coverage > wide.coverage.levels[:, None]).all()
    # PIT: U-shaped when too narrow, peaked when too wide
    assert (narrow.counts[[0, -1]].min() > 2 * narrow.counts[4:6].max()).item()
    assert (wide.counts[4:6].min() > 2 * wide.counts[[0, -1]].max()).item()
    assert (narrow.ks_pvalue < 1e-10).all() and (wide.ks_pvalue < 1e-10).all()
    assert (narrow.z_std > 1.8).all() and (wide.z_std < 0.6).all()


def test_sample_posteriors_agree_with_the_gaussian_ones() -> None:
    est = estimate(1.0, samples=200)
    from_samples = calibration(est)
    from_gaussian = calibration(est, use_samples=False)
    assert torch.allclose(from_samples.coverage.coverage, from_gaussian.coverage.coverage, atol=0.03)
    assert (from_samples.ks_pvalue > 1e-3).all()


def test_pit_uniformity_equals_scipy_kstest() -> None:
    stats = pytest.importorskip("scipy.stats")
    u = torch.rand((300, 3), generator=torch.Generator().manual_seed(1), dtype=torch.float64) ** 1.2
    statistic, pvalue = pit_uniformity(u)
    for j in range(3):
        ref = stats.kstest(u[:, j].numpy(), "uniform", method="exact")
        assert float(statistic[j]) == pytest.approx(ref.statistic, abs=1e-12)
        assert float(pvalue[j]) == pytest.approx(ref.pvalue, abs=1e-10)


def test_histogram_edges_and_the_last_bin() -> None:
    edges, counts = pit_histogram(torch.tensor([0.0, 0.05, 0.5, 1.0]), n_bins=4)
    assert edges.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert counts[:, 0].tolist() == [2.0, 0.0, 1.0, 1.0]


def test_calibration_needs_truth() -> None:
    est = ParameterEstimate(names=("a",), mean=torch.zeros(1), std=torch.ones(1))
    with pytest.raises(ValueError, match="truth"):
        calibration(est)


def test_the_stage_tables() -> None:
    from cosmoseg.measure.stages import CalibrationParams, CalibrationStage

    stage = CalibrationStage(CalibrationParams(levels=(0.5, 0.9), n_bins=5), RunContext(torch.device("cpu"), seed=1))
    out = stage.run(estimate=estimate(1.0))
    cov, pit, summary = out["coverage"], out["pit"], out["summary"]
    assert cov["parameter"].tolist() == [0, 0, 1, 1] and cov["level"].tolist() == [0.5, 0.9, 0.5, 0.9]
    assert cov.meta["parameter_1"] == "b" and cov.meta["source"] == "gaussian"
    assert len(pit) == 10 and pit["count"].sum().item() == 2 * B
    assert summary["ks_pvalue"].shape == (2,) and "z_std" in summary
