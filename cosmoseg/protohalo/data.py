"""Training samples for the protohalo networks (López-Cano et al. §2.2 and §2.7): periodic crops and cube symmetries.

A sample is a periodic input crop of ``size_in``^3 voxels of the linear fields (δ, φ) on the Lagrangian grid, and
the segmentation labels on its central output crop of ``size_out``^3 voxels (margin ``(size_in - size_out) / 2`` on
every side, as the paper's 144^3 → 128^3). The semantic network sees the channels (δ, φ); the instance network
sees (δ, φ, q_x, q_y, q_z) where ``q`` are the Lagrangian positions of the crop's cells.

Conventions
-----------
* **Symmetries**: the 48 symmetries of the cube and their conventions live in :mod:`cosmoseg.mesh.symmetry`
  (``cube_symmetries``, ``apply_symmetry``, ``transform_positions``, ...); every sample is moved by one of them.
* **Position channels** are positions *relative to the crop centre*, in the units of ``cell`` (Mpc/h when
  ``cell = L / n``; ``cell = 1`` gives cells). Cell ``i`` of a crop of side ``s`` sits at ``(i + 1/2 - s/2) * cell``
  (the cell-centre convention of :mod:`cosmoseg.mesh.grid`), so reversing an axis maps ``q → -q`` exactly and the
  channels are symmetric about the crop centre.
* :func:`transform_positions` moves position channels with the cube: spatially like any channel, then component
  ``d`` of the result is component ``perm[d]`` of the input, negated where ``flips[d]``. Hence, for the crop
  positions ``q = lagrangian_position_channels(s, cell)``, ``transform_positions(q, g) == q``: transforming the
  position channels and recomputing them from scratch on the transformed crop agree (tested), and a voxel moved by
  the symmetry carries the position of the cell it lands on.

Crop corners and symmetries are drawn from a ``torch.Generator``; :class:`ProtohaloCrops` draws sample ``i`` from
a generator seeded with ``(seed, i)``, so a dataset is deterministic under its seed and independent of the order
(or the worker) in which samples are read.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from cosmoseg.data import Field, Segmentation, load_artifact
from cosmoseg.mesh.symmetry import apply_symmetry, cube_symmetries, transform_positions
from cosmoseg.mesh.tidal import tidal_shear
from cosmoseg.protohalo.centres import centre_offsets
from cosmoseg.protohalo.mass_bins import mass_bin_classes
from cosmoseg.protohalo.panoptic import INPUT_CHANNELS
from cosmoseg.protohalo.stitching import extract_crops

__all__ = [
    "LINEAR_CHANNELS",
    "ProtohaloCrops",
    "balanced_ce_beta",
    "channel_problems",
    "collapsed_fraction",
    "labelling_limit",
    "lagrangian_position_channels",
    "linear_channels",
]

Mode = Literal["semantic", "instance", "offsets", "panoptic", "mass-bins"]
OFFSET_MODES = ("offsets", "panoptic")
"""The modes whose samples carry the centre-offset targets (:func:`cosmoseg.protohalo.centres.centre_offsets`)."""


def lagrangian_position_channels(
    size: int, cell: float = 1.0, *, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """``(3, size, size, size)`` positions of a crop's cell centres relative to the crop centre, units of ``cell``.

    Channel ``d`` at voxel ``(i0, i1, i2)`` is ``(i_d + 1/2 - size/2) * cell``.
    """
    if size <= 0:
        raise ValueError(f"crop size must be positive, got {size}")
    if not (math.isfinite(cell) and cell > 0):
        raise ValueError(f"cell size must be a positive number, got {cell}")
    ticks = (torch.arange(size, dtype=torch.float64) + 0.5 - size / 2) * cell
    grid = torch.meshgrid(ticks, ticks, ticks, indexing="ij")
    return torch.stack(grid).to(dtype=dtype, device=device)


def _labels(seg: Segmentation | torch.Tensor) -> torch.Tensor:
    return seg.labels if isinstance(seg, Segmentation) else torch.as_tensor(seg)


def collapsed_fraction(segmentations: Sequence[Segmentation | torch.Tensor]) -> float:
    """Fraction of voxels (particles) in a halo (label > 0), over all the given segmentations together."""
    segs = list(segmentations)
    if not segs:
        raise ValueError("collapsed_fraction needs at least one segmentation")
    positive = sum(int((_labels(s) > 0).sum()) for s in segs)
    total = sum(_labels(s).numel() for s in segs)
    if total == 0:
        raise ValueError("the segmentations hold no voxel")
    return positive / total


def labelling_limit(truth: Segmentation) -> int:
    """The fewest voxels a halo of ``truth`` may have: ``meta["min_particles"]`` (what ``sim.fof`` labelled, its
    ``segmentation_min_particles``), else the size of its smallest halo (1 when it has none)."""
    if "min_particles" in truth.meta:
        return int(truth.meta["min_particles"])
    sizes = torch.bincount(truth.labels.flatten().long().cpu())[1:]
    sizes = sizes[sizes > 0]
    return int(sizes.min()) if len(sizes) else 1


def balanced_ce_beta(segmentations: Sequence[Segmentation | torch.Tensor]) -> float:
    """β of the balanced cross-entropy (eq. 3): negative voxels / all voxels, measured on the training suite."""
    return 1.0 - collapsed_fraction(segmentations)


BoxSource = str | os.PathLike[str] | tuple[Field, Segmentation]


def _load_box(source: BoxSource, segmentation_key: str) -> tuple[Field, Segmentation, str]:
    if isinstance(source, tuple):
        fields, seg = source
        return fields, seg, "<in-memory box>"
    objects = load_artifact(source)
    missing = [k for k in ("fields", segmentation_key) if k not in objects]
    if missing:
        raise ValueError(f"{source}: box file has no {missing} (it has {sorted(objects)})")
    return objects["fields"], objects[segmentation_key], os.fspath(source)  # type: ignore[return-value]


LINEAR_CHANNELS: dict[str, str] = {
    "delta": "the linear density contrast δ at z = 0 (dimensionless)",
    "phi": "the linear potential φ, ∇²φ = δ, (Mpc/h)²",
    "shear": "the tidal shear q of φ (mesh.tidal_shear; dimensionless, as δ)",
}
"""The channels a protohalo network can take from a box's linear fields, by name."""


def channel_problems(names: Sequence[str]) -> list[str]:
    """What is wrong with a list of input channel names (empty, unknown or repeated names), [] when nothing is."""
    unknown = [name for name in names if name not in LINEAR_CHANNELS]
    if unknown or not names or len(set(names)) != len(names):
        return [
            f"channels {list(names)}: each must be one of {sorted(LINEAR_CHANNELS)}, at most once (unknown: {unknown})"
        ]
    return []


def linear_channels(fields: Field, names: Sequence[str] = ("delta", "phi")) -> torch.Tensor:
    """The named channels of a box's linear fields, stacked: (len(names), n, n, n) float32 on the fields' device.

    ``fields``: a Field with "delta" and "phi" channels (as ``sim.ics`` writes them); ``names``: keys of
    :data:`LINEAR_CHANNELS`, in the order the network takes them. "shear" is derived from φ by FFT over the whole
    periodic box. `ValueError` naming an unknown or repeated channel, or a missing field channel.
    """
    problems = channel_problems(names)
    if problems:
        raise ValueError(problems[0])
    missing = [c for c in ("delta", "phi") if c not in fields.channels]
    if missing:
        raise ValueError(f"the fields have no channel(s) {missing} (they have {fields.channels})")
    out = []
    for name in names:
        if name == "shear":
            out.append(tidal_shear(fields.channel("phi"), fields.box.length))
        else:
            out.append(fields.channel(name))
    return torch.stack([v.to(torch.float32) for v in out])


class ProtohaloCrops(torch.utils.data.Dataset):
    """Random periodic training crops over a list of boxes (files of ``cosmoseg simulate`` or (Field, Segmentation)).

    Sample ``i`` (``0 <= i < length``) is drawn from a generator seeded with ``(seed, i)``: a box uniformly, the
    output-crop corner uniformly over the box's voxels (periodic), and, with ``augment``, one of the 48 cube
    symmetries uniformly. It is a dict:

    * ``inputs``: float32 ``(C, size_in, size_in, size_in)``, the ``channels`` (default (δ, φ); any of
      :data:`LINEAR_CHANNELS`, all scalars, so a symmetry moves them as scalars), followed in the "instance" mode by
      (q_x, q_y, q_z) in Mpc/h relative to the crop centre (:func:`lagrangian_position_channels`);
    * ``labels``: int64 ``(size_out,)*3`` the box's halo ids on the central output crop (0 = no halo); in the
      "mass-bins" mode the class of each voxel instead (:func:`~cosmoseg.protohalo.mass_bins.mass_bin_classes` of
      the whole box with ``log_mass_edges``, the particle mass from the box's cosmology);
    * ``box``, ``corner`` (the output crop's first voxel in the box, before the symmetry), ``symmetry`` (index into
      :func:`cube_symmetries`);
    * ``offsets`` (modes "offsets" and "panoptic" only): float32 ``(3, size_out, size_out, size_out)`` the offset in
      cells from each voxel to its halo's Lagrangian centre (:func:`~cosmoseg.protohalo.centres.centre_offsets` of the
      whole box, so haloes cut by the crop edge keep their true centre), moved as a vector by the symmetry
      (:func:`transform_positions`); 0 outside haloes.
    """

    def __init__(
        self,
        boxes: Sequence[BoxSource],
        size_in: int,
        size_out: int,
        *,
        mode: Mode = "semantic",
        length: int = 1024,
        seed: int = 0,
        augment: bool = True,
        segmentation_key: str = "segmentation",
        channels: Sequence[str] = ("delta", "phi"),
        log_mass_edges: Sequence[float] | None = None,
    ) -> None:
        if mode not in INPUT_CHANNELS:
            raise ValueError(f"mode must be one of {sorted(INPUT_CHANNELS)}, got {mode!r}")
        problems = channel_problems(tuple(channels))
        if problems:
            raise ValueError(problems[0])
        if size_out <= 0 or size_in < size_out:
            raise ValueError(f"crop sizes need 0 < size_out <= size_in, got size_in={size_in}, size_out={size_out}")
        if (size_in - size_out) % 2:
            raise ValueError(
                f"size_in - size_out = {size_in - size_out} must be even so the output crop is centred "
                f"(size_in={size_in}, size_out={size_out})"
            )
        if length <= 0:
            raise ValueError(f"length must be positive, got {length}")
        if not boxes:
            raise ValueError("ProtohaloCrops needs at least one box")
        self.size_in, self.size_out, self.mode = int(size_in), int(size_out), mode
        self.linear_channels = tuple(channels)
        if (mode == "mass-bins") != (log_mass_edges is not None):
            raise ValueError("log_mass_edges are needed by the mass-bins mode, and by it only")
        self.log_mass_edges = None if log_mass_edges is None else [float(e) for e in log_mass_edges]
        self.length, self.seed, self.augment = int(length), int(seed), bool(augment)
        self.symmetries = cube_symmetries()
        self.inputs: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []
        self.offsets: list[torch.Tensor] = []
        self.cell: float | None = None
        for source in boxes:
            fields, seg, name = _load_box(source, segmentation_key)
            self._add(fields, seg, name)
        self.positions = lagrangian_position_channels(self.size_in, float(self.cell or 1.0))

    def _add(self, fields: Field, seg: Segmentation, name: str) -> None:
        if not isinstance(fields, Field) or not isinstance(seg, Segmentation):
            raise ValueError(
                f"{name}: expected a Field and a Segmentation, got {type(fields).__name__}, {type(seg).__name__}"
            )
        n = fields.n
        if seg.n != n:
            raise ValueError(f"{name}: fields are on a {n}^3 grid but the segmentation on a {seg.n}^3 grid")
        if not math.isclose(fields.box.length, seg.box.length, rel_tol=1e-9):
            raise ValueError(
                f"{name}: fields and segmentation belong to different boxes "
                f"(L = {fields.box.length} and {seg.box.length} Mpc/h)"
            )
        if self.size_in > n:
            raise ValueError(f"{name}: input crop size_in={self.size_in} is larger than the box ({n}^3 voxels)")
        cell = fields.box.length / n
        if self.cell is not None and not math.isclose(cell, self.cell, rel_tol=1e-9):
            raise ValueError(f"{name}: cell size {cell} Mpc/h differs from the first box's {self.cell} Mpc/h")
        self.cell = cell
        try:
            values = linear_channels(fields, self.linear_channels).to("cpu")
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
        self.inputs.append(values)
        labels = seg.labels.to("cpu", torch.int64)
        if self.log_mass_edges is not None:  # the classes come from whole haloes, before any crop
            particle_mass = float(fields.box.cosmology.particle_mass(n, fields.box.length))
            labels = mass_bin_classes(labels, particle_mass, self.log_mass_edges)
        self.labels.append(labels[None])
        if self.mode in OFFSET_MODES:
            self.offsets.append(centre_offsets(self.labels[-1][0]))

    @property
    def channels(self) -> tuple[str, ...]:
        """The names of the ``inputs`` channels, in order."""
        return self.linear_channels + (INPUT_CHANNELS["instance"][2:] if self.mode == "instance" else ())

    def __len__(self) -> int:
        return self.length

    def generator(self, index: int) -> torch.Generator:
        """The generator sample ``index`` is drawn from (seeded with ``(seed, index)``)."""
        state = np.random.SeedSequence([self.seed, int(index)]).generate_state(1, np.uint64)[0] >> np.uint64(1)
        return torch.Generator().manual_seed(int(state))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        if not -self.length <= index < self.length:
            raise IndexError(f"sample index {index} out of range for {self.length} samples")
        return self.sample(self.generator(index % self.length))

    def sample(self, generator: torch.Generator) -> dict[str, torch.Tensor | int]:
        """Draw one sample (see the class docstring) from ``generator``."""
        box = int(torch.randint(len(self.inputs), (1,), generator=generator))
        n = self.inputs[box].shape[-1]
        corner = torch.randint(n, (1, 3), generator=generator)
        sym = int(torch.randint(len(self.symmetries), (1,), generator=generator)) if self.augment else 0
        return self.crop(box, corner[0], sym)

    def crop(self, box: int, corner: torch.Tensor, symmetry: int = 0) -> dict[str, torch.Tensor | int]:
        """The sample of box ``box`` whose output crop starts at voxel ``corner (3,)``, under symmetry ``symmetry``."""
        corner = torch.as_tensor(corner, dtype=torch.int64).reshape(1, 3)
        margin = (self.size_in - self.size_out) // 2
        inputs = extract_crops(self.inputs[box], corner - margin, self.size_in)[0]
        labels = extract_crops(self.labels[box], corner, self.size_out)[0, 0]
        perm, flips = self.symmetries[symmetry]
        inputs = apply_symmetry(inputs, perm, flips)
        labels = apply_symmetry(labels, perm, flips)
        if self.mode == "instance":
            positions = transform_positions(self.positions, perm, flips, self.size_in)
            inputs = torch.cat([inputs, positions])
        sample: dict[str, torch.Tensor | int] = {
            "inputs": inputs.contiguous(),
            "labels": labels.contiguous(),
            "box": box,
            "corner": corner[0] % self.inputs[box].shape[-1],
            "symmetry": symmetry,
        }
        if self.mode in OFFSET_MODES:
            offsets = extract_crops(self.offsets[box], corner, self.size_out)[0]
            sample["offsets"] = transform_positions(offsets, perm, flips).contiguous()
        return sample
