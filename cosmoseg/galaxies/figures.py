"""The figures of the clustering comparison (:mod:`cosmoseg.galaxies.clustering`).

* :func:`plot_colour_mass`: the stellar-mass vs colour plane per halo-mass bin (:data:`HALO_MASS_BINS`), the truth
  then every method, each method's panel with the truth's contours (:func:`colour_mass_plane` gathers the points);
* :func:`plot_power_ratios`: P(k) of one sub-population for every method and its stored ratio to the truth's;
* :func:`write_figures`: both, for a :class:`~cosmoseg.galaxies.clustering.ClusteringResult`, into a folder.

matplotlib is imported inside the functions that draw (``cosmoseg --help`` stays fast).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch

from cosmoseg.data import Table
from cosmoseg.errors import ValidationError
from cosmoseg.galaxies.clustering import COLOUR_CUT, ClusteringBox, ClusteringResult, meta_names
from cosmoseg.galaxies.training import TRUTH_REDRAWN

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["HALO_MASS_BINS", "colour_mass_plane", "plot_colour_mass", "plot_power_ratios", "write_figures"]

HALO_MASS_BINS = ((11.5, 12.0), (12.0, 12.5), (12.5, 13.0), (13.0, 15.0))
"""log10 M_halo [Msun/h] bins [low, high) of the stellar-mass vs colour figure."""


def _file_name(population: str) -> str:
    text = population.replace("M*>", "mstar_gt_").replace(".", "p")
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in text)


def write_figures(result: ClusteringResult, folder: Path, *, dpi: int = 90) -> list[Path]:
    """colour_mass.png (:func:`plot_colour_mass` of the held-out boxes) and power_ratio_<population>.png
    (:func:`plot_power_ratios`, k < k_max of the bias shaded) in ``folder``; returns the paths."""
    folder = Path(folder)
    planes = colour_mass_plane(result.draws, result.boxes, targets=result.targets)
    paths = [folder / "colour_mass.png"]
    plot_colour_mass(planes, path=paths[0], dpi=dpi)
    k_max = float(result.curves.meta["k_max"])
    for j, name in enumerate(meta_names(result.curves, "population")):
        paths.append(folder / f"power_ratio_{_file_name(name)}.png")
        plot_power_ratios(result.curves, j, path=paths[-1], dpi=dpi, k_max=k_max)
    return paths


def colour_mass_plane(
    draws: Mapping[str, Sequence[torch.Tensor]],
    boxes: Sequence[ClusteringBox],
    *,
    targets: Sequence[str],
    mass_bins: Sequence[tuple[float, float]] = HALO_MASS_BINS,
) -> dict[str, list[npt.NDArray[np.float64]]]:
    """(log_mstar, color_gi) points per halo-mass bin: "truth" and every method of ``draws`` -> per bin (n, 2).

    draws: name -> per box (M, D) properties (columns ``targets``), as :func:`draw_centrals` gives.
    mass_bins: [low, high) in log10 M_halo [Msun/h].
    """
    cols = [list(targets).index("log_mstar"), list(targets).index("color_gi")]
    sources = {"truth": [b.truth for b in boxes]} | {k: list(v) for k, v in draws.items()}
    log_mass = torch.cat([torch.log10(b.mass) for b in boxes]).numpy()
    out: dict[str, list[npt.NDArray[np.float64]]] = {}
    for name, per_box in sources.items():
        points = torch.cat([p[:, cols] for p in per_box]).double().numpy()
        out[name] = [points[(log_mass >= lo) & (log_mass < hi)] for lo, hi in mass_bins]
    return out


def plot_colour_mass(
    planes: Mapping[str, Sequence[npt.NDArray[np.float64]]],
    mass_bins: Sequence[tuple[float, float]] = HALO_MASS_BINS,
    *,
    colour_cut: float = COLOUR_CUT,
    path: str | Path | None = None,
    dpi: int = 90,
) -> Figure:
    """Grid of 2-D histograms of (log M*, g - i): rows = truth then the methods, columns = halo-mass bins.

    Method rows carry the truth's contours (levels 10%, 40%, 70% of the peak). Saved with ``save_figure``.
    """
    from matplotlib.figure import Figure

    from cosmoseg.measure.figures import save_figure

    names = list(planes)
    ncol = len(mass_bins)
    fig = Figure(figsize=(2.3 * ncol, 1.9 * len(names)), layout="constrained")
    axes = fig.subplots(len(names), ncol, sharex=True, sharey=True, squeeze=False)
    xedges, yedges = np.linspace(9.2, 11.8, 41), np.linspace(0.4, 1.5, 41)
    for c in range(ncol):
        truth_hist = np.histogram2d(*planes["truth"][c].T, bins=(xedges, yedges))[0] if "truth" in planes else None
        for r, name in enumerate(names):
            ax = axes[r, c]
            pts = planes[name][c]
            hist = np.histogram2d(*pts.T, bins=(xedges, yedges))[0]
            ax.pcolormesh(xedges, yedges, hist.T, cmap="Greys" if name == "truth" else "Blues", rasterized=True)
            if name != "truth" and truth_hist is not None and truth_hist.max() > 0:
                xc, yc = 0.5 * (xedges[1:] + xedges[:-1]), 0.5 * (yedges[1:] + yedges[:-1])
                levels = truth_hist.max() * np.array([0.1, 0.4, 0.7])
                ax.contour(xc, yc, truth_hist.T, levels=levels, colors="C3", linewidths=0.7)
            ax.axhline(colour_cut, color="k", ls=":", lw=0.7)
            ax.text(0.03, 0.94, f"{name}\nN={len(pts)}", transform=ax.transAxes, va="top", fontsize=6)
            if r == 0:
                lo, hi = mass_bins[c]
                ax.set_title(f"log M_h in [{lo:g}, {hi:g})", fontsize=8)
            if r == len(names) - 1:
                ax.set_xlabel("log M* [Msun/h]", fontsize=8)
            if c == 0:
                ax.set_ylabel("g - i", fontsize=8)
            ax.tick_params(labelsize=7)
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig


def plot_power_ratios(
    curves: Table, population: int, *, path: str | Path | None = None, dpi: int = 90, k_max: float | None = None
) -> Figure:
    """P(k) of one sub-population (index into meta ``population_j``) for every method, the truth dashed, and below
    the stored ratio ``ratio`` (mean over boxes and draws of P_method / P_truth) with its stored ``ratio_err`` as a
    band; ``k_max`` shades k < k_max (the bias)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    from cosmoseg.measure.figures import save_figure

    methods, pops = meta_names(curves, "method"), meta_names(curves, "population")
    rows = curves["population"] == population
    if not bool(rows.any()):
        raise ValidationError(f"no curve for population {population}")
    fig = Figure(figsize=(6.0, 5.2), layout="constrained")
    ax, rax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    truth_drawn = False
    for m, name in enumerate(methods):
        pick = rows & (curves["method"] == m)
        if not bool(pick.any()):
            continue
        k = curves["k"][pick].numpy()
        if not truth_drawn:
            ax.plot(k, curves["power_truth"][pick].numpy(), "k--", lw=1.2, label="truth")
            truth_drawn = True
        colour = "0.45" if name == TRUTH_REDRAWN else f"C{m}"
        ax.plot(k, curves["power_method"][pick].numpy(), "-", lw=1.4, color=colour, label=name)
        ratio, err = curves["ratio"][pick].numpy(), curves["ratio_err"][pick].numpy()
        rax.plot(k, ratio, "-", lw=1.4, color=colour)
        rax.fill_between(k, ratio - err, ratio + err, color=colour, alpha=0.18, lw=0)
    n_draws = int(curves.meta.get("n_draws", 1))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylabel(r"$P(k)$ [(Mpc/$h$)$^3$]")
    ax.legend(fontsize=7)
    title = f"centrals {pops[population]}" + (f" ({n_draws} draws per halo)" if n_draws > 1 else "")
    ax.set_title(title, fontsize=10)
    rax.axhline(1.0, color="k", ls="--", lw=1.0)
    rax.set_ylabel(r"$\langle P/P_{\rm truth}\rangle$")
    rax.set_xlabel(r"$k$ [$h$/Mpc]")
    rax.xaxis.set_minor_formatter(NullFormatter())
    if k_max is not None:
        k_low = float(curves["k"][rows].min())
        for axis in (ax, rax):
            axis.axvspan(k_low * 0.9, k_max, color="0.9", zorder=-1)
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig
