"""The tidal tensor of a periodic potential and its shear scalar, by FFT.

For a potential φ on a periodic grid (e.g. the linear ``phi`` of the initial conditions, ∇²φ = δ), the tidal tensor
is the Hessian T_ij = ∂_i ∂_j φ, computed in Fourier space as −k_i k_j φ_k; its trace is ∇²φ (= δ for the linear
potential). The tidal shear is the magnitude of its traceless part s_ij = T_ij − δ_ij T_kk / 3,

    q² = (3/2) s_ij s_ij = ½ [(λ1 − λ2)² + (λ2 − λ3)² + (λ1 − λ3)²]

with λ the eigenvalues of T (Catelan & Theuns 1996; Heavens & Peacock 1988): 0 for an isotropic tide, and |T_xx|
for a tide along one axis. Both are scalars and symmetric tensors of the grid: under a cube symmetry the shear
moves as a scalar field.
"""

from __future__ import annotations

import torch

from cosmoseg.mesh.fourier import nyquist_frequency, rfft_wavevectors

__all__ = ["TENSOR_COMPONENTS", "tidal_shear", "tidal_shear_from_tensor", "tidal_tensor"]

TENSOR_COMPONENTS: tuple[tuple[int, int], ...] = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))
"""The order of the six independent components of the symmetric tensors here: xx, yy, zz, xy, xz, yz."""


def tidal_tensor(phi: torch.Tensor, length: float) -> torch.Tensor:
    """T_ij = ∂_i ∂_j φ of a periodic potential.

    ``phi``: (n, n, n) float (float64 is kept, any other float computes in float32), in (Mpc/h)² for the linear
    potential; ``length``: the box side, Mpc/h. Returns (6, n, n, n) in the components of
    :data:`TENSOR_COMPONENTS`, in the unit of φ per (Mpc/h)² (dimensionless for the linear potential). The mixed
    components leave out the Nyquist modes of an even grid, as a first derivative does.
    """
    if phi.ndim != 3 or len(set(phi.shape)) != 1:
        raise ValueError(f"phi must be a cubic (n, n, n) grid, got shape {tuple(phi.shape)}")
    if not length > 0:
        raise ValueError(f"length (the box side, Mpc/h) must be positive, got {length}")
    n = phi.shape[0]
    dtype = torch.float64 if phi.dtype == torch.float64 else torch.float32
    phi_k = torch.fft.rfftn(phi.to(dtype))
    ks = rfft_wavevectors(n, length, device=phi.device, dtype=dtype)
    # a mixed derivative is a first derivative along each axis, odd in k: its Nyquist mode (its own mirror image)
    # has no sign, so it is dropped there, as in a first derivative; this keeps T a tensor under the cube flips
    below_nyquist = nyquist_frequency(n, length) * (1 - 1e-6)
    odd = [torch.where(k.abs() < below_nyquist, k, torch.zeros_like(k)) for k in ks]
    out = torch.empty((6, n, n, n), dtype=dtype, device=phi.device)
    for c, (i, j) in enumerate(TENSOR_COMPONENTS):
        factor = ks[i] * ks[j] if i == j else odd[i] * odd[j]
        out[c] = torch.fft.irfftn(-factor * phi_k, s=(n, n, n))
    return out


def tidal_shear_from_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """q = sqrt((3/2) s_ij s_ij) of a symmetric tensor field given as (6, ...) in :data:`TENSOR_COMPONENTS`.

    Returns (...) in the tensor's unit, ≥ 0.
    """
    if tensor.shape[0] != 6:
        raise ValueError(f"tensor must hold the 6 components xx, yy, zz, xy, xz, yz first, got {tuple(tensor.shape)}")
    mean = tensor[:3].mean(0)
    diagonal = ((tensor[:3] - mean) ** 2).sum(0)
    off_diagonal = (tensor[3:] ** 2).sum(0)
    return torch.sqrt(1.5 * (diagonal + 2.0 * off_diagonal))


def tidal_shear(phi: torch.Tensor, length: float) -> torch.Tensor:
    """The tidal shear q of a periodic potential: (n, n, n), same units and dtype rules as :func:`tidal_tensor`."""
    return tidal_shear_from_tensor(tidal_tensor(phi, length))
