"""The large-scale bias against the linear field (cosmoseg.measure.bias)."""

from __future__ import annotations

import math

import pytest
import torch

from cosmoseg.errors import ValidationError
from cosmoseg.measure.bias import bias_from_modes, linear_bias
from cosmoseg.mesh.fourier import rfft_k_magnitude

LENGTH = 100.0
N_GRID = 32


def _smooth_gaussian_field(generator: torch.Generator, n: int = N_GRID, smooth: float = 8.0) -> torch.Tensor:
    """A Gaussian field (n, n, n) smoothed on ``smooth`` Mpc/h, std 0.1 (so 1 + 2 delta > 0 everywhere)."""
    window = torch.exp(-0.5 * (rfft_k_magnitude(n, LENGTH, dtype=torch.float64) * smooth) ** 2)
    white = torch.randn((n, n, n), generator=generator, dtype=torch.float64)
    delta = torch.fft.irfftn(torch.fft.rfftn(white) * window, s=(n, n, n))
    return 0.1 * delta / delta.std()


def test_a_scaled_field_has_its_scale_as_bias_with_no_error() -> None:
    modes = torch.fft.rfftn(_smooth_gaussian_field(torch.Generator().manual_seed(1)))
    est = bias_from_modes(1.7 * modes, modes, LENGTH, k_max=0.3)
    assert est.bias == pytest.approx(1.7, rel=1e-12) and est.error == pytest.approx(0.0, abs=1e-12)
    # every mode 0 < |k| < k_max of the full complex grid counts once: 4/3 pi (k_max / k_f)^3 of them, roughly
    k_f = 2 * math.pi / LENGTH
    assert est.n_modes == pytest.approx(4 / 3 * math.pi * (0.3 / k_f) ** 3, rel=0.1)


def test_the_bias_of_a_poisson_sampled_field_is_recovered() -> None:
    gen = torch.Generator().manual_seed(3)
    delta = _smooth_gaussian_field(gen)
    n = delta.shape[0]
    for b in (0.5, 2.0):
        counts = torch.poisson(4.0 * (1.0 + b * delta), generator=gen).long().reshape(-1)
        cells = torch.repeat_interleave(torch.arange(n**3), counts)
        ijk = torch.stack([cells // n**2, (cells // n) % n, cells % n], 1).double()
        pos = (ijk + torch.rand(ijk.shape, generator=gen, dtype=torch.float64)) * (LENGTH / n)
        est = linear_bias(pos, delta, LENGTH, k_max=0.3)
        assert est.error < 0.04 and est.n_modes > 100
        assert abs(est.bias - b) < 4 * est.error + 0.03 * b, (b, est)


def test_bad_grids_are_refused() -> None:
    modes = torch.fft.rfftn(_smooth_gaussian_field(torch.Generator().manual_seed(2)))
    with pytest.raises(ValidationError, match="mode grids differ"):
        bias_from_modes(modes[:-1], modes, LENGTH, k_max=0.3)
    with pytest.raises(ValidationError, match="no Fourier mode below k_max"):
        bias_from_modes(modes, modes, LENGTH, k_max=0.01)
