"""Training of the protohalo networks (López-Cano et al. §2.2–2.3, §2.7): semantic and instance V-Nets.

:func:`train` reads the box files of a suite (``box_*.h5`` of ``cosmoseg simulate``: linear fields and the
Lagrangian ``Segmentation``), splits them by box into training and validation (:func:`split_boxes`), and trains

* the **semantic** net: (δ, φ) → 1 logit per voxel, balanced cross-entropy (eq. 3) with β, the fraction of
  voxels in no halo, measured on the training boxes;
* the **instance** net: (δ, φ, q_x, q_y, q_z) → ``embedding_dim`` pseudo-space coordinates per voxel, Weinberger
  loss (eqs. 4–7) on the voxels that belong to haloes (label > 0);
* the **offsets** net (an instance formulation beside the paper's, :mod:`cosmoseg.protohalo.centres`): (δ, φ) → the
  3 components of the offset (cells) from each voxel to its halo's Lagrangian centre,
  :func:`~cosmoseg.nn.centre_offset_loss` on the halo voxels (``offset_weighting`` "halo": every halo weighs the
  same, small ones as much as large ones; "voxel": every voxel);
* the **panoptic** net: one shared V-Net, (δ, φ) → 1 semantic logit and the 3 offsets; its loss is the balanced
  cross-entropy plus ``c_offset`` times the offset loss, and its semantic threshold is calibrated as the semantic
  net's.

All are `cosmoseg.nn.VNet` with ``crop = (size_in - size_out) / 2``; with ``position_residual`` > 0 the instance
embedding is that scale times the Lagrangian position of the voxel plus the V-Net's output
(:class:`PositionResidual`). Training sample ``i`` of the run is sample
``i`` of a :class:`~cosmoseg.protohalo.data.ProtohaloCrops` (seeded per index), so the batch of step ``s`` is
fixed by the seed and a resumed run sees the same batches as an uninterrupted one.

The checkpoint ``<output_dir>/<task>.pt`` (written atomically at every validation and at the end, loadable with
``weights_only=True``) holds the model, optimizer and step, plus metadata: the architecture (``task``,
``in_channels``, ``channels``, ``size_in``, ``size_out``, ``base_filters``, ``depth``, ``embedding_dim``, ``norm``,
``activation``), the data (``grid_n``, ``box_length``, ``particle_mass`` and ``cosmology`` of the first training
box, ``beta``, ``collapsed_fraction``), the preprocessing of the inputs at prediction time (``input_highpass``:
the modes longer than the training boxes are removed from δ and φ of bigger boxes,
:func:`~cosmoseg.protohalo.panoptic.remove_long_modes`), the final validation loss and, for the semantic net, the
threshold calibrated after training so that the predicted collapsed fraction of the training boxes equals the true one
(:func:`~cosmoseg.protohalo.panoptic.calibrate_threshold`); when calibration is off or impossible (box side not a
multiple of ``size_out``) the threshold is 0.5 and ``threshold_calibrated`` is False.

Under ``torchrun --nproc-per-node N`` (a process group initialised by the caller,
`cosmoseg.nn.distributed.init_from_env`) ``batch_size`` is the global batch: rank ``r`` makes and trains on samples
``s·B + r·B/N … s·B + (r+1)·B/N − 1`` of step ``s``, the `~cosmoseg.nn.Trainer` averages the gradients, and rank 0
alone calibrates and writes the checkpoint, so N processes train the same model as one process with the same
``batch_size`` (up to float rounding and, on CPU, the batch-norm statistics of each rank's share).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from cosmoseg.data import COSMOLOGY_PARAMETERS, Field, Segmentation, load_artifact
from cosmoseg.errors import ArtifactError, ConfigError, ValidationError
from cosmoseg.nn import (
    Trainer,
    VNet,
    background_push_loss,
    balanced_cross_entropy,
    centre_offset_loss,
    discriminative_loss,
    load_checkpoint,
    read_checkpoint,
    small_halo_weights,
)
from cosmoseg.nn.distributed import get_world_size, is_main_process, rank_slice
from cosmoseg.nn.unetr import UNETR, unetr_size_problems
from cosmoseg.protohalo.data import (
    LINEAR_CHANNELS,
    ProtohaloCrops,
    balanced_ce_beta,
    channel_problems,
    collapsed_fraction,
    labelling_limit,
    linear_channels,
)
from cosmoseg.protohalo.mass_bins import calibrate_class_bias, mass_bin_classes, mass_bin_edges
from cosmoseg.protohalo.panoptic import (
    FILTERED_CHANNELS,
    INPUT_CHANNELS,
    OUTPUT_CHANNELS,
    calibrate_threshold,
    mass_bin_probabilities,
    semantic_probabilities,
)
from cosmoseg.sim.suites import find_boxes, split_suite

__all__ = [
    "ARCHITECTURE_KEYS",
    "COSMOLOGY_KEYS",
    "TrainConfig",
    "checkpoint_path",
    "find_boxes",
    "load_model",
    "make_model",
    "split_boxes",
    "suite_mass_bin_edges",
    "train",
    "training_cosmology",
]

Task = Literal["semantic", "instance", "offsets", "panoptic", "mass-bins"]
COSMOLOGY_KEYS = COSMOLOGY_PARAMETERS
"""The cosmological parameters of the training boxes a checkpoint records (metadata ``cosmology``)."""
ARCHITECTURE_KEYS = ("task", "in_channels", "size_in", "size_out", "base_filters", "depth", "embedding_dim")
"""Metadata that must agree between a checkpoint and the model it is loaded into (and on ``resume``)."""
UNETR_KEYS = ("backbone", "hidden_size", "num_heads")
"""Metadata a UNETR checkpoint must also agree on (a V-Net checkpoint of before the choice has no ``backbone``)."""
BACKBONES = ("vnet", "unetr")
UNETR_DEPTH = 4
DEFAULT_THRESHOLD = 0.5


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (see the module docstring).

    ``steps`` is the total number of optimizer steps (a resumed run trains up to it). ``n_validation`` whole
    boxes are held out (0: no validation loss), chosen by ``seed``, or the boxes a checkpoint recorded when
    ``split_from`` names it (:func:`split_boxes`). ``validate_every`` steps the validation loss is measured on
    ``validation_crops`` fixed crops and the checkpoint is written. The Weinberger parameters default to the
    paper's (δ_pull = 0.5, δ_push = 1.5, c_pull = c_push = 1, c_reg = 0.001). ``c_background`` > 0 adds
    :func:`~cosmoseg.nn.losses.background_push_loss` (margin δ_push) to the instance loss: the voxels of no halo kept
    away from every halo centre (0, the paper's loss, leaves them untrained). ``small_halo_boost`` > 0 weights the
    semantic cross-entropy of a halo's voxels by ``1 + boost min(1, N_min / n)`` (:func:`~cosmoseg.nn.losses.
    small_halo_weights`; n its voxels in the crop, N_min the suite's labelling limit in voxels): the semantic and
    panoptic tasks; 0 is the paper's loss.
    """

    task: Task = "semantic"
    backbone: Literal["vnet", "unetr"] = "vnet"
    size_in: int = 40
    size_out: int = 32
    base_filters: int = 8
    depth: int = 3
    hidden_size: int = 96
    num_heads: int = 4
    embedding_dim: int = 3
    batch_size: int = 2
    steps: int = 1000
    lr: float = 1e-3
    grad_clip: float | None = 1.0
    n_validation: int = 1
    validation_crops: int = 8
    seed: int = 0
    validate_every: int = 100
    augment: bool = True
    calibrate: bool = True
    delta_pull: float = 0.5
    delta_push: float = 1.5
    c_pull: float = 1.0
    c_push: float = 1.0
    c_reg: float = 0.001
    c_background: float = 0.0
    small_halo_boost: float = 0.0
    channels: tuple[str, ...] = ()
    n_mass_bins: int = 6
    offset_weighting: Literal["halo", "voxel"] = "halo"
    c_offset: float = 0.1
    position_residual: float = 0.0
    lr_schedule: Literal["constant", "cosine"] = "constant"
    init_from: str = ""
    split_from: str = ""
    device: str = "cpu"

    def problems(self) -> list[str]:
        out = []
        if self.task not in INPUT_CHANNELS:
            out.append(f"task must be one of {sorted(INPUT_CHANNELS)}, got {self.task!r}")
        if not 0 < self.size_out <= self.size_in:
            out.append(f"crop sizes need 0 < size_out <= size_in, got size_in={self.size_in}, size_out={self.size_out}")
        elif (self.size_in - self.size_out) % 2:
            out.append(
                f"size_in - size_out = {self.size_in - self.size_out} must be even so the output crop is centred "
                f"(size_in={self.size_in}, size_out={self.size_out})"
            )
        if self.backbone not in BACKBONES:
            out.append(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        elif self.backbone == "unetr":
            out.extend(unetr_size_problems(self.size_in, hidden_size=self.hidden_size, num_heads=self.num_heads))
            if self.task != "mass-bins":
                out.append(f"the UNETR backbone serves the mass-bins task (VIPR), not {self.task!r}")
        if self.depth < 0 or self.base_filters < 1:
            out.append(
                f"need depth >= 0 and base_filters >= 1, got depth={self.depth}, base_filters={self.base_filters}"
            )
        elif self.backbone == "vnet" and self.size_in % 2**self.depth:
            out.append(f"size_in={self.size_in} must be divisible by 2^depth = {2**self.depth} (depth={self.depth})")
        for name in ("embedding_dim", "batch_size", "validate_every", "validation_crops"):
            if getattr(self, name) < 1:
                out.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.steps < 0:
            out.append(f"steps must be >= 0, got {self.steps}")
        if self.n_validation < 0:
            out.append(f"n_validation must be >= 0, got {self.n_validation}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            out.append(f"lr must be a positive number, got {self.lr}")
        if self.offset_weighting not in ("halo", "voxel"):
            out.append(f"offset_weighting must be 'halo' or 'voxel', got {self.offset_weighting!r}")
        if not (math.isfinite(self.c_offset) and self.c_offset > 0):
            out.append(f"c_offset must be a positive number, got {self.c_offset}")
        if not self.c_background >= 0:
            out.append(f"c_background must be >= 0, got {self.c_background}")
        if not (math.isfinite(self.small_halo_boost) and self.small_halo_boost >= 0):
            out.append(f"small_halo_boost must be a number >= 0, got {self.small_halo_boost}")
        elif self.small_halo_boost and self.task not in ("semantic", "panoptic"):
            out.append(f"small_halo_boost weights the semantic loss: the semantic or panoptic task, not {self.task!r}")
        if self.channels and self.task != "mass-bins":
            out.append(f"channels are chosen for the mass-bins task only; the {self.task} net takes its own")
        if self.channels:
            out.extend(channel_problems(self.channels))
        if self.n_mass_bins < 1:
            out.append(f"n_mass_bins must be >= 1, got {self.n_mass_bins}")
        if self.position_residual:
            if self.task != "instance" or self.embedding_dim != 3:
                out.append("position_residual needs the instance task with embedding_dim = 3 (positions are 3-D)")
            if not (math.isfinite(self.position_residual) and self.position_residual > 0):
                out.append(f"position_residual must be a positive scale (1/(Mpc/h)) or 0, got {self.position_residual}")
        if self.lr_schedule not in ("constant", "cosine"):
            out.append(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if self.grad_clip is not None and not (math.isfinite(self.grad_clip) and self.grad_clip > 0):
            out.append(f"grad_clip must be a positive number or None, got {self.grad_clip}")
        return out

    @property
    def input_channels(self) -> tuple[str, ...]:
        """The names of the network's input channels: ``channels``, or the task's default."""
        return tuple(self.channels) or INPUT_CHANNELS[self.task]

    @property
    def in_channels(self) -> int:
        return len(self.input_channels)

    @property
    def out_channels(self) -> int:
        if self.task == "mass-bins":
            return self.n_mass_bins + 1
        return OUTPUT_CHANNELS.get(self.task, self.embedding_dim)

    def architecture(self) -> dict[str, Any]:
        """The metadata that build the network (`make_model`); a UNETR's depth is its 4 upsampling levels (16 = 2⁴)
        and its ``base_filters`` the decoder's full-resolution filters (MONAI's ``feature_size``)."""
        unetr = self.backbone == "unetr"
        return {
            "task": self.task,
            "backbone": self.backbone,
            **({"hidden_size": self.hidden_size, "num_heads": self.num_heads} if unetr else {}),
            "in_channels": self.in_channels,
            "size_in": self.size_in,
            "size_out": self.size_out,
            "base_filters": self.base_filters,
            "depth": UNETR_DEPTH if unetr else self.depth,
            "embedding_dim": self.out_channels,
            "position_residual": self.position_residual if self.task == "instance" else 0.0,
        }


def training_cosmology(fields: Sequence[Field]) -> dict[str, Any]:
    """The metadata that say which cosmologies and particle masses the training boxes span.

    ``cosmology``: the parameters every box shares (name -> value); ``cosmology_range``: name -> [low, high] of those
    that vary (a suite over cosmologies, e.g. a Latin hypercube; empty for a one-cosmology suite);
    ``particle_mass`` (the first box's) and ``particle_mass_range`` ([low, high], Msun/h).
    """
    values = {key: [float(getattr(f.box.cosmology, key)) for f in fields] for key in COSMOLOGY_KEYS}
    masses = [float(f.box.cosmology.particle_mass(f.n, f.box.length)) for f in fields]
    return {
        "particle_mass": masses[0],
        "particle_mass_range": [min(masses), max(masses)],
        "cosmology": {key: v[0] for key, v in values.items() if min(v) == max(v)},
        "cosmology_range": {key: [min(v), max(v)] for key, v in values.items() if min(v) != max(v)},
    }


def checkpoint_path(output_dir: str | os.PathLike[str], task: str) -> Path:
    return Path(output_dir) / f"{task}.pt"


def split_boxes(
    box_paths: Sequence[str | os.PathLike[str]],
    n_validation: int,
    *,
    seed: int,
    split_from: str | os.PathLike[str] = "",
) -> tuple[list[str | os.PathLike[str]], list[str | os.PathLike[str]]]:
    """``(train, validation)`` lists of whole boxes.

    The split every trainer makes (:func:`cosmoseg.sim.suites.split_suite`): ``n_validation`` boxes chosen by
    ``seed`` are held out, at least one is left to train on; each list keeps the order of ``box_paths``.
    ``split_from``: a checkpoint whose recorded ``train_boxes`` and ``validation_boxes`` (file names, in their
    recorded order, which decides the training crops) are taken from ``box_paths`` instead: the training of a model
    split otherwise, such as the shipped ones, is rerun on its own boxes. `ValidationError` for a repeated box,
    counts that do not fit, or recorded boxes that ``box_paths`` lacks.
    """
    items = list(box_paths)
    keys = [os.path.abspath(os.fspath(p)) for p in items]
    if len(set(keys)) != len(keys):
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        raise ValidationError(f"the box list repeats {repeated}: a box cannot be both in training and in validation")
    if not split_from:
        split = split_suite(len(items), n_validation, seed=seed)
        return split.pick(items, "train"), split.pick(items, "validation")
    metadata = read_checkpoint(split_from)["metadata"]
    recorded = {role: [str(name) for name in metadata.get(f"{role}_boxes", [])] for role in ("train", "validation")}
    if not recorded["train"]:
        raise ValidationError(f"{split_from}: the checkpoint records no train_boxes to split by")
    if len(recorded["validation"]) != n_validation:
        raise ValidationError(
            f"{split_from} records {len(recorded['validation'])} validation box(es), but n_validation is {n_validation}"
        )
    by_name = {os.path.basename(os.fspath(p)): p for p in items}
    missing = [name for names in recorded.values() for name in names if name not in by_name]
    if missing:
        raise ValidationError(f"the boxes lack {missing}, which {split_from} records")
    return [by_name[name] for name in recorded["train"]], [by_name[name] for name in recorded["validation"]]


def _load_boxes(paths: Sequence[str | os.PathLike[str]]) -> list[tuple[Field, Segmentation]]:
    boxes = []
    for path in paths:
        objects = load_artifact(path)
        fields, seg = objects.get("fields"), objects.get("segmentation")
        if not isinstance(fields, Field) or not isinstance(seg, Segmentation):
            raise ValidationError(
                f"{path}: a training box needs 'fields' (Field) and 'segmentation' (Segmentation), "
                f"it has {sorted(objects)}"
            )
        boxes.append((fields, seg))
    return boxes


def _batches(crops: ProtohaloCrops, batch_size: int, first_step: int) -> Iterator[tuple[torch.Tensor, Any]]:
    """Batches of consecutive samples: step ``s`` (0-based) gets samples ``s·B … s·B + B − 1``; under a process
    group of N ranks, this rank's B/N of them (`cosmoseg.nn.distributed.rank_slice`).

    The targets are the labels ``(b, s³)``, or ``(labels, offsets (b, 3, s³))`` where the samples carry offsets
    (``b = B / N``)."""
    step = first_step
    share = range(batch_size)[rank_slice(batch_size)]
    while True:
        items = [crops[(step * batch_size + k) % len(crops)] for k in share]
        labels = torch.stack([it["labels"] for it in items])
        targets = (labels, torch.stack([it["offsets"] for it in items])) if "offsets" in items[0] else labels
        yield torch.stack([it["inputs"] for it in items]), targets
        step += 1


class PositionResidual(nn.Module):
    """An instance net whose embedding is ``scale · q + net(x)``: the Lagrangian positions q (input channels 2–4,
    Mpc/h) of the output voxels plus a learned offset, so the net only learns where each voxel's halo centre is
    (the "spatial embedding" of Neven et al. 2019) instead of carrying q through every layer.

    net: ``(B, 5, s_in³) -> (B, 3, s_out³)``; crop: ``(s_in - s_out) / 2``; scale: embedding units per Mpc/h.
    """

    def __init__(self, net: nn.Module, crop: int, scale: float) -> None:
        super().__init__()
        self.net, self.crop, self.scale = net, int(crop), float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.crop
        q = x[:, 2:5, c : x.shape[2] - c, c : x.shape[3] - c, c : x.shape[4] - c]
        return self.net(x) + self.scale * q


def make_model(metadata: Mapping[str, Any]) -> nn.Module:
    """The untrained V-Net or UNETR described by checkpoint metadata (or `TrainConfig.architecture`)."""
    task = metadata["task"]
    out = 1 if task == "semantic" else int(metadata["embedding_dim"])
    if metadata.get("backbone", "vnet") == "unetr":
        return UNETR(
            int(metadata["in_channels"]),
            out,
            img_size=int(metadata["size_in"]),
            feature_size=int(metadata["base_filters"]),
            hidden_size=int(metadata["hidden_size"]),
            num_heads=int(metadata["num_heads"]),
            crop=(int(metadata["size_in"]) - int(metadata["size_out"])) // 2,
            norm=str(metadata.get("norm", "instance")),
        )
    net = VNet(
        int(metadata["in_channels"]),
        out,
        base_filters=int(metadata["base_filters"]),
        depth=int(metadata["depth"]),
        crop=(int(metadata["size_in"]) - int(metadata["size_out"])) // 2,
        norm=str(metadata.get("norm", "batch")),
        activation=str(metadata.get("activation", "relu")),
    )
    scale = float(metadata.get("position_residual", 0.0))
    if task == "instance" and scale:
        return PositionResidual(net, (int(metadata["size_in"]) - int(metadata["size_out"])) // 2, scale)
    return net


class SemanticHead(nn.Module):
    """The semantic logit ``(B, 1, s_out³)`` of a panoptic net (its channel 0), for code that wants a semantic net."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[:, :1]


def suite_mass_bin_edges(boxes: Sequence[tuple[Field, Segmentation]], n_bins: int) -> list[float]:
    """The mass-bin edges of a set of training boxes (log10 Msun/h): ``n_bins`` equal in log M from the boxes'
    labelling limit to their largest halo (a hair above it, so that halo is inside the top bin)."""
    masses = [float(f.box.cosmology.particle_mass(f.n, f.box.length)) for f, _ in boxes]
    limit = min(labelling_limit(seg) for _, seg in boxes)
    largest = max(int(torch.bincount(seg.labels.flatten().long(), minlength=2)[1:].max()) for _, seg in boxes)
    if largest < limit:
        raise ValidationError(f"the training boxes hold no halo of at least {limit} voxels: no mass bins to learn")
    return mass_bin_edges(limit * min(masses), largest * max(masses) * 1.0001, n_bins).tolist()


def mass_bin_class_bias(
    model: nn.Module,
    metadata: Mapping[str, Any],
    boxes: Sequence[tuple[Field, Segmentation]],
    *,
    batch_size: int = 4,
    device: str = "cpu",
) -> list[float] | None:
    """The class biases of a mass-bin net (:func:`~cosmoseg.protohalo.mass_bins.calibrate_class_bias`) on whole
    training boxes: with them its argmax predicts each class's true voxel count there. None when the crop lattice does
    not fit a box. ``metadata``: the checkpoint's (``channels``, ``size_in``, ``size_out``, ``log_mass_edges``)."""
    size_in, size_out = int(metadata["size_in"]), int(metadata["size_out"])
    if any(f.n % size_out for f, _ in boxes):
        return None
    probabilities, truth = [], []
    for fields, seg in boxes:
        values = linear_channels(fields, metadata["channels"])
        probabilities.append(
            mass_bin_probabilities(
                values, model, size_in=size_in, size_out=size_out, batch_size=batch_size, device=device
            )
        )
        particle_mass = float(fields.box.cosmology.particle_mass(fields.n, fields.box.length))
        truth.append(mass_bin_classes(seg.labels, particle_mass, metadata["log_mass_edges"]))
    return calibrate_class_bias(probabilities, truth).tolist()


def _loss_fn(config: TrainConfig, beta: float, min_voxels: int) -> Callable[[torch.Tensor, Any], torch.Tensor]:
    """The task's loss of (network output, crop targets); ``min_voxels``: the suite's smallest labelled halo."""

    def semantic(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        weight = None
        if config.small_halo_boost:
            weight = small_halo_weights(labels, boost=config.small_halo_boost, reference=float(min_voxels))
        return balanced_cross_entropy(logits.float(), (labels > 0).float(), beta, weight)

    if config.task == "semantic":
        return lambda logits, labels: semantic(logits[:, 0], labels)
    if config.task == "mass-bins":
        return lambda logits, classes: F.cross_entropy(logits.float(), classes)
    if config.task in ("offsets", "panoptic"):

        def offsets(out: torch.Tensor, targets: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            labels, target = targets
            pred = out[:, -3:].float()
            loss = centre_offset_loss(pred, target, labels, weighting=config.offset_weighting)
            if config.task == "offsets":
                return loss
            return semantic(out[:, 0], labels) + config.c_offset * loss

        return offsets

    def instance(embedding: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        total = discriminative_loss(
            embedding.float(),
            labels,
            delta_pull=config.delta_pull,
            delta_push=config.delta_push,
            c_pull=config.c_pull,
            c_push=config.c_push,
            c_reg=config.c_reg,
        )[0]
        if config.c_background:
            total = total + config.c_background * background_push_loss(
                embedding.float(), labels, margin=config.delta_push
            )
        return total

    return instance


def _calibrated_threshold(
    model: nn.Module, config: TrainConfig, boxes: Sequence[tuple[Field, Segmentation]], target: float
) -> float | None:
    """Threshold matching the training boxes' collapsed fraction, or None when the lattice does not fit a box."""
    if not config.calibrate or any(f.n % config.size_out for f, _ in boxes):
        return None
    if config.task == "panoptic":
        model = SemanticHead(model)
    probs = [
        semantic_probabilities(
            fields, model, size_in=config.size_in, size_out=config.size_out, batch_size=config.batch_size
        )
        for fields, _ in boxes
    ]
    return calibrate_threshold(probs, target)


def train(
    config: TrainConfig,
    box_paths: Sequence[str | os.PathLike[str]],
    output_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    progress: Callable[[int, float], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Train ``config.task`` on the box files ``box_paths``; returns the checkpoint ``<output_dir>/<task>.pt``.

    ``resume``: continue from that checkpoint (its architecture and grid must match; `ArtifactError` naming
    every mismatch otherwise) up to ``config.steps`` in total; without a checkpoint the run starts afresh.
    ``progress(step, loss)`` is called after every step, ``log(message)`` for validations and milestones.
    """
    say = log or (lambda message: None)
    problems = config.problems()
    if problems:
        raise ConfigError(problems, context="protohalo training settings")
    if not box_paths:
        raise ValidationError("no training boxes given")
    if config.batch_size % get_world_size():
        raise ConfigError(
            f"batch_size {config.batch_size} is not a multiple of the {get_world_size()} processes "
            "(torchrun --nproc-per-node): each must take an equal share of every batch"
        )
    train_paths, val_paths = split_boxes(box_paths, config.n_validation, seed=config.seed, split_from=config.split_from)
    train_boxes, val_boxes = _load_boxes(train_paths), _load_boxes(val_paths)
    segs = [seg for _, seg in train_boxes]
    beta = balanced_ce_beta(segs)
    fraction = collapsed_fraction(segs)
    first = train_boxes[0][0]
    edges = suite_mass_bin_edges(train_boxes, config.n_mass_bins) if config.task == "mass-bins" else None
    linear = tuple(c for c in config.input_channels if c in LINEAR_CHANNELS)  # the instance net adds positions
    try:
        crops = ProtohaloCrops(
            train_boxes,
            config.size_in,
            config.size_out,
            mode=config.task,
            length=max(1, config.steps) * config.batch_size,
            seed=config.seed,
            augment=config.augment,
            channels=linear,
            log_mass_edges=edges,
        )
        val_crops = (
            ProtohaloCrops(
                val_boxes,
                config.size_in,
                config.size_out,
                mode=config.task,
                length=config.validation_crops,
                seed=config.seed + 1,
                augment=False,
                channels=linear,
                log_mass_edges=edges,
            )
            if val_boxes
            else None
        )
    except ValueError as err:
        raise ValidationError(str(err)) from None
    if val_boxes and val_boxes[0][0].n != first.n:
        raise ValidationError(f"validation boxes are {val_boxes[0][0].n}^3, training boxes {first.n}^3")
    metadata: dict[str, Any] = {
        **config.architecture(),
        "channels": list(config.input_channels),
        "norm": "instance" if config.backbone == "unetr" else "batch",
        "activation": "relu",
        "grid_n": first.n,
        "box_length": first.box.length,
        **training_cosmology([fields for fields, _ in train_boxes]),
        "input_highpass": {"box_length": float(first.box.length), "channels": list(FILTERED_CHANNELS)},
        "beta": beta,
        "collapsed_fraction": fraction,
        "train_boxes": [os.path.basename(os.fspath(p)) for p in train_paths],
        "validation_boxes": [os.path.basename(os.fspath(p)) for p in val_paths],
        "batch_size": config.batch_size,
        "lr": config.lr,
        "seed": config.seed,
    }
    if config.task == "instance":
        metadata |= {
            k: getattr(config, k) for k in ("delta_pull", "delta_push", "c_pull", "c_push", "c_reg", "c_background")
        }
    if config.task in ("offsets", "panoptic"):
        metadata |= {"offset_weighting": config.offset_weighting, "offset_unit": "cells"}
    if config.task == "panoptic":
        metadata["c_offset"] = config.c_offset
    if config.small_halo_boost:
        metadata["small_halo_boost"] = config.small_halo_boost
    if edges is not None:
        metadata |= {"log_mass_edges": edges, "n_mass_bins": config.n_mass_bins}
    metadata |= {"lr_schedule": config.lr_schedule, "init_from": os.path.basename(config.init_from)}
    torch.manual_seed(config.seed)
    model = make_model(metadata)
    if config.init_from:  # fine-tuning: the weights of another checkpoint of the same architecture
        keys = (*ARCHITECTURE_KEYS, *UNETR_KEYS) if config.backbone == "unetr" else ARCHITECTURE_KEYS
        same = {k: metadata[k] for k in keys}
        _, source = load_checkpoint(config.init_from, expect=same)
        if float(source.get("position_residual", 0.0)) != config.position_residual:
            raise ArtifactError(
                f"{config.init_from}: position_residual is {source.get('position_residual', 0.0)} in the checkpoint, "
                f"expected {config.position_residual}"
            )
        load_checkpoint(config.init_from, model=model)
        say(f"weights initialised from {config.init_from}")
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, config.steps))
        if config.lr_schedule == "cosine"
        else None
    )
    trainer = Trainer(
        model,
        _loss_fn(config, beta, min(labelling_limit(seg) for seg in segs)),
        optimizer,
        device=config.device,
        grad_clip=config.grad_clip,
        scheduler=scheduler,
    )
    path = checkpoint_path(output_dir, config.task)
    path.parent.mkdir(parents=True, exist_ok=True)
    val_loss: float | None = None
    if resume and path.is_file():
        expect = {k: metadata[k] for k in (*ARCHITECTURE_KEYS, "grid_n", "box_length", "position_residual")}
        if config.backbone == "unetr":
            expect |= {k: metadata[k] for k in UNETR_KEYS}
        old = trainer.resume(path, expect=expect)
        val_loss = old.get("validation_loss")
        say(f"resumed {path} at step {trainer.step}")
    elif resume:
        say(f"no checkpoint at {path}: starting afresh")

    def save(final: bool) -> None:
        if not is_main_process():  # rank 0 calibrates and writes; the others wait in trainer.save
            trainer.save(path, metadata)
            return
        meta = {**metadata, "validation_loss": val_loss, "final": final}
        if config.task in ("semantic", "panoptic"):
            meta |= {"threshold": DEFAULT_THRESHOLD, "threshold_calibrated": False}
        if final and config.task == "mass-bins" and config.calibrate:
            bias = mass_bin_class_bias(
                trainer.model, meta, train_boxes, batch_size=config.batch_size, device=config.device
            )
            if bias is not None:
                meta["class_log_bias"] = bias
                say("class biases: " + ", ".join(f"{b:+.3f}" for b in bias) + " (training voxels per class matched)")
        if final and config.task in ("semantic", "panoptic"):
            threshold = _calibrated_threshold(trainer.model, config, train_boxes, fraction)
            if threshold is None:
                say("semantic threshold not calibrated (calibration off or box side not a multiple of size_out): 0.5")
            else:
                meta |= {"threshold": threshold, "threshold_calibrated": True}
                say(f"semantic threshold {threshold:.4f} gives the training collapsed fraction {fraction:.4f}")
        trainer.save(path, meta)

    batches = _batches(crops, config.batch_size, trainer.step)
    val_batches = []
    if val_crops is not None:
        n_val = math.ceil(len(val_crops) / config.batch_size)
        val_batches = list(itertools.islice(_batches(val_crops, config.batch_size, 0), n_val))
    while trainer.step < config.steps:
        chunk = min(config.validate_every - trainer.step % config.validate_every, config.steps - trainer.step)
        losses = trainer.train_steps(batches, chunk, progress)
        if val_batches:
            val_loss = trainer.evaluate(val_batches)
        say(f"step {trainer.step}: loss {losses[-1]:.4g}" + (f", validation {val_loss:.4g}" if val_batches else ""))
        save(final=False)
    save(final=True)
    return path


def load_model(
    path: str | os.PathLike[str], task: str, expect: Mapping[str, Any] | None = None, *, device: str = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """The trained model of checkpoint ``path`` (in eval mode) and its metadata, loaded with ``weights_only=True``.

    ``task`` and ``expect`` (e.g. ``{"grid_n": 64, "in_channels": 5}``) are checked against the metadata first;
    every mismatch is named in one `ArtifactError`.
    """
    wanted = {"task": task, **(expect or {})}
    _, metadata = load_checkpoint(path, expect=wanted)  # metadata checks first, nothing built yet
    missing = [k for k in ARCHITECTURE_KEYS if k not in metadata]
    if missing:
        raise ArtifactError(f"{path}: checkpoint metadata lacks {missing}: not a protohalo model checkpoint")
    model = make_model(metadata)
    load_checkpoint(path, model=model, expect=wanted)
    return model.to(device).eval(), metadata
