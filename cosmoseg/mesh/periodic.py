"""Periodic geometry on a cubic box: minimal images, wrapping, and centres of groups of points.

Any length unit (Mpc/h, or cells with ``length = n``); the box is ``[0, length)³`` with periodic boundaries.
"""

from __future__ import annotations

import torch

__all__ = ["group_centres", "minimal_image", "wrap"]


def minimal_image(d: torch.Tensor, length: float) -> torch.Tensor:
    """The separation vectors ``d`` (any shape) mapped to their nearest periodic image, in ``[-length/2, length/2]``."""
    return d - length * torch.round(d / length)


def wrap(x: torch.Tensor, length: float) -> torch.Tensor:
    """Positions ``x`` (any shape) wrapped into ``[0, length)`` (the rounding case ``remainder == length`` too)."""
    wrapped = torch.remainder(x, length)
    return torch.where(wrapped >= length, wrapped - length, wrapped)


def group_centres(x: torch.Tensor, groups: torch.Tensor, n_groups: int, length: float) -> torch.Tensor:
    """Periodic centres of mass ``(n_groups, 3)`` of the points ``x (M, 3)`` grouped by ``groups (M,)`` in 0..K-1.

    Each group's members are unwrapped around its first member (minimal image), averaged and wrapped back into the
    box; exact when every group spans less than half the box. A group with no member gets the origin. Float64
    arithmetic, returned in ``x``'s dtype.
    """
    if x.ndim != 2 or x.shape[1] != 3 or groups.shape != x.shape[:1]:
        raise ValueError(f"need x (M, 3) and groups (M,), got {tuple(x.shape)} and {tuple(groups.shape)}")
    groups = groups.to(torch.int64)
    xd = x.to(torch.float64)
    index = torch.arange(len(groups), device=groups.device)
    first = torch.full((n_groups,), max(len(groups) - 1, 0), dtype=torch.int64, device=groups.device)
    first.scatter_reduce_(0, groups, index, reduce="amin")
    ref = xd[first] if len(groups) else xd.new_zeros((n_groups, 3))
    dx = minimal_image(xd - ref[groups], length)
    total = torch.zeros((n_groups, 3), dtype=torch.float64, device=x.device).index_add_(0, groups, dx)
    count = torch.bincount(groups, minlength=n_groups).to(torch.float64).clamp_min(1.0)[:, None]
    centres = wrap(ref + total / count, length)
    empty = torch.bincount(groups, minlength=n_groups) == 0
    return torch.where(empty[:, None], torch.zeros_like(centres), centres).to(x.dtype)
