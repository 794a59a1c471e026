"""The fields of dm2gal (Kasmanoff et al. 2020): dark-matter mass, (sub)halo mass and stellar mass on one grid.

The network of the paper reads a two-channel cube — the dark-matter mass field of a gravity-only run and the
mass-weighted subhalo field of the same run — and predicts the stellar mass of the central voxel, whose truth is
the stellar-mass field of the hydrodynamic twin (or here of a galaxy model painted onto the haloes). All three are
masses per voxel in Msun/h on the same periodic n^3 grid of the same box; the networks see them through one
transform, :func:`to_log_mass` (log10(1 + M)), undone by :func:`from_log_mass`. This module is the one place where
that transform and its unit :data:`LOG_UNIT` are defined.

Mass assignment
---------------
* dark matter: cloud-in-cell (CIC, :func:`cosmoseg.mesh.assign.paint_cic`) of the particles, each carrying the
  particle mass: the standard density estimate of an N-body run, conserving the total mass exactly.
* (sub)haloes: NGP (default) or CIC of the halo masses at the halo positions (``halo_assignment``). NGP puts each
  halo's mass in the one voxel that holds its centre — where the target's central galaxy lands, by the same NGP.
  CIC spreads it over 2³ voxels (the input then changes continuously as a halo crosses a voxel face), and the
  network has to work out which of them holds the centre: for 76% of the centrals of the paint suite it is the
  cloud's largest share, and a successor trained on CIC haloes placed its galaxies with precision / recall
  0.47 / 0.54 against 0.9 on NGP haloes (docs/paint.md). Both conserve the total halo mass.
* stellar mass: nearest grid point (NGP) sum of 10**log_mstar, so each galaxy lands in exactly one voxel — the
  one containing it — and the target's occupancy (empty voxel or not) is that of the catalog.

Voxel (i, j, k) covers [i, i+1) x [j, j+1) x [k, k+1) times L/n and is centred at ((i, j, k) + 1/2) L/n
(:mod:`cosmoseg.mesh.grid`). The box is periodic: mass near a face wraps to the opposite face.
"""

from __future__ import annotations

import math

import torch

from cosmoseg.data import Box, Catalog, Field, GalaxyCatalog, Particles
from cosmoseg.errors import ProblemCollector, ValidationError
from cosmoseg.mesh.assign import paint, paint_cic

__all__ = [
    "CHANNELS",
    "HALO_ASSIGNMENTS",
    "LOG_UNIT",
    "check_same_grid",
    "dm_mass_field",
    "from_log_mass",
    "paint_fields",
    "stellar_mass_field",
    "subhalo_mass_field",
    "to_log_mass",
    "voxel_size",
]

LOG_UNIT = "log10(1 + Msun/h)"
"""Unit of the channels of :func:`paint_fields`: log10(1 + M) with M the mass per voxel in Msun/h."""

CHANNELS = ("log_dm", "log_halo", "log_mstar")
"""Channel names of :func:`paint_fields`: dark matter, (sub)haloes, stellar mass (the last only with galaxies)."""

_LN10 = math.log(10.0)


def to_log_mass(m: torch.Tensor, *, inplace: bool = False) -> torch.Tensor:
    """log10(1 + m) of masses ``m`` (any shape, Msun/h, m >= 0); same shape, unit :data:`LOG_UNIT`.

    0 maps to 0, so empty voxels stay 0. Computed as log1p(m) / ln 10 (accurate for small m). ``inplace``
    overwrites ``m`` (floating point) and returns it, for grids too large to copy.
    """
    if inplace:
        return m.log1p_().div_(_LN10)
    return torch.log1p(m) / _LN10


def from_log_mass(y: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`to_log_mass`: 10**y - 1 in Msun/h (any shape), clamped at 0.

    Negative ``y`` (a network may predict slightly below 0 for an empty voxel) gives 0, never a negative mass.
    """
    return torch.expm1(y * _LN10).clamp_min(0.0)


def default_grid(particles: Particles) -> int:
    """The particles' Lagrangian grid ``n_grid`` (the cube root of their number without one), rounded up to even:
    one voxel per particle, as dm2gal's fields."""
    side = max(int(particles.n_grid or round(len(particles) ** (1.0 / 3.0))), 2)
    return side + side % 2


def voxel_size(field: Field) -> float:
    """Side of one voxel of ``field``, Mpc/h: box length / n."""
    return field.box.length / field.n


def _same_length(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)


def check_same_grid(a: Field, b: Field, where: str) -> None:
    """Raise :class:`~cosmoseg.errors.ValidationError` (context ``where``) unless ``a`` and ``b`` share a grid.

    Same grid: the same cells per side n and the same box length (Mpc/h, to a relative 1e-9). The error names both
    grids, e.g. "the fields are on different grids: a is 64^3 voxels over 100 Mpc/h, b is 32^3 voxels over ...".
    """
    if a.n != b.n or not _same_length(a.box.length, b.box.length):
        raise ValidationError(
            f"the fields are on different grids: a is {a.n}^3 voxels over {a.box.length:g} Mpc/h "
            f"({voxel_size(a):g} Mpc/h voxels), b is {b.n}^3 voxels over {b.box.length:g} Mpc/h "
            f"({voxel_size(b):g} Mpc/h voxels)",
            context=where,
        )


def _check_n(problems: ProblemCollector, n: int) -> None:
    ok = isinstance(n, int) and not isinstance(n, bool) and n >= 2 and n % 2 == 0
    problems.check(ok, f"grid n must be an even integer >= 2, got {n!r}")


def _check_finite(problems: ProblemCollector, tensor: torch.Tensor, what: str) -> None:
    """Record a problem naming ``what`` when ``tensor`` holds NaN or infinite values."""
    if not tensor.is_floating_point() or not tensor.numel():
        return
    if bool(torch.isfinite(tensor.sum(dtype=torch.float64))):
        return
    bad = int((~torch.isfinite(tensor)).sum())
    if bad:
        problems.add(f"{what} has {bad} NaN or infinite value(s)")


def _column(problems: ProblemCollector, catalog: Catalog, name: str, who: str) -> torch.Tensor | None:
    if name not in catalog:
        problems.add(f"{who} has no column {name!r}; it has {sorted(catalog.columns)}")
        return None
    column = catalog[name]
    if column.ndim != 1:
        problems.add(f"{who} column {name!r} must have shape (N,), got {tuple(column.shape)}")
        return None
    _check_finite(problems, column, f"{who} column {name!r}")
    return column


def _box_problem(problems: ProblemCollector, reference: tuple[str, float], other: tuple[str, float]) -> None:
    (ref_name, ref_length), (name, length) = reference, other
    problems.check(
        _same_length(ref_length, length),
        f"{name} live in a box of {length:g} Mpc/h but {ref_name} in one of {ref_length:g} Mpc/h: "
        "all inputs must share one box",
    )


def dm_mass_field(particles: Particles, n: int) -> torch.Tensor:
    """(n, n, n) dark-matter mass per voxel, Msun/h: CIC of the particles, each of mass ``particles.mass``.

    The grid covers ``particles.box`` (periodic), lies on the particles' device in their position dtype, and sums
    to len(particles) × particles.mass. A particle at a voxel centre puts all its mass into that voxel.
    """
    problems = ProblemCollector()
    _check_n(problems, n)
    _check_finite(problems, particles.pos, "particles 'pos'")
    problems.raise_if_any(context="dm_mass_field")
    return _paint_dm(particles, n, None)


def _paint_dm(particles: Particles, n: int, out: torch.Tensor | None) -> torch.Tensor:
    grid = paint_cic(particles.pos, n, particles.box.length, out=out)
    return grid.mul_(particles.mass)


def subhalo_mass_field(
    catalog: Catalog, box: Box | float, n: int, *, mass_column: str = "mass", assignment: str = "ngp"
) -> torch.Tensor:
    """(n, n, n) (sub)halo mass per voxel, Msun/h: ``assignment`` ("ngp" or "cic") of ``catalog[mass_column]`` at
    ``catalog["pos"]``.

    catalog: haloes or subhaloes with ``pos`` (N, 3) Mpc/h and ``mass_column`` (N,) Msun/h.
    box: the box of the grid (a ``Box`` or its side in Mpc/h); the catalog's box must have the same side.
    n: voxels per side (even, >= 2).

    NGP: each halo in the voxel of its centre; CIC: spread over 2³ voxels (see the module docstring). The grid sums
    to the total mass of the catalog. On the catalog's device, float32 unless the masses are float64.
    """
    length = box.length if isinstance(box, Box) else float(box)
    problems = ProblemCollector()
    _check_n(problems, n)
    _check_assignment(problems, assignment)
    _box_problem(problems, ("the grid", length), ("the haloes", catalog.box.length))
    _check_finite(problems, catalog["pos"], "haloes column 'pos'")
    mass = _column(problems, catalog, mass_column, "haloes")
    problems.raise_if_any(context="subhalo_mass_field")
    assert mass is not None
    dtype = torch.float64 if mass.dtype == torch.float64 else torch.float32
    out = torch.zeros((n, n, n), dtype=dtype, device=catalog["pos"].device)
    return _paint_halos(catalog, length, n, mass, out, assignment)


HALO_ASSIGNMENTS = ("ngp", "cic")


def _check_assignment(problems: ProblemCollector, assignment: str) -> None:
    if assignment not in HALO_ASSIGNMENTS:
        problems.add(f"halo assignment must be one of {HALO_ASSIGNMENTS}, got {assignment!r}")


def _paint_halos(
    catalog: Catalog, length: float, n: int, mass: torch.Tensor, out: torch.Tensor, assignment: str
) -> torch.Tensor:
    return paint(catalog["pos"], n, length, scheme=assignment, weights=mass, out=out)


def stellar_mass_field(galaxies: GalaxyCatalog, n: int) -> torch.Tensor:
    """(n, n, n) stellar mass per voxel, Msun/h: NGP sum of 10**log_mstar over the galaxies of each voxel.

    galaxies: ``pos`` (N, 3) Mpc/h and ``log_mstar`` (N,) log10 Msun/h, in ``galaxies.box`` (periodic).
    NGP: a galaxy at position x lands in voxel floor(x n / L) alone, so the field's non-empty voxels are exactly
    the voxels holding a galaxy and the grid sums to the catalog's total stellar mass. On the catalog's device,
    float32 unless ``log_mstar`` is float64 (a voxel holds few galaxies: float32 sums lose nothing that matters).
    """
    problems = ProblemCollector()
    _check_n(problems, n)
    _check_finite(problems, galaxies["pos"], "galaxies column 'pos'")
    log_mstar = _column(problems, galaxies, "log_mstar", "galaxies")
    problems.raise_if_any(context="stellar_mass_field")
    assert log_mstar is not None
    dtype = torch.float64 if log_mstar.dtype == torch.float64 else torch.float32
    return _paint_stars(galaxies, n, log_mstar, torch.zeros((n, n, n), dtype=dtype, device=galaxies["pos"].device))


def _paint_stars(galaxies: GalaxyCatalog, n: int, log_mstar: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    mstar = 10.0 ** log_mstar.to(torch.float64)
    return paint(galaxies["pos"], n, galaxies.box.length, scheme="ngp", weights=mstar, out=out)


def paint_fields(
    particles: Particles,
    halos: Catalog,
    galaxies: GalaxyCatalog | None = None,
    *,
    n: int,
    mass_column: str = "mass",
    halo_assignment: str = "ngp",
) -> Field:
    """The dm2gal fields of one box: a ``Field`` of (C, n, n, n) log10(1 + mass per voxel / (Msun/h)).

    particles: the gravity-only particles (their box is the field's box).
    halos: haloes or subhaloes with ``pos`` and ``mass_column`` (Msun/h), e.g. ``sim.fof``'s or a TNG catalog.
    galaxies: optional; with them a third channel holds the stellar-mass target (``log_mstar`` column).
    n: voxels per side, even and >= 2.
    halo_assignment: "ngp" (default) or "cic" for the halo channel (see the module docstring).

    Channels ("log_dm", "log_halo"[, "log_mstar"]) from :func:`dm_mass_field`, :func:`subhalo_mass_field` and
    :func:`stellar_mass_field` through :func:`to_log_mass`, units :data:`LOG_UNIT`, float32, on the particles'
    device. ``meta``: ``n``, ``voxel_size`` (Mpc/h), ``particle_mass`` (Msun/h), ``n_halos``, ``n_galaxies``
    (-1 without galaxies), the assignment of each channel, and ``transform`` ("log10(1 + M)").

    Raises :class:`~cosmoseg.errors.ValidationError` listing every problem at once: odd or too small n, inputs in
    boxes of different sides (both sides named), NaN or infinite positions or masses (the column named), a missing
    mass or ``log_mstar`` column.
    """
    problems = ProblemCollector()
    _check_n(problems, n)
    _check_assignment(problems, halo_assignment)
    length = particles.box.length
    reference = ("the particles", length)
    _box_problem(problems, reference, ("the haloes", halos.box.length))
    if galaxies is not None:
        _box_problem(problems, reference, ("the galaxies", galaxies.box.length))
    _check_finite(problems, particles.pos, "particles 'pos'")
    _check_finite(problems, halos["pos"], "haloes column 'pos'")
    mass = _column(problems, halos, mass_column, "haloes")
    log_mstar = None
    if galaxies is not None:
        _check_finite(problems, galaxies["pos"], "galaxies column 'pos'")
        log_mstar = _column(problems, galaxies, "log_mstar", "galaxies")
    problems.raise_if_any(context="paint_fields")
    assert mass is not None

    # every channel is painted straight into its float32 slice of one grid, and transformed in place
    device = particles.pos.device
    names = CHANNELS[: 2 if galaxies is None else 3]
    values = torch.zeros((len(names), n, n, n), dtype=torch.float32, device=device)
    _paint_dm(particles, n, values[0])
    _paint_halos(halos, length, n, mass, values[1], halo_assignment)
    if galaxies is not None:
        assert log_mstar is not None
        _paint_stars(galaxies, n, log_mstar, values[2])
    to_log_mass(values, inplace=True)
    meta: dict[str, str | int | float | bool] = {
        "n": n,
        "voxel_size": length / n,
        "particle_mass": particles.mass,
        "n_halos": len(halos),
        "n_galaxies": -1 if galaxies is None else len(galaxies),
        "assignment_log_dm": "cic",
        "assignment_log_halo": halo_assignment,
        "transform": "log10(1 + M)",
    }
    if galaxies is not None:
        meta["assignment_log_mstar"] = "ngp"
    return Field(values=values, box=particles.box, channels=names, units=(LOG_UNIT,) * len(names), meta=meta)
