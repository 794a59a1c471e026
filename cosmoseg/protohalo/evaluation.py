"""Validation metrics of the protohalo panoptic prediction, next to the twin ("chaos") baseline (issue 5).

:func:`evaluate` predicts every validation box with :func:`~cosmoseg.protohalo.panoptic.predict_panoptic` (the
threshold stored with the semantic checkpoint) and scores it against the box's FoF ``segmentation``; for twin
boxes (``segmentation_a`` / ``segmentation_b`` of a ``twins = true`` suite) it scores ``segmentation_b`` against
``segmentation_a`` the same way: how well any model can do at this resolution (López-Cano et al. §5).
Scores are pooled over boxes: the boxes' voxels are concatenated, with labels offset so that no two boxes
share an id, so ratios are ratios of total counts (not means of per-box ratios).

Tables (all columns finite: a ratio 0/0 or a quantile of an empty bin is stored as ``MISSING`` = -1):

- ``scores``: one row per source (``source`` 0 = "model", 1 = "baseline"; names in meta): the semantic
  TP, FP, TN, FN, TPR, TNR, PPV, ACC, F1, the instance precision / recall / F1 / mean IoU / panoptic
  quality at IoU >= 0.5 with the halo counts, and ARI / VI;
- ``per_mass``: rows per (source, bin of log10 true/predicted halo mass), the columns of
  :func:`~cosmoseg.measure.segmentation.per_mass_rates` (TPR, FNR, FDR, quantiles q05, q16, q25, q50, q75, q84,
  q95 of log10 M_pred);
  both sources share the bins;
- ``mass_function``: dn/dlnM of the predicted and of the FoF haloes (catalogs built from the segmentations)
  in shared bins, with ``ratio`` = pred / true (MISSING where the truth bin is empty).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from cosmoseg.data import Field, Segmentation, Table, load_artifact
from cosmoseg.errors import ValidationError
from cosmoseg.measure.instance_metrics import (
    adjusted_rand_index,
    contingency,
    match_instances,
    variation_of_information,
)
from cosmoseg.measure.mass_function import halo_mass_function
from cosmoseg.measure.segmentation import binary_scores, default_mass_edges, per_mass_rates, voxel_halo_masses
from cosmoseg.protohalo.catalog import halo_catalog_from_segmentation
from cosmoseg.protohalo.panoptic import predict_panoptic
from cosmoseg.protohalo.pretrained import load_model_pair

__all__ = ["MISSING", "SOURCES", "evaluate"]

MISSING = -1.0
"""Stored in place of an undefined value (0/0 ratio, quantile of an empty bin): every rate is in [0, 1] and
every log10 mass is positive, so it cannot be mistaken for a value."""

SOURCES = ("model", "baseline")
QUANTILES = (0.05, 0.16, 0.25, 0.5, 0.75, 0.84, 0.95)
"""Levels of the quantiles of log10 M_pred per true-mass bin: the violins, and the median with its 16–84% range."""
SEMANTIC_KEYS = ("TP", "FP", "TN", "FN", "TPR", "TNR", "PPV", "ACC", "F1")


def _finite(x: torch.Tensor | float) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=torch.float64)
    return torch.where(torch.isfinite(t), t, torch.full_like(t, MISSING))


class _Pool:
    """Voxels of several boxes, concatenated, with labels offset so that no two boxes share an id."""

    def __init__(self) -> None:
        self.truth: list[torch.Tensor] = []
        self.pred: list[torch.Tensor] = []
        self.positive: list[torch.Tensor] = []
        self._t_offset = 0
        self._p_offset = 0

    def add(self, truth: torch.Tensor, pred: torch.Tensor, positive: torch.Tensor) -> None:
        t, p = truth.flatten().long().cpu(), pred.flatten().long().cpu()
        self.truth.append(torch.where(t > 0, t + self._t_offset, 0))
        self.pred.append(torch.where(p > 0, p + self._p_offset, 0))
        self.positive.append(positive.flatten().bool().cpu())
        self._t_offset += int(t.max()) if t.numel() else 0
        self._p_offset += int(p.max()) if p.numel() else 0

    def __bool__(self) -> bool:
        return bool(self.truth)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return torch.cat(self.truth), torch.cat(self.pred), torch.cat(self.positive)


def _scores(pool: _Pool) -> dict[str, float]:
    truth, pred, positive = pool.tensors()
    semantic = binary_scores(positive, truth > 0)
    table = contingency(truth, pred)
    match = match_instances(table, iou_threshold=0.5)
    out = {key: semantic[key] for key in SEMANTIC_KEYS}
    out |= {
        "n_true_haloes": float(match.n_true),
        "n_pred_haloes": float(match.n_pred),
        "n_matched": float(match.true_label.numel()),
        "instance_precision": match.precision,
        "instance_recall": match.recall,
        "instance_f1": match.f1,
        "mean_iou": match.mean_iou,
        "panoptic_quality": match.panoptic_quality,
        "ARI": adjusted_rand_index(table),
        "VI": variation_of_information(table),
    }
    return out


def _load(path: str | os.PathLike[str], names: Sequence[str]) -> dict[str, Any]:
    objects = load_artifact(path)
    missing = [name for name in names if name not in objects]
    if missing:
        raise ValidationError(f"{path}: needs {list(names)}, lacks {missing} (it has {sorted(objects)})")
    if not isinstance(objects[names[0]], Field) or not all(isinstance(objects[n], Segmentation) for n in names[1:]):
        raise ValidationError(f"{path}: {names[0]!r} must be a Field and {list(names[1:])} Segmentations")
    return objects


def _particle_mass(seg: Segmentation) -> float:
    return float(seg.box.cosmology.particle_mass(int(seg.labels.shape[-1]), float(seg.box.length)))


def evaluate(
    semantic_checkpoint: str | os.PathLike[str] | None,
    instance_checkpoint: str | os.PathLike[str] | None,
    box_paths: Sequence[str | os.PathLike[str]],
    *,
    twin_paths: Sequence[str | os.PathLike[str]] = (),
    batch_size: int = 4,
    device: str = "cpu",
    n_mass_bins: int = 8,
    n_mf_bins: int = 10,
    keep: int | None = None,
) -> dict[str, Table]:
    """Score the panoptic prediction on ``box_paths`` and the twin baseline on ``twin_paths``.

    semantic_checkpoint, instance_checkpoint: the model pair (``None``: the shipped default).
    box_paths: box files holding ``fields`` (δ, φ) and the FoF ``segmentation``, at the models' resolution.
    twin_paths: twin box files holding ``segmentation_a`` and ``segmentation_b``.
    The clustering uses the instance checkpoint's recommended settings (:attr:`ModelPair.clustering`).
    keep: central part of each output crop used (see :func:`~cosmoseg.protohalo.panoptic.predict_panoptic`).
    Returns the Tables ``scores``, ``per_mass`` and ``mass_function`` described in the module docstring.
    """
    if not box_paths:
        raise ValidationError("evaluate needs at least one validation box")
    pair = load_model_pair(semantic_checkpoint, instance_checkpoint, device=device)
    size_in, size_out, threshold = pair.size_in, pair.size_out, pair.threshold

    pools = {"model": _Pool(), "baseline": _Pool()}
    particle_masses: set[float] = set()
    pred_masses: list[torch.Tensor] = []
    true_masses: list[torch.Tensor] = []
    volume = 0.0
    for path in box_paths:
        objects = _load(path, ("fields", "segmentation"))
        fields, truth = objects["fields"], objects["segmentation"]
        pair.check_fields(fields, where=str(path))
        pred = predict_panoptic(
            fields,
            pair.semantic,
            pair.instance,
            size_in=size_in,
            size_out=size_out,
            threshold=threshold,
            batch_size=batch_size,
            device=device,
            keep=keep,
            **pair.clustering,
        )
        assert pred.probabilities is not None
        pools["model"].add(truth.labels, pred.labels, pred.probabilities > threshold)
        particle_masses.add(_particle_mass(truth))
        for seg, out in ((pred, pred_masses), (truth, true_masses)):
            catalog, _ = halo_catalog_from_segmentation(seg, fields)
            out.append(catalog["mass"].to(torch.float64).cpu())
        volume += float(fields.box.length) ** 3
    for path in twin_paths:
        objects = _load(path, ("fields", "segmentation_a", "segmentation_b"))
        a, b = objects["segmentation_a"], objects["segmentation_b"]
        pools["baseline"].add(a.labels, b.labels, b.labels > 0)
        particle_masses.add(_particle_mass(a))
    if max(particle_masses) - min(particle_masses) > 1e-6 * max(particle_masses):
        raise ValidationError(
            f"the boxes have different particle masses {sorted(particle_masses)}: one resolution only"
        )
    particle_mass = min(particle_masses)

    used = [(i, name) for i, name in enumerate(SOURCES) if pools[name]]
    score_rows = [_scores(pools[name]) for _, name in used]
    scores = Table(
        columns={
            "source": torch.tensor([i for i, _ in used], dtype=torch.int64),
            **{key: _finite([row[key] for row in score_rows]) for key in score_rows[0]},
        },
        meta={
            **{f"source_{i}": name for i, name in enumerate(SOURCES)},
            "threshold": threshold,
            "iou_threshold": 0.5,
            "n_boxes": len(box_paths),
            "n_twin_boxes": len(twin_paths),
            "missing_value": MISSING,
        },
    )

    # shared log-mass bins over every true and predicted halo of both sources
    all_masses = []
    for _, name in used:
        truth, pred, _ = pools[name].tensors()
        all_masses += [voxel_halo_masses(truth, particle_mass), voxel_halo_masses(pred, particle_mass)]
    edges = default_mass_edges(all_masses, n_mass_bins)
    per_mass_columns: dict[str, list[torch.Tensor]] = {}
    for i, name in used:
        truth, pred, positive = pools[name].tensors()
        rates = per_mass_rates(truth, pred, particle_mass, edges, pred_positive=positive, quantiles=QUANTILES)
        per_mass_columns.setdefault("source", []).append(torch.full((n_mass_bins,), i, dtype=torch.int64))
        for key, value in rates.items():
            per_mass_columns.setdefault(key, []).append(_finite(value))
    per_mass = Table(
        columns={key: torch.cat(parts) for key, parts in per_mass_columns.items()},
        units={"m_low": "Msun/h", "m_high": "Msun/h", "m_mid": "Msun/h"},
        meta={
            **{f"source_{i}": name for i, name in enumerate(SOURCES)},
            "particle_mass": particle_mass,
            "quantiles_of": "log10 M_pred of true-halo voxels in a predicted halo",
            "quantile_levels": ",".join(f"{q:g}" for q in QUANTILES),
            "missing_value": MISSING,
        },
    )

    pred_m, true_m = torch.cat(pred_masses), torch.cat(true_masses)
    mf_edges = 10.0 ** default_mass_edges([pred_m, true_m], n_mf_bins)
    hmf_pred = halo_mass_function(pred_m, volume, edges=mf_edges)
    hmf_true = halo_mass_function(true_m, volume, edges=mf_edges)
    ratio = torch.where(hmf_true["counts"] > 0, hmf_pred["dndlnm"] / hmf_true["dndlnm"].clamp(min=1e-300), MISSING)
    mass_function = Table(
        columns={
            "m_low": hmf_true["m_low"],
            "m_high": hmf_true["m_high"],
            "m_mid": hmf_true["m_mid"],
            "counts_pred": hmf_pred["counts"],
            "dndlnm_pred": hmf_pred["dndlnm"],
            "dndlnm_pred_err": hmf_pred["dndlnm_err"],
            "counts_true": hmf_true["counts"],
            "dndlnm_true": hmf_true["dndlnm"],
            "dndlnm_true_err": hmf_true["dndlnm_err"],
            "ratio": _finite(ratio),
        },
        units={
            "m_low": "Msun/h",
            "m_high": "Msun/h",
            "m_mid": "Msun/h",
            **{k: hmf_true.units["dndlnm"] for k in ("dndlnm_pred", "dndlnm_pred_err", "dndlnm_true")},
            "dndlnm_true_err": hmf_true.units["dndlnm"],
        },
        meta={"volume": volume, "particle_mass": particle_mass, "missing_value": MISSING},
    )
    return {"scores": scores, "per_mass": per_mass, "mass_function": mass_function}
