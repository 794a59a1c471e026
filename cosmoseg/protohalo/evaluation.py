"""Validation metrics of the protohalo panoptic prediction, next to the twin ("chaos") baseline (issue 5).

:func:`evaluate` predicts every validation box with :func:`~cosmoseg.protohalo.panoptic.predict_panoptic` (the
threshold stored with the semantic checkpoint) and scores it against the box's FoF ``segmentation``; for twin
boxes (``segmentation_a`` / ``segmentation_b`` of a ``twins = true`` suite) it scores ``segmentation_b`` against
``segmentation_a`` the same way: how well any model can do at this resolution (López-Cano et al. §5).
Scores are pooled over boxes: the boxes' voxels are concatenated, with labels offset so that no two boxes
share an id, so ratios are ratios of total counts (not means of per-box ratios).

Tables hold finite numbers only. A value that does not exist (a ratio 0/0, a quantile of an empty bin) follows the
project's convention (docs/data-model.md, "Missing values"): it is stored as ``MISSING`` =
:data:`~cosmoseg.data.table.MISSING_FILL` (0), and the count beside it is 0 — read the count, never the 0:

- ``scores``: ``TP + FN`` behind TPR, ``TN + FP`` behind TNR, ``TP + FP`` behind PPV, ``n_pred_haloes`` behind
  ``instance_precision``, ``n_true_haloes`` behind ``instance_recall``, ``n_matched`` behind ``mean_iou``,
  ``n_pred_haloes_labelled`` behind ``instance_precision_labelled``;
- ``per_mass``: ``n_true`` behind TPR and FNR, ``n_pred`` behind FDR, ``n_violin`` behind the quantiles,
  ``n_true_haloes`` behind ``instance_recall``, ``n_pred_haloes`` behind ``instance_precision``;
- ``mass_function``: ``counts_true`` behind ``ratio``.

Tables:

- ``scores``: one row per source (``source`` 0 = "model", 1 = "baseline"; names in meta): the semantic
  TP, FP, TN, FN, TPR, TNR, PPV, ACC, F1, the instance precision / recall / F1 / mean IoU / panoptic
  quality at IoU >= 0.5 with the halo counts, and ARI / VI. ``instance_precision`` counts *every* predicted
  halo, also those smaller than the truth's labelling limit (the FoF haloes of fewer particles are not in the
  labels, so such a prediction can never match); the matched definition, ``instance_precision_labelled`` /
  ``instance_recall_labelled`` / ``instance_f1_labelled`` with ``n_pred_haloes_labelled`` and
  ``n_matched_labelled``, drops the predicted haloes with fewer voxels than the truth's labelling limit (the
  truth segmentation's ``meta["min_particles"]``, else its smallest halo) before matching, as the truth was;
- ``per_mass``: rows per (source, bin of log10 true/predicted halo mass), the columns of
  :func:`~cosmoseg.measure.segmentation.per_mass_rates` (TPR, FNR, FDR, quantiles q05, q16, q25, q50, q75, q84,
  q95 of log10 M_pred, and the instance recall by true mass and precision by predicted mass at IoU ≥ 0.5);
  both sources share the bins;
- ``mass_function``: dn/dlnM of the predicted and of the FoF haloes (catalogs built from the segmentations)
  in shared bins, with ``ratio`` = pred / true (MISSING where the truth bin is empty: ``counts_true`` = 0); with
  twins, ``counts_twins`` and ``dndlnm_twins``, the mass function of the twins' ``segmentation_b`` (haloes above
  the labelling limit) in the same bins;
- ``eulerian`` (when the boxes hold their FoF ``halos`` catalog): rows per (source, bin of the FoF mass), source
  0 = the model, 1 = the true segmentation placed by 2LPT: ``n_fof`` labelled FoF haloes, ``n_matched`` of them
  matched (IoU ≥ 0.5), ``matched_fraction``, and the 16/50/84% quantiles of log10 M_pred/M_FoF and of the distance
  between the 2LPT-placed and the FoF centres of mass (Mpc/h) (:mod:`cosmoseg.protohalo.eulerian`).
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from cosmoseg.data import Field, HaloCatalog, Segmentation, Table, load_artifact
from cosmoseg.data.table import MISSING_FILL
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
from cosmoseg.protohalo.data import labelling_limit
from cosmoseg.protohalo.eulerian import matched_halo_errors
from cosmoseg.protohalo.pretrained import cosmology_differences, load_model_pair
from cosmoseg.protohalo.training import COSMOLOGY_KEYS

__all__ = ["MISSING", "SOURCES", "drop_below", "evaluate", "labelling_limit", "oracle_instances"]

MISSING = MISSING_FILL
"""Stored in place of an undefined value (0/0 ratio, quantile of an empty bin): the project's fill value
(:data:`~cosmoseg.data.table.MISSING_FILL`, 0), with a count of 0 beside it in the same row (module docstring)."""
MISSING_NOTE = (
    "undefined values (a ratio 0/0, a quantile of an empty bin) hold MISSING_FILL = 0 where the count beside them "
    "is 0 (docs/data-model.md, 'Missing values')"
)

SOURCES = ("model", "baseline", "true mask + model instances", "model mask + true instances")
"""The rows of the scores: the model pair, the twin baseline, and the two oracles of ``evaluate(oracles=True)``."""
QUANTILES = (0.05, 0.16, 0.25, 0.5, 0.75, 0.84, 0.95)
"""Levels of the quantiles of log10 M_pred per true-mass bin: the violins, and the median with its 16–84% range."""
SEMANTIC_KEYS = ("TP", "FP", "TN", "FN", "TPR", "TNR", "PPV", "ACC", "F1")


def _finite(x: torch.Tensor | float) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=torch.float64)
    return torch.where(torch.isfinite(t), t, torch.full_like(t, MISSING))


def oracle_instances(mask: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """The best instances a perfect instance model could give the foreground ``mask``: each voxel of the mask takes
    the label of the nearest voxel of a true halo (itself when it is in one; nearest with periodic distances on the
    grid), so the instance errors left are the mask's. ``mask``: (n, n, n) bool; ``truth``: (n, n, n) int labels, 0 =
    background. Returns (n, n, n) int64 labels (0 outside the mask, and everywhere when the truth has no halo)."""
    from scipy.spatial import cKDTree

    labels = torch.zeros(truth.shape, dtype=torch.int64)
    inside = mask.cpu().bool()
    true = truth.cpu().long()
    halo_voxels = torch.nonzero(true > 0)
    if len(halo_voxels) == 0 or not bool(inside.any()):
        return labels
    queries = torch.nonzero(inside)
    tree = cKDTree(halo_voxels.numpy(), boxsize=list(true.shape))
    _, nearest = tree.query(queries.numpy())
    source = halo_voxels[torch.as_tensor(nearest)]
    labels[tuple(queries.T)] = true[tuple(source.T)]
    return labels


def drop_below(labels: torch.Tensor, min_voxels: int) -> torch.Tensor:
    """``labels`` (int, any shape, 0 = background) with every instance of fewer than ``min_voxels`` voxels set to
    0; the other labels keep their values."""
    flat = labels.flatten().long()
    sizes = torch.bincount(flat)
    small = sizes < int(min_voxels)
    small[0] = False
    return torch.where(small[flat], torch.zeros_like(flat), flat).reshape(labels.shape).to(labels.dtype)


class _Pool:
    """Voxels of several boxes, concatenated, with labels offset so that no two boxes share an id; ``labelled``
    holds the predictions with the haloes below each truth's labelling limit dropped."""

    def __init__(self) -> None:
        self.truth: list[torch.Tensor] = []
        self.pred: list[torch.Tensor] = []
        self.labelled: list[torch.Tensor] = []
        self.positive: list[torch.Tensor] = []
        self._t_offset = 0
        self._p_offset = 0

    def add(self, truth: torch.Tensor, pred: torch.Tensor, positive: torch.Tensor, min_voxels: int = 1) -> None:
        t, p = truth.flatten().long().cpu(), pred.flatten().long().cpu()
        self.truth.append(torch.where(t > 0, t + self._t_offset, 0))
        shifted = torch.where(p > 0, p + self._p_offset, 0)
        self.pred.append(shifted)
        self.labelled.append(drop_below(shifted, min_voxels))
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
    labelled = match_instances(contingency(truth, torch.cat(pool.labelled)), iou_threshold=0.5)
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
        "n_pred_haloes_labelled": float(labelled.n_pred),
        "n_matched_labelled": float(labelled.true_label.numel()),
        "instance_precision_labelled": labelled.precision,
        "instance_recall_labelled": labelled.recall,
        "instance_f1_labelled": labelled.f1,
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


def _one_cosmology_and_resolution(boxes: Sequence[tuple[str, Segmentation]]) -> float:
    """The particle mass (Msun/h) shared by the boxes (name, segmentation); `ValidationError` naming the first pair
    of boxes whose cosmology differs (by parameter), else whose cell size differs."""
    first_name, first = boxes[0]
    reference = {key: getattr(first.box.cosmology, key) for key in COSMOLOGY_KEYS}
    cell = float(first.box.length) / first.labels.shape[-1]
    for name, seg in boxes[1:]:
        differences = cosmology_differences(reference, seg.box.cosmology, rtol=1e-6, reference=first_name)
        if differences:
            raise ValidationError(
                f"the boxes have different cosmologies: {name} has {'; '.join(differences)}: evaluate one cosmology "
                "at a time"
            )
        n, other = seg.labels.shape[-1], float(seg.box.length) / seg.labels.shape[-1]
        if abs(other - cell) > 1e-6 * cell:
            raise ValidationError(
                f"the boxes have different cell sizes (so particle masses): {name} {seg.box.length:g}/{n} = "
                f"{other:.4g} Mpc/h, {first_name} {first.box.length:g}/{first.labels.shape[-1]} = {cell:.4g} Mpc/h: "
                "one resolution only"
            )
    return _particle_mass(first)


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
    mass_edges: Sequence[float] | None = None,
    keep: int | None = None,
    log: Callable[[str], None] | None = None,
    oracles: bool = False,
    symmetries: int = 1,
) -> dict[str, Table]:
    """Score the panoptic prediction on ``box_paths`` and the twin baseline on ``twin_paths``.

    semantic_checkpoint, instance_checkpoint: the model pair (``None``: the shipped default).
    box_paths: box files holding ``fields`` (δ, φ) and the FoF ``segmentation``, at the models' resolution.
    twin_paths: twin box files holding ``segmentation_a`` and ``segmentation_b``.
    mass_edges: the bin edges (Msun/h, increasing) of the mass function, the per-mass rates and the Eulerian table, so
    that several evaluations share them; default ``n_mf_bins`` (mass function, Eulerian) and ``n_mass_bins``
    (per-mass rates) bins equal in log M over the predicted and true masses.
    The clustering uses the instance checkpoint's recommended settings (:attr:`ModelPair.clustering`, or
    :attr:`ModelPair.grouping` for a centre-offsets model); ``symmetries``: test-time augmentation of an offsets or
    panoptic model (:meth:`ModelPair.predict`).
    keep: central part of each output crop used (see :func:`~cosmoseg.protohalo.panoptic.predict_panoptic`).
    Each box's fields are prepared as ``protohalo.panoptic`` prepares them (:meth:`ModelPair.prepare_fields`: the
    modes longer than the training boxes removed); ``log(line)`` gets a line per box for that, and a line starting
    with "warning:" per box whose particle mass or cosmology differs from the training boxes'
    (:meth:`ModelPair.domain_notes`). All boxes and twins must share one cosmology and cell size (else a
    `ValidationError` naming the difference).
    oracles: also score two oracles on each box, which separate the failure modes: the instance model clustering the
    *true* mask ("true mask + model instances": the instance model's own errors), and the semantic mask given the
    true instances (:func:`oracle_instances`; "model mask + true instances": what the mask alone costs).
    Returns the Tables ``scores``, ``per_mass``, ``mass_function`` and (boxes with a FoF catalog) ``eulerian``
    described in the module docstring.
    """
    if not box_paths:
        raise ValidationError("evaluate needs at least one validation box")
    if mass_edges is not None and (len(mass_edges) < 2 or any(b <= a for a, b in itertools.pairwise(mass_edges))):
        raise ValidationError(f"mass_edges must be at least 2 increasing masses, got {list(mass_edges)}")
    pair = load_model_pair(semantic_checkpoint, instance_checkpoint, device=device)
    threshold = pair.threshold

    say = log or (lambda line: None)
    pools = {name: _Pool() for name in SOURCES}
    eulerian: dict[str, list[dict[str, torch.Tensor]]] = {}
    segmentations: list[tuple[str, Segmentation]] = []
    pred_masses: list[torch.Tensor] = []
    true_masses: list[torch.Tensor] = []
    volume = 0.0
    for path in box_paths:
        objects = _load(path, ("fields", "segmentation"))
        fields, truth = objects["fields"], objects["segmentation"]
        pair.check_fields(fields, where=str(path))
        name = Path(path).name
        model_fields, notes = pair.prepare_fields(fields)
        for note in notes + pair.unchecked_notes():
            say(f"{name}: {note}")
        for note in pair.domain_notes(fields):
            say(f"warning: {name}: {note}")
        panoptic = functools.partial(
            pair.predict, model_fields, batch_size=batch_size, device=device, keep=keep, symmetries=symmetries
        )
        pred = panoptic()
        assert pred.probabilities is not None
        positive, limit = pred.probabilities > threshold, labelling_limit(truth)
        pools["model"].add(truth.labels, pred.labels, positive, limit)
        if oracles:
            true_mask = truth.labels > 0
            pools["true mask + model instances"].add(truth.labels, panoptic(mask=true_mask).labels, true_mask, limit)
            oracle = oracle_instances(positive, truth.labels)
            pools["model mask + true instances"].add(truth.labels, oracle, positive, limit)
        segmentations.append((name, truth))
        fof = objects.get("halos")
        if not isinstance(fof, HaloCatalog):
            say(f"{name}: no FoF 'halos' catalog: no Eulerian errors")
        for source, seg, out in (("model", pred, pred_masses), ("true segmentation + 2LPT", truth, true_masses)):
            catalog, catalog_labels = halo_catalog_from_segmentation(seg, fields)
            out.append(catalog["mass"].to(torch.float64).cpu())
            if isinstance(fof, HaloCatalog):
                errors = matched_halo_errors(catalog, catalog_labels, truth, fof)
                eulerian.setdefault(source, []).append(errors)
        volume += float(fields.box.length) ** 3
    twin_masses: list[torch.Tensor] = []
    twin_volume = 0.0
    for path in twin_paths:
        objects = _load(path, ("fields", "segmentation_a", "segmentation_b"))
        a, b = objects["segmentation_a"], objects["segmentation_b"]
        pools["baseline"].add(a.labels, b.labels, b.labels > 0, labelling_limit(a))
        segmentations.append((f"twin {Path(path).name}", a))
        twin_masses.append(_segmentation_masses(b, labelling_limit(a)))
        twin_volume += float(b.box.length) ** 3
    particle_mass = _one_cosmology_and_resolution(segmentations)

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
            "missing": MISSING_NOTE,
        },
    )

    # shared log-mass bins over every true and predicted halo of both sources (or the caller's)
    if mass_edges is None:
        all_masses = []
        for _, name in used:
            truth, pred, _ = pools[name].tensors()
            all_masses += [voxel_halo_masses(truth, particle_mass), voxel_halo_masses(pred, particle_mass)]
        edges = default_mass_edges(all_masses, n_mass_bins)
    else:
        edges = torch.log10(torch.as_tensor(mass_edges, dtype=torch.float64))
        n_mass_bins = len(edges) - 1
    per_mass_columns: dict[str, list[torch.Tensor]] = {}
    for i, name in used:
        truth, pred, positive = pools[name].tensors()
        rates = per_mass_rates(truth, pred, particle_mass, edges, pred_positive=positive, quantiles=QUANTILES)
        per_mass_columns.setdefault("source", []).append(torch.full((n_mass_bins,), i, dtype=torch.int64))
        for key, value in rates.items():
            per_mass_columns.setdefault(key, []).append(_finite(value))
    per_mass = Table(
        columns={key: torch.cat(parts) for key, parts in per_mass_columns.items()},
        units={
            "m_low": "Msun/h",
            "m_high": "Msun/h",
            "m_mid": "Msun/h",
            **{f"q{round(100 * q):02d}": "log10 Msun/h" for q in QUANTILES},
        },
        meta={
            **{f"source_{i}": name for i, name in enumerate(SOURCES)},
            "particle_mass": particle_mass,
            "quantiles_of": "log10 M_pred of true-halo voxels in a predicted halo",
            "quantile_levels": ",".join(f"{q:g}" for q in QUANTILES),
            "missing_value": MISSING,
            "missing": MISSING_NOTE,
        },
    )

    pred_m, true_m = torch.cat(pred_masses), torch.cat(true_masses)
    if mass_edges is None:
        mf_edges = 10.0 ** default_mass_edges([pred_m, true_m], n_mf_bins)
    else:
        mf_edges = torch.as_tensor(mass_edges, dtype=torch.float64)
    hmf_pred = halo_mass_function(pred_m, volume, edges=mf_edges)
    hmf_true = halo_mass_function(true_m, volume, edges=mf_edges)
    ratio = torch.where(hmf_true["counts"] > 0, hmf_pred["dndlnm"] / hmf_true["dndlnm"].clamp(min=1e-300), MISSING)
    twin_columns: dict[str, torch.Tensor] = {}
    if twin_masses:
        hmf_twin = halo_mass_function(torch.cat(twin_masses), twin_volume, edges=mf_edges)
        twin_columns = {"counts_twins": hmf_twin["counts"], "dndlnm_twins": hmf_twin["dndlnm"]}
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
            **twin_columns,
        },
        units={
            "m_low": "Msun/h",
            "m_high": "Msun/h",
            "m_mid": "Msun/h",
            **{k: hmf_true.units["dndlnm"] for k in ("dndlnm_pred", "dndlnm_pred_err", "dndlnm_true")},
            "dndlnm_true_err": hmf_true.units["dndlnm"],
            **({"dndlnm_twins": hmf_true.units["dndlnm"]} if twin_columns else {}),
        },
        meta={"volume": volume, "particle_mass": particle_mass, "missing_value": MISSING, "missing": MISSING_NOTE},
    )
    tables = {"scores": scores, "per_mass": per_mass, "mass_function": mass_function}
    if eulerian:
        tables["eulerian"] = _eulerian_table(eulerian, mf_edges)
    return tables


def _segmentation_masses(seg: Segmentation, min_voxels: int) -> torch.Tensor:
    """Masses (Msun/h, float64) of the haloes of ``seg`` with at least ``min_voxels`` voxels: voxels × particle mass."""
    sizes = torch.bincount(seg.labels.reshape(-1).to(torch.int64).cpu())[1:]
    return sizes[sizes >= max(min_voxels, 1)].double() * _particle_mass(seg)


def _mass_bin(m: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Bin index of each mass (-1 or len(edges) - 1 outside); the outer edges belong to their bins, as in the mass
    function (:func:`~cosmoseg.measure.mass_function.halo_mass_function`)."""
    edges = edges.to(m.dtype).clone()
    edges[0], edges[-1] = edges[0] * (1 - 1e-9), edges[-1] * (1 + 1e-9)  # outer edges computed through log10
    return torch.bucketize(m, edges, right=True) - 1


def _eulerian_table(errors: dict[str, list[dict[str, torch.Tensor]]], edges: torch.Tensor) -> Table:
    """Rows per (source, bin of the FoF mass): matched fraction, quantiles of log10 M_pred/M_FoF and of |Δx|."""
    columns: dict[str, list[float]] = {}
    for i, parts in enumerate(errors.values()):
        merged = {key: torch.cat([part[key] for part in parts]) for key in parts[0]}
        matched_bin, fof_bin = (_mass_bin(merged[key], edges) for key in ("m_fof", "m_fof_all"))
        for j, (low, high) in enumerate(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True)):
            inside = matched_bin == j
            n_fof = int((fof_bin == j).sum())
            ratio = torch.log10(merged["m_pred"][inside] / merged["m_fof"][inside])
            error = merged["pos_error"][inside]
            row = {
                "source": float(i),
                "m_low": low,
                "m_high": high,
                "m_mid": (low * high) ** 0.5,
                "n_fof": float(n_fof),
                "n_matched": float(int(inside.sum())),
                "matched_fraction": int(inside.sum()) / n_fof if n_fof else MISSING,
            }
            for q in (0.16, 0.5, 0.84):
                have = bool(inside.any())
                row[f"log_mass_ratio_q{round(100 * q):02d}"] = float(ratio.quantile(q)) if have else MISSING
                row[f"pos_error_q{round(100 * q):02d}"] = float(error.quantile(q)) if have else MISSING
            for key, value in row.items():
                columns.setdefault(key, []).append(value)
    return Table(
        columns={
            key: torch.tensor(values, dtype=torch.int64 if key == "source" else torch.float64)
            for key, values in columns.items()
        },
        units={"m_low": "Msun/h", "m_high": "Msun/h", "m_mid": "Msun/h"}
        | {f"pos_error_q{q}": "Mpc/h" for q in ("16", "50", "84")}
        | {f"log_mass_ratio_q{q}": "dex" for q in ("16", "50", "84")},
        meta={
            **{f"source_{i}": name for i, name in enumerate(errors)},
            "matched": "IoU >= 0.5 of the Lagrangian voxels",
            "pos_error": "periodic distance between the 2LPT-placed centre of mass and the FoF halo's pos",
            "missing_value": MISSING,
            "missing": MISSING_NOTE,
        },
    )
