"""Resumable training checkpoints: plain tensors and Python types only, written atomically.

A checkpoint is one ``torch.save`` file holding a dict::

    {"format": "cosmoseg.checkpoint", "version": 1, "step": int, "metadata": {...},
     "model": state_dict, "optimizer": state_dict | None, "scheduler": state_dict | None,
     "scaler": state_dict | None, "generator": uint8 tensor | None}

It contains no pickled objects, so it loads with ``torch.load(..., weights_only=True)``. ``metadata`` describes
what the weights were trained for (input channels, crop size, grid resolution, task, ...) and is checked
against what the caller expects before any weight is touched: a checkpoint from another resolution or channel
layout gives one `ArtifactError` that names every mismatched key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cosmoseg.data import atomic_write
from cosmoseg.errors import ArtifactError

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "export_weights",
    "load_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "cosmoseg.checkpoint"
CHECKPOINT_VERSION = 1
_PLAIN = (str, int, float, bool, type(None))


def _plain(value: Any, where: str) -> Any:
    """``value`` as plain Python types (tuples become lists); TypeError naming ``where`` otherwise."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"checkpoint metadata key {where}[{k!r}] is a {type(k).__name__}, not a str")
            out[k] = _plain(v, f"{where}[{k!r}]")
        return out
    raise TypeError(
        f"checkpoint metadata {where} is a {type(value).__name__}; only str, int, float, bool, None, "
        "lists and dicts of them are allowed (the file must load with weights_only=True)"
    )


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    scaler: torch.amp.GradScaler | None = None,
    generator: torch.Generator | None = None,
    step: int,
    metadata: Mapping[str, Any],
) -> Path:
    """Write a checkpoint to ``path`` atomically (an existing file is replaced only once the new one is whole)."""
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be a non-negative int, got {step!r}")
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "step": step,
        "metadata": _plain(metadata, "metadata"),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "generator": generator.get_state() if generator is not None else None,
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def export_weights(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write the model weights, step and metadata of checkpoint ``source`` to ``destination`` without the training
    state (optimizer, scheduler, scaler, generator): a third of the size, for shipping. ``metadata`` entries are
    added to the stored ones. The result loads like any checkpoint but cannot be resumed."""
    payload = read_checkpoint(source)
    payload |= {"optimizer": None, "scheduler": None, "scaler": None, "generator": None}
    payload["metadata"] = {**payload["metadata"], **_plain(dict(metadata or {}), "metadata")}
    return atomic_write(destination, lambda tmp: torch.save(payload, tmp))


def read_checkpoint(path: str | os.PathLike[str], *, map_location: Any = "cpu") -> dict[str, Any]:
    """The raw checkpoint dict, loaded with ``weights_only=True``; `ArtifactError` if missing, corrupt or foreign."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated / foreign files
        raise ArtifactError(
            f"{path}: cannot be read as a checkpoint (truncated, corrupt or not a plain-tensor file): "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ArtifactError(f"{path}: not a cosmoseg checkpoint (no format={CHECKPOINT_FORMAT!r} entry)")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise ArtifactError(
            f"{path}: checkpoint version {payload.get('version')!r}, this cosmoseg reads version {CHECKPOINT_VERSION}"
        )
    return payload


def _check_expect(path: Path, stored: Mapping[str, Any], expect: Mapping[str, Any]) -> None:
    problems = []
    for key, want in expect.items():
        want = _plain(want, f"expect[{key!r}]")
        if key not in stored:
            problems.append(f"{path}: metadata key {key!r} is missing (expected {want!r})")
        elif stored[key] != want:
            problems.append(f"{path}: metadata {key!r} is {stored[key]!r} in the checkpoint, expected {want!r}")
    if problems:
        raise ArtifactError(problems, context=f"checkpoint {path} does not match this model")


def _check_state_dict(path: Path, model: nn.Module, state: Mapping[str, Any]) -> None:
    own = model.state_dict()
    problems = [f"{path}: model key {k!r} missing from the checkpoint" for k in own if k not in state]
    problems += [f"{path}: unexpected key {k!r} in the checkpoint (not in the model)" for k in state if k not in own]
    for k, v in own.items():
        theirs = state.get(k)
        if isinstance(v, torch.Tensor) and isinstance(theirs, torch.Tensor) and theirs.shape != v.shape:
            problems.append(
                f"{path}: {k!r} has shape {tuple(theirs.shape)} in the checkpoint, model has {tuple(v.shape)}"
            )
    if problems:
        raise ArtifactError(problems, context=f"checkpoint {path} does not fit the model ({type(model).__name__})")


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    scaler: torch.amp.GradScaler | None = None,
    generator: torch.Generator | None = None,
    expect: Mapping[str, Any] | None = None,
    map_location: Any = "cpu",
) -> tuple[int, dict[str, Any]]:
    """Check and load a checkpoint into the given objects; returns ``(step, metadata)``.

    ``expect`` (e.g. ``{"in_channels": 5, "crop_size": 32, "grid_n": 128, "task": "instance"}``) is compared
    with the stored metadata first; every mismatch is listed in one `ArtifactError`. The model's keys and shapes
    are checked next, also all at once. Nothing is loaded unless every check passes.
    """
    path = Path(path)
    payload = read_checkpoint(path, map_location=map_location)
    metadata = payload.get("metadata") or {}
    if expect:
        _check_expect(path, metadata, expect)
    if model is not None:
        _check_state_dict(path, model, payload["model"])
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
        if obj is not None and payload.get(name) is None:
            raise ArtifactError(f"{path}: the checkpoint holds no {name} state")
    if model is not None:
        model.load_state_dict(payload["model"])
    if optimizer is not None:
        try:
            optimizer.load_state_dict(payload["optimizer"])
        except (ValueError, KeyError) as exc:
            raise ArtifactError(f"{path}: optimizer state does not fit this optimizer: {exc}") from exc
    if scheduler is not None:
        scheduler.load_state_dict(payload["scheduler"])
    if scaler is not None and scaler.is_enabled() and payload.get("scaler"):
        scaler.load_state_dict(payload["scaler"])
    if generator is not None and payload.get("generator") is not None:
        generator.set_state(payload["generator"].cpu())
    return int(payload["step"]), dict(metadata)
