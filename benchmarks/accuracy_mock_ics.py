"""The mock from the initial conditions alone against the N-body mock of the same ICs, with the chaos floor.

    cosmoseg run configs/mock-ics.toml
    python benchmarks/accuracy_mock_ics.py runs/mock-ics [--figures docs/img/mock] [--n-mesh 128]

Reads the three catalogs of the run (``catalog_ics``: protohalo.panoptic haloes; ``catalog``: N-body + FoF;
``catalog_twin``: the sub-resolution twin's N-body + FoF) and their haloes, and compares:

- number densities of galaxies, centrals and satellites;
- halo and stellar mass functions (ratios to the N-body mock, Poisson errors);
- galaxy P(k) in real space and the redshift-space monopole (line of sight z), as ratios to the N-body mock, and the
  cross-correlation coefficient r(k) with it. The twin against the N-body mock is the floor: two runs that differ
  only below the grid's resolution, i.e. what no model of the linear fields can beat.

Prints a markdown table and writes ``ics_vs_nbody.png`` into ``--figures``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

from cosmoseg.data import GalaxyCatalog, HaloCatalog, load_artifact
from cosmoseg.measure.figures import save_figure
from cosmoseg.measure.mass_function import halo_mass_function, stellar_mass_function
from cosmoseg.measure.power import catalog_cross_spectrum

NAMES = {"ics": "ICs only (protohalo.panoptic)", "nbody": "N-body + FoF", "twin": "N-body twin (chaos floor)"}


def load(run: Path) -> dict[str, tuple[GalaxyCatalog, HaloCatalog]]:
    """The three (catalog, haloes) of a configs/mock-ics.toml run."""
    return {
        "ics": (load_artifact(run / "catalog_ics.h5")["catalog"], load_artifact(run / "protohalos.h5")["halos"]),
        "nbody": (load_artifact(run / "catalog.h5")["catalog"], load_artifact(run / "halos.h5")["halos"]),
        "twin": (load_artifact(run / "catalog_twin.h5")["catalog"], load_artifact(run / "halos_twin.h5")["halos"]),
    }


def spectra(a: GalaxyCatalog, b: GalaxyCatalog, column: str, n_mesh: int, axis: int) -> dict[str, np.ndarray]:
    """k, P_a, P_b (shot noise subtracted), r(k) and the modes of two catalogs' ``column`` positions."""
    length = a.box.length
    spectrum = catalog_cross_spectrum(
        a[column], b[column], length, n_mesh=n_mesh, dk=4 * math.pi / length, k_max=1.0, los_axis=axis
    )
    return {
        "k": spectrum.k.numpy(),
        "p_a": spectrum.power_a.numpy(),
        "p_b": spectrum.power_b.numpy(),
        "r": spectrum.r.numpy(),
        "modes": spectrum.n_modes.numpy() / 2.0,
        "noise_a": np.full(len(spectrum.k), spectrum.shot_noise_a),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--figures", type=Path, default=None)
    parser.add_argument("--n-mesh", type=int, default=128)
    args = parser.parse_args()
    data = load(args.run)
    length = data["nbody"][0].box.length
    volume = length**3
    axis = int(data["nbody"][0].meta.get("rsd_axis", 2))

    print("| mock | haloes | galaxies | centrals | satellites | n_gal [(h/Mpc)^3] | n / n_N-body |")
    print("|---|---|---|---|---|---|---|")
    n_ref = len(data["nbody"][0])
    for key, (catalog, halos) in data.items():
        n_cen = int(catalog["is_central"].sum())
        print(
            f"| {NAMES[key]} | {len(halos)} | {len(catalog)} | {n_cen} | {len(catalog) - n_cen} | "
            f"{len(catalog) / volume:.3g} | {len(catalog) / n_ref:.3f} |"
        )

    edges = np.geomspace(1.5e12, 1e15, 13)
    hmf = {k: halo_mass_function(h["mass"].double(), volume, edges=edges) for k, (_, h) in data.items()}
    smf_edges = np.arange(8.0, 11.81, 0.2)
    smf = {k: stellar_mass_function(c["log_mstar"].double(), volume, edges=smf_edges) for k, (c, _) in data.items()}

    curves = {}
    for key in ("ics", "twin"):
        a, b = data[key][0], data["nbody"][0]
        curves[key] = {
            "real": spectra(a, b, "pos", args.n_mesh, axis),
            "rsd": spectra(a, b, "pos_rsd", args.n_mesh, axis),
        }
    print(
        "\n| mock vs N-body | mean P/P_N-body, k < 0.3 | mean P/P_N-body, 0.3 < k < 1 | r(k), k < 0.3 | "
        "r(k), 0.3 < k < 1 | P_0 (z-space) / P_0, k < 0.3 |"
    )
    print("|---|---|---|---|---|---|")
    for key in ("ics", "twin"):
        real, rsd = curves[key]["real"], curves[key]["rsd"]
        k = real["k"]
        low, high = k < 0.3, (k >= 0.3) & (k < 1.0)
        ratio = real["p_a"] / real["p_b"]
        ratio_rsd = rsd["p_a"] / rsd["p_b"]
        print(
            f"| {NAMES[key]} | {ratio[low].mean():.3f} | {ratio[high].mean():.3f} | {real['r'][low].mean():.3f} | "
            f"{real['r'][high].mean():.3f} | {ratio_rsd[low].mean():.3f} |"
        )

    print("\n| log10 M* bin | SMF ICs-only / N-body | SMF twin / N-body |")
    print("|---|---|---|")
    base = smf["nbody"]
    for i in range(0, len(smf_edges) - 1, 2):
        ref = float(base["dndlogm"][i])
        if ref <= 0:
            continue
        cells = [f"{float(smf[k]['dndlogm'][i]) / ref:.2f}" for k in ("ics", "twin")]
        print(f"| {smf_edges[i]:.1f}–{smf_edges[i + 1]:.1f} | {cells[0]} | {cells[1]} |")

    if args.figures is not None:
        figure(hmf, smf, curves, args.figures / "ics_vs_nbody.png")
        print(f"\nfigure: {args.figures / 'ics_vs_nbody.png'}")


def figure(hmf: dict, smf: dict, curves: dict, path: Path) -> None:
    """Four panels: HMF and SMF of the three mocks (ratios to the N-body mock below), P(k) ratios and r(k)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    fig = Figure(figsize=(11.0, 8.0), dpi=100, layout="constrained")
    grid = fig.add_gridspec(3, 2, height_ratios=[3, 1.3, 3])
    colours = {"ics": "C1", "nbody": "C0", "twin": "C2"}
    for column, (tables, x_name, y_name, xlabel, ylabel, log_x) in enumerate(
        (
            (hmf, "m_mid", "dndlnm", r"$M$ [$M_\odot/h$]", r"$dn/d\ln M$ [($h$/Mpc)$^3$]", True),
            (
                smf,
                "log_mstar_mid",
                "dndlogm",
                r"$\log_{10} M_*$ [$M_\odot/h$]",
                r"$dn/d\log_{10}M_*$ [($h$/Mpc)$^3$]",
                False,
            ),
        )
    ):
        top = fig.add_subplot(grid[0, column])
        bottom = fig.add_subplot(grid[1, column], sharex=top)
        ref = tables["nbody"]
        ref_y, ref_n = ref[y_name].numpy(), ref["counts"].numpy()
        for key, table in tables.items():
            x, y, err = table[x_name].numpy(), table[y_name].numpy(), table[f"{y_name}_err"].numpy()
            keep = y > 0
            top.errorbar(x[keep], y[keep], yerr=err[keep], fmt="o-", ms=3, color=colours[key], label=NAMES[key])
            if key != "nbody":
                both = keep & (ref_y > 0)
                ratio = y[both] / ref_y[both]
                n = table["counts"].numpy()[both]
                rel = np.sqrt(1.0 / np.maximum(n, 1) + 1.0 / np.maximum(ref_n[both], 1))
                bottom.errorbar(x[both], ratio, yerr=ratio * rel, fmt="o-", ms=3, color=colours[key])
        top.set(yscale="log", ylabel=ylabel, xscale="log" if log_x else "linear")
        top.legend(frameon=False, fontsize="small")
        bottom.axhline(1.0, color="0.5", lw=0.8)
        bottom.set(xlabel=xlabel, ylabel="/ N-body", ylim=(0.0, 3.0))
    ax_ratio = fig.add_subplot(grid[2, 0])
    ax_r = fig.add_subplot(grid[2, 1])
    for key in ("ics", "twin"):
        for space, style in (("real", "-"), ("rsd", "--")):
            c = curves[key][space]
            ratio = c["p_a"] / c["p_b"]
            # Gaussian error of the ratio of two band powers with independent noise: sqrt(2/N) each, in quadrature
            err = (
                ratio
                * np.sqrt(2.0 / c["modes"])
                * np.sqrt(((np.abs(c["p_a"]) + c["noise_a"]) / np.abs(c["p_a"])) ** 2 + 1.0)
                / math.sqrt(2.0)
            )
            label = f"{NAMES[key]}, {'real space' if space == 'real' else r'redshift space $P_0$'}"
            ax_ratio.errorbar(c["k"], ratio, yerr=err, fmt=style, color=colours[key], label=label)
            if space == "real":
                ax_r.plot(c["k"], c["r"], style, color=colours[key], label=NAMES[key])
    ax_ratio.axhline(1.0, color="0.5", lw=0.8)
    ax_ratio.set(xscale="log", yscale="log", xlabel=r"$k$ [$h$/Mpc]", ylabel=r"$P(k)\,/\,P_{\rm N\text{-}body}(k)$")
    ax_ratio.set_ylim(0.5, 6.0)
    ax_ratio.legend(frameon=False, fontsize="x-small")
    ax_r.set(xscale="log", xlabel=r"$k$ [$h$/Mpc]", ylabel=r"$r(k)$ with the N-body mock", ylim=(0.0, 1.05))
    ax_r.legend(frameon=False, fontsize="small")
    for axis in (ax_ratio.xaxis, ax_r.xaxis):
        axis.set_ticks([0.15, 0.2, 0.3, 0.5, 0.7, 1.0])
        axis.set_major_formatter(FormatStrFormatter("%g"))
        axis.set_minor_formatter(NullFormatter())
    ax_ratio.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax_ratio.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    fig.suptitle("galaxy mocks of the same initial conditions: from the ICs alone, from N-body, and the twin")
    save_figure(fig, path)


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
