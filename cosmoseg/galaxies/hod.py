"""The classic halo occupation distribution (Zheng et al. 2007), with optional decorations.

Mean occupations of a halo of mass M (Msun/h; logs are log10):

    <N_cen>(M) = 1/2 [1 + erf((log M - log M_min) / sigma_logM)]
    <N_sat>(M) = ((M - M_0) / M_1)^alpha  for M > M_0, else 0

As in halotools' ``zheng07`` default, satellites are *not* modulated by the central occupation; set
``HODParams.modulate_satellites`` to multiply <N_sat> by <N_cen>. A halo gets a central with probability
<N_cen> (Bernoulli) and a Poisson number of satellites of mean <N_sat>, independently.

Decorations (all off by default):

- assembly bias (Hearin et al. 2016, "decorated HOD"): at fixed mass (bins of ``ab_bin_dex`` in log M), haloes
  above the median of a secondary property get <N> + dN and those below get <N> - dN, with
  dN_cen = A_cen min(<N_cen>, 1 - <N_cen>) and dN_sat = A_sat <N_sat>, A in [-1, 1]. Halves are equal in
  number within each bin (with an odd count the median halo is left undecorated), so the mean occupation of
  each bin is conserved.
- velocity bias: centrals move with host velocity + alpha_c sigma N(0, 1) per axis; satellites with host
  velocity + alpha_s sigma N(0, 1). sigma is the halo's 1D dispersion: ``vel_disp`` / sqrt(3) when the
  catalog has a positive ``vel_disp`` (3D, km/s), else the isothermal value V_200 / sqrt(2) with
  V_200^2 = G M / (a r200).
- satellites are placed on an NFW profile truncated at r200, isotropically around the halo centre; or, when
  ``prepare_hod`` is given particles and a per-particle halo label, on random member particles of the host
  (with velocity host + alpha_s (v_particle - host)); haloes without members fall back to NFW.

Randomness is counter-based: every variate is a SplitMix64 hash of (seed, halo id, stream, counter), so a halo's
galaxies depend only on the seed, the halo's id and its row values, never on how the catalog is chunked or on
the device. The halo id is the ``id`` column when there is one, else the row index.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from scipy.special import erfinv, lambertw

from cosmoseg.data import Box, GalaxyCatalog, HaloCatalog, Particles
from cosmoseg.errors import ProblemCollector, ValidationError
from cosmoseg.pipeline.params import BOUNDS, param

__all__ = [
    "G_NEWTON",
    "OVERDENSITY_MEAN",
    "HODParams",
    "PreparedHalos",
    "concentration_duffy08",
    "mean_occupation",
    "nfw_enclosed_fraction",
    "populate",
    "prepare_hod",
    "r200_from_mass",
]

FloatArray = npt.NDArray[np.float64]

G_NEWTON = 4.30091727e-9
"""Newton's constant in Mpc (km/s)^2 / Msun."""

OVERDENSITY_MEAN = 200.0
"""r200 computed from a mass encloses this many times the comoving mean matter density Omega_m rho_crit,0."""

_POISSON_GAUSS_ABOVE = 500.0
"""Means above which the Poisson draw uses a rounded Gaussian (exp(-lambda) nears float64 underflow)."""

# SplitMix64 (Steele, Lea & Flood 2014) constants.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)

# Streams of the counter-based generator; satellite j of a halo uses counters _SAT_STRIDE * j + k: k = 0 radius,
# 1-2 angles, 3-6 velocity, 7 member particle.
_STREAM_CEN = 1
_STREAM_NSAT = 2
_STREAM_CEN_VEL = 3
_STREAM_SAT = 4
_SAT_STRIDE = 8


@dataclasses.dataclass(frozen=True, kw_only=True)
class HODParams:
    """Parameters of the Zheng et al. (2007) HOD and its decorations, each with its bounds and doc (``param``).

    Defaults: Zheng et al. (2007), Table 1, SDSS M_r - 5 log h < -21 sample (halotools' ``zheng07``
    ``threshold=-21``). Masses are log10 Msun/h. Every value must be finite and within its bounds (a
    `ValidationError` names each one that is not); the ``galaxies.hod`` stage's params are these fields and three
    more (:data:`cosmoseg.galaxies.stages.HODStageParams`).
    """

    log_m_min: float = param(12.79, doc="log10 M [Msun/h] where <N_cen> = 1/2")
    sigma_log_m: float = param(0.39, gt=0, doc="width of the central step")
    log_m0: float = param(11.92, doc="satellite cut-off mass, log10 Msun/h")
    log_m1: float = param(13.94, doc="satellite normalisation mass, log10 Msun/h")
    alpha: float = param(1.15, ge=0, doc="satellite power-law slope")
    modulate_satellites: bool = param(False, doc="multiply <N_sat> by <N_cen> (halotools' modulate_with_cenocc)")
    a_cen: float = param(0.0, ge=-1, le=1, doc="central assembly bias (needs a secondary halo property)")
    a_sat: float = param(0.0, ge=-1, le=1, doc="satellite assembly bias (needs a secondary halo property)")
    alpha_c: float = param(0.0, ge=0, doc="central velocity bias; 0 puts centrals at rest in their halo")
    alpha_s: float = param(1.0, ge=0, doc="satellite velocity bias; 1 gives satellites the halo's dispersion")

    def __post_init__(self) -> None:
        problems = ProblemCollector()
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "modulate_satellites":
                problems.check(isinstance(value, bool), f"modulate_satellites must be a bool, got {value!r}")
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                problems.add(f"{field.name} must be a finite number, got {value!r}")
                continue
            object.__setattr__(self, field.name, float(value))
            for key, bound in field.metadata["bounds"].items():
                symbol, holds = BOUNDS[key]
                problems.check(holds(float(value), bound), f"{field.name} must be {symbol} {bound:g}, got {value}")
        problems.raise_if_any(ValidationError, context="HODParams")

    def clone(self, **changes: Any) -> HODParams:
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class PreparedHalos:
    """What ``populate`` needs from a halo catalog, computed once (float64 NumPy arrays on the CPU).

    box: the catalog's box.
    halo_key: (N,) uint64 SplitMix64 hashes of the halo ids, keying the random streams.
    log_mass: (N,) log10 Msun/h; mass: (N,) Msun/h.
    pos: (N, 3) Mpc/h; vel: (N, 3) km/s or None when velocities are not wanted.
    r200: (N,) comoving Mpc/h; concentration: (N,) NFW c = r200 / r_s; sigma_1d: (N,) km/s.
    ab_sign: (N,) int8, +1 above / -1 below the median secondary property in its mass bin, 0 undecorated;
        None when no secondary property was given.
    member_pos: (M, 3) Mpc/h and member_vel: (M, 3) km/s (or None) of the haloes' member particles, grouped by
        halo and ordered by particle id; member_start, member_count: (N,) int64 slices into them. All None
        when satellites go on NFW profiles.
    secondary: name of the secondary property column, or None.
    device, dtype: of the catalog's ``pos`` column (the galaxies are returned like it).
    """

    box: Box
    halo_key: npt.NDArray[np.uint64]
    log_mass: FloatArray
    mass: FloatArray
    pos: FloatArray
    vel: FloatArray | None
    r200: FloatArray
    concentration: FloatArray
    sigma_1d: FloatArray
    ab_sign: npt.NDArray[np.int8] | None
    secondary: str | None
    device: torch.device
    member_pos: FloatArray | None = None
    member_vel: FloatArray | None = None
    member_start: npt.NDArray[np.int64] | None = None
    member_count: npt.NDArray[np.int64] | None = None
    dtype: torch.dtype

    def __len__(self) -> int:
        return int(self.log_mass.shape[0])


# ---------------------------------------------------------------------------------------------------------
# analytic pieces


def _mean_occupation_np(
    log_mass: FloatArray, params: HODParams, mass: FloatArray | None = None
) -> tuple[FloatArray, FloatArray]:
    """<N_cen>, <N_sat> (N,) of haloes of log10 mass ``log_mass`` (and linear ``mass`` if at hand, Msun/h)."""
    x = (log_mass - params.log_m_min) / params.sigma_log_m
    n_cen = torch.special.erf(torch.from_numpy(x)).numpy()  # vectorised: 5x scipy's erf, equal to 1 ulp
    n_cen += 1.0
    n_cen *= 0.5
    if mass is None:
        mass = 10.0**log_mass
    n_sat = np.zeros_like(log_mass)
    above = np.flatnonzero(mass > 10.0**params.log_m0)  # the power only where it is not zero: most haloes are below
    n_sat[above] = ((mass[above] - 10.0**params.log_m0) / 10.0**params.log_m1) ** params.alpha
    if params.modulate_satellites:
        n_sat = n_sat * n_cen
    return n_cen, n_sat


def mean_occupation(mass: torch.Tensor, params: HODParams) -> tuple[torch.Tensor, torch.Tensor]:
    """Undecorated <N_cen> and <N_sat> for halo masses ``mass`` (any shape, Msun/h), float64, same device."""
    log_mass = np.log10(mass.detach().cpu().double().numpy())
    n_cen, n_sat = _mean_occupation_np(log_mass, params)
    return torch.from_numpy(n_cen).to(mass.device), torch.from_numpy(n_sat).to(mass.device)


def r200_from_mass(mass: npt.ArrayLike, box: Box) -> FloatArray:
    """Comoving radius (Mpc/h) enclosing ``OVERDENSITY_MEAN`` times the mean matter density, mass in Msun/h."""
    rho = OVERDENSITY_MEAN * box.cosmology.mean_matter_density
    return np.cbrt(3.0 * np.asarray(mass, dtype=np.float64) / (4.0 * math.pi * rho))


def concentration_duffy08(mass: npt.ArrayLike, redshift: float = 0.0) -> FloatArray:
    """Mean NFW concentration c_200m(M, z) of Duffy et al. (2008, full sample): 10.14 (M / 2e12)^-0.081 (1+z)^-1.01.

    mass: Msun/h (any shape).
    """
    return 10.14 * (np.asarray(mass, dtype=np.float64) / 2e12) ** -0.081 * (1.0 + redshift) ** -1.01


def _nfw_m(x: FloatArray) -> FloatArray:
    return np.log1p(x) - x / (1.0 + x)


def nfw_enclosed_fraction(s: npt.ArrayLike, concentration: npt.ArrayLike) -> FloatArray:
    """Fraction of an NFW halo's r200 mass within r = s r200: m(c s) / m(c), m(x) = ln(1 + x) - x / (1 + x)."""
    c = np.asarray(concentration, dtype=np.float64)
    return _nfw_m(c * np.asarray(s, dtype=np.float64)) / _nfw_m(c)


def _nfw_radius(u: FloatArray, concentration: FloatArray) -> FloatArray:
    """r / r200 of an NFW profile truncated at r200 for uniforms ``u``: exact inverse CDF via Lambert W.

    m(x) = q solves as x = -1 / W0(-exp(-1 - q)) - 1.
    """
    q = u * _nfw_m(concentration)
    w = lambertw(-np.exp(-1.0 - q), 0).real
    return np.clip((-1.0 / w - 1.0) / concentration, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------------------
# counter-based random numbers


def _splitmix64(z: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def _halo_keys(halo_id: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """The seed-independent part of every stream's state, hashed once by ``prepare_hod``."""
    with np.errstate(over="ignore"):
        return _splitmix64(halo_id)


def _stream_base(seed: int, halo_key: npt.NDArray[np.uint64], stream: int) -> npt.NDArray[np.uint64]:
    """The state of the SplitMix64 sequence of (seed, halo, stream); counter k is its (k+1)-th output."""
    with np.errstate(over="ignore"):
        key = _splitmix64(np.array([seed], dtype=np.uint64))[0]
        return _splitmix64(halo_key ^ (key ^ np.uint64(stream)))


def _uniform(base: npt.NDArray[np.uint64], counter: npt.ArrayLike) -> FloatArray:
    """Uniform doubles in (0, 1) from the top 53 bits of SplitMix64 output ``counter`` of each stream."""
    counter = np.asarray(counter, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = _splitmix64(base if counter.ndim == 0 and counter == 0 else base + counter * _GOLDEN)
    return ((z >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / (1 << 53))


def _normals3(base: npt.NDArray[np.uint64], first: npt.ArrayLike) -> FloatArray:
    """(N, 3) standard normals (Box-Muller) from counters first .. first + 3 of each stream."""
    first = np.asarray(first, dtype=np.uint64)
    u1, u2, u3, u4 = (_uniform(base, first + np.uint64(k)) for k in range(4))
    r1, r2 = np.sqrt(-2.0 * np.log(u1)), np.sqrt(-2.0 * np.log(u3))
    return np.stack([r1 * np.cos(2 * math.pi * u2), r1 * np.sin(2 * math.pi * u2), r2 * np.cos(2 * math.pi * u4)], 1)


def _poisson(u: FloatArray, lam: FloatArray) -> npt.NDArray[np.int64]:
    """Poisson variates of means ``lam`` by inversion of the CDF at the uniforms ``u`` (vectorised)."""
    k = np.zeros(u.shape, dtype=np.int64)
    big = lam > _POISSON_GAUSS_ABOVE
    if big.any():
        # Gaussian limit: its skewness error 1/(6 sqrt(lambda)) is below 1% here
        z = math.sqrt(2.0) * erfinv(2.0 * u[big] - 1.0)
        k[big] = np.maximum(np.floor(lam[big] + np.sqrt(lam[big]) * z + 0.5), 0).astype(np.int64)
    active = np.flatnonzero(~big & (lam > 0))
    p = np.exp(-lam[active])
    cdf = p.copy()
    keep = u[active] > cdf
    active, p, cdf = active[keep], p[keep], cdf[keep]
    while active.size:
        k[active] += 1
        p = p * lam[active] / k[active]
        cdf = cdf + p
        keep = (u[active] > cdf) & (p > 0)
        active, p, cdf = active[keep], p[keep], cdf[keep]
    return k


# ---------------------------------------------------------------------------------------------------------
# preparation and population


def _as_float64(tensor: torch.Tensor) -> FloatArray:
    return tensor.detach().cpu().to(torch.float64).numpy()


def prepare_hod(
    halos: HaloCatalog,
    *,
    velocities: bool = True,
    secondary: str | None = None,
    ab_bin_dex: float = 0.1,
    particles: Particles | None = None,
    particle_halo: torch.Tensor | None = None,
) -> PreparedHalos:
    """Cache what populating ``halos`` needs: log masses, r200, concentrations, dispersions, secondary ranks.

    halos: needs ``pos`` (N, 3) Mpc/h and ``mass`` (N,) Msun/h; ``vel`` (N, 3) km/s when ``velocities``;
        the ``secondary`` column when one is named. Optional: ``id`` (N,) integer halo ids (else the row index),
        ``r200`` (N,) Mpc/h (rows <= 0 fall back to ``r200_from_mass``, 200 x mean density), ``concentration``
        (N,) (rows <= 0 fall back to ``concentration_duffy08``), ``vel_disp`` (N,) 3D km/s.
    secondary: column ranked at fixed mass for assembly bias ("concentration", an environment column, ...).
    ab_bin_dex: width of the log-mass bins within which the secondary property is ranked.
    particles, particle_halo: optional ``Particles`` of the same box and their (N_p,) integer halo labels (the
        row of the host in ``halos``, -1 for none): satellites then sit on random member particles.

    Raises ``ValidationError`` naming every missing column, non-finite value and bad argument at once.
    """
    problems = ProblemCollector()
    columns = getattr(halos, "columns", None)
    if columns is None or not hasattr(halos, "box"):
        raise ValidationError(f"halos must be a HaloCatalog, got {type(halos).__name__}", context="prepare_hod")
    required = ["pos", "mass"] + (["vel"] if velocities else []) + ([secondary] if secondary else [])
    missing = [name for name in required if name not in columns]
    problems.check(not missing, f"missing required column(s) {missing}; got {sorted(columns)}")
    problems.check(
        math.isfinite(ab_bin_dex) and ab_bin_dex > 0, f"ab_bin_dex must be a positive number, got {ab_bin_dex}"
    )
    used = [*required, *(c for c in ("r200", "concentration", "vel_disp") if c in columns)]
    for name in dict.fromkeys(used):
        if name not in columns:
            continue
        tensor = columns[name]
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            problems.add(f"column {name!r} has {int((~torch.isfinite(tensor)).sum())} non-finite value(s)")
    if secondary and secondary in columns and columns[secondary].ndim != 1:
        problems.add(f"secondary column {secondary!r} must have shape (N,), got {tuple(columns[secondary].shape)}")
    if "id" in columns:
        ids = columns["id"]
        problems.check(
            not ids.is_floating_point() and not ids.is_complex() and ids.ndim == 1,
            f"column 'id' must be a (N,) integer column, got dtype {ids.dtype} and shape {tuple(ids.shape)}",
        )
    if (particles is None) != (particle_halo is None):
        problems.add("particles and particle_halo must be given together")
    elif particles is not None and particle_halo is not None:
        n_halos = int(columns["pos"].shape[0]) if "pos" in columns else 0
        problems.check(isinstance(particles, Particles), f"particles must be Particles, got {type(particles).__name__}")
        labels_ok = (
            not particle_halo.is_floating_point()
            and particle_halo.ndim == 1
            and particle_halo.shape[0] == getattr(particles, "pos", particle_halo).shape[0]
        )
        problems.check(
            labels_ok,
            f"particle_halo must be a (N_p,) integer tensor, got dtype {particle_halo.dtype} "
            f"and shape {tuple(particle_halo.shape)}",
        )
        if labels_ok and particle_halo.numel():
            low, high = int(particle_halo.min()), int(particle_halo.max())
            problems.check(
                low >= -1 and high < n_halos, f"particle_halo must lie in [-1, {n_halos}), got [{low}, {high}]"
            )
        if isinstance(particles, Particles):
            problems.check(
                particles.box.length == halos.box.length,
                f"particles' box ({particles.box.length} Mpc/h) is not the haloes' ({halos.box.length} Mpc/h)",
            )
    if "mass" in columns and not problems:
        problems.check(bool((columns["mass"] > 0).all()), "column 'mass' must be positive Msun/h")
    problems.raise_if_any(ValidationError, context="prepare_hod")

    box = halos.box
    mass = _as_float64(columns["mass"])
    n = mass.shape[0]
    if "id" in columns:
        halo_id = columns["id"].detach().cpu().numpy().astype(np.int64).view(np.uint64)
    else:
        halo_id = np.arange(n, dtype=np.uint64)
    r200 = r200_from_mass(mass, box)
    if "r200" in columns:
        given = _as_float64(columns["r200"])
        r200 = np.where(given > 0, given, r200)
    conc = concentration_duffy08(mass, box.redshift)
    if "concentration" in columns:
        given = _as_float64(columns["concentration"])
        conc = np.where(given > 0, given, conc)
    a = box.scale_factor
    sigma = np.sqrt(G_NEWTON * mass / (2.0 * a * r200))
    if "vel_disp" in columns:
        given = _as_float64(columns["vel_disp"]) / math.sqrt(3.0)
        sigma = np.where(given > 0, given, sigma)
    log_mass = np.log10(mass)
    ab_sign = _split_at_fixed_mass(log_mass, _as_float64(columns[secondary]), ab_bin_dex) if secondary else None
    members: dict[str, Any] = {}
    if particles is not None and particle_halo is not None:
        labels = particle_halo.detach().cpu().numpy().astype(np.int64)
        inside = np.flatnonzero(labels >= 0)
        # grouped by halo, then by particle id, so the draw does not depend on the particles' storage order
        inside = inside[np.lexsort((particles.ids.detach().cpu().numpy()[inside], labels[inside]))]
        count = np.bincount(labels[inside], minlength=n)
        members = {
            "member_pos": _as_float64(particles.pos)[inside],
            "member_vel": _as_float64(particles.vel)[inside] if velocities else None,
            "member_start": np.cumsum(count) - count,
            "member_count": count,
        }
    pos = columns["pos"]
    return PreparedHalos(
        box=box,
        halo_key=_halo_keys(halo_id),
        log_mass=log_mass,
        mass=mass,
        pos=_as_float64(pos),
        vel=_as_float64(columns["vel"]) if velocities else None,
        r200=r200,
        concentration=conc,
        sigma_1d=sigma,
        ab_sign=ab_sign,
        secondary=secondary,
        device=pos.device,
        dtype=pos.dtype,
        **members,
    )


def _split_at_fixed_mass(log_mass: FloatArray, prop: FloatArray, bin_dex: float) -> npt.NDArray[np.int8]:
    """+1 / -1 for haloes above / below the median of ``prop`` in their log-mass bin, 0 for an odd bin's median."""
    bins = np.floor(log_mass / bin_dex).astype(np.int64)
    order = np.lexsort((prop, bins))
    sorted_bins = bins[order]
    starts = np.flatnonzero(np.r_[True, sorted_bins[1:] != sorted_bins[:-1]])
    counts = np.diff(np.r_[starts, sorted_bins.size])
    start_of = np.repeat(starts, counts)
    count_of = np.repeat(counts, counts)
    twice_rank = 2 * (np.arange(sorted_bins.size) - start_of) + 1  # 2 (rank + 1/2), compared with the count
    sign = np.sign(twice_rank - count_of).astype(np.int8)
    out = np.empty_like(sign)
    out[order] = sign
    return out


def populate(prepared: PreparedHalos, params: HODParams, seed: int) -> GalaxyCatalog:
    """One HOD realisation: a ``GalaxyCatalog`` in the haloes' box, on the device and in the dtype of their ``pos``.

    Columns: ``pos`` (N_g, 3) Mpc/h wrapped into [0, L); ``vel`` (N_g, 3) km/s (when prepared with velocities);
    ``is_central`` (N_g,) bool; ``host`` (N_g,) int64 row of the host halo. Galaxies come halo by halo, the
    central (if any) first, then the satellites in their draw order. seed: integer in [0, 2^63).
    """
    if not isinstance(params, HODParams):
        raise ValidationError(f"params must be HODParams, got {type(params).__name__}", context="populate")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= int(seed) < 2**63:
        raise ValidationError(f"seed must be an integer in [0, 2^63), got {seed!r}", context="populate")
    decorated = params.a_cen != 0 or params.a_sat != 0
    if decorated and prepared.ab_sign is None:
        raise ValidationError(
            "a_cen / a_sat are set but the haloes were prepared without a secondary property "
            "(prepare_hod(..., secondary='concentration'))",
            context="populate",
        )
    seed = int(seed)
    ids = prepared.halo_key
    n_cen, n_sat = _mean_occupation_np(prepared.log_mass, params, prepared.mass)
    if decorated:
        sign = prepared.ab_sign.astype(np.float64)
        n_cen = n_cen + sign * params.a_cen * np.minimum(n_cen, 1.0 - n_cen)
        n_sat = n_sat * (1.0 + sign * params.a_sat)

    has_cen = _uniform(_stream_base(seed, ids, _STREAM_CEN), 0) < n_cen
    hosts = np.flatnonzero(n_sat > 0)  # a zero mean draws no satellite whatever the uniform: skip those streams
    sat_counts = _poisson(_uniform(_stream_base(seed, ids[hosts], _STREAM_NSAT), 0), n_sat[hosts])

    cen_rows = np.flatnonzero(has_cen)
    cen_pos = prepared.pos[cen_rows]
    sat_rows = np.repeat(hosts, sat_counts)
    sat_j = (np.arange(sat_rows.size) - np.repeat(np.cumsum(sat_counts) - sat_counts, sat_counts)).astype(np.uint64)
    sat_base = _stream_base(seed, ids[sat_rows], _STREAM_SAT)
    first = sat_j * np.uint64(_SAT_STRIDE)
    s = _nfw_radius(_uniform(sat_base, first), prepared.concentration[sat_rows])
    mu = 2.0 * _uniform(sat_base, first + np.uint64(1)) - 1.0
    phi = 2.0 * math.pi * _uniform(sat_base, first + np.uint64(2))
    rho = np.sqrt(1.0 - mu * mu)
    direction = np.stack([rho * np.cos(phi), rho * np.sin(phi), mu], 1)
    sat_pos = prepared.pos[sat_rows] + (s * prepared.r200[sat_rows])[:, None] * direction
    on_particle = np.zeros(sat_rows.size, dtype=bool)
    member = np.zeros(0, dtype=np.int64)
    if prepared.member_count is not None and prepared.member_start is not None and prepared.member_pos is not None:
        count = prepared.member_count[sat_rows]
        on_particle = count > 0
        pick = np.minimum(np.floor(_uniform(sat_base, first + np.uint64(7)) * count), count - 1).astype(np.int64)
        member = (prepared.member_start[sat_rows] + pick)[on_particle]
        sat_pos[on_particle] = prepared.member_pos[member]

    # central first within each halo: sort on (row, 0 for the central / 1 + j for satellite j)
    rows = np.concatenate([cen_rows, sat_rows])
    sub = np.concatenate([np.zeros(cen_rows.size, dtype=np.int64), sat_j.astype(np.int64) + 1])
    order = np.lexsort((sub, rows))
    is_central = np.concatenate([np.ones(cen_rows.size, dtype=bool), np.zeros(sat_rows.size, dtype=bool)])[order]
    pos = np.concatenate([cen_pos, sat_pos])[order]
    columns: dict[str, torch.Tensor] = {}
    columns["pos"] = torch.from_numpy(np.mod(pos, prepared.box.length)).to(prepared.dtype)
    if prepared.vel is not None:
        cen_vel = prepared.vel[cen_rows]
        if params.alpha_c > 0:
            kick = _normals3(_stream_base(seed, ids[cen_rows], _STREAM_CEN_VEL), 0)
            cen_vel = cen_vel + params.alpha_c * prepared.sigma_1d[cen_rows, None] * kick
        kick = _normals3(sat_base, first + np.uint64(3))
        sat_vel = prepared.vel[sat_rows] + params.alpha_s * prepared.sigma_1d[sat_rows, None] * kick
        if on_particle.any() and prepared.member_vel is not None:
            host_vel = prepared.vel[sat_rows[on_particle]]
            sat_vel[on_particle] = host_vel + params.alpha_s * (prepared.member_vel[member] - host_vel)
        columns["vel"] = torch.from_numpy(np.concatenate([cen_vel, sat_vel])[order]).to(prepared.dtype)
    columns["is_central"] = torch.from_numpy(is_central)
    columns["host"] = torch.from_numpy(rows[order].astype(np.int64))
    columns = {name: tensor.to(prepared.device) for name, tensor in columns.items()}
    meta: dict[str, Any] = {"model": "zheng07", "seed": seed, "secondary": prepared.secondary or ""}
    meta |= {f"hod_{k}": v for k, v in dataclasses.asdict(params).items()}
    return GalaxyCatalog(columns=columns, box=prepared.box, meta=meta)
