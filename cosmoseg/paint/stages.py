"""The plugin face of ``cosmoseg.paint`` (dm2gal): the fields of a gravity-only box as stages."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from cosmoseg.data import Field, GalaxyCatalog, HaloCatalog, Particles
from cosmoseg.hookspecs import hookimpl
from cosmoseg.paint.fields import default_grid, paint_fields
from cosmoseg.pipeline.stage import Stage


@dataclasses.dataclass(frozen=True)
class FieldsParams:
    """n: voxels per side of the grid (even, >= 2); 0 = the particles' Lagrangian grid (``n_grid``), or the cube
    root of their number when they have none (rounded up to even). mass_column: the halo column deposited into the
    ``log_halo`` channel (Msun/h), e.g. "mass" or "m200"."""

    n: int = 0
    mass_column: str = "mass"

    def problems(self) -> list[str]:
        out = []
        if self.n != 0 and (self.n < 2 or self.n % 2):
            out.append(f"param 'n' must be an even integer >= 2, or 0 for the particle grid, got {self.n}")
        if not self.mass_column:
            out.append("param 'mass_column' must name a halo column, e.g. 'mass'")
        return out


class FieldsStage(Stage):
    """The dm2gal fields: DM mass (CIC), (sub)halo mass (CIC) and, given galaxies, stellar mass (NGP), log10(1 + M)."""

    name = "paint.fields"
    Params = FieldsParams
    inputs = {"particles": Particles, "halos": HaloCatalog, "galaxies": GalaxyCatalog}
    optional_inputs = frozenset({"galaxies"})
    outputs = {"fields": Field}

    def run(self, particles: Particles, halos: HaloCatalog, galaxies: GalaxyCatalog | None = None) -> dict[str, Field]:
        p: FieldsParams = self.params
        n = p.n or default_grid(particles)
        fields = paint_fields(particles.to(self.ctx.device), halos, galaxies, n=n, mass_column=p.mass_column)
        self.ctx.log(f"{len(fields.channels)} channels on {n}^3 voxels of {fields.box.length:g} Mpc/h")
        return {"fields": fields}

    @classmethod
    def example_inputs(cls, generator: torch.Generator) -> dict[str, Any]:
        from cosmoseg.testing.toys import toy_galaxy_catalog, toy_halo_catalog, toy_particles

        return {
            "particles": toy_particles(generator, n_grid=4),
            "halos": toy_halo_catalog(generator),
            "galaxies": toy_galaxy_catalog(generator),
        }


@hookimpl
def cosmoseg_register_stages(register: Any) -> None:
    register(FieldsStage)


@hookimpl
def cosmoseg_register_commands(app: Any) -> None:
    """``cosmoseg paint train|evaluate``: train dm2gal or its successor on a suite, and compare on a held-out box."""
    from cosmoseg.paint.commands import app as paint_app

    app.add_typer(paint_app, name="paint")
