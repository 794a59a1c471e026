"""The plugin face of ``cosmoseg.io``: the built-in readers, and the ``io.*`` stages that bring a user's files into
a pipeline (a snapshot, a group catalog, a hydro run's galaxies, a grid).

Every stage has a ``path`` param: a file, the first chunk of a multi-file output, a stem, or a folder holding the
chunks of one output (what the readers accept), relative to the pipeline file, or ``"$name"`` for the path named
``name`` in ``[run] files``. ``--resume`` re-runs a reading stage when the files behind its path change.
"""

from __future__ import annotations

import dataclasses
import tempfile
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch

from cosmoseg.data import Cosmology, Field, GalaxyCatalog, HaloCatalog, Particles, cosmology_problems, load_artifact
from cosmoseg.errors import ValidationError
from cosmoseg.hookspecs import hookimpl
from cosmoseg.io._hdf5 import code_units_problems
from cosmoseg.io.cubes import read_cube, read_hdf5_cube, read_npy_cube
from cosmoseg.io.gadget import read_gadget_snapshot
from cosmoseg.io.tng import check_same_box, read_group_catalog, read_tng_galaxies, read_tng_groups, read_tng_subhalos
from cosmoseg.io.writers import write_example_files
from cosmoseg.pipeline.params import InputPath, param
from cosmoseg.pipeline.stage import P, Stage

IdsToGrid = Literal["auto", "none", "one-based", "zero-based", "offset"]
"""The modes of ``cosmoseg.io.gadget.IDS_TO_GRID_MODES`` as a param type."""

CODE_UNITS_DOC = "UnitLength_in_cm, UnitMass_in_g, UnitVelocity_in_cm_per_s for files that lack them"
COSMOLOGY_DOC = "Cosmology fields for what the file does not store (Omega_m and h come from the file)"
PRECISION_DOC = '"float32" or "float64": of the floating-point values read'


def _reader_problems(path: str, what: str, cosmology: dict[str, Any], code_units: dict[str, Any]) -> list[str]:
    """Problems of the ``path``, ``cosmology`` and ``code_units`` params every reading stage has."""
    return cosmology_problems(cosmology) + code_units_problems(code_units) + ([] if path else [f"param 'path' {what}"])


def _cosmology(changes: dict[str, Any]) -> Cosmology | None:
    """The ``cosmology`` param as the readers' argument: None when empty (the file's values rule)."""
    return Cosmology(**changes) if changes else None


def _reader_arguments(params: Any, device: torch.device) -> dict[str, Any]:
    """A reading stage's params as its reader's keyword arguments: ``cosmology`` and ``code_units`` None when empty
    (the file's values rule), ``precision`` as ``dtype``, and the ``device``."""
    arguments = dataclasses.asdict(params) | {"cosmology": _cosmology(params.cosmology), "device": device}
    if "code_units" in arguments:
        arguments["code_units"] = params.code_units or None
    if "precision" in arguments:
        arguments["dtype"] = getattr(torch, arguments.pop("precision"))
    return arguments


@cache
def _examples() -> dict[str, str]:
    """Tiny files in other codes' formats for the stages' contract runs (made once per process): kind -> path."""
    folder = Path(tempfile.mkdtemp(prefix="cosmoseg-io-examples-"))
    return {kind: str(path) for kind, path in write_example_files(folder).items()}


class _ReaderStage(Stage[P]):
    """A reading stage: its contract run reads the tiny file of ``example_file`` that ``write_example_files``
    makes in the other code's format."""

    example_file: ClassVar[str]

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"path": _examples()[cls.example_file]}


# ---- io.snapshot -------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SnapshotParams:
    path: InputPath = param(  # noqa: RUF009 (a str)
        doc='the snapshot: file, first chunk, stem or snapdir folder ("$name": the path named in [run] files)'
    )
    part_type: int = param(1, ge=0, le=5, doc="the particle type to read (1: dark matter)")
    ids_to_grid: IdsToGrid = param(  # noqa: RUF009 (a str)
        "auto",
        doc='ids to Lagrangian grid ids: "auto" (a lattice at any offset), "none", "one-based", "zero-based", "offset"',
    )
    id_offset: int = param(0, ge=0, doc='the id of the first lattice point (with ids_to_grid = "offset")')
    load_velocities: bool = param(True, doc="read Velocities (else zero)")
    check_mass: bool = param(True, doc="total mass = Omega_m rho_crit L^3 (false for a zoom run or a sub-volume)")
    code_units: dict[str, Any] = param({}, doc=CODE_UNITS_DOC)  # noqa: RUF009 (param copies it per instance)
    cosmology: dict[str, Any] = param({}, doc=COSMOLOGY_DOC)  # noqa: RUF009 (param copies it per instance)
    precision: Literal["float32", "float64"] = param("float32", doc=PRECISION_DOC)

    def problems(self) -> list[str]:
        out = _reader_problems(self.path, "must name the snapshot", self.cosmology, self.code_units)
        if self.id_offset and self.ids_to_grid != "offset":
            out.append("param 'id_offset' is used with ids_to_grid = 'offset' only")
        return out


class SnapshotStage(_ReaderStage[SnapshotParams]):
    """The particles of one type of a Gadget-4 / AREPO / TNG HDF5 snapshot (a user's gravity-only run)."""

    name = "io.snapshot"
    outputs = {"particles": Particles}
    example_file = "snapshot"

    def run(self) -> dict[str, Particles]:
        p = self.params
        arguments = _reader_arguments(p, self.ctx.device)
        arguments["id_offset"] = p.id_offset if p.ids_to_grid == "offset" else None
        particles = read_gadget_snapshot(**arguments)
        grid = f", Lagrangian grid {particles.n_grid}^3" if particles.n_grid else ", ids not a lattice"
        self.ctx.log(
            f"{len(particles)} particles of type {p.part_type} in {particles.box.length:g} Mpc/h at "
            f"z = {particles.box.redshift:.3g}{grid} ({particles.meta.get('n_files', 1)} file(s))"
        )
        return {"particles": particles}


# ---- io.halos ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HalosParams:
    path: InputPath = param(  # noqa: RUF009 (a str)
        doc="the group catalog: a fof_tab_XXX / fof_subhalo_tab_XXX file, first chunk, stem or groups folder"
    )
    kind: Literal["groups", "subhalos"] = param("groups", doc='"groups" (FoF) or "subhalos" (Subfind)')
    min_particles: int = param(0, ge=0, doc="keep haloes of at least this many particles (n_part; 0 keeps all)")
    code_units: dict[str, Any] = param({}, doc=CODE_UNITS_DOC)  # noqa: RUF009 (param copies it per instance)
    cosmology: dict[str, Any] = param({}, doc=COSMOLOGY_DOC)  # noqa: RUF009 (param copies it per instance)
    precision: Literal["float32", "float64"] = param("float32", doc=PRECISION_DOC)

    def problems(self) -> list[str]:
        return _reader_problems(self.path, "must name the group catalog", self.cosmology, self.code_units)


class HalosStage(_ReaderStage[HalosParams]):
    """FoF groups or Subfind subhaloes of a Gadget-4 / AREPO / TNG group catalog, as a halo catalog.

    Given the run's ``snapshot`` (optional), the catalog must describe the same box (side, redshift, Ω_m, h).
    """

    name = "io.halos"
    inputs = {"snapshot": Particles}
    optional_inputs = frozenset({"snapshot"})
    outputs = {"halos": HaloCatalog}
    example_file = "groups"

    def run(self, snapshot: Particles | None = None) -> dict[str, HaloCatalog]:
        p = self.params
        arguments = _reader_arguments(p, self.ctx.device)
        del arguments["min_particles"]  # a selection made below, not the reader's
        halos = read_group_catalog(**arguments)
        if snapshot is not None:
            check_same_box(halos, snapshot, p.path, str(snapshot.meta.get("path", "the snapshot")))
        if p.min_particles:
            if "n_part" not in halos:
                raise ValidationError(f"{p.path}: min_particles needs the particle counts (GroupLen / SubhaloLen)")
            halos = halos.select(halos["n_part"] >= p.min_particles)
        self.ctx.log(f"{len(halos)} {p.kind} from {p.path}")
        return {"halos": halos}

    @classmethod
    def example_inputs(cls, generator: torch.Generator) -> dict[str, Particles]:
        return {}  # the optional snapshot left out


# ---- io.galaxies -------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GalaxiesParams:
    path: InputPath = param(doc="a hydrodynamical run's group catalog (TNG fof_subhalo_tab_XXX ...)")  # noqa: RUF009 (a str)
    min_log_mstar: float = param(9.0, doc="the stellar-mass threshold, log10 Msun/h")
    drop_flagged: bool = param(True, doc="leave out SubhaloFlag == 0 (not of cosmological origin)")
    mstar_field: Literal["SubhaloMassType", "SubhaloMassInRadType"] = param(
        "SubhaloMassType", doc='"SubhaloMassType" (all bound stars) or "SubhaloMassInRadType" (within 2 r_half,*)'
    )
    log_ssfr_floor: float = param(-13.0, doc="log10 sSFR (1/yr) given to SFR = 0")
    code_units: dict[str, Any] = param({}, doc=CODE_UNITS_DOC)  # noqa: RUF009 (param copies it per instance)
    cosmology: dict[str, Any] = param({}, doc=COSMOLOGY_DOC)  # noqa: RUF009 (param copies it per instance)
    precision: Literal["float32", "float64"] = param("float32", doc=PRECISION_DOC)

    def problems(self) -> list[str]:
        return _reader_problems(self.path, "must name the group catalog", self.cosmology, self.code_units)


class GalaxiesStage(_ReaderStage[GalaxiesParams]):
    """The galaxies of a hydrodynamical run (subhaloes with stars above a stellar-mass threshold), with their
    host groups' rows (``host``), central flags and properties (M*, sSFR, g - i, size, metallicity)."""

    name = "io.galaxies"
    outputs = {"galaxies": GalaxyCatalog}
    example_file = "galaxies"

    def run(self) -> dict[str, GalaxyCatalog]:
        p = self.params
        galaxies = read_tng_galaxies(**_reader_arguments(p, self.ctx.device))
        centrals = int(galaxies["is_central"].sum()) if "is_central" in galaxies else 0
        self.ctx.log(f"{len(galaxies)} galaxies ({centrals} centrals) from {p.path}")
        return {"galaxies": galaxies}


# ---- io.field ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FieldParams:
    path: InputPath = param(doc="a .npy cube, or a plain HDF5 file")  # noqa: RUF009 (a str)
    dataset: str = param("", doc='the HDF5 dataset(s), commas between several channels ("" = the only one)')
    length: float = param(0.0, ge=0, doc="box side, Mpc/h (0 = the file's BoxSize attribute; needed for .npy)")
    name: str = param("", doc='channel name(s), commas between several ("" = the datasets\' names; .npy: "delta")')
    units: str = param("", doc="one unit for every channel")
    redshift: float = param(-1.0, ge=-1, doc="of the box (-1 = the file's attribute, else 0)")
    cosmology: dict[str, Any] = param({}, doc="Cosmology fields changed from Planck 2018")  # noqa: RUF009 (param copies it per instance)

    def problems(self) -> list[str]:
        out = _reader_problems(self.path, "must name the grid file", self.cosmology, {})
        if self.path.endswith(".npy") and not self.length:
            out.append("param 'length' (Mpc/h) is needed for a .npy cube, which stores no box size")
        return out


class FieldStage(_ReaderStage[FieldParams]):
    """A grid (δ, φ, ...) from a .npy cube or a plain HDF5 file, as a field."""

    name = "io.field"
    outputs = {"field": Field}
    example_file = "cube"

    def run(self) -> dict[str, Field]:
        field = read_cube(**_reader_arguments(self.params, self.ctx.device))
        self.ctx.log(f"{field.values.shape[0]} channel(s) {field.channels} on {field.values.shape[-1]}^3")
        return {"field": field}

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return super().example_params() | {"length": 40.0}


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
