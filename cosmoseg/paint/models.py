"""dm2gal model files: the weights with what they were trained for (architecture, voxel size, mass threshold).

A model file is a :mod:`cosmoseg.nn.checkpoints` file (plain tensors, loaded with ``weights_only=True``) whose
metadata holds ``task = "paint"``, ``kind`` (``"fcn"`` for the successor, ``"dm2gal"`` for the per-voxel network),
the constructor arguments, ``voxel`` (Mpc/h), ``threshold`` (Msun/h), ``input_channels`` and a ``card`` (data,
command, metrics), and, when the training command wrote them, ``max_log_halo`` (the heaviest training halo),
``particle_mass`` (Msun/h, of the training runs) and ``cosmology`` (their parameters, name -> value).
:func:`check_voxel` refuses fields whose voxel differs from the training voxel; :func:`domain_notes` refuses fields
of a run at another resolution (particle spacing) and names a cosmology that differs from the training one;
:func:`extrapolation_note` names halo masses beyond the training range.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from cosmoseg.data import COSMOLOGY_PARAMETERS, Cosmology, cosmology_differences
from cosmoseg.errors import ArtifactError, ValidationError
from cosmoseg.nn.checkpoints import load_checkpoint, read_checkpoint, save_checkpoint
from cosmoseg.paint.network import Dm2Gal, Dm2GalFCN

__all__ = [
    "COSMOLOGY_KEYS",
    "COSMOLOGY_RTOL",
    "DEFAULT_MODEL",
    "SPACING_RTOL",
    "PaintModel",
    "build_model",
    "check_voxel",
    "cosmology_record",
    "domain_notes",
    "extrapolation_note",
    "load_paint_model",
    "particle_spacing",
    "recorded_split",
    "save_paint_model",
    "seen_box_note",
    "truth_seed",
    "unchecked_notes",
]

DEFAULT_MODEL = Path(__file__).parent / "default_models" / "fcn.pt"
KINDS = {"fcn": Dm2GalFCN, "dm2gal": Dm2Gal}
VOXEL_RTOL = 1e-6
EXTRAPOLATION_DEX = 0.05
"""Halo voxels this far (dex) above the heaviest training halo count as extrapolated."""
COSMOLOGY_KEYS = COSMOLOGY_PARAMETERS
"""The cosmological parameters a model file records (metadata ``cosmology``) and fields are checked against."""
COSMOLOGY_RTOL = 0.01
"""A parameter that differs from the training value by more than this (relative; absolute for w0, wa) is named."""
SPACING_RTOL = 0.01
"""Fields of a run whose mean particle spacing differs from the training runs' by more than this are refused."""

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
    particle_mass: float | None = None,
    cosmology: Cosmology | None = None,
) -> Path:
    """Write ``model`` with its metadata (atomically). ``max_log_halo``: the largest log10(1 + M / (Msun/h)) of the
    training boxes' halo channel (beyond it the network extrapolates; ``paint.dm2gal`` says so). ``split``: how the
    suite was split (``n_validation``, ``n_test``, ``seed`` and the box names of ``train``, ``validation``,
    ``test``), which ``cosmoseg paint evaluate`` reuses. ``particle_mass`` (Msun/h) and ``cosmology``: of the
    training runs, which :func:`domain_notes` checks fields against."""
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
    if particle_mass is not None:
        metadata["particle_mass"] = float(particle_mass)
    if cosmology is not None:
        metadata["cosmology"] = cosmology_record(cosmology)
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
            f"{trained:.6g} Mpc/h, on the particle grid of runs whose particles are {trained:.6g} Mpc/h apart: paint "
            f"the fields of a run of (box / {trained:.6g})^3 particles on its particle grid (paint.fields n = 0), or "
            "train a model at your resolution",
            context=where,
        )


def cosmology_record(cosmology: Cosmology) -> dict[str, float]:
    """The parameters of ``cosmology`` a model file records: :data:`COSMOLOGY_KEYS` -> value."""
    return {key: float(getattr(cosmology, key)) for key in COSMOLOGY_KEYS}


def particle_spacing(particle_mass: float, cosmology: Cosmology | Mapping[str, float]) -> float:
    """The mean particle spacing (m_p / ρ_m)^(1/3), Mpc/h, of a run of particles of ``particle_mass`` Msun/h in a
    cosmology (a ``Cosmology`` or a recorded mapping with ``omega_m``); e.g. 0.78125 for 128³ particles in 100
    Mpc/h. ρ_m = Ω_m ρ_crit depends on Ω_m alone."""
    omega_m = float(cosmology.omega_m if isinstance(cosmology, Cosmology) else cosmology["omega_m"])
    reference = Cosmology()
    rho_m = reference.particle_mass(1, 1.0) / reference.omega_m * omega_m  # Msun/h per (Mpc/h)^3
    return (float(particle_mass) / rho_m) ** (1.0 / 3.0)


def unchecked_notes(metadata: Mapping[str, Any], *, particle_mass: float | None) -> list[str]:
    """A line per thing :func:`domain_notes` cannot check: a model file that does not record its training particle
    mass or cosmology, fields that do not record the particle mass of their run (``particle_mass`` None)."""
    notes = []
    missing = [k for k in ("particle_mass", "cosmology") if metadata.get(k) is None]
    if missing:
        notes.append(f"the model file does not record its training {' and '.join(missing)}: not checked")
    if particle_mass is None:
        notes.append("the fields do not record the particle mass of their run (make them with paint.fields): "
                     "the resolution is not checked")  # fmt: skip
    return notes


def domain_notes(
    metadata: Mapping[str, Any], *, particle_mass: float | None, cosmology: Cosmology, where: str
) -> list[str]:
    """Check that fields come from the kind of run the model was trained on; return a warning per difference.

    particle_mass: of the run the fields were painted from (``paint.fields`` records it in the Field's meta), Msun/h,
    or None when unknown; cosmology: of the fields' box. `ValidationError` (naming ``where``) when the run's mean
    particle spacing (:func:`particle_spacing`) differs from the training runs' by more than :data:`SPACING_RTOL`:
    another resolution of the dark-matter field and of the haloes found in it (a 64³-particle run of 100 Mpc/h
    painted on a 128³ grid scored 0.495 in mean |ln P/P_t| with 0.58 of the true stellar mass, recall 0.46). The
    warnings name the cosmological parameters that differ by more than :data:`COSMOLOGY_RTOL` from the training ones.
    What cannot be checked (a model file or fields that do not record it) is :func:`unchecked_notes`.
    """
    trained_mass = metadata.get("particle_mass")
    trained_cosmology = metadata.get("cosmology")
    if particle_mass is not None and trained_mass is not None:
        spacing = particle_spacing(particle_mass, cosmology)
        trained_spacing = particle_spacing(float(trained_mass), trained_cosmology or cosmology)
        if abs(spacing / trained_spacing - 1) > SPACING_RTOL:
            raise ValidationError(
                f"the fields come from a run of particles of {particle_mass:.4g} Msun/h, {spacing:.4g} Mpc/h apart, "
                f"but the model was trained on runs of particles of {float(trained_mass):.4g} Msun/h, "
                f"{trained_spacing:.4g} Mpc/h apart ({(spacing / trained_spacing) ** 3:.3g} times the mass at equal "
                "Omega_m): another resolution of the dark matter and of the haloes found in it; paint the fields of a "
                f"run of (box / {trained_spacing:.6g})^3 particles, or train a model at your resolution",
                context=where,
            )
    if trained_cosmology is None:
        return []
    differences = cosmology_differences(trained_cosmology, cosmology, rtol=COSMOLOGY_RTOL)
    if not differences:
        return []
    return [f"cosmology differs from the training runs': {'; '.join(differences)}: the model extrapolates"]


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


def truth_seed(metadata: Mapping[str, Any], given: int | None = None) -> int:
    """The seed of the truth's galaxy stage (+ the box index): ``given``, else the seed of the model's training
    (``split`` ``seed``: its truth is the one the model was trained, selected and tested on), else 0 (the training
    command's default). The truth of a box is fixed by the box and this seed, never by the seed that picks a split or
    the draws of an evaluation."""
    if given is not None:
        return int(given)
    return int(metadata.get("split", {}).get("seed", 0))


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
