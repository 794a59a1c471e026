"""Periodic crops of a cubic grid: cutting crops out of a box and writing them back, by index arithmetic.

All functions index modulo the box side ``n``, so a crop may wrap around the box any number of times (a crop larger
than the box simply repeats it). Corners are voxel indices ``(i, j, k)`` along the three grid axes (in the ``(n, n,
n)`` order of the tensors), int64, any integer (they are reduced modulo ``n``).
"""

from __future__ import annotations

import torch

__all__ = ["crop_lattice", "extract_crops", "place_crops"]


def crop_lattice(n: int, step: int, offset: int = 0) -> torch.Tensor:
    """Start corners ``(M, 3)`` (int64, in ``[0, n)``) of the output crops of side ``step`` tiling a periodic box.

    Corners are ``offset + step * (i, j, k)`` modulo ``n`` with ``i, j, k`` in ``range(n // step)``, in C order.
    """
    if step <= 0:
        raise ValueError(f"lattice step must be positive, got step={step}")
    if n <= 0 or n % step:
        raise ValueError(f"box side n={n} must be a positive multiple of the lattice step {step}")
    ticks = torch.arange(0, n, step, dtype=torch.int64)
    grid = torch.stack(torch.meshgrid(ticks, ticks, ticks, indexing="ij"), dim=-1).reshape(-1, 3)
    return (grid + int(offset)) % n


def _axis_indices(
    starts: torch.Tensor, size: int, n: int, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Broadcastable periodic indices ``(M, s, 1, 1)``, ``(M, 1, s, 1)``, ``(M, 1, 1, s)`` of crops at ``starts``."""
    starts = starts.to(device=device, dtype=torch.int64)
    idx = (starts[:, :, None] + torch.arange(size, dtype=torch.int64, device=starts.device)) % n  # (M, 3, s)
    return idx[:, 0, :, None, None], idx[:, 1, None, :, None], idx[:, 2, None, None, :]


def extract_crops(field: torch.Tensor, starts: torch.Tensor, size_in: int) -> torch.Tensor:
    """Periodic crops ``(M, C, s, s, s)`` of ``field (C, n, n, n)`` whose first corners are ``starts (M, 3)``.

    ``s = size_in``; the crops are on the device of ``field``, with its dtype.
    """
    if field.ndim != 4 or not (field.shape[1] == field.shape[2] == field.shape[3]):
        raise ValueError(f"field must have shape (C, n, n, n), got {tuple(field.shape)}")
    starts = torch.as_tensor(starts)
    if starts.ndim != 2 or starts.shape[1] != 3:
        raise ValueError(f"starts must have shape (M, 3), got {tuple(starts.shape)}")
    ix, iy, iz = _axis_indices(starts, size_in, field.shape[1], field.device)
    return field[:, ix, iy, iz].movedim(0, 1)


def place_crops(crops: torch.Tensor, starts: torch.Tensor, n: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """Write crops ``(M, *lead, s, s, s)`` into a periodic ``(*lead, n, n, n)`` box at corners ``starts (M, 3)``.

    ``lead`` are optional leading dimensions (e.g. channels) shared by every crop. Where crops overlap (or a crop
    wraps onto itself), the later one wins. ``out`` defaults to zeros with the dtype and device of ``crops``.
    """
    lead = tuple(crops.shape[1:-3])
    if out is None:
        out = torch.zeros((*lead, n, n, n), dtype=crops.dtype, device=crops.device)
    ix, iy, iz = _axis_indices(torch.as_tensor(starts), crops.shape[-1], n, out.device)
    out[..., ix, iy, iz] = crops.movedim(0, -4).to(out.dtype)
    return out
