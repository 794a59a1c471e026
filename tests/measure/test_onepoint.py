"""One-point PDFs and smoothing against analytic densities and variances."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cosmoseg import Cosmology
from cosmoseg.measure.onepoint import field_pdf, smooth_field, smoothed_variance_on_grid, window
from cosmoseg.sim import gaussian_random_field

EH = Cosmology(power_backend="eisenstein-hu")


def _normal(x: torch.Tensor, mean: float, var: float) -> torch.Tensor:
    return torch.exp(-0.5 * (x - mean) ** 2 / var) / math.sqrt(2 * math.pi * var)


def _chi2_per_bin(pdf, expected: torch.Tensor) -> float:
    """χ² / bins of a PDF against the expected density integrated over each bin (Poisson variance)."""
    n = pdf.n_in_range
    width = pdf.edges[1:] - pdf.edges[:-1]
    counts_expected = expected * width * n
    keep = counts_expected > 5
    chi2 = ((pdf.counts - counts_expected) ** 2 / counts_expected)[keep]
    return float(chi2.sum()) / int(keep.sum())


def test_a_gaussian_field_has_the_normal_pdf_of_its_variance() -> None:
    g = torch.randn((32, 32, 32), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    pdf = field_pdf(2.0 + 0.7 * g, 100.0, bins=40, value_range=(2.0 - 2.8, 2.0 + 2.8))
    # compare with the normal density of the measured mean and variance, integrated over each bin
    x = torch.linspace(0, 1, 21, dtype=torch.float64)
    lo, hi = pdf.edges[:-1, None], pdf.edges[1:, None]
    fine = lo + (hi - lo) * x
    expected = _normal(fine, pdf.mean, pdf.variance).mean(dim=1)  # bin average (trapezoid-like, fine grid)
    assert _chi2_per_bin(pdf, expected) < 1.5
    assert pdf.variance == pytest.approx(float((0.7 * g).var(unbiased=False)), rel=1e-12)
    assert pdf.n_below + pdf.n_above + pdf.n_in_range == 32**3


def test_smoothed_variance_of_a_fixed_amplitude_field_equals_the_grid_sum_of_p_w2() -> None:
    n, length = 32, 200.0
    delta = gaussian_random_field(
        EH, n=n, length=length, generator=torch.Generator().manual_seed(2), fixed_amplitude=True, dtype=torch.float64
    )
    for radius, kernel in ((10.0, "tophat"), (8.0, "gaussian"), (0.0, "tophat")):
        smoothed = smooth_field(delta, length, radius, kernel)
        expected = smoothed_variance_on_grid(EH.linear_power, n, length, radius, kernel)
        assert float(smoothed.var(unbiased=False)) == pytest.approx(expected, rel=1e-6), (radius, kernel)
        assert field_pdf(delta, length, smoothing_radius=radius, kernel=kernel).variance == pytest.approx(
            expected, rel=1e-6
        )


def test_the_grid_variance_approaches_the_continuous_integral() -> None:
    # a Gaussian window of 15 Mpc/h kills every mode beyond the Nyquist frequency of a 64^3, 500 Mpc/h grid
    n, length, radius = 64, 500.0, 15.0
    on_grid = smoothed_variance_on_grid(EH.linear_power, n, length, radius, "gaussian")
    k = np.geomspace(2 * math.pi / length / 2, 10.0, 4000)
    integrand = k**3 * EH.linear_power(k) * np.exp(-((k * radius) ** 2)) / (2 * math.pi**2)
    continuous = np.trapezoid(integrand, np.log(k))
    assert on_grid == pytest.approx(continuous, rel=0.03)


def test_smoothing_a_plane_wave_multiplies_it_by_the_window() -> None:
    n, length, radius = 16, 80.0, 6.0
    k0 = 2 * math.pi * 2 / length
    x = ((torch.arange(n, dtype=torch.float64) + 0.5) * length / n).view(n, 1, 1).expand(n, n, n)
    wave = 3.0 + torch.cos(k0 * x)
    for kernel in ("tophat", "gaussian"):
        w = float(window(torch.tensor(k0, dtype=torch.float64), radius, kernel))
        assert torch.allclose(smooth_field(wave, length, radius, kernel), 3.0 + w * torch.cos(k0 * x), atol=1e-12)
    assert float(window(torch.tensor(0.0), 5.0)) == 1.0


def test_the_pdf_of_the_log_of_a_lognormal_field_with_zeros() -> None:
    sigma = 0.5
    g = sigma * torch.randn((32, 32, 32), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    field = torch.exp(g - sigma**2 / 2)
    field[0, :, :] = 0.0  # 1024 empty voxels, 32 negative ones
    field[1, 0, :] = -1.0
    pdf = field_pdf(field, 50.0, log=True, bins=30)
    assert pdf.n_nonpositive == 32 * 32 + 32
    assert pdf.n_in_range == 32**3 - pdf.n_nonpositive
    s = sigma / math.log(10)
    m = -(sigma**2) / 2 / math.log(10)
    x = torch.linspace(0, 1, 21, dtype=torch.float64)
    lo, hi = pdf.edges[:-1, None], pdf.edges[1:, None]
    expected = _normal(lo + (hi - lo) * x, m, s * s).mean(dim=1)
    assert _chi2_per_bin(pdf, expected) < 1.5
    positive = field_pdf(field, 50.0, positive_only=True, bins=30)
    assert positive.n_in_range == pdf.n_in_range and float(positive.edges[0]) > 0


def test_normalisation_counts_and_errors() -> None:
    values = torch.tensor([0.1, 0.2, 0.2, 0.6, 0.9, 1.0, 1.5, -0.5], dtype=torch.float64)
    cube = torch.zeros(8, dtype=torch.float64)
    cube[:] = values
    pdf = field_pdf(cube.view(2, 2, 2), 1.0, bins=[0.0, 0.5, 1.0])
    assert pdf.counts.tolist() == [3.0, 3.0]  # 1.0 falls in the closed last bin
    assert (pdf.n_below, pdf.n_above, pdf.n_in_range, pdf.n_nonpositive) == (1, 1, 6, 1)
    assert torch.allclose(pdf.pdf, torch.tensor([3 / (6 * 0.5), 3 / (6 * 0.5)], dtype=torch.float64))
    assert torch.allclose(pdf.pdf_err, math.sqrt(3) / (6 * 0.5) * torch.ones(2, dtype=torch.float64))
    auto = field_pdf(cube.view(2, 2, 2), 1.0, bins=7)
    assert float((auto.pdf * (auto.edges[1:] - auto.edges[:-1])).sum()) == pytest.approx(1.0, rel=1e-12)
    assert auto.n_in_range == 8 and float(auto.counts.sum()) == 8


def test_bad_inputs() -> None:
    cube = torch.rand((4, 4, 4), dtype=torch.float64)
    with pytest.raises(ValueError, match="cubic"):
        field_pdf(torch.zeros((4, 4, 5)), 1.0)
    with pytest.raises(ValueError, match="floating point"):
        field_pdf(torch.zeros((4, 4, 4), dtype=torch.int64), 1.0)
    bad = cube.clone()
    bad[0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="non-finite"):
        field_pdf(bad, 1.0)
    with pytest.raises(ValueError, match="radius"):
        field_pdf(cube, 1.0, smoothing_radius=-1.0)
    with pytest.raises(ValueError, match="kernel"):
        field_pdf(cube, 1.0, smoothing_radius=1.0, kernel="box")
    with pytest.raises(ValueError, match="length"):
        field_pdf(cube, 0.0, smoothing_radius=1.0)
    with pytest.raises(ValueError, match="no positive"):
        field_pdf(-cube, 1.0, log=True)
    with pytest.raises(ValueError, match="increasing"):
        field_pdf(cube, 1.0, bins=[0.0, 0.5, 0.5])
    with pytest.raises(ValueError, match="bins"):
        field_pdf(cube, 1.0, bins=0)
    with pytest.raises(ValueError, match="range"):
        field_pdf(cube, 1.0, value_range=(1.0, 0.0))


def test_the_pdf_stage_reports_log_pdf_and_empty_voxels() -> None:
    from cosmoseg import Field
    from cosmoseg.measure.stages import FieldPdfParams, FieldPdfStage
    from cosmoseg.pipeline.context import RunContext
    from cosmoseg.testing import toy_box

    values = torch.zeros((8, 8, 8), dtype=torch.float64)
    values[:4] = 10.0 ** torch.linspace(8, 11, 256, dtype=torch.float64).view(4, 8, 8)
    field = Field.scalar(values, box=toy_box(), name="mstar", units="Msun/h")
    ctx = RunContext(device=torch.device("cpu"), seed=0, stage_id="pdf")
    table = FieldPdfStage(FieldPdfParams(log=True, n_bins=6, value_range=(8.0, 11.0)), ctx).run(field=field)["pdf"]
    assert table["counts"].tolist() == [43, 42, 43, 42, 43, 43]  # 256 values equally spaced in log10
    assert table.meta["n_nonpositive"] == 256 and table.meta["n_in_range"] == 256
    assert table.units["bin_mid"] == "log10 Msun/h"
    assert float((table["pdf"] * (table["bin_high"] - table["bin_low"])).sum()) == pytest.approx(1.0)


def test_the_stage_offers_the_kernels_of_the_library() -> None:
    from typing import get_args, get_type_hints

    from cosmoseg.measure.onepoint import KERNELS
    from cosmoseg.measure.stages import FieldPdfParams

    assert get_args(get_type_hints(FieldPdfParams)["kernel"]) == KERNELS
