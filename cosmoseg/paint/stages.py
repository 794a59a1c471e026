"""The plugin face of ``cosmoseg.paint`` (dm2gal): the fields of a gravity-only box as stages."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from cosmoseg.data import Field, GalaxyCatalog, HaloCatalog, Particles, Table
from cosmoseg.hookspecs import hookimpl
from cosmoseg.paint.fields import HALO_ASSIGNMENTS, default_grid, paint_fields
from cosmoseg.pipeline.stage import Stage


@dataclasses.dataclass(frozen=True)
class FieldsParams:
    """n: voxels per side of the grid (even, >= 2); 0 = the particles' Lagrangian grid (``n_grid``), or the cube
    root of their number when they have none (rounded up to even). mass_column: the halo column deposited into the
    ``log_halo`` channel (Msun/h), e.g. "mass" or "m200". halo_assignment: "ngp" (each halo in the voxel of its
    centre; what the shipped successor was trained on) or "cic"."""

    n: int = 0
    mass_column: str = "mass"
    halo_assignment: str = "ngp"

    def problems(self) -> list[str]:
        out = []
        if self.n != 0 and (self.n < 2 or self.n % 2):
            out.append(f"param 'n' must be an even integer >= 2, or 0 for the particle grid, got {self.n}")
        if not self.mass_column:
            out.append("param 'mass_column' must name a halo column, e.g. 'mass'")
        if self.halo_assignment not in HALO_ASSIGNMENTS:
            out.append(f"param 'halo_assignment' must be one of {HALO_ASSIGNMENTS}, got {self.halo_assignment!r}")
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
        fields = paint_fields(particles.to(self.ctx.device), halos, galaxies, n=n, mass_column=p.mass_column,
                              halo_assignment=p.halo_assignment)  # fmt: skip
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


@dataclasses.dataclass(frozen=True)
class Dm2GalParams:
    """model: a successor model file of ``cosmoseg paint train`` ("" = the shipped one, see its MODEL_CARD.md).
    tile: output side of each periodic tile (voxels, a multiple of the model's coarse cell, 4; memory grows as
    (tile + 64)^3). catalog: also return a galaxy catalog with one galaxy per occupied voxel (at the voxel centre).
    sample (default): draw each galaxy's
    stellar mass from the predicted scatter (seeded by the stage's seed), a realisation as a hydrodynamic run is;
    false: its conditional mean mass (the same total, a narrower PDF and less power: no scatter)."""

    model: str = ""
    tile: int = 64
    catalog: bool = True
    sample: bool = True

    def problems(self) -> list[str]:
        return [] if self.tile >= 1 else [f"param 'tile' must be >= 1 voxel, got {self.tile}"]


class Dm2GalStage(Stage):
    """The dm2gal successor: a stellar-mass field (and galaxies) painted onto the DM and halo fields of paint.fields.

    Fields at another voxel size than the model's, or from a run at another particle resolution (paint.fields
    records the particle mass), are refused; another cosmology than the training runs' is a warning in the log.

    ``power``: P(k) of the painted stellar-mass contrast (``k``, ``n_modes``, ``power``). When the input fields also
    hold the truth (``log_mstar``, from galaxies given to paint.fields), ``power_truth`` is its P(k) (else a table
    without rows; ``measure.report`` draws the pair with their ratio) and the painted field is scored against it in
    the log: P(k) ratio, total stellar mass, occupancy precision / recall.
    """

    name = "paint.dm2gal"
    Params = Dm2GalParams
    inputs = {"fields": Field}
    outputs = {"painted": Field, "galaxies": GalaxyCatalog, "power": Table, "power_truth": Table}

    def run(self, fields: Field) -> dict[str, Any]:
        from cosmoseg.errors import ValidationError
        from cosmoseg.mesh.grid import cell_centers, ijk_to_ids
        from cosmoseg.paint.evaluation import score_painting
        from cosmoseg.paint.fields import LOG_UNIT, from_log_mass, voxel_size
        from cosmoseg.paint.models import (
            DEFAULT_MODEL,
            check_voxel,
            domain_notes,
            extrapolation_note,
            load_paint_model,
            unchecked_notes,
        )
        from cosmoseg.paint.network import Dm2GalFCN
        from cosmoseg.paint.tiling import predict_tiled

        p: Dm2GalParams = self.params
        missing = [c for c in ("log_dm", "log_halo") if c not in fields.channels]
        if missing:
            raise ValidationError(
                f"fields lack channel(s) {missing} (make them with paint.fields); they have {list(fields.channels)}",
                context=self.name,
            )
        model, meta = load_paint_model(p.model or None)
        if not isinstance(model, Dm2GalFCN):
            raise ValidationError(
                f"{p.model}: a per-voxel dm2gal model needs the true galaxy positions; give a successor (fcn) model",
                context=self.name,
            )
        check_voxel(voxel_size(fields), meta, self.name)
        recorded = fields.meta.get("particle_mass")
        particle_mass = None if recorded is None else float(recorded)
        for note in unchecked_notes(meta, particle_mass=particle_mass):
            self.ctx.log(note)
        for note in domain_notes(meta, particle_mass=particle_mass, cosmology=fields.box.cosmology, where=self.name):
            self.ctx.log(f"warning: {note}")
        trained_on, given = meta.get("halo_assignment", "cic"), fields.meta.get("assignment_log_halo")
        if given is not None and given != trained_on:
            raise ValidationError(
                f"the fields' halo channel is painted by {given!r} but the model was trained on {trained_on!r} "
                f"haloes; paint the fields with paint.fields halo_assignment = {trained_on!r}",
                context=self.name,
            )
        if not p.model:
            self.ctx.log(f"using the shipped successor ({DEFAULT_MODEL.name}, see its MODEL_CARD.md)")
        index = {c: i for i, c in enumerate(fields.channels)}
        inputs = fields.values[[index["log_dm"], index["log_halo"]]].float()
        note = extrapolation_note(inputs[1], meta)
        if note is not None:
            self.ctx.log(f"warning: {note}")
        out = predict_tiled(model.to(inputs.device), inputs, tile=p.tile)
        draw = torch.Generator().manual_seed(self.ctx.seed) if p.sample else None
        occupied = model.occupied(out[Dm2GalFCN.OCCUPANCY])
        log_mstar = model.paint(out, draw, occupied=occupied)
        painted = Field(
            values=log_mstar[None],
            box=fields.box,
            channels=("log_mstar",),
            units=(LOG_UNIT,),
            meta={"model": str(p.model or DEFAULT_MODEL.name), "threshold": float(meta["threshold"])},
        )
        voxels = torch.nonzero(occupied)
        n = fields.values.shape[-1]
        galaxies = GalaxyCatalog(
            columns={
                "pos": cell_centers(ijk_to_ids(voxels, n), n, fields.box.length),
                "log_mstar": from_log_mass(log_mstar[occupied]).clamp_min(1.0).log10().double(),
            },
            box=fields.box,
        )
        self.ctx.log(
            f"{len(voxels)} occupied voxels of {n}^3, total M* {float(from_log_mass(log_mstar).sum()):.3g} Msun/h"
        )
        painted_mass = from_log_mass(log_mstar.to(torch.float64))
        power, power_truth = _power_table(painted_mass, fields.box.length), _power_table(None, fields.box.length)
        if "log_mstar" in index:
            truth = from_log_mass(fields.values[index["log_mstar"]].to(torch.float64))
            power_truth = _power_table(truth, fields.box.length)
            s = score_painting(painted_mass, truth, fields.box.length,
                               threshold=float(meta["threshold"]))  # fmt: skip
            self.ctx.log(
                f"vs the truth: mean |ln P/P_truth| {s.power_score:.3f} (k <= k_Ny/4), total M* ratio "
                f"{s.total_mass_ratio:.3f}, occupied voxels precision {s.precision:.3f} recall {s.recall:.3f}"
            )
        return {
            "painted": painted,
            "galaxies": galaxies if p.catalog else galaxies.select(torch.zeros(0, dtype=torch.long)),
            "power": power,
            "power_truth": power_truth,
        }

    @classmethod
    def example_inputs(cls, generator: torch.Generator) -> dict[str, Any]:
        from cosmoseg.data import Box
        from cosmoseg.paint.models import load_paint_model

        voxel = float(load_paint_model()[1]["voxel"])
        n = 8
        values = torch.stack([9.0 + 3.0 * torch.rand((n, n, n), generator=generator),
                              torch.where(torch.rand((n, n, n), generator=generator) < 0.1, 12.5, 0.0)])  # fmt: skip
        return {"fields": Field(values=values, box=Box(length=n * voxel), channels=("log_dm", "log_halo"))}


def _power_table(mstar: torch.Tensor | None, length: float) -> Table:
    """P(k) of the contrast of a stellar-mass field (n, n, n) Msun/h: k (h/Mpc), n_modes, power ((Mpc/h)³); no rows
    for ``None``."""
    from cosmoseg.measure.power import power_spectrum
    from cosmoseg.paint.evaluation import density_contrast

    if mstar is None:
        empty = torch.zeros(0, dtype=torch.float64)
        return Table(columns={"k": empty, "n_modes": empty, "power": empty})
    spectrum = power_spectrum(density_contrast(mstar), length)
    columns = {"k": spectrum.k, "n_modes": spectrum.n_modes.to(torch.float64), "power": spectrum.power}
    return Table(columns=columns, meta={"quantity": "stellar-mass density contrast"})


@hookimpl
def cosmoseg_register_stages(register: Any) -> None:
    register(FieldsStage)
    register(Dm2GalStage)


@hookimpl
def cosmoseg_register_commands(app: Any) -> None:
    """``cosmoseg paint train|evaluate``: train dm2gal or its successor on a suite, and compare on a held-out box."""
    from cosmoseg.paint.commands import app as paint_app

    app.add_typer(paint_app, name="paint")
