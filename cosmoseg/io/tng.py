"""IllustrisTNG / AREPO / Gadget-4 FoF + Subfind group catalogs (``fof_subhalo_tab_XXX.N.hdf5``).

The layout: a ``Header`` (``BoxSize``, ``Redshift``, ``Time``, ``HubbleParam``, ``Omega0``, ``OmegaLambda``;
Gadget-4 keeps the cosmology and the code units in ``Parameters``), the counts ``Ngroups_ThisFile``,
``Ngroups_Total``, ``Nsubgroups_ThisFile`` / ``Nsubhalos_ThisFile``, ``Nsubgroups_Total`` /
``Nsubhalos_Total``, ``NumFiles``; the FoF groups in ``Group/Group*`` and the Subfind subhaloes in
``Subhalo/Subhalo*``. A TNG chunk without groups (or subhaloes) has an empty ``Group`` (``Subhalo``) group,
a Gadget-4 chunk none; a Gadget-4 FoF run without Subfind writes ``fof_tab_XXX.N.hdf5`` without ``Subhalo``.
Chunks are concatenated in chunk order, so a subhalo's index is its row in the whole catalog, as
``GroupFirstSub`` and ``SubhaloGrNr`` count. The ``*Type`` arrays have one column per particle type: NTYPES,
6 in TNG, a compile-time option of Gadget-4 (often 2 for DM + gas).

Unit conventions of the TNG documentation, used for datasets without the ``a_scaling`` / ``h_scaling`` /
``to_cgs`` attributes (which rule where present, within the values each field allows; Gadget-4 writes no
attributes on catalog datasets):

- positions (``GroupPos``, ``SubhaloPos``) and radii (``Group_R_*``, ``SubhaloHalfmassRad*``,
  ``SubhaloVmaxRad``): ckpc/h → comoving Mpc/h (÷ 1000; radii of galaxies stay in comoving kpc/h).
- ``GroupVel``: (km/s)/a, the mass-weighted mean of the code's velocity variable (a²ẋ, per unit mass), which
  is a · v_pec → v_pec = GroupVel / a km/s.
- ``SubhaloVel``, ``SubhaloVmax``, ``SubhaloVelDisp``: km/s, already peculiar/physical, unchanged.
- masses: 1e10 Msun/h → Msun/h (× 1e10).
- ``SubhaloSpin``: (kpc/h)(km/s), physical specific angular momentum, unchanged.
- ``SubhaloSFR``: Msun/yr (no h), unchanged; ``SubhaloStarMetallicity``: mass fraction of metals (Z);
  ``SubhaloStellarPhotometrics``: absolute magnitudes in U, B, V, K, g, r, i, z.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from cosmoseg.data import Box, Cosmology, GalaxyCatalog, HaloCatalog, Particles
from cosmoseg.errors import ArtifactError, ProblemCollector, ValidationError
from cosmoseg.io._hdf5 import (
    COMOVING_KPC_H,
    COMOVING_MPC_H,
    COSMOLOGY_ATTRIBUTES,
    KM_S,
    KPC_H_KM_S,
    MPC_CM,
    MSUN_G,
    MSUN_H,
    MSUN_YR,
    YEAR_S,
    CodeUnits,
    Convention,
    Conversion,
    PathArg,
    Target,
    as_count,
    check_comoving,
    check_file_count,
    check_same,
    conversion,
    describe,
    header_cosmology,
    header_float,
    header_redshift,
    open_hdf5,
    plain,
    read_code_units,
    resolve_files,
    snap_power_of_ten,
)

__all__ = [
    "BOX_RTOL",
    "KINDS",
    "LOG_RADIUS_FLOOR",
    "LOG_Z_FLOOR",
    "NO_STARS_LOG_MSTAR",
    "REDSHIFT_ATOL",
    "Z_SUN",
    "check_same_box",
    "read_group_catalog",
    "read_tng_galaxies",
    "read_tng_groups",
    "read_tng_subhalos",
]

KINDS: tuple[str, ...] = ("groups", "subhalos")
"""What ``read_group_catalog`` reads: FoF groups or Subfind subhaloes."""

Z_SUN = 0.0127
"""Solar metallicity (metal mass fraction) of the TNG documentation: log_z = log10(Z / Z_SUN)."""
LOG_RADIUS_FLOOR = -3.0
"""log10 of the smallest stellar half-mass radius kept, comoving kpc/h (1 pc/h); smaller radii are clipped."""
LOG_Z_FLOOR = -4.0
"""log10 of the smallest metallicity kept, in solar units; smaller (or zero) metallicities are clipped."""
NO_STARS_LOG_MSTAR = 0.0
"""``log_mstar`` of a subhalo without stars (kept with ``no_stars="floor"``): 1 Msun/h, far below any galaxy."""
NO_STARS_COLOR_GI = 0.0
"""``color_gi`` of a subhalo without stars, and of one whose photometry is missing."""
PHOTOMETRY_BAND = {"U": 0, "B": 1, "V": 2, "K": 3, "g": 4, "r": 5, "i": 6, "z": 7}
"""Column of each band in ``SubhaloStellarPhotometrics``."""
STELLAR_TYPE = 4
"""Particle type of stars (and wind particles) in ``*MassType`` and ``*RadType`` arrays."""
MAX_TYPES = 6
"""The most particle types a ``*Type`` array can have (Gadget's NTYPES is 6 by default; Gadget-4 runs are
often compiled with fewer, e.g. NTYPES = 2 for DM + gas, and their ``*Type`` arrays have that many columns)."""

_VELOCITY_A = (-1.0, 0.0, 0.5)  # a · v_pec (the code's momentum variable), v_pec, v_pec / sqrt(a)
_POSITION = Convention(a=1.0, h=-1.0, length=1.0, description="comoving positions")
_RADIUS = Convention(a=1.0, h=-1.0, length=1.0, description="comoving radii")
_GROUP_VELOCITY = Convention(
    a=-1.0, velocity=1.0, description="group velocities in (km/s)/a, v_pec = GroupVel / a", a_allowed=_VELOCITY_A
)
_VELOCITY = Convention(velocity=1.0, description="peculiar velocities", a_allowed=_VELOCITY_A)
_MASS = Convention(h=-1.0, mass=1.0, description="masses")
_SPIN = Convention(
    h=-1.0, length=1.0, velocity=1.0, description="specific angular momenta", a_allowed=(0.0, 1.0)
)  # physical, or with a comoving length
_SFR = Convention(description="star formation rates in Msun/yr", fixed_cgs=MSUN_G / YEAR_S)


@dataclasses.dataclass(frozen=True)
class _Field:
    """A catalog dataset: its column name, its trailing shape, and its conversion (None: taken as stored).

    per_type: a ``*Type`` array of shape (N, NTYPES), one column per particle type, 1 <= NTYPES <= MAX_TYPES
        (Gadget-4 writes (N,) when NTYPES is 1); ``trailing`` is then unused.
    """

    column: str
    trailing: tuple[int, ...] = ()
    convention: Convention | None = None
    target: Target | None = None
    integer: bool = False
    required: bool = False
    per_type: bool = False


GROUP_FIELDS: dict[str, _Field] = {
    "GroupPos": _Field("pos", (3,), _POSITION, COMOVING_MPC_H, required=True),
    "GroupVel": _Field("vel", (3,), _GROUP_VELOCITY, KM_S),
    "GroupMass": _Field("mass", (), _MASS, MSUN_H, required=True),
    "GroupMassType": _Field("mass_type", (), _MASS, MSUN_H, per_type=True),
    "GroupLen": _Field("n_part", (), integer=True),
    "GroupLenType": _Field("n_part_type", (), integer=True, per_type=True),
    "Group_M_Crit200": _Field("m200c", (), _MASS, MSUN_H),
    "Group_R_Crit200": _Field("r200c", (), _RADIUS, COMOVING_MPC_H),
    "Group_M_Mean200": _Field("m200m", (), _MASS, MSUN_H),
    "Group_R_Mean200": _Field("r200m", (), _RADIUS, COMOVING_MPC_H),
    "Group_M_Crit500": _Field("m500c", (), _MASS, MSUN_H),
    "Group_R_Crit500": _Field("r500c", (), _RADIUS, COMOVING_MPC_H),
    "Group_M_TopHat200": _Field("mvir", (), _MASS, MSUN_H),
    "Group_R_TopHat200": _Field("rvir", (), _RADIUS, COMOVING_MPC_H),
    "GroupNsubs": _Field("n_subs", (), integer=True),
    "GroupFirstSub": _Field("first_sub", (), integer=True),
}
"""Group datasets read by ``read_group_catalog(kind="groups")`` and the columns they become."""

SUBHALO_FIELDS: dict[str, _Field] = {
    "SubhaloPos": _Field("pos", (3,), _POSITION, COMOVING_MPC_H, required=True),
    "SubhaloVel": _Field("vel", (3,), _VELOCITY, KM_S),
    "SubhaloMass": _Field("mass", (), _MASS, MSUN_H, required=True),
    "SubhaloMassType": _Field("mass_type", (), _MASS, MSUN_H, per_type=True),
    "SubhaloMassInRadType": _Field("mass_in_rad_type", (), _MASS, MSUN_H, per_type=True),
    "SubhaloLen": _Field("n_part", (), integer=True),
    "SubhaloLenType": _Field("n_part_type", (), integer=True, per_type=True),
    "SubhaloGrNr": _Field("host", (), integer=True),
    "SubhaloGroupNr": _Field("host", (), integer=True),
    "SubhaloRankInGr": _Field("rank_in_group", (), integer=True),
    "SubhaloVmax": _Field("vmax", (), _VELOCITY, KM_S),
    "SubhaloVelDisp": _Field("vel_disp", (), _VELOCITY, KM_S),
    "SubhaloSpin": _Field("spin_vec", (3,), _SPIN, KPC_H_KM_S),
    "SubhaloHalfmassRad": _Field("r_half", (), _RADIUS, COMOVING_MPC_H),
    "SubhaloHalfmassRadType": _Field("r_half_type", (), _RADIUS, COMOVING_KPC_H, per_type=True),
    "SubhaloVmaxRad": _Field("r_vmax", (), _RADIUS, COMOVING_MPC_H),
    "SubhaloSFR": _Field("sfr", (), _SFR, MSUN_YR),
    "SubhaloStarMetallicity": _Field("star_metallicity", ()),
    "SubhaloStellarPhotometrics": _Field("photometrics", (8,)),
    "SubhaloFlag": _Field("flag", (), integer=True),
}
"""Subhalo datasets read by ``read_group_catalog(kind="subhalos")``; some only feed derived columns."""

COLUMN_UNITS: dict[str, str] = {
    "mass_type": "Msun/h",
    "mass_in_rad_type": "Msun/h",
    "m200c": "Msun/h",
    "r200c": "Mpc/h",
    "m200m": "Msun/h",
    "r200m": "Mpc/h",
    "m500c": "Msun/h",
    "r500c": "Mpc/h",
    "mvir": "Msun/h",
    "rvir": "Mpc/h",
    "host_m200c": "Msun/h",
    "vmax": "km/s",
    "spin": "(kpc/h)(km/s)",
    "spin_vec": "(kpc/h)(km/s)",
    "r_half": "Mpc/h",
    "r_vmax": "Mpc/h",
    "subhalo_mass": "Msun/h",
}
"""Units of the columns that ``cosmoseg.data.table.STANDARD_UNITS`` does not define."""

_RAW_ONLY = ("r_half_type", "sfr", "star_metallicity", "photometrics", "flag", "rank_in_group")
"""Columns read only to derive others (galaxy properties, is_central); not in the output as such."""

_CONTEXT = "group catalog"


@dataclasses.dataclass(frozen=True)
class _Header:
    path: Path
    n_groups: int
    n_groups_total: int
    n_subhalos: int
    n_subhalos_total: int
    num_files: int | None
    box_size: float
    redshift: float
    units: CodeUnits
    cosmology: dict[str, float | None]


def _count(
    attrs: Any, path: Path, names: tuple[str, ...], problems: ProblemCollector, *, required: bool = True
) -> int | None:
    """The first of the attributes ``names`` present in Header, as a count."""
    for name in names:
        if name in attrs:
            return as_count(plain(attrs[name]), f"{path}: Header/{name}", problems)
    if required:
        problems.add(f"{path}: attribute Header/{' or Header/'.join(names)} is missing")
    return None


def _read_header(
    handle: h5py.File, path: Path, code_units: Mapping[str, float] | None, problems: ProblemCollector
) -> _Header | None:
    if "Header" not in handle:
        problems.add(f"{path}: no Header group: not a FoF/Subfind group catalog")
        return None
    attrs = handle["Header"].attrs
    start = len(problems.problems)
    check_comoving(handle, path, problems)
    n_groups = _count(attrs, path, ("Ngroups_ThisFile",), problems)
    n_groups_total = _count(attrs, path, ("Ngroups_Total",), problems)
    n_subhalos = _count(attrs, path, ("Nsubgroups_ThisFile", "Nsubhalos_ThisFile"), problems, required=False) or 0
    n_sub_total = _count(attrs, path, ("Nsubgroups_Total", "Nsubhalos_Total"), problems, required=False) or 0
    num_files = _count(attrs, path, ("NumFiles", "NumFilesPerSnapshot"), problems, required=False)
    box_size, _ = header_float(handle, path, "BoxSize", problems)
    if box_size is not None and box_size <= 0:
        problems.add(f"{path}: Header/BoxSize must be positive, got {box_size:g}")
    redshift, _ = header_redshift(handle, path, problems)
    units = read_code_units(handle, path, problems, code_units)
    cosmology = {name: header_float(handle, path, name, problems, required=False)[0] for name in COSMOLOGY_ATTRIBUTES}
    if len(problems.problems) > start:
        return None
    assert n_groups is not None and n_groups_total is not None and box_size is not None and redshift is not None
    return _Header(
        path, n_groups, n_groups_total, n_subhalos, n_sub_total, num_files, box_size, redshift, units, cosmology
    )


def _check_headers(headers: list[_Header], files: list[Path], problems: ProblemCollector) -> None:
    check_same({h.path: h.box_size for h in headers}, "Header/BoxSize", problems)
    check_same({h.path: h.redshift for h in headers}, "the redshift", problems)
    check_same({h.path: h.n_groups_total for h in headers}, "Header/Ngroups_Total", problems)
    check_same({h.path: h.n_subhalos_total for h in headers}, "the total number of subhaloes", problems)
    check_same({h.path: h.num_files for h in headers}, "Header/NumFiles", problems)
    check_same({h.path: h.units.text for h in headers}, "the unit attributes", problems)
    for name in headers[0].cosmology:
        check_same({h.path: h.cosmology[name] for h in headers}, name, problems)
    problems.problems.extend(check_file_count(files, headers[0].num_files, "NumFiles"))
    for what, this, total in (
        ("Ngroups", [h.n_groups for h in headers], headers[0].n_groups_total),
        ("Nsubgroups", [h.n_subhalos for h in headers], headers[0].n_subhalos_total),
    ):
        if sum(this) != total:
            problems.add(
                f"{files[0]}: Header/{what}_Total = {total}, but the files' {what}_ThisFile add up to {sum(this)}"
            )


@dataclasses.dataclass
class _Raw:
    """What was read: columns (converted, NumPy), box, provenance, conversions per dataset."""

    columns: dict[str, np.ndarray]
    datasets: dict[str, str]  # column -> dataset it came from
    conversions: dict[str, Conversion]
    headers: list[_Header]
    files: list[Path]
    box: Box
    provenance: dict[str, str]
    n_types: int | None = None
    """The number of particle types (columns) of the catalog's ``*Type`` arrays; None without any."""


def _read_section(
    headers: list[_Header],
    section: str,
    fields: Mapping[str, _Field],
    count: str,
    *,
    a: float,
    h: float,
    problems: ProblemCollector,
    only: tuple[str, ...] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, Conversion], int | None]:
    """Read the datasets of ``section`` ("Group" or "Subhalo") from every file that has rows, converted.

    count: the header attribute of the row count ("n_groups" or "n_subhalos" of ``_Header``).
    only: read just these datasets (when present).
    Returns columns by name, the dataset each came from, the conversion of each converted dataset, and the
    number of particle types of the ``*Type`` arrays (None without any). A ``*Type`` array whose width differs
    between files, or from another ``*Type`` array, is a problem.
    """
    pieces: dict[str, list[np.ndarray]] = {}
    present_in: dict[Path, set[str]] = {}
    conversions: dict[str, tuple[Path, Conversion]] = {}
    widths: dict[str, tuple[Path, int]] = {}
    for header in headers:
        n = getattr(header, count)
        if n == 0:
            continue
        with open_hdf5(header.path) as handle:
            if section not in handle:
                problems.add(
                    f"{header.path}: the header counts {n} {section} rows, but the file has no {section} group"
                )
                continue
            group = handle[section]
            names = [name for name in fields if name in group and (only is None or name in only)]
            present_in[header.path] = set(names)
            for name in names:
                field = fields[name]
                values = _read_dataset(group[name], header.path, n, field, problems)
                if values is None:
                    continue
                if field.per_type:
                    first_width = widths.setdefault(name, (header.path, values.shape[1]))
                    if first_width[1] != values.shape[1]:
                        problems.add(
                            f"dataset {section}/{name} has {first_width[1]} particle types (columns) in "
                            f"{first_width[0]} but {values.shape[1]} in {header.path}: the chunks of one catalog "
                            "come from one run (one NTYPES)"
                        )
                        continue
                if field.convention is not None and field.target is not None:
                    conv = conversion(group[name], header.path, field.convention, field.target, header.units, a=a, h=h)
                    first = conversions.setdefault(name, (header.path, conv))
                    if not math.isclose(first[1].factor, conv.factor, rel_tol=1e-6):
                        problems.add(
                            f"unit attributes of {section}/{name} disagree between files: {first[0]} "
                            f"({first[1].source}) and {header.path} ({conv.source})"
                        )
                    with np.errstate(over="ignore"):
                        values = values * conv.factor
                    bad = ~np.isfinite(values)
                    if bad.any():
                        problems.add(
                            f"{header.path}: dataset {section}/{name} has {int(bad.sum())} value(s) that overflow "
                            f"float64 once converted to {field.target.name} (x {conv.factor:g}), the first in row "
                            f"{int(np.argwhere(bad)[0][0])}"
                        )
                        continue
                pieces.setdefault(name, []).append(values)
    if present_in:
        everywhere = set.intersection(*present_in.values())
        for path, names in present_in.items():
            for name in sorted(names - everywhere):
                lacking = next(p for p, n in present_in.items() if name not in n)
                problems.add(f"dataset {section}/{name} is in {path} but not in {lacking}")
                pieces.pop(name, None)
    wanted = [name for name, field in fields.items() if field.required and (only is None or name in only)]
    for name in wanted:
        for path, names in present_in.items():
            if name not in names:
                problems.add(f"{path}: dataset {section}/{name} is missing")
    columns: dict[str, np.ndarray] = {}
    datasets: dict[str, str] = {}
    for name, parts in pieces.items():
        column = fields[name].column
        if column in columns:
            continue  # SubhaloGrNr and SubhaloGroupNr name the same column
        columns[column] = np.concatenate(parts)
        datasets[column] = f"{section}/{name}"
    if not present_in:  # no rows anywhere: the required columns, empty
        for name in wanted:
            field = fields[name]
            columns[field.column] = np.zeros((0, *field.trailing), dtype=np.int64 if field.integer else np.float64)
            datasets[field.column] = f"{section}/{name}"
    n_types = None
    if widths:
        by_width: dict[int, list[str]] = {}
        for name, (path, width) in widths.items():
            by_width.setdefault(width, []).append(f"{section}/{name} ({path})")
        if len(by_width) > 1:
            listing = "; ".join(f"{width} in {', '.join(names)}" for width, names in sorted(by_width.items()))
            problems.add(
                f"the *Type arrays have different numbers of particle types (columns): {listing}; one run writes "
                "them all with NTYPES columns"
            )
        n_types = max(by_width)
    return columns, datasets, {fields[name].column: conv for name, (_, conv) in conversions.items()}, n_types


def _read_dataset(dataset: Any, path: Path, n: int, field: _Field, problems: ProblemCollector) -> np.ndarray | None:
    where = f"{path}: dataset {dataset.name.lstrip('/')}"
    if not isinstance(dataset, h5py.Dataset):
        problems.add(f"{where} is not a dataset")
        return None
    if field.per_type:
        if dataset.shape[:1] != (n,):
            problems.add(f"{where} has shape {dataset.shape}, but the header's row count implies ({n}, NTYPES)")
            return None
        if not (dataset.ndim == 1 or (dataset.ndim == 2 and 1 <= dataset.shape[1] <= MAX_TYPES)):
            problems.add(
                f"{where} has shape {dataset.shape}, but a per-type array has shape ({n}, NTYPES) with 1 <= NTYPES "
                f"<= {MAX_TYPES} particle types"
            )
            return None
    elif dataset.shape[:1] != (n,) or dataset.shape[1:] != field.trailing:
        want = (n, *field.trailing)
        problems.add(f"{where} has shape {dataset.shape}, but the header's row count implies {want}")
        return None
    values = np.asarray(dataset[()])
    if field.per_type and values.ndim == 1:  # Gadget-4 writes a one-column block as (N,)
        values = values.reshape(n, 1)
    if field.integer:
        if not np.issubdtype(values.dtype, np.integer):
            problems.add(f"{where} holds {values.dtype}, not integers")
            return None
        return values.astype(np.int64)
    if not np.issubdtype(values.dtype, np.number):
        problems.add(f"{where} holds {values.dtype}, not numbers")
        return None
    values = values.astype(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        problems.add(f"{where} has {int(bad.sum())} non-finite value(s) (NaN or inf), the first in row {row}")
        return None
    return values


def _read(
    path: PathArg,
    section: str,
    *,
    cosmology: Cosmology | None,
    code_units: Mapping[str, float] | None,
) -> _Raw:
    """Headers, box and the converted datasets of ``section``; for subhaloes also their groups' GroupFirstSub
    and Group_M_Crit200 (as ``group_first_sub`` and ``group_m200c``)."""
    files = resolve_files(path, what="group catalog")
    problems = ProblemCollector()
    headers: list[_Header] = []
    for file in files:
        with open_hdf5(file) as handle:
            header = _read_header(handle, file, code_units, problems)
        if header is not None:
            headers.append(header)
    problems.raise_if_any(ArtifactError, context=_CONTEXT)
    _check_headers(headers, files, problems)
    problems.raise_if_any(ArtifactError, context=_CONTEXT)
    first = headers[0]
    cosmo, provenance = header_cosmology(lambda name: first.cosmology[name], cosmology, str(first.path))
    a = 1.0 / (1.0 + first.redshift)
    h = first.cosmology["HubbleParam"] or cosmo.h
    fields = GROUP_FIELDS if section == "Group" else SUBHALO_FIELDS
    count = "n_groups" if section == "Group" else "n_subhalos"
    columns, datasets, conversions, n_types = _read_section(
        headers, section, fields, count, a=a, h=h, problems=problems
    )
    if section == "Subhalo":
        group_columns, _, _, _ = _read_section(
            headers,
            "Group",
            GROUP_FIELDS,
            "n_groups",
            a=a,
            h=h,
            problems=problems,
            only=("GroupFirstSub", "Group_M_Crit200"),
        )
        columns.update({f"group_{name}": values for name, values in group_columns.items()})
    problems.raise_if_any(ArtifactError, context=_CONTEXT)
    # BoxSize shares the comoving length unit of the positions (their dataset attributes, else the code units)
    ratio = conversions["pos"].unit_ratio if "pos" in conversions else snap_power_of_ten(first.units.length_cm / MPC_CM)
    box = Box(length=first.box_size * ratio, redshift=first.redshift, cosmology=cosmo)
    mass = columns["mass"]
    if mass.size and not (mass > 0).all():
        bad = int((mass <= 0).sum())
        path, row = _locate(headers, count, int(np.argmax(mass <= 0)))
        raise ArtifactError(
            f"{path}: dataset {datasets['mass']} has {bad} non-positive mass(es) (the first in row {row}); haloes "
            "need positive masses",
            context=_CONTEXT,
        )
    return _Raw(columns, datasets, conversions, headers, files, box, provenance, n_types)


def _locate(headers: list[_Header], count: str, row: int) -> tuple[Path, int]:
    """The file that holds row ``row`` of the concatenated section, and the row within that file."""
    for header in headers:
        n = getattr(header, count)
        if row < n:
            return header.path, row
        row -= n
    return headers[-1].path, row


def _meta(raw: _Raw, source: str) -> dict[str, str | int | float | bool]:
    first = raw.headers[0]
    meta: dict[str, str | int | float | bool] = {
        "source": source,
        "path": str(first.path),
        "n_files": len(raw.files),
        "units_from": first.units.source,
        **raw.provenance,
    }
    if raw.n_types is not None:
        meta["n_types"] = raw.n_types
    for column in ("pos", "vel", "mass"):
        if column in raw.conversions:
            target = {"pos": COMOVING_MPC_H, "vel": KM_S, "mass": MSUN_H}[column]
            meta[f"{column}_conversion"] = f"{raw.datasets[column]}: " + describe(raw.conversions[column], target)
    return meta


_DERIVED_FROM = {"spin": "Subhalo/SubhaloSpin", "host_m200c": "Group/Group_M_Crit200"}
"""The dataset each derived floating-point column is computed from (for messages)."""


def _check_castable(columns: Mapping[str, np.ndarray], raw: _Raw, count: str, dtype: torch.dtype) -> None:
    """An ArtifactError naming the file, dataset and row when a floating-point column is not finite once cast to
    ``dtype`` (a float32 holds at most 3.4e38: a mass of 1e30 in units of 1e10 Msun/h overflows it)."""
    problems = ProblemCollector()
    for name, values in columns.items():
        if not np.issubdtype(values.dtype, np.floating):
            continue
        if not values.size:
            continue
        bad_rows = (~torch.isfinite(torch.from_numpy(np.ascontiguousarray(values)).to(dtype))).numpy()
        if bad_rows.ndim > 1:
            bad_rows = bad_rows.reshape(bad_rows.shape[0], -1).any(axis=1)
        if not bad_rows.any():
            continue
        row = int(np.argmax(bad_rows))
        if name in raw.datasets:
            path, local = _locate(raw.headers, count, row)
            problems.add(
                f"{path}: dataset {raw.datasets[name]} has {int(bad_rows.sum())} row(s) that are not finite as {dtype} "
                f"(column {name!r}, the first in row {local}): the values overflow it once converted"
            )
        else:
            problems.add(
                f"{raw.headers[0].path}: column {name!r} (from {_DERIVED_FROM.get(name, 'the catalog')}) has "
                f"{int(bad_rows.sum())} row(s) that are not finite as {dtype}, the first in row {row} of the catalog"
            )
    problems.raise_if_any(ArtifactError, context=_CONTEXT)


def _tensors(
    columns: Mapping[str, np.ndarray], dtype: torch.dtype, device: torch.device | str
) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name, values in columns.items():
        tensor = torch.from_numpy(np.ascontiguousarray(values))
        if tensor.is_floating_point():
            tensor = tensor.to(dtype)
        out[name] = tensor.to(device)
    return out


def _subhalo_columns(raw: _Raw) -> tuple[dict[str, np.ndarray], dict[str, str | int | float | bool]]:
    """Halo-property columns of subhaloes: host, is_central, spin magnitude, host_m200c; raw-only columns dropped."""
    columns = dict(raw.columns)
    meta: dict[str, str | int | float | bool] = {}
    n = columns["pos"].shape[0]
    columns["subhalo_id"] = np.arange(n, dtype=np.int64)
    first_sub = columns.pop("group_first_sub", None)
    host_m200c = columns.pop("group_m200c", None)
    rank = columns.get("rank_in_group")
    if "host" in columns:
        host = columns["host"]
        n_groups = raw.headers[0].n_groups_total
        if host.size and (host.min() < 0 or host.max() >= n_groups):
            raise ArtifactError(
                f"{raw.headers[0].path}: dataset {raw.datasets['host']} points outside the {n_groups} groups "
                f"(range [{host.min()}, {host.max()}])",
                context=_CONTEXT,
            )
        if first_sub is not None:
            columns["is_central"] = first_sub[host] == columns["subhalo_id"]
            meta["is_central_from"] = "subhalo index == GroupFirstSub of its group"
        elif rank is not None:
            columns["is_central"] = rank == 0
            meta["is_central_from"] = "SubhaloRankInGr == 0"
        if host_m200c is not None:
            columns["host_m200c"] = host_m200c[host]
    if "is_central" not in columns:
        meta["is_central_from"] = "not available (no SubhaloGrNr with GroupFirstSub or SubhaloRankInGr)"
    if "spin_vec" in columns:
        columns["spin"] = np.linalg.norm(columns["spin_vec"], axis=1)
    for name in _RAW_ONLY:
        columns.pop(name, None)
    return columns, meta


def _galaxy_columns(
    raw: _Raw, *, mstar_field: str, log_ssfr_floor: float
) -> tuple[dict[str, np.ndarray], dict[str, str | int | float | bool]]:
    """Galaxy properties of every subhalo (finite everywhere; ``has_stars`` says where they mean something).

    log_mstar: log10 of the stellar mass ``mstar_field[:, 4]``, Msun/h.
    log_ssfr: log10(SFR / M*) in 1/yr with SFR in Msun/yr and M* in Msun (= Msun/h ÷ h), clipped below at
        ``log_ssfr_floor`` (SFR = 0 lands there; ``ssfr_at_floor`` flags those rows).
    color_gi: g − i from ``SubhaloStellarPhotometrics`` (absolute magnitudes).
    log_radius: log10 of the stellar half-mass radius ``SubhaloHalfmassRadType[:, 4]``, comoving kpc/h.
    log_z: log10(Z / Z_SUN) of ``SubhaloStarMetallicity``.
    Subhaloes without stars get ``NO_STARS_LOG_MSTAR``, ``log_ssfr_floor``, ``NO_STARS_COLOR_GI``,
    ``LOG_RADIUS_FLOOR`` and ``LOG_Z_FLOOR``.
    """
    column = SUBHALO_FIELDS[mstar_field].column
    if column not in raw.columns:
        return {}, {"galaxy_columns": f"none: the catalog has no Subhalo/{mstar_field}"}
    n_types = raw.columns[column].shape[1]
    if n_types <= STELLAR_TYPE:
        return {}, {
            "galaxy_columns": f"none: Subhalo/{mstar_field} has {n_types} particle type(s) (NTYPES = {n_types}), so "
            f"no stellar type {STELLAR_TYPE}: no stars, as in a gravity-only catalog"
        }
    mstar = raw.columns[column][:, STELLAR_TYPE]
    stars = mstar > 0
    if not stars.any():
        return {}, {"galaxy_columns": f"none: no subhalo has stars in Subhalo/{mstar_field} (gravity-only run?)"}
    h = raw.box.cosmology.h
    out: dict[str, np.ndarray] = {"has_stars": stars}
    meta: dict[str, str | int | float | bool] = {"log_mstar_from": f"Subhalo/{mstar_field}[:, {STELLAR_TYPE}]"}
    safe_mstar = np.where(stars, mstar, 1.0)
    out["log_mstar"] = np.where(stars, np.log10(safe_mstar), NO_STARS_LOG_MSTAR)
    if "sfr" in raw.columns:
        sfr = raw.columns["sfr"]
        ssfr = np.where(stars & (sfr > 0), sfr / (safe_mstar / h), 0.0)
        with np.errstate(divide="ignore"):
            log_ssfr = np.where(ssfr > 0, np.log10(np.where(ssfr > 0, ssfr, 1.0)), -np.inf)
        at_floor = log_ssfr < log_ssfr_floor
        out["log_ssfr"] = np.where(at_floor, log_ssfr_floor, log_ssfr)
        out["ssfr_at_floor"] = at_floor & stars
        meta["log_ssfr_floor"] = log_ssfr_floor
        meta["n_ssfr_at_floor"] = int((at_floor & stars).sum())
    if "photometrics" in raw.columns:
        mags = raw.columns["photometrics"]
        g, i = mags[:, PHOTOMETRY_BAND["g"]], mags[:, PHOTOMETRY_BAND["i"]]
        valid = stars & (np.abs(g) < 100) & (np.abs(i) < 100)
        out["color_gi"] = np.where(valid, g - i, NO_STARS_COLOR_GI)
        meta["n_color_missing"] = int((stars & ~valid).sum())
    if "r_half_type" in raw.columns and raw.columns["r_half_type"].shape[1] > STELLAR_TYPE:
        radius = raw.columns["r_half_type"][:, STELLAR_TYPE]
        good = stars & (radius > 0)
        log_radius = np.where(good, np.log10(np.where(good, radius, 1.0)), LOG_RADIUS_FLOOR)
        out["log_radius"] = np.maximum(log_radius, LOG_RADIUS_FLOOR)
        meta["log_radius_units"] = "log10 comoving kpc/h (stellar half-mass radius)"
    if "star_metallicity" in raw.columns:
        metallicity = raw.columns["star_metallicity"]
        good = stars & (metallicity > 0)
        log_z = np.where(good, np.log10(np.where(good, metallicity, Z_SUN) / Z_SUN), LOG_Z_FLOOR)
        out["log_z"] = np.maximum(log_z, LOG_Z_FLOOR)
        meta["z_sun"] = Z_SUN
    return out, meta


def read_group_catalog(
    path: PathArg,
    *,
    kind: str = "groups",
    cosmology: Cosmology | None = None,
    no_stars: str = "floor",
    mstar_field: str = "SubhaloMassType",
    log_ssfr_floor: float = -13.0,
    code_units: Mapping[str, float] | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> HaloCatalog:
    """Read the FoF groups or the Subfind subhaloes of a TNG-style group catalog as a ``HaloCatalog``.

    path: a catalog file, its first chunk ``fof_subhalo_tab_XXX.0.hdf5`` (the other chunks are found next to
        it), a stem, a directory with the chunks (``groups_XXX``), or a list of files.
    kind: "groups" (``Group/Group*``) or "subhalos" (``Subhalo/Subhalo*``).
    cosmology: what the file does not store (σ_8, n_s, ...) and Ω_b; Ω_m and h come from the file (see
        ``read_gadget_snapshot``).
    no_stars: subhaloes without stars, when the catalog has stars at all: "floor" keeps them with the fill
        values of ``_galaxy_columns`` and ``has_stars = False``; "drop" leaves them out.
    mstar_field: "SubhaloMassType" (all bound stars) or "SubhaloMassInRadType" (within twice the stellar
        half-mass radius) for ``log_mstar``.
    log_ssfr_floor: the lowest ``log_ssfr`` (1/yr); SFR = 0 gets it.
    code_units: code units for files that lack them (see ``read_gadget_snapshot``).
    dtype, device: of the floating-point columns; integer columns are int64, flags bool.

    Columns (present when the file has the datasets behind them):

    - groups: ``pos`` (N, 3) Mpc/h, ``vel`` (N, 3) km/s, ``mass`` Msun/h (GroupMass), ``n_part``, ``m200c``
      Msun/h, ``r200c`` Mpc/h, ``m200m``, ``r200m``, ``m500c``, ``r500c``, ``mvir``, ``rvir`` (Bryan & Norman
      top-hat), ``mass_type`` (N, NTYPES) Msun/h, ``n_part_type`` (N, NTYPES), ``n_subs``, ``first_sub``.
    - subhalos: ``pos``, ``vel``, ``mass`` (SubhaloMass), ``n_part``, ``host`` (SubhaloGrNr), ``is_central``,
      ``host_m200c``, ``subhalo_id`` (row in the full catalog), ``vmax`` and ``vel_disp`` km/s, ``spin``
      (|specific angular momentum|, (kpc/h)(km/s)) and ``spin_vec`` (N, 3), ``r_half`` and ``r_vmax``
      Mpc/h, ``mass_type``, ``mass_in_rad_type`` (N, NTYPES) Msun/h, ``n_part_type`` (N, NTYPES); with stars
      (NTYPES > 4 and some M* > 0) also ``has_stars``, ``log_mstar``, ``log_ssfr``, ``ssfr_at_floor``,
      ``color_gi``, ``log_radius``, ``log_z`` (see ``read_tng_galaxies``).

    The ``*Type`` arrays keep the file's number of particle types NTYPES (1..6, the same in every chunk and
    array; 6 in TNG, often 2 in Gadget-4 DM + gas runs), recorded in ``meta["n_types"]``. A Gadget-4 FoF-only
    catalog (``fof_tab_XXX.N.hdf5``, no Subhalo group) reads as groups, and as an empty subhalo catalog.
    σ_8 and n_s come from Gadget-4's ``Parameters/Sigma8`` and ``PrimordialIndex`` where it stores them (see
    ``cosmoseg.io._hdf5.header_cosmology``).

    Raises ArtifactError naming the file and dataset: missing Header, counts or required datasets (GroupPos /
    GroupMass, SubhaloPos / SubhaloMass), shapes that contradict the header counts, counts that do not add up,
    missing chunks, headers or units that disagree between files, unit attributes that contradict the field
    (h_scaling, a_scaling), *Type arrays of more than 6 types or of widths that differ between chunks or arrays,
    non-finite values (also after conversion to ``dtype``, naming the row), non-positive masses, SubhaloGrNr
    outside the groups.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if no_stars not in ("floor", "drop"):
        raise ValueError(f"no_stars must be 'floor' or 'drop', got {no_stars!r}")
    if mstar_field not in ("SubhaloMassType", "SubhaloMassInRadType"):
        raise ValueError(f"mstar_field must be 'SubhaloMassType' or 'SubhaloMassInRadType', got {mstar_field!r}")
    if not math.isfinite(log_ssfr_floor):
        raise ValueError(f"log_ssfr_floor must be finite, got {log_ssfr_floor}")
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
    raw = _read(path, "Group" if kind == "groups" else "Subhalo", cosmology=cosmology, code_units=code_units)
    meta = _meta(raw, f"tng-{kind}")
    meta["kind"] = kind
    if kind == "groups":
        columns = dict(raw.columns)
    else:
        columns, extra = _subhalo_columns(raw)
        galaxy, galaxy_meta = _galaxy_columns(raw, mstar_field=mstar_field, log_ssfr_floor=log_ssfr_floor)
        columns.update(galaxy)
        meta.update(extra)
        meta.update(galaxy_meta)
    _check_castable(columns, raw, "n_groups" if kind == "groups" else "n_subhalos", dtype)
    if kind == "subhalos" and "has_stars" in columns and no_stars == "drop":
        keep = columns["has_stars"]
        meta["n_dropped_without_stars"] = int((~keep).sum())
        columns = {name: values[keep] for name, values in columns.items()}
    units = {name: unit for name, unit in COLUMN_UNITS.items() if name in columns}
    return HaloCatalog(columns=_tensors(columns, dtype, device), units=units, box=raw.box, meta=meta)


def read_tng_groups(path: PathArg, **options: Any) -> HaloCatalog:
    """The FoF groups of a group catalog: ``read_group_catalog(path, kind="groups", **options)``."""
    return read_group_catalog(path, kind="groups", **options)


def read_tng_subhalos(path: PathArg, **options: Any) -> HaloCatalog:
    """The Subfind subhaloes of a group catalog: ``read_group_catalog(path, kind="subhalos", **options)``."""
    return read_group_catalog(path, kind="subhalos", **options)


def read_tng_galaxies(
    path: PathArg,
    *,
    min_log_mstar: float = 9.0,
    drop_flagged: bool = True,
    mstar_field: str = "SubhaloMassType",
    log_ssfr_floor: float = -13.0,
    cosmology: Cosmology | None = None,
    code_units: Mapping[str, float] | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> GalaxyCatalog:
    """The galaxies of a hydrodynamical group catalog: subhaloes with log10(M* / (Msun/h)) >= ``min_log_mstar``.

    min_log_mstar: the stellar-mass threshold, log10 Msun/h (stellar mass from ``mstar_field[:, 4]``).
    drop_flagged: leave out subhaloes with ``SubhaloFlag == 0`` (TNG: not of cosmological origin, e.g. clumps
        formed inside a galaxy's disc), when the catalog has the flag.
    mstar_field, log_ssfr_floor, cosmology, code_units, dtype, device: as in ``read_group_catalog``.

    Columns: ``pos`` (N, 3) comoving Mpc/h, ``vel`` (N, 3) peculiar km/s, ``log_mstar`` log10 Msun/h,
    ``log_ssfr`` log10 1/yr (SFR in Msun/yr over M* in Msun; at ``log_ssfr_floor`` where SFR = 0, flagged by
    ``ssfr_at_floor``), ``color_gi`` mag (g − i absolute magnitudes, where the catalog has photometry),
    ``log_radius`` log10 comoving kpc/h (stellar half-mass radius), ``log_z`` log10 Z/Z_sun with
    Z_sun = 0.0127, ``host`` (FoF group index), ``is_central``, ``host_m200c`` Msun/h, ``subhalo_id``,
    ``subhalo_mass`` Msun/h (SubhaloMass), ``vmax`` and ``vel_disp`` km/s. Columns whose datasets the catalog
    lacks are left out (``meta`` says which were made).

    Raises ArtifactError for the problems of ``read_group_catalog``, and when the catalog has no stellar masses.
    """
    if mstar_field not in ("SubhaloMassType", "SubhaloMassInRadType"):
        raise ValueError(f"mstar_field must be 'SubhaloMassType' or 'SubhaloMassInRadType', got {mstar_field!r}")
    if not (math.isfinite(min_log_mstar) and math.isfinite(log_ssfr_floor)):
        raise ValueError(f"min_log_mstar and log_ssfr_floor must be finite, got {min_log_mstar}, {log_ssfr_floor}")
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
    raw = _read(path, "Subhalo", cosmology=cosmology, code_units=code_units)
    columns, extra = _subhalo_columns(raw)
    galaxy, galaxy_meta = _galaxy_columns(raw, mstar_field=mstar_field, log_ssfr_floor=log_ssfr_floor)
    if not galaxy:
        raise ArtifactError(
            f"{raw.headers[0].path}: {galaxy_meta['galaxy_columns']}; galaxies need stellar masses", context=_CONTEXT
        )
    keep = galaxy["has_stars"] & (galaxy["log_mstar"] >= min_log_mstar)
    meta = _meta(raw, "tng-galaxies")
    meta.update(extra)
    meta.update(galaxy_meta)
    meta["min_log_mstar"] = min_log_mstar
    if drop_flagged and "flag" in raw.columns:
        flagged = raw.columns["flag"] == 0
        meta["n_dropped_flagged"] = int((keep & flagged).sum())
        keep &= ~flagged
    selected: dict[str, np.ndarray] = {"pos": columns["pos"]}
    for name in ("vel", "host", "is_central", "host_m200c", "subhalo_id", "vmax", "vel_disp"):
        if name in columns:
            selected[name] = columns[name]
    selected["subhalo_mass"] = columns["mass"]
    selected.update({name: values for name, values in galaxy.items() if name != "has_stars"})
    meta["n_galaxies"] = int(keep.sum())
    _check_castable(selected, raw, "n_subhalos", dtype)
    units = {name: unit for name, unit in COLUMN_UNITS.items() if name in selected}
    return GalaxyCatalog(
        columns=_tensors({name: values[keep] for name, values in selected.items()}, dtype, device),
        units=units,
        box=raw.box,
        meta=meta,
    )


BOX_RTOL = 1e-5
"""Relative tolerance on the box side when a catalog is checked against its snapshot (:func:`check_same_box`)."""
REDSHIFT_ATOL = 1e-3
"""Absolute tolerance on the redshift when a catalog is checked against its snapshot (:func:`check_same_box`)."""


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
