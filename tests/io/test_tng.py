"""TNG / Subfind group catalogs: small fof_subhalo_tab files written here, read back as HaloCatalog and
GalaxyCatalog, with every column checked against hand-computed unit conversions; bad files give an
ArtifactError naming the file and the problem."""

from __future__ import annotations

import dataclasses
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

from cosmoseg.data import Cosmology, GalaxyCatalog, HaloCatalog, load_artifact, save_artifact
from cosmoseg.errors import ArtifactError
from cosmoseg.io import read_group_catalog, read_tng_galaxies, read_tng_groups, read_tng_subhalos
from cosmoseg.io.tng import LOG_RADIUS_FLOOR, LOG_Z_FLOOR, NO_STARS_LOG_MSTAR, Z_SUN
from cosmoseg.plugins import build_registry

KPC = 3.085678e21
MPC = 3.085678e24
H = 0.6774
REDSHIFT = 0.5
A = 1 / (1 + REDSHIFT)


@dataclasses.dataclass
class Truth:
    """A small catalog in TNG file units: 5 groups, 8 subhaloes."""

    group: dict[str, np.ndarray]
    subhalo: dict[str, np.ndarray]


def make_truth(rng: np.random.Generator) -> Truth:
    n_subs = np.array([3, 0, 2, 1, 2], dtype=np.int32)
    first_sub = np.array([0, -1, 3, 5, 6], dtype=np.int32)
    group = {
        "GroupPos": rng.uniform(0, 75_000, (5, 3)),
        "GroupVel": rng.normal(0, 300, (5, 3)),
        "GroupMass": rng.uniform(1, 100, 5),
        "GroupMassType": rng.uniform(0, 10, (5, 6)),
        "GroupLen": rng.integers(32, 10_000, 5).astype(np.int32),
        "Group_M_Crit200": np.array([50.0, 0.0, 20.0, 5.0, 8.0]),
        "Group_R_Crit200": np.array([300.0, 0.0, 200.0, 100.0, 150.0]),
        "Group_M_TopHat200": rng.uniform(1, 100, 5),
        "Group_R_TopHat200": rng.uniform(50, 500, 5),
        "GroupNsubs": n_subs,
        "GroupFirstSub": first_sub,
    }
    n = 8
    mass_type = rng.uniform(0.0, 1.0, (n, 6))
    mass_type[:, 4] = [0.5, 0.02, 0.0, 1.2, 0.3, 0.004, 0.05, 0.0]  # subhaloes 2 and 7 have no stars
    photometrics = rng.normal(-20, 1, (n, 8))
    photometrics[[2, 7]] = 1e36  # no stars: no magnitudes
    subhalo = {
        "SubhaloPos": rng.uniform(0, 75_000, (n, 3)),
        "SubhaloVel": rng.normal(0, 300, (n, 3)),
        "SubhaloMass": rng.uniform(0.1, 50, n),
        "SubhaloMassType": mass_type,
        "SubhaloLen": rng.integers(20, 5000, n).astype(np.int32),
        "SubhaloGrNr": np.array([0, 0, 0, 2, 2, 3, 4, 4], dtype=np.int32),
        "SubhaloVmax": rng.uniform(50, 500, n),
        "SubhaloVelDisp": rng.uniform(30, 300, n),
        "SubhaloSpin": rng.normal(0, 100, (n, 3)),
        "SubhaloHalfmassRad": rng.uniform(5, 100, n),
        "SubhaloHalfmassRadType": rng.uniform(0.5, 20, (n, 6)),
        "SubhaloSFR": np.array([1.5, 0.0, 0.0, 10.0, 0.2, 1e-9, 0.01, 0.0]),
        "SubhaloStarMetallicity": np.array([0.02, 0.01, 0.0, 0.03, 0.0127, 0.001, 0.015, 0.0]),
        "SubhaloStellarPhotometrics": photometrics,
        "SubhaloFlag": np.array([1, 1, 1, 1, 0, 1, 1, 1], dtype=np.uint8),
    }
    return Truth(group, subhalo)


DMO_SUBHALO = ("SubhaloSFR", "SubhaloStarMetallicity", "SubhaloStellarPhotometrics", "SubhaloHalfmassRadType")

TNG_ATTRS: dict[str, dict[str, float]] = {
    "GroupPos": {"a_scaling": 1.0, "h_scaling": -1.0, "length_scaling": 1.0, "to_cgs": KPC},
    "GroupVel": {"a_scaling": -1.0, "h_scaling": 0.0, "velocity_scaling": 1.0, "to_cgs": 1e5},
    "GroupMass": {"a_scaling": 0.0, "h_scaling": -1.0, "mass_scaling": 1.0, "to_cgs": 1.989e43},
    "SubhaloPos": {"a_scaling": 1.0, "h_scaling": -1.0, "length_scaling": 1.0, "to_cgs": KPC},
    "SubhaloVel": {"a_scaling": 0.0, "h_scaling": 0.0, "velocity_scaling": 1.0, "to_cgs": 1e5},
    "SubhaloMass": {"a_scaling": 0.0, "h_scaling": -1.0, "mass_scaling": 1.0, "to_cgs": 1.989e43},
    "SubhaloSFR": {"a_scaling": 0.0, "h_scaling": 0.0, "to_cgs": 1.989e33 / 3.15576e7},
    "SubhaloStarMetallicity": {"a_scaling": 0.0, "h_scaling": 0.0, "to_cgs": 0.0},
}


def write_catalog(
    directory: Path,
    truth: Truth,
    *,
    group_splits: tuple[int, ...] = (2, 0, 3),
    subhalo_splits: tuple[int, ...] = (3, 0, 5),
    stem: str = "fof_subhalo_tab_033",
    gadget4: bool = False,
    hydro: bool = True,
    attrs: bool = False,
    units: dict[str, float] | None = None,
    header: dict[str, Any] | None = None,
) -> list[Path]:
    """Chunks ``stem.N.hdf5``; TNG names (Nsubgroups_*, SubhaloGrNr, cosmology in Header) or Gadget-4 names
    (Nsubhalos_*, SubhaloGroupNr, SubhaloRankInGr, cosmology and units in Parameters)."""
    n_files = len(group_splits)
    group_edges = np.cumsum([0, *group_splits])
    sub_edges = np.cumsum([0, *subhalo_splits])
    cosmo = {"Omega0": 0.3089, "OmegaLambda": 0.6911, "OmegaBaryon": 0.0486, "HubbleParam": H}
    files = []
    for i in range(n_files):
        path = directory / f"{stem}.{i}.hdf5"
        files.append(path)
        g_lo, g_hi = group_edges[i], group_edges[i + 1]
        s_lo, s_hi = sub_edges[i], sub_edges[i + 1]
        with h5py.File(path, "w") as f:
            head = f.create_group("Header")
            sub_name = "Nsubhalos" if gadget4 else "Nsubgroups"
            values = {
                "BoxSize": 75_000.0,
                "Redshift": REDSHIFT,
                "Time": A,
                "Ngroups_ThisFile": g_hi - g_lo,
                "Ngroups_Total": group_edges[-1],
                f"{sub_name}_ThisFile": s_hi - s_lo,
                f"{sub_name}_Total": sub_edges[-1],
                "NumFiles": n_files,
                **(header or {}),
            }
            for key, value in values.items():
                head.attrs[key] = value
            params = f.create_group("Parameters") if gadget4 else head
            for key, value in cosmo.items():
                params.attrs[key] = value
            for key, value in (units or {}).items():
                params.attrs[key] = value
            groups = f.create_group("Group")
            subhaloes = f.create_group("Subhalo")
            if g_hi > g_lo:
                for name, data in truth.group.items():
                    groups[name] = data[g_lo:g_hi]
            if s_hi > s_lo:
                for name, data in truth.subhalo.items():
                    if not hydro and name in DMO_SUBHALO:
                        continue
                    if gadget4 and name == "SubhaloGrNr":
                        subhaloes["SubhaloGroupNr"] = data[s_lo:s_hi].astype(np.int64)
                        rank = np.array([0, 1, 2, 0, 1, 0, 0, 1])[s_lo:s_hi]
                        subhaloes["SubhaloRankInGr"] = rank.astype(np.int32)
                        continue
                    subhaloes[name] = data[s_lo:s_hi] if hydro or name != "SubhaloMassType" else _dmo(data)[s_lo:s_hi]
            if attrs:
                for holder in (groups, subhaloes):
                    for name, values in TNG_ATTRS.items():
                        if name in holder:
                            holder[name].attrs.update(values)
    return files


def _dmo(mass_type: np.ndarray) -> np.ndarray:
    out = mass_type.copy()
    out[:, [0, 4, 5]] = 0.0
    return out


def names_file_and(problem: str, path: Path) -> str:
    return rf"(?s){re.escape(str(path))}.*{problem}"


@pytest.fixture
def truth() -> Truth:
    return make_truth(np.random.default_rng(5))


def col(catalog: Any, name: str) -> np.ndarray:
    return catalog[name].double().numpy() if catalog[name].is_floating_point() else catalog[name].numpy()


# ---- groups -----------------------------------------------------------------------------------------------


def test_groups_read_back_in_cosmoseg_units(tmp_path: Path, truth: Truth) -> None:
    files = write_catalog(tmp_path, truth)
    groups = read_group_catalog(files[0], kind="groups", dtype=torch.float64)
    g = truth.group
    assert isinstance(groups, HaloCatalog) and len(groups) == 5
    assert groups.box.length == pytest.approx(75.0) and groups.box.redshift == pytest.approx(REDSHIFT)
    np.testing.assert_allclose(col(groups, "pos"), g["GroupPos"] / 1000.0, rtol=1e-12)
    np.testing.assert_allclose(col(groups, "vel"), g["GroupVel"] / A, rtol=1e-12)  # (km/s)/a: v_pec = GroupVel / a
    np.testing.assert_allclose(col(groups, "mass"), g["GroupMass"] * 1e10, rtol=1e-12)
    np.testing.assert_allclose(col(groups, "mass_type"), g["GroupMassType"] * 1e10, rtol=1e-12)
    np.testing.assert_allclose(col(groups, "m200c"), g["Group_M_Crit200"] * 1e10, rtol=1e-12)
    np.testing.assert_allclose(col(groups, "r200c"), g["Group_R_Crit200"] / 1000.0, rtol=1e-12)
    np.testing.assert_allclose(col(groups, "mvir"), g["Group_M_TopHat200"] * 1e10, rtol=1e-12)
    np.testing.assert_allclose(col(groups, "rvir"), g["Group_R_TopHat200"] / 1000.0, rtol=1e-12)
    assert col(groups, "n_part").tolist() == g["GroupLen"].tolist() and groups["n_part"].dtype == torch.int64
    assert col(groups, "n_subs").tolist() == g["GroupNsubs"].tolist()
    assert col(groups, "first_sub").tolist() == g["GroupFirstSub"].tolist()
    assert groups.units["m200c"] == "Msun/h" and groups.units["r200c"] == "Mpc/h" and groups.units["vel"] == "km/s"
    cosmo = groups.box.cosmology
    assert (cosmo.omega_m, cosmo.omega_b, cosmo.h) == (0.3089, 0.0486, H)
    assert groups.meta["n_files"] == 3 and groups.meta["kind"] == "groups"
    assert "GroupVel / a" in groups.meta["vel_conversion"]


def test_the_same_catalog_from_a_directory_a_list_and_the_registered_readers(tmp_path: Path, truth: Truth) -> None:
    files = write_catalog(tmp_path, truth)
    registry = build_registry(autoload=False)
    reference = read_tng_groups(files[0])
    for catalog in (
        read_group_catalog(tmp_path),
        read_group_catalog(list(reversed(files))),
        registry.reader("tng-groups")(files[0]),
    ):
        assert torch.equal(catalog["pos"], reference["pos"]) and torch.equal(catalog["mass"], reference["mass"])
    assert len(registry.reader("tng-subhalos")(files[0])) == 8
    assert registry.reader("tng-subhalos") is read_tng_subhalos
    assert registry.reader("tng-galaxies") is read_tng_galaxies


def test_groups_survive_an_artifact_round_trip(tmp_path: Path, truth: Truth) -> None:
    groups = read_group_catalog(write_catalog(tmp_path, truth)[0], kind="subhalos")
    loaded = load_artifact(save_artifact(tmp_path / "cat.h5", {"subhalos": groups}))["subhalos"]
    assert torch.equal(loaded["pos"], groups["pos"]) and loaded.units == groups.units


def test_arepo_unit_attributes_give_the_same_values(tmp_path: Path, truth: Truth) -> None:
    plain = read_group_catalog(write_catalog(tmp_path, truth, stem="plain"), kind="groups", dtype=torch.float64)
    with_attrs = read_group_catalog(
        write_catalog(tmp_path, truth, stem="attrs", attrs=True), kind="groups", dtype=torch.float64
    )
    for name in ("pos", "vel", "mass"):
        np.testing.assert_allclose(col(with_attrs, name), col(plain, name), rtol=1e-12)
    assert "a_scaling=-1" in with_attrs.meta["vel_conversion"]


def test_dataset_attributes_rule_over_the_default_convention(tmp_path: Path, truth: Truth) -> None:
    """A GroupVel that says it is already peculiar (a_scaling = 0) is not divided by a."""
    files = write_catalog(tmp_path, truth, attrs=True)
    for file in files:
        with h5py.File(file, "a") as f:
            if "GroupVel" in f["Group"]:
                f["Group/GroupVel"].attrs["a_scaling"] = 0.0
    groups = read_group_catalog(files, dtype=torch.float64)
    np.testing.assert_allclose(col(groups, "vel"), truth.group["GroupVel"], rtol=1e-12)


def test_empty_chunks_and_an_empty_catalog(tmp_path: Path, truth: Truth) -> None:
    """TNG chunks without groups have an empty Group group; a catalog without any rows is empty, not an error."""
    files = write_catalog(tmp_path, truth, group_splits=(0, 5, 0), subhalo_splits=(0, 0, 8))
    assert len(read_group_catalog(files[0])) == 5 and len(read_group_catalog(files[0], kind="subhalos")) == 8
    empty = Truth({k: v[:0] for k, v in truth.group.items()}, {k: v[:0] for k, v in truth.subhalo.items()})
    (tmp_path / "empty").mkdir()
    files = write_catalog(tmp_path / "empty", empty, group_splits=(0, 0), subhalo_splits=(0, 0))
    for kind in ("groups", "subhalos"):
        catalog = read_group_catalog(files, kind=kind)
        assert len(catalog) == 0 and tuple(catalog["pos"].shape) == (0, 3) and catalog.box.length == 75.0


# ---- subhaloes and galaxies ----------------------------------------------------------------------------------


def expected_galaxy_columns(truth: Truth, floor: float = -13.0) -> dict[str, np.ndarray]:
    s = truth.subhalo
    mstar = s["SubhaloMassType"][:, 4] * 1e10  # Msun/h
    stars = mstar > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ssfr = np.log10(s["SubhaloSFR"] / (mstar / H))  # 1/yr, M* in Msun
        log_z = np.log10(s["SubhaloStarMetallicity"] / 0.0127)
        log_mstar = np.log10(mstar)
    phot = s["SubhaloStellarPhotometrics"]
    return {
        "has_stars": stars,
        "log_mstar": np.where(stars, log_mstar, NO_STARS_LOG_MSTAR),
        "log_ssfr": np.where(stars & (s["SubhaloSFR"] > 0), np.maximum(log_ssfr, floor), floor),
        "color_gi": np.where(stars, phot[:, 4] - phot[:, 6], 0.0),
        "log_radius": np.where(stars, np.log10(s["SubhaloHalfmassRadType"][:, 4]), LOG_RADIUS_FLOOR),
        "log_z": np.where(stars & (s["SubhaloStarMetallicity"] > 0), np.maximum(log_z, LOG_Z_FLOOR), LOG_Z_FLOOR),
    }


def test_subhaloes_read_back_with_hosts_centrals_and_galaxy_properties(tmp_path: Path, truth: Truth) -> None:
    files = write_catalog(tmp_path, truth)
    subs = read_group_catalog(files[0], kind="subhalos", dtype=torch.float64)
    s = truth.subhalo
    assert len(subs) == 8
    np.testing.assert_allclose(col(subs, "pos"), s["SubhaloPos"] / 1000.0, rtol=1e-12)
    np.testing.assert_allclose(col(subs, "vel"), s["SubhaloVel"], rtol=1e-12)  # already peculiar km/s
    np.testing.assert_allclose(col(subs, "mass"), s["SubhaloMass"] * 1e10, rtol=1e-12)
    np.testing.assert_allclose(col(subs, "vmax"), s["SubhaloVmax"], rtol=1e-12)
    np.testing.assert_allclose(col(subs, "vel_disp"), s["SubhaloVelDisp"], rtol=1e-12)
    np.testing.assert_allclose(col(subs, "spin_vec"), s["SubhaloSpin"], rtol=1e-12)
    np.testing.assert_allclose(col(subs, "spin"), np.linalg.norm(s["SubhaloSpin"], axis=1), rtol=1e-12)
    np.testing.assert_allclose(col(subs, "r_half"), s["SubhaloHalfmassRad"] / 1000.0, rtol=1e-12)
    assert col(subs, "host").tolist() == s["SubhaloGrNr"].tolist()
    assert col(subs, "is_central").tolist() == [True, False, False, True, False, True, True, False]
    np.testing.assert_allclose(col(subs, "host_m200c"), truth.group["Group_M_Crit200"][s["SubhaloGrNr"]] * 1e10)
    assert col(subs, "subhalo_id").tolist() == list(range(8))
    expected = expected_galaxy_columns(truth)
    for name, values in expected.items():
        np.testing.assert_allclose(col(subs, name), values, rtol=1e-12, err_msg=name)
    assert col(subs, "ssfr_at_floor").tolist() == [False, True, False, False, False, True, False, False]
    assert subs.meta["z_sun"] == Z_SUN == 0.0127 and subs.meta["n_ssfr_at_floor"] == 2
    assert subs.units["spin"] == "(kpc/h)(km/s)" and subs.units["log_mstar"] == "log10 Msun/h"
    assert not any(name in subs for name in ("sfr", "photometrics", "r_half_type", "star_metallicity"))


def test_subhaloes_without_stars_can_be_dropped(tmp_path: Path, truth: Truth) -> None:
    files = write_catalog(tmp_path, truth)
    subs = read_group_catalog(files, kind="subhalos", no_stars="drop")
    assert col(subs, "subhalo_id").tolist() == [0, 1, 3, 4, 5, 6]
    assert subs.meta["n_dropped_without_stars"] == 2 and bool(subs["has_stars"].all())


def test_stellar_mass_within_twice_the_half_mass_radius(tmp_path: Path, truth: Truth) -> None:
    in_rad = truth.subhalo["SubhaloMassType"] * 0.5
    truth.subhalo["SubhaloMassInRadType"] = in_rad
    subs = read_group_catalog(write_catalog(tmp_path, truth), kind="subhalos", mstar_field="SubhaloMassInRadType")
    stars = in_rad[:, 4] > 0
    np.testing.assert_allclose(col(subs, "log_mstar")[stars], np.log10(in_rad[stars, 4] * 1e10), rtol=1e-6)


def test_galaxies_above_a_stellar_mass_threshold(tmp_path: Path, truth: Truth) -> None:
    files = write_catalog(tmp_path, truth)
    galaxies = read_tng_galaxies(files[0], min_log_mstar=8.0, dtype=torch.float64)
    # M* = [5e9, 2e8, 0, 1.2e10, 3e9 (flag 0), 4e7, 5e8, 0] Msun/h: above 1e8 and not flagged -> 0, 1, 3, 6
    assert isinstance(galaxies, GalaxyCatalog)
    assert col(galaxies, "subhalo_id").tolist() == [0, 1, 3, 6]
    keep = [0, 1, 3, 6]
    expected = expected_galaxy_columns(truth)
    for name in ("log_mstar", "log_ssfr", "color_gi", "log_radius", "log_z"):
        np.testing.assert_allclose(col(galaxies, name), expected[name][keep], rtol=1e-12, err_msg=name)
    np.testing.assert_allclose(col(galaxies, "pos"), truth.subhalo["SubhaloPos"][keep] / 1000.0, rtol=1e-12)
    np.testing.assert_allclose(col(galaxies, "subhalo_mass"), truth.subhalo["SubhaloMass"][keep] * 1e10)
    assert col(galaxies, "is_central").tolist() == [True, False, True, True]
    assert col(galaxies, "host").tolist() == [0, 0, 2, 4]
    assert galaxies.meta["n_dropped_flagged"] == 1 and galaxies.meta["n_galaxies"] == 4
    for name, values in galaxies.columns.items():
        if values.is_floating_point():
            assert bool(torch.isfinite(values).all()), name
    assert galaxies.units["log_ssfr"] == "log10 1/yr" and galaxies.units["subhalo_mass"] == "Msun/h"
    everything = read_tng_galaxies(files[0], min_log_mstar=0.0, drop_flagged=False)
    assert col(everything, "subhalo_id").tolist() == [0, 1, 3, 4, 5, 6]


def test_galaxies_need_stars(tmp_path: Path, truth: Truth) -> None:
    files = write_catalog(tmp_path, truth, hydro=False)
    subs = read_group_catalog(files, kind="subhalos")
    assert "log_mstar" not in subs and "gravity-only" in subs.meta["galaxy_columns"]
    with pytest.raises(ArtifactError, match=names_file_and("no subhalo has stars", files[0])):
        read_tng_galaxies(files)


def test_gadget4_subfind_names_and_parameters(tmp_path: Path, truth: Truth) -> None:
    """Gadget-4: Nsubhalos_*, SubhaloGroupNr, SubhaloRankInGr; cosmology and units (here Mpc/h) in Parameters."""
    truth.group["GroupPos"] = truth.group["GroupPos"] / 1000.0
    truth.subhalo["SubhaloPos"] = truth.subhalo["SubhaloPos"] / 1000.0
    units = {"UnitLength_in_cm": MPC, "UnitMass_in_g": 1.989e43, "UnitVelocity_in_cm_per_s": 1e5}
    files = write_catalog(
        tmp_path, truth, gadget4=True, units=units, header={"BoxSize": 75.0}, group_splits=(5,), subhalo_splits=(8,)
    )
    subs = read_group_catalog(files[0], kind="subhalos", dtype=torch.float64)
    assert subs.box.length == pytest.approx(75.0) and subs.meta["units_from"] == "Parameters"
    np.testing.assert_allclose(col(subs, "pos"), truth.subhalo["SubhaloPos"], rtol=1e-12)
    assert col(subs, "host").tolist() == truth.subhalo["SubhaloGrNr"].tolist()
    assert col(subs, "is_central").tolist() == [True, False, False, True, False, True, True, False]
    groups = read_group_catalog(files[0], dtype=torch.float64)
    np.testing.assert_allclose(col(groups, "r200c"), truth.group["Group_R_Crit200"], rtol=1e-12)  # Mpc/h already


def test_centrals_from_the_rank_when_groups_lack_first_sub(tmp_path: Path, truth: Truth) -> None:
    del truth.group["GroupFirstSub"]
    subs = read_group_catalog(write_catalog(tmp_path, truth, gadget4=True), kind="subhalos")
    assert col(subs, "is_central").tolist() == [True, False, False, True, False, True, True, False]
    assert subs.meta["is_central_from"] == "SubhaloRankInGr == 0"


def test_cosmology_argument(tmp_path: Path, truth: Truth) -> None:
    files = write_catalog(tmp_path, truth)
    given = Cosmology(omega_m=0.3089, h=H, omega_b=0.05, sigma_8=0.8159, n_s=0.9667)
    assert read_group_catalog(files).box.cosmology.sigma_8 == Cosmology().sigma_8
    assert read_group_catalog(files, cosmology=given).box.cosmology == given


def test_bad_arguments_are_value_errors(tmp_path: Path, truth: Truth) -> None:
    files = write_catalog(tmp_path, truth)
    for options in ({"kind": "haloes"}, {"no_stars": "keep"}, {"mstar_field": "SubhaloMass"}):
        with pytest.raises(ValueError, match=next(iter(options))):
            read_group_catalog(files, **options)


# ---- bad catalogs ---------------------------------------------------------------------------------------------


def _edit(files: list[Path], index: int, change) -> None:
    with h5py.File(files[index], "a") as f:
        change(f)


def _replace(name: str, values: np.ndarray):
    def change(f: h5py.File) -> None:
        del f[name]
        f[name] = values

    return change


BAD_CATALOGS = {
    "no Header": (0, lambda f: f.__delitem__("Header"), r"no Header group: not a FoF/Subfind group catalog"),
    "box size <= 0": (0, lambda f: f["Header"].attrs.__setitem__("BoxSize", -1.0), r"BoxSize must be positive"),
    "no group count": (
        0,
        lambda f: f["Header"].attrs.__delitem__("Ngroups_ThisFile"),
        r"attribute Header/Ngroups_ThisFile is missing",
    ),
    "GroupPos missing": (0, lambda f: f["Group"].__delitem__("GroupPos"), r"dataset Group/GroupPos is missing"),
    "dataset length vs count": (
        0,
        _replace("Group/GroupMass", np.ones(3)),
        r"Group/GroupMass has shape \(3,\), but the header's row count implies \(2,\)",
    ),
    "counts do not add up": (
        2,
        lambda f: f["Header"].attrs.__setitem__("Ngroups_Total", 6),
        r"files disagree about Header/Ngroups_Total",
    ),
    "a dataset in one file only": (
        0,
        lambda f: f["Group"].__delitem__("Group_M_Crit200"),
        r"dataset Group/Group_M_Crit200 is in .* but not in",
    ),
    "non-finite values": (
        2,
        _replace("Group/GroupMass", np.array([1.0, np.nan, 2.0])),
        r"Group/GroupMass has 1 non-finite value\(s\) \(NaN or inf\), the first in row 1",
    ),
    "non-positive masses": (
        2,
        _replace("Group/GroupMass", np.array([1.0, 0.0, 2.0])),
        r"Group/GroupMass has 1 non-positive mass\(es\) \(the first in row 1\)",
    ),
    "redshifts disagree": (
        1,
        lambda f: f["Header"].attrs.update({"Redshift": 1.0, "Time": 0.5}),
        r"files disagree about the redshift",
    ),
    "units disagree": (
        1,
        lambda f: f["Header"].attrs.__setitem__("UnitLength_in_cm", MPC),
        r"files disagree about the unit attributes",
    ),
    "no Group group": (
        2,
        lambda f: f.__delitem__("Group"),
        r"the header counts 3 Group rows, but the file has no Group",
    ),
    "a *Type array whose width differs between chunks": (
        0,
        _replace("Group/GroupMassType", np.ones((2, 2))),
        r"Group/GroupMassType has 2 particle types \(columns\) in .*fof_subhalo_tab_033\.0\.hdf5 but 6 in",
    ),
    "a *Type array with more than 6 types": (
        2,
        _replace("Group/GroupMassType", np.ones((3, 7))),
        r"GroupMassType has shape \(3, 7\), but a per-type array has shape \(3, NTYPES\) with 1 <= NTYPES <= 6",
    ),
    "h_scaling that contradicts the field (positions)": (
        0,
        lambda f: f["Group/GroupPos"].attrs.update({"a_scaling": 1.0, "h_scaling": 5.0, "to_cgs": KPC}),
        r"dataset Group/GroupPos has attribute h_scaling = 5, but comoving positions need h_scaling = -1",
    ),
    "h_scaling that contradicts the field (masses)": (
        0,
        lambda f: f["Group/GroupMass"].attrs.update({"a_scaling": 0.0, "h_scaling": 0.0, "to_cgs": 1.989e43}),
        r"dataset Group/GroupMass has attribute h_scaling = 0, but masses need h_scaling = -1",
    ),
    "a_scaling that no convention has": (
        2,
        lambda f: f["Group/GroupVel"].attrs.update({"a_scaling": 2.0, "h_scaling": 0.0, "to_cgs": 1e5}),
        r"dataset Group/GroupVel has attribute a_scaling = 2, but group velocities .* need a_scaling in "
        r"\{-1, 0, 0\.5\}",
    ),
    "masses that overflow float32 once converted": (
        2,
        _replace("Group/GroupMass", np.array([1.0, 1e30, 2.0])),
        r"dataset Group/GroupMass has 1 row\(s\) that are not finite as torch.float32 \(column 'mass', the first "
        r"in row 1\)",
    ),
    "to_cgs contradicts the code units": (
        0,
        lambda f: (
            f["Header"].attrs.__setitem__("UnitLength_in_cm", KPC),
            f["Group/GroupPos"].attrs.update({"a_scaling": 1.0, "h_scaling": -1.0, "length_scaling": 1, "to_cgs": MPC}),
        ),
        r"GroupPos has to_cgs = 3.08568e\+24, but the code units",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CATALOGS))
def test_bad_catalogs_give_an_artifact_error_naming_file_and_problem(case: str, tmp_path: Path, truth: Truth) -> None:
    files = write_catalog(tmp_path, truth)
    index, change, problem = BAD_CATALOGS[case]
    if case == "units disagree":
        for file in files:
            _edit(files, files.index(file), lambda f: f["Header"].attrs.__setitem__("UnitLength_in_cm", KPC))
    _edit(files, index, change)
    with pytest.raises(ArtifactError, match=problem) as err:
        read_group_catalog(files[0])
    assert str(files[index]) in str(err.value)


def test_a_comoving_radius_attribute_is_refused_on_an_a_scaling_of_0(tmp_path: Path, truth: Truth) -> None:
    """Radii are comoving (a_scaling 1): a dataset that claims physical radii is refused, not silently applied."""
    files = write_catalog(tmp_path, truth)
    attrs = {"a_scaling": 0.0, "h_scaling": -1.0, "length_scaling": 1.0, "to_cgs": KPC}
    _edit(files, 0, lambda f: f["Group/Group_R_Crit200"].attrs.update(attrs))
    problem = r"Group_R_Crit200 has attribute a_scaling = 0, but comoving radii need a_scaling in \{1\}"
    with pytest.raises(ArtifactError, match=names_file_and(problem, files[0])):
        read_group_catalog(files)


def test_velocities_may_be_stored_in_any_physical_convention(tmp_path: Path, truth: Truth) -> None:
    """SubhaloVel with a_scaling 0.5 (u = v_pec / sqrt(a), like snapshot velocities) is converted by the attribute."""
    files = write_catalog(tmp_path, truth, attrs=True)
    for file in files:
        with h5py.File(file, "a") as f:
            if "SubhaloVel" in f["Subhalo"]:
                f["Subhalo/SubhaloVel"].attrs["a_scaling"] = 0.5
    subs = read_group_catalog(files, kind="subhalos", dtype=torch.float64)
    np.testing.assert_allclose(col(subs, "vel"), truth.subhalo["SubhaloVel"] * math.sqrt(A), rtol=1e-12)


def test_derived_columns_that_overflow_name_their_source(tmp_path: Path, truth: Truth) -> None:
    truth.subhalo["SubhaloSpin"][3] = [3e38, 3e38, 0.0]  # each finite in float32, |j| is not
    files = write_catalog(tmp_path, truth)
    with pytest.raises(ArtifactError, match=r"column 'spin' \(from Subhalo/SubhaloSpin\) has 1 row\(s\)"):
        read_group_catalog(files, kind="subhalos")
    assert bool(torch.isfinite(read_group_catalog(files, kind="subhalos", dtype=torch.float64)["spin"]).all())


def test_a_host_outside_the_groups(tmp_path: Path, truth: Truth) -> None:
    truth.subhalo["SubhaloGrNr"] = truth.subhalo["SubhaloGrNr"] + 1
    files = write_catalog(tmp_path, truth)
    with pytest.raises(ArtifactError, match=names_file_and(r"SubhaloGrNr points outside the 5 groups", files[0])):
        read_group_catalog(files[0], kind="subhalos")


def test_a_missing_chunk_is_named(tmp_path: Path, truth: Truth) -> None:
    files = write_catalog(tmp_path, truth)
    files[2].unlink()
    with pytest.raises(ArtifactError, match=r"NumFiles = 3, but 2 file\(s\).*missing fof_subhalo_tab_033\.2\.hdf5"):
        read_group_catalog(files[0])


def test_subhalo_counts_that_do_not_add_up(tmp_path: Path, truth: Truth) -> None:
    files = write_catalog(tmp_path, truth)
    for file in files:
        _edit(files, files.index(file), lambda f: f["Header"].attrs.__setitem__("Nsubgroups_Total", 9))
    with pytest.raises(ArtifactError, match=r"Nsubgroups_Total = 9, but the files' Nsubgroups_ThisFile add up to 8"):
        read_group_catalog(files[0], kind="subhalos")


@pytest.mark.skipif(not os.environ.get("COSMOSEG_REAL_GROUPCAT"), reason="set COSMOSEG_REAL_GROUPCAT to a catalog")
def test_a_real_group_catalog_reads() -> None:  # pragma: no cover - only where a real file exists
    path = os.environ["COSMOSEG_REAL_GROUPCAT"]
    groups = read_group_catalog(path)
    subs = read_group_catalog(path, kind="subhalos")
    assert len(groups) > 0 and len(subs) > 0
    assert float(groups["pos"].max()) < groups.box.length
    assert all(math.isfinite(float(v.double().sum())) for v in itertools.chain(subs.columns.values()))
