"""The summary of a mock galaxy catalog: halo and stellar mass functions, the galaxy power spectrum in real and
redshift space (monopole and quadrupole), and a slice; measured (:func:`mock_summary`) and drawn
(:func:`plot_mock_summary`) as one four-panel figure.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from cosmoseg.data import GalaxyCatalog, HaloCatalog, Table
from cosmoseg.measure.mass_function import halo_mass_function, stellar_mass_function
from cosmoseg.measure.power import catalog_power_spectrum

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["MockSummary", "mock_summary", "plot_mock_summary"]

AXES = "xyz"


@dataclasses.dataclass(frozen=True)
class MockSummary:
    """hmf: dn/dlnM of the haloes (``halo_mass_function``). smf: dn/dlog10 M* of all galaxies, centrals and
    satellites (columns ``dndlogm``, ``dndlogm_centrals``, ``dndlogm_satellites`` with errors; no rows without
    stellar masses). power: k, ``power`` (real space), ``power_0`` and ``power_2`` (redshift space, line of sight
    the catalog's ``rsd_axis``; absent without ``pos_rsd``), n_modes; shot noise subtracted."""

    hmf: Table
    smf: Table
    power: Table


def mock_summary(catalog: GalaxyCatalog, halos: HaloCatalog, *, n_mesh: int = 128, n_bins: int = 20) -> MockSummary:
    """Measure the summary statistics of a mock catalog (``cosmoseg.galaxies.mock.mock_catalog``) and its haloes.

    n_mesh: mesh cells per side for the power spectra (TSC, interlaced). n_bins: mass-function bins.
    """
    volume = catalog.box.length**3
    hmf = halo_mass_function(halos["mass"].cpu(), volume, n_bins=n_bins)
    smf = Table(columns={}, meta={"note": "the catalog has no stellar masses"})
    if "log_mstar" in catalog and len(catalog):
        log_mstar = catalog["log_mstar"].cpu().double()
        lo, hi = float(log_mstar.min()), float(log_mstar.max()) + 1e-9
        central = catalog["is_central"].cpu().bool()
        parts = {"": log_mstar, "_centrals": log_mstar[central], "_satellites": log_mstar[~central]}
        tables = {k: stellar_mass_function(v, volume, n_bins=n_bins, log_min=lo, log_max=hi) for k, v in parts.items()}
        columns = dict(tables[""].columns)
        for suffix in ("_centrals", "_satellites"):
            columns[f"dndlogm{suffix}"] = tables[suffix]["dndlogm"]
            columns[f"dndlogm{suffix}_err"] = tables[suffix]["dndlogm_err"]
        smf = Table(columns=columns, units=dict(tables[""].units), meta=dict(tables[""].meta))
    length = catalog.box.length
    # bins of two fundamental frequencies up to half the mesh's Nyquist frequency: smooth enough to read by eye
    binning = {"dk": 4.0 * math.pi / length, "k_max": 0.5 * math.pi * n_mesh / length}
    real = catalog_power_spectrum(catalog["pos"], length, n_mesh=n_mesh, **binning)
    meta: dict[str, str | int | float | bool] = {"n_mesh": n_mesh, "shot_noise": real.shot_noise}
    redshift_space: dict[str, torch.Tensor] = {}
    if "pos_rsd" in catalog:
        axis = int(catalog.meta.get("rsd_axis", 2))
        rsd = catalog_power_spectrum(catalog["pos_rsd"], length, n_mesh=n_mesh, ells=(0, 2), los_axis=axis, **binning)
        redshift_space = {"power_0": rsd.multipoles[0], "power_2": rsd.multipoles[2]}
        meta["rsd_axis"] = axis
    power = real.to_table(edges=False, extra=redshift_space, meta=meta)
    return MockSummary(hmf=hmf, smf=smf, power=power)


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().double().numpy()


def plot_mock_summary(summary: MockSummary, catalog: GalaxyCatalog, *, slab_fraction: float = 0.1) -> Figure:
    """Four panels: the halo mass function, the stellar mass functions (all, centrals, satellites), k P_ℓ(k) in
    real and redshift space, and the galaxies in a slab of ``slab_fraction`` L (centrals and satellites, coloured by
    log M*). Error bars are Poisson."""
    from matplotlib.figure import Figure

    from cosmoseg.measure.figures import label_log_axis

    fig = Figure(figsize=(10.0, 8.0), dpi=100, layout="constrained")
    (ax_hmf, ax_smf), (ax_pk, ax_slice) = fig.subplots(2, 2)
    hmf = summary.hmf
    filled = _np(hmf["counts"]) > 0
    ax_hmf.errorbar(
        _np(hmf["m_mid"])[filled], _np(hmf["dndlnm"])[filled], yerr=_np(hmf["dndlnm_err"])[filled], fmt="o-", ms=3
    )
    ax_hmf.set(xscale="log", yscale="log", xlabel=r"$M_{\rm host}$ [$M_\odot/h$]")
    ax_hmf.set(ylabel=r"$dn/d\ln M$ [($h$/Mpc)$^3$]", title=f"haloes ({hmf.meta['n_total']})")
    smf = summary.smf
    if len(smf):
        x = _np(smf["log_mstar_mid"])
        for suffix, label in (("", "all"), ("_centrals", "centrals"), ("_satellites", "satellites")):
            y, err = _np(smf[f"dndlogm{suffix}"]), _np(smf[f"dndlogm{suffix}_err"])
            keep = y > 0
            ax_smf.errorbar(x[keep], y[keep], yerr=err[keep], fmt="o-", ms=3, label=label)
        ax_smf.set(yscale="log", xlabel=r"$\log_{10} M_*$ [$M_\odot/h$]", ylabel=r"$dn/d\log_{10} M_*$ [($h$/Mpc)$^3$]")
        ax_smf.legend(frameon=False)
    else:
        ax_smf.text(0.5, 0.5, "no stellar masses in this catalog", ha="center", va="center", transform=ax_smf.transAxes)
    ax_smf.set_title("stellar mass function")
    power = summary.power
    k = _np(power["k"])
    # Gaussian errors: sigma(P_l) = sqrt(2l + 1) (P + shot noise) sqrt(2 / N_modes), N_modes counting the
    # independent modes (half of the grid's, which holds both k and -k)
    modes = np.maximum(_np(power["n_modes"]) / 2.0, 1.0)
    noise = float(power.meta.get("shot_noise", 0.0))
    curves = (("power", 0, "real space"), ("power_0", 0, r"redshift space $P_0$"), ("power_2", 2, r"$P_2$"))
    for name, ell, label in curves:
        if name in power:
            y = _np(power[name])
            base = np.abs(_np(power["power_0" if ell and "power_0" in power else name])) + noise
            err = math.sqrt(2 * ell + 1) * base * np.sqrt(2.0 / modes)
            ax_pk.errorbar(k, k * y, yerr=k * err, fmt="-", capsize=0, label=label)
    ax_pk.set(xscale="log", xlabel=r"$k$ [$h$/Mpc]", ylabel=r"$k\,P_\ell(k)$ [(Mpc/$h$)$^2$]")
    line_of_sight = power.meta.get("rsd_axis")
    los = f" (line of sight {AXES[int(line_of_sight)]})" if line_of_sight is not None else ""
    ax_pk.set_title("galaxy power spectrum" + los)
    ax_pk.axhline(0.0, color="0.6", lw=0.8)
    ax_pk.legend(frameon=False)
    label_log_axis(ax_pk.xaxis)
    length = catalog.box.length
    pos = _np(catalog["pos"])
    thick = slab_fraction * length
    in_slab = pos[:, 2] < thick
    central = _np(catalog["is_central"].to(torch.float64))[in_slab] > 0.5
    xy = pos[in_slab]
    coloured = "log_mstar" in catalog and bool(in_slab.any())
    colour = _np(catalog["log_mstar"])[in_slab] if coloured else np.zeros(int(in_slab.sum()))
    style = {"cmap": "viridis", "vmin": float(colour.min()), "vmax": float(colour.max())} if coloured else {}
    points = None
    for mask, size, marker, label in ((central, 8, "o", "centrals"), (~central, 3, "^", "satellites")):
        points = ax_slice.scatter(
            xy[mask, 0], xy[mask, 1], s=size, marker=marker, c=colour[mask] if coloured else None, label=label, **style
        )
    if coloured and points is not None:
        fig.colorbar(points, ax=ax_slice, label=r"$\log_{10} M_*$ [$M_\odot/h$]")
    ax_slice.set(xlim=(0, length), ylim=(0, length), aspect="equal", xlabel=r"$x$ [Mpc/$h$]", ylabel=r"$y$ [Mpc/$h$]")
    ax_slice.set_title(f"galaxies with $z < {thick:.3g}$ Mpc/$h$ ({int(in_slab.sum())})")
    ax_slice.legend(frameon=False, loc="upper right", fontsize="small")
    fig.suptitle(
        f"mock: {len(catalog)} galaxies, {int(_np(catalog['is_central'].to(torch.float64)).sum())} centrals, "
        f"n = {len(catalog) / length**3:.3g} ($h$/Mpc)$^3$, L = {length:g} Mpc/$h$, z = {catalog.box.redshift:.3g}"
    )
    return fig
