"""Protohalo mass-bin classification of a whole box (Alokda & Porciani): COPRA (V-Net) and VIPR (UNETR) models.

A mass-bins checkpoint of ``cosmoseg protohalo train --task mass-bins`` gives every voxel of the initial conditions
K + 1 class probabilities: class 0 "in no protohalo", classes 1..K the log-mass bins (``log_mass_edges``) of the
z = 0 halo the voxel ends up in. Here:

* :func:`load_mass_bin_model`: a checkpoint, or the shipped COPRA / VIPR model (``default_models/mass-bins``);
* :func:`mass_bin_inputs`: the box's input channels as the model was trained on them (cell size checked, modes
  longer than the training boxes removed);
* :func:`predicted_classes`: the argmax of ``log p + b`` with per-class biases b chosen so the training boxes'
  predicted voxel count per class equals the true one (``mass_bins.calibrate_class_bias``, a prior-shift
  calibration; an uncalibrated argmax under-predicts the rare massive classes);
* :func:`mass_bin_grad_cam`: the Grad-CAM map of one class over the whole box, crop by crop;
* :func:`predict_mass_bins`: all of it, as the ``protohalo.mass_bins`` stage runs it.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cosmoseg.data import Field, Segmentation
from cosmoseg.errors import ProblemCollector, ValidationError
from cosmoseg.protohalo.data import channel_problems, linear_channels
from cosmoseg.protohalo.panoptic import (
    combine_linear_fields,
    mass_bin_probabilities,
)
from cosmoseg.protohalo.pretrained import grid_problems, input_highpass, prepare_for_training_boxes
from cosmoseg.protohalo.stitching import predict_semantic
from cosmoseg.protohalo.training import load_model

__all__ = [
    "DEFAULT_MASS_BIN_MODELS",
    "MASS_BIN_MODELS_DIR",
    "class_names",
    "load_mass_bin_model",
    "mass_bin_grad_cam",
    "mass_bin_inputs",
    "predict_mass_bins",
    "predicted_classes",
]

MASS_BIN_MODELS_DIR = Path(__file__).parent / "default_models" / "mass-bins"
DEFAULT_MASS_BIN_MODELS = {"vnet": MASS_BIN_MODELS_DIR / "copra.pt", "unetr": MASS_BIN_MODELS_DIR / "vipr.pt"}
"""The shipped mass-bin models by backbone: COPRA (V-Net) and VIPR (UNETR); their card is ``MODEL_CARD.md``."""


def load_mass_bin_model(
    path: str | os.PathLike[str] = "", backbone: str = "vnet", *, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any], Path]:
    """The mass-bin model of checkpoint ``path`` ("" = the shipped one of ``backbone``, vnet or unetr), in eval mode,
    with its metadata and path. `ValidationError` for a missing file or an unknown backbone; `ArtifactError` for a
    checkpoint of another task."""
    if not path:
        if backbone not in DEFAULT_MASS_BIN_MODELS:
            raise ValidationError(f"backbone must be one of {sorted(DEFAULT_MASS_BIN_MODELS)}, got {backbone!r}")
        path = DEFAULT_MASS_BIN_MODELS[backbone]
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"{path}: no such mass-bins checkpoint")
    model, metadata = load_model(path, "mass-bins", device=str(device))
    return model, metadata, path


def class_names(log_mass_edges: Sequence[float]) -> tuple[str, ...]:
    """``("none", "12.21-12.64", ...)``: class 0 and each bin's log10 M range (Msun/h)."""
    return ("none", *(f"{lo:.2f}-{hi:.2f}" for lo, hi in itertools.pairwise(log_mass_edges)))


def mass_bin_inputs(
    fields: Field, metadata: dict[str, Any], *, channels: Sequence[str] = (), where: str = "fields"
) -> tuple[torch.Tensor, list[str]]:
    """The ``(C, n, n, n)`` float32 input channels of a mass-bin model for the linear fields of a box, and log lines.

    ``fields``: δ and φ (Mpc/h cells); ``metadata``: the checkpoint's (``channels``, ``box_length``, ``grid_n``,
    ``size_out``); ``channels``: the channels the caller expects the model to take (empty: whatever it was trained
    on). `ValidationError` naming every problem: a model trained on other channels, another cell size, a box side off
    the crop lattice."""
    problems = ProblemCollector()
    trained = tuple(str(c) for c in metadata.get("channels", ()))
    if channels:
        for problem in channel_problems(channels):
            problems.add(problem)
        problems.check(
            tuple(channels) == trained,
            f"the model was trained on channels ({', '.join(trained)}), not ({', '.join(channels)})",
        )
    for problem in channel_problems(trained):
        problems.add(f"the checkpoint's channels: {problem}")
    for problem in grid_problems(fields, metadata, where=where, trained="the model was"):
        problems.add(problem)
    problems.raise_if_any(ValidationError, context="mass-bin model")
    prepared, notes = prepare_for_training_boxes(fields, input_highpass(metadata))
    return linear_channels(prepared, trained).float(), notes


def predicted_classes(probabilities: torch.Tensor, class_log_bias: Sequence[float] | None = None) -> torch.Tensor:
    """(n, n, n) int64 classes: argmax over the K + 1 maps of ``probabilities`` of ``log p + class_log_bias``."""
    if not class_log_bias:
        return probabilities.argmax(0)
    bias = torch.as_tensor(class_log_bias, dtype=torch.float64).reshape(-1, *([1] * (probabilities.ndim - 1)))
    if bias.shape[0] != probabilities.shape[0]:
        raise ValueError(f"class_log_bias has {bias.shape[0]} entries for {probabilities.shape[0]} classes")
    return (probabilities.double().clamp_min(1e-30).log() + bias).argmax(0)


def mass_bin_grad_cam(
    values: torch.Tensor,
    model: nn.Module,
    target_class: int,
    *,
    size_in: int,
    size_out: int,
    classes: torch.Tensor | None = None,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """(n, n, n) float32 Grad-CAM map of class ``target_class`` over a whole periodic box, ≥ 0.

    The box is cut into the prediction's crop lattice; in each crop the class score is the class's logit summed over
    the output voxels in that class (Vinogradova et al. 2020; every output voxel when the crop has none) and the map
    of :func:`cosmoseg.nn.grad_cam` on the net's last feature map is kept on the crop's central ``size_out³`` voxels.
    The scale is the net's (logit per feature), the same in every crop: maps of one model and class compare across
    the box. ``values``: (C, n, n, n) inputs of :func:`mass_bin_inputs`; ``classes``: (n, n, n) int the box's class
    map whose ``target_class`` voxels make the score (e.g. :func:`predicted_classes` with the calibrated biases, the
    classes a stage reports); ``None``: the net's plain argmax, found by one more forward pass per crop. Needs
    captum."""
    from cosmoseg.nn.gradcam import grad_cam

    crop = (size_in - size_out) // 2
    dev = torch.device(device)
    n_inputs = values.shape[0]
    was_training = model.training
    model.eval()

    def cams(crops: torch.Tensor) -> torch.Tensor:
        x = crops[:, :n_inputs].to(dev, torch.float32).clone()
        if classes is None:
            with torch.no_grad():
                in_class = model(x).argmax(1) == target_class
        else:
            output = crops[:, n_inputs, crop : crop + size_out, crop : crop + size_out, crop : crop + size_out]
            in_class = output.to(dev).round().long() == target_class
        region = torch.where(in_class.flatten(1).any(1)[:, None, None, None], in_class, torch.ones_like(in_class))
        cam = grad_cam(model, x, target_class, region=region)
        return cam[:, crop : crop + size_out, crop : crop + size_out, crop : crop + size_out].cpu()

    volume = values.detach().cpu().float()
    if classes is not None:
        if tuple(classes.shape) != tuple(values.shape[1:]):
            raise ValidationError(f"classes has shape {tuple(classes.shape)}, the box {tuple(values.shape[1:])}")
        volume = torch.cat([volume, classes.detach().cpu().float()[None]])
    try:
        return predict_semantic(volume, cams, size_in, size_out, batch_size)
    finally:
        model.train(was_training)


def predict_mass_bins(
    fields: Field,
    potential: Field | None = None,
    *,
    model: str = "",
    backbone: str = "vnet",
    channels: Sequence[str] = (),
    grad_cam_class: int = -1,
    calibrated: bool = True,
    symmetries: int = 1,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    log: Callable[[str], None] | None = None,
) -> tuple[Segmentation, Field]:
    """The mass-bin classes of a box's linear fields, and the Grad-CAM map of one class.

    ``fields``: δ and φ (or δ alone: φ solved from it, or taken from ``potential``); ``model``: a mass-bins
    checkpoint ("" = the shipped ``backbone`` model); ``channels``: the channels the model must take (empty: its
    own); ``grad_cam_class``: the class of the map (−1 = the top mass bin, K); ``calibrated``: use the class biases
    stored with the model (:func:`~cosmoseg.protohalo.mass_bins.calibrate_class_bias`), else the plain argmax;
    ``symmetries``: test-time augmentation of the probabilities over that many cube symmetries (1 = none).

    Returns a `Segmentation` whose ``labels`` are the predicted classes (n, n, n) (0 = no protohalo, k = bin k),
    ``probabilities`` the probability of being in any protohalo (1 − p_0), ``class_scores`` the K + 1 class
    probabilities named by :func:`class_names`, and meta ``log_mass_edges`` (comma-separated log10 Msun/h); and a
    one-channel `Field` ``grad_cam_<k>`` (dimensionless, ≥ 0) of the box.
    """
    say = log or (lambda line: None)
    fields = combine_linear_fields(fields, potential)
    net, metadata, path = load_mass_bin_model(model, backbone, device=device)
    values, notes = mass_bin_inputs(fields, metadata, channels=channels, where="input 'fields'")
    for note in notes:
        say(note)
    edges = [float(e) for e in metadata["log_mass_edges"]]
    n_classes = len(edges)
    target = n_classes - 1 if grad_cam_class == -1 else grad_cam_class
    if not 0 <= target < n_classes:
        raise ValidationError(f"grad_cam_class must be in 0..{n_classes - 1} (or -1), got {grad_cam_class}")
    lattice = {"size_in": int(metadata["size_in"]), "size_out": int(metadata["size_out"]), "batch_size": batch_size}
    probabilities = mass_bin_probabilities(values, net, device=device, symmetries=symmetries, **lattice)
    bias = metadata.get("class_log_bias") if calibrated else None
    classes = predicted_classes(probabilities, bias)
    cam = mass_bin_grad_cam(values, net, target, classes=classes, device=device, **lattice)
    names = class_names(edges)
    counts = torch.bincount(classes.reshape(-1), minlength=n_classes)
    say(f"{path.name}: voxels per class " + ", ".join(f"{n} {int(c)}" for n, c in zip(names, counts, strict=True)))
    segmentation = Segmentation(
        labels=classes,
        box=fields.box,
        probabilities=(1 - probabilities[0]).clamp(0, 1),
        class_scores=probabilities,
        class_names=names,
        meta={
            "model": str(model) or f"default {path.name}",
            "backbone": str(metadata.get("backbone", "vnet")),
            "log_mass_edges": ",".join(f"{e:.6g}" for e in edges),
            "labels_are": "mass-bin classes",
            "class_bias_applied": bool(bias),
        },
    )
    grad_map = Field(
        values=cam[None],
        box=fields.box,
        channels=(f"grad_cam_{target}",),
        meta={"grad_cam_class": target, "class_name": names[target], "model": segmentation.meta["model"]},
    )
    if not math.isfinite(float(cam.sum())):
        raise ValidationError("the Grad-CAM map is not finite: the fields hold values the model cannot take")
    return segmentation, grad_map
