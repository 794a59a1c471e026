"""The plugin face of ``cosmoseg.protohalo``: the ``protohalo.panoptic`` and ``protohalo.mass_bins`` stages and the
``cosmoseg protohalo`` commands."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from cosmoseg.data import Cosmology, Field, HaloCatalog, Segmentation
from cosmoseg.hookspecs import hookimpl
from cosmoseg.pipeline.params import param
from cosmoseg.pipeline.stage import Stage
from cosmoseg.protohalo.predict import predict_protohaloes

__all__ = ["MassBinsParams", "MassBinsStage", "PanopticParams", "PanopticStage"]


@dataclasses.dataclass(frozen=True)
class PanopticParams:
    """The model pair, its threshold and clustering, the crop lattice, and where the catalog places the haloes."""

    semantic_model: str = param(
        "", doc='checkpoint of `cosmoseg protohalo train` ("" = the shipped one trained at the box\'s cell size)'
    )
    instance_model: str = param(
        "", doc='checkpoint of `cosmoseg protohalo train` ("" = the shipped one trained at the box\'s cell size)'
    )
    threshold: float = param(
        -1.0, ge=-1, le=1, doc="semantic probability above which a voxel is in a halo (-1 = the model's)"
    )
    redshift: float = param(0.0, gt=-1, doc="where the catalog places the haloes (LPT of their particles)")
    lpt_order: int = param(2, ge=1, le=2, doc="order of that LPT, 1 or 2")
    min_particles: int = param(1, ge=1, doc="predicted haloes with fewer voxels are dropped from labels and catalog")
    batch_size: int = param(4, ge=1, doc="crops per forward pass")
    n_dens: int = param(0, ge=0, doc="N_dens of the clustering, appendix B (0 = the instance model's, else 20)")
    n_ngb: int = param(0, ge=0, doc="N_ngb of the clustering, appendix B (0 = the instance model's, else 15)")
    p_thresh: float = param(0.0, ge=0, doc="persistence threshold, a density ratio >= 1 (0 = the model's, else 4.2)")
    iou_threshold: float = param(0.5, ge=0.5, le=1, doc="IoU of the lattice merge, appendix D (>= 0.5: unique matches)")
    offset: int = param(0, ge=0, doc="corner of the first crop lattice, voxels")
    keep: int = param(0, ge=0, doc="side of the central part of each output crop used, = the lattice step (0 = all)")
    amp: bool = param(True, doc="float16 autocast of the networks on CUDA (ignored on the CPU)")
    symmetries: int = param(
        1, ge=1, le=48, doc="test-time augmentation over this many cube symmetries (centre-offsets models only)"
    )
    tile: int = param(
        0,
        ge=0,
        doc="predict tile by tile, one task each where [run] executor says: the tile side, voxels, a multiple of the "
        "crop lattice step dividing the box side (0 = the whole box at once)",
    )

    def problems(self) -> list[str]:
        """-1 (threshold) and 0 (p_thresh) stand for the model's value: the values between them and the valid range
        are refused."""
        out = []
        if -1.0 < self.threshold < 0.0:
            out.append(f"param 'threshold' must be in [0, 1], or -1 for the model's, got {self.threshold}")
        if 0.0 < self.p_thresh < 1.0:
            out.append(f"param 'p_thresh' is a density ratio >= 1 (or 0 for the model's), got {self.p_thresh}")
        return out


class PanopticStage(Stage[PanopticParams]):
    """Protohalo instance segmentation of the linear fields (δ, φ) and the halo catalog it implies.

    ``truth`` (optional): the true Lagrangian segmentation of the same box (e.g. ``sim.fof``'s ``segmentation``);
    when given, the prediction is scored against it in the log (semantic F1, collapsed fractions, instance precision
    and recall). It changes no output."""

    name = "protohalo.panoptic"
    inputs = {"fields": Field, "potential": Field, "truth": Segmentation}
    optional_inputs = frozenset({"potential", "truth"})
    outputs = {"segmentation": Segmentation, "halos": HaloCatalog}

    def run(
        self, fields: Field, potential: Field | None = None, truth: Segmentation | None = None
    ) -> dict[str, Segmentation | HaloCatalog]:
        segmentation, halos = predict_protohaloes(
            fields,
            potential,
            truth,
            **dataclasses.asdict(self.params),
            device=self.ctx.device,
            map_tasks=self.ctx.map_tasks,
            progress=self.ctx.progress,
            log=self.ctx.log,
        )
        return {"segmentation": segmentation, "halos": halos}

    @classmethod
    def example_inputs(cls, generator: torch.Generator) -> dict[str, Field]:
        """A 32^3 box of 25 Mpc/h: the default models' cell size and one crop lattice step."""
        from cosmoseg.sim.ics import initial_conditions

        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        ics = initial_conditions(Cosmology(power_backend="eisenstein-hu"), n=32, length=25.0, seed=seed)
        return {"fields": ics.fields}


@dataclasses.dataclass(frozen=True)
class MassBinsParams:
    """The mass-bin model (COPRA or VIPR), the channels it must take, and the class of the Grad-CAM map."""

    model: str = param("", doc='mass-bins checkpoint of `cosmoseg protohalo train` ("" = the shipped backbone model)')
    backbone: str = param("vnet", doc="the shipped model used when model is empty: vnet (COPRA) or unetr (VIPR)")
    channels: str = param(
        "", doc='comma-separated input channels the model must take, e.g. "delta,phi,shear" ("" = its own)'
    )
    grad_cam_class: int = param(-1, ge=-1, doc="class of the Grad-CAM map: 0 (no halo) .. K (-1 = the top mass bin)")
    calibrated: bool = param(
        True, doc="argmax with the model's stored class biases (total voxels per class as trained)"
    )
    symmetries: int = param(
        1, ge=1, le=48, doc="test-time augmentation: the probabilities averaged over this many cube symmetries"
    )
    batch_size: int = param(4, ge=1, doc="crops per forward pass")

    def problems(self) -> list[str]:
        out = []
        if not self.model and self.backbone not in ("vnet", "unetr"):
            out.append(f"param 'backbone' must be 'vnet' or 'unetr', got {self.backbone!r}")
        return out


class MassBinsStage(Stage[MassBinsParams]):
    """Each voxel of the linear fields classed by the mass of its z = 0 halo (Alokda & Porciani: COPRA, VIPR).

    ``classes``: a Segmentation whose labels are the classes (0 = no protohalo, k = log-mass bin k), with the class
    probabilities as ``class_scores``; ``grad_cam``: the Grad-CAM map of one class (which voxels made the net say
    it)."""

    name = "protohalo.mass_bins"
    inputs = {"fields": Field, "potential": Field}
    optional_inputs = frozenset({"potential"})
    outputs = {"classes": Segmentation, "grad_cam": Field}

    def run(self, fields: Field, potential: Field | None = None) -> dict[str, Segmentation | Field]:
        from cosmoseg.protohalo.classify import predict_mass_bins

        p = self.params
        classes, grad_cam = predict_mass_bins(
            fields,
            potential,
            model=p.model,
            backbone=p.backbone,
            channels=tuple(c.strip() for c in p.channels.split(",") if c.strip()),
            grad_cam_class=p.grad_cam_class,
            calibrated=p.calibrated,
            symmetries=p.symmetries,
            batch_size=p.batch_size,
            device=self.ctx.device,
            log=self.ctx.log,
        )
        return {"classes": classes, "grad_cam": grad_cam}

    @classmethod
    def example_inputs(cls, generator: torch.Generator) -> dict[str, Field]:
        """A 32^3 box of 25 Mpc/h: the shipped models' cell size and one crop lattice step."""
        return PanopticStage.example_inputs(generator)


@hookimpl
def cosmoseg_register_stages(register: Any) -> None:
    register(PanopticStage)
    register(MassBinsStage)


@hookimpl
def cosmoseg_register_commands(app: Any) -> None:
    """``cosmoseg protohalo train|export|evaluate``: train the semantic / instance networks, ship, score a pair."""
    from cosmoseg.protohalo.commands import app as protohalo_app

    app.add_typer(protohalo_app, name="protohalo")
