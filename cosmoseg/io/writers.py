"""Writers of other simulation codes' formats, laid out the way those codes write them: to hand a cosmoseg run to
tools that read Gadget-4 or TNG outputs, and to test the readers on files like the real ones.

- :func:`write_gadget4_snapshot`: a Gadget-4 HDF5 snapshot (``snapdir_XXX/snap_XXX.N.hdf5``) of cosmoseg
  ``Particles``: ``Header``, ``Parameters`` and ``Config`` groups, NTYPES entries per header array (often 2:
  gas and dark matter), kpc/h code units, single-precision coordinates, velocities u = v_pec / sqrt(a), one-based
  N-GenIC ids, and the dataset unit attributes Gadget-4 writes (``a_scaling``, ``h_scaling``, ``length_scaling``,
  ``mass_scaling``, ``velocity_scaling``, ``to_cgs``). With ``gas=True`` a DM + gas run: gas ids 1..N first, dark
  matter N+1..2N, masses split by Ω_b / Ω_m.
- :func:`write_gadget4_groups`: the FoF group catalog Gadget-4 writes next to it (``fof_tab_XXX.N.hdf5``): no
  unit attributes on the datasets (Gadget-4 writes none for group catalogs), ``*Type`` arrays of shape
  (N, NTYPES), ``GroupVel`` as the mass-weighted mean of the code velocity variable (a · v_pec).
- :func:`write_example_files`: tiny files of each kind (and a .npy cube) in one folder, the inputs of the ``io.*``
  stages' contract runs.
- :func:`write_tng_catalog`: an IllustrisTNG-style FoF + Subfind catalog of a hydrodynamical run
  (``groups_XXX/fof_subhalo_tab_XXX.N.hdf5``): groups, and subhaloes with stars whose stellar masses, star
  formation rates, photometry, sizes and metallicities are those of a cosmoseg ``GalaxyCatalog``.

The layouts follow Gadget-4's ``src/io/snap_io.cc`` and ``src/fof/fof_io.cc`` and the TNG data specification; the
readers in :mod:`cosmoseg.io` are tested against them, never the other way round.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import h5py
import numpy as np
import torch

from cosmoseg.data import Box, Cosmology, GalaxyCatalog, HaloCatalog, Particles

__all__ = ["write_example_files", "write_gadget4_groups", "write_gadget4_snapshot", "write_tng_catalog"]

KPC_CM = 3.085678e21
MSUN_G = 1.989e33
KM_CM = 1e5
Z_SUN = 0.0127
"""Solar metallicity of the TNG documentation."""

_UNITS = {"UnitLength_in_cm": KPC_CM, "UnitMass_in_g": 1e10 * MSUN_G, "UnitVelocity_in_cm_per_s": KM_CM}


def _split(n: int, n_files: int) -> list[slice]:
    """Contiguous pieces of ``n`` rows for ``n_files`` files (as Gadget's writers spread them; some may be empty)."""
    edges = np.linspace(0, n, n_files + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def _file_names(directory: Path, stem: str, n_files: int) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    if n_files == 1:
        return [directory / f"{stem}.hdf5"]
    return [directory / f"{stem}.{i}.hdf5" for i in range(n_files)]


def _parameters(group: h5py.Group, box: Box, length_kpc: float, n_files: int, ngenic: dict[str, float]) -> None:
    cosmo = box.cosmology
    a = 1.0 / (1.0 + box.redshift)
    values: dict[str, float | int | str] = {
        "Omega0": cosmo.omega_m,
        "OmegaLambda": 1.0 - cosmo.omega_m,
        "OmegaBaryon": cosmo.omega_b,
        "HubbleParam": cosmo.h,
        "Hubble": 0.1,
        "BoxSize": length_kpc,
        "ComovingIntegrationOn": 1,
        "TimeBegin": 1.0 / 128.0,
        "TimeMax": a,
        "NumFilesPerSnapshot": n_files,
        "OutputDir": "./output",
        "SnapshotFileBase": "snap",
        **_UNITS,
        **ngenic,
    }
    for key, value in values.items():
        group.attrs[key] = value


def _config(group: h5py.Group, n_types: int) -> None:
    for key, value in {"NTYPES": n_types, "PERIODIC": 1, "SELFGRAVITY": 1, "FOF": 1, "NGENIC": 128}.items():
        group.attrs[key] = np.int32(value)


def _unit_attrs(dataset: h5py.Dataset, a: float, h: float, length: float, mass: float, velocity: float) -> None:
    """The attributes Gadget-4's ``write_dataset_attributes`` puts on a dataset with units."""
    to_cgs = KPC_CM**length * (1e10 * MSUN_G) ** mass * KM_CM**velocity
    for key, value in (
        ("a_scaling", a),
        ("h_scaling", h),
        ("length_scaling", length),
        ("mass_scaling", mass),
        ("velocity_scaling", velocity),
        ("to_cgs", to_cgs),
    ):
        dataset.attrs[key] = np.float64(value)


def write_gadget4_snapshot(
    particles: Particles,
    directory: str | Path,
    *,
    snapshot: int = 5,
    n_files: int = 2,
    n_types: int = 2,
    gas: bool = False,
    ngenic: bool = True,
) -> list[Path]:
    """Write ``particles`` as a Gadget-4 snapshot ``directory/snap_XXX[.N].hdf5``; returns the files.

    particles: dark-matter particles (pos comoving Mpc/h, vel peculiar km/s); their ``ids`` (0-based grid ids when
        ``n_grid`` > 0) become one-based ParticleIDs. The mass of a particle is taken from the box's cosmology
        (Ω_m ρ_crit L³ / N, or (Ω_m − Ω_b) ... with gas), as an N-GenIC run has it.
    n_files: chunks (``NumFilesPerSnapshot``); particles are spread over them in order.
    n_types: NTYPES of the build (the length of every per-type header array).
    gas: a DM + gas run: type 0 holds N gas particles at the DM positions shifted by half a cell (ids 1..N), type 1
        the dark matter (ids N+1..2N).
    ngenic: store ``Sigma8`` and ``PrimordialIndex`` in ``Parameters``, as a run that made its own ICs does.
    """
    directory = Path(directory)
    box, cosmo = particles.box, particles.box.cosmology
    a = 1.0 / (1.0 + box.redshift)
    n = len(particles)
    pos = particles.pos.detach().cpu().double().numpy()
    vel = particles.vel.detach().cpu().double().numpy()
    ids = particles.ids.detach().cpu().numpy().astype(np.int64) + 1
    total = cosmo.mean_matter_density * box.length**3  # Msun/h
    table = np.zeros(n_types)
    fraction_dm = 1.0 - cosmo.omega_b / cosmo.omega_m if gas else 1.0
    table[1] = total * fraction_dm / n / 1e10
    populated = [1]
    if gas:
        table[0] = total * (1.0 - fraction_dm) / n / 1e10
        populated = [0, 1]
    spacing = box.length / max(round(n ** (1.0 / 3.0)), 1)
    extra = {"Sigma8": cosmo.sigma_8, "PrimordialIndex": cosmo.n_s, "NSample": 0, "Seed": 0} if ngenic else {}
    files = _file_names(directory, f"snap_{snapshot:03d}", n_files)
    pieces = _split(n, n_files)
    for file, part in zip(files, pieces, strict=True):
        count = part.stop - part.start
        with h5py.File(file, "w") as f:
            header = f.create_group("Header")
            this = np.zeros(n_types, dtype=np.uint64)
            totals = np.zeros(n_types, dtype=np.uint64)
            for t in populated:
                this[t], totals[t] = count, n
            header.attrs["NumPart_ThisFile"] = this
            header.attrs["NumPart_Total"] = totals
            header.attrs["MassTable"] = table
            header.attrs["Time"] = a
            header.attrs["Redshift"] = box.redshift
            header.attrs["BoxSize"] = box.length * 1000.0
            header.attrs["NumFilesPerSnapshot"] = np.int32(n_files)
            header.attrs["Git_commit"] = "cosmoseg-testing"
            header.attrs["Git_date"] = "2026"
            _parameters(f.create_group("Parameters"), box, box.length * 1000.0, n_files, extra)
            _config(f.create_group("Config"), n_types)
            for t in populated:
                group = f.create_group(f"PartType{t}")
                shift = 0.5 * spacing if t == 0 else 0.0
                coords = np.mod(pos[part] + shift, box.length) * 1000.0
                dset = group.create_dataset("Coordinates", data=coords.astype(np.float32))
                _unit_attrs(dset, 1.0, -1.0, 1.0, 0.0, 0.0)
                dset = group.create_dataset("Velocities", data=(vel[part] / math.sqrt(a)).astype(np.float32))
                _unit_attrs(dset, 0.5, 0.0, 0.0, 0.0, 1.0)
                offset = n if (gas and t == 1) else 0
                group.create_dataset("ParticleIDs", data=(ids[part] + offset).astype(np.uint32))
                if t == 0:
                    group.create_dataset("InternalEnergy", data=np.full(count, 10.0, dtype=np.float32))
                    group.create_dataset("Density", data=np.ones(count, dtype=np.float32))
    return files


def write_gadget4_groups(
    halos: HaloCatalog,
    directory: str | Path,
    *,
    snapshot: int = 5,
    n_files: int = 2,
    n_types: int = 2,
) -> list[Path]:
    """Write ``halos`` (``pos``, ``vel``, ``mass``, ``n_part``) as the FoF catalog of a Gadget-4 dark-matter run,
    ``directory/fof_tab_XXX[.N].hdf5``; returns the files.

    The groups are ordered by decreasing length (as Gadget-4 orders them); ``GroupMassType`` and ``GroupLenType``
    have NTYPES = ``n_types`` columns with everything in type 1, ``GroupOffsetType`` the cumulative lengths.
    """
    directory = Path(directory)
    box = halos.box
    a = 1.0 / (1.0 + box.redshift)
    order = np.argsort(-halos["n_part"].cpu().numpy(), kind="stable")
    n_part = halos["n_part"].cpu().numpy()[order].astype(np.int64)
    mass = halos["mass"].cpu().double().numpy()[order] / 1e10
    pos = halos["pos"].cpu().double().numpy()[order] * 1000.0
    vel = halos["vel"].cpu().double().numpy()[order] * a if "vel" in halos else np.zeros((len(order), 3))
    n = len(order)
    len_type = np.zeros((n, n_types), dtype=np.int32)
    len_type[:, 1] = n_part
    mass_type = np.zeros((n, n_types))
    mass_type[:, 1] = mass
    offsets = np.zeros((n, n_types), dtype=np.int64)
    offsets[1:, 1] = np.cumsum(n_part)[:-1]
    files = _file_names(directory, f"fof_tab_{snapshot:03d}", n_files)
    for file, part in zip(files, _split(n, n_files), strict=True):
        count = part.stop - part.start
        with h5py.File(file, "w") as f:
            header = f.create_group("Header")
            for key, value in (
                ("Ngroups_ThisFile", count),
                ("Nsubhalos_ThisFile", 0),
                ("Nids_ThisFile", int(n_part[part].sum())),
                ("Ngroups_Total", n),
                ("Nsubhalos_Total", 0),
                ("Nids_Total", int(n_part.sum())),
            ):
                header.attrs[key] = np.uint64(value)
            header.attrs["NumFiles"] = np.int32(n_files)
            header.attrs["Time"] = a
            header.attrs["Redshift"] = box.redshift
            header.attrs["BoxSize"] = box.length * 1000.0
            header.attrs["Git_commit"] = "cosmoseg-testing"
            header.attrs["Git_date"] = "2026"
            _parameters(f.create_group("Parameters"), box, box.length * 1000.0, n_files, {})
            _config(f.create_group("Config"), n_types)
            group = f.create_group("Group")
            group.create_dataset("GroupLen", data=n_part[part].astype(np.int32))
            group.create_dataset("GroupMass", data=mass[part].astype(np.float32))
            group.create_dataset("GroupPos", data=pos[part].astype(np.float32))
            group.create_dataset("GroupVel", data=vel[part].astype(np.float32))
            group.create_dataset("GroupLenType", data=len_type[part])
            group.create_dataset("GroupOffsetType", data=offsets[part])
            group.create_dataset("GroupMassType", data=mass_type[part].astype(np.float32))
            group.create_dataset("GroupAscale", data=np.full(count, a, dtype=np.float32))
    return files


def write_tng_catalog(
    halos: HaloCatalog,
    galaxies: GalaxyCatalog,
    directory: str | Path,
    *,
    snapshot: int = 99,
    n_files: int = 2,
    baryon_fraction: float | None = None,
) -> list[Path]:
    """Write haloes and their galaxies as an IllustrisTNG group catalog ``directory/fof_subhalo_tab_XXX.N.hdf5``.

    halos: the FoF groups (``pos``, ``vel``, ``mass``, ``n_part``; ``m200`` and ``r200`` about the critical
        density, when present, become ``Group_M_Crit200`` and ``Group_R_Crit200``); row i is group i.
    galaxies: one subhalo each, with ``host`` (group row), ``is_central``, ``pos``, ``vel``, ``log_mstar``
        (log10 Msun/h), ``log_ssfr`` (log10 1/yr), ``color_gi`` (mag), ``log_radius`` (log10 ckpc/h), ``log_z``
        (log10 Z/Z_sun). Subhaloes are written grouped by host, centrals first (``GroupFirstSub``).
    baryon_fraction: the share of each group's mass in gas and stars (default Ω_b / Ω_m), put in
        ``GroupMassType`` columns 0 and 4 (six types, as TNG has).
    Datasets carry no unit attributes (TNG's group catalogs have none); the code units are TNG's (ckpc/h,
    1e10 Msun/h, km/s) and the cosmology is in ``Header``.
    """
    directory = Path(directory)
    box, cosmo = halos.box, halos.box.cosmology
    a, h = 1.0 / (1.0 + box.redshift), cosmo.h
    fb = cosmo.omega_b / cosmo.omega_m if baryon_fraction is None else baryon_fraction
    host = galaxies["host"].cpu().numpy().astype(np.int64)
    central = galaxies["is_central"].cpu().numpy().astype(bool)
    order = np.lexsort((~central, host))  # by host, the central first
    n_groups, n_subs = len(halos), len(order)
    counts = np.bincount(host, minlength=n_groups)
    first = np.full(n_groups, -1, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    first[counts > 0] = starts[counts > 0]

    def gal(name: str) -> np.ndarray:
        return galaxies[name].cpu().double().numpy()[order]

    mstar = 10.0 ** gal("log_mstar") / 1e10
    group_mass = halos["mass"].cpu().double().numpy() / 1e10
    group_mass_type = np.zeros((n_groups, 6))
    group_mass_type[:, 1] = group_mass * (1.0 - fb)
    group_mass_type[:, 0] = group_mass * fb
    sub_mass_type = np.zeros((n_subs, 6))
    sub_mass_type[:, 4] = mstar
    sub_mass_type[:, 1] = np.where(central[order], group_mass[host[order]] * (1 - fb) * 0.8, 20.0 * mstar)
    sfr = 10.0 ** gal("log_ssfr") * mstar * 1e10 / h  # Msun/yr
    colour = gal("color_gi")
    photometry = np.zeros((n_subs, 8))
    photometry[:, 4] = -20.0  # g
    photometry[:, 6] = -20.0 - colour  # i, so that g - i = colour
    radius_type = np.zeros((n_subs, 6))
    radius_type[:, 4] = 10.0 ** gal("log_radius")
    files = _file_names(directory, f"fof_subhalo_tab_{snapshot:03d}", n_files)
    group_pieces, sub_pieces = _split(n_groups, n_files), _split(n_subs, n_files)
    for file, gp, sp in zip(files, group_pieces, sub_pieces, strict=True):
        with h5py.File(file, "w") as f:
            header = f.create_group("Header")
            for key, value in (
                ("Ngroups_ThisFile", gp.stop - gp.start),
                ("Ngroups_Total", n_groups),
                ("Nsubgroups_ThisFile", sp.stop - sp.start),
                ("Nsubgroups_Total", n_subs),
                ("Nids_ThisFile", 0),
                ("Nids_Total", 0),
                ("NumFiles", n_files),
            ):
                header.attrs[key] = np.int32(value)
            header.attrs["BoxSize"] = box.length * 1000.0
            header.attrs["Redshift"] = box.redshift
            header.attrs["Time"] = a
            header.attrs["HubbleParam"] = h
            header.attrs["Omega0"] = cosmo.omega_m
            header.attrs["OmegaLambda"] = 1.0 - cosmo.omega_m
            header.attrs["FlagDoubleprecision"] = np.int32(0)
            groups = f.create_group("Group")
            if gp.stop > gp.start:
                groups.create_dataset("GroupPos", data=(halos["pos"].cpu().numpy()[gp] * 1000.0).astype(np.float32))
                vel = halos["vel"].cpu().numpy()[gp] * a if "vel" in halos else np.zeros((gp.stop - gp.start, 3))
                groups.create_dataset("GroupVel", data=vel.astype(np.float32))
                groups.create_dataset("GroupMass", data=group_mass[gp].astype(np.float32))
                groups.create_dataset("GroupMassType", data=group_mass_type[gp].astype(np.float32))
                groups.create_dataset("GroupLen", data=halos["n_part"].cpu().numpy()[gp].astype(np.int32))
                groups.create_dataset("GroupNsubs", data=counts[gp].astype(np.int32))
                if "m200" in halos and "r200" in halos:  # Subfind's spherical-overdensity mass around the centre
                    m200 = halos["m200"].cpu().double().numpy()[gp] / 1e10
                    groups.create_dataset("Group_M_Crit200", data=m200.astype(np.float32))
                    r200 = halos["r200"].cpu().double().numpy()[gp] * 1000.0
                    groups.create_dataset("Group_R_Crit200", data=r200.astype(np.float32))
                groups.create_dataset("GroupFirstSub", data=first[gp].astype(np.int32))
            subs = f.create_group("Subhalo")
            if sp.stop > sp.start:
                subs.create_dataset("SubhaloPos", data=(gal("pos")[sp] * 1000.0).astype(np.float32))
                subs.create_dataset("SubhaloVel", data=gal("vel")[sp].astype(np.float32))
                subs.create_dataset("SubhaloMass", data=sub_mass_type[sp].sum(1).astype(np.float32))
                subs.create_dataset("SubhaloMassType", data=sub_mass_type[sp].astype(np.float32))
                subs.create_dataset("SubhaloGrNr", data=host[order][sp].astype(np.int32))
                subs.create_dataset("SubhaloSFR", data=sfr[sp].astype(np.float32))
                subs.create_dataset("SubhaloStellarPhotometrics", data=photometry[sp].astype(np.float32))
                subs.create_dataset("SubhaloHalfmassRadType", data=radius_type[sp].astype(np.float32))
                subs.create_dataset(
                    "SubhaloStarMetallicity", data=(10.0 ** gal("log_z")[sp] * Z_SUN).astype(np.float32)
                )
                subs.create_dataset("SubhaloFlag", data=np.ones(sp.stop - sp.start, dtype=np.uint8))
    return files


def write_example_files(folder: str | Path) -> dict[str, Path]:
    """Tiny files in other codes' formats, made from a fixed seed (the inputs of the ``io.*`` stages' contract runs):
    a Gadget-4 snapshot of 8^3 particles in 40 Mpc/h (``snapdir_005``, 2 files), its FoF catalog of 6 groups
    (``groups_005``), a TNG catalog with one galaxy per group (``groups_099``) and an 8^3 ``.npy`` cube
    (``delta.npy``). Returns kind ("snapshot", "groups", "galaxies", "cube") -> path."""
    folder = Path(folder)
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
    paths = {
        "snapshot": folder / "snapdir_005",
        "groups": folder / "groups_005",
        "galaxies": folder / "groups_099",
        "cube": folder / "delta.npy",
    }
    write_gadget4_snapshot(particles, paths["snapshot"], n_files=2)
    write_gadget4_groups(halos, paths["groups"], n_files=2)
    write_tng_catalog(halos, galaxies, paths["galaxies"], n_files=2)
    np.save(paths["cube"], np.random.default_rng(0).normal(size=(8, 8, 8)).astype(np.float32))
    return paths
