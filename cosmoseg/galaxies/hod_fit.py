"""Calibrating the Zheng et al. (2007) HOD to a galaxy catalog: the five parameters from its occupations.

:func:`fit_zheng07` takes haloes and galaxies that live in them (``host`` = row of the host halo, ``is_central``)
and fits

* the central step (log M_min, σ_logM) to the binned fraction of haloes with a central
  (:func:`cosmoseg.galaxies.clustering.fit_central_occupation`, amplitude fixed to 1);
* the satellite power law <N_sat> = ((M − M_0) / M_1)^α to the binned mean satellite counts: least squares on
  log10 <N_sat> over the bins with satellites, each weighted by the square root of its number of satellites.

``modulate_satellites`` stays off and no decoration is fitted. :func:`calibrate_hod` puts the five into a set of
``HODParams`` whose decorations it keeps: the ``galaxies.hod`` stage does so when it is given ``calibration_halos``
and ``calibration_galaxies``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import torch

from cosmoseg.data import GalaxyCatalog, HaloCatalog
from cosmoseg.errors import ValidationError
from cosmoseg.galaxies.clustering import fit_central_occupation
from cosmoseg.galaxies.hod import HODParams

__all__ = ["OCCUPATION_PARAMETERS", "calibrate_hod", "fit_satellite_occupation", "fit_zheng07", "occupation_counts"]

OCCUPATION_PARAMETERS = ("log_m_min", "sigma_log_m", "log_m0", "log_m1", "alpha")
"""The five Zheng07 occupation parameters that :func:`fit_zheng07` fits (the decorations are not fitted)."""


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
