"""The plugin face of ``cosmoseg.protohalo``: the ``protohalo.panoptic`` stage and the ``cosmoseg protohalo``
commands."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from cosmoseg.data import Cosmology, Field, HaloCatalog, Segmentation
from cosmoseg.hookspecs import hookimpl
from cosmoseg.pipeline.params import param
from cosmoseg.pipeline.stage import Stage
from cosmoseg.protohalo.predict import predict_protohaloes

__all__ = ["PanopticParams", "PanopticStage"]


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


@hookimpl
def cosmoseg_register_stages(register: Any) -> None:
    register(PanopticStage)


@hookimpl
def cosmoseg_register_commands(app: Any) -> None:
    """``cosmoseg protohalo train|export|evaluate``: train the semantic / instance networks, ship, score a pair."""
    from cosmoseg.protohalo.commands import app as protohalo_app

    app.add_typer(protohalo_app, name="protohalo")
