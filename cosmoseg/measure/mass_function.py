"""Halo and stellar mass functions with Poisson errors, and theory halo mass functions from colossus.

Units: masses Msun/h, volumes (Mpc/h)^3, number densities per (Mpc/h)^3 per unit ln M (haloes) or per dex
(stellar masses). Histograms run on the masses' device in float64.

Empty bins (docs/data-model.md, "Missing values"): ``counts`` is 0 there and the number density and its Poisson
error are a measured 0 (no object in the volume), not a missing value; a figure on a log axis leaves such bins out
(:func:`cosmoseg.measure.figures.plot_mass_function` with ``counts``) rather than drawing them at 0.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from cosmoseg.data import Catalog, Cosmology, Table
from cosmoseg.measure.onepoint import histogram

THEORY_MODELS: dict[str, str] = {"tinker08": "200m", "sheth99": "fof", "despali16": "vir"}
"""Theory mass functions offered, with the default mass definition of each (colossus names)."""

COLOSSUS_POWER_MODELS = ("eisenstein98", "eisenstein98_zb")
"""colossus's linear power spectrum models that ``theory_mass_function`` accepts."""

DENSITY_UNITS = "(Mpc/h)^-3"


def _log_edges(
    log_values: torch.Tensor,
    edges: Sequence[float] | torch.Tensor | None,
    n_bins: int,
    log_min: float | None,
    log_max: float | None,
) -> torch.Tensor:
    """Bin edges in log10 (float64): from ``edges`` (given in log10) or ``n_bins`` equal bins over [min, max]."""
    device = log_values.device
    if edges is not None:
        out = torch.as_tensor(edges, dtype=torch.float64).to(device).flatten()
        if out.numel() < 2 or not bool(torch.isfinite(out).all()) or not bool((out[1:] > out[:-1]).all()):
            raise ValueError(f"edges must be >= 2 finite, strictly increasing numbers, got {out.tolist()}")
        return out
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if log_values.numel() == 0 and (log_min is None or log_max is None):
        raise ValueError("no objects: give the mass range (min and max) explicitly")
    lo = float(log_values.min()) if log_min is None else float(log_min)
    hi = float(log_values.max()) if log_max is None else float(log_max)
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
        raise ValueError(f"the mass range must be finite with min <= max, got [{lo}, {hi}] (log10)")
    if hi == lo:
        lo, hi = lo - 0.05, hi + 0.05
    return torch.linspace(lo, hi, n_bins + 1, dtype=torch.float64, device=device)


def _check_volume(volume: float) -> float:
    volume = float(volume)
    if not (math.isfinite(volume) and volume > 0):
        raise ValueError(f"volume must be a positive number of (Mpc/h)^3, got {volume}")
    return volume


def halo_mass_function(
    masses: torch.Tensor,
    volume: float,
    *,
    edges: Sequence[float] | torch.Tensor | None = None,
    n_bins: int = 20,
    m_min: float | None = None,
    m_max: float | None = None,
) -> Table:
    """The halo mass function dn/dln M in logarithmic mass bins, with Poisson errors.

    masses: (N,) positive halo masses, Msun/h. volume: of the box, (Mpc/h)^3.
    edges: bin edges in Msun/h (increasing); else ``n_bins`` bins equal in ln M from ``m_min`` to ``m_max``
        (defaults: the smallest and largest mass; the last bin includes its upper edge).
    Returns a Table with one row per bin: m_low, m_high, m_mid (geometric centre), Msun/h; counts;
    dndlnm = counts / (V Δln M) and dndlnm_err = sqrt(counts) / (V Δln M), (Mpc/h)^-3. meta: volume, n_total
    (all haloes given), n_outside (haloes outside the edges). Σ dndlnm Δln M = N_inside / V.
    """
    volume = _check_volume(volume)
    masses = torch.as_tensor(masses)
    if masses.ndim != 1:
        raise ValueError(f"masses must be a 1-d tensor (N,), got shape {tuple(masses.shape)}")
    masses = masses.to(torch.float64)
    if masses.numel() and not bool((torch.isfinite(masses) & (masses > 0)).all()):
        raise ValueError("masses must be finite and positive (Msun/h)")
    for name, bound in (("m_min", m_min), ("m_max", m_max)):
        if bound is not None and not (math.isfinite(bound) and bound > 0):
            raise ValueError(f"{name} must be a positive mass in Msun/h, got {bound}")
    log_m = torch.log10(masses)
    log_edges = _log_edges(
        log_m,
        None if edges is None else torch.log10(torch.as_tensor(edges, dtype=torch.float64)),
        n_bins,
        None if m_min is None else math.log10(m_min),
        None if m_max is None else math.log10(m_max),
    )
    counts, below, above = histogram(log_m, log_edges)
    bin_edges = 10.0**log_edges
    if edges is not None:  # keep the caller's edges exactly, not their round trip through log10
        bin_edges = torch.as_tensor(edges, dtype=torch.float64).to(log_m.device).flatten()
    dlnm = (log_edges[1:] - log_edges[:-1]) * math.log(10.0)
    columns = {
        "m_low": bin_edges[:-1],
        "m_high": bin_edges[1:],
        "m_mid": 10.0 ** (0.5 * (log_edges[1:] + log_edges[:-1])),
        "counts": counts,
        "dndlnm": counts / (volume * dlnm),
        "dndlnm_err": counts.sqrt() / (volume * dlnm),
    }
    units = {"m_low": "Msun/h", "m_high": "Msun/h", "m_mid": "Msun/h", "dndlnm": DENSITY_UNITS}
    units["dndlnm_err"] = DENSITY_UNITS
    meta = {"kind": "mass_function", "volume": volume, "n_total": int(masses.numel()), "n_outside": below + above}
    return Table(columns=columns, units=units, meta=meta)


def stellar_mass_function(
    log_mstar: torch.Tensor,
    volume: float,
    *,
    edges: Sequence[float] | torch.Tensor | None = None,
    n_bins: int = 20,
    log_min: float | None = None,
    log_max: float | None = None,
) -> Table:
    """The stellar mass function dn/dlog10 M* in bins of log10 M*, with Poisson errors.

    log_mstar: (N,) log10 of stellar masses in Msun/h. volume: (Mpc/h)^3. edges / log_min / log_max in
    log10 Msun/h (defaults: the smallest and largest value, ``n_bins`` equal bins).
    Returns a Table: log_mstar_low, log_mstar_high, log_mstar_mid (log10 Msun/h); counts;
    dndlogm = counts / (V Δlog10 M*) and dndlogm_err, (Mpc/h)^-3 dex^-1. meta: volume, n_total, n_outside.
    """
    volume = _check_volume(volume)
    log_mstar = torch.as_tensor(log_mstar)
    if log_mstar.ndim != 1:
        raise ValueError(f"log_mstar must be a 1-d tensor (N,), got shape {tuple(log_mstar.shape)}")
    log_mstar = log_mstar.to(torch.float64)
    if not bool(torch.isfinite(log_mstar).all()):
        raise ValueError("log_mstar must be finite")
    log_edges = _log_edges(log_mstar, edges, n_bins, log_min, log_max)
    counts, below, above = histogram(log_mstar, log_edges)
    width = log_edges[1:] - log_edges[:-1]
    units = {name: "log10 Msun/h" for name in ("log_mstar_low", "log_mstar_high", "log_mstar_mid")}
    units |= {"dndlogm": DENSITY_UNITS + " dex^-1", "dndlogm_err": DENSITY_UNITS + " dex^-1"}
    columns = {
        "log_mstar_low": log_edges[:-1],
        "log_mstar_high": log_edges[1:],
        "log_mstar_mid": 0.5 * (log_edges[1:] + log_edges[:-1]),
        "counts": counts,
        "dndlogm": counts / (volume * width),
        "dndlogm_err": counts.sqrt() / (volume * width),
    }
    meta = {"kind": "mass_function", "volume": volume, "n_total": int(log_mstar.numel()), "n_outside": below + above}
    return Table(columns=columns, units=units, meta=meta)


# ---- theory (colossus) ------------------------------------------------------------------------------


def _colossus() -> tuple[Any, Any]:
    try:
        from colossus.cosmology import cosmology as colossus_cosmology
        from colossus.lss import mass_function as colossus_mass_function
    except ImportError as err:
        raise ImportError(
            "theory mass functions need the optional package colossus: pip install colossus "
            "(or pip install 'cosmoseg[test]')"
        ) from err
    return colossus_cosmology, colossus_mass_function


def colossus_parameters(cosmology: Cosmology) -> dict[str, Any]:
    """The colossus ``setCosmology`` parameters of a cosmoseg Cosmology: flat, H0, Om0, Ob0, sigma8, ns,
    Tcmb0, no relativistic species (cosmoseg's background has none), w0-wa dark energy when not ΛCDM."""
    params: dict[str, Any] = {
        "flat": True,
        "H0": 100.0 * cosmology.h,
        "Om0": cosmology.omega_m,
        "Ob0": cosmology.omega_b,
        "sigma8": cosmology.sigma_8,
        "ns": cosmology.n_s,
        "Tcmb0": cosmology.t_cmb,
        "relspecies": False,
        "persistence": "",
    }
    if (cosmology.w0, cosmology.wa) != (-1.0, 0.0):
        params.update(de_model="w0wa", w0=cosmology.w0, wa=cosmology.wa)
    return params


@functools.lru_cache(maxsize=16)
def _colossus_cosmology(cosmology: Cosmology) -> Any:
    colossus_cosmology, _ = _colossus()
    previous = colossus_cosmology.current_cosmo
    made = colossus_cosmology.setCosmology(f"cosmoseg-{abs(hash(cosmology)):x}", colossus_parameters(cosmology))
    colossus_cosmology.current_cosmo = previous  # leave colossus's global state as it was
    return made


def theory_mass_function(
    cosmology: Cosmology,
    masses: torch.Tensor | Sequence[float] | float,
    z: float = 0.0,
    *,
    model: str = "tinker08",
    mdef: str | None = None,
    power: str = "eisenstein98",
) -> torch.Tensor:
    """dn/dln M in (Mpc/h)^-3 at ``masses`` (Msun/h) and redshift ``z`` from colossus.

    model: "tinker08" (Tinker et al. 2008), "sheth99" (Sheth & Tormen 1999) or "despali16" (Despali et al.
    2016). mdef: the halo mass definition (default per model: 200m, fof, vir; sheth99 takes only "fof").
    power: colossus's linear power model, normalised to sigma8: "eisenstein98" (its default, Eisenstein & Hu
    1998 with wiggles, the same as cosmoseg's "eisenstein-hu" backend, within ±5% of CAMB) or
    "eisenstein98_zb" (no wiggles). (colossus's own "camb" model fails with camb 1.6.)
    colossus is an optional dependency, imported here; its current cosmology is left as it was.
    Returns float64 of the shape of ``masses`` (on their device when a tensor).
    """
    if model not in THEORY_MODELS:
        raise ValueError(f"model must be one of {sorted(THEORY_MODELS)}, got {model!r}")
    colossus_cosmology, colossus_mass_function = _colossus()
    device = masses.device if isinstance(masses, torch.Tensor) else torch.device("cpu")
    m = torch.as_tensor(masses, dtype=torch.float64).detach().cpu().numpy()  # colossus works in NumPy
    if m.size and not (np.all(np.isfinite(m)) and np.all(m > 0)):
        raise ValueError("masses must be finite and positive (Msun/h)")
    if not (math.isfinite(z) and z > -1):
        raise ValueError(f"z must be finite and > -1, got {z}")
    if power not in COLOSSUS_POWER_MODELS:
        raise ValueError(f"power must be one of {COLOSSUS_POWER_MODELS}, got {power!r}")
    made = _colossus_cosmology(cosmology)
    previous = colossus_cosmology.current_cosmo
    colossus_cosmology.current_cosmo = made
    try:
        values = colossus_mass_function.massFunction(
            m.ravel(), z, mdef=mdef or THEORY_MODELS[model], model=model, q_out="dndlnM", ps_args={"model": power}
        )
    finally:
        colossus_cosmology.current_cosmo = previous
    return torch.as_tensor(np.asarray(values, dtype=np.float64).reshape(m.shape), device=device)


def theory_in_bins(
    cosmology: Cosmology,
    m_low: torch.Tensor,
    m_high: torch.Tensor,
    z: float = 0.0,
    *,
    n_sub: int = 16,
    **kwargs: Any,
) -> torch.Tensor:
    """The bin average of a theory dn/dln M, (1/Δln M) ∫ dn/dln M dln M over each bin [m_low, m_high],
    by Simpson's rule on ``n_sub`` (even) intervals in ln M: directly comparable with ``dndlnm`` of
    ``halo_mass_function``. kwargs go to ``theory_mass_function`` (model, mdef, power)."""
    if n_sub < 2 or n_sub % 2:
        raise ValueError(f"n_sub must be an even number >= 2, got {n_sub}")
    lo = torch.log(torch.as_tensor(m_low, dtype=torch.float64))
    hi = torch.log(torch.as_tensor(m_high, dtype=torch.float64))
    t = torch.linspace(0.0, 1.0, n_sub + 1, dtype=torch.float64, device=lo.device)
    ln_m = lo[:, None] + (hi - lo)[:, None] * t[None, :]
    values = theory_mass_function(cosmology, torch.exp(ln_m), z, **kwargs)
    weights = torch.ones(n_sub + 1, dtype=torch.float64, device=lo.device)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    return (values * weights).sum(dim=1) / (3.0 * n_sub)


def mass_function_table(
    halos: Catalog,
    *,
    column: str = "mass",
    n_bins: int = 20,
    m_min: float | None = None,
    m_max: float | None = None,
    theory: Sequence[str] = (),
    mdef: str = "",
) -> Table:
    """The mass function of a catalog's ``column`` (Msun/h) in its box (:func:`halo_mass_function`, ``m_min``,
    ``m_max`` 0 or None = the smallest / largest mass), with a column ``dndlnm_<model>`` of the bin-averaged theory
    (:func:`theory_in_bins`) for each model of ``theory`` (mass definition ``mdef``, "" = the model's default).
    ``meta`` adds column, redshift and box."""
    box = halos.box
    table = halo_mass_function(halos[column], box.volume, n_bins=n_bins, m_min=m_min or None, m_max=m_max or None)
    extra = {
        f"dndlnm_{model}": theory_in_bins(
            box.cosmology, table["m_low"], table["m_high"], box.redshift, model=model, mdef=mdef or None
        )
        for model in theory
    }
    table = table.with_columns(**extra) if extra else table
    units = dict(table.units) | {name: DENSITY_UNITS for name in extra}
    meta = dict(table.meta) | {"column": column, "redshift": box.redshift, "box": box.length}
    return dataclasses.replace(table, units=units, meta=meta)
