"""Published galaxy–halo scaling relations, as plain vectorised torch functions in the units of their papers.

Every function takes and returns float tensors of any shape (element-wise) and states its units. The papers work
in physical units without h (Msun, kpc) and each assumed its own h; :mod:`cosmoseg.galaxies.model` converts the
catalog's h-scaled masses before calling them. Nothing here draws random numbers.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "BEHROOZI13_Z0",
    "LOG_ZSUN_OH",
    "MOSTER13_Z0",
    "RHO_CRIT0",
    "age_of_universe_gyr",
    "behroozi13_log_mstar",
    "duffy08_concentration",
    "mannucci10_log_oh",
    "moster13_log_mstar",
    "nfw_mu",
    "nfw_radius_quantile",
    "r200c_mpc_h",
    "speagle14_log_sfr",
]

BEHROOZI13_Z0: dict[str, float] = {
    "log_epsilon": -1.777,
    "log_m1": 11.514,
    "alpha": -1.412,
    "delta": 3.508,
    "gamma": 0.316,
}
"""Behroozi, Wechsler & Conroy (2013, ApJ 770, 57), eq. 3-4 and their Section 5 fit at z = 0 (a = 1, so every
redshift-evolution term vanishes). Masses in Msun (their h = 0.7), halo mass M_vir, Chabrier IMF."""

MOSTER13_Z0: dict[str, float] = {
    "log_m1": 11.590,
    "norm": 0.0351,
    "beta": 1.376,
    "gamma": 0.608,
}
"""Moster, Naab & White (2013, MNRAS 428, 3121), eq. 2 with the z = 0 values of their Table 1. Masses in Msun
(their h = 0.704), halo mass M_200c, Chabrier IMF."""

LOG_ZSUN_OH = 8.69
"""Solar oxygen abundance 12 + log10(O/H) (Asplund et al. 2009, ARA&A 47, 481)."""

RHO_CRIT0 = 2.77536627e11
"""Critical density today in (Msun/h) / (Mpc/h)^3."""


def behroozi13_log_mstar(log_mhalo: torch.Tensor, p: dict[str, float] = BEHROOZI13_Z0) -> torch.Tensor:
    """Median log10 M* [Msun] of central galaxies for log10 M_h [Msun] (Behroozi et al. 2013, eq. 3).

    log M* = log(eps M1) + f(log(M_h / M1)) - f(0),
    f(x) = -log10(10^(alpha x) + 1) + delta (log10(1 + e^x))^gamma / (1 + exp(10^-x)).
    """
    x = log_mhalo - p["log_m1"]

    def f(x: torch.Tensor) -> torch.Tensor:
        # exp(10^-x) overflows to inf for x < -2.5: the second term then correctly goes to 0
        return -torch.log10(10.0 ** (p["alpha"] * x) + 1.0) + p["delta"] * torch.log10(1.0 + torch.exp(x)) ** p[
            "gamma"
        ] / (1.0 + torch.exp(10.0 ** (-x)))

    return p["log_epsilon"] + p["log_m1"] + f(x) - f(torch.zeros_like(x))


def moster13_log_mstar(log_mhalo: torch.Tensor, p: dict[str, float] = MOSTER13_Z0) -> torch.Tensor:
    """Median log10 M* [Msun] of central galaxies for log10 M_h [Msun] (Moster et al. 2013, eq. 2).

    M* / M_h = 2 N [(M_h / M1)^-beta + (M_h / M1)^gamma]^-1.
    """
    x = log_mhalo - p["log_m1"]
    ratio = 2.0 * p["norm"] / (10.0 ** (-p["beta"] * x) + 10.0 ** (p["gamma"] * x))
    return log_mhalo + torch.log10(ratio)


def age_of_universe_gyr(cosmology: object, redshift: float) -> float:
    """Cosmic time at ``redshift`` in Gyr: (1/H0) * integral of d ln a / E(a) from a ~ 0 (radiation ignored).

    ``cosmology`` is a :class:`cosmoseg.data.Cosmology` (needs ``h`` and ``efunc``).
    """
    a_end = 1.0 / (1.0 + redshift)
    ln_a = np.linspace(math.log(1e-8), math.log(a_end), 4097)
    integrand = 1.0 / np.asarray(cosmology.efunc(np.exp(ln_a)), dtype=np.float64)  # type: ignore[attr-defined]
    integral = float(np.sum(0.5 * (integrand[1:] + integrand[:-1]) * np.diff(ln_a)))
    hubble_time_gyr = 977.792221 / (100.0 * cosmology.h)  # type: ignore[attr-defined]
    return hubble_time_gyr * integral


def speagle14_log_sfr(log_mstar_msun: torch.Tensor, age_gyr: float) -> torch.Tensor:
    """Star-forming main sequence, log10 SFR [Msun/yr] for log10 M* [Msun] at cosmic time ``age_gyr``.

    Speagle et al. (2014, ApJS 214, 15), eq. 28 (Kroupa IMF):
    log SFR = (0.84 - 0.026 t) log M* - (6.51 - 0.11 t), t in Gyr.
    """
    return (0.84 - 0.026 * age_gyr) * log_mstar_msun - (6.51 - 0.11 * age_gyr)


def mannucci10_log_oh(log_mstar_msun: torch.Tensor, log_sfr: torch.Tensor) -> torch.Tensor:
    """Gas-phase 12 + log10(O/H) from the fundamental metallicity relation (Mannucci et al. 2010, MNRAS 408, 2115,
    eq. 2), m = log M* [Msun] - 10, s = log SFR [Msun/yr]:

    12 + log(O/H) = 8.90 + 0.37 m - 0.14 s - 0.19 m^2 + 0.12 m s - 0.054 s^2.

    The quadratic is fitted over about 9.2 < log M* < 11.4 and -1.5 < log SFR < 0.8; inputs are clamped to
    [-1, 1.4] in m and [-1.5, 1.0] in s so that dwarfs and quenched galaxies do not ride the parabola off its range.
    """
    m = (log_mstar_msun - 10.0).clamp(-1.0, 1.4)
    s = log_sfr.clamp(-1.5, 1.0)
    return 8.90 + 0.37 * m - 0.14 * s - 0.19 * m**2 + 0.12 * m * s - 0.054 * s**2


def duffy08_concentration(mass_msun_h: torch.Tensor, redshift: float) -> torch.Tensor:
    """NFW concentration c_200c for M_200c [Msun/h] (Duffy et al. 2008, MNRAS 390, L64, Table 1, full sample,
    NFW, Delta = 200 critical): c = 5.71 (M / 2e12)^-0.084 (1 + z)^-0.47."""
    return 5.71 * (mass_msun_h / 2e12) ** -0.084 * (1.0 + redshift) ** -0.47


def r200c_mpc_h(mass_msun_h: torch.Tensor, cosmology: object, redshift: float) -> torch.Tensor:
    """Comoving R_200c [Mpc/h] of M [Msun/h]: the radius enclosing 200 rho_crit(z) (comoving: times a^3),
    rho_crit(z) = rho_crit,0 E(z)^2, as in :mod:`cosmoseg.sim.halo_properties`."""
    a = 1.0 / (1.0 + redshift)
    e2 = float(cosmology.efunc(a)) ** 2  # type: ignore[attr-defined]
    rho = 200.0 * RHO_CRIT0 * e2 * a**3
    return (3.0 * mass_msun_h / (4.0 * math.pi * rho)) ** (1.0 / 3.0)


def nfw_mu(y: torch.Tensor) -> torch.Tensor:
    """NFW enclosed-mass shape mu(y) = ln(1 + y) - y / (1 + y), y = r / r_s."""
    return torch.log1p(y) - y / (1.0 + y)


def nfw_radius_quantile(u: torch.Tensor, concentration: torch.Tensor, *, n_iter: int = 60) -> torch.Tensor:
    """x = r / r200 with M(<x r200) / M(<r200) = u for an NFW profile truncated at r200, by bisection on [0, 1].

    u, concentration: tensors broadcastable to each other, u in [0, 1]. 60 halvings reach float64 round-off.
    """
    u, concentration = torch.broadcast_tensors(u, concentration)
    target = u * nfw_mu(concentration)
    lo = torch.zeros_like(target)
    hi = torch.ones_like(target)
    for _ in range(n_iter):
        mid = 0.5 * (lo + hi)
        below = nfw_mu(concentration * mid) < target
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    return 0.5 * (lo + hi)
