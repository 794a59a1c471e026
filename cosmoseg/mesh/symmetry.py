"""The 48 symmetries of the cube, applied to periodic cubic volumes and to position channels.

Used for data augmentation by every package that trains on cubic crops (the protohalo networks, dm2gal): a
rotation or reflection of a crop is a crop of an equally likely universe.

Conventions
-----------
* **Symmetry** ``(perm, flips)``: ``out = apply_symmetry(v, perm, flips)`` first permutes the three spatial axes
  (output axis ``d`` is input axis ``perm[d]``), then reverses output axis ``d`` wherever ``flips[d]``. The 48
  pairs of :func:`cube_symmetries` are the full symmetry group of the cube (``cube_symmetries()[0]`` is the
  identity).
* **Position channels** ``(3, n, n, n)`` hold positions *relative to the crop centre* (any length unit). Cell ``i``
  of a crop of side ``s`` sits at ``(i + 1/2 - s/2) * cell`` (the cell-centre convention of
  :mod:`cosmoseg.mesh.grid`), so reversing an axis maps ``q → -q`` exactly.
* :func:`transform_positions` moves position channels with the cube: spatially like any channel, then component
  ``d`` of the result is component ``perm[d]`` of the input, negated where ``flips[d]``. Hence the cell-centre
  position channels of a crop are unchanged by every symmetry: a voxel moved by the symmetry carries the position
  of the cell it lands on.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
import torch

__all__ = [
    "Flips",
    "Perm",
    "Symmetry",
    "apply_symmetry",
    "compose_symmetries",
    "cube_symmetries",
    "invert_symmetry",
    "symmetry_average",
    "transform_positions",
]

Perm = tuple[int, int, int]
"""An axis permutation: output axis ``d`` is input axis ``perm[d]``."""
Flips = tuple[bool, bool, bool]
"""Which output axes are reversed after the permutation."""
Symmetry = tuple[Perm, Flips]
"""One of the 48 symmetries of the cube."""


def cube_symmetries() -> list[Symmetry]:
    """The 48 symmetries of the cube: 6 axis permutations × 8 flip patterns; the first is the identity."""
    perms = list(itertools.permutations(range(3)))
    flips = list(itertools.product((False, True), repeat=3))
    return [(tuple(p), tuple(f)) for p in perms for f in flips]  # type: ignore[misc]


def _check_symmetry(perm: Sequence[int], flips: Sequence[bool]) -> tuple[Perm, Flips]:
    perm_t = tuple(int(p) for p in perm)
    flips_t = tuple(bool(f) for f in flips)
    if sorted(perm_t) != [0, 1, 2] or len(flips_t) != 3:
        raise ValueError(f"a cube symmetry needs a permutation of (0, 1, 2) and 3 flips, got {perm_t}, {flips_t}")
    return perm_t, flips_t  # type: ignore[return-value]


def invert_symmetry(perm: Sequence[int], flips: Sequence[bool]) -> Symmetry:
    """The symmetry that undoes ``(perm, flips)``."""
    perm_t, flips_t = _check_symmetry(perm, flips)
    inv = tuple(int(i) for i in np.argsort(perm_t))
    return inv, tuple(flips_t[i] for i in inv)  # type: ignore[return-value]


def compose_symmetries(first: Symmetry, second: Symmetry) -> Symmetry:
    """The symmetry equal to applying ``first`` and then ``second``."""
    (p1, f1), (p2, f2) = _check_symmetry(*first), _check_symmetry(*second)
    perm = tuple(p1[p2[d]] for d in range(3))
    return perm, tuple(f1[p2[d]] ^ f2[d] for d in range(3))  # type: ignore[return-value]


def apply_symmetry(volume: torch.Tensor, perm: Sequence[int], flips: Sequence[bool]) -> torch.Tensor:
    """Apply a cube symmetry to the last three (spatial, cubic) axes of ``volume (..., n, n, n)``.

    Returns a view of shape ``(..., n, n, n)``. For scalar channels and labels. Position channels also need their
    components moved: :func:`transform_positions`.
    """
    perm_t, flips_t = _check_symmetry(perm, flips)
    if volume.ndim < 3 or not (volume.shape[-1] == volume.shape[-2] == volume.shape[-3]):
        raise ValueError(f"volume must have shape (..., n, n, n), got {tuple(volume.shape)}")
    lead = volume.ndim - 3
    out = volume.permute(*range(lead), *(lead + p for p in perm_t))
    dims = [lead + d for d in range(3) if flips_t[d]]
    return out.flip(dims) if dims else out


def transform_positions(
    pos_channels: torch.Tensor, perm: Sequence[int], flips: Sequence[bool], crop_size: int | None = None
) -> torch.Tensor:
    """Apply a cube symmetry to position channels ``(3, n, n, n)`` relative to the crop centre (any length unit).

    The volume moves like :func:`apply_symmetry`; component ``d`` of the result is component ``perm[d]`` of the
    input, negated where ``flips[d]`` (a reflection about the crop centre maps ``q → -q``). ``crop_size``, if given,
    is checked against the spatial side. Returns ``(3, n, n, n)`` in the input's unit.
    """
    perm_t, flips_t = _check_symmetry(perm, flips)
    if pos_channels.ndim != 4 or pos_channels.shape[0] != 3:
        raise ValueError(f"position channels must have shape (3, n, n, n), got {tuple(pos_channels.shape)}")
    if crop_size is not None and pos_channels.shape[-1] != crop_size:
        raise ValueError(f"position channels have side {pos_channels.shape[-1]}, expected crop_size={crop_size}")
    moved = apply_symmetry(pos_channels, perm_t, flips_t)[list(perm_t)]
    sign = torch.tensor([-1.0 if f else 1.0 for f in flips_t], dtype=moved.dtype, device=moved.device)
    return moved * sign[:, None, None, None]


def symmetry_average(
    predict: Callable[[torch.Tensor], torch.Tensor],
    volume: torch.Tensor,
    symmetries: Sequence[Symmetry],
    vector_channels: Sequence[int] = (),
) -> torch.Tensor:
    """Test-time augmentation: the mean over ``symmetries`` g of g⁻¹ · predict(g · volume).

    volume: ``(C, n, n, n)`` scalar channels (moved by :func:`apply_symmetry`). predict: ``(C, n, n, n) -> (C', n, n,
    n)``, a map on the whole periodic box. vector_channels: the 3 output channels (in order x, y, z) that form a vector
    field, such as a displacement; they are brought back as vectors (:func:`transform_positions`), the other output
    channels as scalars. With the identity alone this is ``predict(volume)``. For a predictor that is exactly
    equivariant the result equals ``predict(volume)``; for a learned one it averages out what is not.
    """
    if not symmetries:
        raise ValueError("symmetry_average needs at least one symmetry")
    vectors = [int(c) for c in vector_channels]
    if vectors and len(vectors) != 3:
        raise ValueError(f"vector_channels must name 3 channels (x, y, z) or none, got {vectors}")
    total: torch.Tensor | None = None
    for perm, flips in symmetries:
        out = torch.as_tensor(predict(apply_symmetry(volume, perm, flips).contiguous()))
        back_perm, back_flips = invert_symmetry(perm, flips)
        back = apply_symmetry(out, back_perm, back_flips).clone()
        if vectors:
            back[vectors] = transform_positions(out[vectors], back_perm, back_flips)
        total = back if total is None else total + back
    assert total is not None
    return total / len(symmetries)
