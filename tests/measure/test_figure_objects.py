"""What the figures show, read off the matplotlib objects: axis scales, legend texts, tick labels, error bars."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from cosmoseg.data import Table
from cosmoseg.measure import figures

K = torch.logspace(math.log10(0.17), math.log10(4.0), 24, dtype=torch.float64)
"""1.4 decades of k: a log axis with a single decade tick (10^0) inside it."""
P = 3e3 * (K / 0.2) ** -1.2
M = torch.logspace(12.2, 15.0, 8, dtype=torch.float64)
COUNTS = torch.tensor([165.0, 74, 39, 19, 9, 6, 2, 0])
VOLUME = 1.25e5
DLNM = 2.8 / 8 * 2.302585092994046


def _hmf(**meta: Any) -> Table:
    dndlnm = COUNTS / (VOLUME * DLNM)
    return Table(
        columns={
            "m_low": M / 1.2,
            "m_high": M * 1.2,
            "m_mid": M,
            "counts": COUNTS,
            "dndlnm": dndlnm,
            "dndlnm_err": COUNTS.sqrt() / (VOLUME * DLNM),
            "dndlnm_tinker08": 1.6e-3 * (M / M[0]) ** -0.9,
        },
        meta={"column": "mass", **meta},
    )


def _labels(axis: Any) -> list[str]:
    """The non-empty tick labels drawn inside the axis's view (major and minor)."""
    axis.axes.figure.draw_without_rendering()
    lo, hi = sorted(axis.get_view_interval())
    out = []
    for locs, ticks in (
        (axis.get_majorticklocs(), axis.get_major_ticks),
        (axis.get_minorticklocs(), axis.get_minor_ticks),
    ):
        for loc, tick in zip(locs, ticks(len(locs)), strict=True):
            text = tick.label1.get_text() if tick.label1.get_visible() else ""
            if lo <= loc <= hi and text:
                out.append(text)
    return out


def _legend(ax: Any) -> tuple[list[str], str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()], legend.get_title().get_text()


def _errorbars(ax: Any) -> list[str]:
    from matplotlib.container import ErrorbarContainer

    return [str(c.get_label()) for c in ax.containers if isinstance(c, ErrorbarContainer)]


# ---- the mass function ---------------------------------------------------------------------------------


def test_the_mass_function_is_log_log_even_with_an_empty_bin() -> None:
    _, fig = figures.figure_for_table(_hmf())
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    measured = next(c for c in ax.containers if c.get_label() == "measured")
    y = measured.lines[0].get_ydata()
    assert len(y) == 8 and bool(torch.isnan(torch.as_tensor(y[-1])))  # the empty bin is left out, not drawn at 0
    assert _errorbars(ax) == ["measured"]


def test_the_mass_function_helper_leaves_empty_bins_out() -> None:
    dndlnm = COUNTS / (VOLUME * DLNM)
    fig = figures.plot_mass_function(M, dndlnm, error=COUNTS.sqrt() / (VOLUME * DLNM), counts=COUNTS)
    assert fig.axes[0].get_yscale() == "log" and fig.axes[0].get_xscale() == "log"


# ---- legends -----------------------------------------------------------------------------------------------


def test_legends_name_both_curves_and_the_field() -> None:
    fof, predicted = _hmf(), _hmf()
    _, fig = figures.figure_for_table(fof, predicted, label="FoF", reference_label="protohalo prediction")
    texts, title = _legend(fig.axes[0])
    assert set(texts) == {"FoF", "protohalo prediction", "tinker08"} and title == "halo mass"
    # the labels may come with the tables, and the field from their meta
    table = Table(columns={"k": K, "power": P}, meta={"quantity": "stellar-mass density contrast", "label": "painted"})
    truth = Table(columns={"k": K, "power": 1.05 * P}, meta={"label": "truth"})
    _, fig = figures.figure_for_table(table, truth)
    assert _legend(fig.axes[0]) == (["truth", "painted"], "stellar-mass density contrast")
    spectrum = Table(columns={"k": K, "power": P, "power_linear": P}, meta={"channel": "delta"})
    _, fig = figures.figure_for_table(spectrum)
    assert _legend(fig.axes[0]) == (["linear theory", "measured"], "delta")


# ---- tick labels -------------------------------------------------------------------------------------------


def test_a_log_axis_of_less_than_two_decades_has_more_than_one_label() -> None:
    table = Table(columns={"k": K, "power": P, "power_linear": 1.02 * P}, meta={"channel": "delta"})
    _, fig = figures.figure_for_table(table)
    top, ratio = fig.axes
    x_labels, y_labels = _labels(ratio.xaxis), _labels(top.yaxis)
    assert len(x_labels) >= 3 and x_labels != ["$\\mathdefault{10^{0}}$"], x_labels
    assert {"0.2", "0.5", "1", "2"} <= set(x_labels)
    assert len(y_labels) >= 2, y_labels


def test_label_log_axis_keeps_decades_alone_on_long_axes_and_labels_narrow_ones() -> None:
    from matplotlib.figure import Figure

    for low, high, least, most in ((1e12, 1e15, 3, 4), (0.3, 3.0, 3, 6), (250.0, 600.0, 3, 4), (1e13, 4e13, 2, 4)):
        ax = Figure().add_subplot()
        ax.plot([low, high], [1.0, 2.0])
        ax.set_xscale("log")
        ax.set_xlim(low, high)
        n = figures.label_log_axis(ax.xaxis)
        labels = _labels(ax.xaxis)
        assert least <= len(labels) <= most and n == len(labels), (low, high, labels)


# ---- error bars --------------------------------------------------------------------------------------------


def test_every_err_column_becomes_error_bars() -> None:
    x = torch.linspace(9.0, 11.5, 6).double()
    y = 1e-3 * torch.exp(-(x - 9.0))
    smf = Table(
        columns={
            "log_mstar_low": x - 0.25,
            "log_mstar_high": x + 0.25,
            "log_mstar_mid": x,
            "counts": torch.full((6,), 50.0),
            "dndlogm": y,
            "dndlogm_err": 0.1 * y,
            "dndlogm_centrals": 0.7 * y,
            "dndlogm_centrals_err": 0.07 * y,
            "dndlogm_satellites": 0.3 * y,
            "dndlogm_satellites_err": 0.03 * y,
        }
    )
    _, fig = figures.figure_for_table(smf)
    ax = fig.axes[0]
    assert sorted(_errorbars(ax)) == ["centrals", "measured", "satellites"]
    texts, title = _legend(ax)
    assert not any(t.endswith("_err") for t in texts) and title == "stellar mass"
    assert len(fig.axes) == 1  # no ratio panel: the centrals and satellites are measured curves, not references


def test_error_bars_of_the_reference_and_of_generic_and_bispectrum_tables() -> None:
    table = Table(columns={"k": K, "power": P, "power_err": 0.05 * P})
    truth = Table(columns={"k": K, "power": 1.05 * P, "power_err": 0.04 * P})
    _, fig = figures.figure_for_table(table, truth, label="model", reference_label="truth")
    assert sorted(_errorbars(fig.axes[0])) == ["model", "truth"]
    generic = Table(columns={"x": torch.arange(5.0), "y": torch.arange(5.0) ** 2, "y_err": torch.ones(5)})
    kind, fig = figures.figure_for_table(generic)
    assert kind == "generic" and _errorbars(fig.axes[0]) == ["y"] and _legend(fig.axes[0])[0] == ["y"]
    theta = torch.linspace(0.1, 3.0, 10, dtype=torch.float64)
    bispectrum = Table(
        columns={
            "k1": torch.full((20,), 0.1).double(),
            "k2": torch.cat([torch.full((10,), 0.1), torch.full((10,), 0.2)]).double(),
            "theta": torch.cat([theta, theta]),
            "Q": torch.cat([theta.cos(), theta.sin()]),
            "Q_err": torch.full((20,), 0.05).double(),
        }
    )
    _, fig = figures.figure_for_table(bispectrum)
    assert len(_errorbars(fig.axes[0])) == 2


def test_error_arrays_of_the_wrong_shape_or_for_unknown_curves_are_refused() -> None:
    with pytest.raises(ValueError, match=r"error of curve 'measured' has shape \(3,\), the curve \(24,\)"):
        figures.plot_power_spectrum(K, P, error=torch.ones(3))
    with pytest.raises(ValueError, match=r"error names curve\(s\) \['other'\] that are not drawn"):
        figures.plot_power_spectrum(K, {"a": P}, error={"other": P})
