"""The figures of the protohalo experiments (López-Cano et al. §4), drawn from their tables.

Each function takes the :class:`~cosmoseg.protohalo.experiments.ExperimentTable` of one experiment of
:mod:`cosmoseg.protohalo.experiments` and returns a matplotlib ``Figure`` (no pyplot state;
:func:`cosmoseg.measure.figures.save_figure` writes it):

* :func:`plot_halo_response`: ``density_response`` or ``tidal_response`` about one halo;
* :func:`plot_sigma8_response`: ``sigma8_response``;
* :func:`plot_bias`: ``bias_response``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from cosmoseg.protohalo.experiments import ExperimentTable

__all__ = ["plot_bias", "plot_halo_response", "plot_sigma8_response"]


def _axes(panels: int = 1, width: float = 5.2) -> tuple[Figure, list[Any]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * panels, 4.0), dpi=100, layout="constrained")
    axes = fig.subplots(1, panels)
    return fig, list(np.atleast_1d(axes))


def plot_halo_response(table: ExperimentTable) -> Figure:
    """The density or tidal experiment: the predicted mass vs ε (with the spherical-collapse mass) or vs λ_z (log
    y), and the matched halo's rms extent along x, y, z (Mpc/h)."""
    value = "epsilon" if "epsilon" in table.columns else "lambda_z"
    x = table[value]
    fig, (left, right) = _axes(2, 4.6)
    mass = np.where(table["mass"] > 0, table["mass"], np.nan)
    left.plot(x, mass, "o-", label="network (matched halo)")
    true_mass = table.meta.get("true_mass")
    if true_mass:
        left.axhline(true_mass, color="0.5", ls=":", label="true FoF halo (unmodified)")
    if "mass_spherical" in table.columns:
        sc = np.where(table["mass_spherical"] > 0, table["mass_spherical"], np.nan)
        left.plot(x, sc, "s--", color="C3", label=r"spherical collapse: $\bar\delta(<R)+\delta_\epsilon=\delta_c$")
    left.set_yscale("log")
    left.set_xlabel(r"$\delta_\epsilon$" if value == "epsilon" else r"$\lambda_z$")
    left.set_ylabel(r"$M$ [$h^{-1}M_\odot$]")
    left.set_title(f"halo {table.meta.get('halo_id')}: mass")
    left.legend(fontsize=8)
    for axis, style in zip("xyz", ("o-", "s-", "^-"), strict=True):
        right.plot(x, table[f"extent_{axis}"], style, label=f"along {axis}")
    right.set_xlabel(left.get_xlabel())
    right.set_ylabel(r"rms Lagrangian extent [$h^{-1}$Mpc]")
    right.set_title("shape of the matched protohalo")
    right.legend(fontsize=8)
    return fig


def plot_sigma8_response(table: ExperimentTable) -> Figure:
    """n(M|σ_8')/n(M|σ_8) vs M (log x) per factor, predicted (filled) and simulated (open), Poisson error bars."""
    fig, (ax,) = _axes(1, 6.0)
    factors = sorted(set(table["factor"].tolist()))
    for i, f in enumerate(f for f in factors if f != 1.0):
        rows = table["factor"] == f
        m = table["m_mid"][rows]
        label = rf"$\sigma_8$ = {table['sigma_8'][rows][0]:.3g} (×{f:g})"
        ax.errorbar(
            m,
            table["response_pred"][rows],
            table["response_pred_err"][rows],
            fmt="o-",
            color=f"C{i}",
            capsize=3,
            label=f"network, {label}",
        )
        if np.isfinite(table["response_sim"][rows]).any():
            ax.errorbar(
                m * 1.03,
                table["response_sim"][rows],
                table["response_sim_err"][rows],
                fmt="s--",
                color=f"C{i}",
                mfc="none",
                capsize=3,
                label=f"N-body + FoF, {label}",
            )
    ax.axhline(1.0, color="0.5", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"$M$ [$h^{-1}M_\odot$]")
    ax.set_ylabel(r"$n(M\,|\,\sigma_8')\,/\,n(M\,|\,\sigma_8)$")
    ax.set_title(f"halo mass function response ({table.meta.get('n_boxes')} box(es))")
    ax.legend(fontsize=7)
    return fig


def plot_bias(table: ExperimentTable) -> Figure:
    """b_1L vs M (log x): separate universe of the network (Poisson error bars thin, jackknife thick), Sheth–Tormen
    at the true haloes, and eq. (14) on the true and predicted haloes."""
    fig, (ax,) = _axes(1, 6.0)
    m = table["m_mid"]
    ax.errorbar(m, table["b1L_pred"], table["b1L_pred_err"], fmt="none", ecolor="C0", elinewidth=0.8, capsize=3)
    ax.errorbar(
        m,
        table["b1L_pred"],
        table["b1L_pred_err_jk"],
        fmt="o",
        color="C0",
        elinewidth=2.5,
        label=rf"network, separate universe $\pm\delta_\epsilon$ = {table.meta.get('epsilon'):g} "
        f"({table.meta.get('potential')})",
    )
    ax.plot(m, table["b1L_st"], "k-", label="Sheth–Tormen PBS at the true FoF haloes")
    eq14 = (
        ("true", 1.04, "s", "C1", r"eq. (14) $\langle\delta_i\rangle/\sigma^2$, true FoF haloes"),
        ("pred", 0.96, "^", "C2", r"eq. (14), network haloes ($\delta_\epsilon$ = 0)"),
    )
    for which, shift, marker, colour, label in eq14:
        column = f"b1L_eq14_{which}"
        ax.errorbar(
            m * shift,
            table[column],
            table[f"{column}_err"],
            fmt=marker,
            mfc="none",
            color=colour,
            capsize=3,
            label=label,
        )
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel(r"$M$ [$h^{-1}M_\odot$]")
    ax.set_ylabel(r"Lagrangian bias $b_{1L}$")
    ax.set_title(f"Lagrangian bias ({table.meta.get('n_boxes')} box(es))")
    ax.legend(fontsize=7)
    return fig
