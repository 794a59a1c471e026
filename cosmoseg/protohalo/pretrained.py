"""Loading a semantic + instance model pair, the shipped default one included, and checking it fits a box.

The default models (``cosmoseg/protohalo/default_models/{semantic,instance}.pt``, with their ``MODEL_CARD.md``)
are trained by ``cosmoseg protohalo train`` on ``configs/suites/protohalo-64.toml``: a semantic net and a
centre-offsets instance net (issue #21). The paper's pair on the same boxes (the discriminative-loss instance net,
López-Cano et al.) ships beside them in ``default_models/paper/`` (:data:`PAPER_PAIR_DIR`). A model learns the linear
fields at one resolution: it applies to boxes with the same cell size L/n (any n that is a multiple of its crop
lattice step), and a box at another cell size, or a checkpoint with another channel layout, is a clear error.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from pathlib import Path
from typing import Any

import torch

from cosmoseg.data import Field, Segmentation, cosmology_differences
from cosmoseg.errors import ArtifactError, ProblemCollector, ValidationError
from cosmoseg.protohalo.centres import DEFAULT_GROUPING
from cosmoseg.protohalo.panoptic import (
    FILTERED_CHANNELS,
    INPUT_CHANNELS,
    predict_panoptic,
    predict_panoptic_offsets,
    remove_long_modes,
)
from cosmoseg.protohalo.training import COSMOLOGY_KEYS, load_model

__all__ = [
    "COSMOLOGY_KEYS",
    "COSMOLOGY_RTOL",
    "DEFAULT_MODELS_DIR",
    "PAPER_CLUSTERING",
    "PAPER_PAIR_DIR",
    "PARTICLE_MASS_RTOL",
    "SHIPPED_PAIR_DIRS",
    "ModelPair",
    "cosmology_differences",
    "default_checkpoint",
    "load_model_pair",
    "validation_boxes",
]

DEFAULT_MODELS_DIR = Path(__file__).parent / "default_models"
CELL_SIZE_RTOL = 1e-3
"""Relative tolerance on the cell size L/n between a box and the model's training boxes."""
PAPER_CLUSTERING = {"n_dens": 20, "n_ngb": 15, "p_thresh": 4.2}
"""Appendix B's clustering settings, used when an instance checkpoint recommends none."""
PARTICLE_MASS_RTOL = 0.01
"""Above this relative difference from the training boxes' particle mass (another Ω_m), the models extrapolate."""
COSMOLOGY_RTOL = 0.01
"""A parameter that differs from the training value by more than this (relative; absolute for w0, wa) is named."""


def grid_problems(fields: Field, metadata: dict[str, Any], *, where: str, trained: str) -> list[str]:
    """Why nets of a checkpoint cannot predict ``fields``, one line each: another cell size (beyond
    :data:`CELL_SIZE_RTOL`), a box side that is not a multiple of the crop lattice step.

    metadata: the checkpoint's ``box_length`` (Mpc/h), ``grid_n`` and ``size_out``; where: names the fields in the
    lines; trained: names the nets, e.g. "the model was" or "the models (semantic.pt) were"."""
    problems = []
    length, grid_n = float(metadata["box_length"]), int(metadata["grid_n"])
    cell, model_cell = fields.box.length / fields.n, length / grid_n
    if abs(cell - model_cell) > CELL_SIZE_RTOL * model_cell:
        problems.append(
            f"{where}: cell size L/n = {fields.box.length:g}/{fields.n} = {cell:.4g} Mpc/h, but {trained} trained at "
            f"{length:g}/{grid_n} = {model_cell:.4g} Mpc/h: use boxes at that resolution or train models at yours"
        )
    size_out = int(metadata["size_out"])
    if fields.n % size_out:
        problems.append(
            f"{where}: box side n = {fields.n} is not a multiple of the crop lattice step size_out = {size_out}"
        )
    return problems


def input_highpass(metadata: dict[str, Any]) -> dict[str, Any]:
    """The preprocessing a checkpoint records (``input_highpass``): ``box_length`` (Mpc/h), the side of the training
    boxes, and the ``channels`` from which every mode with |k| < 2π/box_length is removed
    (:func:`~cosmoseg.protohalo.panoptic.remove_long_modes`). A checkpoint that does not record it gets the shipped
    models' choice: its training box side and :data:`~cosmoseg.protohalo.panoptic.FILTERED_CHANNELS`."""
    recorded = metadata.get("input_highpass") or {}
    return {
        "box_length": float(recorded.get("box_length", metadata["box_length"])),
        "channels": [str(c) for c in recorded.get("channels", FILTERED_CHANNELS)],
    }


def prepare_for_training_boxes(fields: Field, highpass: dict[str, Any]) -> tuple[Field, list[str]]:
    """``fields`` as nets trained on boxes of ``highpass["box_length"]`` must see them (:func:`input_highpass`), and
    a line for the log per thing done to them: the longer modes removed from ``highpass["channels"]`` (with the std
    removed per channel), or a note that a box smaller than the training boxes lacks their longest modes."""
    notes = []
    length, channels = highpass["box_length"], highpass["channels"]
    prepared, removed = remove_long_modes(fields, length, channels)
    if removed:
        stds = ", ".join(f"{c} {v:.3g}" for c, v in removed.items())
        notes.append(
            f"box of {fields.box.length:g} Mpc/h: the modes longer than the training boxes ({length:g} Mpc/h; "
            f"|k| < {2 * math.pi / length:.4g} h/Mpc) removed from {', '.join(channels)} (std removed: {stds})"
        )
    elif fields.box.length < length * (1 - 1e-6):
        notes.append(
            f"box of {fields.box.length:g} Mpc/h is smaller than the training boxes ({length:g} Mpc/h): it lacks "
            "their longest modes, and the models extrapolate"
        )
    return prepared, notes


PAPER_PAIR_DIR = DEFAULT_MODELS_DIR / "paper"
"""The paper's formulation trained on the default pair's boxes (its MODEL_CARD.md): load it with
``load_model_pair(PAPER_PAIR_DIR / "semantic.pt", PAPER_PAIR_DIR / "instance.pt")``."""

SHIPPED_PAIR_DIRS: tuple[Path, ...] = (DEFAULT_MODELS_DIR, DEFAULT_MODELS_DIR / "omega-m")
"""The shipped model pairs, one per resolution: the default (``protohalo-64``, 0.78 Mpc/h cells, one cosmology) and
``omega-m`` (0.39 Mpc/h cells, trained across the Ω_m–σ_8 suite of issue #20); each folder has its MODEL_CARD.md."""


@functools.cache
def _shipped_cell_size(folder: Path) -> float | None:
    from cosmoseg.nn import read_checkpoint

    path = folder / "semantic.pt"
    if not path.is_file():
        return None
    meta = read_checkpoint(path)["metadata"]
    return float(meta["box_length"]) / int(meta["grid_n"])


def default_checkpoint(task: str, cell_size: float | None = None) -> Path:
    """The shipped checkpoint of ``task`` ("semantic" or "instance"): of the shipped pair trained at ``cell_size``
    (L/n, Mpc/h) when one is, else of the default pair."""
    if task not in INPUT_CHANNELS:
        raise ValidationError(f"task must be one of {sorted(INPUT_CHANNELS)}, got {task!r}")
    if cell_size is not None:
        for folder in SHIPPED_PAIR_DIRS:
            trained = _shipped_cell_size(folder)
            if trained is not None and abs(cell_size - trained) <= CELL_SIZE_RTOL * trained:
                return folder / f"{task}.pt"
    return DEFAULT_MODELS_DIR / f"{task}.pt"


@dataclasses.dataclass(frozen=True)
class ModelPair:
    """A semantic and an instance model with their checkpoint metadata.

    size_in, size_out: crop sides (voxels) shared by both. threshold: the semantic threshold stored with the
    semantic checkpoint. cell_size: L/n of the training boxes, Mpc/h. particle_mass: of the training boxes, Msun/h.
    """

    semantic: torch.nn.Module
    instance: torch.nn.Module
    semantic_meta: dict[str, Any]
    instance_meta: dict[str, Any]
    semantic_path: Path
    instance_path: Path

    @property
    def size_in(self) -> int:
        return int(self.semantic_meta["size_in"])

    @property
    def size_out(self) -> int:
        return int(self.semantic_meta["size_out"])

    @property
    def threshold(self) -> float:
        return float(self.semantic_meta.get("threshold", 0.5))

    @property
    def clustering(self) -> dict[str, Any]:
        """n_dens, n_ngb, p_thresh recommended by the instance checkpoint (tuned on its training boxes by
        ``cosmoseg protohalo export --n-dens ...``), else the paper's."""
        return {
            "n_dens": int(self.instance_meta.get("n_dens", PAPER_CLUSTERING["n_dens"])),
            "n_ngb": int(self.instance_meta.get("n_ngb", PAPER_CLUSTERING["n_ngb"])),
            "p_thresh": float(self.instance_meta.get("p_thresh", PAPER_CLUSTERING["p_thresh"])),
        }

    @property
    def kind(self) -> str:
        """How the instances are made: "embedding" (the paper's instance net and clustering), "offsets" (a centre-offset
        net beside the semantic one) or "panoptic" (one net for the semantic logit and the offsets)."""
        task = str(self.instance_meta.get("task"))
        return {"instance": "embedding"}.get(task, task)

    @property
    def grouping(self) -> dict[str, float]:
        """The centre grouping's settings stored with an offsets or panoptic checkpoint (``cosmoseg protohalo export
        --smoothing ...``), else :data:`~cosmoseg.protohalo.centres.DEFAULT_GROUPING`."""
        return {k: float(self.instance_meta.get(k, v)) for k, v in DEFAULT_GROUPING.items()}

    def predict(
        self,
        fields: Field,
        *,
        clustering: dict[str, Any] | None = None,
        grouping: dict[str, float] | None = None,
        symmetries: int = 1,
        **options: Any,
    ) -> Segmentation:
        """The panoptic segmentation of ``fields`` (prepared with :meth:`prepare_fields`) by this pair.

        The paper's pair runs :func:`~cosmoseg.protohalo.panoptic.predict_panoptic` with :attr:`clustering` updated by
        ``clustering``; an offsets or panoptic pair runs :func:`~cosmoseg.protohalo.panoptic.predict_panoptic_offsets`
        with :attr:`grouping` updated by ``grouping`` and ``symmetries`` (test-time augmentation). ``options``: the
        shared keywords of both (``threshold``, default :attr:`threshold`; ``batch_size``, ``device``, ``keep``,
        ``offset``, ``amp``, ``progress``, ``mask``); ``clustering`` may also hold ``iou_threshold``.
        """
        common = {"size_in": self.size_in, "size_out": self.size_out, "threshold": self.threshold} | options
        if self.kind == "embedding":
            if symmetries != 1:
                raise ValidationError("test-time augmentation (symmetries > 1) needs an offsets or panoptic model")
            settings = self.clustering | (clustering or {})
            return predict_panoptic(fields, self.semantic, self.instance, **common, **settings)
        semantic = None if self.kind == "panoptic" else self.semantic
        settings = {**self.grouping, **(grouping or {})}
        return predict_panoptic_offsets(
            fields, semantic, self.instance, grouping=settings, symmetries=symmetries, **common
        )

    @property
    def cell_size(self) -> float:
        return float(self.semantic_meta["box_length"]) / int(self.semantic_meta["grid_n"])

    @property
    def particle_mass(self) -> float:
        return float(self.semantic_meta["particle_mass"])

    @property
    def cosmology(self) -> dict[str, float] | None:
        """The training boxes' cosmological parameters (metadata ``cosmology``), None when the checkpoint lacks it."""
        recorded = self.semantic_meta.get("cosmology")
        return {k: float(v) for k, v in recorded.items()} if recorded else None

    @property
    def input_highpass(self) -> dict[str, Any]:
        """The preprocessing of the inputs (metadata ``input_highpass``): ``box_length`` (Mpc/h), the side of the
        training boxes, and the ``channels`` from which every mode with |k| < 2π/box_length is removed
        (:func:`~cosmoseg.protohalo.panoptic.remove_long_modes`). A checkpoint that does not record it gets the
        shipped models' choice: its training box side and δ, φ."""
        return input_highpass(self.semantic_meta)

    def prepare_fields(self, fields: Field) -> tuple[Field, list[str]]:
        """The fields as the models must see them, and a line for the log per thing done to them.

        The modes longer than the training boxes allow are removed (:attr:`input_highpass`; a line gives the std
        removed per channel); a box smaller than the training boxes lacks modes they had (a line says so).
        ``fields``: (δ, φ) on a box at the models' cell size (:meth:`check_fields`). How the box differs from the
        training boxes otherwise (particle mass, cosmology) is :meth:`domain_notes`."""
        return prepare_for_training_boxes(fields, self.input_highpass)

    @property
    def cosmology_range(self) -> dict[str, tuple[float, float]]:
        """Parameters that vary across the training boxes (metadata ``cosmology_range``): name -> (low, high)."""
        recorded = self.semantic_meta.get("cosmology_range") or {}
        return {k: (float(v[0]), float(v[1])) for k, v in recorded.items()}

    @property
    def particle_mass_range(self) -> tuple[float, float]:
        """(low, high) particle mass of the training boxes, Msun/h (one value twice for a one-cosmology suite)."""
        low, high = self.semantic_meta.get("particle_mass_range") or (self.particle_mass, self.particle_mass)
        return float(low), float(high)

    def domain_notes(self, fields: Field) -> list[str]:
        """Lines naming how the box of ``fields`` differs from the training boxes in particle mass (another Ω_m at
        the same cell size) and cosmology (:data:`COSMOLOGY_RTOL`; outside the range for the parameters that vary
        across the training boxes); empty when it does not (what cannot be checked is :meth:`unchecked_notes`)."""
        notes = []
        particle_mass = fields.box.cosmology.particle_mass(fields.n, fields.box.length)
        low, high = self.particle_mass_range
        if not low * (1 - PARTICLE_MASS_RTOL) <= particle_mass <= high * (1 + PARTICLE_MASS_RTOL):
            trained = f"{low:.4g}" if low == high else f"{low:.4g}–{high:.4g}"
            notes.append(
                f"particle mass {particle_mass:.4g} Msun/h differs from the training boxes' {trained} "
                "(another Omega_m): the models extrapolate"
            )
        trained = self.cosmology
        differences = (
            [] if trained is None else cosmology_differences(trained, fields.box.cosmology, rtol=COSMOLOGY_RTOL)
        )
        for key, (low, high) in self.cosmology_range.items():
            value = float(getattr(fields.box.cosmology, key))
            pad = COSMOLOGY_RTOL * (1.0 if key in ("w0", "wa") else max(abs(low), abs(high)))
            if not low - pad <= value <= high + pad:
                differences.append(f"{key} {value:.6g} (trained {low:.6g}–{high:.6g})")
        if differences:
            joined = "; ".join(differences)
            notes.append(f"cosmology differs from the training boxes': {joined}: the models extrapolate")
        return notes

    def unchecked_notes(self) -> list[str]:
        """A line when the checkpoint does not record its training cosmology (:meth:`domain_notes` cannot check
        it), else none."""
        if self.cosmology is None:
            return [f"{self.semantic_path.name} does not record its training cosmology: it is not checked"]
        return []

    def check_fields(self, fields: Field, where: str = "fields") -> None:
        """`ValidationError` naming every reason the models cannot predict ``fields``: another cell size, or a
        box side that is not a multiple of the crop lattice step."""
        problems = ProblemCollector()
        metadata = {**self.semantic_meta, "size_out": self.size_out}
        for problem in grid_problems(
            fields, metadata, where=where, trained=f"the models ({self.semantic_path.name}) were"
        ):
            problems.add(problem)
        problems.raise_if_any(ValidationError, context="protohalo models")


SEMANTIC_TASKS = ("semantic", "panoptic")
INSTANCE_TASKS = ("instance", "offsets", "panoptic")


def _task_of(path: Path, role: str, allowed: tuple[str, ...]) -> str:
    from cosmoseg.nn import read_checkpoint

    if not path.is_file():
        raise ValidationError(f"{path}: no such {role} checkpoint")
    task = str(read_checkpoint(path)["metadata"].get("task", ""))
    if task not in allowed:
        expected = " or ".join(repr(t) for t in allowed)
        raise ArtifactError(f"{path}: 'task' is {task!r} in the checkpoint, expected {expected} for the {role} model")
    return task


def load_model_pair(
    semantic: str | os.PathLike[str] | None = None,
    instance: str | os.PathLike[str] | None = None,
    *,
    device: str | torch.device = "cpu",
    cell_size: float | None = None,
) -> ModelPair:
    """Load a semantic and an instance checkpoint (``None``: the shipped one, of the pair trained at ``cell_size``
    when given and one is, :func:`default_checkpoint`) with ``weights_only=True``.

    The semantic checkpoint is a "semantic" net, or a "panoptic" one (one net for both; then ``instance`` must be
    ``None`` or the same file). The instance checkpoint is the paper's "instance" embedding net or a centre-"offsets"
    net. Raises `ArtifactError` for a checkpoint whose task cannot fill its role or of the wrong channel layout,
    `ValidationError` for a missing file or when the two were trained at different crop sizes or resolutions.
    """
    semantic_path = Path(semantic) if semantic is not None else default_checkpoint("semantic", cell_size)
    semantic_task = _task_of(semantic_path, "semantic", SEMANTIC_TASKS)
    if semantic_task == "panoptic":
        if instance is not None and Path(instance).resolve() != semantic_path.resolve():
            raise ValidationError(
                f"{semantic_path} is a panoptic net (semantic and instance heads in one): give no other instance "
                f"checkpoint (got {instance})"
            )
        instance_path = semantic_path
    else:
        instance_path = Path(instance) if instance is not None else default_checkpoint("instance", cell_size)
    allowed = INSTANCE_TASKS if semantic_task == "panoptic" else INSTANCE_TASKS[:2]
    instance_task = _task_of(instance_path, "instance", allowed)
    models, metas = {}, {}
    for role, path, task in (("semantic", semantic_path, semantic_task), ("instance", instance_path, instance_task)):
        expect = {"channels": list(INPUT_CHANNELS[task])}
        models[role], metas[role] = load_model(path, task, expect, device=str(device))
    s, i = metas["semantic"], metas["instance"]
    problems = ProblemCollector()
    for key in ("size_in", "size_out", "grid_n", "box_length", "input_highpass"):
        problems.check(
            s.get(key) == i.get(key),
            f"{key} is {s.get(key)!r} in {semantic_path} but {i.get(key)!r} in {instance_path}",
        )
    problems.raise_if_any(ValidationError, context="the semantic and instance checkpoints disagree")
    return ModelPair(models["semantic"], models["instance"], s, i, semantic_path, instance_path)


def validation_boxes(suite_dir: str | os.PathLike[str], semantic: str | os.PathLike[str] | None = None) -> list[Path]:
    """The box files of ``suite_dir`` that the semantic checkpoint (``None``: the shipped one) held out for validation,
    as its metadata ``validation_boxes`` records them: the boxes to score the model on. `ValidationError` when the
    checkpoint records none, or naming those the folder lacks."""
    from cosmoseg.nn import read_checkpoint

    path = Path(semantic) if semantic is not None else default_checkpoint("semantic")
    names = [str(name) for name in read_checkpoint(path)["metadata"].get("validation_boxes", [])]
    if not names:
        raise ValidationError(f"{path} records no validation boxes: give the boxes to score")
    paths = [Path(suite_dir) / name for name in names]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise ValidationError(
            f"{suite_dir} lacks the models' validation boxes {missing} (the semantic checkpoint's metadata): give the "
            "boxes to score as arguments (BOX.h5 ...)"
        )
    return paths
