"""dm2gal model files: the weights with what they were trained for (architecture, voxel size, mass threshold).

A model file is a :mod:`cosmoseg.nn.checkpoints` file (plain tensors, loaded with ``weights_only=True``) whose
metadata holds ``task = "paint"``, ``kind`` (``"fcn"`` for the successor, ``"dm2gal"`` for the per-voxel network),
the constructor arguments, ``voxel`` (Mpc/h), ``threshold`` (Msun/h), ``input_channels`` and a ``card`` (data,
command, metrics), and ``max_log_halo`` (the heaviest training halo) when the training command wrote it.
:func:`check_voxel` refuses fields whose voxel differs from the training voxel; :func:`extrapolation_note` names
halo masses beyond the training range.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from cosmoseg.errors import ArtifactError, ValidationError
from cosmoseg.nn.checkpoints import load_checkpoint, read_checkpoint, save_checkpoint
from cosmoseg.paint.network import Dm2Gal, Dm2GalFCN

__all__ = [
    "DEFAULT_MODEL",
    "PaintModel",
    "build_model",
    "check_voxel",
    "extrapolation_note",
    "load_paint_model",
    "recorded_split",
    "save_paint_model",
    "seen_box_note",
]

DEFAULT_MODEL = Path(__file__).parent / "default_models" / "fcn.pt"
KINDS = {"fcn": Dm2GalFCN, "dm2gal": Dm2Gal}
VOXEL_RTOL = 1e-6
EXTRAPOLATION_DEX = 0.05
"""Halo voxels this far (dex) above the heaviest training halo count as extrapolated."""

PaintModel = Dm2Gal | Dm2GalFCN


# Dm2GalFCN constructor arguments added after model files were first written (absent there: 0)
FCN_LATER_OPTIONS = ("linear", "hinges")


def build_model(kind: str, **arch: Any) -> PaintModel:
    """A fresh ``kind`` network ("fcn" or "dm2gal") with constructor arguments ``arch``."""
    if kind not in KINDS:
        raise ValidationError(f"unknown dm2gal model kind {kind!r}; known: {sorted(KINDS)}", context="paint")
    return KINDS[kind](**arch)


def architecture(model: PaintModel) -> dict[str, Any]:
    """The constructor arguments that rebuild ``model``."""
    if isinstance(model, Dm2GalFCN):
        return model.arch()
    return {
        "in_channels": int(model.in_channels),
        "channels": [int(c) for c in model.channels],
        "large_kernel": int(model.large_kernel),
        "hidden": int(model.hidden),
        "input_size": int(model.input_size),
    }


def save_paint_model(
    path: str | os.PathLike[str],
    model: PaintModel,
    *,
    voxel: float,
    threshold: float,
    step: int,
    card: Mapping[str, Any],
    halo_assignment: str = "ngp",
    max_log_halo: float | None = None,
    split: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model`` with its metadata (atomically). ``max_log_halo``: the largest log10(1 + M / (Msun/h)) of the
    training boxes' halo channel (beyond it the network extrapolates; ``paint.dm2gal`` says so). ``split``: how the
    suite was split (``n_validation``, ``n_test``, ``seed`` and the box names of ``train``, ``validation``,
    ``test``), which ``cosmoseg paint evaluate`` reuses."""
    kind = "fcn" if isinstance(model, Dm2GalFCN) else "dm2gal"
    metadata = {
        "task": "paint",
        "kind": kind,
        "arch": architecture(model),
        "voxel": float(voxel),
        "threshold": float(threshold),
        "input_channels": ["log_dm", "log_halo"],
        "halo_assignment": halo_assignment,
        "card": dict(card),
    }
    if max_log_halo is not None:
        metadata["max_log_halo"] = float(max_log_halo)
    if split is not None:
        metadata["split"] = dict(split)
    return save_checkpoint(path, model=model, step=step, metadata=metadata)


def load_paint_model(path: str | os.PathLike[str] | None = None) -> tuple[PaintModel, dict[str, Any]]:
    """The network of a model file (default: the shipped successor) in eval mode, and its metadata."""
    path = Path(path) if path else DEFAULT_MODEL
    metadata = read_checkpoint(path)["metadata"]
    if metadata.get("task") != "paint" or metadata.get("kind") not in KINDS:
        raise ArtifactError(f"{path}: not a dm2gal model file (metadata task/kind: {metadata.get('task')!r}, "
                            f"{metadata.get('kind')!r})")  # fmt: skip
    arch = dict(metadata["arch"])
    if metadata["kind"] == "fcn":  # files written before an optional path existed were trained without it
        arch = {**dict.fromkeys(FCN_LATER_OPTIONS, 0), **arch}
    model = build_model(metadata["kind"], **arch)
    load_checkpoint(path, model=model)
    model.eval()
    return model, metadata


def check_voxel(field_voxel: float, metadata: Mapping[str, Any], where: str) -> None:
    """Refuse a grid whose voxel side (Mpc/h) differs from the model's training voxel side."""
    trained = float(metadata["voxel"])
    if abs(field_voxel - trained) > VOXEL_RTOL * trained:
        raise ValidationError(
            f"the fields have voxels of {field_voxel:.6g} Mpc/h but the model was trained on voxels of "
            f"{trained:.6g} Mpc/h; paint the fields on a grid of that voxel size (n = box / {trained:.6g})",
            context=where,
        )


def extrapolation_note(log_halo: torch.Tensor, metadata: Mapping[str, Any]) -> str | None:
    """A sentence naming how far the halo channel ``log_halo`` (any shape, log10(1 + M / (Msun/h))) goes beyond the
    heaviest halo of the model's training boxes, or None when it does not (or the model file does not say)."""
    trained = metadata.get("max_log_halo")
    if trained is None:
        return None
    heaviest = float(log_halo.max())
    if heaviest <= float(trained) + EXTRAPOLATION_DEX:
        return None
    count = int((log_halo > float(trained) + EXTRAPOLATION_DEX).sum())
    how = (
        "along the hinge features' last slope"
        if int(metadata.get("arch", {}).get("hinges", 0))
        else "the network levels off there"
    )
    return (
        f"{count} halo voxel(s) up to 10^{heaviest:.2f} Msun/h, beyond the heaviest training halo "
        f"(10^{float(trained):.2f}): the stellar mass painted around them is extrapolated ({how}; docs/paint.md)"
    )


def recorded_split(
    metadata: Mapping[str, Any], n_validation: int | None, n_test: int | None, seed: int | None
) -> tuple[int, int, int]:
    """(n_validation, n_test, seed): each value given, else the one the model file recorded (``split``), else 1, 1,
    0 (the training command's defaults)."""
    recorded = metadata.get("split", {})

    def pick(value: int | None, key: str, default: int) -> int:
        return int(recorded.get(key, default)) if value is None else int(value)

    return pick(n_validation, "n_validation", 1), pick(n_test, "n_test", 1), pick(seed, "seed", 0)


def seen_box_note(box_name: str, metadata: Mapping[str, Any], box_seed: int | None = None) -> str | None:
    """A sentence when the model file records the box among its training or validation boxes (its score there is
    not held out), else None. Boxes are matched by their simulation seed where both the model file (``split``
    ``seeds``) and the caller (``box_seed``) know it, else by file name."""
    split = metadata.get("split", {})
    seeds = split.get("seeds", {})
    for role in ("train", "validation"):
        names = split.get(role, [])
        if box_seed is not None and seeds:
            seen = any(seeds.get(name) == box_seed for name in names)
        else:
            seen = box_name in names
        if seen:
            return (
                f"was a {role} box of this {metadata.get('kind', 'paint')} model (its split: --n-validation "
                f"{split.get('n_validation')} --n-test {split.get('n_test')} --seed {split.get('seed')}); "
                "its scores there are not held out"
            )
    return None
