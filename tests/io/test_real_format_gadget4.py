"""Files written the way Gadget-4 writes them, for the layouts real Gadget-4 runs produce and that the TNG-style
fixtures of test_tng.py / test_gadget.py do not cover.

What Gadget-4 writes (src/io/io.cc, src/io/snap_io.cc, src/fof/fof_io.cc):

- every HDF5 file has three groups: ``Header`` (the counts, ``Time``, ``Redshift``, ``BoxSize``, ``Git_commit``,
  ``Git_date``), ``Parameters`` (every parameter of the parameter file: the cosmology, the code units, and for a
  run that makes its own ICs the NGENIC parameters ``Sigma8``, ``PrimordialIndex``, ``PowerSpectrumType``,
  ``ReNormalizeInputSpectrum``) and ``Config`` (the compile-time options, e.g. ``NTYPES``);
- per-type arrays (``NumPart_*``, ``MassTable``, ``Group*Type``, ``Subhalo*Type``) have NTYPES entries, a
  compile-time option that is often 2 for a DM + gas run;
- a data group (``PartTypeK``, ``Group``, ``Subhalo``) is created only in a chunk that has rows of it; a FoF run
  without Subfind writes ``fof_tab_XXX.N.hdf5`` with no ``Subhalo`` group;
- snapshot datasets carry ``a_scaling``, ``h_scaling``, ``length_scaling``, ``mass_scaling``,
  ``velocity_scaling``, ``to_cgs`` (Coordinates 1, -1, 1, 0, 0, UL; Velocities 0.5, 0, 0, 0, 1, UV; Masses
  0, -1, 0, 1, 0, UM; ParticleIDs none). The public fof_io.cc registers the group-catalog fields without units,
  so real catalogs carry no attributes; the fixtures write the catalogs both ways (``unit_attributes``), the
  attributes then being the fields' physical exponents (GroupVel: a_scaling -1, the mean of the code's
  velocity variable a · v_pec).
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch

from cosmoseg.data import Cosmology
from cosmoseg.errors import ArtifactError
from cosmoseg.io import read_gadget_snapshot, read_group_catalog, read_tng_galaxies
from cosmoseg.sim.fof import find_halos, lagrangian_segmentation

KPC = 3.085678e21
MSUN = 1.989e33
UNIT_MASS = 1.989e43
UNIT_VELOCITY = 1e5
RHO_CRIT = 2.77536627e11
BOX = 50_000.0  # kpc/h
REDSHIFT = 1.0
A = 1.0 / (1.0 + REDSHIFT)

PARAMETERS: dict[str, Any] = {
    "OutputDir": "./output",
    "SnapshotFileBase": "snap",
    "SnapFormat": 3,
    "NumFilesPerSnapshot": 2,
    "ComovingIntegrationOn": 1,
    "TimeBegin": 1.0 / 128.0,
    "TimeMax": 1.0,
    "Omega0": 0.3089,
    "OmegaLambda": 0.6911,
    "OmegaBaryon": 0.0486,
    "HubbleParam": 0.6774,
    "Hubble": 0.1,
    "BoxSize": BOX,
    "UnitLength_in_cm": KPC,
    "UnitMass_in_g": UNIT_MASS,
    "UnitVelocity_in_cm_per_s": UNIT_VELOCITY,
    "GravityConstantInternal": 0.0,
    "DesNumNgb": 64,
    "NSample": 4,
    "GridSize": 4,
    "Seed": 181170,
    "SphereMode": 1,
    "PowerSpectrumType": 2,
    "ReNormalizeInputSpectrum": 1,
    "PowerSpectrumFile": "powerspec",
    "InputSpectrum_UnitLength_in_cm": 3.085678e24,
    "ShapeGamma": 0.21,
    "PrimordialIndex": 1.0,
    "Sigma8": 0.8159,
}
"""The parameters of a DM + gas run in kpc/h that makes its own ICs from a tabulated CAMB spectrum."""

CONFIG = {"NTYPES": "2", "PERIODIC": "", "FOF": "", "NGENIC": "4", "PMGRID": "64", "SELFGRAVITY": ""}


def unit_attrs(a: float, h: float, length: float, mass: float, velocity: float) -> dict[str, float]:
    """The dataset attributes Gadget-4's init_field writes for these exponents (kpc/h, 1e10 Msun/h, km/s)."""
    to_cgs = KPC**length * UNIT_MASS**mass * UNIT_VELOCITY**velocity
    return {
        "a_scaling": a,
        "h_scaling": h,
        "length_scaling": length,
        "mass_scaling": mass,
        "velocity_scaling": velocity,
        "to_cgs": to_cgs,
    }


POSITION = unit_attrs(1, -1, 1, 0, 0)
MASS = unit_attrs(0, -1, 0, 1, 0)
CATALOG_UNITS = {
    "GroupPos": POSITION,
    "GroupVel": unit_attrs(-1, 0, 0, 0, 1),
    "GroupMass": MASS,
    "GroupMassType": MASS,
    "Group_M_Crit200": MASS,
    "Group_R_Crit200": POSITION,
    "SubhaloPos": POSITION,
    "SubhaloCM": POSITION,
    "SubhaloVel": unit_attrs(0, 0, 0, 0, 1),
    "SubhaloVmax": unit_attrs(0, 0, 0, 0, 1),
    "SubhaloVelDisp": unit_attrs(0, 0, 0, 0, 1),
    "SubhaloMass": MASS,
    "SubhaloMassType": MASS,
    "SubhaloHalfmassRad": POSITION,
    "SubhaloHalfmassRadType": POSITION,
    "SubhaloVmaxRad": POSITION,
}
SNAPSHOT_UNITS = {
    "Coordinates": POSITION,
    "Velocities": unit_attrs(0.5, 0, 0, 0, 1),
    "Masses": MASS,
    "InternalEnergy": unit_attrs(0, 0, 0, 0, 2),
    "Density": unit_attrs(-3, 2, -3, 1, 0),
}


def write_common(f: h5py.File, parameters: dict[str, Any]) -> None:
    """The Parameters and Config groups every Gadget-4 HDF5 file has."""
    params = f.create_group("Parameters")
    for key, value in parameters.items():
        params.attrs[key] = value
    config = f.create_group("Config")
    for key, value in CONFIG.items():
        config.attrs[key] = value


def write_catalog(
    directory: Path,
    stem: str,
    groups: dict[str, np.ndarray],
    subhalos: dict[str, np.ndarray] | None,
    group_splits: tuple[int, ...],
    subhalo_splits: tuple[int, ...],
    *,
    unit_attributes: bool,
    parameters: dict[str, Any] | None = None,
) -> list[Path]:
    """Chunks ``stem.N.hdf5`` of a Gadget-4 group catalog (``subhalos`` None: FoF only, no Subhalo group)."""
    files = []
    g_edges = np.cumsum([0, *group_splits])
    s_edges = np.cumsum([0, *subhalo_splits])
    for i in range(len(group_splits)):
        path = directory / f"{stem}.{i}.hdf5"
        files.append(path)
        g = slice(g_edges[i], g_edges[i + 1])
        s = slice(s_edges[i], s_edges[i + 1])
        n_groups, n_subs = g.stop - g.start, s.stop - s.start
        with h5py.File(path, "w") as f:
            header = f.create_group("Header")
            n_ids = int(groups["GroupLen"][g].sum())
            for key, value in (
                ("Ngroups_ThisFile", n_groups),
                ("Nsubhalos_ThisFile", n_subs),
                ("Nids_ThisFile", n_ids),
                ("Ngroups_Total", g_edges[-1]),
                ("Nsubhalos_Total", s_edges[-1]),
                ("Nids_Total", int(groups["GroupLen"].sum())),
            ):
                header.attrs.create(key, value, dtype=np.uint64)
            header.attrs.create("NumFiles", len(group_splits), dtype=np.int32)
            header.attrs["Time"] = A
            header.attrs["Redshift"] = REDSHIFT
            header.attrs["BoxSize"] = BOX
            header.attrs["Git_commit"] = "8d8e6ed2b4dd5d82ef9b6f1ed1a1a1f3ee5d5c2a"
            header.attrs["Git_date"] = "Mon Mar 8 2021"
            write_common(f, PARAMETERS if parameters is None else parameters)
            for name, rows, data in (("Group", g, groups), ("Subhalo", s, subhalos)):
                if data is None or rows.stop == rows.start:
                    continue  # Gadget-4 creates a data group only where it has rows
                group = f.create_group(name)
                for key, values in data.items():
                    group[key] = values[rows]
                    if unit_attributes and key in CATALOG_UNITS:
                        group[key].attrs.update(CATALOG_UNITS[key])
    return files


def fof_groups(rng: np.random.Generator, n: int = 5, ntypes: int = 2) -> dict[str, np.ndarray]:
    """FoF group datasets as Gadget-4 writes them (float32 values, NTYPES columns per type)."""
    len_type = rng.integers(32, 500, (n, ntypes)).astype(np.int32)
    len_type[:, 0] //= 8  # fewer gas particles than DM
    mass_type = (len_type * np.array([0.002, 0.01, *[0.0] * (ntypes - 2)])).astype(np.float32)
    offsets = np.concatenate([np.zeros((1, ntypes), dtype=np.int64), np.cumsum(len_type, axis=0)[:-1]])
    return {
        "GroupLen": len_type.sum(axis=1).astype(np.int32),
        "GroupMass": mass_type.sum(axis=1).astype(np.float32),
        "GroupPos": rng.uniform(0, BOX, (n, 3)).astype(np.float32),
        "GroupVel": rng.normal(0, 300, (n, 3)).astype(np.float32),
        "GroupLenType": len_type,
        "GroupOffsetType": offsets.astype(np.int64),
        "GroupMassType": mass_type,
        "GroupAscale": np.full(n, A, dtype=np.float32),
    }


def read_dataset(path: Path, name: str) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f[name][()]


def names_file_and(problem: str, path: Path) -> str:
    return rf"(?s){re.escape(str(path))}.*{problem}"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(2021)


# ---- group catalogs with NTYPES = 2 ------------------------------------------------------------------------


@pytest.mark.parametrize("unit_attributes", [False, True], ids=["as-public-gadget4", "with-unit-attributes"])
def test_a_gadget4_fof_only_catalog_with_two_particle_types_reads(
    tmp_path: Path, rng: np.random.Generator, unit_attributes: bool
) -> None:
    """fof_tab_005.N.hdf5 of a DM + gas run: GroupMassType and GroupLenType of shape (N, 2), no Subhalo group.
    (Before: "GroupMassType has shape (3, 2), but the header's row count implies (3, 6)".)"""
    groups = fof_groups(rng)
    files = write_catalog(tmp_path, "fof_tab_005", groups, None, (3, 2), (0, 0), unit_attributes=unit_attributes)
    catalog = read_group_catalog(files[0], dtype=torch.float64)
    assert len(catalog) == 5 and catalog.box.length == pytest.approx(50.0)
    pos = groups["GroupPos"].astype(np.float64)
    np.testing.assert_allclose(catalog["pos"].numpy(), pos / 1000.0, rtol=1e-12)
    np.testing.assert_allclose(catalog["vel"].numpy(), groups["GroupVel"].astype(np.float64) / A, rtol=1e-12)
    np.testing.assert_allclose(catalog["mass"].numpy(), groups["GroupMass"].astype(np.float64) * 1e10, rtol=1e-12)
    assert tuple(catalog["mass_type"].shape) == (5, 2)
    np.testing.assert_allclose(catalog["mass_type"].numpy(), groups["GroupMassType"].astype(np.float64) * 1e10)
    assert catalog["n_part_type"].tolist() == groups["GroupLenType"].tolist()
    assert catalog["n_part"].tolist() == groups["GroupLen"].tolist()
    assert catalog.meta["n_types"] == 2 and catalog.meta["units_from"] == "Parameters"
    source = "a_scaling=-1" if unit_attributes else "GroupVel / a"
    assert source in catalog.meta["vel_conversion"]
    # no Subfind: an empty subhalo catalog, and no galaxies
    subhalos = read_group_catalog(files, kind="subhalos")
    assert len(subhalos) == 0
    with pytest.raises(ArtifactError, match="no Subhalo/SubhaloMassType"):
        read_tng_galaxies(files)


def test_a_gadget4_subfind_catalog_with_two_particle_types_has_no_stars(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """fof_subhalo_tab_005.N.hdf5 with NTYPES = 2: the *Type arrays keep their 2 columns; there is no stellar type 4,
    so the catalog has no galaxy columns (as a gravity-only catalog) instead of an IndexError."""
    groups = fof_groups(rng, n=4)
    groups["GroupNsubs"] = np.array([2, 1, 1, 0], dtype=np.int32)
    groups["GroupFirstSub"] = np.array([0, 2, 3, -1], dtype=np.int64)
    groups["Group_M_Crit200"] = (groups["GroupMass"] * 0.8).astype(np.float32)
    groups["Group_R_Crit200"] = rng.uniform(100, 400, 4).astype(np.float32)
    n = 4
    mass_type = rng.uniform(0.01, 1.0, (n, 2)).astype(np.float32)
    subhalos = {
        "SubhaloGroupNr": np.array([0, 0, 1, 2], dtype=np.int64),
        "SubhaloRankInGr": np.array([0, 1, 0, 0], dtype=np.int32),
        "SubhaloLen": rng.integers(20, 300, n).astype(np.int32),
        "SubhaloMass": mass_type.sum(axis=1),
        "SubhaloPos": rng.uniform(0, BOX, (n, 3)).astype(np.float32),
        "SubhaloVel": rng.normal(0, 200, (n, 3)).astype(np.float32),
        "SubhaloLenType": rng.integers(1, 100, (n, 2)).astype(np.int32),
        "SubhaloOffsetType": np.zeros((n, 2), dtype=np.int64),
        "SubhaloMassType": mass_type,
        "SubhaloCM": rng.uniform(0, BOX, (n, 3)).astype(np.float32),
        "SubhaloSpin": rng.normal(0, 50, (n, 3)).astype(np.float32),
        "SubhaloVelDisp": rng.uniform(20, 200, n).astype(np.float32),
        "SubhaloVmax": rng.uniform(50, 300, n).astype(np.float32),
        "SubhaloVmaxRad": rng.uniform(5, 50, n).astype(np.float32),
        "SubhaloHalfmassRad": rng.uniform(5, 50, n).astype(np.float32),
        "SubhaloHalfmassRadType": rng.uniform(5, 50, (n, 2)).astype(np.float32),
        "SubhaloIDMostbound": rng.integers(1, 128, n).astype(np.uint64),
        "SubhaloParentRank": np.zeros(n, dtype=np.int32),
    }
    files = write_catalog(tmp_path, "fof_subhalo_tab_005", groups, subhalos, (2, 2), (4, 0), unit_attributes=True)
    with h5py.File(files[1]) as f:
        assert "Subhalo" not in f  # the second chunk has groups but no subhaloes
    subs = read_group_catalog(files[0], kind="subhalos", dtype=torch.float64)
    assert len(subs) == 4 and tuple(subs["mass_type"].shape) == (4, 2) and subs.meta["n_types"] == 2
    np.testing.assert_allclose(subs["mass_type"].numpy(), mass_type.astype(np.float64) * 1e10, rtol=1e-12)
    assert subs["host"].tolist() == [0, 0, 1, 2] and subs["is_central"].tolist() == [True, False, True, True]
    assert "log_mstar" not in subs and "NTYPES = 2" in subs.meta["galaxy_columns"]
    with pytest.raises(ArtifactError, match=names_file_and(r"no stellar type 4: no stars", files[0])):
        read_tng_galaxies(files)


# ---- sigma_8 and n_s in Parameters ---------------------------------------------------------------------------


def test_sigma8_and_primordial_index_of_an_analytic_spectrum_are_the_runs(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """With NGENIC's Eisenstein-Hu spectrum (PowerSpectrumType 1), Sigma8 is σ_8 and PrimordialIndex is n_s."""
    parameters = {**PARAMETERS, "PowerSpectrumType": 1, "PrimordialIndex": 0.9667, "Sigma8": 0.8159}
    files = write_catalog(
        tmp_path, "fof_tab_005", fof_groups(rng), None, (3, 2), (0, 0), unit_attributes=False, parameters=parameters
    )
    catalog = read_group_catalog(files)
    cosmo = catalog.box.cosmology
    assert (cosmo.sigma_8, cosmo.n_s) == (0.8159, 0.9667)
    assert catalog.meta["cosmology_from_file"] == "omega_m,h,omega_b,n_s,sigma_8"
    assert "sigma_8" not in catalog.meta["cosmology_defaults"] and "cosmology_ignored" not in catalog.meta
    matching = Cosmology(omega_m=0.3089, h=0.6774, omega_b=0.0486, sigma_8=0.8159, n_s=0.9667)
    assert read_group_catalog(files, cosmology=matching).box.cosmology == matching
    with pytest.raises(
        ArtifactError, match=r"Sigma8 = 0.8159 in the file, but the cosmology argument has sigma_8 = 0.8"
    ):
        read_group_catalog(files, cosmology=matching.clone(sigma_8=0.8))
    with pytest.raises(ArtifactError, match=r"PrimordialIndex = 0.9667 in the file, but .* n_s = 0.95"):
        read_group_catalog(files, cosmology=matching.clone(n_s=0.95))


def test_primordial_index_of_a_tabulated_spectrum_is_not_n_s(tmp_path: Path, rng: np.random.Generator) -> None:
    """PowerSpectrumType 2 (a CAMB table, which holds its own tilt): PrimordialIndex = 1 is not n_s; Sigma8
    normalised the table (ReNormalizeInputSpectrum 1), unless ReNormalizeInputSpectrum is 0."""
    files = write_catalog(tmp_path, "fof_tab_005", fof_groups(rng), None, (3, 2), (0, 0), unit_attributes=False)
    catalog = read_group_catalog(files)
    assert catalog.box.cosmology.sigma_8 == 0.8159 and catalog.box.cosmology.n_s == Cosmology().n_s
    assert catalog.meta["cosmology_from_file"] == "omega_m,h,omega_b,sigma_8"
    assert "PrimordialIndex = 1 (it tilts the tabulated input spectrum" in catalog.meta["cosmology_ignored"]
    given = Cosmology(omega_m=0.3089, h=0.6774, sigma_8=0.8159, n_s=0.9667)
    assert read_group_catalog(files, cosmology=given).box.cosmology.n_s == 0.9667  # no contradiction
    (tmp_path / "raw").mkdir()
    raw_table = {**PARAMETERS, "ReNormalizeInputSpectrum": 0}
    files = write_catalog(
        tmp_path / "raw", "fof_tab_005", fof_groups(rng), None, (5,), (0,), unit_attributes=False, parameters=raw_table
    )
    catalog = read_group_catalog(files)
    assert (
        catalog.box.cosmology.sigma_8 == Cosmology().sigma_8 and "Sigma8 = 0.8159" in catalog.meta["cosmology_ignored"]
    )


# ---- a DM + gas snapshot -------------------------------------------------------------------------------------


def write_snapshot(
    directory: Path,
    stem: str,
    n: int,
    rng: np.random.Generator,
    *,
    splits: tuple[int, ...] = (2, 1),
    parameters: dict[str, Any] | None = None,
    collapse: bool = False,
) -> tuple[list[Path], np.ndarray]:
    """Chunks of a Gadget-4 snapshot of a DM + gas run with NTYPES = 2 made by NGENIC: n^3 gas particles (type 0,
    ids 1..N, a Masses dataset as MassTable[0] is 0) and n^3 dark-matter particles (type 1, ids N+1..2N,
    MassTable[1] > 0), each on an n^3 lattice. Masses: Ω_b and Ω_m - Ω_b of ρ_crit L³.

    collapse: the dark matter of the first 2^3 lattice cells sits in one clump (a halo of 8 particles).
    Returns the files and the dark matter's flat lattice index, in file order.
    """
    params = PARAMETERS if parameters is None else parameters
    big_n = n**3
    critical = RHO_CRIT * (BOX / 1000.0) ** 3 * MSUN / UNIT_MASS  # code mass units
    m_dm = (params["Omega0"] - params["OmegaBaryon"]) * critical / big_n
    m_gas = params["OmegaBaryon"] * critical / big_n
    ijk = np.stack(np.meshgrid(*(np.arange(n),) * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    flat = (ijk[:, 0] * n + ijk[:, 1]) * n + ijk[:, 2]
    dm_pos = (ijk + 0.5 + rng.uniform(-0.1, 0.1, ijk.shape)) * BOX / n
    if collapse:
        block = (ijk < 2).all(axis=1)
        dm_pos[block] = dm_pos[block].mean(axis=0) + rng.normal(0.0, 1.0, (int(block.sum()), 3))
    gas_pos = np.mod(dm_pos + 0.5 * BOX / n, BOX)  # NGENIC puts the gas half a cell away
    parts = {
        0: {
            "Coordinates": gas_pos,
            "Velocities": rng.normal(0, 200, (big_n, 3)),
            "ParticleIDs": (flat + 1).astype(np.uint64),
            "Masses": np.full(big_n, m_gas),
            "InternalEnergy": rng.uniform(10, 1000, big_n),
            "Density": rng.uniform(1e-9, 1e-7, big_n),
        },
        1: {
            "Coordinates": dm_pos,
            "Velocities": rng.normal(0, 200, (big_n, 3)),
            "ParticleIDs": (flat + big_n + 1).astype(np.uint64),
        },
    }
    order = rng.permutation(big_n)
    edges = np.cumsum([0] + [big_n * k // sum(splits) for k in splits])
    edges[-1] = big_n
    files = []
    for i, (lo, hi) in enumerate(itertools.pairwise(edges)):
        rows = order[lo:hi]
        path = directory / f"{stem}.{i}.hdf5"
        files.append(path)
        with h5py.File(path, "w") as f:
            header = f.create_group("Header")
            header.attrs.create("NumPart_ThisFile", [len(rows), len(rows)], dtype=np.uint64)
            header.attrs.create("NumPart_Total", [big_n, big_n], dtype=np.uint64)
            header.attrs.create("MassTable", [0.0, m_dm], dtype=np.float64)
            header.attrs["Time"] = A
            header.attrs["Redshift"] = REDSHIFT
            header.attrs["BoxSize"] = BOX
            header.attrs.create("NumFilesPerSnapshot", len(splits), dtype=np.int32)
            header.attrs["Git_commit"] = "8d8e6ed2b4dd5d82ef9b6f1ed1a1a1f3ee5d5c2a"
            header.attrs["Git_date"] = "Mon Mar 8 2021"
            write_common(f, params)
            for part_type, data in parts.items():
                group = f.create_group(f"PartType{part_type}")
                for key, values in data.items():
                    dtype = np.uint64 if key == "ParticleIDs" else np.float32
                    group.create_dataset(key, data=values[rows].astype(dtype))
                    if key in SNAPSHOT_UNITS:
                        group[key].attrs.update(SNAPSHOT_UNITS[key])
    return files, flat[order]


def test_the_dark_matter_of_a_gas_plus_dm_run_maps_to_its_lagrangian_grid(tmp_path: Path, rng) -> None:
    """DM ids N+1..2N (after the gas ids 1..N) are the lattice's, offset by N + 1: n_grid = n, and the Lagrangian
    segmentation runs on the particles. (Before: ids kept, n_grid = 0, lagrangian_segmentation refused them.)"""
    n = 4
    files, flat = write_snapshot(tmp_path, "snap_005", n, rng, collapse=True)
    particles = read_gadget_snapshot(files[0], dtype=torch.float64)
    assert len(particles) == n**3 and particles.n_grid == n
    assert particles.ids.tolist() == flat.tolist()
    assert particles.meta["ids"] == (
        "grid ids of a 4^3 lattice offset by 65 (ids after 64 ids of another type, as in a gas + DM run)"
    )
    explicit = read_gadget_snapshot(files, ids_to_grid="offset", id_offset=n**3 + 1)
    assert explicit.n_grid == n and torch.equal(explicit.ids, particles.ids)
    with pytest.raises(
        ArtifactError, match=r"ids_to_grid='offset' does not fit: the ids span \[65, 128\], not \[1, 64\]"
    ):
        read_gadget_snapshot(files, ids_to_grid="offset", id_offset=1)
    # the whole chain: FoF haloes on the particles, painted back onto their Lagrangian cells
    _, labels = find_halos(particles, min_particles=8, env_scales=())
    segmentation = lagrangian_segmentation(labels, particles, min_particles=8)
    expected = torch.zeros(n, n, n, dtype=torch.int64)
    expected[:2, :2, :2] = 1  # the collapsed block of 2^3 cells
    assert torch.equal(segmentation.labels, expected)
    # the mass: PartType0 (gas, with Masses) holds the baryons, so the dark matter is (Ω_m - Ω_b) ρ_crit L³
    assert particles.mass == pytest.approx((0.3089 - 0.0486) * RHO_CRIT * 50.0**3 / n**3, rel=1e-6)
    assert "(Ω_m - Ω_b) ρ_crit L³" in particles.meta["mass_check"] and "PartType0" in particles.meta["mass_check"]
    stored = np.concatenate([read_dataset(file, "PartType1/Velocities") for file in files]).astype(np.float64)
    np.testing.assert_allclose(particles.vel.numpy(), stored * math.sqrt(A), rtol=1e-12)  # a_scaling 0.5
    assert particles.box.cosmology.sigma_8 == 0.8159 and "PrimordialIndex" in particles.meta["cosmology_ignored"]


def test_the_gas_of_the_same_run_has_one_based_grid_ids_and_is_not_mass_checked(tmp_path: Path, rng) -> None:
    files, flat = write_snapshot(tmp_path, "snap_005", 3, rng)
    gas = read_gadget_snapshot(files, part_type=0)
    assert gas.n_grid == 3 and gas.ids.tolist() == flat.tolist()  # gas ids 1..N, in the same lattice order
    assert gas.mass == pytest.approx(0.0486 * RHO_CRIT * 50.0**3 / 27, rel=1e-6)
    assert gas.meta["mass_check"] == "not checked (part_type 0: only the dark matter, PartType1, is checked)"


def test_a_wrong_code_mass_unit_is_caught_by_the_total_mass(tmp_path: Path, rng) -> None:
    """The same run with UnitMass_in_g saying Msun/h (1.989e33) while the masses are in 1e10 Msun/h."""
    wrong = {**PARAMETERS, "UnitMass_in_g": MSUN}
    files, _ = write_snapshot(tmp_path, "snap_005", 3, rng, parameters=wrong)
    for file in files:  # the dataset attributes follow the (wrong) code unit, as Gadget-4 would write them
        with h5py.File(file, "a") as f:
            f["PartType0/Masses"].attrs["to_cgs"] = MSUN
    problem = (
        r"PartType1 holds N = 27 particles of .* Msun/h, N·m = .* Msun/h, but a full periodic box of 50 Mpc/h "
        r"holds .* Msun/h of dark matter, \(Ω_m - Ω_b\) ρ_crit L³ .*: ratio 1e-10, beyond the tolerance of 3%; "
        r"the likely cause is the code mass unit \(UnitMass_in_g = 1.989e\+33 g, Parameters\) or h \(a power of ten "
        r"points to UnitMass_in_g\); pass check_mass=False for a zoom run or a sub-volume"
    )
    with pytest.raises(ArtifactError, match=names_file_and(problem, files[0])):
        read_gadget_snapshot(files)
    particles = read_gadget_snapshot(files, check_mass=False)
    assert particles.meta["mass_check"] == "not checked (check_mass=False)"
