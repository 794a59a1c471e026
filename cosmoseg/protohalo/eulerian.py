"""The Eulerian catalog a Lagrangian segmentation implies, against the FoF haloes of the N-body run (issue #21).

A predicted protohalo becomes a halo of mass (voxels × particle mass) placed at z = 0 by 2LPT
(:func:`~cosmoseg.protohalo.catalog.halo_catalog_from_segmentation`). For the predicted haloes that match a FoF halo
(IoU ≥ 0.5 of their Lagrangian voxels) this measures how far their mass and position are from the FoF halo's:

* ``log10 M_pred / M_FoF``;
* ``|Δx|``, the periodic distance (Mpc/h) between the 2LPT-placed centre of mass and the FoF halo's centre of mass
  (``pos`` of the N-body catalog).

The same measured on the *true* segmentation placed by 2LPT isolates the placement error (its mass ratio is 1).

Convention of the box files (``cosmoseg simulate``): the ``segmentation`` labels k = 1..K are the FoF haloes of
rows k − 1 of the ``halos`` catalog (the catalog is sorted by decreasing size and the labels keep the haloes above
the labelling limit), which :func:`fof_rows_of_labels` checks.
"""

from __future__ import annotations

import torch

from cosmoseg.data import HaloCatalog, Segmentation
from cosmoseg.errors import ValidationError
from cosmoseg.measure.instance_metrics import match_instances
from cosmoseg.mesh.periodic import minimal_image

__all__ = ["fof_rows_of_labels", "matched_halo_errors"]


def fof_rows_of_labels(truth: Segmentation, fof: HaloCatalog) -> torch.Tensor:
    """``(K + 1,)`` int64: the row of ``fof`` of each truth label (entry 0 unused), checked by the haloes' sizes.

    `ValidationError` when the catalog has fewer rows than labels or a label's voxel count is not its row's
    ``n_part`` (the labels do not follow the catalog's order).
    """
    sizes = torch.bincount(truth.labels.reshape(-1).to(torch.int64).cpu())[1:]
    n_part = fof["n_part"].to(torch.int64).cpu()
    if len(n_part) < len(sizes) or not torch.equal(sizes, n_part[: len(sizes)]):
        raise ValidationError(
            f"the segmentation's {len(sizes)} labels are not the first rows of the FoF catalog ({len(n_part)} rows) "
            "in order: label k must be the halo of row k - 1"
        )
    return torch.arange(-1, len(sizes), dtype=torch.int64)


def matched_halo_errors(
    catalog: HaloCatalog,
    labels: torch.Tensor,
    truth: Segmentation,
    fof: HaloCatalog,
    *,
    iou_threshold: float = 0.5,
) -> dict[str, torch.Tensor]:
    """Mass and position errors of the predicted haloes that match a FoF halo (see the module docstring).

    catalog, labels: a prediction's haloes placed by LPT and its (n³,) flat labels matching the catalog's rows, as
    :func:`~cosmoseg.protohalo.catalog.halo_catalog_from_segmentation` returns them; truth: the true Lagrangian
    segmentation on the same grid; fof: the box's N-body catalog at z = 0 whose first rows are the truth's labels
    (:func:`fof_rows_of_labels`).
    Returns float64 (M,) tensors over the M matched pairs: ``m_fof`` and ``m_pred`` (Msun/h), ``pos_error``
    (Mpc/h); and ``m_fof_all`` (K,), the masses of every labelled FoF halo (the denominators of a matched fraction).
    """
    rows = fof_rows_of_labels(truth, fof)
    match = match_instances(truth.labels.reshape(-1).cpu(), labels.reshape(-1).cpu(), iou_threshold=iou_threshold)
    fof_row = rows[match.true_label.to(torch.int64)]
    pred_row = match.pred_label.to(torch.int64) - 1
    dx = minimal_image(catalog["pos"].double()[pred_row] - fof["pos"].double().cpu()[fof_row], float(truth.box.length))
    return {
        "m_fof": fof["mass"].double().cpu()[fof_row],
        "m_pred": catalog["mass"].double().cpu()[pred_row],
        "pos_error": torch.linalg.vector_norm(dx, dim=1),
        "m_fof_all": fof["mass"].double().cpu()[rows[1:]],
    }
