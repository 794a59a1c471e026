"""The plugin face of ``cosmoseg.io``: the built-in readers, and the ``io.*`` stages that bring a user's files into
a pipeline (a snapshot, a group catalog, a hydro run's galaxies, a grid).

Every stage has a ``path`` param: a file, the first chunk of a multi-file output, a stem, or a folder holding the
chunks of one output (what the readers accept), relative to the pipeline file, or ``"$name"`` for the path named
``name`` in ``[run] files``. ``--resume`` re-runs a reading stage when the files behind its path change.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from functools import cache
from pathlib import Path
from typing import Any, Literal

import torch

from cosmoseg.data import Cosmology, Field, GalaxyCatalog, HaloCatalog, Particles, cosmology_problems, load_artifact
from cosmoseg.errors import ProblemCollector, ValidationError
from cosmoseg.hookspecs import hookimpl
from cosmoseg.io.cubes import read_hdf5_cube, read_npy_cube
from cosmoseg.io.gadget import read_gadget_snapshot
from cosmoseg.io.tng import read_group_catalog, read_tng_galaxies, read_tng_groups, read_tng_subhalos
from cosmoseg.pipeline.params import InputPath
from cosmoseg.pipeline.stage import Stage

IdsToGrid = Literal["auto", "none", "one-based", "zero-based", "offset"]
"""The modes of ``cosmoseg.io.gadget.IDS_TO_GRID_MODES`` as a param type."""
BOX_RTOL = 1e-5
"""Relative tolerance on the box side when a catalog is checked against its snapshot."""
REDSHIFT_ATOL = 1e-3
"""Absolute tolerance on the redshift when a catalog is checked against its snapshot."""

UNIT_KEYS = ("UnitLength_in_cm", "UnitMass_in_g", "UnitVelocity_in_cm_per_s")


def _reader_problems(cosmology: dict[str, Any], code_units: dict[str, Any]) -> list[str]:
    """Problems of the ``cosmology`` and ``code_units`` params every reading stage has."""
    out = cosmology_problems(cosmology)
    unknown = sorted(set(code_units) - set(UNIT_KEYS))
    if unknown:
        out.append(f"param 'code_units' has unknown key(s) {unknown}; the keys are {', '.join(UNIT_KEYS)}")
    for key, value in code_units.items():
        if key in UNIT_KEYS and not (isinstance(value, int | float) and not isinstance(value, bool) and value > 0):
            out.append(f"param 'code_units': {key} must be a positive number (cm, g or cm/s), got {value!r}")
    return out


def _cosmology(changes: dict[str, Any]) -> Cosmology | None:
    """The ``cosmology`` param as the readers' argument: None when empty (the file's values rule)."""
    return Cosmology(**changes) if changes else None


def _dtype(precision: str) -> torch.dtype:
    return torch.float64 if precision == "float64" else torch.float32


@cache
def _examples() -> Path:
    """A folder of tiny files in other codes' formats for the stages' contract runs (made once per process)."""
    from cosmoseg.data import Box
    from cosmoseg.io.writers import write_gadget4_groups, write_gadget4_snapshot, write_tng_catalog

    folder = Path(tempfile.mkdtemp(prefix="cosmoseg-io-examples-"))
    cosmology = Cosmology(power_backend="eisenstein-hu")
    box = Box(length=40.0, redshift=0.0, cosmology=cosmology)
    generator = torch.Generator().manual_seed(2)
    side = 8
    cells = torch.stack(torch.meshgrid(*(torch.arange(side),) * 3, indexing="ij"), -1).reshape(-1, 3)
    particles = Particles(
        pos=(cells + 0.5 + 0.2 * torch.randn(cells.shape, generator=generator)) * (box.length / side),
        vel=100.0 * torch.randn(cells.shape, generator=generator),
        ids=torch.arange(side**3),
        mass=cosmology.particle_mass(side, box.length),
        box=box,
        n_grid=side,
    )
    write_gadget4_snapshot(particles, folder / "snapdir_005", n_files=2)
    n = 6
    halos = HaloCatalog(
        columns={
            "pos": 40.0 * torch.rand((n, 3), generator=generator, dtype=torch.float64),
            "vel": 100.0 * torch.randn((n, 3), generator=generator, dtype=torch.float64),
            "mass": particles.mass * torch.arange(40, 40 + 10 * n, 10, dtype=torch.float64),
            "n_part": torch.arange(40, 40 + 10 * n, 10),
        },
        box=box,
    )
    write_gadget4_groups(halos, folder / "groups_005", n_files=2)
    galaxies = GalaxyCatalog(
        columns={
            "pos": halos["pos"],
            "vel": halos["vel"],
            "host": torch.arange(n),
            "is_central": torch.ones(n, dtype=torch.bool),
            "log_mstar": torch.linspace(9.5, 11.0, n, dtype=torch.float64),
            "log_ssfr": torch.full((n,), -10.0, dtype=torch.float64),
            "color_gi": torch.full((n,), 0.8, dtype=torch.float64),
            "log_radius": torch.full((n,), 0.5, dtype=torch.float64),
            "log_z": torch.zeros(n, dtype=torch.float64),
        },
        box=halos.box,
    )
    write_tng_catalog(halos, galaxies, folder / "groups_099", n_files=2)
    return folder


# ---- io.snapshot -------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SnapshotParams:
    """path: the snapshot (file, first chunk, stem or snapdir folder; "$name" for [run] files.name).
    part_type: the particle type to read (1: dark matter). ids_to_grid: "auto" (an n^3 lattice of ids, at any
    offset, becomes Lagrangian grid ids), "none", "one-based", "zero-based", or "offset" (with id_offset, the id of
    the first lattice point). load_velocities: read Velocities (else zero). check_mass: the particles' total mass
    must match Omega_m rho_crit L^3 (false for a zoom run or a sub-volume). code_units: UnitLength_in_cm,
    UnitMass_in_g, UnitVelocity_in_cm_per_s for files that lack them. cosmology: Cosmology fields for what the file
    does not store (Omega_m and h come from the file). precision: "float32" or "float64" positions and velocities."""

    path: InputPath
    part_type: int = 1
    ids_to_grid: IdsToGrid = "auto"
    id_offset: int = 0
    load_velocities: bool = True
    check_mass: bool = True
    code_units: dict[str, Any] = dataclasses.field(default_factory=dict)
    cosmology: dict[str, Any] = dataclasses.field(default_factory=dict)
    precision: Literal["float32", "float64"] = "float32"

    def problems(self) -> list[str]:
        out = _reader_problems(self.cosmology, self.code_units)
        if not self.path:
            out.append("param 'path' must name the snapshot")
        if not 0 <= self.part_type <= 5:
            out.append(f"param 'part_type' must be a particle type 0..5, got {self.part_type}")
        if self.id_offset < 0:
            out.append(f"param 'id_offset' must be >= 0, got {self.id_offset}")
        if self.id_offset and self.ids_to_grid != "offset":
            out.append("param 'id_offset' is used with ids_to_grid = 'offset' only")
        return out


class SnapshotStage(Stage):
    """The particles of one type of a Gadget-4 / AREPO / TNG HDF5 snapshot (a user's gravity-only run)."""

    name = "io.snapshot"
    Params = SnapshotParams
    outputs = {"particles": Particles}

    def run(self) -> dict[str, Particles]:
        p: SnapshotParams = self.params
        particles = read_gadget_snapshot(
            p.path,
            part_type=p.part_type,
            cosmology=_cosmology(p.cosmology),
            load_velocities=p.load_velocities,
            ids_to_grid=p.ids_to_grid,
            id_offset=p.id_offset if p.ids_to_grid == "offset" else None,
            code_units=p.code_units or None,
            check_mass=p.check_mass,
            dtype=_dtype(p.precision),
            device=self.ctx.device,
        )
        grid = f", Lagrangian grid {particles.n_grid}^3" if particles.n_grid else ", ids not a lattice"
        self.ctx.log(
            f"{len(particles)} particles of type {p.part_type} in {particles.box.length:g} Mpc/h at "
            f"z = {particles.box.redshift:.3g}{grid} ({particles.meta.get('n_files', 1)} file(s))"
        )
        return {"particles": particles}

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"path": str(_examples() / "snapdir_005")}


# ---- io.halos ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HalosParams:
    """path: the group catalog (fof_tab_XXX / fof_subhalo_tab_XXX file, first chunk, stem or groups folder).
    kind: "groups" (FoF) or "subhalos" (Subfind). min_particles: keep haloes of at least this many particles
    (n_part; 0 keeps all). code_units, cosmology: as io.snapshot. precision: of the floating-point columns."""

    path: InputPath
    kind: Literal["groups", "subhalos"] = "groups"
    min_particles: int = 0
    code_units: dict[str, Any] = dataclasses.field(default_factory=dict)
    cosmology: dict[str, Any] = dataclasses.field(default_factory=dict)
    precision: Literal["float32", "float64"] = "float32"

    def problems(self) -> list[str]:
        out = _reader_problems(self.cosmology, self.code_units)
        if not self.path:
            out.append("param 'path' must name the group catalog")
        if self.min_particles < 0:
            out.append(f"param 'min_particles' must be >= 0, got {self.min_particles}")
        return out


def check_same_box(catalog: HaloCatalog, particles: Particles, catalog_path: str, snapshot_path: str) -> None:
    """A ValidationError naming both files when a catalog and a snapshot do not describe the same box: side,
    redshift, Ω_m and h must agree."""
    problems = ProblemCollector()
    a, b = catalog.box, particles.box
    problems.check(
        math.isclose(a.length, b.length, rel_tol=BOX_RTOL),
        f"the box side is {a.length:g} Mpc/h in {catalog_path} but {b.length:g} Mpc/h in {snapshot_path}",
    )
    problems.check(
        abs(a.redshift - b.redshift) <= REDSHIFT_ATOL,
        f"the redshift is {a.redshift:.4g} in {catalog_path} but {b.redshift:.4g} in {snapshot_path}",
    )
    for name in ("omega_m", "h"):
        mine, theirs = getattr(a.cosmology, name), getattr(b.cosmology, name)
        problems.check(
            math.isclose(mine, theirs, rel_tol=1e-3),
            f"{name} is {mine:g} in {catalog_path} but {theirs:g} in {snapshot_path}",
        )
    problems.raise_if_any(ValidationError, context="the halo catalog and the snapshot are of different boxes")


class HalosStage(Stage):
    """FoF groups or Subfind subhaloes of a Gadget-4 / AREPO / TNG group catalog, as a halo catalog.

    Given the run's ``snapshot`` (optional), the catalog must describe the same box (side, redshift, Ω_m, h).
    """

    name = "io.halos"
    Params = HalosParams
    inputs = {"snapshot": Particles}
    optional_inputs = frozenset({"snapshot"})
    outputs = {"halos": HaloCatalog}

    def run(self, snapshot: Particles | None = None) -> dict[str, HaloCatalog]:
        p: HalosParams = self.params
        halos = read_group_catalog(
            p.path,
            kind=p.kind,
            cosmology=_cosmology(p.cosmology),
            code_units=p.code_units or None,
            dtype=_dtype(p.precision),
            device=self.ctx.device,
        )
        if snapshot is not None:
            check_same_box(halos, snapshot, p.path, str(snapshot.meta.get("path", "the snapshot")))
        if p.min_particles:
            if "n_part" not in halos:
                raise ValidationError(f"{p.path}: min_particles needs the particle counts (GroupLen / SubhaloLen)")
            halos = halos.select(halos["n_part"] >= p.min_particles)
        self.ctx.log(f"{len(halos)} {p.kind} from {p.path}")
        return {"halos": halos}

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"path": str(_examples() / "groups_005")}

    @classmethod
    def example_inputs(cls, generator: torch.Generator) -> dict[str, Particles]:
        return {}  # the optional snapshot left out


# ---- io.galaxies -------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GalaxiesParams:
    """path: a hydrodynamical run's group catalog (TNG fof_subhalo_tab_XXX ...). min_log_mstar: the stellar-mass
    threshold, log10 Msun/h. drop_flagged: leave out SubhaloFlag == 0 (not of cosmological origin). mstar_field:
    "SubhaloMassType" or "SubhaloMassInRadType". log_ssfr_floor: log10 sSFR (1/yr) given to SFR = 0. code_units,
    cosmology, precision: as io.snapshot."""

    path: InputPath
    min_log_mstar: float = 9.0
    drop_flagged: bool = True
    mstar_field: Literal["SubhaloMassType", "SubhaloMassInRadType"] = "SubhaloMassType"
    log_ssfr_floor: float = -13.0
    code_units: dict[str, Any] = dataclasses.field(default_factory=dict)
    cosmology: dict[str, Any] = dataclasses.field(default_factory=dict)
    precision: Literal["float32", "float64"] = "float32"

    def problems(self) -> list[str]:
        out = _reader_problems(self.cosmology, self.code_units)
        if not self.path:
            out.append("param 'path' must name the group catalog")
        return out


class GalaxiesStage(Stage):
    """The galaxies of a hydrodynamical run (subhaloes with stars above a stellar-mass threshold), with their
    host groups' rows (``host``), central flags and properties (M*, sSFR, g - i, size, metallicity)."""

    name = "io.galaxies"
    Params = GalaxiesParams
    outputs = {"galaxies": GalaxyCatalog}

    def run(self) -> dict[str, GalaxyCatalog]:
        p: GalaxiesParams = self.params
        galaxies = read_tng_galaxies(
            p.path,
            min_log_mstar=p.min_log_mstar,
            drop_flagged=p.drop_flagged,
            mstar_field=p.mstar_field,
            log_ssfr_floor=p.log_ssfr_floor,
            cosmology=_cosmology(p.cosmology),
            code_units=p.code_units or None,
            dtype=_dtype(p.precision),
            device=self.ctx.device,
        )
        centrals = int(galaxies["is_central"].sum()) if "is_central" in galaxies else 0
        self.ctx.log(f"{len(galaxies)} galaxies ({centrals} centrals) from {p.path}")
        return {"galaxies": galaxies}

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"path": str(_examples() / "groups_099")}


# ---- io.field ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FieldParams:
    """path: a .npy cube, or a plain HDF5 file. dataset: the HDF5 dataset(s), commas between several to stack them
    as channels ("" = the file's only dataset). length: box side, Mpc/h (0 = the file's BoxSize attribute; needed
    for .npy). name: channel name(s), commas between several ("" = the datasets' names; .npy: "delta"). units: one
    unit for every channel. redshift: of the box (-1 = the file's attribute, else 0). cosmology: Cosmology fields
    changed from Planck 2018."""

    path: InputPath
    dataset: str = ""
    length: float = 0.0
    name: str = ""
    units: str = ""
    redshift: float = -1.0
    cosmology: dict[str, Any] = dataclasses.field(default_factory=dict)

    def problems(self) -> list[str]:
        out = cosmology_problems(self.cosmology)
        if not self.path:
            out.append("param 'path' must name the grid file")
        if self.length < 0:
            out.append(f"param 'length' must be a positive box side in Mpc/h, or 0 for the file's, got {self.length}")
        if self.redshift < -1:
            out.append(f"param 'redshift' must be >= 0, or -1 for the file's, got {self.redshift}")
        if self.path.endswith(".npy") and not self.length:
            out.append("param 'length' (Mpc/h) is needed for a .npy cube, which stores no box size")
        return out


class FieldStage(Stage):
    """A grid (δ, φ, ...) from a .npy cube or a plain HDF5 file, as a field."""

    name = "io.field"
    Params = FieldParams
    outputs = {"field": Field}

    def run(self) -> dict[str, Field]:
        p: FieldParams = self.params
        cosmology = _cosmology(p.cosmology)
        if p.path.endswith(".npy"):
            field = read_npy_cube(
                p.path,
                length=p.length,
                name=p.name or "delta",
                units=p.units,
                redshift=max(p.redshift, 0.0),
                cosmology=cosmology,
            )
        else:
            datasets = [d.strip() for d in p.dataset.split(",") if d.strip()]
            field = read_hdf5_cube(
                p.path,
                datasets if len(datasets) > 1 else (datasets[0] if datasets else None),
                length=p.length or None,
                name=p.name or None,
                units=p.units or None,
                redshift=None if p.redshift < 0 else p.redshift,
                cosmology=cosmology,
            )
        self.ctx.log(f"{field.values.shape[0]} channel(s) {field.channels} on {field.values.shape[-1]}^3")
        return {"field": field.to(self.ctx.device)}

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        import numpy as np

        path = _examples() / "delta.npy"
        if not path.exists():
            np.save(path, np.random.default_rng(0).normal(size=(8, 8, 8)).astype(np.float32))
        return {"path": str(path), "length": 40.0}


@hookimpl
def cosmoseg_register_readers(register: Any) -> None:
    register("npy-cube", read_npy_cube)
    register("hdf5-cube", read_hdf5_cube)
    register("gadget-hdf5", read_gadget_snapshot)
    register("tng-groups", read_tng_groups)
    register("tng-subhalos", read_tng_subhalos)
    register("tng-galaxies", read_tng_galaxies)
    register("cosmoseg-artifact", load_artifact)


@hookimpl
def cosmoseg_register_stages(register: Any) -> None:
    for stage in (SnapshotStage, HalosStage, GalaxiesStage, FieldStage):
        register(stage)
