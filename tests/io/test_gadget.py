"""Gadget-4 / AREPO / TNG HDF5 snapshots: small files written here in those layouts, read back and checked
against hand-computed unit conversions; every bad input gives an ArtifactError naming the file and problem.

The fixtures are physically consistent: unless a test says otherwise, the particles of a box weigh
Ω_m ρ_crit L³ (``consistent_mass_table``), as a real gravity-only run's do, so the total-mass check passes."""

from __future__ import annotations

import itertools
import math
import os
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch

from cosmoseg.data import Cosmology, Particles
from cosmoseg.errors import ArtifactError
from cosmoseg.io import IDS_TO_GRID_MODES, lagrangian_grid_ids, read_gadget_snapshot
from cosmoseg.plugins import build_registry

KPC = 3.085678e21
MPC = 3.085678e24
MSUN = 1.989e33
RHO_CRIT = 2.77536627e11
"""(Msun/h) / (Mpc/h)^3."""


def consistent_mass_table(
    box: float, n_total: int, *, omega_m: float = 0.3, length_cm: float = KPC, mass_g: float = 1e10 * MSUN
) -> float:
    """The MassTable entry (code mass units) of ``n_total`` equal particles that hold Ω_m ρ_crit L³ of a periodic
    box of side ``box`` (code length units), as the particles of a gravity-only run do."""
    length = box * length_cm / MPC  # Mpc/h
    return omega_m * RHO_CRIT * length**3 / n_total * MSUN / mass_g


def lattice(n: int, box: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions near an n^3 lattice (code units), velocities and one-based N-GenIC ids in random order."""
    ijk = np.stack(np.meshgrid(*(np.arange(n),) * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    ids = (ijk[:, 0] * n + ijk[:, 1]) * n + ijk[:, 2] + 1
    pos = (ijk + 0.5 + rng.uniform(-0.3, 0.3, ijk.shape)) * box / n
    vel = rng.normal(0.0, 300.0, ijk.shape)
    order = rng.permutation(len(ids))
    return pos[order], vel[order], ids[order].astype(np.uint64)


def write_snapshot(
    path: Path,
    pos: np.ndarray,
    vel: np.ndarray | None,
    ids: np.ndarray | None,
    *,
    box: float = 50_000.0,
    redshift: float | None = 1.0,
    time: float | None = 0.5,
    mass_table: float | None = None,
    masses: np.ndarray | None = None,
    n_total: int | None = None,
    num_files: int = 1,
    cosmology_in: str = "Header",
    cosmology: dict[str, float] | None = None,
    units: dict[str, float] | None = None,
    units_in: str = "Header",
    dataset_attrs: dict[str, dict[str, float]] | None = None,
    part_type: int = 1,
    header_extra: dict[str, Any] | None = None,
) -> Path:
    """A snapshot file (or chunk) holding ``len(pos)`` particles of type ``part_type``.

    mass_table: MassTable[part_type] in code units; None: ``consistent_mass_table`` of the box, the total particle
        count, the file's Omega0 (0.3 without one) and the code units in ``units`` (Gadget's defaults without).
    """
    n = len(pos)
    if mass_table is None:
        cosmo_values = {"Omega0": 0.3} if cosmology is None else cosmology
        mass_table = consistent_mass_table(
            box,
            max(n if n_total is None else n_total, 1),
            omega_m=cosmo_values.get("Omega0", 0.3),
            length_cm=(units or {}).get("UnitLength_in_cm", KPC),
            mass_g=(units or {}).get("UnitMass_in_g", 1e10 * MSUN),
        )
    with h5py.File(path, "w") as f:
        header = f.create_group("Header")
        counts = np.zeros(6, dtype=np.uint32)
        counts[part_type] = n
        totals = np.zeros(6, dtype=np.uint32)
        totals[part_type] = n if n_total is None else n_total
        table = np.zeros(6)
        table[part_type] = mass_table
        header.attrs["NumPart_ThisFile"] = counts
        header.attrs["NumPart_Total"] = totals
        header.attrs["NumPart_Total_HighWord"] = np.zeros(6, dtype=np.uint32)
        header.attrs["MassTable"] = table
        header.attrs["BoxSize"] = box
        header.attrs["NumFilesPerSnapshot"] = num_files
        if redshift is not None:
            header.attrs["Redshift"] = redshift
        if time is not None:
            header.attrs["Time"] = time
        for key, value in (header_extra or {}).items():
            header.attrs[key] = value
        holder = header if cosmology_in == "Header" else f.require_group(cosmology_in)
        cosmo = {"Omega0": 0.3, "OmegaLambda": 0.7, "HubbleParam": 0.7} if cosmology is None else cosmology
        for key, value in cosmo.items():
            holder.attrs[key] = value
        if units:
            unit_holder = header if units_in == "Header" else f.require_group(units_in)
            for key, value in units.items():
                unit_holder.attrs[key] = value
        if n == 0:
            return path
        group = f.create_group(f"PartType{part_type}")
        group["Coordinates"] = pos
        if vel is not None:
            group["Velocities"] = vel
        if ids is not None:
            group["ParticleIDs"] = ids
        if masses is not None:
            group["Masses"] = masses
        for name, attrs in (dataset_attrs or {}).items():
            for key, value in attrs.items():
                group[name].attrs[key] = value
    return path


def write_chunks(
    directory: Path, stem: str, pos: np.ndarray, vel: np.ndarray, ids: np.ndarray, splits: list[int], **options: Any
) -> list[Path]:
    """Split the particles into chunks ``stem.N.hdf5`` of the given sizes (0 makes an empty chunk)."""
    assert sum(splits) == len(pos)
    edges = np.cumsum([0, *splits])
    return [
        write_snapshot(
            directory / f"{stem}.{i}.hdf5",
            pos[lo:hi],
            vel[lo:hi],
            ids[lo:hi],
            n_total=len(pos),
            num_files=len(splits),
            **options,
        )
        for i, (lo, hi) in enumerate(itertools.pairwise(edges))
    ]


def add_type(
    path: Path,
    part_type: int,
    n: int,
    rng: np.random.Generator,
    *,
    mass_table: float = 0.0,
    masses: np.ndarray | None = None,
    first_id: int = 10_000,
) -> None:
    """Add ``n`` particles of another type to a one-file snapshot (counts, MassTable, a PartTypeK group)."""
    with h5py.File(path, "a") as f:
        header = f["Header"]
        for name in ("NumPart_ThisFile", "NumPart_Total"):
            counts = header.attrs[name].copy()
            counts[part_type] = n
            header.attrs[name] = counts
        table = header.attrs["MassTable"].copy()
        table[part_type] = mass_table
        header.attrs["MassTable"] = table
        group = f.create_group(f"PartType{part_type}")
        group["Coordinates"] = rng.uniform(0.0, float(header.attrs["BoxSize"]), (n, 3))
        group["Velocities"] = rng.normal(0.0, 100.0, (n, 3))
        group["ParticleIDs"] = np.arange(first_id, first_id + n, dtype=np.uint64)
        if masses is not None:
            group["Masses"] = masses


def names_file_and(problem: str, path: Path) -> str:
    """A regex that an error message must match: it names the file and the problem."""
    return rf"(?s){re.escape(str(path))}.*{problem}"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(11)


# ---- reading back ---------------------------------------------------------------------------------------


def test_a_gadget_snapshot_with_default_units_reads_back_in_cosmoseg_units(tmp_path: Path, rng) -> None:
    pos, vel, ids = lattice(4, 50_000.0, rng)
    path = write_snapshot(tmp_path / "snap_005.hdf5", pos, vel, ids, redshift=1.0, time=0.5)
    particles = read_gadget_snapshot(path, dtype=torch.float64)
    assert isinstance(particles, Particles) and len(particles) == 64
    assert particles.box.length == pytest.approx(50.0)  # 50 000 kpc/h
    assert particles.box.redshift == pytest.approx(1.0)
    assert particles.ids.tolist() == (ids.astype(np.int64) - 1).tolist()  # one-based grid ids -> 0-based
    assert particles.n_grid == 4
    np.testing.assert_allclose(particles.pos.numpy(), pos / 1000.0, rtol=1e-12)
    np.testing.assert_allclose(particles.vel.numpy(), vel * math.sqrt(0.5), rtol=1e-12)  # v_pec = u sqrt(a)
    assert particles.mass == pytest.approx(0.3 * RHO_CRIT * 50.0**3 / 64)  # Ω_m ρ_crit L³ / N, Msun/h
    assert particles.meta["mass_check"].startswith("N·m = ") and "Ω_m ρ_crit L³" in particles.meta["mass_check"]
    cosmo = particles.box.cosmology
    assert (cosmo.omega_m, cosmo.h, cosmo.omega_b) == (0.3, 0.7, 0.0486)
    assert cosmo.sigma_8 == Cosmology().sigma_8 and cosmo.n_s == Cosmology().n_s
    assert particles.meta["cosmology_from_file"] == "omega_m,h"
    defaults = particles.meta["cosmology_defaults"]
    assert "sigma_8=0.8102" in defaults and "omega_b=0.0486" in defaults
    assert particles.meta["units_from"] == "Gadget defaults" and particles.meta["length_unit_mpc_h"] == 1e-3
    assert particles.meta["source"] == "gadget-hdf5" and particles.meta["n_files"] == 1


def test_float32_is_the_default_dtype_and_device_is_honoured(tmp_path: Path, rng) -> None:
    pos, vel, ids = lattice(3, 50_000.0, rng)
    particles = read_gadget_snapshot(write_snapshot(tmp_path / "s.hdf5", pos, vel, ids), device="cpu")
    assert particles.pos.dtype == torch.float32 and particles.vel.dtype == torch.float32
    assert particles.ids.dtype == torch.int64 and particles.device == torch.device("cpu")


def test_gadget4_parameters_group_with_units_in_mpc(tmp_path: Path, rng) -> None:
    """Gadget-4 keeps cosmology and units in Parameters; a run in Mpc/h needs no division."""
    pos, vel, ids = lattice(3, 200.0, rng)
    path = write_snapshot(
        tmp_path / "snap_010.hdf5",
        pos,
        vel,
        ids - 1,
        box=200.0,
        redshift=0.0,
        time=1.0,
        cosmology_in="Parameters",
        cosmology={"Omega0": 0.31, "OmegaLambda": 0.69, "OmegaBaryon": 0.049, "HubbleParam": 0.68},
        units={"UnitLength_in_cm": MPC, "UnitMass_in_g": 1.989e43, "UnitVelocity_in_cm_per_s": 1e5},
        units_in="Parameters",
        header_extra={},
    )
    with h5py.File(path, "a") as f:
        f["Parameters"].attrs["ComovingIntegrationOn"] = 1
        f.create_group("Config").attrs["PERIODIC"] = 1
    particles = read_gadget_snapshot(path, dtype=torch.float64)
    assert particles.box.length == pytest.approx(200.0)
    np.testing.assert_allclose(particles.pos.numpy(), np.mod(pos, 200.0), rtol=1e-12)
    np.testing.assert_allclose(particles.vel.numpy(), vel, rtol=1e-12)  # a = 1
    assert particles.mass == pytest.approx(0.31 * RHO_CRIT * 200.0**3 / 27)
    assert particles.ids.tolist() == (ids.astype(np.int64) - 1).tolist() and particles.n_grid == 3  # zero-based
    cosmo = particles.box.cosmology
    assert (cosmo.omega_m, cosmo.omega_b, cosmo.h) == (0.31, 0.049, 0.68)
    assert particles.meta["units_from"] == "Parameters" and particles.meta["length_unit_mpc_h"] == 1.0
    assert particles.meta["cosmology_from_file"] == "omega_m,h,omega_b"


def test_arepo_dataset_unit_attributes_rule(tmp_path: Path, rng) -> None:
    """TNG-style a_scaling / h_scaling / to_cgs on each dataset (Header units agree with them)."""
    pos, vel, ids = lattice(3, 75_000.0, rng)
    a = 0.25
    attrs = {
        "Coordinates": {"a_scaling": 1.0, "h_scaling": -1.0, "length_scaling": 1.0, "to_cgs": KPC},
        "Velocities": {"a_scaling": 0.5, "h_scaling": 0.0, "velocity_scaling": 1.0, "to_cgs": 1e5},
        "ParticleIDs": {"a_scaling": 0.0, "h_scaling": 0.0, "to_cgs": 0.0},
    }
    path = write_snapshot(
        tmp_path / "snap_033.hdf5",
        pos,
        vel,
        ids * 2 + 1000,
        box=75_000.0,
        redshift=1 / a - 1,
        time=a,
        units={"UnitLength_in_cm": KPC, "UnitMass_in_g": 1.989e43, "UnitVelocity_in_cm_per_s": 1e5},
        dataset_attrs=attrs,
        cosmology={"Omega0": 0.3089, "OmegaLambda": 0.6911, "OmegaBaryon": 0.0486, "HubbleParam": 0.6774},
    )
    particles = read_gadget_snapshot(path, dtype=torch.float64)
    np.testing.assert_allclose(particles.pos.numpy(), pos / 1000.0, rtol=1e-12)
    np.testing.assert_allclose(particles.vel.numpy(), vel * 0.5, rtol=1e-12)  # sqrt(0.25)
    assert particles.box.length == pytest.approx(75.0) and particles.box.redshift == pytest.approx(3.0)
    assert particles.mass == pytest.approx(0.3089 * RHO_CRIT * 75.0**3 / 27)
    # ids 1002, 1004, ..., 1054 are not a grid's (not consecutive): kept, n_grid = 0
    assert particles.n_grid == 0 and particles.ids.tolist() == (ids.astype(np.int64) * 2 + 1000).tolist()
    assert "not a grid's" in particles.meta["ids"]
    assert "a_scaling=1" in particles.meta["positions"]


def test_velocities_that_say_they_are_peculiar_are_not_scaled(tmp_path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    attrs = {"Velocities": {"a_scaling": 0.0, "h_scaling": 0.0, "velocity_scaling": 1.0, "to_cgs": 1e5}}
    path = write_snapshot(tmp_path / "s.hdf5", pos, vel, ids, dataset_attrs=attrs)
    np.testing.assert_allclose(read_gadget_snapshot(path, dtype=torch.float64).vel.numpy(), vel, rtol=1e-12)


def test_dataset_attributes_alone_set_the_length_unit(tmp_path: Path, rng) -> None:
    """No Header units, but Coordinates say Mpc: positions and BoxSize are read in Mpc/h."""
    pos, vel, ids = lattice(3, 100.0, rng)
    attrs = {"Coordinates": {"a_scaling": 1.0, "h_scaling": -1.0, "to_cgs": MPC}}
    mass_table = consistent_mass_table(100.0, 27, length_cm=MPC)
    path = write_snapshot(tmp_path / "s.hdf5", pos, vel, ids, box=100.0, dataset_attrs=attrs, mass_table=mass_table)
    particles = read_gadget_snapshot(path, dtype=torch.float64)
    assert particles.box.length == pytest.approx(100.0)
    np.testing.assert_allclose(particles.pos.numpy(), pos, rtol=1e-12)


def test_code_units_argument_for_files_without_unit_attributes(tmp_path: Path, rng) -> None:
    pos, vel, ids = lattice(3, 100.0, rng)
    mass_table = consistent_mass_table(100.0, 27, length_cm=MPC)
    path = write_snapshot(tmp_path / "s.hdf5", pos, vel, ids, box=100.0, mass_table=mass_table)
    particles = read_gadget_snapshot(path, code_units={"UnitLength_in_cm": MPC}, dtype=torch.float64)
    assert particles.box.length == pytest.approx(100.0)
    assert particles.meta["units_from"] == "code_units argument + Gadget defaults"
    with pytest.raises(ValueError, match="unknown key"):
        read_gadget_snapshot(path, code_units={"UnitLength": MPC})


def test_redshift_from_time_alone(tmp_path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    path = write_snapshot(tmp_path / "s.hdf5", pos, vel, ids, redshift=None, time=0.2)
    particles = read_gadget_snapshot(path, dtype=torch.float64)
    assert particles.box.redshift == pytest.approx(4.0)
    np.testing.assert_allclose(particles.vel.numpy(), vel * math.sqrt(0.2), rtol=1e-12)
    assert particles.meta["redshift_from"] == "Header/Time"


def test_equal_per_particle_masses_when_the_mass_table_is_zero(tmp_path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    masses = np.full(8, consistent_mass_table(50_000.0, 8), dtype=np.float32)
    path = write_snapshot(tmp_path / "s.hdf5", pos, vel, ids, mass_table=0.0, masses=masses)
    assert read_gadget_snapshot(path).mass == pytest.approx(0.3 * RHO_CRIT * 50.0**3 / 8, rel=1e-6)


def test_velocities_can_be_skipped(tmp_path: Path, rng) -> None:
    pos, _, ids = lattice(2, 50_000.0, rng)
    path = write_snapshot(tmp_path / "s.hdf5", pos, None, ids)
    particles = read_gadget_snapshot(path, load_velocities=False)
    assert torch.count_nonzero(particles.vel) == 0 and particles.meta["velocities"] == "not loaded (zero)"


def test_another_particle_type(tmp_path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    path = write_snapshot(tmp_path / "s.hdf5", pos, vel, ids, part_type=2, mass_table=3.0)
    particles = read_gadget_snapshot(path, part_type=2)
    assert len(particles) == 8 and particles.mass == pytest.approx(3e10) and particles.meta["part_type"] == 2
    with pytest.raises(ArtifactError, match="no particles of type 1"):
        read_gadget_snapshot(path)
    with pytest.raises(ValueError, match="part_type"):
        read_gadget_snapshot(path, part_type=6)


# ---- multi-file snapshots ---------------------------------------------------------------------------------


def test_multi_file_snapshots_concatenate_in_chunk_order(tmp_path: Path, rng) -> None:
    pos, vel, ids = lattice(4, 50_000.0, rng)
    directory = tmp_path / "snapdir_005"
    directory.mkdir()
    files = write_chunks(directory, "snap_005", pos, vel, ids, [20, 0, 30, 14])
    expected_pos = pos / 1000.0
    readings = [
        read_gadget_snapshot(files[0], dtype=torch.float64),  # the first chunk brings its siblings
        read_gadget_snapshot(directory, dtype=torch.float64),  # the directory
        read_gadget_snapshot(directory / "snap_005", dtype=torch.float64),  # the stem
        read_gadget_snapshot([files[2], files[0], files[3], files[1]], dtype=torch.float64),  # a shuffled list
    ]
    for particles in readings:
        assert len(particles) == 64 and particles.meta["n_files"] == 4 and particles.n_grid == 4
        np.testing.assert_allclose(particles.pos.numpy(), expected_pos, rtol=1e-12)
        np.testing.assert_allclose(particles.vel.numpy(), vel * math.sqrt(0.5), rtol=1e-12)
        assert particles.ids.tolist() == (ids.astype(np.int64) - 1).tolist()


def test_a_missing_chunk_is_named(tmp_path: Path, rng) -> None:
    pos, vel, ids = lattice(3, 50_000.0, rng)
    files = write_chunks(tmp_path, "snap_007", pos, vel, ids, [9, 9, 9])
    files[1].unlink()
    with pytest.raises(ArtifactError, match=r"NumFilesPerSnapshot = 3, but 2 file\(s\).*missing snap_007\.1\.hdf5"):
        read_gadget_snapshot(files[0])


def test_unit_attributes_that_disagree_between_files(tmp_path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    files = write_chunks(tmp_path, "snap_001", pos, vel, ids, [4, 4], units={"UnitLength_in_cm": KPC})
    with h5py.File(files[1], "a") as f:
        f["Header"].attrs["UnitLength_in_cm"] = MPC
    disagree = r"files disagree about the unit attributes: .*UnitLength_in_cm=3.08568e\+21"
    with pytest.raises(ArtifactError, match=disagree) as err:
        read_gadget_snapshot(files[0])
    assert str(files[0]) in str(err.value) and str(files[1]) in str(err.value)


def test_dataset_unit_attributes_that_disagree_between_files(tmp_path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    coords = {"Coordinates": {"a_scaling": 1.0, "h_scaling": -1.0, "to_cgs": KPC}}
    files = write_chunks(tmp_path, "snap_001", pos, vel, ids, [4, 4], dataset_attrs=coords)
    with h5py.File(files[1], "a") as f:
        f["PartType1/Coordinates"].attrs["to_cgs"] = 10 * KPC
    with pytest.raises(ArtifactError, match=r"unit attributes of PartType1/Coordinates disagree between files"):
        read_gadget_snapshot(files[0])


def test_headers_that_disagree_between_files(tmp_path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    files = write_chunks(tmp_path, "snap_001", pos, vel, ids, [4, 4])
    with h5py.File(files[1], "a") as f:
        f["Header"].attrs["BoxSize"] = 60_000.0
    with pytest.raises(ArtifactError, match=r"files disagree about Header/BoxSize"):
        read_gadget_snapshot(files[0])


def test_counts_that_do_not_add_up_to_the_total(tmp_path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    path = write_snapshot(tmp_path / "s.hdf5", pos, vel, ids, n_total=9)
    with pytest.raises(ArtifactError, match=names_file_and(r"NumPart_Total\[1\] = 9, but .* add up to 8", path)):
        read_gadget_snapshot(path)


def test_a_directory_with_two_outputs_is_ambiguous(tmp_path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    write_chunks(tmp_path, "snap_001", pos, vel, ids, [4, 4])
    write_chunks(tmp_path, "snap_002", pos, vel, ids, [4, 4])
    with pytest.raises(ArtifactError, match=r"several outputs \(snap_001\.N\.hdf5, snap_002\.N\.hdf5\)"):
        read_gadget_snapshot(tmp_path)


# ---- Lagrangian grid ids -----------------------------------------------------------------------------------


def test_grid_id_mapping_modes() -> None:
    n = 3
    zero = np.random.default_rng(0).permutation(n**3).astype(np.int64)
    assert lagrangian_grid_ids(zero, "auto")[:2] == (pytest.approx(zero), 3)
    mapped, n_grid, note = lagrangian_grid_ids(zero + 1, "auto")
    assert n_grid == 3 and mapped.tolist() == zero.tolist() and "one-based" in note
    assert lagrangian_grid_ids(zero + 1, "one-based")[1] == 3
    kept, n_grid, note = lagrangian_grid_ids(zero + 1, "none")
    assert n_grid == 0 and kept.tolist() == (zero + 1).tolist()
    repeated = zero.copy()
    repeated[0] = repeated[1]
    assert lagrangian_grid_ids(repeated, "auto")[1] == 0
    with pytest.raises(ValueError, match="repeat"):
        lagrangian_grid_ids(repeated, "zero-based")
    with pytest.raises(ValueError, match="not a cube"):
        lagrangian_grid_ids(np.arange(10), "one-based")
    with pytest.raises(ValueError, match=r"span \[1, 27\]"):
        lagrangian_grid_ids(zero + 1, "zero-based")
    with pytest.raises(ValueError, match="ids_to_grid"):
        lagrangian_grid_ids(zero, "two-based")


def test_grid_ids_numbered_from_any_first_id() -> None:
    """A gas + DM run numbers its dark matter after the gas: ids N+1..2N are the lattice offset by N + 1."""
    zero = np.random.default_rng(1).permutation(27).astype(np.int64)
    mapped, n_grid, note = lagrangian_grid_ids(zero + 28, "auto")
    assert n_grid == 3 and mapped.tolist() == zero.tolist()
    assert note == "grid ids of a 3^3 lattice offset by 28 (ids after 27 ids of another type, as in a gas + DM run)"
    mapped, n_grid, _ = lagrangian_grid_ids(zero + 28, "offset", id_offset=28)
    assert n_grid == 3 and mapped.tolist() == zero.tolist()
    assert lagrangian_grid_ids(zero + 1, "offset", id_offset=1)[2] == lagrangian_grid_ids(zero + 1, "one-based")[2]
    assert "offset" in IDS_TO_GRID_MODES
    _, n_grid, note = lagrangian_grid_ids(zero * 2 + 28, "auto")
    assert n_grid == 0 and "not 27 consecutive ids" in note
    with pytest.raises(ValueError, match=r"ids_to_grid='offset' does not fit: the ids span \[28, 54\], not \[1, 27\]"):
        lagrangian_grid_ids(zero + 28, "offset", id_offset=1)
    with pytest.raises(ValueError, match=r"ids_to_grid='offset' needs id_offset"):
        lagrangian_grid_ids(zero + 28, "offset")
    with pytest.raises(ValueError, match=r"needs id_offset.*got -1"):
        lagrangian_grid_ids(zero + 28, "offset", id_offset=-1)
    with pytest.raises(ValueError, match=r"id_offset is only used with ids_to_grid='offset'"):
        lagrangian_grid_ids(zero + 28, "auto", id_offset=28)


def test_the_reader_maps_ids_numbered_after_another_type(tmp_path: Path, rng) -> None:
    pos, vel, ids = lattice(3, 50_000.0, rng)
    path = write_snapshot(tmp_path / "s.hdf5", pos, vel, ids + 27)  # ids 28..54
    particles = read_gadget_snapshot(path)
    assert particles.n_grid == 3 and particles.ids.tolist() == (ids.astype(np.int64) - 1).tolist()
    assert "offset by 28" in particles.meta["ids"]
    assert read_gadget_snapshot(path, ids_to_grid="offset", id_offset=28).n_grid == 3
    with pytest.raises(ValueError, match="needs id_offset"):
        read_gadget_snapshot(path, ids_to_grid="offset")
    with pytest.raises(ValueError, match="only used with"):
        read_gadget_snapshot(path, id_offset=28)


def test_grid_ids_match_the_particles_lagrangian_cells(tmp_path: Path, rng) -> None:
    """N-GenIC ids (i n + j) n + k + 1 become cosmoseg ids of the cell the particle started in."""
    n, box = 4, 50_000.0
    pos, vel, ids = lattice(n, box, rng)
    particles = read_gadget_snapshot(write_snapshot(tmp_path / "s.hdf5", pos, vel, ids), dtype=torch.float64)
    from cosmoseg.mesh.grid import cell_centers

    centres = cell_centers(particles.ids, n, particles.box.length, dtype=torch.float64)
    assert float((particles.pos - centres).abs().max()) < 0.5 * particles.box.length / n


def test_explicit_grid_mode_that_does_not_fit_is_an_artifact_error(tmp_path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    path = write_snapshot(tmp_path / "s.hdf5", pos, vel, ids)  # one-based
    problem = r"ParticleIDs: ids_to_grid='zero-based' does not fit"
    with pytest.raises(ArtifactError, match=names_file_and(problem, path)):
        read_gadget_snapshot(path, ids_to_grid="zero-based")
    assert read_gadget_snapshot(path, ids_to_grid="none").n_grid == 0


# ---- cosmology -------------------------------------------------------------------------------------------


def test_the_cosmology_argument_fills_what_the_file_lacks(tmp_path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    path = write_snapshot(tmp_path / "s.hdf5", pos, vel, ids)
    given = Cosmology(omega_m=0.3, h=0.7, omega_b=0.045, sigma_8=0.75, n_s=0.95)
    cosmo = read_gadget_snapshot(path, cosmology=given).box.cosmology
    assert cosmo == given
    particles = read_gadget_snapshot(path, cosmology=given)
    assert particles.meta["cosmology_from_argument"] == "omega_b,n_s,sigma_8,w0,wa"
    with pytest.raises(ArtifactError, match=names_file_and(r"Omega0 = 0.3 in the file, but .* omega_m = 0.25", path)):
        read_gadget_snapshot(path, cosmology=Cosmology(omega_m=0.25, h=0.7))


def test_omega_m_may_come_from_the_argument_when_the_file_lacks_it(tmp_path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    path = write_snapshot(
        tmp_path / "s.hdf5", pos, vel, ids, cosmology={}, mass_table=consistent_mass_table(50_000.0, 8, omega_m=0.28)
    )
    with pytest.raises(ArtifactError, match=names_file_and("the file gives no Omega0; pass cosmology=", path)):
        read_gadget_snapshot(path)
    particles = read_gadget_snapshot(path, cosmology=Cosmology(omega_m=0.28, h=0.72))
    assert particles.box.cosmology.omega_m == 0.28 and particles.meta["cosmology_from_file"] == ""


def test_sigma8_and_primordial_index_in_parameters_are_read(tmp_path: Path, rng) -> None:
    """A Gadget-4 run that made its own ICs stores Sigma8 and PrimordialIndex in Parameters."""
    pos, vel, ids = lattice(2, 50_000.0, rng)
    cosmology = {"Omega0": 0.3, "OmegaLambda": 0.7, "HubbleParam": 0.7, "Sigma8": 0.83, "PrimordialIndex": 0.96}
    path = write_snapshot(tmp_path / "s.hdf5", pos, vel, ids, cosmology=cosmology, cosmology_in="Parameters")
    particles = read_gadget_snapshot(path)
    assert (particles.box.cosmology.sigma_8, particles.box.cosmology.n_s) == (0.83, 0.96)
    assert particles.meta["cosmology_from_file"] == "omega_m,h,n_s,sigma_8"
    assert particles.meta["cosmology_defaults"] == "omega_b=0.0486 (TNG, Planck 2015); w0=-1, wa=0 (Planck 2018)"
    given = Cosmology(omega_m=0.3, h=0.7, sigma_8=0.83, n_s=0.96, omega_b=0.04)
    assert read_gadget_snapshot(path, cosmology=given).box.cosmology == given
    problem = r"Sigma8 = 0.83 in the file, but the cosmology argument has sigma_8 = 0.8102"
    with pytest.raises(ArtifactError, match=names_file_and(problem, path)):
        read_gadget_snapshot(path, cosmology=Cosmology(omega_m=0.3, h=0.7, n_s=0.96))
    assert read_gadget_snapshot(path, cosmology=given.clone(sigma_8=0.8305)).box.cosmology.sigma_8 == 0.83  # 0.06%


def test_a_non_flat_cosmology_is_rejected(tmp_path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    path = write_snapshot(
        tmp_path / "s.hdf5", pos, vel, ids, cosmology={"Omega0": 0.3, "OmegaLambda": 0.6, "HubbleParam": 0.7}
    )
    with pytest.raises(ArtifactError, match=names_file_and("Omega0 \\+ OmegaLambda = 0.9, not 1", path)):
        read_gadget_snapshot(path)


# ---- the total mass ---------------------------------------------------------------------------------------


def test_a_wrong_code_mass_unit_is_an_error_naming_both_masses(tmp_path: Path, rng) -> None:
    """Masses in 1e10 Msun/h, but the header says UnitMass_in_g = 1 Msun: N·m is 1e-10 of what the box holds."""
    pos, vel, ids = lattice(2, 50_000.0, rng)
    units = {"UnitLength_in_cm": KPC, "UnitMass_in_g": MSUN, "UnitVelocity_in_cm_per_s": 1e5}
    path = write_snapshot(
        tmp_path / "s.hdf5", pos, vel, ids, units=units, mass_table=consistent_mass_table(50_000.0, 8)
    )
    expected = 0.3 * RHO_CRIT * 50.0**3
    held = re.escape(f"{expected:.6g}")
    problem = (
        rf"PartType1 holds N = 8 particles of 130095 Msun/h, N·m = 1.04076e\+06 Msun/h, but a full periodic "
        rf"box of 50 Mpc/h holds {held} Msun/h of dark matter, Ω_m ρ_crit L³ with Ω_m = 0.3 .*: ratio 1e-10, "
        r"beyond the tolerance of 3%; the likely cause is the code mass unit \(UnitMass_in_g = 1.989e\+33 g, Header\) "
        r"or h \(a power of ten points to UnitMass_in_g\); pass check_mass=False for a zoom run or a sub-volume"
    )
    with pytest.raises(ArtifactError, match=names_file_and(problem, path)):
        read_gadget_snapshot(path)
    particles = read_gadget_snapshot(path, check_mass=False)
    assert particles.mass == pytest.approx(expected * 1e-10 / 8) and "check_mass=False" in particles.meta["mass_check"]


def test_masses_in_msun_instead_of_msun_per_h_point_to_h(tmp_path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    in_msun = consistent_mass_table(50_000.0, 8) / 0.7  # M / (Msun/h) = M / Msun · h: the file forgot the h
    path = write_snapshot(tmp_path / "s.hdf5", pos, vel, ids, mass_table=in_msun)
    with pytest.raises(ArtifactError, match=r"ratio 1.429, .*a ratio of 1/h = 1.429 points to masses in Msun"):
        read_gadget_snapshot(path)


def test_the_dark_matter_of_a_run_with_gas_holds_omega_m_minus_omega_b(tmp_path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    omega_b = 0.05
    cosmology = {"Omega0": 0.3, "OmegaLambda": 0.7, "HubbleParam": 0.7, "OmegaBaryon": omega_b}
    dm = consistent_mass_table(50_000.0, 8, omega_m=0.3 - omega_b)
    path = write_snapshot(tmp_path / "s.hdf5", pos, vel, ids, cosmology=cosmology, mass_table=dm)
    add_type(path, 0, 8, rng, masses=np.full(8, consistent_mass_table(50_000.0, 8, omega_m=omega_b)))
    particles = read_gadget_snapshot(path)
    assert "(Ω_m - Ω_b) ρ_crit L³ with Ω_m = 0.3, Ω_b = 0.05 (the file's OmegaBaryon" in particles.meta["mass_check"]
    # the same dark matter mass in a gravity-only file is 17% short of Ω_m ρ_crit L³
    gravity_only = write_snapshot(tmp_path / "g.hdf5", pos, vel, ids, cosmology=cosmology, mass_table=dm)
    with pytest.raises(ArtifactError, match=r"Ω_m ρ_crit L³ with Ω_m = 0.3 \(no other particle type has mass"):
        read_gadget_snapshot(gravity_only)


def test_an_unknown_omega_b_accepts_the_range_between_the_two(tmp_path: Path, rng) -> None:
    """Gas and stars, but neither OmegaBaryon in the file nor a cosmology argument."""
    pos, vel, ids = lattice(2, 50_000.0, rng)
    for name, omega_dm, fits in (("a", 0.3, True), ("b", 0.25, True), ("c", 0.2, False)):
        path = write_snapshot(
            tmp_path / f"{name}.hdf5", pos, vel, ids, mass_table=consistent_mass_table(50_000.0, 8, omega_m=omega_dm)
        )
        add_type(path, 4, 3, rng, masses=np.full(3, 1e-3))
        if fits:
            assert "between (1 - 0.2) Ω_m and Ω_m" in read_gadget_snapshot(path).meta["mass_check"]
        else:
            with pytest.raises(ArtifactError, match=r"between \(1 - 0.2\) Ω_m and Ω_m .*PartType4 hold the baryons"):
                read_gadget_snapshot(path)
    with_argument = read_gadget_snapshot(tmp_path / "b.hdf5", cosmology=Cosmology(omega_m=0.3, h=0.7, omega_b=0.05))
    assert "Ω_b = 0.05 (the cosmology argument" in with_argument.meta["mass_check"]


def test_types_without_mass_do_not_count_and_low_resolution_types_skip_the_check(tmp_path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    tracers = write_snapshot(tmp_path / "tracers.hdf5", pos, vel, ids)
    add_type(tracers, 3, 20, rng)  # TNG's tracer particles: MassTable 0 and no Masses
    assert read_gadget_snapshot(tracers).meta["mass_check"].startswith("N·m = ")
    zoom = write_snapshot(tmp_path / "zoom.hdf5", pos, vel, ids, mass_table=1.0)  # high-resolution region only
    add_type(zoom, 2, 5, rng, mass_table=64.0)
    note = read_gadget_snapshot(zoom).meta["mass_check"]
    assert note.startswith("not checked: PartType2 (5 particles) also hold mass (a zoom run's low-resolution")


# ---- bad inputs: one ArtifactError naming the file, the dataset and what is wrong ----------------------------


def _bad_box(path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    write_snapshot(path, pos, vel, ids, box=0.0)


def _no_coordinates(path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    write_snapshot(path, pos, vel, ids)
    with h5py.File(path, "a") as f:
        del f["PartType1/Coordinates"]


def _no_velocities(path: Path, rng) -> None:
    pos, _, ids = lattice(2, 50_000.0, rng)
    write_snapshot(path, pos, None, ids)


def _no_ids(path: Path, rng) -> None:
    pos, vel, _ = lattice(2, 50_000.0, rng)
    write_snapshot(path, pos, vel, None)


def _no_masses(path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    write_snapshot(path, pos, vel, ids, mass_table=0.0)


def _unequal_masses(path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    write_snapshot(path, pos, vel, ids, mass_table=0.0, masses=np.linspace(1.0, 2.0, 8))


def _masses_contradict_table(path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    write_snapshot(path, pos, vel, ids, mass_table=1.0, masses=np.full(8, 2.0))


def _count_mismatch(path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    write_snapshot(path, pos, vel, ids)
    with h5py.File(path, "a") as f:
        del f["PartType1/Velocities"]
        f["PartType1/Velocities"] = vel[:5]


def _no_header(path: Path, rng) -> None:
    with h5py.File(path, "w") as f:
        f["PartType1/Coordinates"] = np.zeros((2, 3))


def _no_mass_table(path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    write_snapshot(path, pos, vel, ids)
    with h5py.File(path, "a") as f:
        del f["Header"].attrs["MassTable"]


def _non_cubic_box(path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    write_snapshot(path, pos, vel, ids)
    with h5py.File(path, "a") as f:
        f["Header"].attrs["BoxSize"] = np.array([1.0, 2.0, 3.0])


def _redshift_time_disagree(path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    write_snapshot(path, pos, vel, ids, redshift=1.0, time=0.9)


def _no_redshift(path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    write_snapshot(path, pos, vel, ids, redshift=None, time=None)


def _units_vs_to_cgs(path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    attrs = {"Coordinates": {"a_scaling": 1.0, "h_scaling": -1.0, "length_scaling": 1.0, "to_cgs": MPC}}
    write_snapshot(path, pos, vel, ids, units={"UnitLength_in_cm": KPC}, dataset_attrs=attrs)


def _incomplete_attrs(path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    write_snapshot(path, pos, vel, ids, dataset_attrs={"Velocities": {"a_scaling": 0.5}})


def _wrong_dimension(path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    attrs = {"Coordinates": {"a_scaling": 1.0, "h_scaling": -1.0, "mass_scaling": 1.0, "to_cgs": KPC}}
    write_snapshot(path, pos, vel, ids, dataset_attrs=attrs)


def _header_parameters_disagree(path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    write_snapshot(path, pos, vel, ids, units={"UnitLength_in_cm": KPC})
    with h5py.File(path, "a") as f:
        f.create_group("Parameters").attrs["UnitLength_in_cm"] = MPC


def _bad_unit(path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    write_snapshot(path, pos, vel, ids, units={"UnitMass_in_g": -1.0})


def _positions_outside_box(path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    write_snapshot(path, pos * 1000.0, vel, ids)  # positions in pc/h, box in kpc/h


def _not_comoving(path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    write_snapshot(path, pos, vel, ids)
    with h5py.File(path, "a") as f:
        f.create_group("Parameters").attrs["ComovingIntegrationOn"] = 0


def _float_ids(path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    write_snapshot(path, pos, vel, ids.astype(np.float64))


def _not_hdf5(path: Path, rng) -> None:
    path.write_text("not hdf5")


def _coordinates_h_scaling(path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    attrs = {"Coordinates": {"a_scaling": 1.0, "h_scaling": 5.0, "length_scaling": 1.0, "to_cgs": KPC}}
    write_snapshot(path, pos, vel, ids, dataset_attrs=attrs)


def _masses_h_scaling(path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    masses = np.full(8, consistent_mass_table(50_000.0, 8))
    attrs = {"Masses": {"a_scaling": 0.0, "h_scaling": 0.0, "mass_scaling": 1.0, "to_cgs": 1e10 * MSUN}}
    write_snapshot(path, pos, vel, ids, mass_table=0.0, masses=masses, dataset_attrs=attrs)


def _velocities_a_scaling(path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    attrs = {"Velocities": {"a_scaling": 1.0, "h_scaling": 0.0, "velocity_scaling": 1.0, "to_cgs": 1e5}}
    write_snapshot(path, pos, vel, ids, dataset_attrs=attrs)


def _nan_coordinates(path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    pos[3, 1] = np.nan
    write_snapshot(path, pos, vel, ids)


def _inf_velocities(path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    vel[5, 0] = np.inf
    vel[6, 2] = -np.inf
    write_snapshot(path, pos, vel, ids)


def _nan_masses(path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    masses = np.full(8, consistent_mass_table(50_000.0, 8))
    masses[2] = np.nan
    write_snapshot(path, pos, vel, ids, mass_table=0.0, masses=masses)


def _velocities_overflow(path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    vel[1, 1] = 1e39  # finite in the file (float64), not in float32
    write_snapshot(path, pos, vel, ids)


BAD_SNAPSHOTS = {
    "box size <= 0": (_bad_box, r"Header/BoxSize must be positive, got 0"),
    "Coordinates missing": (_no_coordinates, r"dataset PartType1/Coordinates is missing"),
    "Velocities missing": (_no_velocities, r"dataset PartType1/Velocities is missing"),
    "ParticleIDs missing": (_no_ids, r"dataset PartType1/ParticleIDs is missing"),
    "MassTable 0 without Masses": (_no_masses, r"MassTable\[1\] is 0 \(per-particle masses\), but dataset "),
    "unequal masses": (_unequal_masses, r"PartType1/Masses are not all equal"),
    "Masses contradict MassTable": (_masses_contradict_table, r"Masses span .* but Header/MassTable\[1\] gives"),
    "dataset length vs NumPart_ThisFile": (_count_mismatch, r"Velocities has shape \(5, 3\), but the header"),
    "no Header": (_no_header, r"no Header group: not a Gadget/AREPO HDF5 snapshot"),
    "no MassTable": (_no_mass_table, r"attribute Header/MassTable is missing"),
    "non-cubic box": (_non_cubic_box, r"is not one side of a cubic box"),
    "Redshift and Time disagree": (_redshift_time_disagree, r"Header/Redshift = 1.0 and Header/Time = 0.9 disagree"),
    "no redshift": (_no_redshift, r"neither Header/Redshift nor Header/Time"),
    "to_cgs contradicts header units": (_units_vs_to_cgs, r"Coordinates has to_cgs = 3.08568e\+24, but the code units"),
    "incomplete unit attributes": (_incomplete_attrs, r"Velocities has unit attribute\(s\) \['a_scaling'\] but not"),
    "unit attributes of another dimension": (_wrong_dimension, r"Coordinates has mass_scaling = 1, but"),
    "Header and Parameters units disagree": (_header_parameters_disagree, r"unit attributes disagree within the"),
    "non-positive unit": (_bad_unit, r"UnitMass_in_g must be a positive number"),
    "positions far outside the box": (_positions_outside_box, r"Coordinates spans .* different units"),
    "not a cosmological run": (_not_comoving, r"ComovingIntegrationOn = 0: not a cosmological run"),
    "float ids": (_float_ids, r"ParticleIDs holds float64, not integers"),
    "not an HDF5 file": (_not_hdf5, r"not a readable HDF5 file"),
    "h_scaling that contradicts positions": (
        _coordinates_h_scaling,
        r"dataset PartType1/Coordinates has attribute h_scaling = 5, but comoving positions need h_scaling = -1",
    ),
    "h_scaling that contradicts masses": (
        _masses_h_scaling,
        r"dataset PartType1/Masses has attribute h_scaling = 0, but particle masses need h_scaling = -1",
    ),
    "a_scaling that no velocity convention has": (
        _velocities_a_scaling,
        r"dataset PartType1/Velocities has attribute a_scaling = 1, but velocities .* need a_scaling in "
        r"\{-1, 0, 0.5\}",
    ),
    "NaN in Coordinates": (
        _nan_coordinates,
        r"dataset PartType1/Coordinates has 1 non-finite value\(s\) \(NaN or inf\), the first in row 3",
    ),
    "inf in Velocities": (
        _inf_velocities,
        r"dataset PartType1/Velocities has 2 non-finite value\(s\) \(NaN or inf\), the first in row 5",
    ),
    "NaN in Masses": (_nan_masses, r"dataset PartType1/Masses has 1 non-finite value\(s\) .* the first in row 2"),
    "velocities that overflow float32": (
        _velocities_overflow,
        r"dataset PartType1/Velocities has 1 value\(s\) that overflow float32 once converted to km/s .* row 1",
    ),
}


@pytest.mark.parametrize("case", list(BAD_SNAPSHOTS))
def test_bad_snapshots_give_an_artifact_error_naming_file_and_problem(case: str, tmp_path: Path, rng) -> None:
    make, problem = BAD_SNAPSHOTS[case]
    path = tmp_path / "snap_000.hdf5"
    make(path, rng)
    with pytest.raises(ArtifactError, match=names_file_and(problem, path)):
        read_gadget_snapshot(path)


def test_all_problems_of_a_file_come_in_one_error(tmp_path: Path, rng) -> None:
    pos, vel, ids = lattice(2, 50_000.0, rng)
    mass_table = consistent_mass_table(50_000.0, 8)
    path = write_snapshot(tmp_path / "s.hdf5", pos, vel, ids, box=-1.0, redshift=1.0, time=0.9, mass_table=mass_table)
    with pytest.raises(ArtifactError) as err:
        read_gadget_snapshot(path)
    assert len(err.value.problems) == 2


def test_missing_paths_are_artifact_errors(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no such snapshot file, stem or directory"):
        read_gadget_snapshot(tmp_path / "nothing_here")
    with pytest.raises(ArtifactError, match="no such file"):
        read_gadget_snapshot([tmp_path / "a.hdf5"])
    with pytest.raises(ArtifactError, match=r"holds no \.hdf5 files"):
        read_gadget_snapshot(tmp_path)


# ---- the plugin registry and a real file ---------------------------------------------------------------------


def test_the_reader_is_registered() -> None:
    registry = build_registry(autoload=False)
    assert registry.reader("gadget-hdf5") is read_gadget_snapshot


@pytest.mark.skipif(not os.environ.get("COSMOSEG_REAL_SNAPSHOT"), reason="set COSMOSEG_REAL_SNAPSHOT to a snapshot")
def test_a_real_snapshot_reads() -> None:  # pragma: no cover - only where a real file exists
    particles = read_gadget_snapshot(os.environ["COSMOSEG_REAL_SNAPSHOT"], load_velocities=False)
    assert len(particles) > 0 and 0 < particles.box.length < 1e4
    assert float(particles.pos.min()) >= 0 and float(particles.pos.max()) < particles.box.length
