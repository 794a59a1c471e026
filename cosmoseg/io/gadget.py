"""Gadget-4, AREPO and IllustrisTNG HDF5 snapshots as ``Particles``.

The layout (one file, or chunks ``snap_XXX.N.hdf5`` that are concatenated in chunk order):

- ``Header`` attributes: ``BoxSize``, ``Redshift`` and/or ``Time`` (the scale factor), ``MassTable``,
  ``NumPart_ThisFile``, ``NumPart_Total`` (+ ``NumPart_Total_HighWord``), ``NumFilesPerSnapshot``; Gadget-2/3
  and AREPO add ``Omega0``, ``OmegaLambda``, ``OmegaBaryon``, ``HubbleParam`` and often the code units.
- ``Parameters`` (Gadget-4): the cosmology and the code units ``UnitLength_in_cm``, ``UnitMass_in_g``,
  ``UnitVelocity_in_cm_per_s``; ``Config``: compile options (not read).
- ``PartTypeK/Coordinates`` (N, 3), ``Velocities`` (N, 3), ``ParticleIDs`` (N,), and ``Masses`` (N,) when
  ``MassTable[K]`` is 0. AREPO/TNG (and Gadget-4) datasets carry ``a_scaling``, ``h_scaling``, ``to_cgs``.

Conversions (see ``cosmoseg.io._hdf5`` for the general rule):

- positions: comoving code length/h → comoving Mpc/h: × UnitLength_in_cm / 3.085678e24 (kpc/h: ÷ 1000).
- velocities: Gadget stores u = v_pec / sqrt(a) (km/s for the default UnitVelocity_in_cm_per_s = 1e5); the
  peculiar velocity is v_pec = u · sqrt(a) (AREPO/TNG say the same with a_scaling = 0.5).
- masses: code mass/h → Msun/h: × UnitMass_in_g / 1.989e33 (the default 1.989e43 g is 1e10 Msun/h).

Checks beyond the layout: non-finite positions, velocities or masses are named with their file and dataset;
the dark matter of a full periodic box must weigh Ω_m ρ_crit L³ (or (Ω_m − Ω_b) ρ_crit L³ next to gas and
stars), which catches a wrong code mass unit or h (``check_mass``); particle ids that are an n³ lattice's,
numbered from any first id (a gas + DM run numbers its dark matter after the gas), become Lagrangian grid ids.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np
import torch

from cosmoseg.data import Box, Cosmology, Particles
from cosmoseg.errors import ArtifactError, ProblemCollector
from cosmoseg.io._hdf5 import (
    COMOVING_MPC_H,
    COSMOLOGY_ATTRIBUTES,
    KM_S,
    MSUN_H,
    CodeUnits,
    Convention,
    Conversion,
    PathArg,
    Target,
    as_count,
    as_float,
    check_comoving,
    check_file_count,
    check_same,
    conversion,
    describe,
    header_cosmology,
    header_float,
    header_redshift,
    open_hdf5,
    per_type,
    plain,
    read_code_units,
    resolve_files,
    snap_power_of_ten,
)

__all__ = ["IDS_TO_GRID_MODES", "lagrangian_grid_ids", "read_gadget_snapshot"]

IDS_TO_GRID_MODES: tuple[str, ...] = ("auto", "none", "one-based", "zero-based", "offset")
"""How ``read_gadget_snapshot`` maps particle ids to cosmoseg's Lagrangian grid ids (see ``lagrangian_grid_ids``)."""

VELOCITY_A_SCALINGS = (-1.0, 0.0, 0.5)
"""The ``a_scaling`` of a velocity dataset that make physical sense: a · v_pec (the code's momentum variable,
as FoF averages it), v_pec, or v_pec / √a (Gadget's snapshot convention)."""

COORDINATES = Convention(a=1.0, h=-1.0, length=1.0, description="comoving positions")
VELOCITIES = Convention(
    a=0.5,
    velocity=1.0,
    description="velocities u = v_pec / sqrt(a), v_pec = u sqrt(a)",
    a_allowed=VELOCITY_A_SCALINGS,
)
MASSES = Convention(h=-1.0, mass=1.0, description="particle masses")

MASS_RTOL = 1e-5
"""Per-particle masses that agree to this relative tolerance (float32 storage) count as equal."""

RHO_CRIT = 2.77536627e11
"""The critical density today, (Msun/h) / (Mpc/h)³: 3 H0² / (8 π G) with H0 = 100 h km/s/Mpc."""

MASS_CHECK_RTOL = 0.03
"""``check_mass``: the dark matter's total mass N·m may differ from Ω_m ρ_crit L³ (or (Ω_m − Ω_b) ρ_crit L³) by
this relative amount. Codes use slightly different G and solar masses (0.1%); a wrong mass unit, a mass in
Msun instead of Msun/h (a factor h) or a wrong Ω_b (5-20%) are far outside it."""

MAX_BARYON_FRACTION = 0.2
"""``check_mass`` of a run with gas or stars whose Ω_b is unknown: the dark matter may hold between
(1 − MAX_BARYON_FRACTION) Ω_m and Ω_m of the critical density (Planck's Ω_b / Ω_m is 0.157)."""

BARYON_TYPES = (0, 4, 5)
"""Particle types of baryons in Gadget / AREPO / TNG: gas, stars (and wind), black holes."""

_CONTEXT = "Gadget snapshot"


@dataclasses.dataclass(frozen=True)
class _Header:
    """What one file's header says (code units; counts for the requested particle type)."""

    path: Path
    n_this: int
    n_total: int
    num_files: int | None
    box_size: float
    redshift: float
    redshift_source: str
    mass_table: float
    units: CodeUnits
    cosmology: dict[str, float | None]
    n_this_all: tuple[int, ...] = ()
    """NumPart_ThisFile of every particle type (as many as the file has: NTYPES)."""
    n_total_all: tuple[int, ...] = ()
    """NumPart_Total (+ HighWord) of every particle type."""
    mass_table_all: tuple[float, ...] = ()
    """MassTable of every particle type (code units)."""


def _read_header(
    handle: h5py.File, path: Path, part_type: int, code_units: Mapping[str, float] | None, problems: ProblemCollector
) -> _Header | None:
    if "Header" not in handle:
        problems.add(f"{path}: no Header group: not a Gadget/AREPO HDF5 snapshot")
        return None
    attrs = handle["Header"].attrs
    start = len(problems.problems)
    check_comoving(handle, path, problems)

    def counts(name: str) -> int | None:
        if name not in attrs:
            problems.add(f"{path}: attribute Header/{name} is missing")
            return None
        value = per_type(plain(attrs[name]), part_type, f"{path}: Header/{name}", problems)
        return None if value is None else as_count(value, f"{path}: Header/{name}[{part_type}]", problems)

    n_this = counts("NumPart_ThisFile")
    n_total = counts("NumPart_Total")
    if n_total is not None and "NumPart_Total_HighWord" in attrs:
        high = counts("NumPart_Total_HighWord")
        n_total = None if high is None else n_total + (high << 32)
    n_this_all = _all_types(attrs, "NumPart_ThisFile", integer=True)
    n_total_all = _all_types(attrs, "NumPart_Total", integer=True)
    high_all = _all_types(attrs, "NumPart_Total_HighWord", integer=True)
    if len(high_all) == len(n_total_all):
        n_total_all = tuple(int(lo) + (int(hi) << 32) for lo, hi in zip(n_total_all, high_all, strict=True))
    mass_table_all = _all_types(attrs, "MassTable", integer=False)
    num_files = None
    if "NumFilesPerSnapshot" in attrs:
        num_files = as_count(plain(attrs["NumFilesPerSnapshot"]), f"{path}: Header/NumFilesPerSnapshot", problems)
    box_size = None
    if "BoxSize" not in attrs:
        problems.add(f"{path}: attribute Header/BoxSize is missing")
    else:
        sides = np.atleast_1d(np.asarray(plain(attrs["BoxSize"]), dtype=float))
        if sides.size not in (1, 3) or not np.all(sides == sides[0]):
            problems.add(f"{path}: Header/BoxSize = {sides.tolist()} is not one side of a cubic box")
        else:
            box_size = as_float(sides[0], f"{path}: Header/BoxSize", problems)
            if box_size is not None and box_size <= 0:
                problems.add(f"{path}: Header/BoxSize must be positive, got {box_size:g}")
    redshift, redshift_source = header_redshift(handle, path, problems)
    mass_table = None
    if "MassTable" not in attrs:
        problems.add(f"{path}: attribute Header/MassTable is missing")
    else:
        value = per_type(plain(attrs["MassTable"]), part_type, f"{path}: Header/MassTable", problems)
        mass_table = None if value is None else as_float(value, f"{path}: Header/MassTable[{part_type}]", problems)
        if mass_table is not None and mass_table < 0:
            problems.add(f"{path}: Header/MassTable[{part_type}] must be >= 0, got {mass_table:g}")
    units = read_code_units(handle, path, problems, code_units)
    cosmology = {name: header_float(handle, path, name, problems, required=False)[0] for name in COSMOLOGY_ATTRIBUTES}
    if len(problems.problems) > start:
        return None
    assert n_this is not None and n_total is not None and box_size is not None
    assert redshift is not None and mass_table is not None
    return _Header(
        path,
        n_this,
        n_total,
        num_files,
        box_size,
        redshift,
        redshift_source,
        mass_table,
        units,
        cosmology,
        n_this_all=tuple(int(n) for n in n_this_all),
        n_total_all=tuple(int(n) for n in n_total_all),
        mass_table_all=tuple(float(m) for m in mass_table_all),
    )


def _all_types(attrs: h5py.AttributeManager, name: str, *, integer: bool) -> tuple[float, ...]:
    """A per-type header array as a tuple (empty when absent or not numbers; ``per_type`` reports the problems
    of the entry that is read)."""
    if name not in attrs:
        return ()
    array = np.atleast_1d(np.asarray(plain(attrs[name])))
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.number) or not np.all(np.isfinite(array)):
        return ()
    if integer and not np.all(array >= 0):
        return ()
    return tuple(int(v) if integer else float(v) for v in array)


def _check_headers(headers: list[_Header], files: list[Path], part_type: int, problems: ProblemCollector) -> None:
    """Headers that must agree across files, the file count and the particle count."""
    check_same({h.path: h.box_size for h in headers}, "Header/BoxSize", problems)
    check_same({h.path: h.redshift for h in headers}, "the redshift", problems)
    check_same({h.path: h.mass_table for h in headers}, f"Header/MassTable[{part_type}]", problems)
    check_same({h.path: h.n_total for h in headers}, f"Header/NumPart_Total[{part_type}]", problems)
    check_same({h.path: h.num_files for h in headers}, "Header/NumFilesPerSnapshot", problems)
    check_same({h.path: h.units.text for h in headers}, "the unit attributes", problems)
    for name in headers[0].cosmology:
        check_same({h.path: h.cosmology[name] for h in headers}, name, problems)
    problems.problems.extend(check_file_count(files, headers[0].num_files, "NumFilesPerSnapshot"))
    total = sum(h.n_this for h in headers)
    declared = headers[0].n_total
    if total != declared:
        problems.add(
            f"{files[0]}: Header/NumPart_Total[{part_type}] = {declared}, but the files' NumPart_ThisFile[{part_type}] "
            f"add up to {total}"
        )
    elif declared == 0:
        problems.add(f"{files[0]}: the snapshot holds no particles of type {part_type} (NumPart_Total is 0)")


def _dataset(
    group: h5py.Group, name: str, path: Path, n: int, trailing: tuple[int, ...], problems: ProblemCollector
) -> h5py.Dataset | None:
    """Dataset ``name`` of ``group`` with shape (n, *trailing), or None with a problem recorded."""
    where = f"{path}: dataset {group.name.lstrip('/')}/{name}"
    if name not in group:
        problems.add(f"{where} is missing")
        return None
    dataset = group[name]
    if not isinstance(dataset, h5py.Dataset):
        problems.add(f"{where} is not a dataset")
        return None
    if dataset.shape != (n, *trailing):
        want = f"({n}{''.join(f', {t}' for t in trailing)}{',' if not trailing else ''})"
        problems.add(f"{where} has shape {dataset.shape}, but the header (NumPart_ThisFile) implies {want}")
        return None
    if not np.issubdtype(dataset.dtype, np.number):
        problems.add(f"{where} holds {dataset.dtype}, not numbers")
        return None
    return dataset


def _same_conversion(
    conversions: dict[str, tuple[Path, Conversion]], key: str, path: Path, new: Conversion, problems: ProblemCollector
) -> None:
    """Record the first file's conversion of ``key``; a later file with another factor is a problem."""
    if key not in conversions:
        conversions[key] = (path, new)
        return
    first_path, first = conversions[key]
    if not math.isclose(first.factor, new.factor, rel_tol=1e-6):
        problems.add(
            f"unit attributes of {key} disagree between files: {first_path} ({first.source}) and {path} ({new.source})"
        )


def _lattice_note(first: int, n: int) -> str:
    """A sentence for ``meta``: ids numbered from ``first`` that are an n³ lattice's."""
    if first == 0:
        return f"zero-based grid ids of a {n}^3 lattice"
    if first == 1:
        return f"one-based grid ids of a {n}^3 lattice, shifted by -1"
    return (
        f"grid ids of a {n}^3 lattice offset by {first} (ids after {first - 1} ids of another type, as in a gas + DM "
        "run)"
    )


def _check_grid_arguments(mode: str, id_offset: int | None) -> None:
    """ValueError for an unknown ``ids_to_grid`` mode, or an ``id_offset`` that does not go with it."""
    if mode not in IDS_TO_GRID_MODES:
        raise ValueError(f"ids_to_grid must be one of {IDS_TO_GRID_MODES}, got {mode!r}")
    if mode == "offset":
        if not (isinstance(id_offset, int | np.integer) and not isinstance(id_offset, bool) and id_offset >= 0):
            raise ValueError(
                f"ids_to_grid='offset' needs id_offset, the id of the first lattice point (an integer >= 0), "
                f"got {id_offset!r}"
            )
    elif id_offset is not None:
        raise ValueError(f"id_offset is only used with ids_to_grid='offset', not with ids_to_grid={mode!r}")


def lagrangian_grid_ids(
    ids: np.ndarray, mode: str = "auto", *, id_offset: int | None = None
) -> tuple[np.ndarray, int, str]:
    """Map particle ids to cosmoseg's 0-based flat C-order Lagrangian ids, where they are a grid's.

    ids: (N,) int64 particle ids as stored.
    mode: "zero-based" (ids are a permutation of 0..N-1 with N = n^3), "one-based" (of 1..N, as N-GenIC writes:
        id = (i n + j) n + k + 1), "offset" (of id_offset..id_offset+N-1: the lattice numbered from
        ``id_offset``, e.g. N+1 for the dark matter of a gas + DM run whose gas holds ids 1..N), "auto" (ids that
        are a permutation of lo..lo+N-1 for any lo >= 0, lo being the smallest id; else keep the ids) or "none"
        (keep).
    id_offset: the id of the first lattice point, with ``mode="offset"`` only (an integer >= 0).

    Returns (ids, n_grid, description): the mapped ids (a new array: id - first id), the grid side n (0 when the
    ids are kept) and a sentence for ``meta``. An explicit mode that does not fit, or a bad ``id_offset``, raises
    ValueError.
    """
    _check_grid_arguments(mode, id_offset)
    if mode == "none":
        return ids, 0, "kept as stored (ids_to_grid='none')"
    n_part = int(ids.size)
    n = round(n_part ** (1.0 / 3.0)) if n_part else 0
    n = next((m for m in (n - 1, n, n + 1) if m > 0 and m**3 == n_part), 0)
    if not n:
        reason = f"{n_part} particles are not a cube n^3"
    else:
        lo, hi = int(ids.min()), int(ids.max())
        first = {"zero-based": 0, "one-based": 1, "offset": int(id_offset or 0), "auto": lo}[mode]
        if first < 0:
            reason = f"the ids span [{lo}, {hi}] and are negative"
        elif lo != first or hi != first + n_part - 1:
            if mode == "auto":
                reason = f"the ids span [{lo}, {hi}], not {n_part} consecutive ids"
            else:
                reason = f"the ids span [{lo}, {hi}], not [{first}, {first + n_part - 1}]"
        else:
            seen = np.zeros(n_part, dtype=bool)
            seen[ids - first] = True
            if seen.all():
                return ids - first, n, _lattice_note(first, n)
            reason = f"the ids span [{lo}, {hi}] but repeat, so they are not a grid's"
    if mode == "auto":
        return ids, 0, f"kept as stored (not a grid's: {reason})"
    raise ValueError(f"ids_to_grid={mode!r} does not fit: {reason}")


def read_gadget_snapshot(
    path: PathArg,
    *,
    part_type: int = 1,
    cosmology: Cosmology | None = None,
    load_velocities: bool = True,
    ids_to_grid: str = "auto",
    id_offset: int | None = None,
    check_mass: bool = True,
    code_units: Mapping[str, float] | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Particles:
    """Read one particle type of a Gadget-4 / AREPO / TNG HDF5 snapshot as cosmoseg ``Particles``.

    path: a snapshot file, its first chunk ``snap_XXX.0.hdf5`` (the other chunks are found next to it), a stem
        (``.../snap_XXX``), a directory with the chunks of one snapshot, or a list of files. Chunks are
        concatenated in chunk order; their headers must agree.
    part_type: the particle type to read (1: dark matter, the high-resolution dark matter of a zoom).
    cosmology: gives what the file does not store (σ_8 and n_s of most runs, w0, wa) and Ω_b; Ω_m (``Omega0``),
        h (``HubbleParam``), and σ_8 (``Sigma8``) and n_s (``PrimordialIndex``) where a Gadget-4 run that made
        its own ICs stores them, come from the file and must agree with it when given. Without it: Planck 2018
        for σ_8 and n_s, the file's ``OmegaBaryon`` (when positive) or 0.0486 for Ω_b. ``meta`` records which
        values came from where.
    load_velocities: read ``Velocities``; otherwise the velocities are zero (and ``meta`` says so).
    ids_to_grid: "auto" | "none" | "one-based" | "zero-based" | "offset" (see ``lagrangian_grid_ids``): with
        N = n^3 particles whose ids are a permutation of lo..lo+N-1 ("auto": any lo >= 0, the smallest id;
        "offset": lo = ``id_offset``), the ids become cosmoseg's 0-based flat C-order Lagrangian ids (id - lo)
        and ``n_grid = n``; otherwise the ids are kept and ``n_grid = 0``.
    id_offset: with ``ids_to_grid="offset"``: the id of the first lattice point (N + 1 for the dark matter of a
        gas + DM run whose N gas particles hold ids 1..N).
    check_mass: for the dark matter (part_type 1) of a full periodic box, check that N·m is Ω_m ρ_crit L³ (no
        other particle type with mass) or (Ω_m − Ω_b) ρ_crit L³ (with gas / stars / black holes) to
        ``MASS_CHECK_RTOL``; a mismatch (a wrong code mass unit or h) is an ArtifactError. Pass False for a
        zoom run whose file holds only the high-resolution particles, or a sub-volume. Skipped (``meta`` says
        why) for other particle types and when PartType2/3 also hold particles with mass.
    code_units: ``UnitLength_in_cm`` / ``UnitMass_in_g`` / ``UnitVelocity_in_cm_per_s`` for files that lack
        them (e.g. ``{"UnitLength_in_cm": 3.085678e24}`` for a run in Mpc/h); a value the file contradicts is
        an error. Default: the file's, else Gadget's (kpc/h, 1e10 Msun/h, km/s).
    dtype: floating-point dtype of positions and velocities (conversions are done in float64).
    device: where the tensors go.

    Returns Particles: pos (N, 3) comoving Mpc/h wrapped into [0, L), vel (N, 3) peculiar km/s, ids (N,) int64,
    mass (Msun/h), box (side in Mpc/h, redshift, cosmology), n_grid, meta (provenance of units and cosmology,
    ``ids``, ``mass_check``).

    Raises ArtifactError naming the file, the dataset and the problem: a missing header, BoxSize <= 0, missing
    datasets, shapes that contradict NumPart_ThisFile, NumPart_ThisFile that do not add up to NumPart_Total,
    missing chunks, headers or unit attributes that disagree between files, unit attributes that contradict the
    code units or the field (h_scaling, a_scaling), non-finite positions, velocities or masses, particles far
    outside the box, unequal particle masses (Particles needs one mass) or a ``MassTable`` entry of 0 without
    ``Masses``, a total mass that contradicts the cosmology (``check_mass``).
    """
    if not (isinstance(part_type, int) and 0 <= part_type < 6):
        raise ValueError(f"part_type must be an integer in 0..5, got {part_type!r}")
    _check_grid_arguments(ids_to_grid, id_offset)
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
    files = resolve_files(path, what="snapshot")
    problems = ProblemCollector()
    headers: list[_Header] = []
    for file in files:
        with open_hdf5(file) as handle:
            header = _read_header(handle, file, part_type, code_units, problems)
        if header is not None:
            headers.append(header)
    problems.raise_if_any(ArtifactError, context=_CONTEXT)
    _check_headers(headers, files, part_type, problems)
    problems.raise_if_any(ArtifactError, context=_CONTEXT)

    first = headers[0]
    a = 1.0 / (1.0 + first.redshift)
    h_value = first.cosmology["HubbleParam"]
    cosmo, provenance = header_cosmology(lambda name: first.cosmology[name], cosmology, str(first.path))
    h = h_value if h_value is not None else cosmo.h
    n_total = first.n_total
    float_np = torch.empty((), dtype=dtype).numpy().dtype
    pos = np.empty((n_total, 3), dtype=float_np)
    vel = np.zeros((n_total, 3), dtype=float_np)
    ids = np.empty(n_total, dtype=np.int64)
    conversions: dict[str, tuple[Path, Conversion]] = {}
    mass_sum, mass_min, mass_max, mass_count = 0.0, math.inf, -math.inf, 0
    group_name = f"PartType{part_type}"
    offset = 0
    for header in headers:
        n = header.n_this
        if n == 0:
            continue
        with open_hdf5(header.path) as handle:
            if group_name not in handle:
                problems.add(f"{header.path}: NumPart_ThisFile[{part_type}] = {n}, but the file has no {group_name}")
                continue
            group = handle[group_name]
            part = slice(offset, offset + n)
            offset += n
            coords = _dataset(group, "Coordinates", header.path, n, (3,), problems)
            if coords is not None:
                conv = conversion(coords, header.path, COORDINATES, COMOVING_MPC_H, header.units, a=a, h=h)
                _same_conversion(conversions, f"{group_name}/Coordinates", header.path, conv, problems)
                _store(pos, part, coords, conv.factor, header.path, COMOVING_MPC_H, problems)
            if load_velocities:
                velocities = _dataset(group, "Velocities", header.path, n, (3,), problems)
                if velocities is not None:
                    conv = conversion(velocities, header.path, VELOCITIES, KM_S, header.units, a=a, h=h)
                    _same_conversion(conversions, f"{group_name}/Velocities", header.path, conv, problems)
                    _store(vel, part, velocities, conv.factor, header.path, KM_S, problems)
            particle_ids = _dataset(group, "ParticleIDs", header.path, n, (), problems)
            if particle_ids is not None:
                ids[part] = _read_ids(particle_ids, header.path, problems)
            has_masses = "Masses" in group
            if header.mass_table == 0 and not has_masses:
                problems.add(
                    f"{header.path}: Header/MassTable[{part_type}] is 0 (per-particle masses), but dataset "
                    f"{group_name}/Masses is missing"
                )
            elif has_masses:
                masses = _dataset(group, "Masses", header.path, n, (), problems)
                if masses is not None:
                    conv = conversion(masses, header.path, MASSES, MSUN_H, header.units, a=a, h=h)
                    _same_conversion(conversions, f"{group_name}/Masses", header.path, conv, problems)
                    values = np.empty(n, dtype=np.float64)
                    if _store(values, slice(0, n), masses, conv.factor, header.path, MSUN_H, problems):
                        mass_sum += float(values.sum())
                        mass_min, mass_max = min(mass_min, float(values.min())), max(mass_max, float(values.max()))
                        mass_count += n
    problems.raise_if_any(ArtifactError, context=_CONTEXT)

    coordinate_conversion = conversions[f"{group_name}/Coordinates"][1]
    length = first.box_size * coordinate_conversion.unit_ratio
    lo, hi = float(pos.min()), float(pos.max())
    if lo < -0.5 * length or hi > 1.5 * length:
        raise ArtifactError(
            f"{first.path}: dataset {group_name}/Coordinates spans [{lo:g}, {hi:g}] Mpc/h but Header/BoxSize is "
            f"{length:g} Mpc/h: the positions and the box are in different units, or the file is corrupt",
            context=_CONTEXT,
        )
    mass = _particle_mass(first, part_type, mass_sum, mass_min, mass_max, mass_count)
    try:
        grid_ids, n_grid, ids_note = lagrangian_grid_ids(ids, ids_to_grid, id_offset=id_offset)
    except ValueError as err:
        raise ArtifactError(f"{first.path}: dataset {group_name}/ParticleIDs: {err}", context=_CONTEXT) from err
    mass_note = (
        _check_total_mass(headers, part_type, mass, length, cosmo, cosmology)
        if check_mass
        else "not checked (check_mass=False)"
    )
    meta: dict[str, str | int | float | bool] = {
        "source": "gadget-hdf5",
        "path": str(first.path),
        "n_files": len(files),
        "part_type": part_type,
        "redshift_from": f"Header/{first.redshift_source}",
        "units_from": first.units.source,
        "length_unit_mpc_h": coordinate_conversion.unit_ratio,
        "positions": describe(conversions[f"{group_name}/Coordinates"][1], COMOVING_MPC_H),
        "velocities": describe(conversions[f"{group_name}/Velocities"][1], KM_S)
        if load_velocities
        else "not loaded (zero)",
        "ids": ids_note,
        "mass_check": mass_note,
        **provenance,
    }
    box = Box(length=length, redshift=first.redshift, cosmology=cosmo)
    return Particles(
        pos=torch.from_numpy(pos).to(device),
        vel=torch.from_numpy(vel).to(device),
        ids=torch.from_numpy(grid_ids).to(device),
        mass=mass,
        box=box,
        n_grid=n_grid,
        meta=meta,
    )


def _store(
    target: np.ndarray,
    part: slice,
    dataset: h5py.Dataset,
    factor: float,
    path: Path,
    unit: Target,
    problems: ProblemCollector,
) -> bool:
    """Write ``dataset`` × ``factor`` into ``target[part]`` (in target's dtype); False with a problem recorded when
    the stored values are not finite (NaN or inf), or their conversion overflows the target's dtype."""
    where = f"{path}: dataset {dataset.name.lstrip('/')}"
    stored = np.asarray(dataset[()], dtype=np.float64)
    bad = ~np.isfinite(stored)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        problems.add(f"{where} has {int(bad.sum())} non-finite value(s) (NaN or inf), the first in row {row}")
        return False
    with np.errstate(over="ignore"):
        target[part] = stored * factor
    bad = ~np.isfinite(target[part])
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        problems.add(
            f"{where} has {int(bad.sum())} value(s) that overflow {target.dtype} once converted to {unit.name} "
            f"(x {factor:g}), the first in row {row}"
        )
        return False
    return True


def _types_with_mass(headers: list[_Header], part_type: int) -> dict[int, int]:
    """Particle types other than ``part_type`` that hold particles with mass (MassTable > 0, or a ``Masses``
    dataset in a chunk that has particles of the type): type -> NumPart_Total."""
    first = headers[0]
    massive: dict[int, int] = {}
    for k, count in enumerate(first.n_total_all):
        if k == part_type or count == 0:
            continue
        if k < len(first.mass_table_all) and first.mass_table_all[k] > 0:
            massive[k] = count
            continue
        for header in headers:
            if k < len(header.n_this_all) and header.n_this_all[k] > 0:
                with open_hdf5(header.path) as handle:
                    if f"PartType{k}/Masses" in handle:
                        massive[k] = count
                break
    return massive


def _check_total_mass(
    headers: list[_Header], part_type: int, mass: float, length: float, cosmo: Cosmology, given: Cosmology | None
) -> str:
    """The ``mass_check`` sentence for ``meta``; an ArtifactError when the dark matter's total mass N·m is not
    the share of the critical density the cosmology gives a full periodic box of side ``length`` (Mpc/h)."""
    first = headers[0]
    if part_type != 1:
        return f"not checked (part_type {part_type}: only the dark matter, PartType1, is checked)"
    massive = _types_with_mass(headers, part_type)
    others = {k: n for k, n in massive.items() if k not in BARYON_TYPES}
    if others:
        listing = ", ".join(f"PartType{k} ({n} particles)" for k, n in sorted(others.items()))
        return (
            f"not checked: {listing} also hold mass (a zoom run's low-resolution particles?), so PartType1 is not "
            "all the matter"
        )
    n_part = first.n_total
    total = n_part * mass
    critical = RHO_CRIT * length**3
    omega_m = cosmo.omega_m
    if not massive:
        low = high = omega_m
        share = f"Ω_m ρ_crit L³ with Ω_m = {omega_m:g} (no other particle type has mass: PartType1 is all the matter)"
    else:
        baryons = ", ".join(f"PartType{k}" for k in sorted(massive))
        file_omega_b = first.cosmology.get("OmegaBaryon")
        if file_omega_b is not None and file_omega_b > 0:
            omega_b, source = file_omega_b, "the file's OmegaBaryon"
        elif given is not None:
            omega_b, source = given.omega_b, "the cosmology argument"
        else:
            omega_b, source = None, ""
        if omega_b is not None:
            low = high = omega_m - omega_b
            share = (
                f"(Ω_m - Ω_b) ρ_crit L³ with Ω_m = {omega_m:g}, Ω_b = {omega_b:g} ({source}; {baryons} hold the "
                "baryons)"
            )
        else:
            low, high = (1.0 - MAX_BARYON_FRACTION) * omega_m, omega_m
            share = (
                f"between (1 - {MAX_BARYON_FRACTION:g}) Ω_m and Ω_m of ρ_crit L³ with Ω_m = {omega_m:g} ({baryons} "
                "hold the baryons, and neither the file nor a cosmology argument gives Ω_b)"
            )
    expected_low, expected_high = low * critical, high * critical
    if expected_low * (1 - MASS_CHECK_RTOL) <= total <= expected_high * (1 + MASS_CHECK_RTOL):
        expected = min(max(total, expected_low), expected_high)
        return (
            f"N·m = {total:.6g} Msun/h = {total / expected:.4f} x the expected {expected:.6g} Msun/h, {share}; "
            f"tolerance {MASS_CHECK_RTOL:.0%}"
        )
    expected = expected_low if total < expected_low else expected_high
    ratio = total / expected
    hints = []
    if snap_power_of_ten(ratio) != ratio:
        hints.append("a power of ten points to UnitMass_in_g")
    h = cosmo.h
    for power, label in ((1, "h"), (-1, "1/h")):
        if math.isclose(ratio, h**power, rel_tol=MASS_CHECK_RTOL):
            hints.append(
                f"a ratio of {label} = {h**power:.4g} points to masses in Msun where Msun/h is meant, or the reverse"
            )
    hint = f" ({'; '.join(hints)})" if hints else ""
    raise ArtifactError(
        f"{first.path}: PartType1 holds N = {n_part} particles of {mass:.6g} Msun/h, N·m = {total:.6g} Msun/h, but "
        f"a full periodic box of {length:g} Mpc/h holds {expected:.6g} Msun/h of dark matter, {share}: ratio "
        f"{ratio:.4g}, beyond the tolerance of {MASS_CHECK_RTOL:.0%}; the likely cause is the code mass unit "
        f"(UnitMass_in_g = {first.units.mass_g:g} g, {first.units.source}) or h{hint}; pass check_mass=False "
        "for a zoom run or a sub-volume",
        context=_CONTEXT,
    )


def _read_ids(dataset: h5py.Dataset, path: Path, problems: ProblemCollector) -> np.ndarray:
    """ParticleIDs as int64; unsigned ids beyond the int64 range are a problem."""
    where = f"{path}: dataset {dataset.name.lstrip('/')}"
    values = np.asarray(dataset[()])
    if not np.issubdtype(values.dtype, np.integer):
        problems.add(f"{where} holds {values.dtype}, not integers")
        return np.zeros(values.shape, dtype=np.int64)
    if values.dtype == np.uint64 and values.size and int(values.max()) > np.iinfo(np.int64).max:
        problems.add(f"{where} holds ids above 2^63 - 1, which torch's int64 cannot hold")
        return np.zeros(values.shape, dtype=np.int64)
    return values.astype(np.int64)


def _particle_mass(header: _Header, part_type: int, total: float, lo: float, hi: float, count: int) -> float:
    """The one particle mass in Msun/h: MassTable, or the per-particle Masses when they are all equal."""
    where = f"{header.path}: PartType{part_type}"
    if header.mass_table > 0:
        ratio = snap_power_of_ten(MASSES.to_cgs(header.units) / MSUN_H.cgs)
        mass = header.mass_table * ratio
        if count and not (math.isclose(lo, mass, rel_tol=MASS_RTOL) and math.isclose(hi, mass, rel_tol=MASS_RTOL)):
            raise ArtifactError(
                f"{where}/Masses span [{lo:g}, {hi:g}] Msun/h but Header/MassTable[{part_type}] gives {mass:g} Msun/h",
                context=_CONTEXT,
            )
        return mass
    if not lo > 0:
        raise ArtifactError(f"{where}/Masses must be positive, the smallest is {lo:g}", context=_CONTEXT)
    if not math.isclose(lo, hi, rel_tol=MASS_RTOL):
        raise ArtifactError(
            f"{where}/Masses are not all equal (they span [{lo:g}, {hi:g}] Msun/h); cosmoseg's Particles need one "
            "particle mass: read a particle type of equal masses (the high-resolution type of a zoom run)",
            context=_CONTEXT,
        )
    return total / count
