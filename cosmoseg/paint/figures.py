"""Figures of ``cosmoseg paint evaluate``: slices of every method side by side, P(k), B(k1, k2, θ) and the PDF.

The PDF of log M* is drawn as voxel counts on a log axis with each method's ratio to the truth on a log axis too:
on linear axes the peak of the centrals (~10^10.5 Msun/h, ~1000 voxels per bin) hides the satellites' bins, where
the successor paints 3–4 times too few galaxies at 10^8–10^8.75 Msun/h (docs/paint.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from cosmoseg.measure.figures import label_log_axis, plot_bispectrum, plot_power_spectrum, save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from cosmoseg.paint.report import PaintReport

__all__ = ["pdf_figure", "write_paint_figures"]

RATIO_LIMITS = (0.05, 20.0)
"""The ratio panel of :func:`pdf_figure` spans these ratios to the truth (log axis); ratios beyond are clipped."""


def _slab(field: torch.Tensor, thickness: int) -> np.ndarray:
    """log10(1 + M*) summed over the first ``thickness`` planes along the last axis, (n, n)."""
    return np.log10(1.0 + field[..., :thickness].sum(-1).to(torch.float64).numpy())


def plot_slices(report: PaintReport, path: Path, *, thickness: int = 4) -> Path:
    """One panel per method (truth first): the stellar mass in a slab of ``thickness`` voxels."""
    import matplotlib.pyplot as plt

    names = list(report.fields)
    fig, axes = plt.subplots(1, len(names), figsize=(3.0 * len(names), 3.3), squeeze=False)
    slabs = {name: _slab(report.fields[name], thickness) for name in names}
    vmax = max(float(s.max()) for s in slabs.values())
    n = next(iter(report.fields.values())).shape[0]
    depth = report.length * thickness / n
    for ax, name in zip(axes[0], names, strict=True):
        ax.imshow(slabs[name].T, origin="lower", cmap="magma", vmin=8.0, vmax=vmax,
                  extent=(0, report.length, 0, report.length))  # fmt: skip
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"log10 M* [Msun/h] in a {depth:.1f} Mpc/h slab of {report.box} ({report.length:g} Mpc/h)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)


def pdf_figure(report: PaintReport) -> Figure:
    """The PDF of log M*: voxels per bin of log10 M* (> 10^8 Msun/h) of the truth and every method on a log axis
    (bins with no voxel left out), and below, each method's count over the truth's on a log axis
    (:data:`RATIO_LIMITS`, clipped; bins where either count is 0 left out), so that a factor of 3 too few reads as
    far below 1 as a factor of 3 too many reads above it."""
    import matplotlib.pyplot as plt

    pdf = report.tables["pdf"]
    x = pdf["log_mstar"].to(torch.float64).numpy()
    truth = pdf["count_truth"].to(torch.float64).numpy()
    methods = [m for m in report.fields if m != "truth"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.6, 5.0), sharex=True, gridspec_kw={"height_ratios": (3, 1.4)})
    top.plot(x, np.where(truth > 0, truth, np.nan), "k--", label="truth", zorder=3)
    for name in methods:
        counts = pdf[f"count_{name}"].to(torch.float64).numpy()
        (line,) = top.plot(x, np.where(counts > 0, counts, np.nan), label=name)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where((counts > 0) & (truth > 0), counts / truth, np.nan)
        bottom.plot(x, np.clip(ratio, *RATIO_LIMITS), color=line.get_color())
    top.set_yscale("log")
    top.set_ylabel(f"voxels per {float(x[1] - x[0]):.3g} dex")
    top.legend(fontsize=7)
    top.set_title(f"PDF of log10 M* (> 1e8 Msun/h), {report.box}", fontsize=9)
    bottom.axhline(1.0, color="k", ls="--", lw=0.8)
    bottom.set_yscale("log")
    bottom.set_ylim(*RATIO_LIMITS)
    label_log_axis(bottom.yaxis)
    bottom.set_ylabel("ratio to truth")
    bottom.set_xlabel(r"$\log_{10} M_*$ [$M_\odot/h$]")
    fig.tight_layout()
    return fig


def write_paint_figures(report: PaintReport, folder: Path) -> list[Path]:
    """slices.png, power.png, bispectrum_<i>.png per triangle, pdf.png in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    methods = [m for m in report.fields if m != "truth"]
    out = [plot_slices(report, folder / "slices.png")]
    power = report.tables["power"]
    out.append(
        save_figure(
            plot_power_spectrum(
                power["k"],
                {m: power[f"power_{m}"] for m in methods},
                reference=power["power_truth"],
                reference_label="truth",
                title=f"stellar-mass P(k), {report.box}",
            ),
            folder / "power.png",
            dpi=90,
        )
    )
    bis = report.tables["bispectrum"]
    pairs = sorted({(float(a), float(b)) for a, b in zip(bis["k1"].tolist(), bis["k2"].tolist(), strict=True)})
    for i, (k1, k2) in enumerate(pairs):
        rows = (bis["k1"] == k1) & (bis["k2"] == k2)
        out.append(
            save_figure(
                plot_bispectrum(
                    bis["theta"][rows],
                    {m: bis[f"bispectrum_{m}"][rows] for m in methods},
                    reference=bis["bispectrum_truth"][rows],
                    reduced=False,
                    reference_label="truth",
                    title=f"B(k1 = {k1:.2f}, k2 = {k2:.2f} h/Mpc, θ)",
                ),
                folder / f"bispectrum_{i}.png",
                dpi=90,
            )
        )
    out.append(save_figure(pdf_figure(report), folder / "pdf.png", dpi=90))
    return out
