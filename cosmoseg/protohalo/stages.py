"""The plugin face of ``cosmoseg.protohalo``: the ``protohalo.panoptic`` stage and the ``cosmoseg protohalo``
commands."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from cosmoseg.data import Cosmology, Field, HaloCatalog, Segmentation
from cosmoseg.errors import ValidationError
from cosmoseg.hookspecs import hookimpl
from cosmoseg.pipeline.stage import Stage
from cosmoseg.protohalo.catalog import halo_catalog_from_segmentation
from cosmoseg.protohalo.panoptic import combine_linear_fields, predict_panoptic
from cosmoseg.protohalo.pretrained import PARTICLE_MASS_RTOL, load_model_pair

__all__ = ["PARTICLE_MASS_RTOL", "Panoptic", "PanopticParams", "truth_summary"]


@dataclasses.dataclass(frozen=True)
class PanopticParams:
    """semantic_model, instance_model: checkpoints of `cosmoseg protohalo train` ("" = the shipped default
    models, trained on 64^3 boxes of 50 Mpc/h). threshold: semantic probability above which a voxel is in a halo
    (-1 = the threshold calibrated and stored with the semantic model). redshift: where the catalog places the
    haloes (2LPT of their particles). lpt_order: 1 or 2. min_particles: predicted haloes with fewer voxels are
    dropped from the labels and the catalog. batch_size: crops per forward pass. n_dens, n_ngb, p_thresh: the
    persistence clustering (appendix B; 0 = the instance model's recommendation, else the paper's 20, 15, 4.2).
    iou_threshold: the lattice merge (appendix D). offset: corner of the
    first crop lattice, voxels. keep: side of the central part of each output crop that is used, and the lattice
    step (0 = the whole output; the paper keeps half of it, at 8 times the crops).
    amp: float16 autocast of the networks on CUDA (ignored on the CPU)."""

    semantic_model: str = ""
    instance_model: str = ""
    threshold: float = -1.0
    redshift: float = 0.0
    lpt_order: int = 2
    min_particles: int = 1
    batch_size: int = 4
    n_dens: int = 0
    n_ngb: int = 0
    p_thresh: float = 0.0
    iou_threshold: float = 0.5
    offset: int = 0
    keep: int = 0
    amp: bool = True

    def problems(self) -> list[str]:
        out = []
        if self.threshold != -1.0 and not 0.0 <= self.threshold <= 1.0:
            out.append(f"param 'threshold' must be in [0, 1], or -1 for the model's, got {self.threshold}")
        if not self.redshift > -1:
            out.append(f"param 'redshift' must be > -1, got {self.redshift}")
        if self.lpt_order not in (1, 2):
            out.append(f"param 'lpt_order' must be 1 or 2, got {self.lpt_order}")
        for name in ("min_particles", "batch_size"):
            if getattr(self, name) < 1:
                out.append(f"param {name!r} must be >= 1, got {getattr(self, name)}")
        for name in ("n_dens", "n_ngb"):
            if getattr(self, name) < 0:
                out.append(f"param {name!r} must be >= 1, or 0 for the model's, got {getattr(self, name)}")
        if not (self.p_thresh == 0.0 or self.p_thresh >= 1.0):
            out.append(f"param 'p_thresh' is a density ratio >= 1 (or 0 for the model's), got {self.p_thresh}")
        if not 0.5 <= self.iou_threshold <= 1.0:
            out.append(f"param 'iou_threshold' must be in [0.5, 1] (matches are then unique), got {self.iou_threshold}")
        if self.keep < 0:
            out.append(f"param 'keep' must be >= 0 voxels (0 = the whole output crop), got {self.keep}")
        if self.offset < 0:
            out.append(f"param 'offset' must be >= 0 voxels, got {self.offset}")
        return out


def truth_summary(prediction: Segmentation, truth: Segmentation, iou_threshold: float = 0.5) -> str:
    """One log line scoring ``prediction`` against ``truth`` (the same ``(n, n, n)`` Lagrangian grid): the semantic
    F1 (with TPR and PPV), both collapsed fractions, and the instance precision / recall at IoU >= ``iou_threshold``
    with the halo counts. `ValidationError` when the grids differ."""
    from cosmoseg.measure.instance_metrics import contingency, match_instances
    from cosmoseg.measure.segmentation import binary_scores

    if truth.labels.shape != prediction.labels.shape:
        raise ValidationError(
            f"input 'truth': labels of shape {tuple(truth.labels.shape)}, but the prediction's grid is "
            f"{tuple(prediction.labels.shape)}: give the truth on the same Lagrangian grid"
        )
    t, p = truth.labels.cpu(), prediction.labels.cpu()
    semantic = binary_scores(p > 0, t > 0)
    match = match_instances(contingency(t, p), iou_threshold=iou_threshold)
    return (
        f"vs the truth: F1 {semantic['F1']:.3f} (TPR {semantic['TPR']:.3f}, PPV {semantic['PPV']:.3f}), collapsed "
        f"fraction {float((p > 0).float().mean()):.3f} against {float((t > 0).float().mean()):.3f}; instances at "
        f"IoU >= {iou_threshold:g}: precision {match.precision:.3f}, recall {match.recall:.3f} "
        f"({match.n_pred} predicted, {match.n_true} true haloes)"
    )


class Panoptic(Stage):
    """Protohalo instance segmentation of the linear fields (δ, φ) and the halo catalog it implies.

    ``truth`` (optional): the true Lagrangian segmentation of the same box (e.g. ``sim.fof``'s ``segmentation``);
    when given, the prediction is scored against it in the log (semantic F1, collapsed fractions, instance precision
    and recall). It changes no output."""

    name = "protohalo.panoptic"
    Params = PanopticParams
    inputs = {"fields": Field, "potential": Field, "truth": Segmentation}
    optional_inputs = frozenset({"potential", "truth"})
    outputs = {"segmentation": Segmentation, "halos": HaloCatalog}

    def run(
        self, fields: Field, potential: Field | None = None, truth: Segmentation | None = None
    ) -> dict[str, Segmentation | HaloCatalog]:
        p: PanopticParams = self.params
        if potential is None and "phi" not in fields.channels:
            self.ctx.log("no potential given and no 'phi' channel: phi computed from delta (Poisson)")
        fields = combine_linear_fields(fields, potential)
        if truth is not None and truth.labels.shape != fields.values.shape[1:]:
            raise ValidationError(
                f"input 'truth': labels of shape {tuple(truth.labels.shape)}, but the fields' grid is "
                f"{tuple(fields.values.shape[1:])}: give the truth on the same Lagrangian grid"
            )
        pair = load_model_pair(p.semantic_model or None, p.instance_model or None, device=self.ctx.device)
        pair.check_fields(fields, where="input 'fields'")
        model_fields, notes = pair.prepare_fields(fields)
        for note in notes + pair.unchecked_notes():
            self.ctx.log(note)
        for note in pair.domain_notes(fields):
            self.ctx.log(f"warning: {note}")
        threshold = pair.threshold if p.threshold == -1.0 else p.threshold
        given = {"n_dens": p.n_dens, "n_ngb": p.n_ngb, "p_thresh": p.p_thresh}
        clustering = {k: v if v else pair.clustering[k] for k, v in given.items()}
        predicted = predict_panoptic(
            model_fields,
            pair.semantic,
            pair.instance,
            size_in=pair.size_in,
            size_out=pair.size_out,
            threshold=threshold,
            batch_size=p.batch_size,
            **clustering,
            iou_threshold=p.iou_threshold,
            offset=p.offset,
            device=self.ctx.device,
            amp=p.amp,
            keep=p.keep or None,
            progress=self.ctx.progress,
        )
        halos, flat_labels = halo_catalog_from_segmentation(
            predicted, fields, redshift=p.redshift, lpt_order=p.lpt_order, min_particles=p.min_particles
        )
        models = {
            "semantic_model": p.semantic_model or f"default {pair.semantic_path.name}",
            "instance_model": p.instance_model or f"default {pair.instance_path.name}",
        }
        segmentation = Segmentation(
            labels=flat_labels.reshape(predicted.labels.shape).to(predicted.labels.device),
            probabilities=predicted.probabilities,
            box=predicted.box,
            meta={
                **predicted.meta,
                **models,
                **clustering,
                "min_particles": p.min_particles,
                "input_highpass_length": pair.input_highpass["box_length"] if model_fields is not fields else 0.0,
            },
        )
        halos = dataclasses.replace(halos, meta={**halos.meta, **models, "threshold": threshold})
        fraction = float((segmentation.labels > 0).float().mean())
        self.ctx.log(f"{segmentation.n_instances} protohaloes, collapsed fraction {fraction:.3f}")
        if truth is not None:
            self.ctx.log(truth_summary(segmentation, truth, p.iou_threshold))
        return {"segmentation": segmentation, "halos": halos}

    @classmethod
    def example_inputs(cls, generator: torch.Generator) -> dict[str, Field]:
        """A 32^3 box of 25 Mpc/h: the default models' cell size and one crop lattice step."""
        from cosmoseg.sim.ics import initial_conditions

        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        ics = initial_conditions(Cosmology(power_backend="eisenstein-hu"), n=32, length=25.0, seed=seed)
        return {"fields": ics.fields}


@hookimpl
def cosmoseg_register_stages(register: Any) -> None:
    register(Panoptic)


@hookimpl
def cosmoseg_register_commands(app: Any) -> None:
    """``cosmoseg protohalo train|evaluate``: train the semantic / instance networks, score a model pair."""
    from cosmoseg.protohalo.commands import app as protohalo_app

    app.add_typer(protohalo_app, name="protohalo")
