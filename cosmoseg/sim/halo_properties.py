"""Properties of haloes measured on their member particles (FoF groups, or any other particle labels).

Units: comoving Mpc/h for positions and radii, Msun/h for masses, peculiar km/s for velocities. Every
property is computed for all haloes at once with scatter/gather operations on the members (no Python loop
over haloes), in float64, on the particles' device (the environment counts run on the CPU). N_h is the
number of member particles of a halo, m the particle mass, a = 1/(1+z) the box's scale factor.

Missing values follow the data model's convention (docs/data-model.md, "Missing values"): a property that has no
value for a halo is stored as 0 (``MISSING_FILL``) and the boolean column ``<name>_resolved`` beside it is False
there; read the mask, never the 0. The columns that can be missing are ``m200``, ``r200`` (``m200_resolved``,
``r200_resolved``: False where n200 = 0), ``spin`` (``spin_resolved``: False where n200 < 2) and ``concentration``
(``concentration_resolved``); every other column has a value for every halo.

Columns, how they are computed, and their resolution limits:

``pos`` (Mpc/h), ``vel`` (km/s), ``mass`` (Msun/h), ``n_part``
    Periodic centre of mass (members unwrapped around the halo's lowest-index member, averaged, wrapped back
    into [0, L)), mean velocity, N_h m and N_h. Valid for any N_h, for groups smaller than L/2.
``vel_disp`` (km/s)
    3D velocity dispersion sqrt(<|v - <v>|^2>) over all members (the 1D one is this / sqrt(3)). Its
    statistical error is about 1/sqrt(2 N_h); a particle-mesh run underestimates it in haloes whose size is
    near the force resolution (~2 mesh cells).
``pos_center`` (Mpc/h)
    Shrinking-sphere centre (Power et al. 2003): start at the centre of mass with the sphere holding every
    member, shrink the radius by ``SHRINK_FACTOR`` and recentre on the centre of mass of the members inside,
    until fewer than max(10, min(1000, N_h // 20)) members would remain. It marks the density peak, which
    the centre of mass of a merging or elongated group misses. Haloes of fewer than 10 members keep the
    centre of mass.
``n200``, ``m200`` (Msun/h), ``r200`` (Mpc/h)
    Spherical overdensity of 200 times the *critical* density at the box's redshift, around ``pos_center``,
    counting FoF members only: rho_200 = 200 rho_crit(z) a^3 in comoving units, with
    rho_crit(z) = rho_crit,0 E(z)^2 (``Cosmology.efunc``). n200 is the largest k such that the k innermost
    members have a mean density >= rho_200 (the outermost crossing), m200 = n200 m and
    r200 = (3 m200 / (4 pi rho_200))^(1/3). Missing (0, ``m200_resolved`` / ``r200_resolved`` False; n200 = 0)
    when not even the innermost member reaches rho_200. Members
    only: b = 0.2 groups enclose ~180 times the mean matter density (~60 rho_crit at z = 0), so m200c is
    below the FoF mass (0.4-0.8 of it in a PM run). Resolved for n200 >~ 50 and r200 >~ 2 force-resolution
    lengths (a PM run: 2 mesh cells).
``spin``
    Bullock et al. (2001) lambda' = |J| / (sqrt(2) M V R) with R = r200, M = m200, V = sqrt(G M / (a R)) and
    J the angular momentum of the n200 members inside r200, about their centre of mass and with their mean
    velocity removed (peculiar velocities: the Hubble flow carries no angular momentum about the centre).
    Missing (0, ``spin_resolved`` False) when n200 < 2. Poisson noise biases lambda' high below ~300 particles
    (Bett et al. 2007).
``vmax`` (km/s)
    Maximum circular velocity sqrt(G M(<r) / (a r)) over the members sorted by distance from ``pos_center``,
    from the ``VMAX_MIN_RANK``-th innermost member outwards (fewer ranks are dominated by shot noise).
    A V_max proxy that is biased low when r_max ~ 2.16 r_s lies inside the force resolution.
``concentration``, ``concentration_resolved``
    NFW concentration from the half-mass radius of the n200 members: x = r_half / r200 is inverted through
    f(c x) = f(c) / 2 with f(y) = ln(1 + y) - y / (1 + y). Resolved (the bool column True) when
    n200 >= ``concentration_min_particles`` and c lies in [``C_MIN``, ``C_MAX``]; otherwise missing (the column
    holds 0). Unbiased on NFW haloes, with a scatter of ~40% at n200 = 100, 20% at 300, 12% at 1000 and
    3% at 10^4 (the ``sim.fof`` page); r_s = r200 / c must also exceed the force resolution.
``lagr_pos`` (Mpc/h), ``lagr_inertia`` ((Mpc/h)^2), when the particles' ids refer to a Lagrangian grid
    Periodic centre of mass of the members' Lagrangian cell centres, and their (3, 3) second-moment (shape)
    tensor about it, <dq_i dq_j> (per unit mass, points at the cell centres; the continuous cells would add
    (L/n)^2 / 12 to the diagonal). Valid for any N_h; the eigenvalues of small haloes are noisy.
``log_env_density_r<R>`` (log10 of the density over the box's mean density)
    For each radius R of ``env_scales``: the number of all particles (the halo's own included) within a
    top-hat sphere of radius R around ``pos``, over the mean count of such a sphere, in log10; a count of 0
    is raised to 1 to stay finite. ``<R>`` is R in Mpc/h written with ``%g`` and "." as "p" (r1, r2p5).
    Its Poisson error is 1/sqrt(count) / ln 10; R must be < L/2. At small R the halo itself dominates.

``formation_redshifts`` adds the half-mass formation redshift where several snapshots exist.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch

from cosmoseg.data import Particles
from cosmoseg.data.table import MISSING_FILL, resolved_column
from cosmoseg.errors import ProblemCollector, ValidationError
from cosmoseg.mesh.grid import cell_centers
from cosmoseg.mesh.periodic import minimal_image, wrap

__all__ = [
    "C_MAX",
    "C_MIN",
    "DEFAULT_ENV_SCALES",
    "G_NEWTON",
    "MAY_BE_MISSING",
    "OVERDENSITY",
    "env_column_name",
    "formation_redshifts",
    "halo_properties",
    "nfw_concentration_from_half_mass",
]

G_NEWTON = 4.30091727e-9
"""Newton's constant in Mpc (km/s)^2 / Msun."""

OVERDENSITY = 200.0
"""R_200 and M_200 enclose this many times the critical density at the box's redshift."""

DEFAULT_ENV_SCALES: tuple[float, ...] = (1.0, 2.0, 4.0)
"""Radii of the environment spheres, Mpc/h."""

SHRINK_FACTOR = 0.85
"""Radius factor per step of the shrinking-sphere centre."""

SHRINK_MAX_STEPS = 60

VMAX_MIN_RANK = 10
"""V_max is searched from this many innermost members outwards."""

C_MIN, C_MAX = 1.0, 100.0
"""Range of NFW concentrations the half-mass estimator reports."""

MAY_BE_MISSING: tuple[str, ...] = ("m200", "r200", "spin", "concentration")
"""Columns that can lack a value for some haloes: each has a boolean ``<name>_resolved`` column beside it (False =
missing, the value is then ``MISSING_FILL`` = 0)."""


def env_column_name(radius: float) -> str:
    """Name of the environment column for a sphere of ``radius`` Mpc/h: 2.0 -> "log_env_density_r2"."""
    return "log_env_density_r" + f"{radius:g}".replace(".", "p")


def halo_properties(
    particles: Particles,
    labels: torch.Tensor,
    *,
    env_scales: Sequence[float] = DEFAULT_ENV_SCALES,
    concentration_min_particles: int = 100,
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The columns and units of a halo catalog (see the module docstring for each column).

    particles: N particles of a periodic box.
    labels: (N,) int, in the particles' order: 0 = in no halo, k = 1..K the halo of row k - 1; every label
        1..K must have at least one member.
    env_scales: sphere radii, Mpc/h, each in (0, L/2); may be empty.
    concentration_min_particles: n200 below which the concentration is not resolved (>= 2).

    Returns ``(columns, units)``: name -> (K, ...) tensor on the particles' device, and name -> unit.
    """
    labels = torch.as_tensor(labels)
    length = particles.box.length
    problems = ProblemCollector()
    if problems.check(
        labels.ndim == 1 and labels.numel() == len(particles) and not labels.is_floating_point(),
        f"labels must be ({len(particles)},) integers, got {labels.dtype} of shape {tuple(labels.shape)}",
    ):
        problems.check(not labels.numel() or int(labels.min()) >= 0, "labels must be >= 0")
    scales = tuple(float(r) for r in env_scales)
    for r in scales:
        problems.check(0 < r < 0.5 * length, f"env_scales must lie in (0, L/2) = (0, {0.5 * length}) Mpc/h, got {r}")
    names = [env_column_name(r) for r in scales]
    problems.check(len(set(names)) == len(names), f"env_scales repeat: {scales}")
    problems.check(
        isinstance(concentration_min_particles, int) and concentration_min_particles >= 2,
        f"concentration_min_particles must be an integer >= 2, got {concentration_min_particles!r}",
    )
    problems.raise_if_any(ValidationError, context="halo_properties")

    device = particles.pos.device
    labels = labels.long().to(device)
    n_halo = int(labels.max()) if labels.numel() else 0
    members = (labels > 0).nonzero().squeeze(1)
    h = labels[members] - 1
    n_part = torch.bincount(h, minlength=n_halo)
    if n_halo and int(n_part.min()) == 0:
        empty = int((n_part == 0).nonzero()[0]) + 1
        raise ValidationError(f"labels must number the haloes 1..K without gaps; label {empty} has no member")
    m = particles.mass
    count = n_part.double().clamp_min(1.0)[:, None]
    x = particles.pos[members].double()
    v = particles.vel[members].double()

    # centre of mass, mean velocity, dispersion
    dx, com_offset, ref = _unwrapped(x, h, n_halo, length)
    pos = wrap(ref + com_offset, length)
    vel = _sum_by(v, h, n_halo) / count
    vel_disp = torch.sqrt(_sum_by(((v - vel[h]) ** 2).sum(1), h, n_halo) / count[:, 0])

    # shrinking-sphere centre and the radial profile around it
    rel = dx - com_offset[h]
    centre_offset = _shrinking_sphere(rel, h, n_part)
    pos_center = wrap(pos + centre_offset, length)
    rc = rel - centre_offset[h]
    profile = _radial_profile(rc, h, n_part)

    cosmo, a = particles.box.cosmology, particles.box.scale_factor
    rho_crit0 = cosmo.mean_matter_density / cosmo.omega_m
    rho_200 = OVERDENSITY * rho_crit0 * float(cosmo.efunc(a)) ** 2 * a**3  # comoving (Msun/h) / (Mpc/h)^3
    n200, m200, r200 = _spherical_overdensity(profile, n_halo, m, rho_200)
    v200 = torch.sqrt(G_NEWTON * m200 / (a * r200.clamp_min(1e-300)))
    spin = _bullock_spin(rc, v, h, profile, n200, v200, r200)
    vmax = _vmax(profile, n_part, m, a)
    concentration, resolved = _concentration(profile, n200, r200, concentration_min_particles)

    columns: dict[str, torch.Tensor] = {
        "pos": pos,
        "vel": vel,
        "mass": n_part.double() * m,
        "n_part": n_part,
        "vel_disp": vel_disp,
        "pos_center": pos_center,
        "n200": n200,
        "m200": m200,
        "r200": r200,
        "spin": spin,
        "vmax": vmax,
        "concentration": concentration,
        "concentration_resolved": resolved,
        "m200_resolved": n200 > 0,
        "r200_resolved": n200 > 0,
        "spin_resolved": n200 >= 2,
    }
    units = {
        "pos_center": "Mpc/h",
        "n200": "",
        "m200": "Msun/h",
        "spin": "",
        "vmax": "km/s",
        "concentration": "",
    } | {resolved_column(name): "" for name in MAY_BE_MISSING}
    if particles.n_grid > 0:
        q = cell_centers(particles.ids[members], particles.n_grid, length, dtype=torch.float64)
        dq, lagr_offset, lagr_ref = _unwrapped(q, h, n_halo, length)
        qrel = dq - lagr_offset[h]
        outer = (qrel[:, :, None] * qrel[:, None, :]).reshape(-1, 9)
        columns["lagr_pos"] = wrap(lagr_ref + lagr_offset, length)
        columns["lagr_inertia"] = (_sum_by(outer, h, n_halo) / count).reshape(-1, 3, 3)
        units["lagr_inertia"] = "(Mpc/h)^2"
    for radius, name, values in zip(scales, names, _environment(particles, pos, scales), strict=True):
        columns[name] = values
        units[name] = f"log10 (rho/rho_mean) in a sphere of {radius:g} Mpc/h"
    return columns, units


# ---- helpers on members ------------------------------------------------------------------------------


def _sum_by(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Sums of ``values`` (M, ...) per ``index`` (M,) into (size, ...)."""
    out = torch.zeros((size, *values.shape[1:]), dtype=values.dtype, device=values.device)
    return out.index_add_(0, index, values)


def _unwrapped(
    x: torch.Tensor, h: torch.Tensor, n_halo: int, length: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Members unwrapped around their halo's first member: (dx (M, 3), mean of dx (K, 3), reference (K, 3))."""
    positions = torch.arange(h.numel(), device=h.device)
    first = torch.full((n_halo,), max(h.numel() - 1, 0), dtype=torch.int64, device=h.device)
    first.scatter_reduce_(0, h, positions, reduce="amin")
    ref = x[first] if n_halo else x.new_zeros((0, 3))
    dx = minimal_image(x - ref[h], length)
    count = torch.bincount(h, minlength=n_halo).double().clamp_min(1.0)[:, None]
    return dx, _sum_by(dx, h, n_halo) / count, ref


def _shrinking_sphere(rel: torch.Tensor, h: torch.Tensor, n_part: torch.Tensor) -> torch.Tensor:
    """(K, 3) offsets of the shrinking-sphere centres from the centres of mass (``rel`` is relative to them)."""
    n_halo = n_part.numel()
    centre = rel.new_zeros((n_halo, 3))
    radius = rel.new_zeros(n_halo).scatter_reduce_(0, h, torch.linalg.vector_norm(rel, dim=1), reduce="amax")
    n_stop = (n_part // 20).clamp(min=10, max=1000)
    active = n_part > n_stop
    for _ in range(SHRINK_MAX_STEPS):
        if not bool(active.any()):
            break
        sel = active[h].nonzero().squeeze(1)
        hs = h[sel]
        d = rel[sel] - centre[hs]
        new_radius = radius * SHRINK_FACTOR
        inside = torch.linalg.vector_norm(d, dim=1) <= new_radius[hs]
        n_inside = torch.bincount(hs[inside], minlength=n_halo)
        shift = _sum_by(d[inside], hs[inside], n_halo)
        ok = active & (n_inside >= n_stop)
        centre = torch.where(ok[:, None], centre + shift / n_inside.clamp_min(1)[:, None], centre)
        radius = torch.where(ok, new_radius, radius)
        active = ok
    return centre


@dataclasses.dataclass(frozen=True)
class _Profile:
    """The members sorted by halo, then by distance from the halo's centre (all (M,) but ``start``).

    radius: distance from the centre, Mpc/h. rank: 1 for the innermost member of a halo, 2, ...
    halo: halo index 0..K-1. order: index of the member in the unsorted member list.
    start: (K,) position of each halo's innermost member in the sorted list.
    """

    radius: torch.Tensor
    rank: torch.Tensor
    halo: torch.Tensor
    order: torch.Tensor
    start: torch.Tensor


def _radial_profile(rc: torch.Tensor, h: torch.Tensor, n_part: torch.Tensor) -> _Profile:
    r = torch.linalg.vector_norm(rc, dim=1)
    by_radius = torch.argsort(r)
    order = by_radius[torch.sort(h[by_radius], stable=True).indices]
    halo = h[order]
    start = torch.cumsum(n_part, 0) - n_part
    rank = torch.arange(h.numel(), device=h.device) - start[halo] + 1
    return _Profile(r[order], rank, halo, order, start)


def _spherical_overdensity(
    profile: _Profile, n_halo: int, m: float, rho_200: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n200 (int64), m200 and r200 (float64) per halo."""
    dense = profile.rank.double() * m >= rho_200 * (4.0 * math.pi / 3.0) * profile.radius**3
    n200 = torch.zeros(n_halo, dtype=torch.int64, device=profile.rank.device)
    n200.scatter_reduce_(0, profile.halo[dense], profile.rank[dense], reduce="amax")
    m200 = n200.double() * m
    r200 = torch.pow(3.0 * m200 / (4.0 * math.pi * rho_200), 1.0 / 3.0)
    return n200, m200, r200


def _bullock_spin(
    rc: torch.Tensor,
    v: torch.Tensor,
    h: torch.Tensor,
    profile: _Profile,
    n200: torch.Tensor,
    v200: torch.Tensor,
    r200: torch.Tensor,
) -> torch.Tensor:
    n_halo = n200.numel()
    inner = profile.order[profile.rank <= n200[profile.halo]]
    hi, xi, vi = h[inner], rc[inner], v[inner]
    sum_x, sum_v = _sum_by(xi, hi, n_halo), _sum_by(vi, hi, n_halo)
    sum_xv = _sum_by(torch.linalg.cross(xi, vi), hi, n_halo)
    n = n200.double().clamp_min(1.0)[:, None]
    j = sum_xv - torch.linalg.cross(sum_x, sum_v) / n  # per unit particle mass, (Mpc/h) km/s
    ok = n200 >= 2
    denom = math.sqrt(2.0) * n200.double() * v200 * r200
    return torch.where(ok, torch.linalg.vector_norm(j, dim=1) / torch.where(ok, denom, 1.0), MISSING_FILL)


def _vmax(profile: _Profile, n_part: torch.Tensor, m: float, a: float) -> torch.Tensor:
    usable = (profile.rank >= n_part[profile.halo].clamp(max=VMAX_MIN_RANK)) & (profile.radius > 0)
    v2 = G_NEWTON * profile.rank[usable].double() * m / (a * profile.radius[usable])
    out = profile.radius.new_zeros(n_part.numel())
    out.scatter_reduce_(0, profile.halo[usable], v2, reduce="amax")
    return torch.sqrt(out)


def _concentration(
    profile: _Profile, n200: torch.Tensor, r200: torch.Tensor, min_particles: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """NFW concentration from the median radius of the n200 innermost members; (values, resolved)."""
    usable = n200 >= 2
    k1 = ((n200 + 1) // 2).clamp(min=1)
    k2 = (n200 // 2 + 1).clamp(min=1)
    last = profile.start + n200.clamp(min=1) - 1  # stay inside each halo's members
    r1 = profile.radius[torch.minimum(profile.start + k1 - 1, last)]
    r2 = profile.radius[torch.minimum(profile.start + k2 - 1, last)]
    x_half = torch.where(usable, 0.5 * (r1 + r2) / torch.where(usable, r200, 1.0), 1.0)
    c = torch.as_tensor(nfw_concentration_from_half_mass(x_half.cpu().numpy()), device=r200.device)
    resolved = usable & (n200 >= min_particles) & (c >= C_MIN) & (c <= C_MAX)
    return torch.where(resolved, c, MISSING_FILL), resolved


@functools.lru_cache(maxsize=1)
def _half_mass_table() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """x_half(c) on a log grid of c in [C_MIN / 2, 2 C_MAX], increasing in x (decreasing c)."""
    c = np.geomspace(C_MIN / 2.0, 2.0 * C_MAX, 2001)
    half = 0.5 * _nfw_mu(c)
    lo, hi = np.zeros_like(c), np.ones_like(c)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        below = _nfw_mu(c * mid) < half
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    x = 0.5 * (lo + hi)
    return x[::-1].copy(), c[::-1].copy()


def _nfw_mu(y: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.log1p(y) - y / (1.0 + y)


def nfw_concentration_from_half_mass(x_half: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """NFW concentration c solving mu(c x) = mu(c) / 2 for x = r_half / r200 (mu(y) = ln(1+y) - y/(1+y)).

    Returns float64 of the shape of ``x_half``; values outside [C_MIN / 2, 2 C_MAX] are clipped to it.
    """
    x_table, c_table = _half_mass_table()
    return np.interp(np.asarray(x_half, dtype=np.float64), x_table, c_table)


def _environment(particles: Particles, centres: torch.Tensor, scales: tuple[float, ...]) -> list[torch.Tensor]:
    """log10 overdensity of all particles within spheres of each radius around ``centres`` (K, 3)."""
    if not scales:
        return []
    from scipy.spatial import cKDTree

    length = particles.box.length
    n = len(particles)
    device = centres.device
    if centres.shape[0] == 0 or n == 0:
        return [centres.new_zeros(centres.shape[0]) for _ in scales]
    pos = np.mod(particles.pos.detach().to("cpu", torch.float64).numpy(), length)
    pos[pos >= length] = 0.0
    tree = cKDTree(pos, boxsize=length, compact_nodes=False, balanced_tree=False)
    query = np.mod(centres.detach().cpu().numpy(), length)
    query[query >= length] = 0.0
    out = []
    for radius in scales:
        counts = tree.query_ball_point(query, radius, return_length=True).astype(np.float64)
        expected = n * (4.0 * math.pi / 3.0) * radius**3 / length**3
        out.append(torch.as_tensor(np.log10(np.maximum(counts, 1.0) / expected), device=device))
    return out


# ---- formation redshifts ---------------------------------------------------------------------------------


def formation_redshifts(
    halo_labels: torch.Tensor,
    snapshots: Sequence[tuple[float, torch.Tensor]],
    *,
    redshift: float = 0.0,
) -> torch.Tensor:
    """Half-mass formation redshift of every halo from group labels at earlier snapshots.

    halo_labels: (N,) int labels of the haloes at ``redshift``: 0 = none, 1..K (every label with members).
    snapshots: (z, labels) pairs with z > ``redshift``, any order; each labels is (N,) int, 0 = in no group,
        aligned with ``halo_labels`` particle by particle (sort every set by Lagrangian id first, e.g.
        ``labels[ids.argsort()]``).
    redshift: the redshift of ``halo_labels``.

    The main progenitor of halo h at a snapshot is the group holding most of h's particles (ties: the lowest
    group label); its mass fraction f is that group's whole particle count over h's count. Walking back from
    ``redshift`` (f = 1 there), the formation time is where f first drops below 1/2, interpolated linearly
    in the scale factor between the two snapshots around the crossing. A halo whose progenitor still holds
    at least half its mass at the earliest snapshot gets that snapshot's redshift (a lower bound). A halo with
    no progenitor group at a snapshot has f = 0 there. Reliable for haloes of at least twice the minimum
    group size used at the snapshots (else the progenitor is lost before it is halved) and to the
    resolution of the snapshot spacing.

    Returns (K,) float64 formation redshifts on the device of ``halo_labels``.
    """
    halo_labels = torch.as_tensor(halo_labels).long()
    problems = ProblemCollector()
    problems.check(halo_labels.ndim == 1, f"halo_labels must be 1-d, got shape {tuple(halo_labels.shape)}")
    problems.check(len(snapshots) > 0, "snapshots must hold at least one (redshift, labels) pair")
    problems.check(math.isfinite(redshift) and redshift > -1, f"redshift must be finite and > -1, got {redshift!r}")
    problems.check(not halo_labels.numel() or int(halo_labels.min()) >= 0, "halo_labels must be >= 0")
    checked = []
    for i, (z, labels) in enumerate(snapshots):
        labels = torch.as_tensor(labels).long().to(halo_labels.device)
        problems.check(
            labels.shape == halo_labels.shape,
            f"snapshots[{i}] labels have shape {tuple(labels.shape)}, not {tuple(halo_labels.shape)}",
        )
        problems.check(math.isfinite(z) and z > redshift, f"snapshots[{i}] redshift must be > {redshift}, got {z!r}")
        problems.check(not labels.numel() or int(labels.min()) >= 0, f"snapshots[{i}] labels must be >= 0")
        checked.append((float(z), labels))
    problems.raise_if_any(ValidationError, context="formation_redshifts")

    device = halo_labels.device
    n_halo = int(halo_labels.max()) if halo_labels.numel() else 0
    if n_halo == 0:
        return torch.zeros(0, dtype=torch.float64, device=device)
    mass0 = torch.bincount(halo_labels, minlength=n_halo + 1)[1:].double()
    checked.sort(key=lambda item: item[0])  # latest first
    a = torch.tensor([1.0 / (1.0 + redshift)] + [1.0 / (1.0 + z) for z, _ in checked], dtype=torch.float64)
    fractions = [torch.ones(n_halo, dtype=torch.float64, device=device)]
    fractions += [_progenitor_mass(halo_labels, labels, n_halo) / mass0.clamp_min(1.0) for _, labels in checked]
    f = torch.stack(fractions, dim=1).cpu()  # (K, S + 1), f[:, 0] = 1
    below = f < 0.5
    crossed = below.any(dim=1)
    j = torch.where(crossed, below.double().argmax(dim=1), torch.ones_like(crossed, dtype=torch.int64))
    rows = torch.arange(n_halo)
    f_hi, f_lo = f[rows, j - 1], f[rows, j]
    a_hi, a_lo = a[j - 1], a[j]
    a_form = a_lo + (0.5 - f_lo) * (a_hi - a_lo) / (f_hi - f_lo).clamp_min(1e-300)
    z_form = torch.where(crossed, 1.0 / a_form - 1.0, torch.full_like(a_form, 1.0 / float(a[-1]) - 1.0))
    return z_form.to(device)


def _progenitor_mass(halo_labels: torch.Tensor, labels: torch.Tensor, n_halo: int) -> torch.Tensor:
    """(K,) particle count of each halo's main progenitor group (0 where the halo has none)."""
    n_groups = int(labels.max()) + 1 if labels.numel() else 1
    both = (halo_labels > 0) & (labels > 0)
    key = (halo_labels[both] - 1) * n_groups + labels[both]
    pairs, overlap = torch.unique(key, return_counts=True)
    halo, group = pairs // n_groups, pairs % n_groups
    best = torch.zeros(n_halo, dtype=overlap.dtype, device=labels.device)
    best.scatter_reduce_(0, halo, overlap, reduce="amax")
    winner = overlap == best[halo]
    main = torch.full((n_halo,), n_groups, dtype=torch.int64, device=labels.device)
    main.scatter_reduce_(0, halo[winner], group[winner], reduce="amin")
    group_mass = torch.bincount(labels[labels > 0], minlength=n_groups + 1)
    group_mass[0] = 0
    group_mass[n_groups] = 0  # the "no progenitor" sentinel
    return group_mass[main].double()
