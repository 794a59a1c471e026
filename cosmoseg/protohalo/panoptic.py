"""Full-box panoptic prediction from a semantic and an instance model (López-Cano et al. §2.2, appendices B and D).

The models are any torch modules (or callables) on crops:

* semantic: ``(B, 2, s_in, s_in, s_in)`` crops of (δ, φ) → ``(B, 1, s_out, s_out, s_out)`` logits;
* instance: ``(B, 5, s_in, s_in, s_in)`` crops of (δ, φ, q_x, q_y, q_z) → ``(B, D, s_out, s_out, s_out)``
  pseudo-space embeddings, where ``q`` are the Lagrangian positions of the crop's cells relative to the crop centre
  (Mpc/h by default, :func:`cosmoseg.protohalo.data.lagrangian_position_channels` with ``cell = L / n``).

Steps of :func:`predict_panoptic`:

1. probability of being in a halo: sigmoid of the semantic logits on one lattice of output crops
   (:func:`cosmoseg.protohalo.stitching.predict_semantic`); a voxel is in a halo where ``p > threshold`` (the
   threshold calibrated on the training suite with :func:`calibrate_threshold`, stored with the model);
2. per crop, the embeddings of the halo voxels only are grouped by the persistence clustering of appendix B
   (:func:`instance_labels_for_crops`); the instance model only runs on crops that contain a halo voxel;
3. the crop labels of two lattices offset by half a step are merged with the IoU ≥ 0.5 graph of appendix D
   (:func:`cosmoseg.protohalo.stitching.predict_instances`): labels unique across crops by construction, final
   labels 1..K by decreasing size, foreground exactly the thresholded semantic mask.

**Crops with few halo voxels.** :func:`~cosmoseg.protohalo.clustering.persistence_clustering` needs more than
``max(n_dens, n_ngb)`` points. A crop with fewer halo voxels than that makes them all *one* halo (label 1): such a
handful of voxels is, in practice, the edge of one halo whose bulk lies in a neighbouring crop, and the other
lattice (where the halo is seen whole) decides through the IoU merge. A crop with no halo voxel is all 0.

**Periodicity.** Everything is periodic; with ``offset`` (the corner of the first crop lattice) the prediction is
exactly equivariant: ``predict_panoptic(roll(fields, s), offset=o + s) == roll(predict_panoptic(fields, offset=o),
s)`` up to relabelling, for any shift ``s``.

Models that are ``nn.Module`` are run in eval mode under ``torch.inference_mode`` (their mode is restored after).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch

from cosmoseg.data import Field, Segmentation
from cosmoseg.errors import ValidationError
from cosmoseg.mesh.symmetry import cube_symmetries, symmetry_average
from cosmoseg.pipeline.executor import TaskMap, local_map
from cosmoseg.protohalo.centres import DEFAULT_GROUPING, instances_from_offsets
from cosmoseg.protohalo.clustering import persistence_clustering
from cosmoseg.protohalo.stitching import Progress, Tiling, predict_instances, predict_semantic

__all__ = [
    "FILTERED_CHANNELS",
    "INPUT_CHANNELS",
    "calibrate_threshold",
    "combine_linear_fields",
    "input_fields",
    "instance_labels_for_crops",
    "mass_bin_probabilities",
    "offset_maps",
    "predict_panoptic",
    "predict_panoptic_offsets",
    "remove_long_modes",
    "semantic_probabilities",
]

Model = Callable[[torch.Tensor], torch.Tensor]
PositionChannels = Callable[[int, float], torch.Tensor]

INPUT_CHANNELS: dict[str, tuple[str, ...]] = {
    "semantic": ("delta", "phi"),
    "instance": ("delta", "phi", "q_x", "q_y", "q_z"),
    "offsets": ("delta", "phi"),
    "panoptic": ("delta", "phi"),
    "mass-bins": ("delta", "phi"),
}
"""The input channels of each network: the semantic and instance nets of the paper, the centre-offset net
(:mod:`cosmoseg.protohalo.centres`), the shared-backbone net that predicts both (1 logit + 3 offsets) and the
mass-bin classifier (:mod:`cosmoseg.protohalo.mass_bins`; its default, it may take other linear channels)."""


def combine_linear_fields(density: Field, potential: Field | None = None) -> Field:
    """The ("delta", "phi") Field the models need, from a density and an optional separate potential.

    density: a Field with a "delta" channel (or a single channel, taken as δ), linear, scaled to z = 0.
    potential: a Field with a "phi" channel (or a single channel) on the same grid and box, (Mpc/h)²; without it
    the density's own "phi" channel is used, or, when it has none, φ is computed from δ with ∇²φ = δ
    (:func:`cosmoseg.sim.ics.linear_potential`). `ValidationError` naming the problem for a missing channel or a
    potential on another grid or box.
    """
    from cosmoseg.sim.ics import linear_potential

    def pick(field: Field, name: str, role: str) -> torch.Tensor:
        if name in field.channels:
            return field.channel(name)
        if len(field.channels) == 1:
            return field.values[0]
        raise ValidationError(f"the {role} Field has channels {field.channels}: expected a {name!r} channel")

    delta = pick(density, "delta", "density")
    if potential is not None:
        if potential.values.shape[1:] != density.values.shape[1:]:
            raise ValidationError(
                f"δ and φ have different shapes: density {tuple(density.values.shape[1:])}, "
                f"potential {tuple(potential.values.shape[1:])}"
            )
        if abs(potential.box.length - density.box.length) > 1e-9 * density.box.length:
            raise ValidationError(
                f"δ and φ come from different boxes: density L = {density.box.length:g} Mpc/h, "
                f"potential L = {potential.box.length:g} Mpc/h"
            )
        phi = pick(potential, "phi", "potential").to(device=delta.device, dtype=delta.dtype)
    elif "phi" in density.channels:
        if density.channels == ("delta", "phi"):
            return density
        phi = density.channel("phi")
    else:
        phi = linear_potential(delta, density.box.length)
    return Field(
        values=torch.stack([delta, phi]),
        box=density.box,
        channels=("delta", "phi"),
        units=("", "(Mpc/h)^2"),
        meta=dict(density.meta),
    )


OUTPUT_CHANNELS: dict[str, int] = {"semantic": 1, "offsets": 3, "panoptic": 4}
"""The output channels of the networks whose width is fixed (the instance embedding's is its own)."""

FILTERED_CHANNELS: tuple[str, ...] = ("phi",)
"""The channels :func:`remove_long_modes` filters by default, the preprocessing of the shipped models: φ only.
On a 128³ box of 100 Mpc/h the shipped models' F1 is 0.785 unfiltered, 0.803 with φ filtered, 0.769 with δ and φ
filtered (docs/protohalo.md): δ's long modes are physical (a region inside a large overdensity collapses more)
and carry little variance, φ's dominate its values."""

MODE_RTOL = 1e-6
"""Relative tolerance on |k| at the cut of :func:`remove_long_modes`: the training box's fundamental itself is kept."""


def remove_long_modes(
    fields: Field, training_length: float, channels: Sequence[str] = FILTERED_CHANNELS
) -> tuple[Field, dict[str, float]]:
    """``fields`` without the Fourier modes a training box of side ``training_length`` (Mpc/h) cannot hold.

    A periodic box of side L_train only has wavevectors k = 2π/L_train · (integer vector): none with
    0 < |k| < k_f = 2π/L_train. A bigger box has them, and they carry much of the variance of φ (its power goes as
    P(k)/k⁴): φ has a standard deviation of 66 (Mpc/h)² in a 100 Mpc/h box against 46–47 in 50 Mpc/h boxes, with
    values and gradients across a crop that a network trained on the small boxes never saw. This sets to zero every
    mode with |k| < k_f (1 − 1e-6), the mean (k = 0) included, of the named ``channels`` (φ by default, see
    :data:`FILTERED_CHANNELS`; the others are copied), so that the models see the training boxes' range of scales
    of them. A box whose side is not larger than ``training_length`` has no such mode: it is returned unchanged (the
    same object), so predictions on training-size boxes do not move by a rounding error.

    fields: a ``Field`` of shape ``(C, n, n, n)`` on a periodic box; training_length: Mpc/h, > 0; channels: names
    in ``fields.channels``.
    Returns the filtered Field (same shape, dtype, device, channels and units; ``meta["long_modes_removed_below"]``
    = k_f in h/Mpc) and, per filtered channel, the standard deviation of what was removed (the channel's units;
    empty when nothing was filtered). `ValidationError` for a missing channel or a bad ``training_length``.
    """
    if not (isinstance(training_length, (int, float)) and math.isfinite(training_length) and training_length > 0):
        raise ValidationError(f"training_length must be a positive box side in Mpc/h, got {training_length!r}")
    missing = [c for c in channels if c not in fields.channels]
    if missing:
        raise ValidationError(f"fields lack channel(s) {missing} to filter; they have {fields.channels}")
    if fields.box.length <= training_length * (1 + MODE_RTOL):
        return fields, {}
    from cosmoseg.mesh.fourier import fundamental_frequency, rfft_k_magnitude

    n = fields.values.shape[-1]
    k_cut = fundamental_frequency(training_length) * (1 - MODE_RTOL)
    k = rfft_k_magnitude(n, fields.box.length, device=fields.values.device, dtype=torch.float64)
    long = k < k_cut
    values = fields.values.clone()
    removed: dict[str, float] = {}
    for name in channels:
        i = fields.channels.index(name)
        channel = values[i].to(torch.float64)
        modes = torch.fft.rfftn(channel)
        modes[long] = 0
        filtered = torch.fft.irfftn(modes, s=channel.shape)
        removed[name] = float((channel - filtered).std())
        values[i] = filtered.to(values.dtype)
    meta = {**fields.meta, "long_modes_removed_below": fundamental_frequency(training_length)}
    return dataclasses.replace(fields, values=values, meta=meta), removed


def input_fields(fields: Field) -> torch.Tensor:
    """The ``(2, n, n, n)`` (δ, φ) values of ``fields`` on the CPU, after checking channels and finiteness."""
    if not isinstance(fields, Field):
        raise ValidationError(f"fields must be a Field with channels ('delta', 'phi'), got {type(fields).__name__}")
    missing = [c for c in INPUT_CHANNELS["semantic"] if c not in fields.channels]
    if missing:
        raise ValidationError(
            f"fields lack channel(s) {missing}: the models need ('delta', 'phi'), got {fields.channels}"
        )
    values = torch.stack([fields.channel("delta"), fields.channel("phi")]).detach().cpu()
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        where = [int(i) for i in torch.nonzero(bad)[0]]
        raise ValidationError(
            f"fields hold {int(bad.sum())} NaN or infinite value(s), the first in channel "
            f"{INPUT_CHANNELS['semantic'][where[0]]!r} at voxel {tuple(where[1:])}"
        )
    return values


def _model_device_dtype(model: Model, device: torch.device | str | None) -> tuple[torch.device, torch.dtype]:
    param = None
    if isinstance(model, torch.nn.Module):
        param = next(model.parameters(), None)
    dev = torch.device(device) if device is not None else (param.device if param is not None else torch.device("cpu"))
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    return dev, dtype


@contextlib.contextmanager
def _evaluating(model: Model) -> Iterator[None]:
    """Eval mode and inference mode for the duration; the module's training flag is restored after."""
    was = model.training if isinstance(model, torch.nn.Module) else None
    if isinstance(model, torch.nn.Module):
        model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        if isinstance(model, torch.nn.Module) and was is not None:
            model.train(was)


def _autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager[None]:
    """float16 autocast on CUDA when ``amp`` (the networks' convolutions run on tensor cores); a no-op elsewhere."""
    if amp and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def _call(model: Model, x: torch.Tensor, kind: str, size_out: int, amp: bool = False) -> torch.Tensor:
    """``model(x)`` with a clear error naming the expected input channels and output shape."""
    channels = INPUT_CHANNELS[kind]
    try:
        with _autocast(x.device, amp):
            out = model(x)
    except RuntimeError as err:
        raise ValidationError(
            f"the {kind} model failed on crops of shape {tuple(x.shape)}; it must take {len(channels)} input "
            f"channels {channels} and return (B, {OUTPUT_CHANNELS.get(kind, 'D')}, {size_out}, {size_out}, "
            f"{size_out}): {err}"
        ) from err
    out = torch.as_tensor(out)
    spatial = (size_out, size_out, size_out)
    width = OUTPUT_CHANNELS.get(kind)
    ok = out.ndim == 5 and out.shape[0] == x.shape[0] and tuple(out.shape[2:]) == spatial
    ok = ok and (out.shape[1] == width if width else out.shape[1] >= 1)
    if not ok:
        want = f"({x.shape[0]}, {width or 'D'}, {size_out}, {size_out}, {size_out})"
        raise ValidationError(
            f"the {kind} model returned shape {tuple(out.shape)} for input crops {tuple(x.shape)} with channels "
            f"{channels}; expected {want}"
        )
    if not out.is_floating_point():
        raise ValidationError(f"the {kind} model must return floating-point values, got {out.dtype}")
    bad = ~torch.isfinite(out)
    if bool(bad.any()):
        raise ValidationError(f"the {kind} model returned {int(bad.sum())} NaN or infinite value(s)")
    return out


def _lattice_outputs(
    values: torch.Tensor,
    model: Model,
    kind: str,
    *,
    size_in: int,
    size_out: int,
    batch_size: int,
    device: torch.device | str | None,
    offset: int,
    amp: bool = False,
    keep: int | None = None,
    progress: Progress | None = None,
    tiling: Tiling | None = None,
) -> torch.Tensor:
    """The ``(C, n, n, n)`` float32 outputs of ``model`` (a ``kind`` network) on one crop lattice, on the CPU
    (``tiling``: tile by tile as tasks, :class:`~cosmoseg.protohalo.stitching.Tiling`)."""
    dev, dtype = _model_device_dtype(model, device)
    keep = size_out if keep is None else keep
    t = (size_out - keep) // 2

    def predict(crops: torch.Tensor) -> torch.Tensor:
        out = _call(model, crops.to(device=dev, dtype=dtype), kind, size_out, amp)
        return out[:, :, t : t + keep, t : t + keep, t : t + keep].float().cpu()

    with _evaluating(model):
        return predict_semantic(values, predict, size_in, keep, batch_size, offset, progress=progress, tiling=tiling)


def _semantic_probabilities(values: torch.Tensor, model: Model, **lattice: Any) -> torch.Tensor:
    """``(n, n, n)`` sigmoid of a semantic net's logits on one lattice (``lattice``: as :func:`_lattice_outputs`)."""
    return torch.sigmoid(_lattice_outputs(values, model, "semantic", **lattice)[0])


def mass_bin_probabilities(
    values: torch.Tensor,
    model: Model,
    *,
    size_in: int,
    size_out: int,
    batch_size: int = 4,
    device: torch.device | str | None = None,
    offset: int = 0,
    amp: bool = True,
    symmetries: int = 1,
) -> torch.Tensor:
    """``(K + 1, n, n, n)`` float32 class probabilities of a mass-bin net over a whole periodic box (softmax).

    ``values``: ``(C, n, n, n)`` the net's input channels (``protohalo.data.linear_channels`` of the box, in the order
    its checkpoint's ``channels`` give: scalars under the cube's symmetries); ``model``: ``(B, C, s_in^3)`` →
    ``(B, K + 1, s_out^3)`` logits, run on one crop lattice as :func:`semantic_probabilities`; ``symmetries``: 1..48,
    test-time augmentation, the probabilities averaged over the first that many cube symmetries
    (:func:`~cosmoseg.mesh.symmetry.symmetry_average`). The result is on the CPU; its argmax is the predicted class.
    """
    if values.ndim != 4 or not (values.shape[1] == values.shape[2] == values.shape[3]):
        raise ValidationError(f"values must be (C, n, n, n) input channels, got shape {tuple(values.shape)}")
    if not 1 <= symmetries <= 48:
        raise ValidationError(f"symmetries must be 1..48 (the cube's), got {symmetries}")
    lattice = {"size_in": size_in, "size_out": size_out, "batch_size": batch_size, "device": device}

    def probabilities(volume: torch.Tensor) -> torch.Tensor:
        logits = _lattice_outputs(volume, model, "mass-bins", offset=offset, amp=amp, **lattice)
        return torch.softmax(logits, dim=0)

    return symmetry_average(probabilities, values.detach().cpu().float(), cube_symmetries()[:symmetries])


def semantic_probabilities(
    fields: Field,
    model: Model,
    *,
    size_in: int,
    size_out: int,
    batch_size: int = 4,
    device: torch.device | str | None = None,
    offset: int = 0,
    amp: bool = True,
    tile: int = 0,
    map_tasks: TaskMap = local_map,
) -> torch.Tensor:
    """``(n, n, n)`` float32 probability of being in a halo: sigmoid of ``model``'s logits on one crop lattice.

    ``model``: ``(B, 2, s_in^3)`` crops of (δ, φ) → ``(B, 1, s_out^3)`` logits. ``device``: where the model runs
    (default: its parameters' device, else the CPU). ``amp``: float16 autocast when the model runs on CUDA. ``tile``,
    ``map_tasks``: as :func:`predict_panoptic`. The result is on the CPU.
    """
    values = input_fields(fields)
    return _semantic_probabilities(
        values,
        model,
        size_in=size_in,
        size_out=size_out,
        batch_size=batch_size,
        device=device,
        offset=offset,
        amp=amp,
        tiling=_tiling(tile, map_tasks, values.shape[-1], size_out),
    )


def instance_labels_for_crops(
    embeddings: torch.Tensor,
    mask: torch.Tensor,
    *,
    n_dens: int = 20,
    n_ngb: int = 15,
    p_thresh: float = 4.2,
) -> torch.Tensor:
    """Local instance labels ``(B, *spatial)`` int64 of every crop, from ``embeddings (B, D, *spatial)``.

    Only the voxels where ``mask (B, *spatial)`` (bool: in a halo) is true are clustered, crop by crop, with
    :func:`~cosmoseg.protohalo.clustering.persistence_clustering` (labels 1..K by decreasing size); other voxels
    are 0. A crop with fewer than ``max(n_dens, n_ngb) + 1`` halo voxels makes them one halo (label 1); a crop
    with none is all 0 (see the module docstring).
    """
    if embeddings.ndim < 3:
        raise ValidationError(f"embeddings must have shape (B, D, *spatial), got {tuple(embeddings.shape)}")
    mask = torch.as_tensor(mask)
    if mask.dtype != torch.bool:
        raise ValidationError(f"mask must be boolean, got {mask.dtype}")
    if mask.shape != embeddings.shape[:1] + embeddings.shape[2:]:
        raise ValidationError(
            f"mask shape {tuple(mask.shape)} does not match embeddings {tuple(embeddings.shape)} (B, D, *spatial)"
        )
    emb = embeddings.detach().cpu()
    mask = mask.cpu()
    labels = torch.zeros(mask.shape, dtype=torch.int64)
    need = max(int(n_dens), int(n_ngb)) + 1
    for b in range(len(emb)):
        count = int(mask[b].sum())
        if count == 0:
            continue
        if count < need:
            labels[b][mask[b]] = 1
            continue
        points = emb[b].movedim(0, -1)[mask[b]].double()
        labels[b][mask[b]] = persistence_clustering(points, n_dens=n_dens, n_ngb=n_ngb, p_thresh=p_thresh).cpu()
    return labels


def _default_positions(size: int, cell: float) -> torch.Tensor:
    from cosmoseg.protohalo.data import lagrangian_position_channels

    return lagrangian_position_channels(size, cell)


def _tiling(tile: int, map_tasks: TaskMap, n: int, step: int) -> Tiling | None:
    """The :class:`~cosmoseg.protohalo.stitching.Tiling` of ``tile`` voxels (0: the whole box at once), checked
    against the box side ``n`` and the crop lattice step; `ValidationError` naming both otherwise."""
    if tile == 0:
        return None
    if not (isinstance(tile, int) and tile > 0 and tile % step == 0 and n % tile == 0):
        raise ValidationError(
            f"tile={tile!r} must be a multiple of the crop lattice step {step} that divides the box side {n} "
            f"(or 0 for the whole box at once)"
        )
    return Tiling(tile, map_tasks)


def _check_threshold(threshold: float) -> None:
    if not (isinstance(threshold, (int, float)) and 0.0 <= float(threshold) <= 1.0):
        raise ValidationError(f"threshold must be a probability in [0, 1], got {threshold!r}")


def _voxels_in_haloes(probs: torch.Tensor, threshold: float, mask: torch.Tensor | None) -> torch.Tensor:
    """``(n, n, n)`` bool on the probabilities' device: ``probs > threshold``, or the given oracle ``mask``."""
    if mask is None:
        return probs > float(threshold)
    if tuple(mask.shape) != tuple(probs.shape):
        raise ValidationError(f"mask has shape {tuple(mask.shape)}, but the box is {tuple(probs.shape)}")
    return mask.to(probs.device).bool()


def predict_panoptic(
    fields: Field,
    semantic_model: Model,
    instance_model: Model,
    *,
    size_in: int,
    size_out: int,
    threshold: float,
    batch_size: int = 4,
    n_dens: int = 20,
    n_ngb: int = 15,
    p_thresh: float = 4.2,
    iou_threshold: float = 0.5,
    offset: int = 0,
    device: torch.device | str | None = None,
    position_channels: PositionChannels | None = None,
    amp: bool = True,
    keep: int | None = None,
    progress: Progress | None = None,
    mask: torch.Tensor | None = None,
    tile: int = 0,
    map_tasks: TaskMap = local_map,
) -> Segmentation:
    """Full-box protohalo instance segmentation of ``fields`` (channels δ, φ) with the two models.

    ``threshold``: a voxel is in a halo where its semantic probability is above it (:func:`calibrate_threshold`).
    ``n_dens``, ``n_ngb``, ``p_thresh``: the clustering of appendix B; ``iou_threshold``: the lattice merge of
    appendix D; ``offset``: corner of the first crop lattice; ``device``: where the models run (default: their
    parameters' device); ``position_channels(size, cell) -> (3, size, size, size)``: the Lagrangian-position
    channels of an instance crop (default: cell centres relative to the crop centre, ``cell = L / n`` Mpc/h);
    ``amp``: the networks run under float16 autocast when on CUDA (no effect on the CPU); ``keep``: the side of
    the central part of each output crop that is used, and so the lattice step (default ``size_out``: the whole
    valid output; the paper keeps the central half, ``size_out / 2``, at 8 times the crops). The instance crops
    are clustered over their whole output before the centre is cut out. ``progress(iterable, total=...,
    description=...)`` (e.g. a stage's ``self.ctx.progress``) is advanced once per batch of crops of the semantic
    lattice and of each instance lattice (the instance batches include their clustering); ``None``: silent.

    ``mask`` (optional, (n, n, n) bool): the voxels to cluster into instances instead of the semantic map above the
    threshold (an oracle study: the true mask, to score the instance model alone); the probabilities are returned
    as computed.

    ``tile`` (voxels, a multiple of the lattice step that divides ``n``; 0 = the whole box at once): each lattice runs
    over tiles of that side, one task per tile through ``map_tasks`` (:data:`~cosmoseg.pipeline.executor.TaskMap`:
    in this process by default, or a Dask cluster's, ``ctx.map_tasks`` in a stage); the labels are made unique and
    the lattices merged once, over the whole box (:mod:`cosmoseg.protohalo.stitching`). The same segmentation as the
    whole box at once.

    Returns a ``Segmentation`` on ``fields``' device: labels 1..K by decreasing size (0 = no halo), the
    probabilities, and ``meta`` with the threshold and the crop sizes.
    """
    _check_threshold(threshold)
    values = input_fields(fields)
    n = values.shape[-1]
    keep = size_out if keep is None else keep
    if not (isinstance(keep, int) and 0 < keep <= size_out and (size_out - keep) % 2 == 0):
        raise ValidationError(
            f"keep={keep!r} must be a positive int <= size_out={size_out} with size_out - keep even (a centred part)"
        )
    step = "size_out" if keep == size_out else "keep"
    if n % keep:
        raise ValidationError(f"box side n={n} must be a multiple of the crop lattice step {step}={keep}")
    if keep % 2:
        raise ValidationError(f"the instance lattices are offset by half a step: {step}={keep} must be even")
    tiling = _tiling(tile, map_tasks, n, keep)
    probs = _semantic_probabilities(
        values,
        semantic_model,
        size_in=size_in,
        size_out=size_out,
        batch_size=batch_size,
        device=device,
        offset=offset,
        amp=amp,
        keep=keep,
        progress=progress,
        tiling=tiling,
    )
    mask = _voxels_in_haloes(probs, threshold, mask)

    dev, dtype = _model_device_dtype(instance_model, device)
    make_positions = position_channels or _default_positions
    positions = torch.as_tensor(make_positions(size_in, fields.cell_size))
    if tuple(positions.shape) != (3, size_in, size_in, size_in):
        raise ValidationError(
            f"position_channels returned shape {tuple(positions.shape)}, expected (3, {size_in}, {size_in}, {size_in})"
        )
    positions = positions.to(device=dev, dtype=dtype)
    m, t = (size_in - size_out) // 2, (size_out - keep) // 2

    def predict(crops: torch.Tensor) -> torch.Tensor:
        crop_mask = crops[:, 2, m : m + size_out, m : m + size_out, m : m + size_out] > 0.5
        labels = torch.zeros(crop_mask.shape, dtype=torch.int64)
        busy = torch.nonzero(crop_mask[:, t : t + keep, t : t + keep, t : t + keep].flatten(1).any(1)).reshape(-1)
        if len(busy) == 0:
            return labels[:, t : t + keep, t : t + keep, t : t + keep]
        x = crops[busy, :2].to(device=dev, dtype=dtype)
        x = torch.cat([x, positions.expand(len(busy), -1, -1, -1, -1)], dim=1)
        emb = _call(instance_model, x, "instance", size_out, amp)
        labels[busy] = instance_labels_for_crops(
            emb.float(), crop_mask[busy], n_dens=n_dens, n_ngb=n_ngb, p_thresh=p_thresh
        )
        return labels[:, t : t + keep, t : t + keep, t : t + keep]

    stacked = torch.cat([values, mask[None].to(values.dtype)])
    with _evaluating(instance_model):
        labels = predict_instances(
            stacked, predict, size_in, keep, batch_size, offset, iou_threshold, progress=progress, tiling=tiling
        )
    dev_out = fields.values.device
    return Segmentation(
        labels=labels.to(dev_out),
        probabilities=probs.to(dev_out),
        box=fields.box,
        meta={"threshold": float(threshold), "size_in": int(size_in), "size_out": int(size_out), "keep": int(keep)},
    )


def calibrate_threshold(probabilities: Sequence[torch.Tensor], target_fraction: float) -> float:
    """The semantic threshold whose predicted collapsed fraction (``p > threshold``) equals ``target_fraction``.

    Over all voxels of all the given probability cubes together (e.g. the training suite's predictions),
    ``k = round(target_fraction * N)`` voxels are above the returned threshold: it is the midpoint between the
    k-th and (k+1)-th largest probabilities (exact when those differ; with ties at the cut the fraction is
    below the target). ``target_fraction = 0`` gives the largest probability, ``1`` a value just below the smallest.
    """
    if not (isinstance(target_fraction, (int, float)) and 0.0 <= float(target_fraction) <= 1.0):
        raise ValidationError(f"target_fraction must lie in [0, 1], got {target_fraction!r}")
    cubes = [torch.as_tensor(p).detach().reshape(-1).double().cpu() for p in probabilities]
    if not cubes or sum(c.numel() for c in cubes) == 0:
        raise ValidationError("calibrate_threshold needs at least one non-empty probability cube")
    flat = torch.cat(cubes)
    if not bool(torch.isfinite(flat).all()) or float(flat.min()) < 0 or float(flat.max()) > 1:
        raise ValidationError("probabilities must be finite values in [0, 1]")
    total = flat.numel()
    k = round(float(target_fraction) * total)
    if k == 0:
        return float(flat.max())
    if k == total:
        return math.nextafter(float(flat.min()), -math.inf)
    lower = float(torch.kthvalue(flat, total - k).values)  # the (k+1)-th largest
    upper = float(torch.kthvalue(flat, total - k + 1).values)  # the k-th largest
    return 0.5 * (lower + upper)


def offset_maps(
    fields: Field,
    semantic_model: Model | None,
    offset_model: Model,
    *,
    size_in: int,
    size_out: int,
    batch_size: int = 4,
    symmetries: int = 1,
    offset: int = 0,
    device: torch.device | str | None = None,
    amp: bool = True,
    keep: int | None = None,
    progress: Progress | None = None,
    tile: int = 0,
    map_tasks: TaskMap = local_map,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The full-box maps of a centre-offsets pair: the probability ``(n, n, n)`` of being in a halo and the offsets
    ``(3, n, n, n)`` (cells) to the halo centre, float32 on the CPU (arguments: :func:`predict_panoptic_offsets`)."""
    if not (isinstance(symmetries, int) and 1 <= symmetries <= 48):
        raise ValidationError(f"symmetries must be an integer from 1 to 48, got {symmetries!r}")
    values = input_fields(fields)
    lattice: dict[str, Any] = {
        "size_in": size_in,
        "size_out": size_out,
        "batch_size": batch_size,
        "device": device,
        "offset": offset,
        "amp": amp,
        "keep": keep,
        "progress": progress,
        "tiling": _tiling(tile, map_tasks, values.shape[-1], size_out if keep is None else keep),
    }

    def predict(volume: torch.Tensor) -> torch.Tensor:
        if semantic_model is None:
            out = _lattice_outputs(volume, offset_model, "panoptic", **lattice)
            return torch.cat([torch.sigmoid(out[:1]), out[1:]])
        probs = _semantic_probabilities(volume, semantic_model, **lattice)
        return torch.cat([probs[None], _lattice_outputs(volume, offset_model, "offsets", **lattice)])

    maps = symmetry_average(predict, values, cube_symmetries()[:symmetries], vector_channels=(1, 2, 3))
    return maps[0], maps[1:]


def predict_panoptic_offsets(
    fields: Field,
    semantic_model: Model | None,
    offset_model: Model,
    *,
    size_in: int,
    size_out: int,
    threshold: float,
    batch_size: int = 4,
    grouping: Mapping[str, float] | None = None,
    symmetries: int = 1,
    offset: int = 0,
    device: torch.device | str | None = None,
    amp: bool = True,
    keep: int | None = None,
    progress: Progress | None = None,
    mask: torch.Tensor | None = None,
    tile: int = 0,
    map_tasks: TaskMap = local_map,
) -> Segmentation:
    """Full-box protohalo segmentation with the centre-offset instance formulation (:mod:`cosmoseg.protohalo.centres`).

    ``offset_model``: ``(B, 2, s_in³)`` crops of (δ, φ) → ``(B, 3, s_out³)`` offsets (cells) to the halo centre, with
    ``semantic_model`` the semantic net; or, with ``semantic_model=None``, a shared-backbone net → ``(B, 4, s_out³)``,
    channel 0 the semantic logit and 1–3 the offsets. Each net runs on one crop lattice (no second lattice and no
    stitching: the offsets share the box's frame); a voxel is in a halo where the probability is above ``threshold``
    (or where ``mask`` is, an oracle study), and the votes of those voxels are grouped once over the whole box
    (:func:`~cosmoseg.protohalo.centres.instances_from_offsets`; ``grouping``: its ``smoothing``, ``min_votes``,
    ``seed_separation``, ``merge_radius``, ``vote_radius``, ``grow_threshold`` (not with ``mask``), default
    :data:`~cosmoseg.protohalo.centres.DEFAULT_GROUPING`).

    ``symmetries`` > 1: test-time augmentation over the first ``symmetries`` of the 48 cube symmetries
    (:func:`~cosmoseg.mesh.symmetry.symmetry_average`): the probabilities are averaged, and the offsets averaged as
    vectors, each brought back to the box's frame. The cost is ``symmetries`` times the networks'.
    ``offset``, ``device``, ``amp``, ``keep``, ``progress``, ``tile``, ``map_tasks``: as :func:`predict_panoptic` (the
    votes are grouped once, over the whole box, after every tile is back).

    Returns a ``Segmentation`` on ``fields``' device: labels 1..K by decreasing size (0 = no halo), the probabilities,
    and ``meta`` with the threshold, the crop sizes, the grouping (``grouping_<setting>``) and the number of
    symmetries.
    """
    _check_threshold(threshold)
    settings = {**DEFAULT_GROUPING, **(grouping or {})}
    unknown = sorted(set(settings) - set(DEFAULT_GROUPING))
    if unknown:
        raise ValidationError(f"unknown grouping setting(s) {unknown}; known: {sorted(DEFAULT_GROUPING)}")
    probs, offsets = offset_maps(
        fields,
        semantic_model,
        offset_model,
        size_in=size_in,
        size_out=size_out,
        batch_size=batch_size,
        symmetries=symmetries,
        offset=offset,
        device=device,
        amp=amp,
        keep=keep,
        progress=progress,
        tile=tile,
        map_tasks=map_tasks,
    )
    if mask is not None:  # an oracle mask is the membership: nothing grows beyond it
        settings = {**settings, "grow_threshold": 0.0}
    labels = instances_from_offsets(
        offsets, _voxels_in_haloes(probs, threshold, mask), probabilities=probs.cpu(), **settings
    )
    dev_out = fields.values.device
    return Segmentation(
        labels=labels.to(dev_out),
        probabilities=probs.to(dev_out),
        box=fields.box,
        meta={
            "threshold": float(threshold),
            "size_in": int(size_in),
            "size_out": int(size_out),
            "keep": int(size_out if keep is None else keep),
            "instances": "centre offsets",
            **{f"grouping_{k}": float(v) for k, v in settings.items()},
            "symmetries": int(symmetries),
        },
    )
