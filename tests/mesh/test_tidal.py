"""The tidal tensor and shear against analytic fields: a plane wave, a sum of modes with off-diagonal terms (checked
against the eigenvalues of the analytic Hessian), a constant (quadratic-potential) tensor by hand, and the cube
symmetries."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cosmoseg.mesh import apply_symmetry, cube_symmetries, tidal_shear, tidal_shear_from_tensor, tidal_tensor
from cosmoseg.mesh.tidal import TENSOR_COMPONENTS

N, L = 16, 40.0


def _coordinates() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.arange(N, dtype=torch.float64) * (L / N)
    return torch.meshgrid(x, x, x, indexing="ij")


def test_plane_wave_by_hand() -> None:
    x, _, _ = _coordinates()
    k = 2 * math.pi * 3 / L
    phi = 2.5 * torch.cos(k * x)
    tensor = tidal_tensor(phi, L)
    want_xx = -2.5 * k**2 * torch.cos(k * x)
    assert torch.allclose(tensor[0], want_xx, atol=1e-12)
    assert torch.allclose(tensor[1:], torch.zeros_like(tensor[1:]), atol=1e-12)
    # a tide along one axis: s = T_xx diag(2/3, −1/3, −1/3), q² = (3/2)(2/3) T_xx² = T_xx²
    assert torch.allclose(tidal_shear(phi, L), want_xx.abs(), atol=1e-12)


def test_modes_with_off_diagonal_terms_against_the_analytic_hessian() -> None:
    x, y, z = _coordinates()
    kx, ky, kz = (2 * math.pi * m / L for m in (1, 2, 3))
    phi = (
        1.0 * torch.cos(kx * x)
        + 0.5 * torch.cos(ky * y)
        - 0.7 * torch.cos(kz * z)
        + 0.8 * torch.sin(kx * x) * torch.sin(ky * y)
        + 0.3 * torch.cos(ky * y + kz * z)
    )
    sx, cx, sy, cy = torch.sin(kx * x), torch.cos(kx * x), torch.sin(ky * y), torch.cos(ky * y)
    c_yz = torch.cos(ky * y + kz * z)
    hessian = {
        (0, 0): -1.0 * kx**2 * cx - 0.8 * kx**2 * sx * sy,
        (1, 1): -0.5 * ky**2 * cy - 0.8 * ky**2 * sx * sy - 0.3 * ky**2 * c_yz,
        (2, 2): 0.7 * kz**2 * torch.cos(kz * z) - 0.3 * kz**2 * c_yz,
        (0, 1): 0.8 * kx * ky * cx * cy,
        (0, 2): torch.zeros_like(x),
        (1, 2): -0.3 * ky * kz * c_yz,
    }
    tensor = tidal_tensor(phi, L)
    for c, ij in enumerate(TENSOR_COMPONENTS):
        assert torch.allclose(tensor[c], hessian[ij], atol=1e-10), ij
    matrix = np.zeros((N, N, N, 3, 3))
    for (i, j), value in hessian.items():
        matrix[..., i, j] = matrix[..., j, i] = value.numpy()
    lam = np.linalg.eigvalsh(matrix)
    want = np.sqrt(
        0.5 * ((lam[..., 0] - lam[..., 1]) ** 2 + (lam[..., 1] - lam[..., 2]) ** 2 + (lam[..., 0] - lam[..., 2]) ** 2)
    )
    assert np.allclose(tidal_shear(phi, L).numpy(), want, atol=1e-10)
    # the trace is the Laplacian
    assert torch.allclose(tensor[:3].sum(0), hessian[(0, 0)] + hessian[(1, 1)] + hessian[(2, 2)], atol=1e-10)


def test_quadratic_potential_by_hand() -> None:
    # φ = ½ qᵀ M q has T = M everywhere; M = diag(1, 2, 4): q² = ½ (1² + 2² + 3²) = 7
    tensor = torch.tensor([1.0, 2.0, 4.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    assert tidal_shear_from_tensor(tensor).item() == pytest.approx(math.sqrt(7.0))
    # isotropic: no shear; a pure off-diagonal xy = a has eigenvalues (a, −a, 0): q² = ½ (4a² + a² + a²) = 3a²
    assert tidal_shear_from_tensor(torch.tensor([3.0, 3.0, 3.0, 0.0, 0.0, 0.0])).item() == pytest.approx(0.0)
    off = torch.tensor([0.0, 0.0, 0.0, 2.0, 0.0, 0.0], dtype=torch.float64)
    assert tidal_shear_from_tensor(off).item() == pytest.approx(math.sqrt(3.0) * 2.0)


def test_shear_moves_as_a_scalar_under_the_cube_symmetries() -> None:
    phi = torch.randn(N, N, N, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    shear = tidal_shear(phi, L)
    for perm, flips in cube_symmetries()[::7]:
        moved = apply_symmetry(phi, perm, flips)
        # a flip maps cell i to n − 1 − i: the reflection about the box centre of the cell centres
        assert torch.allclose(tidal_shear(moved.contiguous(), L), apply_symmetry(shear, perm, flips), atol=1e-10)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="cubic"):
        tidal_tensor(torch.zeros(4, 4, 5), L)
    with pytest.raises(ValueError, match="positive"):
        tidal_tensor(torch.zeros(4, 4, 4), 0.0)
    with pytest.raises(ValueError, match="6 components"):
        tidal_shear_from_tensor(torch.zeros(3, 4))


def test_trace_of_the_linear_potential_is_delta() -> None:
    from cosmoseg.sim.ics import linear_potential

    delta = torch.randn(N, N, N, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    delta -= delta.mean()
    tensor = tidal_tensor(linear_potential(delta, L), L)
    assert torch.allclose(tensor[:3].sum(0), delta, atol=1e-10)
