"""The plugin face of ``cosmoseg.sim``: its library calls wrapped as pipeline stages."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Literal

import torch

from cosmoseg.data import Box, Cosmology, Field, HaloCatalog, Particles, Segmentation, cosmology_problems
from cosmoseg.hookspecs import hookimpl
from cosmoseg.pipeline.params import param
from cosmoseg.pipeline.stage import Stage
from cosmoseg.sim.fof import halos_and_labels
from cosmoseg.sim.grf import gaussian_random_field
from cosmoseg.sim.ics import initial_conditions, sub_resolution_twins

if TYPE_CHECKING:
    from cosmoseg.pipeline.context import RunContext

GRF_BYTES_PER_CELL = 96
"""Peak memory of sim.gaussian_field per grid cell (measured: 86 bytes at n = 256, float32)."""
ICS_BYTES_PER_CELL = 136
"""Peak memory of sim.ics per particle, float32 (measured: 127 bytes at n = 128, 112 at n = 192; float64 twice)."""
TWINS_BYTES_PER_CELL = 840
"""Peak memory of sim.twins per coarse particle, float32 (measured: 794 at n = 64, 779 at n = 96; the (2n)^3 grid)."""

COSMOLOGY_DOC = 'Cosmology fields to change from Planck 2018, e.g. { omega_m = 0.3, power_backend = "eisenstein-hu" }'
EXAMPLE_GRID = {"n": 8, "box": 40.0, "cosmology": {"power_backend": "eisenstein-hu"}}
"""Params of a tiny grid for the contract runs of sim.ics and sim.twins."""


def grid_problems(n: int, cosmology: dict[str, Any]) -> list[str]:
    """Problems of the ``n`` (even) and ``cosmology`` params of a periodic grid (n >= 2 and box > 0 are bounds)."""
    return ([f"param 'n' must be an even integer >= 2, got {n}"] if n % 2 else []) + cosmology_problems(cosmology)


def _lattice_arguments(params: InitialConditionsParams, ctx: RunContext) -> dict[str, Any]:
    """The arguments of ``initial_conditions`` and ``sub_resolution_twins`` from the params sim.ics and sim.twins
    share (seed -1: the stage's seed from the run)."""
    return {
        "cosmology": Cosmology(**params.cosmology),
        "n": params.n,
        "length": params.box,
        "seed": ctx.seed if params.seed < 0 else params.seed,
        "z_start": params.z_start,
        "lpt_order": params.lpt_order,
        "device": ctx.device,
        "dtype": getattr(torch, params.precision),
    }


def _particle_grid_bytes(params: InitialConditionsParams, per_cell: int) -> int:
    """Peak memory of sim.ics or sim.twins: ``per_cell`` bytes per particle in float32, twice that in float64."""
    return (2 if params.precision == "float64" else 1) * per_cell * params.n**3


@dataclasses.dataclass(frozen=True)
class GaussianFieldParams:
    n: int = param(64, ge=2, doc="grid cells per side (even)")
    box: float = param(250.0, gt=0, doc="side length, Mpc/h")
    redshift: float = param(0.0, doc="the field is scaled by D(z)^2")
    fixed_amplitude: bool = param(False, doc="set every |δ_k| to its rms (keep the phases)")
    cosmology: dict[str, Any] = param({}, doc=COSMOLOGY_DOC)  # noqa: RUF009 (param copies it per instance)

    def problems(self) -> list[str]:
        return grid_problems(self.n, self.cosmology)


class GaussianFieldStage(Stage[GaussianFieldParams]):
    """A Gaussian random field δ(x) with the linear power spectrum of a cosmology at a redshift."""

    name = "sim.gaussian_field"
    outputs = {"field": Field}

    @classmethod
    def memory_estimate(cls, params: GaussianFieldParams) -> int:
        return GRF_BYTES_PER_CELL * params.n**3

    def run(self) -> dict[str, Field]:
        p = self.params
        cosmology = Cosmology(**p.cosmology)
        delta = gaussian_random_field(
            cosmology,
            n=p.n,
            length=p.box,
            redshift=p.redshift,
            generator=self.ctx.generator,
            fixed_amplitude=p.fixed_amplitude,
            device=self.ctx.device,
        )
        box = Box(length=p.box, redshift=p.redshift, cosmology=cosmology)
        meta = {
            "linear_redshift": p.redshift,
            "fixed_amplitude": p.fixed_amplitude,
            "power_backend": cosmology.resolved_power_backend,
        }
        return {"field": Field.scalar(delta, box=box, name="delta", meta=meta)}

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"n": 16, "box": 100.0, "cosmology": {"power_backend": "eisenstein-hu"}}


@dataclasses.dataclass(frozen=True)
class InitialConditionsParams:
    """Initial conditions; the same ``seed`` at n and 2n shares every mode below the coarse Nyquist frequency."""

    n: int = param(64, ge=2, doc="particles (and grid cells) per side (even)")
    box: float = param(100.0, gt=0, doc="side length, Mpc/h")
    seed: int = param(-1, ge=-1, doc="the white-noise seed (-1 = the stage's seed from the run)")
    z_start: float = param(49.0, gt=0, doc="starting redshift of the particles")
    lpt_order: int = param(2, ge=1, le=2, doc="1 (Zel'dovich) or 2 (2LPT)")
    fixed_amplitude: bool = param(False, doc="set every |δ_k| to its rms (Angulo & Pontzen 2016)")
    paired: bool = param(False, doc="flip every phase by π: the partner of a pair (Angulo & Pontzen 2016)")
    cosmology: dict[str, Any] = param({}, doc=COSMOLOGY_DOC)  # noqa: RUF009 (param copies it per instance)
    precision: Literal["float32", "float64"] = param("float32", doc='"float32" or "float64" outputs')

    def problems(self) -> list[str]:
        return grid_problems(self.n, self.cosmology)


class InitialConditionsStage(Stage[InitialConditionsParams]):
    """Linear δ and φ on the Lagrangian grid (scaled to z = 0) and 2LPT particles at the starting redshift."""

    name = "sim.ics"
    outputs = {"fields": Field, "particles": Particles}

    @classmethod
    def memory_estimate(cls, params: InitialConditionsParams) -> int:
        return _particle_grid_bytes(params, ICS_BYTES_PER_CELL)

    def run(self) -> dict[str, Field | Particles]:
        p = self.params
        ics = initial_conditions(fixed_amplitude=p.fixed_amplitude, paired=p.paired, **_lattice_arguments(p, self.ctx))
        return {"fields": ics.fields, "particles": ics.particles}

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return dict(EXAMPLE_GRID)


@dataclasses.dataclass(frozen=True)
class TwinsParams(InitialConditionsParams):
    """As sim.ics (without fixed_amplitude and paired), plus the seeds of the small scales."""

    small_scale_seeds: tuple[int, int] = param((1, 2), ge=0, doc="the two seeds of the modes a 2n grid adds (differ)")

    def problems(self) -> list[str]:
        out = super().problems()
        if self.small_scale_seeds[0] == self.small_scale_seeds[1]:
            out.append(f"param 'small_scale_seeds' must be two different seeds, got {list(self.small_scale_seeds)}")
        if self.fixed_amplitude or self.paired:
            out.append("params 'fixed_amplitude' and 'paired' are not available for twins")
        return out


class TwinsStage(Stage[TwinsParams]):
    """Sub-resolution twins (the chaos baseline): two particle sets sharing every mode of the n grid."""

    name = "sim.twins"
    outputs = {"fields": Field, "particles_a": Particles, "particles_b": Particles}

    @classmethod
    def memory_estimate(cls, params: TwinsParams) -> int:
        return _particle_grid_bytes(params, TWINS_BYTES_PER_CELL)

    def run(self) -> dict[str, Field | Particles]:
        arguments = _lattice_arguments(self.params, self.ctx)
        first, second = sub_resolution_twins(small_scale_seeds=self.params.small_scale_seeds, **arguments)
        return {"fields": first.fields, "particles_a": first.particles, "particles_b": second.particles}

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return dict(EXAMPLE_GRID)


@dataclasses.dataclass(frozen=True)
class FriendsOfFriendsParams:
    b: float = param(0.2, gt=0, doc="linking length over the mean interparticle separation")
    min_particles: int = param(20, ge=2, doc="smallest group in the halo catalog")
    segmentation_min_particles: int = param(
        155, doc="smallest halo kept in the Lagrangian labels (155 as López-Cano et al.; >= min_particles)"
    )
    env_scales: tuple[float, ...] = param((1.0, 2.0, 4.0), gt=0, doc="radii of the environment spheres, Mpc/h")
    concentration_min_particles: int = param(100, ge=2, doc="fewest particles inside R_200c for a concentration")

    def problems(self) -> list[str]:
        if self.segmentation_min_particles >= self.min_particles:
            return []
        return [
            f"param 'segmentation_min_particles' ({self.segmentation_min_particles}) must be >= "
            f"'min_particles' ({self.min_particles}): smaller haloes are not in the catalog"
        ]


class FriendsOfFriendsStage(Stage[FriendsOfFriendsParams]):
    """Friends-of-friends haloes with their properties, and the Lagrangian label grid of the haloes.

    Particles whose ids are not an n^3 lattice (``n_grid = 0``: a snapshot from glass initial conditions, say)
    get their haloes and an empty (0, 0, 0) segmentation whose meta says why.
    """

    name = "sim.fof"
    version = "2"  # m200/r200/spin come with their *_resolved masks
    inputs = {"particles": Particles}
    outputs = {"halos": HaloCatalog, "segmentation": Segmentation}

    def run(self, particles: Particles) -> dict[str, HaloCatalog | Segmentation]:
        halos, segmentation = halos_and_labels(particles, **dataclasses.asdict(self.params))
        if particles.n_grid:
            labelled = f"{segmentation.n_instances} in the labels"
        else:
            labelled = "no Lagrangian labels (the ids are not a lattice)"
        self.ctx.log(f"{len(halos)} haloes of >= {self.params.min_particles} particles, {labelled}")
        return {"halos": halos, "segmentation": segmentation}

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"segmentation_min_particles": 60}

    @classmethod
    def example_inputs(cls, generator: torch.Generator) -> dict[str, Particles]:
        from cosmoseg.sim._fof_toys import toy_clustered_particles

        return {"particles": toy_clustered_particles(generator)}


@dataclasses.dataclass(frozen=True)
class NBodyParams:
    steps: int = param(20, ge=1, doc="kick-drift-kick steps from the particles' redshift to z_final")
    z_final: float = param(0.0, gt=-1, doc="redshift of the output")
    mesh_factor: int = param(2, ge=1, doc="force-mesh cells per particle-grid cell along each axis (2: calibrated)")
    spacing: Literal["a", "loga"] = param(
        "a", doc='steps uniform in the scale factor ("a") or in its logarithm ("loga")'
    )


class NBodyStage(Stage[NBodyParams]):
    """Particle-mesh N-body (kick-drift-kick, FastPM factors) from the particles' redshift to z_final."""

    name = "sim.nbody"
    inputs = {"particles": Particles}
    outputs = {"particles": Particles}

    def run(self, particles: Particles) -> dict[str, Particles]:
        from cosmoseg.sim.nbody import run_pm

        snapshots = run_pm(
            particles,
            **dataclasses.asdict(self.params),
            progress=lambda steps: self.ctx.progress(steps, description="PM steps"),
            device=self.ctx.device,
        )
        return {"particles": snapshots[-1]}

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"steps": 2}

    @classmethod
    def example_inputs(cls, generator: torch.Generator) -> dict[str, Particles]:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        cosmology = Cosmology(power_backend="eisenstein-hu")
        return {"particles": initial_conditions(cosmology, n=8, length=40.0, seed=seed, z_start=9.0).particles}


@hookimpl
def cosmoseg_register_stages(register: Any) -> None:
    for stage in (GaussianFieldStage, InitialConditionsStage, TwinsStage, FriendsOfFriendsStage, NBodyStage):
        register(stage)


@hookimpl
def cosmoseg_register_commands(app: Any) -> None:
    """``cosmoseg simulate SUITE.toml``: generate a training suite of boxes."""
    from cosmoseg.sim.commands import simulate

    app.command("simulate")(simulate)
