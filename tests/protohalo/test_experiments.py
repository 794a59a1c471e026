"""The modified initial conditions of López-Cano et al. §4: periodic, δ shifted by exactly ε, ∇²φ_* = δ_* about q₀."""

from __future__ import annotations

import pytest
import torch

from cosmoseg.data import Box, Field
from cosmoseg.mesh.tidal import tidal_tensor
from cosmoseg.protohalo.experiments import impose_tide, periodic_separation, shift_density

N, L = 16, 32.0


def _fields() -> Field:
    from cosmoseg.sim.ics import linear_potential

    delta = torch.randn(N, N, N, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    delta -= delta.mean()
    return Field(
        values=torch.stack([delta, linear_potential(delta, L)]).float(),
        box=Box(length=L),
        channels=("delta", "phi"),
        units=("", "(Mpc/h)^2"),
    )


def _laplacian(phi: torch.Tensor) -> torch.Tensor:
    """Second-order finite differences, periodic (h = L/N)."""
    h = L / N
    return sum(torch.roll(phi, 1, a) + torch.roll(phi, -1, a) - 2 * phi for a in range(3)) / h**2


def test_separation_is_the_minimal_image_about_the_centre() -> None:
    d = periodic_separation(N, L, (1.0, 31.0, 16.0), dtype=torch.float64)
    assert d.shape == (3, N, N, N)
    assert d[0, 0, 0, 0].item() == pytest.approx(0.0)  # cell centre 1.0
    assert d[1, 0, 0, 0].item() == pytest.approx(2.0)  # 1.0 − 31.0 → +2 across the boundary
    assert d.abs().max().item() <= L / 2 + 1e-9


def test_density_shift_is_exactly_epsilon_and_periodic_with_a_consistent_potential() -> None:
    fields = _fields()
    centre = (3.0, 29.0, 17.0)
    shifted = shift_density(fields, 0.5, centre)
    assert torch.allclose(shifted.channel("delta") - fields.channel("delta"), torch.full((N, N, N), 0.5), atol=1e-6)
    assert "delta shifted by 0.5" in shifted.meta["modified"] and "modified" not in fields.meta
    change = (shifted.channel("phi") - fields.channel("phi")).double()
    d = periodic_separation(N, L, centre, dtype=torch.float64)
    assert torch.allclose(change, 0.5 * (d**2).sum(0) / 6, atol=1e-5)
    # ∇² of the added term is ε wherever the stencil stays within half a box of q₀ (the quadratic is exact there)
    inside = (d.abs() < L / 2 - 1.5 * L / N).all(0)
    assert torch.allclose(_laplacian(change)[inside], torch.full_like(change[inside], 0.5), atol=1e-5)
    # periodic: neighbouring cells, across the box faces too, differ by at most ε/6 |(d + h)² − d²| <= ε/6 (L h + h²);
    # the plain q − q₀ (no minimal image) would jump by about ε L²/6 at a face
    h = L / N
    for axis in range(3):
        step = (change - torch.roll(change, 1, axis)).abs().max().item()
        assert step <= 0.5 / 6 * (L * h + h**2) + 1e-5


def test_tide_is_trace_free_and_leaves_delta() -> None:
    fields = _fields()
    centre = (16.0, 16.0, 16.0)
    tided = impose_tide(fields, 0.5, centre)
    assert torch.equal(tided.channel("delta"), fields.channel("delta"))
    change = (tided.channel("phi") - fields.channel("phi")).double()
    d = periodic_separation(N, L, centre, dtype=torch.float64)
    inside = (d.abs() < L / 2 - 1.5 * L / N).all(0)
    assert torch.allclose(_laplacian(change)[inside], torch.zeros_like(change[inside]), atol=1e-5)
    # the second derivatives are the imposed tensor diag(0, −λ, λ) near q₀
    h = L / N
    c = N // 2
    second = lambda a: (torch.roll(change, 1, a) + torch.roll(change, -1, a) - 2 * change)[c, c, c] / h**2  # noqa: E731
    assert [second(a).item() for a in range(3)] == pytest.approx([0.0, -0.5, 0.5], abs=1e-5)
    with pytest.raises(ValueError, match="'phi'"):
        impose_tide(Field(values=fields.values[:1], box=fields.box, channels=("delta",)), 0.5, centre)


def test_the_fourier_tide_of_a_shifted_box_gains_epsilon_in_its_trace_near_the_centre() -> None:
    fields = _fields()
    shifted = shift_density(fields, 0.3, (16.0, 16.0, 16.0))
    before = tidal_tensor(fields.channel("phi").double(), L)[:3].sum(0)
    after = tidal_tensor(shifted.channel("phi").double(), L)[:3].sum(0)
    # the FFT sees the kink half a box away, so compare the mean trace change over the central octant only
    core = slice(N // 4, 3 * N // 4)
    assert (after - before)[core, core, core].mean().item() == pytest.approx(0.3, abs=0.01)
