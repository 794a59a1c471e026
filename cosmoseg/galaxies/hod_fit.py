"""Calibrating the Zheng et al. (2007) HOD to a galaxy catalog: the five parameters from its occupations.

:func:`fit_zheng07` takes haloes and galaxies that live in them (``host`` = row of the host halo, ``is_central``)
and fits

* the central step (log M_min, σ_logM) to the binned fraction of haloes with a central
  (:func:`fit_central_occupation`, amplitude fixed to 1);
* the satellite power law <N_sat> = ((M − M_0) / M_1)^α to the binned mean satellite counts: least squares on
  log10 <N_sat> over the bins with satellites, each weighted by the square root of its number of satellites.

``modulate_satellites`` stays off and no decoration is fitted. :func:`calibrate_hod` puts the five into a set of
``HODParams`` whose decorations it keeps: the ``galaxies.hod`` stage does so when it is given ``calibration_halos``
and ``calibration_galaxies``.

:func:`fit_central_occupation` alone (any selection of centrals, with a free amplitude A: <N_cen> = A × the Zheng07
step) is also the HOD row of the clustering comparison (:mod:`cosmoseg.galaxies.clustering`), fitted per
sub-population.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import numpy.typing as npt
import torch

from cosmoseg.data import GalaxyCatalog, HaloCatalog
from cosmoseg.errors import ValidationError
from cosmoseg.galaxies.hod import HODParams, mean_occupation

__all__ = [
    "OCCUPATION_PARAMETERS",
    "CentralOccupationFit",
    "calibrate_hod",
    "fit_central_occupation",
    "fit_satellite_occupation",
    "fit_zheng07",
    "occupation_counts",
    "occupation_fraction",
]

OCCUPATION_PARAMETERS = ("log_m_min", "sigma_log_m", "log_m0", "log_m1", "alpha")
"""The five Zheng07 occupation parameters that :func:`fit_zheng07` fits (the decorations are not fitted)."""


@dataclasses.dataclass(frozen=True)
class CentralOccupationFit:
    """<N_cen>(M) = amplitude * 1/2 [1 + erf((log M - log_m_min) / sigma_log_m)] (M in Msun/h, log10).

    rms: root-mean-square residual of the binned fraction (unweighted), for the record.
    """

    log_m_min: float
    sigma_log_m: float
    amplitude: float = 1.0
    rms: float = 0.0

    @property
    def params(self) -> HODParams:
        """The Zheng07 ``HODParams`` of the central step (satellites pushed out of reach: log M_0 = log M_1 = 20)."""
        return HODParams(log_m_min=self.log_m_min, sigma_log_m=self.sigma_log_m, log_m0=20.0, log_m1=20.0)

    def mean(self, mass: torch.Tensor) -> torch.Tensor:
        """<N_cen> of haloes of mass ``mass`` (any shape, Msun/h), float64."""
        return self.amplitude * mean_occupation(mass, self.params)[0]

    def draw(self, mass: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``(N,)`` bool: a Bernoulli central per halo of mass ``mass`` (N,) Msun/h."""
        p = self.mean(mass).cpu()
        return (torch.rand(p.shape, generator=generator, dtype=torch.float64) < p).to(mass.device)


def occupation_fraction(
    log_mass: npt.ArrayLike, selected: npt.ArrayLike, edges: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Fraction of haloes hosting a selected central per log-mass bin: (centres, fraction, counts), empty bins out.

    log_mass: (N,) log10 Msun/h. selected: (N,) bool. edges: (B+1,) log10 Msun/h.
    """
    lm, sel, e = np.asarray(log_mass, np.float64), np.asarray(selected, bool), np.asarray(edges, np.float64)
    counts = np.histogram(lm, e)[0]
    hits = np.histogram(lm[sel], e)[0]
    keep = counts > 0
    centres = 0.5 * (e[1:] + e[:-1])
    return centres[keep], hits[keep] / counts[keep], counts[keep].astype(np.int64)


def fit_central_occupation(
    log_mass: npt.ArrayLike,
    selected: npt.ArrayLike,
    *,
    edges: npt.ArrayLike | None = None,
    fit_amplitude: bool = True,
) -> CentralOccupationFit:
    """Fit the Zheng07 central occupation to the binned fraction of haloes with a selected central.

    log_mass: (N,) log10 Msun/h; selected: (N,) bool. edges: log-mass bin edges (default 0.1 dex over the range).
    Least squares (``scipy.optimize.least_squares``, bounded) on (fraction - model) sqrt(counts), i.e. binomial
    errors with a common variance; ``fit_amplitude`` frees A in (0, 1] (A = 1 otherwise).
    """
    from scipy.optimize import least_squares

    lm = np.asarray(log_mass, np.float64)
    if lm.size == 0:
        raise ValidationError("no haloes to fit an occupation to")
    if edges is None:
        edges = np.arange(math.floor(lm.min() * 10) / 10, lm.max() + 0.1, 0.1)
    centres, frac, counts = occupation_fraction(lm, selected, edges)
    weight = np.sqrt(counts)
    top = max(float(frac.max()), 1e-3)
    above = np.flatnonzero(frac >= 0.5 * top)
    start_mmin = float(centres[above[0]]) if above.size else float(np.median(lm))

    def model(theta: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        amp = theta[2] if fit_amplitude else 1.0
        fit = CentralOccupationFit(log_m_min=float(theta[0]), sigma_log_m=float(theta[1]), amplitude=float(amp))
        return fit.mean(torch.from_numpy(10.0**centres)).numpy()

    lo = [float(edges[0]) - 2.0, 0.02] + ([1e-4] if fit_amplitude else [])
    hi = [float(edges[-1]) + 2.0, 3.0] + ([1.0] if fit_amplitude else [])
    x0 = [start_mmin, 0.3] + ([min(max(top, 2e-4), 1.0)] if fit_amplitude else [])
    result = least_squares(lambda t: (frac - model(t)) * weight, x0, bounds=(lo, hi))
    theta = result.x
    rms = float(np.sqrt(np.mean((frac - model(theta)) ** 2)))
    amp = float(theta[2]) if fit_amplitude else 1.0
    return CentralOccupationFit(log_m_min=float(theta[0]), sigma_log_m=float(theta[1]), amplitude=amp, rms=rms)


def occupation_counts(halos: HaloCatalog, galaxies: GalaxyCatalog) -> tuple[torch.Tensor, torch.Tensor]:
    """Centrals (0/1) and satellites per halo, (H,) int64 each, from the galaxies' ``host`` and ``is_central``."""
    missing = [c for c in ("host", "is_central") if c not in galaxies]
    if missing or "mass" not in halos:
        raise ValidationError(
            f"calibrating an HOD needs galaxies with {missing or 'host, is_central'} and haloes with mass; the "
            f"galaxies have {sorted(galaxies.columns)}, the haloes {sorted(halos.columns)}",
            context="fit_zheng07",
        )
    host = galaxies["host"].long().cpu()
    central = galaxies["is_central"].bool().cpu()
    n = len(halos)
    if host.numel() and (int(host.min()) < 0 or int(host.max()) >= n):
        raise ValidationError(f"galaxy hosts must be rows of the {n} haloes", context="fit_zheng07")
    n_cen = torch.bincount(host[central], minlength=n)
    n_sat = torch.bincount(host[~central], minlength=n)
    return n_cen.clamp_max(1), n_sat


def fit_satellite_occupation(
    log_mass: npt.ArrayLike, n_sat: npt.ArrayLike, *, edges: npt.ArrayLike | None = None
) -> tuple[float, float, float]:
    """(log M_0, log M_1, α) of <N_sat> = ((M − M_0)/M_1)^α fitted to the mean satellite count per log-mass bin."""
    from scipy.optimize import least_squares

    lm, sat = np.asarray(log_mass, np.float64), np.asarray(n_sat, np.float64)
    if edges is None:
        edges = np.arange(math.floor(lm.min() * 10) / 10, lm.max() + 0.1, 0.1)
    edges = np.asarray(edges, np.float64)
    counts = np.histogram(lm, edges)[0]
    totals = np.histogram(lm, edges, weights=sat)[0]
    keep = (counts > 0) & (totals > 0)
    if keep.sum() < 3:
        raise ValidationError(f"satellites in only {int(keep.sum())} mass bin(s): cannot fit M_0, M_1, alpha")
    centres = 0.5 * (edges[1:] + edges[:-1])[keep]
    mean = totals[keep] / counts[keep]
    weight = np.sqrt(totals[keep])

    def residual(theta: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        excess = np.maximum(10.0**centres - 10.0 ** theta[0], 1e-300) / 10.0 ** theta[1]
        return (theta[2] * np.log10(excess) - np.log10(mean)) * weight

    start = [float(centres[0]) - 0.5, float(centres[np.argmin(np.abs(mean - 1.0))]), 1.0]
    bounds = ([float(edges[0]) - 3.0, float(edges[0]) - 1.0, 0.1], [float(centres[0]), float(edges[-1]) + 3.0, 3.0])
    start = [min(max(s, lo + 1e-6), hi - 1e-6) for s, lo, hi in zip(start, *bounds, strict=True)]
    theta = least_squares(residual, start, bounds=bounds).x
    return float(theta[0]), float(theta[1]), float(theta[2])


def fit_zheng07(halos: HaloCatalog, galaxies: GalaxyCatalog) -> HODParams:
    """The Zheng07 ``HODParams`` whose occupations match those of ``galaxies`` in ``halos`` (see the module)."""
    n_cen, n_sat = occupation_counts(halos, galaxies)
    log_mass = np.log10(halos["mass"].double().cpu().numpy())
    central = fit_central_occupation(log_mass, n_cen.numpy() > 0, fit_amplitude=False)
    log_m0, log_m1, alpha = fit_satellite_occupation(log_mass, n_sat.numpy())
    return HODParams(
        log_m_min=central.log_m_min, sigma_log_m=central.sigma_log_m, log_m0=log_m0, log_m1=log_m1, alpha=alpha
    )


def calibrate_hod(params: HODParams, halos: HaloCatalog, galaxies: GalaxyCatalog) -> HODParams:
    """``params`` with the five occupation parameters (:data:`OCCUPATION_PARAMETERS`) fitted to ``galaxies`` in
    ``halos`` (:func:`fit_zheng07`); ``modulate_satellites`` and the decorations stay those of ``params``."""
    fitted = fit_zheng07(halos, galaxies)
    return params.clone(**{name: getattr(fitted, name) for name in OCCUPATION_PARAMETERS})
