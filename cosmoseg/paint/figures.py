"""Figures of ``cosmoseg paint evaluate``: slices of every method side by side, P(k), B(k1, k2, θ) and the PDF."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from cosmoseg.measure.figures import plot_bispectrum, plot_pdf, plot_power_spectrum, save_figure

if TYPE_CHECKING:
    from cosmoseg.paint.report import PaintReport

__all__ = ["write_paint_figures"]


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
    pdf = report.tables["pdf"]
    out.append(
        save_figure(
            plot_pdf(
                pdf["log_mstar"],
                {m: pdf[f"count_{m}"] for m in methods},
                reference=pdf["count_truth"],
                reference_label="truth",
                xlabel=r"$\log_{10} M_*$ [$M_\odot/h$]",
                title="voxels per bin of log10 M* (> 1e8 Msun/h)",
            ),
            folder / "pdf.png",
            dpi=90,
        )
    )
    return out
