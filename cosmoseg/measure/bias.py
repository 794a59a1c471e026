"""Large-scale bias of a tracer against the linear density field, from their Fourier modes.

The least-squares ratio over the modes with 0 < |k| < k_max, b = Σ_k Re(δ_g δ_L*) / Σ_k |δ_L|², i.e. ⟨P_gL / P_LL⟩
weighted by P_LL per mode. Its error comes from the residual δ_g − b δ_L (the stochasticity, shot noise included):
var(b) = S / Σ_k |δ_L|² with S the mean residual power per mode (sums over the full complex grid). The difference
of two tracers' biases, estimated the same way from the difference of their modes, is free of cosmic variance.

A tracer at its z = 0 (Eulerian) positions measured against the initial field scaled to z = 0 has a bias that
includes the propagator damping exp(−k² σ_v² / 2) of the modes below k_max.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from cosmoseg.errors import ValidationError
from cosmoseg.measure.power import catalog_density_modes
from cosmoseg.mesh.assign import Scheme
from cosmoseg.mesh.fourier import rfft_k_magnitude, rfft_mode_weights

__all__ = ["BiasEstimate", "bias_from_modes", "linear_bias"]


@dataclasses.dataclass(frozen=True)
class BiasEstimate:
    """Large-scale bias b against the linear field and its 1-sigma error; ``n_modes`` modes with |k| < k_max."""

    bias: float
    error: float
    n_modes: int


def _low_k(n: int, length: float, k_max: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask (n, n, n//2+1) of the modes with 0 < |k| < k_max and the full-grid weight of each cell."""
    k = rfft_k_magnitude(n, length, device=device, dtype=torch.float64)
    weights = rfft_mode_weights(n, device=device, dtype=torch.float64).expand_as(k)
    return (k > 0) & (k < k_max), weights


def bias_from_modes(delta_g: torch.Tensor, delta_l: torch.Tensor, length: float, k_max: float) -> BiasEstimate:
    """Least-squares b = sum Re(delta_g delta_L*) / sum |delta_L|^2 over the modes with |k| < k_max [h/Mpc].

    delta_g, delta_l: (n, n, n//2+1) complex Fourier modes (``torch.fft.rfftn`` convention) of the tracer and the
    linear field on one grid of a box of side ``length`` Mpc/h. Error: sqrt(S / sum |delta_L|^2), S = mean
    |delta_g - b delta_L|^2 per mode (sums over the full complex grid).
    """
    if delta_g.shape != delta_l.shape:
        raise ValidationError(f"mode grids differ: {tuple(delta_g.shape)} vs {tuple(delta_l.shape)}")
    mask, weights = _low_k(delta_l.shape[0], length, k_max, delta_l.device)
    if not bool(mask.any()):
        raise ValidationError(f"no Fourier mode below k_max = {k_max} h/Mpc in a box of {length} Mpc/h")
    g, lin, w = delta_g[mask].to(torch.complex128), delta_l[mask].to(torch.complex128), weights[mask]
    auto = float((w * lin.abs().square()).sum())
    bias = float((w * (g * lin.conj()).real).sum()) / auto
    residual = float((w * (g - bias * lin).abs().square()).sum()) / float(w.sum())
    return BiasEstimate(bias=bias, error=math.sqrt(residual / auto), n_modes=int(w.sum()))


def linear_bias(
    pos: torch.Tensor, delta_lin: torch.Tensor, length: float, *, k_max: float = 0.2, scheme: Scheme = "tsc"
) -> BiasEstimate:
    """b of a catalog (pos (N, 3) Mpc/h) against a linear field delta_lin (n, n, n) of the same box (side Mpc/h).

    The catalog is painted on the field's n^3 mesh (``catalog_density_modes``: compensated, interlaced).
    """
    n = delta_lin.shape[0]
    modes = catalog_density_modes(pos, length, n_mesh=n, scheme=scheme)
    return bias_from_modes(modes.delta_k, torch.fft.rfftn(delta_lin.double()), length, k_max)
