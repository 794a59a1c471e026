"""The plugin face of ``cosmoseg.sim``: its library calls wrapped as pipeline stages."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch

from cosmoseg.data import Box, Cosmology, Field, HaloCatalog, Particles, Segmentation, cosmology_problems
from cosmoseg.hookspecs import hookimpl
from cosmoseg.pipeline.stage import Stage
from cosmoseg.sim.fof import find_halos, lagrangian_segmentation
from cosmoseg.sim.grf import gaussian_random_field
from cosmoseg.sim.ics import initial_conditions, sub_resolution_twins

GRF_BYTES_PER_CELL = 96
"""Peak memory of sim.gaussian_field per grid cell (measured: 86 bytes at n = 256, float32)."""
ICS_BYTES_PER_CELL = 136
"""Peak memory of sim.ics per particle, float32 (measured: 127 bytes at n = 128, 112 at n = 192; float64 twice)."""
TWINS_BYTES_PER_CELL = 840
"""Peak memory of sim.twins per coarse particle, float32 (measured: 794 at n = 64, 779 at n = 96; the (2n)^3 grid)."""


def grid_problems(n: int, box: float) -> list[str]:
    """Problems of the ``n`` / ``box`` params of a periodic grid."""
    out = []
    if n < 2 or n % 2:
        out.append(f"param 'n' must be an even integer >= 2, got {n}")
    if box <= 0:
        out.append(f"param 'box' must be a positive side length in Mpc/h, got {box}")
    return out


@dataclasses.dataclass(frozen=True)
class GaussianFieldParams:
    """n: grid cells per side (even). box: side length, Mpc/h. redshift: the field is scaled by D(z)^2.
    fixed_amplitude: set every |δ_k| to its rms (keep the phases). cosmology: Cosmology fields to change
    from Planck 2018, e.g. { omega_m = 0.3, power_backend = "eisenstein-hu" }."""

    n: int = 64
    box: float = 250.0
    redshift: float = 0.0
    fixed_amplitude: bool = False
    cosmology: dict[str, Any] = dataclasses.field(default_factory=dict)

    def problems(self) -> list[str]:
        return grid_problems(self.n, self.box) + cosmology_problems(self.cosmology)


class GaussianField(Stage):
    """A Gaussian random field δ(x) with the linear power spectrum of a cosmology at a redshift."""

    name = "sim.gaussian_field"
    Params = GaussianFieldParams
    inputs = {}
    outputs = {"field": Field}

    @classmethod
    def memory_estimate(cls, params: GaussianFieldParams) -> int:
        return GRF_BYTES_PER_CELL * params.n**3

    def run(self) -> dict[str, Field]:
        p: GaussianFieldParams = self.params
        cosmology = Cosmology(**p.cosmology)
        box = Box(length=p.box, redshift=p.redshift, cosmology=cosmology)
        delta = gaussian_random_field(
            cosmology,
            n=p.n,
            length=p.box,
            redshift=p.redshift,
            generator=self.ctx.generator,
            fixed_amplitude=p.fixed_amplitude,
            device=self.ctx.device,
        )
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
    """n: particles (and grid cells) per side, even. box: side length, Mpc/h. seed: the white-noise seed
    (-1 = the stage's seed from the run); the same seed at n and 2n shares every mode below the coarse
    Nyquist frequency. z_start: starting redshift of the particles. lpt_order: 1 (Zel'dovich) or 2 (2LPT).
    fixed_amplitude, paired: Angulo & Pontzen (2016) variance suppression. cosmology: Cosmology fields to
    change from Planck 2018. precision: "float32" or "float64" outputs."""

    n: int = 64
    box: float = 100.0
    seed: int = -1
    z_start: float = 49.0
    lpt_order: int = 2
    fixed_amplitude: bool = False
    paired: bool = False
    cosmology: dict[str, Any] = dataclasses.field(default_factory=dict)
    precision: Literal["float32", "float64"] = "float32"

    def problems(self) -> list[str]:
        out = grid_problems(self.n, self.box) + cosmology_problems(self.cosmology)
        if self.lpt_order not in (1, 2):
            out.append(f"param 'lpt_order' must be 1 or 2, got {self.lpt_order}")
        if self.z_start <= 0:
            out.append(f"param 'z_start' must be > 0, got {self.z_start}")
        if self.seed < -1:
            out.append(f"param 'seed' must be >= 0, or -1 for the run's seed, got {self.seed}")
        return out


class InitialConditionsStage(Stage):
    """Linear δ and φ on the Lagrangian grid (scaled to z = 0) and 2LPT particles at the starting redshift."""

    name = "sim.ics"
    Params = InitialConditionsParams
    outputs = {"fields": Field, "particles": Particles}

    @classmethod
    def memory_estimate(cls, params: InitialConditionsParams) -> int:
        scale = 2 if params.precision == "float64" else 1
        return scale * ICS_BYTES_PER_CELL * params.n**3

    def run(self) -> dict[str, Field | Particles]:
        p: InitialConditionsParams = self.params
        ics = initial_conditions(
            Cosmology(**p.cosmology),
            n=p.n,
            length=p.box,
            seed=self.ctx.seed if p.seed < 0 else p.seed,
            z_start=p.z_start,
            lpt_order=p.lpt_order,
            fixed_amplitude=p.fixed_amplitude,
            paired=p.paired,
            device=self.ctx.device,
            dtype=getattr(torch, p.precision),
        )
        return {"fields": ics.fields, "particles": ics.particles}

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"n": 8, "box": 40.0, "cosmology": {"power_backend": "eisenstein-hu"}}


@dataclasses.dataclass(frozen=True)
class TwinsParams(InitialConditionsParams):
    """As sim.ics, plus small_scale_seeds: the two seeds of the modes that a 2n grid adds (they must differ)."""

    small_scale_seeds: tuple[int, int] = (1, 2)

    def problems(self) -> list[str]:
        out = super().problems()
        if self.small_scale_seeds[0] == self.small_scale_seeds[1] or min(self.small_scale_seeds) < 0:
            out.append(f"param 'small_scale_seeds' must be two different seeds >= 0, got {self.small_scale_seeds}")
        if self.fixed_amplitude or self.paired:
            out.append("params 'fixed_amplitude' and 'paired' are not available for twins")
        return out


class Twins(Stage):
    """Sub-resolution twins (the chaos baseline): two particle sets sharing every mode of the n grid."""

    name = "sim.twins"
    Params = TwinsParams
    outputs = {"fields": Field, "particles_a": Particles, "particles_b": Particles}

    @classmethod
    def memory_estimate(cls, params: TwinsParams) -> int:
        scale = 2 if params.precision == "float64" else 1
        return scale * TWINS_BYTES_PER_CELL * params.n**3

    def run(self) -> dict[str, Field | Particles]:
        p: TwinsParams = self.params
        first, second = sub_resolution_twins(
            Cosmology(**p.cosmology),
            n=p.n,
            length=p.box,
            seed=self.ctx.seed if p.seed < 0 else p.seed,
            small_scale_seeds=p.small_scale_seeds,
            z_start=p.z_start,
            lpt_order=p.lpt_order,
            device=self.ctx.device,
            dtype=getattr(torch, p.precision),
        )
        return {"fields": first.fields, "particles_a": first.particles, "particles_b": second.particles}

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"n": 8, "box": 40.0, "cosmology": {"power_backend": "eisenstein-hu"}}


@dataclasses.dataclass(frozen=True)
class FriendsOfFriendsParams:
    """b: linking length over the mean interparticle separation. min_particles: smallest group in the halo
    catalog. segmentation_min_particles: smallest halo kept in the Lagrangian labels (155 as López-Cano et
    al., where Lagrangian regions are resolved). env_scales: radii (Mpc/h) of the environment spheres.
    concentration_min_particles: fewest particles inside R_200c for a concentration."""

    b: float = 0.2
    min_particles: int = 20
    segmentation_min_particles: int = 155
    env_scales: tuple[float, ...] = (1.0, 2.0, 4.0)
    concentration_min_particles: int = 100

    def problems(self) -> list[str]:
        out = []
        if not self.b > 0:
            out.append(f"param 'b' must be a positive linking length (in mean separations), got {self.b}")
        if self.min_particles < 2:
            out.append(f"param 'min_particles' must be >= 2, got {self.min_particles}")
        if self.segmentation_min_particles < self.min_particles:
            out.append(
                f"param 'segmentation_min_particles' ({self.segmentation_min_particles}) must be >= "
                f"'min_particles' ({self.min_particles}): smaller haloes are not in the catalog"
            )
        if any(not r > 0 for r in self.env_scales):
            out.append(f"param 'env_scales' must hold positive radii in Mpc/h, got {list(self.env_scales)}")
        if self.concentration_min_particles < 2:
            out.append(f"param 'concentration_min_particles' must be >= 2, got {self.concentration_min_particles}")
        return out


class FriendsOfFriends(Stage):
    """Friends-of-friends haloes with their properties, and the Lagrangian label grid of the haloes.

    Particles whose ids are not an n^3 lattice (``n_grid = 0``: a snapshot from glass initial conditions, say)
    get their haloes and an empty (0, 0, 0) segmentation whose meta says why.
    """

    name = "sim.fof"
    version = "2"  # m200/r200/spin come with their *_resolved masks
    Params = FriendsOfFriendsParams
    inputs = {"particles": Particles}
    outputs = {"halos": HaloCatalog, "segmentation": Segmentation}

    def run(self, particles: Particles) -> dict[str, HaloCatalog | Segmentation]:
        p: FriendsOfFriendsParams = self.params
        halos, labels = find_halos(
            particles,
            b=p.b,
            min_particles=p.min_particles,
            env_scales=p.env_scales,
            concentration_min_particles=p.concentration_min_particles,
        )
        if particles.n_grid:
            segmentation = lagrangian_segmentation(labels, particles, min_particles=p.segmentation_min_particles)
            labelled = f"{segmentation.n_instances} in the labels"
        else:  # a snapshot whose ids are not an n^3 lattice (glass ICs, ...): haloes, but no Lagrangian labels
            segmentation = Segmentation(
                labels=torch.zeros((0, 0, 0), dtype=torch.int64, device=particles.pos.device),
                box=particles.box,
                meta={"empty": "the particles' ids are not an n^3 lattice (n_grid = 0): no Lagrangian labels"},
            )
            labelled = "no Lagrangian labels (the ids are not a lattice)"
        self.ctx.log(f"{len(halos)} haloes of >= {p.min_particles} particles, {labelled}")
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
    """steps: kick-drift-kick steps from the particles' redshift to z_final. z_final: redshift of the output.
    mesh_factor: force-mesh cells per particle-grid cell along each axis (2: the calibrated setting).
    spacing: steps uniform in the scale factor ("a") or in its logarithm ("loga")."""

    steps: int = 20
    z_final: float = 0.0
    mesh_factor: int = 2
    spacing: Literal["a", "loga"] = "a"

    def problems(self) -> list[str]:
        out = []
        if self.steps < 1:
            out.append(f"param 'steps' must be an integer >= 1, got {self.steps}")
        if self.mesh_factor < 1:
            out.append(f"param 'mesh_factor' must be an integer >= 1, got {self.mesh_factor}")
        if not self.z_final > -1:
            out.append(f"param 'z_final' must be > -1, got {self.z_final}")
        return out


class NBody(Stage):
    """Particle-mesh N-body (kick-drift-kick, FastPM factors) from the particles' redshift to z_final."""

    name = "sim.nbody"
    Params = NBodyParams
    inputs = {"particles": Particles}
    outputs = {"particles": Particles}

    def run(self, particles: Particles) -> dict[str, Particles]:
        from cosmoseg.sim.nbody import run_pm

        p: NBodyParams = self.params
        snapshots = run_pm(
            particles,
            z_final=p.z_final,
            steps=p.steps,
            mesh_factor=p.mesh_factor,
            spacing=p.spacing,
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
    register(GaussianField)
    register(InitialConditionsStage)
    register(Twins)
    register(FriendsOfFriends)
    register(NBody)


@hookimpl
def cosmoseg_register_commands(app: Any) -> None:
    """``cosmoseg simulate SUITE.toml``: generate a training suite of boxes."""
    from cosmoseg.sim.commands import simulate

    app.command("simulate")(simulate)
