"""Protohaloes of a box from a trained model pair: the library behind the ``protohalo.panoptic`` stage.

:func:`predict_protohaloes` takes the linear fields (δ and φ, or δ alone with φ solved from it), loads the model pair
(:func:`~cosmoseg.protohalo.pretrained.load_model_pair`, the shipped one by default), checks and prepares the fields
as the models need them, predicts the panoptic segmentation (:func:`~cosmoseg.protohalo.panoptic.predict_panoptic`)
and makes the halo catalog it implies (:func:`~cosmoseg.protohalo.catalog.halo_catalog_from_segmentation`).
:func:`truth_summary` scores a prediction against a true segmentation in one line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from cosmoseg.data import Field, HaloCatalog, Segmentation
from cosmoseg.errors import ValidationError
from cosmoseg.pipeline.executor import TaskMap, local_map
from cosmoseg.protohalo.catalog import halo_catalog_from_segmentation
from cosmoseg.protohalo.panoptic import combine_linear_fields
from cosmoseg.protohalo.pretrained import DEFAULT_MODELS_DIR, load_model_pair
from cosmoseg.protohalo.stitching import Progress

__all__ = ["predict_protohaloes", "truth_scores", "truth_summary"]


def _check_truth_grid(truth: Segmentation, shape: tuple[int, ...], whose: str) -> None:
    if tuple(truth.labels.shape) != tuple(shape):
        raise ValidationError(
            f"input 'truth': labels of shape {tuple(truth.labels.shape)}, but the {whose} grid is {tuple(shape)}: "
            "give the truth on the same Lagrangian grid"
        )


def predict_protohaloes(
    fields: Field,
    potential: Field | None = None,
    truth: Segmentation | None = None,
    *,
    semantic_model: str = "",
    instance_model: str = "",
    threshold: float = -1.0,
    redshift: float = 0.0,
    lpt_order: int = 2,
    min_particles: int = 1,
    batch_size: int = 4,
    n_dens: int = 0,
    n_ngb: int = 0,
    p_thresh: float = 0.0,
    iou_threshold: float = 0.5,
    offset: int = 0,
    keep: int = 0,
    amp: bool = True,
    symmetries: int = 1,
    device: torch.device | str = "cpu",
    tile: int = 0,
    map_tasks: TaskMap = local_map,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[Segmentation, HaloCatalog]:
    """The protohalo segmentation of a box's linear fields and the halo catalog it implies.

    fields: δ and φ (or δ alone: φ is then solved from it, or taken from ``potential``). semantic_model,
    instance_model: checkpoints of ``cosmoseg protohalo train`` ("" = the shipped models). threshold: semantic
    probability above which a voxel is in a halo (-1 = the one calibrated and stored with the semantic model).
    n_dens, n_ngb, p_thresh: the persistence clustering (0 = the instance model's recommendation, else the paper's;
    unused by a centre-offsets model, whose grouping is the one its checkpoint stores). symmetries: test-time
    augmentation of a centre-offsets model (:meth:`~cosmoseg.protohalo.pretrained.ModelPair.predict`).
    redshift, lpt_order: where the catalog places the haloes (LPT of their particles); min_particles: smaller
    predicted haloes are dropped from the labels and the catalog. batch_size, iou_threshold, offset, keep (0 = the
    whole output crop), amp, tile (0 = the whole box at once), map_tasks (where the tiles run): as
    :func:`~cosmoseg.protohalo.panoptic.predict_panoptic`. truth: the true Lagrangian
    segmentation of the box; when given, :func:`truth_summary` is logged (it changes no output).

    ``log(line)`` gets a line per thing done to the fields, what cannot be checked, a ``warning:`` line per way the
    box differs from the training boxes, and the summary; ``progress`` as ``predict_panoptic``. `ValidationError`
    for fields the models cannot predict (another cell size, a box side off the crop lattice) or a truth on another
    grid.
    """
    say = log or (lambda line: None)
    if potential is None and "phi" not in fields.channels:
        say("no potential given and no 'phi' channel: phi computed from delta (Poisson)")
    fields = combine_linear_fields(fields, potential)
    if truth is not None:
        _check_truth_grid(truth, fields.values.shape[1:], "fields'")
    pair = load_model_pair(
        semantic_model or None, instance_model or None, device=device, cell_size=fields.box.length / fields.n
    )
    pair.check_fields(fields, where="input 'fields'")
    model_fields, notes = pair.prepare_fields(fields)
    for note in notes + pair.unchecked_notes():
        say(note)
    for note in pair.domain_notes(fields):
        say(f"warning: {note}")
    threshold = pair.threshold if threshold == -1.0 else threshold
    given = {"n_dens": n_dens, "n_ngb": n_ngb, "p_thresh": p_thresh}
    clustering = {k: v if v else pair.clustering[k] for k, v in given.items()}
    if pair.kind != "embedding":
        clustering = {}
    predicted = pair.predict(
        model_fields,
        threshold=threshold,
        batch_size=batch_size,
        clustering={**clustering, "iou_threshold": iou_threshold},
        symmetries=symmetries,
        offset=offset,
        device=device,
        amp=amp,
        keep=keep or None,
        tile=tile,
        map_tasks=map_tasks,
        progress=progress,
    )
    halos, flat_labels = halo_catalog_from_segmentation(
        predicted, fields, redshift=redshift, lpt_order=lpt_order, min_particles=min_particles
    )
    models = {
        "semantic_model": semantic_model or f"default {pair.semantic_path.relative_to(DEFAULT_MODELS_DIR)}",
        "instance_model": instance_model or f"default {pair.instance_path.relative_to(DEFAULT_MODELS_DIR)}",
    }
    segmentation = Segmentation(
        labels=flat_labels.reshape(predicted.labels.shape).to(predicted.labels.device),
        probabilities=predicted.probabilities,
        box=predicted.box,
        meta={
            **predicted.meta,
            **models,
            **clustering,
            "min_particles": min_particles,
            "input_highpass_length": pair.input_highpass["box_length"] if model_fields is not fields else 0.0,
        },
    )
    halos = dataclasses.replace(halos, meta={**halos.meta, **models, "threshold": threshold})
    fraction = float((segmentation.labels > 0).float().mean())
    say(f"{segmentation.n_instances} protohaloes, collapsed fraction {fraction:.3f}")
    if truth is not None:
        say(truth_summary(segmentation, truth, iou_threshold))
    return segmentation, halos


def truth_scores(prediction: Segmentation, truth: Segmentation, iou_threshold: float = 0.5) -> dict[str, float]:
    """A prediction scored against ``truth`` (the same ``(n, n, n)`` Lagrangian grid): the semantic F1, TPR and PPV,
    both collapsed fractions, and the instance precision / recall at IoU >= ``iou_threshold`` with the numbers of
    predicted and true haloes. `ValidationError` when the grids differ."""
    from cosmoseg.measure.instance_metrics import contingency, match_instances
    from cosmoseg.measure.segmentation import binary_scores

    _check_truth_grid(truth, prediction.labels.shape, "prediction's")
    t, p = truth.labels.cpu(), prediction.labels.cpu()
    semantic = binary_scores(p > 0, t > 0)
    match = match_instances(contingency(t, p), iou_threshold=iou_threshold)
    return {
        "F1": float(semantic["F1"]),
        "TPR": float(semantic["TPR"]),
        "PPV": float(semantic["PPV"]),
        "collapsed_fraction": float((p > 0).float().mean()),
        "collapsed_fraction_true": float((t > 0).float().mean()),
        "instance_precision": float(match.precision),
        "instance_recall": float(match.recall),
        "n_pred": float(match.n_pred),
        "n_true": float(match.n_true),
    }


def truth_summary(prediction: Segmentation, truth: Segmentation, iou_threshold: float = 0.5) -> str:
    """One log line of :func:`truth_scores`."""
    s = truth_scores(prediction, truth, iou_threshold)
    return (
        f"vs the truth: F1 {s['F1']:.3f} (TPR {s['TPR']:.3f}, PPV {s['PPV']:.3f}), collapsed "
        f"fraction {s['collapsed_fraction']:.3f} against {s['collapsed_fraction_true']:.3f}; instances at "
        f"IoU >= {iou_threshold:g}: precision {s['instance_precision']:.3f}, recall {s['instance_recall']:.3f} "
        f"({int(s['n_pred'])} predicted, {int(s['n_true'])} true haloes)"
    )
