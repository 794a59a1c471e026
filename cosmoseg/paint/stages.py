"""The plugin face of ``cosmoseg.paint`` (dm2gal): the fields of a gravity-only box, and the stellar mass painted onto
them, as stages; the ``cosmoseg paint`` commands."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch

from cosmoseg.data import Box, Field, GalaxyCatalog, HaloCatalog, Particles, Table
from cosmoseg.hookspecs import hookimpl
from cosmoseg.paint.fields import default_grid, paint_fields
from cosmoseg.paint.models import load_paint_model
from cosmoseg.paint.painting import paint_with_model
from cosmoseg.pipeline.params import param
from cosmoseg.pipeline.stage import Stage

__all__ = ["Dm2GalParams", "Dm2GalStage", "FieldsParams", "FieldsStage"]


@dataclasses.dataclass(frozen=True)
class FieldsParams:
    """The grid, and how the haloes are deposited."""

    n: int = param(0, ge=0, doc="voxels per side, even (0 = the particles' Lagrangian grid)")
    mass_column: str = param("mass", doc='the halo column deposited into log_halo, Msun/h ("mass", "m200", ...)')
    halo_assignment: Literal["ngp", "cic"] = param(
        "ngp", doc="ngp: each halo in the voxel of its centre (as the shipped successor was trained), or cic"
    )

    def problems(self) -> list[str]:
        """An odd grid and an empty column name: rules a bound cannot state."""
        out = []
        if self.n % 2:
            out.append(f"param 'n' must be an even integer >= 2, or 0 for the particle grid, got {self.n}")
        if not self.mass_column:
            out.append("param 'mass_column' must name a halo column, e.g. 'mass'")
        return out


class FieldsStage(Stage[FieldsParams]):
    """The dm2gal fields: DM mass (CIC), (sub)halo mass (CIC) and, given galaxies, stellar mass (NGP), log10(1 + M)."""

    name = "paint.fields"
    inputs = {"particles": Particles, "halos": HaloCatalog, "galaxies": GalaxyCatalog}
    optional_inputs = frozenset({"galaxies"})
    outputs = {"fields": Field}

    def run(self, particles: Particles, halos: HaloCatalog, galaxies: GalaxyCatalog | None = None) -> dict[str, Field]:
        p = self.params
        n = p.n or default_grid(particles)
        fields = paint_fields(
            particles.to(self.ctx.device),
            halos,
            galaxies,
            n=n,
            mass_column=p.mass_column,
            halo_assignment=p.halo_assignment,
        )
        self.ctx.log(f"{len(fields.channels)} channels on {n}^3 voxels of {fields.box.length:g} Mpc/h")
        return {"fields": fields}


@dataclasses.dataclass(frozen=True)
class Dm2GalParams:
    """The successor model, its tiles, and what it paints."""

    model: str = param("", doc='a successor model file of `cosmoseg paint train` ("" = the shipped one)')
    tile: int = param(
        64,
        ge=1,
        doc="output side of each periodic tile, voxels, one task each where [run] executor says (memory grows as "
        "(tile + 64)^3)",
    )
    catalog: bool = param(True, doc="also return a galaxy per occupied voxel, at the voxel centre")
    sample: bool = param(True, doc="draw each galaxy's mass from the predicted scatter (false: its conditional mean)")


class Dm2GalStage(Stage[Dm2GalParams]):
    """The dm2gal successor: a stellar-mass field (and galaxies) painted onto the DM and halo fields of paint.fields.

    Fields at another voxel size than the model's, or from a run at another particle resolution (paint.fields
    records the particle mass), are refused; another cosmology than the training runs' is a warning in the log.

    ``power``: P(k) of the painted stellar-mass contrast (``k``, ``n_modes``, ``power``). When the input fields also
    hold the truth (``log_mstar``, from galaxies given to paint.fields), ``power_truth`` is its P(k) (else a table
    without rows; ``measure.report`` draws the pair with their ratio) and the painted field is scored against it in
    the log: P(k) ratio, total stellar mass, occupancy precision / recall.
    """

    name = "paint.dm2gal"
    inputs = {"fields": Field}
    outputs = {"painted": Field, "galaxies": GalaxyCatalog, "power": Table, "power_truth": Table}

    def run(self, fields: Field) -> dict[str, Any]:
        p = self.params
        draw = self.ctx.make_generator("cpu") if p.sample else None  # the masses are drawn on the CPU
        painting = paint_with_model(
            fields,
            p.model,
            tile=p.tile,
            catalog=p.catalog,
            generator=draw,
            where=self.name,
            map_tasks=self.ctx.map_tasks,
            log=self.ctx.log,
        )
        return {f.name: getattr(painting, f.name) for f in dataclasses.fields(painting)}  # named as the outputs

    @classmethod
    def example_inputs(cls, generator: torch.Generator) -> dict[str, Any]:
        voxel = float(load_paint_model()[1]["voxel"])
        n = 8
        values = torch.stack([9.0 + 3.0 * torch.rand((n, n, n), generator=generator),
                              torch.where(torch.rand((n, n, n), generator=generator) < 0.1, 12.5, 0.0)])  # fmt: skip
        return {"fields": Field(values=values, box=Box(length=n * voxel), channels=("log_dm", "log_halo"))}


@hookimpl
def cosmoseg_register_stages(register: Any) -> None:
    register(FieldsStage)
    register(Dm2GalStage)


@hookimpl
def cosmoseg_register_commands(app: Any) -> None:
    """``cosmoseg paint train|evaluate``: train dm2gal or its successor on a suite, and compare on a held-out box."""
    from cosmoseg.paint.commands import app as paint_app

    app.add_typer(paint_app, name="paint")
