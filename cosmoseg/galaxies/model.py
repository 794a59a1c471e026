"""The semi-empirical galaxy model painted onto haloes: the "truth" the halo → galaxy samplers learn.

:func:`paint_galaxies` gives every halo a central galaxy and a Poisson number of satellites, each with a stellar
mass, specific star-formation rate, g - i colour, half-mass radius and gas metallicity, drawn from published
relations (:mod:`cosmoseg.galaxies.relations`) with scatter, part of it tied to halo assembly and environment.

Units: the catalog's h-scaled ones (``cosmoseg.data.table.STANDARD_UNITS``): pos Mpc/h (comoving), vel km/s
(peculiar), halo mass Msun/h, log_mstar log10 Msun/h, log_ssfr log10 1/yr, color_gi mag, log_radius log10 kpc/h,
log_z log10 Z/Zsun. The published relations are in Msun without h; a halo mass X Msun/h is X / h Msun and a
stellar mass Y Msun is Y h Msun/h, with h = ``halos.box.cosmology.h``.

Halo columns used (only ``pos``, ``vel``, ``mass`` are required; the others have fallbacks):

``mass`` (Msun/h)
    The halo mass put into the SMHM relation, whatever its definition (FoF, M_vir, M_200c): the model does not
    convert between definitions; the two relations were fitted to M_vir (Behroozi) and M_200c (Moster).
Missing values follow the data model (docs/data-model.md): where a catalog has a ``<column>_resolved`` mask, rows with
False there have no value (the column holds 0) and take the fallback below; without a mask, values <= 0 do.

``z_form`` or ``formation_redshift``, else ``concentration`` (+ ``concentration_resolved``)
    The assembly proxy. Earlier-forming haloes are more concentrated at fixed mass (Wechsler et al. 2002), so
    both order haloes the same way. It is turned into a Gaussian variable at fixed mass (its rank within bins of
    ``mass_bin_dex`` in log mass, mapped through the inverse normal CDF). Haloes without a usable value
    (concentration <= 0 or not resolved, bins of fewer than ``MIN_BIN_COUNT`` haloes, or no proxy column at all)
    get an independent standard normal instead, so the total scatter is unchanged.
``log_env_density_r2`` (``params.env_column``)
    Environment for quenching, Gaussianised at fixed mass like the assembly variable; ignored when absent.
``spin``
    Bullock spin parameter for the size; missing values (``spin_resolved`` False, or <= 0) and a missing column fall
    back to a lognormal
    draw with median ``spin_ref`` and ``spin_sigma_ln`` (Bullock et al. 2001).
``r200`` (Mpc/h)
    For sizes, satellite radii and velocities; missing values (``r200_resolved`` False, or <= 0) and a missing
    column fall back to R_200c of ``mass``.
``concentration``
    NFW concentration of the satellite profile; unresolved values and a missing column fall back to Duffy et al.
    (2008) c(M).

Output rows: the N centrals first, in halo order (``host`` = their own row), then the satellites grouped by host.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch

from cosmoseg.data import Catalog, GalaxyCatalog, HaloCatalog
from cosmoseg.errors import ProblemCollector, ValidationError
from cosmoseg.galaxies import relations

__all__ = [
    "ASSEMBLY_COLUMNS",
    "G_NEWTON",
    "MIN_BIN_COUNT",
    "REQUIRED_COLUMNS",
    "VARIANTS",
    "GalaxyModelParams",
    "VariantName",
    "central_log_mstar_median",
    "gaussianized_rank",
    "paint_galaxies",
    "quenched_fraction",
]

G_NEWTON = 4.30091e-9
"""Newton's constant in Mpc (km/s)^2 / Msun."""

REQUIRED_COLUMNS: tuple[str, ...] = ("pos", "vel", "mass")
ASSEMBLY_COLUMNS: tuple[str, ...] = ("z_form", "formation_redshift", "concentration")
"""Assembly proxies in order of preference: the first one present is used."""

MIN_BIN_COUNT = 5
"""Mass bins with fewer haloes than this give no rank information: their haloes get a random assembly variable."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class GalaxyModelParams:
    """All the knobs of the galaxy model; :data:`VARIANTS` holds the named sets.

    Stellar mass (centrals and satellites):
        smhm: "behroozi13" or "moster13", the median relation (:mod:`cosmoseg.galaxies.relations`).
        scatter_dex: total lognormal scatter of log M* at fixed halo mass, dex.
        assembly_corr: correlation coefficient rho in [-1, 1] between the log M* residual and the assembly
            variable: residual = scatter_dex (rho a + sqrt(1 - rho^2) eps), a and eps standard normal.
        mass_bin_dex: width of the log-mass bins in which the assembly and environment ranks are taken.
    Quenching: logit f_q = (log M - quench_log_mass) / quench_width + quench_assembly a + quench_env e, with
        M the stellar mass [Msun/h] ("mstar") or the halo (satellites: infall) mass [Msun/h] ("halo"), a and e the
        Gaussianised assembly and environment variables; satellites: f_q,sat = f_q + (1 - f_q) sat_quench_efficiency.
    Star formation: main sequence of Speagle et al. (2014) at the box's cosmic time with ``ms_scatter`` dex;
        quenched galaxies log sSFR ~ N(quenched_log_ssfr, quenched_scatter).
    Colour: g - i = color_zero + color_mstar (log M* [Msun] - 10) + color_ssfr (log sSFR + 10) + N(0, color_scatter).
    Size: r_1/2 = size_ratio (lambda / spin_ref) R_200 (quenched: + quenched_size_offset dex) + N(0, size_scatter) dex.
    Metallicity: Mannucci et al. (2010) FMR + N(0, metal_scatter) dex.
    Satellites: <N_sat> = (M / 10^sat_log_m1)^sat_alpha for M > 10^sat_log_mcut [Msun/h]; infall masses
        dN/dm ∝ m^subhalo_slope between 10^sat_log_msub_min and sat_mu_max M [Msun/h].
    """

    smhm: Literal["behroozi13", "moster13"] = "behroozi13"
    scatter_dex: float = 0.2
    assembly_corr: float = 0.6
    mass_bin_dex: float = 0.2
    quench_on: Literal["mstar", "halo"] = "mstar"
    quench_log_mass: float = 10.4
    quench_width: float = 0.25
    quench_assembly: float = 0.5
    quench_env: float = 0.4
    env_column: str = "log_env_density_r2"
    sat_quench_efficiency: float = 0.4
    ms_scatter: float = 0.3
    quenched_log_ssfr: float = -12.0
    quenched_scatter: float = 0.4
    color_zero: float = 0.70
    color_mstar: float = 0.10
    color_ssfr: float = -0.175
    color_scatter: float = 0.05
    size_ratio: float = 0.015
    spin_ref: float = 0.035
    spin_sigma_ln: float = 0.5
    size_scatter: float = 0.1
    quenched_size_offset: float = -0.1
    metal_scatter: float = 0.08
    sat_log_m1: float = 12.9
    sat_alpha: float = 1.0
    sat_log_mcut: float = 11.8
    sat_log_msub_min: float = 10.5
    sat_mu_max: float = 0.5
    subhalo_slope: float = -1.9

    def __post_init__(self) -> None:
        problems = ProblemCollector()
        problems.check(
            self.smhm in ("behroozi13", "moster13"), f"smhm must be 'behroozi13' or 'moster13', got {self.smhm!r}"
        )
        problems.check(
            self.quench_on in ("mstar", "halo"), f"quench_on must be 'mstar' or 'halo', got {self.quench_on!r}"
        )
        problems.check(
            -1.0 <= self.assembly_corr <= 1.0, f"assembly_corr must lie in [-1, 1], got {self.assembly_corr}"
        )
        for name in (
            "mass_bin_dex",
            "quench_width",
            "spin_ref",
            "size_ratio",
            "sat_alpha",
            "sat_mu_max",
        ):
            value = getattr(self, name)
            problems.check(math.isfinite(value) and value > 0, f"{name} must be positive, got {value}")
        for name in (
            "scatter_dex",
            "ms_scatter",
            "quenched_scatter",
            "color_scatter",
            "spin_sigma_ln",
            "size_scatter",
            "metal_scatter",
        ):
            value = getattr(self, name)
            problems.check(math.isfinite(value) and value >= 0, f"{name} must be >= 0, got {value}")
        problems.check(
            0.0 <= self.sat_quench_efficiency <= 1.0,
            f"sat_quench_efficiency must lie in [0, 1], got {self.sat_quench_efficiency}",
        )
        problems.check(self.sat_mu_max <= 1.0, f"sat_mu_max must be <= 1, got {self.sat_mu_max}")
        problems.check(
            self.sat_log_msub_min < self.sat_log_mcut + math.log10(self.sat_mu_max) if self.sat_mu_max > 0 else False,
            "the smallest subhalo 10^sat_log_msub_min must lie below sat_mu_max * 10^sat_log_mcut",
        )
        problems.check(self.subhalo_slope != -1.0, "subhalo_slope must differ from -1")
        problems.raise_if_any(ValidationError, context="GalaxyModelParams")


VARIANTS: dict[str, GalaxyModelParams] = {
    # stellar-mass ("mass") quenching helped by early assembly and dense environments
    "fiducial": GalaxyModelParams(),
    # halo-mass quenching (a hot-halo threshold), driven harder by assembly, blind to the environment, with
    # stronger satellite quenching
    "moster13": GalaxyModelParams(
        smhm="moster13",
        assembly_corr=0.4,
        quench_on="halo",
        quench_log_mass=12.0,
        quench_width=0.3,
        quench_assembly=1.0,
        quench_env=0.0,
        sat_quench_efficiency=0.6,
    ),
}
"""Named parameter sets; ``paint_galaxies(variant=name)`` picks one."""

VariantName = Literal["fiducial", "moster13"]
"""The names of :data:`VARIANTS`, as a type (the ``variant`` param of the ``galaxies.model`` stage)."""


def central_log_mstar_median(mass: torch.Tensor, h: float, smhm: str = "behroozi13") -> torch.Tensor:
    """Median log10 M* [Msun/h] of a central in a halo of ``mass`` [Msun/h] (any shape), for the Hubble
    parameter ``h``: the published relation evaluated at mass / h Msun, its M* [Msun] times h."""
    log_m = torch.log10(mass.to(torch.float64)) - math.log10(h)
    fn = relations.behroozi13_log_mstar if smhm == "behroozi13" else relations.moster13_log_mstar
    return fn(log_m) + math.log10(h)


def quenched_fraction(
    log_mass: torch.Tensor,
    assembly: torch.Tensor,
    env: torch.Tensor | None,
    params: GalaxyModelParams,
    *,
    satellite: bool = False,
) -> torch.Tensor:
    """Probability (same shape as ``log_mass``) that a galaxy is quenched.

    log_mass: log10 of the stellar mass (``quench_on="mstar"``) or halo/infall mass (``"halo"``), Msun/h.
    assembly, env: Gaussianised assembly and environment variables (``env`` None: no environment term).
    """
    logit = (log_mass - params.quench_log_mass) / params.quench_width + params.quench_assembly * assembly
    if env is not None:
        logit = logit + params.quench_env * env
    f = torch.sigmoid(logit)
    if satellite:
        f = f + (1.0 - f) * params.sat_quench_efficiency
    return f


def gaussianized_rank(
    values: torch.Tensor,
    log_mass: torch.Tensor,
    bin_dex: float,
    generator: torch.Generator,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Standard-normal variable (N,) that orders ``values`` (N,) at fixed mass.

    Within each bin of width ``bin_dex`` in ``log_mass`` (N,), the rank r of a value among the n valid ones of its
    bin becomes Phi^-1((r + 1/2) / n). Invalid entries (``valid`` False) and bins of fewer than ``MIN_BIN_COUNT``
    valid haloes get an independent N(0, 1) draw from ``generator``. Ties are broken by row order.
    """
    n = values.shape[0]
    if valid is None:
        valid = torch.ones(n, dtype=torch.bool, device=values.device)
    bins = torch.floor(log_mass / bin_dex).long() * 2 + (~valid).long()
    _, group = torch.unique(bins, return_inverse=True)
    order = torch.argsort(values, stable=True)
    order = order[torch.argsort(group[order], stable=True)]
    counts = torch.bincount(group)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty(n, dtype=torch.long, device=values.device)
    rank[order] = torch.arange(n, device=values.device) - starts[group[order]]
    count = counts[group].to(torch.float64)
    u = (rank.to(torch.float64) + 0.5) / count
    gauss = math.sqrt(2.0) * torch.erfinv(2.0 * u - 1.0)
    noise = torch.randn(n, generator=generator, dtype=torch.float64, device=values.device)
    use = valid & (count >= MIN_BIN_COUNT)
    return torch.where(use, gauss, noise)


def _check_halos(halos: Catalog, params: GalaxyModelParams) -> None:
    problems = ProblemCollector()
    problems.check(isinstance(halos, Catalog), f"halos must be a HaloCatalog, got {type(halos).__name__}")
    if problems:
        problems.raise_if_any(ValidationError, context="paint_galaxies")
    missing = [c for c in REQUIRED_COLUMNS if c not in halos.columns]
    problems.check(not missing, f"halo catalog lacks required column(s) {missing}; it has {sorted(halos.columns)}")
    used = [*REQUIRED_COLUMNS, *ASSEMBLY_COLUMNS, params.env_column, "spin", "r200"]
    for name in used:
        if name not in halos.columns:
            continue
        t = halos.columns[name]
        if not t.is_floating_point():
            problems.add(f"column {name!r} must be floating point, got dtype {t.dtype}")
            continue
        want = (len(halos), 3) if name in ("pos", "vel") else (len(halos),)
        if tuple(t.shape) != want:
            problems.add(f"column {name!r} must have shape {want}, got {tuple(t.shape)}")
            continue
        n_bad = int((~torch.isfinite(t)).sum())
        problems.check(n_bad == 0, f"column {name!r} holds {n_bad} NaN or infinite value(s)")
    if "mass" in halos.columns and not problems:
        problems.check(bool((halos.columns["mass"] > 0).all()), "column 'mass' must be positive Msun/h")
    problems.raise_if_any(ValidationError, context="paint_galaxies")


def _assembly_variable(
    halos: Catalog, log_mass: torch.Tensor, params: GalaxyModelParams, gen: torch.Generator
) -> torch.Tensor:
    for name in ASSEMBLY_COLUMNS:
        if name in halos.columns:
            values = halos[name].to(torch.float64)
            valid = _has_value(halos, name) if name == "concentration" else halos.resolved(name)
            return gaussianized_rank(values, log_mass, params.mass_bin_dex, gen, valid)
    return torch.randn(len(halos), generator=gen, dtype=torch.float64, device=log_mass.device)


def _halo_r200(halos: Catalog, mass: torch.Tensor) -> torch.Tensor:
    """R_200 (N,) in comoving Mpc/h: the ``r200`` column where positive, else R_200c of ``mass``."""
    box = halos.box
    from_mass = relations.r200c_mpc_h(mass, box.cosmology, box.redshift)
    if "r200" in halos.columns:
        return torch.where(_has_value(halos, "r200"), halos["r200"].to(torch.float64), from_mass)
    return from_mass


def _halo_concentration(halos: Catalog, mass: torch.Tensor) -> torch.Tensor:
    """NFW concentration (N,): the ``concentration`` column where resolved and positive, else Duffy et al. (2008)."""
    fallback = relations.duffy08_concentration(mass, halos.box.redshift)
    if "concentration" in halos.columns:
        return torch.where(_has_value(halos, "concentration"), halos["concentration"].to(torch.float64), fallback)
    return fallback


def _has_value(halos: Catalog, name: str) -> torch.Tensor:
    """(N,) bool: rows of the positive quantity ``name`` that hold a value: its ``<name>_resolved`` mask where the
    catalog has one, and a positive value (catalogs without a mask mark missing values with 0 or less)."""
    return halos.resolved(name).to(torch.bool) & (halos[name].to(torch.float64) > 0)


def _properties(
    log_mstar: torch.Tensor,
    quenched: torch.Tensor,
    r200: torch.Tensor,
    spin: torch.Tensor,
    h: float,
    age_gyr: float,
    params: GalaxyModelParams,
    gen: torch.Generator,
) -> dict[str, torch.Tensor]:
    """log_ssfr, color_gi, log_radius, log_z (each (M,)) for galaxies of ``log_mstar`` [log10 Msun/h] (M,),
    ``quenched`` (M,) bool, host/subhalo R_200 [Mpc/h] and spin lambda (M,)."""
    m = log_mstar.shape[0]
    dev = log_mstar.device

    def normal() -> torch.Tensor:
        return torch.randn(m, generator=gen, dtype=torch.float64, device=dev)

    log_mstar_msun = log_mstar - math.log10(h)
    ms = relations.speagle14_log_sfr(log_mstar_msun, age_gyr) - log_mstar_msun
    log_ssfr = torch.where(
        quenched,
        params.quenched_log_ssfr + params.quenched_scatter * normal(),
        ms + params.ms_scatter * normal(),
    )
    color = (
        params.color_zero
        + params.color_mstar * (log_mstar_msun - 10.0)
        + params.color_ssfr * (log_ssfr + 10.0)
        + params.color_scatter * normal()
    )
    # r_1/2 [kpc/h] = size_ratio * (lambda / lambda_ref) * R_200 [Mpc/h] * 1000
    log_radius = (
        math.log10(params.size_ratio * 1000.0)
        + torch.log10(spin / params.spin_ref)
        + torch.log10(r200)
        + torch.where(quenched, params.quenched_size_offset, 0.0)
        + params.size_scatter * normal()
    )
    log_oh = relations.mannucci10_log_oh(log_mstar_msun, log_ssfr + log_mstar_msun)
    log_z = log_oh - relations.LOG_ZSUN_OH + params.metal_scatter * normal()
    return {"log_ssfr": log_ssfr, "color_gi": color, "log_radius": log_radius, "log_z": log_z}


def paint_galaxies(
    halos: HaloCatalog,
    *,
    variant: str | GalaxyModelParams = "fiducial",
    seed: int = 0,
    satellites: bool = True,
    min_log_mstar: float | None = None,
) -> GalaxyCatalog:
    """Paint centrals and satellites onto ``halos`` with the semi-empirical model of this module.

    halos: N haloes with ``pos`` (N, 3) Mpc/h, ``vel`` (N, 3) km/s, ``mass`` (N,) Msun/h, and optional columns
        (module docstring). Every float column used must be finite.
    variant: a name in :data:`VARIANTS` or a :class:`GalaxyModelParams`.
    seed: seeds the ``torch.Generator`` (on the halos' device) behind every draw: same seed, same galaxies.
    satellites: False paints centrals only.
    min_log_mstar: drop galaxies below this log10 M* [Msun/h] (None keeps all).

    Returns a :class:`GalaxyCatalog` in ``halos.box`` with columns pos (G, 3), vel (G, 3), log_mstar, log_ssfr,
    color_gi, log_radius, log_z (G,) float in the dtype of ``halos["pos"]``, is_central, is_quenched (G,) bool,
    host (G,) int64 (row of the host halo); meta records ``galaxy_model`` (variant name or "custom") and ``seed``.
    Raises `ValidationError` naming every missing required column, and for NaN/inf in any column it uses.
    """
    if isinstance(variant, GalaxyModelParams):
        params, name = variant, "custom"
    elif variant in VARIANTS:
        params, name = VARIANTS[variant], variant
    else:
        raise ValidationError(f"unknown galaxy model variant {variant!r}; known: {sorted(VARIANTS)}")
    _check_halos(halos, params)

    pos = halos["pos"]
    dev, out_dtype = pos.device, pos.dtype
    box = halos.box
    h, a = box.cosmology.h, box.scale_factor
    gen = torch.Generator(device=dev)
    gen.manual_seed(int(seed))
    n = len(halos)

    mass = halos["mass"].to(torch.float64)
    log_mass = torch.log10(mass)
    r200 = _halo_r200(halos, mass)
    assembly = _assembly_variable(halos, log_mass, params, gen)
    env = None
    if params.env_column in halos.columns:
        env = gaussianized_rank(halos[params.env_column].to(torch.float64), log_mass, params.mass_bin_dex, gen)
    age_gyr = relations.age_of_universe_gyr(box.cosmology, box.redshift)

    def normal(m: int) -> torch.Tensor:
        return torch.randn(m, generator=gen, dtype=torch.float64, device=dev)

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen, dtype=torch.float64, device=dev)

    rho = params.assembly_corr
    # centrals
    cen_log_mstar = central_log_mstar_median(mass, h, params.smhm) + params.scatter_dex * (
        rho * assembly + math.sqrt(1.0 - rho**2) * normal(n)
    )
    q_mass = cen_log_mstar if params.quench_on == "mstar" else log_mass
    cen_quenched = uniform(n) < quenched_fraction(q_mass, assembly, env, params)
    if "spin" in halos.columns:
        spin = halos["spin"].to(torch.float64)
        drawn = params.spin_ref * torch.exp(params.spin_sigma_ln * normal(n))
        spin = torch.where(_has_value(halos, "spin"), spin, drawn)
    else:
        spin = params.spin_ref * torch.exp(params.spin_sigma_ln * normal(n))
    cen_props = _properties(cen_log_mstar, cen_quenched, r200, spin, h, age_gyr, params, gen)

    # satellites
    if satellites:
        rate = torch.where(
            log_mass > params.sat_log_mcut,
            (mass / 10.0**params.sat_log_m1) ** params.sat_alpha,
            torch.zeros_like(mass),
        )
        n_sat = torch.poisson(rate, generator=gen).long()
    else:
        n_sat = torch.zeros(n, dtype=torch.long, device=dev)
    host = torch.repeat_interleave(torch.arange(n, device=dev), n_sat)
    s = int(host.shape[0])
    # infall masses from the power-law subhalo mass function, inverse CDF between m_lo and mu_max * M_host
    k = params.subhalo_slope + 1.0
    m_lo = torch.full((s,), 10.0**params.sat_log_msub_min, dtype=torch.float64, device=dev)
    m_hi = params.sat_mu_max * mass[host]
    m_sub = (m_lo**k + uniform(s) * (m_hi**k - m_lo**k)) ** (1.0 / k)
    sat_assembly = normal(s)
    sat_log_mstar = central_log_mstar_median(m_sub, h, params.smhm) + params.scatter_dex * normal(s)
    sat_env = env[host] if env is not None else None
    q_mass = sat_log_mstar if params.quench_on == "mstar" else torch.log10(m_sub)
    sat_quenched = uniform(s) < quenched_fraction(q_mass, sat_assembly, sat_env, params, satellite=True)
    sat_r200_own = relations.r200c_mpc_h(m_sub, box.cosmology, box.redshift)
    sat_spin = params.spin_ref * torch.exp(params.spin_sigma_ln * normal(s))
    sat_props = _properties(sat_log_mstar, sat_quenched, sat_r200_own, sat_spin, h, age_gyr, params, gen)

    # NFW positions within the host's r200, isotropic directions
    conc = _halo_concentration(halos, mass)[host]
    host_r200 = r200[host]
    radius = relations.nfw_radius_quantile(uniform(s), conc) * host_r200
    direction = torch.randn(s, 3, generator=gen, dtype=torch.float64, device=dev)
    direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-300)
    sat_pos = pos[host].to(torch.float64) + radius[:, None] * direction
    # 1D dispersion sqrt(G M / (2 R)) with M in Msun and the physical R in Mpc: the factors of h cancel
    sigma = torch.sqrt(G_NEWTON * mass[host] / (2.0 * a * host_r200))
    sat_vel = halos["vel"][host].to(torch.float64) + sigma[:, None] * torch.randn(
        s, 3, generator=gen, dtype=torch.float64, device=dev
    )

    columns: dict[str, torch.Tensor] = {
        "pos": torch.cat([pos.to(torch.float64), sat_pos]),
        "vel": torch.cat([halos["vel"].to(torch.float64), sat_vel]),
        "log_mstar": torch.cat([cen_log_mstar, sat_log_mstar]),
    }
    for key in ("log_ssfr", "color_gi", "log_radius", "log_z"):
        columns[key] = torch.cat([cen_props[key], sat_props[key]])
    columns = {key: value.to(out_dtype) for key, value in columns.items()}
    columns["is_central"] = torch.cat(
        [torch.ones(n, dtype=torch.bool, device=dev), torch.zeros(s, dtype=torch.bool, device=dev)]
    )
    columns["is_quenched"] = torch.cat([cen_quenched, sat_quenched])
    columns["host"] = torch.cat([torch.arange(n, device=dev), host]).to(torch.int64)
    catalog = GalaxyCatalog(
        columns=columns, box=box, meta={"galaxy_model": name, "seed": int(seed), "satellites": bool(satellites)}
    )
    if min_log_mstar is not None:
        catalog = catalog.select(catalog["log_mstar"] >= min_log_mstar)
    return catalog
