"""Periodic full-box inference for the dm2gal networks: fully convolutional tiles, or one crop per voxel.

* :func:`predict_tiled` — any fully convolutional model with a ``halo`` (input voxels of context per side) that maps
  ``(B, C, t + 2 halo, ...)`` to ``(B, K, t, t, t)``: the box is cut into output tiles of ``t³`` voxels, each tile's
  input is the periodic crop with ``halo`` voxels around it, and every voxel of the result is written exactly once.
  With batch norm in eval mode (the dm2gal networks) a voxel's value does not depend on the tile, so the stitched
  box equals the box predicted in one pass, to float rounding. A model that pools (the successor) has a ``stride``:
  tile corners are then multiples of it, so every tile sees the same coarse cells. Each batch of tiles is one task
  of a :data:`~cosmoseg.pipeline.executor.TaskMap` (in this process by default, or a Dask cluster's): a task gets its
  tiles' inputs and the model, so a worker holds ``batch * C * (t + 2 halo)^3`` input values, the network's
  activations on them and ``batch * K * t^3`` outputs, whatever the box side.
* :func:`predict_voxels` — the per-voxel :class:`~cosmoseg.paint.network.Dm2Gal` on periodic crops centred on given
  voxels (slow by design: one ``65³`` crop per voxel).

Fields are ``(C, n, n, n)`` cubes on a periodic grid (for dm2gal: ``log10(1 + M)``, M in Msun/h per voxel).
Everything runs on the device of the fields; the model must already be there.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from cosmoseg.mesh.crops import extract_crops
from cosmoseg.paint.network import Dm2Gal
from cosmoseg.pipeline.executor import LazySequence, TaskMap, local_map

__all__ = ["predict_tiled", "predict_voxels", "tile_corners"]


def _check_fields(fields: torch.Tensor) -> int:
    if fields.ndim != 4 or not (fields.shape[1] == fields.shape[2] == fields.shape[3]) or fields.shape[1] < 1:
        raise ValueError(f"fields must have shape (C, n, n, n), got {tuple(fields.shape)}")
    return int(fields.shape[1])


def tile_corners(n: int, tile: int) -> torch.Tensor:
    """First corners ``(T, 3)`` (int64, C order) of output tiles of side ``tile`` covering ``[0, n)³``.

    Corners are ``tile * (i, j, k)`` for ``i, j, k < ceil(n / tile)``; the last tile along an axis reaches past
    ``n`` when ``tile`` does not divide ``n`` (its extra voxels are discarded by :func:`predict_tiled`).
    """
    if n < 1 or tile < 1:
        raise ValueError(f"box side and tile must be positive, got n={n}, tile={tile}")
    ticks = torch.arange(0, n, tile, dtype=torch.int64)
    return torch.stack(torch.meshgrid(ticks, ticks, ticks, indexing="ij"), dim=-1).reshape(-1, 3)


def _predict_tiles(inputs: torch.Tensor, *, model: nn.Module) -> torch.Tensor:
    """One task: ``model`` on a batch of tile inputs ``(B, C, t + 2 halo, ...)`` in eval and inference mode."""
    model.eval()
    with torch.inference_mode():
        return model(inputs)


def predict_tiled(
    model: nn.Module, fields: torch.Tensor, *, tile: int, batch: int = 1, map_tasks: TaskMap = local_map
) -> torch.Tensor:
    """Periodic full-box prediction ``(K, n, n, n)`` of a fully convolutional ``model`` from ``fields (C, n, n, n)``.

    ``model`` maps ``(B, C, tile + 2 halo, ...)`` to ``(B, K, tile, tile, tile)`` and has an int attribute ``halo``
    (32 for the default :class:`~cosmoseg.paint.network.Dm2GalFCN`); ``tile``: output side per pass (capped at
    ``n``; need not divide ``n``; a multiple of the model's ``stride`` when it has one, as must be ``n``);
    ``batch``: tiles per forward pass, and per task of ``map_tasks`` (:data:`~cosmoseg.pipeline.executor.TaskMap`; in
    this process by default; a tile's input is cut when its task is sent). The model runs in eval mode under
    ``torch.inference_mode()`` and its training flag is restored afterwards. The result is an ordinary tensor (not
    an inference tensor) on the device of ``fields``, with the model's output dtype.
    """
    n = _check_fields(fields)
    halo = getattr(model, "halo", None)
    if not isinstance(halo, int) or halo < 0:
        raise TypeError(f"model must have a non-negative int attribute 'halo', got {halo!r}")
    if tile < 1 or batch < 1:
        raise ValueError(f"tile and batch must be positive, got tile={tile}, batch={batch}")
    tile = min(int(tile), n)
    stride = int(getattr(model, "stride", 1))
    if n % stride or tile % stride or halo % stride:
        raise ValueError(
            f"{type(model).__name__} works on cells of {stride} voxels: the box side ({n}), the tile ({tile}) and "
            f"the halo ({halo}) must be multiples of {stride}"
        )
    corners = tile_corners(n, tile)
    side = -(-n // tile) * tile  # the tiles cover [0, side)^3, side >= n
    batches = [corners[b : b + batch] for b in range(0, len(corners), batch)]
    inputs = LazySequence(lambda i: extract_crops(fields, batches[i] - halo, tile + 2 * halo), len(batches))
    was_training = model.training
    model.eval()
    try:
        out: torch.Tensor | None = None
        for index, pred in map_tasks(functools.partial(_predict_tiles, model=model), inputs):
            starts = batches[index]
            if pred.ndim != 5 or pred.shape[0] != len(starts) or tuple(pred.shape[2:]) != (tile,) * 3:
                raise ValueError(
                    f"the model returned shape {tuple(pred.shape)} for {len(starts)} tiles of input side "
                    f"{tile + 2 * halo}, expected (B, K, {tile}, {tile}, {tile}) (is halo={halo} right?)"
                )
            if out is None:
                out = torch.empty((pred.shape[1], side, side, side), dtype=pred.dtype, device=fields.device)
            for (i, j, k), p in zip(starts.tolist(), pred, strict=True):
                out[:, i : i + tile, j : j + tile, k : k + tile] = p
        assert out is not None
        out = out[:, :n, :n, :n]
    finally:
        model.train(was_training)
    return out.clone()


def predict_voxels(net: Dm2Gal, fields: torch.Tensor, voxels: torch.Tensor, *, batch: int) -> torch.Tensor:
    """Per-voxel predictions ``(M,)`` of ``net`` on periodic crops of ``fields (C, n, n, n)`` centred on voxels.

    ``voxels``: ``(M, 3)`` integer grid indices (any integers, taken modulo ``n``); the crop of voxel ``v`` is
    ``fields[:, v - h : v + h + 1, ...]`` (periodic) with ``h = net.input_size // 2``; ``batch``: crops per forward
    pass. Eval mode under ``torch.inference_mode()``, training flag restored; result on the device of ``fields``.
    """
    _check_fields(fields)
    voxels = torch.as_tensor(voxels)
    if voxels.ndim != 2 or voxels.shape[1] != 3 or voxels.is_floating_point():
        raise ValueError(f"voxels must be an integer tensor of shape (M, 3), got {voxels.dtype} {tuple(voxels.shape)}")
    if batch < 1:
        raise ValueError(f"batch must be positive, got {batch}")
    half = net.input_size // 2
    starts = voxels.to(torch.int64) - half
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            outs = [
                net(extract_crops(fields, starts[b : b + batch], net.input_size)) for b in range(0, len(starts), batch)
            ]
            out = torch.cat(outs) if outs else fields.new_zeros((0,))
    finally:
        net.train(was_training)
    return out.clone()
