"""The library part of the plugin: plain functions on tensors, usable without any pipeline."""

from __future__ import annotations

import torch

from cosmoseg import Field
from cosmoseg.mesh import rfft_k_magnitude


def gaussian_smooth(values: torch.Tensor, length: float, radius: float) -> torch.Tensor:
    """Smooth a periodic (n, n, n) grid with a Gaussian of standard deviation ``radius`` Mpc/h.

    Each Fourier mode is multiplied by W(k) = exp(-k^2 R^2 / 2); the mean is kept. Same shape and dtype.
    """
    if values.ndim != 3:
        raise ValueError(f"values must be an (n, n, n) grid, got shape {tuple(values.shape)}")
    if radius < 0:
        raise ValueError(f"radius must be >= 0 Mpc/h, got {radius}")
    n = values.shape[-1]
    k = rfft_k_magnitude(n, length, device=values.device, dtype=torch.float64)
    modes = torch.fft.rfftn(values.to(torch.float64)) * torch.exp(-0.5 * (k * radius) ** 2)
    return torch.fft.irfftn(modes, s=values.shape).to(values.dtype)


def smooth_field(field: Field, radius: float, channel: str = "") -> Field:
    """A copy of ``field`` with channel ``channel`` ("" = every channel) smoothed by :func:`gaussian_smooth`;
    ``meta["smoothing_radius"]`` records ``radius`` (Mpc/h). The input is not changed."""
    names = [channel] if channel else list(field.channels)
    values = field.values.clone()
    for name in names:
        index = field.channels.index(name)
        values[index] = gaussian_smooth(field.values[index], field.box.length, radius)
    meta = {**field.meta, "smoothing_radius": radius}
    return Field(values=values, box=field.box, channels=field.channels, units=field.units, meta=meta)
