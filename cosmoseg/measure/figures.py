"""Figures of the measurements, drawn the way the papers draw them; used by the ``measure.report`` stage.

Every ``plot_*`` helper takes plain arrays (torch tensors, NumPy arrays or sequences; they are copied to
the CPU here, figures are not a hot path), returns a ``matplotlib.figure.Figure`` and, with ``path=``,
also writes it as a PNG atomically (:func:`save_figure`). Matplotlib is imported inside the functions
(``import cosmoseg.measure`` stays light) and figures are made with ``matplotlib.figure.Figure`` and the
Agg renderer, never pyplot: no global state, no display needed, safe in threads.

Curves: where a helper takes ``values``, it is one (N,) array or a mapping label -> (N,) array on the
same x. A ``reference`` is a (N,) array on the same x, a pair (x_ref, y_ref) (interpolated onto x,
log-log where both are positive), or a mapping label -> either; the first reference is the denominator
of the ratio panel.

| helper | draws |
|---|---|
| :func:`plot_power_spectrum` | P(k) log-log with a ratio panel P/P_ref |
| :func:`plot_bispectrum` | B(θ) or Q(θ) against θ/π, one line per (k1, k2) |
| :func:`plot_pdf` | a one-point PDF with error bars (log y) |
| :func:`plot_mass_function` | dn/dlnM log-log with error bars and a ratio panel to a theory curve |
| :func:`plot_violin` | predicted vs true mass per bin from quantiles (violins + median, 1:1 line) |
| :func:`plot_confusion_slice` | a 2-D slice of truth vs prediction: TN / FP / FN / TP colours |
| :func:`plot_coverage` | empirical vs nominal coverage with the ±2σ binomial band |
| :func:`plot_pit` | PIT histograms with the uniform expectation and its ±1σ band |
| :func:`plot_two_sample` | per-column KS statistic and W1 distance |
| :func:`plot_c2st` | C2ST AUC ± error against the 0.5 of indistinguishable samples |
| :func:`plot_predicted_vs_true` | inferred parameter (mean ± 1σ) against its truth, the 1:1 line, the metrics |
| :func:`plot_tarp` | TARP expected coverage against the credibility level, the diagonal, a bootstrap band |
| :func:`plot_inference_metrics` | the metrics of parameter inference as a table (a row per metric) |

Tables (:func:`table_kind`, :func:`figure_for_table`, :data:`FIGURES`): a table's kind is its meta ``kind`` where
that names one of the kinds below, else it is guessed from its column names (:func:`guess_kind`), checked in this
order; :data:`FIGURES` holds the drawing function of each kind:

| kind | required columns | optional |
|---|---|---|
| ``power_spectrum`` | ``k``, ``power`` | ``power_linear`` (reference), ``power_err`` |
| ``bispectrum`` | ``theta``, y = ``Q`` / ``q`` / ``bispectrum`` / ``B`` | ``k1``, ``k2``, ``<y>_err``, ``<y>_theory`` |
| ``pdf`` | ``pdf`` and ``bin_mid`` / ``centers`` / ``x`` or ``bin_low`` + ``bin_high`` | ``pdf_err``, ``pdf_theory`` |
| ``mass_function`` | ``m_mid`` + ``dndlnm``, or ``log_mstar_mid`` + ``dndlogm`` | ``<y>_err``; theory ``<y>_<model>`` |
| ``violin`` | ``quantiles`` (N, Q) and ``log_m_true`` / ``log_mass_true`` / ``log_m`` | ``quantile_levels`` (N, Q) |
| ``violin`` | ``m_mid`` (Msun/h) and ``q05``, ``q50``, ... (log10 M) | ``n_violin`` (0: empty bin) |
| ``coverage`` | ``level``, ``coverage`` | ``coverage_err``, ``parameter`` (index; names in meta ``parameter_<i>``) |
| ``pit`` | ``pit_low``, ``pit_high``, ``count`` | ``parameter`` |
| ``two_sample`` | ``ks_statistic``, ``wasserstein`` | ``column`` (index; names in meta ``column_<i>``), ``ks_pvalue`` |
| ``c2st`` | ``auc``, ``auc_err`` | |
| ``tarp`` | ``alpha``, ``ecp`` | ``ecp_low`` + ``ecp_high`` (band), ``parameter_<i>`` in meta |
| ``inference_metrics`` | ``rmse``, ``r2``, ``chi2`` | other ``measure.inference.METRIC_KEYS``, ``parameter`` |
| ``generic`` | anything else: every other 1-D numeric column against the first | |

Every ``<y>_err`` column of a table (or of its reference) is drawn as the error bars of its curve ``<y>`` (a
mass-function column ``<y>_<name>`` with its ``<y>_<name>_err`` is a measured curve, one without errors a theory
curve); bins whose ``counts`` is 0 are left out (docs/data-model.md, "Missing values"), and so are values <= 0 on a
log axis. The legend names the curves (the tables' meta ``label``, else "measured" / "reference", or the
``label`` / ``reference_label`` given) and, as its title, the field measured (meta ``quantity``, ``field``,
``channel`` or ``column``). Mass functions are drawn on log-log axes; a log axis spanning less than two decades gets
labelled minor ticks (2 and 5 × 10^k) besides the decades (:func:`label_log_axis`), never a lone "10^0".

Bispectrum tables with columns ``k1``, ``k2`` get one line per (k1, k2); a PDF table with meta ``log`` true
is labelled as of log10 values; violin quantile levels may also come as meta ``quantile_levels``
("0.05,0.25,0.5,…"), else they are taken as evenly spaced in (0, 1).

A second, ``reference`` table of the same kind (e.g. the truth's P(k) beside a model's) is drawn as the
reference curve and the ratio denominator; for ``tarp`` it is a second TARP curve (e.g. another estimator's).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from cosmoseg.data import ParameterEstimate, Table, atomic_write

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "FIGURES",
    "PARAMETER_LABELS",
    "figure_for_table",
    "guess_kind",
    "label_log_axis",
    "parameter_label",
    "plot_bispectrum",
    "plot_c2st",
    "plot_confusion_slice",
    "plot_coverage",
    "plot_inference_metrics",
    "plot_mass_function",
    "plot_pdf",
    "plot_pit",
    "plot_power_spectrum",
    "plot_predicted_vs_true",
    "plot_tarp",
    "plot_two_sample",
    "plot_violin",
    "save_figure",
    "table_field",
    "table_kind",
    "write_stage_figure",
]

ArrayLike = Any
CONFUSION_COLOURS = {"TN": "#f2f2f2", "FP": "#e4572e", "FN": "#4c72b0", "TP": "#2e8b57"}
"""Colours of the confusion categories in :func:`plot_confusion_slice`."""


def _np(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _new_figure(ratio: bool = False, figsize: tuple[float, float] = (5.0, 4.0)) -> tuple[Figure, Axes, Axes | None]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=100, layout="constrained")
    if not ratio:
        return fig, fig.add_subplot(), None
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    return fig, top, bottom


def save_figure(fig: Figure, path: str | os.PathLike[str], *, dpi: int = 100) -> Path:
    """Write ``fig`` as a PNG to ``path`` atomically (a temporary file beside it, then a rename).

    The PNG carries no "Software" or date metadata, so the same figure gives the same bytes.
    """
    target = atomic_write(
        path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None}), suffix=".png"
    )
    target.chmod(0o644)  # the temporary file was private; a figure is for reading
    return target


def write_stage_figure(fig: Figure, work_dir: Path | None, relative: str, *, dpi: int = 100) -> Path | None:
    """A stage's figure: written to ``work_dir / relative`` (the run folder), or, without a run folder (the contract
    checker), rendered in memory so that drawing errors still show; returns the path written, or None."""
    if work_dir is not None:
        return save_figure(fig, work_dir / relative, dpi=dpi)
    import io

    fig.savefig(io.BytesIO(), format="png", dpi=dpi, metadata={"Software": None})
    return None


def _finish(fig: Figure, path: str | os.PathLike[str] | None) -> Figure:
    if path is not None:
        save_figure(fig, path)
    return fig


def _curves(values: ArrayLike | Mapping[str, ArrayLike], label: str) -> list[tuple[str, np.ndarray]]:
    if isinstance(values, Mapping):
        return [(str(k), _np(v)) for k, v in values.items()]
    return [(label, _np(values))]


def _errors(
    error: ArrayLike | Mapping[str, ArrayLike] | None, names: Sequence[str], n: int, what: str
) -> list[np.ndarray | None]:
    """One (N,) error array (or None) per curve: a mapping gives them by curve label, a bare array is the first's."""
    if error is None:
        return [None] * len(names)
    if isinstance(error, Mapping):
        unknown = sorted(set(map(str, error)) - set(names))
        if unknown:
            raise ValueError(f"{what} names curve(s) {unknown} that are not drawn; the curves are {list(names)}")
        given = {str(k): _np(v) for k, v in error.items()}
        out = [given.get(name) for name in names]
    else:
        out = [_np(error), *([None] * (len(names) - 1))]
    for name, e in zip(names, out, strict=True):
        if e is not None and e.shape != (n,):
            raise ValueError(f"{what} of curve {name!r} has shape {e.shape}, the curve ({n},)")
    return out


def _on_x(x: np.ndarray, ref: ArrayLike | tuple[ArrayLike, ArrayLike]) -> np.ndarray:
    """A reference curve on the points x: as given when it has their length, else interpolated."""
    if isinstance(ref, tuple) and len(ref) == 2:
        xr, yr = _np(ref[0]), _np(ref[1])
        order = np.argsort(xr)
        xr, yr = xr[order], yr[order]
        if (x > 0).all() and (xr > 0).all() and (yr > 0).all():
            return np.exp(np.interp(np.log(x), np.log(xr), np.log(yr), left=np.nan, right=np.nan))
        return np.interp(x, xr, yr, left=np.nan, right=np.nan)
    y = _np(ref)
    if y.shape != x.shape:
        raise ValueError(f"reference has shape {y.shape}, x has {x.shape}; give (x_ref, y_ref) to interpolate")
    return y


def _references(x: np.ndarray, reference: Any, label: str) -> list[tuple[str, np.ndarray]]:
    if reference is None:
        return []
    if isinstance(reference, Mapping):
        return [(str(k), _on_x(x, v)) for k, v in reference.items()]
    return [(label, _on_x(x, reference))]


LABELLED_MINOR_MANTISSAS = (2, 5)
"""On a log axis spanning 0.6 to 2 decades, the minor ticks labelled besides the decades (2 × 10^k, 5 × 10^k)."""


def _log_tick_text(value: float, plain: bool) -> str:
    exponent = math.floor(math.log10(value) + 1e-9)
    mantissa = round(value / 10.0**exponent)
    if plain:
        return f"{mantissa * 10.0**exponent:.10g}"
    if mantissa == 1:
        return f"$\\mathdefault{{10^{{{exponent}}}}}$"
    return f"$\\mathdefault{{{mantissa}\\times10^{{{exponent}}}}}$"


def label_log_axis(axis: Any) -> int:
    """Tick labels of a log ``axis`` (a matplotlib ``XAxis`` / ``YAxis``) that read on any span.

    Spanning 2 decades or more, the decades are labelled (10^k) and the minor ticks are not (they would overlap).
    Spanning less, a decade or two cannot be read alone (a lone "10^0"), so the minor ticks at 2 and 5 × 10^k are
    labelled too (below 0.6 decades every minor tick 2..9 × 10^k). Values between 10^-3 and 10^4 are written as plain
    numbers (0.2, 0.5, 1, 2), others as m × 10^k. Call it once the axis's limits are final. Returns the number of
    labelled ticks inside the view (at least 2 unless the span is narrower than one minor tick spacing).
    """
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    lo, hi = sorted(float(v) for v in axis.get_view_interval())
    if not (lo > 0 and hi > lo and math.isfinite(hi)):
        return 0
    decades = math.log10(hi / lo)
    plain = lo >= 1e-3 and hi < 1e4
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    majors = [10.0**k for k in range(first, last + 1)]
    minors = [m * 10.0**k for k in range(first, last + 1) for m in range(2, 10)]
    if decades >= 2:
        axis.set_minor_formatter(NullFormatter())
        return sum(lo <= v <= hi for v in majors)
    wanted = set(LABELLED_MINOR_MANTISSAS) if decades > 0.6 else set(range(2, 10))
    axis.set_major_locator(FixedLocator(majors))
    axis.set_minor_locator(LogLocator(base=10.0, subs=tuple(float(m) for m in range(2, 10))))
    axis.set_major_formatter(FuncFormatter(lambda v, _: _log_tick_text(v, plain) if v > 0 else ""))

    def minor(value: float, _: int) -> str:
        if value <= 0:
            return ""
        exponent = math.floor(math.log10(value) + 1e-9)
        mantissa = value / 10.0**exponent
        m = round(mantissa)
        return _log_tick_text(value, plain) if abs(mantissa - m) < 1e-6 * m and m in wanted else ""

    axis.set_minor_formatter(FuncFormatter(minor))
    labelled = [v for v in majors if lo <= v <= hi]
    labelled += [v for v in minors if lo <= v <= hi and minor(v, 0)]
    return len(labelled)


def _positive_or_nan(y: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(y) & (y > 0), y, np.nan)


def _plot_with_ratio(
    x: ArrayLike,
    values: ArrayLike | Mapping[str, ArrayLike],
    *,
    error: ArrayLike | Mapping[str, ArrayLike] | None,
    reference: Any,
    label: str,
    reference_label: str,
    xlabel: str,
    ylabel: str,
    ratio_label: str,
    log_x: bool,
    log_y: bool,
    title: str,
    path: str | os.PathLike[str] | None,
    reference_error: ArrayLike | Mapping[str, ArrayLike] | None = None,
    legend_title: str = "",
    keep: ArrayLike | None = None,
) -> Figure:
    """The shared body of the curve plots. ``error`` / ``reference_error``: (N,) error bars of the first curve /
    reference, or a mapping curve label -> (N,) for any of them. ``keep``: (N,) bool, the points of the measured
    curves to draw (e.g. bins with a count > 0; others are left out). On a log y axis values <= 0 are left out."""
    xs = _np(x)
    curves = _curves(values, label)
    refs = _references(xs, reference, reference_label)
    errors = _errors(error, [name for name, _ in curves], xs.size, "error")
    ref_errors = _errors(reference_error, [name for name, _ in refs], xs.size, "reference_error")
    if keep is not None:
        mask = np.asarray(_np(keep) > 0).reshape(-1)
        if mask.shape != xs.shape:
            raise ValueError(f"keep has shape {mask.shape}, x has {xs.shape}")
        curves = [(name, np.where(mask, y, np.nan)) for name, y in curves]
    finite_positive = any(bool((y[np.isfinite(y)] > 0).any()) for _, y in curves + refs)
    log_y = log_y and finite_positive
    if log_y:  # a log axis cannot show 0 or less: those points are left out rather than breaking the scale
        curves = [(name, _positive_or_nan(y)) for name, y in curves]
        refs = [(name, _positive_or_nan(y)) for name, y in refs]
    fig, ax, rax = _new_figure(ratio=bool(refs))
    # one colour per line in both panels: curves C0, C1, ...; the first reference black, the others after
    colour = [f"C{i}" for i in range(len(curves))]
    ref_colour = ["k", *(f"C{len(curves) + j}" for j in range(len(refs) - 1))][: len(refs)]
    for (name, y), e, c in zip(refs, ref_errors, ref_colour, strict=True):
        if e is not None:
            ax.errorbar(xs, y, yerr=e, fmt="s--", ms=3, lw=1.2, capsize=2, color=c, label=name)
        else:
            ax.plot(xs, y, color=c, ls="--", lw=1.2, label=name)
    for (name, y), e, c in zip(curves, errors, colour, strict=True):
        if e is not None:
            ax.errorbar(xs, y, yerr=e, fmt="o-", ms=3, lw=1.2, capsize=2, color=c, label=name)
        else:
            ax.plot(xs, y, "-", lw=1.5, color=c, label=name)
    if log_x:
        ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8, title=legend_title or None, title_fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    bottom = ax
    if rax is not None:
        denom = refs[0][1]
        with np.errstate(divide="ignore", invalid="ignore"):
            if ref_errors[0] is not None:  # the reference's own relative error, as a band around 1
                band = ref_errors[0] / np.abs(denom)
                rax.fill_between(xs, 1.0 - band, 1.0 + band, color="0.85", lw=0)
            for (_, y), e, c in zip(curves, errors, colour, strict=True):
                if e is not None:
                    rax.errorbar(xs, y / denom, yerr=e / np.abs(denom), fmt="o-", ms=3, lw=1.2, capsize=2, color=c)
                else:
                    rax.plot(xs, y / denom, "-", lw=1.5, color=c)
            for (_, y), c in zip(refs[1:], ref_colour[1:], strict=True):
                rax.plot(xs, y / denom, ls="--", lw=1.2, color=c)
        rax.axhline(1.0, color="k", ls="--", lw=1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = np.concatenate([y / denom for _, y in curves + refs[1:]] + [np.ones(1)])
        ratios = ratios[np.isfinite(ratios)]
        lo, hi = float(ratios.min()), float(ratios.max())
        pad = max(0.02, 0.15 * (hi - lo))
        rax.set_ylim(lo - pad, hi + pad)  # the ratios, not error bars that may reach far beyond them
        rax.set_ylabel(ratio_label)
        bottom = rax
    bottom.set_xlabel(xlabel)
    if log_x:
        label_log_axis(bottom.xaxis)
    if log_y:
        label_log_axis(ax.yaxis)
    return _finish(fig, path)


# ---- the plots ------------------------------------------------------------------------------------------


def plot_power_spectrum(
    k: ArrayLike,
    power: ArrayLike | Mapping[str, ArrayLike],
    *,
    reference: Any = None,
    error: ArrayLike | Mapping[str, ArrayLike] | None = None,
    reference_error: ArrayLike | Mapping[str, ArrayLike] | None = None,
    label: str = "measured",
    reference_label: str = "reference",
    field: str = "",
    title: str = "",
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """P(k) (N,) in (Mpc/h)³ against k (N,) in h/Mpc, log-log; with a ``reference`` (e.g. linear theory or
    the truth) a ratio panel P/P_ref below. ``error``: (N,) error bars of the first curve, or a mapping label ->
    (N,); ``reference_error`` the same for the references. ``label`` / ``reference_label`` name the curves in the
    legend, ``field`` (the field whose spectrum it is) is the legend's title."""
    return _plot_with_ratio(
        k,
        power,
        error=error,
        reference=reference,
        label=label,
        reference_label=reference_label,
        xlabel=r"$k$ [$h$/Mpc]",
        ylabel=r"$P(k)$ [(Mpc/$h$)$^3$]",
        ratio_label=r"$P/P_{\rm ref}$",
        log_x=True,
        log_y=True,
        title=title,
        path=path,
        reference_error=reference_error,
        legend_title=field,
    )


def plot_bispectrum(
    theta: ArrayLike,
    values: ArrayLike | Mapping[str, ArrayLike],
    *,
    reference: Any = None,
    error: ArrayLike | Mapping[str, ArrayLike] | None = None,
    reference_error: ArrayLike | Mapping[str, ArrayLike] | None = None,
    reduced: bool = True,
    label: str = "measured",
    reference_label: str = "reference",
    field: str = "",
    title: str = "",
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """The reduced bispectrum Q(θ) (``reduced``) or B(θ) in (Mpc/h)⁶ against the angle θ (N,) between k1
    and k2 in radians (drawn as θ/π), linear axes; a ratio panel with a ``reference``. ``values`` may map
    labels such as "k1=0.1, k2=0.2" to curves on the same θ."""
    return _plot_with_ratio(
        _np(theta) / np.pi,
        values,
        error=error,
        reference=reference,
        label=label,
        reference_label=reference_label,
        xlabel=r"$\theta/\pi$",
        ylabel=r"$Q(\theta)$" if reduced else r"$B(\theta)$ [(Mpc/$h$)$^6$]",
        ratio_label=r"$Q/Q_{\rm ref}$" if reduced else r"$B/B_{\rm ref}$",
        log_x=False,
        log_y=False,
        title=title,
        path=path,
        reference_error=reference_error,
        legend_title=field,
    )


def plot_pdf(
    x: ArrayLike,
    pdf: ArrayLike | Mapping[str, ArrayLike],
    *,
    reference: Any = None,
    error: ArrayLike | Mapping[str, ArrayLike] | None = None,
    reference_error: ArrayLike | Mapping[str, ArrayLike] | None = None,
    xlabel: str = r"$\delta$",
    log_y: bool = True,
    label: str = "measured",
    reference_label: str = "reference",
    field: str = "",
    title: str = "",
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """A one-point PDF (N,) at bin centres x (N,) (e.g. of δ, or of log10 M* as in dm2gal), log y by
    default (empty bins left out); error bars, legend and a ratio panel as for :func:`plot_power_spectrum`."""
    return _plot_with_ratio(
        x,
        pdf,
        error=error,
        reference=reference,
        label=label,
        reference_label=reference_label,
        xlabel=xlabel,
        ylabel="PDF",
        ratio_label="ratio",
        log_x=False,
        log_y=log_y,
        title=title,
        path=path,
        reference_error=reference_error,
        legend_title=field,
    )


def plot_mass_function(
    m: ArrayLike,
    dndlnm: ArrayLike | Mapping[str, ArrayLike],
    *,
    error: ArrayLike | Mapping[str, ArrayLike] | None = None,
    reference: Any = None,
    reference_error: ArrayLike | Mapping[str, ArrayLike] | None = None,
    counts: ArrayLike | None = None,
    log_x: bool = True,
    xlabel: str = r"$M$ [$M_\odot/h$]",
    ylabel: str = r"$dn/d\ln M$ [($h$/Mpc)$^3$]",
    label: str = "measured",
    reference_label: str = "theory",
    field: str = "",
    title: str = "",
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """A mass function (N,) at bin masses m (N,) (Msun/h) with Poisson error bars ``error``, on log-log axes, and
    a ratio panel against the first ``reference`` (theory curves, e.g. {"Tinker08": ..., "Sheth-Tormen": ...}).
    ``counts`` (N,): objects per bin; empty bins (count 0) are left out, as are values <= 0, which a log axis cannot
    show. For a stellar-mass function in log10 bins pass ``log_x=False`` and x = log10 M* (the x values are then
    already logarithmic). ``field``: the legend's title (what was counted)."""
    return _plot_with_ratio(
        m,
        dndlnm,
        error=error,
        reference=reference,
        label=label,
        reference_label=reference_label,
        xlabel=xlabel,
        ylabel=ylabel,
        ratio_label="ratio",
        log_x=log_x,
        log_y=True,
        title=title,
        path=path,
        reference_error=reference_error,
        legend_title=field,
        keep=counts,
    )


def plot_violin(
    x: ArrayLike,
    levels: ArrayLike,
    quantiles: ArrayLike,
    *,
    width: float | None = None,
    xlabel: str = r"true $\log_{10} M$ [$M_\odot/h$]",
    ylabel: str = r"predicted $\log_{10} M$ [$M_\odot/h$]",
    title: str = "",
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Violins of a predicted quantity per bin of the true one, drawn from quantiles (no raw samples needed).

    x: (N,) bin centres of the true value (e.g. log10 M); levels: (Q,) increasing probabilities in (0, 1)
    (e.g. 0.01, 0.05, 0.1, …, 0.99); quantiles: (N, Q) the predicted values at those levels in each bin
    (NaN rows are skipped). Between consecutive quantiles the density is Δp/Δq; each violin is scaled to
    a half-width of ``width`` (default 0.4 × the smallest bin spacing). The median (level 0.5, or the
    nearest) is marked and the 1:1 line drawn, as in the protohalo papers' violin plots.
    """
    xs, lv, q = _np(x), _np(levels).reshape(-1), _np(quantiles)
    if q.ndim != 2 or q.shape != (xs.size, lv.size):
        raise ValueError(f"quantiles must have shape (N, Q) = ({xs.size}, {lv.size}), got {q.shape}")
    if width is None:
        spacing = np.diff(np.sort(xs))
        width = 0.4 * (float(spacing[spacing > 0].min()) if (spacing > 0).any() else 1.0)
    fig, ax, _ = _new_figure()
    i_med = int(np.argmin(np.abs(lv - 0.5)))
    for xi, qi in zip(xs, q, strict=True):
        if not np.isfinite(qi).all():
            continue
        qs = np.maximum.accumulate(qi)
        dq = np.diff(qs)
        dens = np.where(dq > 0, np.diff(lv) / np.where(dq > 0, dq, 1.0), 0.0)
        if dens.max() <= 0:
            ax.plot([xi - width, xi + width], [qs[0], qs[0]], color="C0")
            continue
        keep = dq > 0
        ys = np.r_[qs[0], (0.5 * (qs[1:] + qs[:-1]))[keep], qs[-1]]  # outline through the interval midpoints
        hw = np.r_[0.0, (width * dens / dens.max())[keep], 0.0]
        ax.fill(
            np.concatenate([xi - hw, (xi + hw)[::-1]]),
            np.concatenate([ys, ys[::-1]]),
            color="C0",
            alpha=0.5,
            lw=0.8,
            ec="C0",
        )
        ax.plot([xi - 0.5 * width, xi + 0.5 * width], [qs[i_med]] * 2, color="k", lw=1.5)
    finite = np.isfinite(q)
    lo = min(float(xs.min()), float(q[finite].min()) if finite.any() else float(xs.min()))
    hi = max(float(xs.max()), float(q[finite].max()) if finite.any() else float(xs.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1.0, label="1:1")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8, loc="upper left")
    if title:
        ax.set_title(title, fontsize=10)
    return _finish(fig, path)


def plot_confusion_slice(
    truth: ArrayLike,
    prediction: ArrayLike,
    *,
    axis: int = 0,
    index: int | None = None,
    extent: float | None = None,
    title: str = "",
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """A map of a 2-D slice of a binary truth vs a binary prediction, coloured TN / FP / FN / TP.

    truth, prediction: (n, n) slices or (n, n, n) cubes of booleans or labels (> 0 counts as positive,
    e.g. "in a protohalo"); of a cube the slice ``index`` (default the middle) along ``axis`` is drawn.
    extent: the box side in Mpc/h for the axis labels (cells otherwise). The legend gives each
    category's fraction of the slice's cells.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    t, p = _np(truth) > 0, _np(prediction) > 0
    if t.shape != p.shape or t.ndim not in (2, 3):
        raise ValueError(f"truth and prediction must be equal (n, n) or (n, n, n) arrays, got {t.shape}, {p.shape}")
    if t.ndim == 3:
        i = t.shape[axis] // 2 if index is None else index
        t, p = np.take(t, i, axis=axis), np.take(p, i, axis=axis)
    category = (2 * t + p).astype(int)  # 0 TN, 1 FP, 2 FN, 3 TP
    names = ["TN", "FP", "FN", "TP"]
    cmap = ListedColormap([CONFUSION_COLOURS[n] for n in names])
    fig, ax, _ = _new_figure(figsize=(5.0, 4.6))
    ext = (0.0, extent, 0.0, extent) if extent else None
    ax.imshow(category.T, origin="lower", cmap=cmap, vmin=-0.5, vmax=3.5, interpolation="nearest", extent=ext)
    unit = " [Mpc/$h$]" if extent else " [cells]"
    ax.set_xlabel("x" + unit)
    ax.set_ylabel("y" + unit)
    handles = [
        Patch(color=CONFUSION_COLOURS[n], label=f"{n} {float((category == c).mean()):.2f}") for c, n in enumerate(names)
    ]
    ax.legend(handles=handles, fontsize=7, loc="upper right", framealpha=0.8)
    if title:
        ax.set_title(title, fontsize=10)
    return _finish(fig, path)


def plot_coverage(
    levels: ArrayLike,
    coverage: ArrayLike,
    *,
    err: ArrayLike | None = None,
    labels: Sequence[str] | None = None,
    title: str = "",
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Empirical coverage (L,) or (L, P) of central credible intervals against the nominal levels (L,).

    Calibrated posteriors lie on the diagonal; the grey band is ±2 ``err`` (the binomial scatter of a
    calibrated posterior). Below the diagonal: over-confident; above: under-confident.
    """
    lv, cov = _np(levels), _np(coverage)
    cov = cov[:, None] if cov.ndim == 1 else cov
    order = np.argsort(lv)
    fig, ax, _ = _new_figure(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "k--", lw=1.0, label="calibrated")
    if err is not None:
        e = _np(err)[order]
        ax.fill_between(lv[order], lv[order] - 2 * e, lv[order] + 2 * e, color="0.8", label=r"$\pm 2\sigma$")
    for j in range(cov.shape[1]):
        name = labels[j] if labels is not None and j < len(labels) else f"parameter {j}"
        ax.plot(lv[order], cov[order, j], "o-", ms=3, label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("nominal credible level")
    ax.set_ylabel("empirical coverage")
    ax.legend(fontsize=8, loc="upper left")
    if title:
        ax.set_title(title, fontsize=10)
    return _finish(fig, path)


def plot_pit(
    edges: ArrayLike,
    counts: ArrayLike,
    *,
    labels: Sequence[str] | None = None,
    title: str = "",
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """PIT histograms: counts (n_bins,) or (n_bins, P) on edges (n_bins+1,) in [0, 1], as densities.

    The dashed line is the uniform density 1 of calibrated posteriors; the band its ±1σ binomial scatter.
    """
    e, c = _np(edges), _np(counts)
    c = c[:, None] if c.ndim == 1 else c
    width = np.diff(e)
    fig, ax, _ = _new_figure()
    n = c.sum(axis=0)
    p = width / (e[-1] - e[0])
    sigma = np.sqrt(n.max() * p * (1 - p)) / (n.max() * width)
    ax.fill_between(
        e,
        np.r_[1 - sigma, 1 - sigma[-1]],
        np.r_[1 + sigma, 1 + sigma[-1]],
        step="post",
        color="0.85",
        label=r"uniform $\pm 1\sigma$",
    )
    ax.axhline(1.0, color="k", ls="--", lw=1.0)
    for j in range(c.shape[1]):
        name = labels[j] if labels is not None and j < len(labels) else f"parameter {j}"
        density = c[:, j] / (max(n[j], 1.0) * width)
        ax.stairs(density, e, lw=1.5, label=name)
    ax.set_xlim(e[0], e[-1])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("PIT")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return _finish(fig, path)


def plot_two_sample(
    names: Sequence[str],
    ks_statistic: ArrayLike,
    wasserstein: ArrayLike,
    *,
    ks_pvalue: ArrayLike | None = None,
    title: str = "",
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Bars of the per-column KS statistic (left) and 1-Wasserstein distance (right, in each column's
    units), the KS p-value written over each bar."""
    ks, w1 = _np(ks_statistic), _np(wasserstein)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(5.0, 1.0 + 0.9 * len(names)), 3.6), dpi=100, layout="constrained")
    a1, a2 = fig.subplots(1, 2)
    pos = np.arange(len(names))
    bars = a1.bar(pos, ks, color="C0")
    if ks_pvalue is not None:
        for bar, p in zip(bars, _np(ks_pvalue), strict=True):
            a1.annotate(
                f"p={p:.2g}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
            )
    a2.bar(pos, w1, color="C1")
    for ax, label in ((a1, "KS statistic"), (a2, r"$W_1$")):
        ax.set_xticks(pos, list(names), rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(label)
    if title:
        fig.suptitle(title, fontsize=10)
    return _finish(fig, path)


def plot_c2st(
    auc: ArrayLike,
    auc_err: ArrayLike,
    *,
    labels: Sequence[str] | None = None,
    title: str = "",
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """C2ST AUC (R,) ± auc_err (R,) of one or more tests, against 0.5 (indistinguishable) and 1 (disjoint)."""
    a, e = _np(auc).reshape(-1), _np(auc_err).reshape(-1)
    fig, ax, _ = _new_figure(figsize=(4.0, 3.2))
    pos = np.arange(a.size)
    ax.errorbar(pos, a, yerr=e, fmt="o", ms=5, capsize=4)
    ax.axhline(0.5, color="k", ls="--", lw=1.0, label="indistinguishable")
    ax.set_xticks(pos, list(labels) if labels is not None else [f"test {i}" for i in pos], fontsize=8)
    ax.set_xlim(-0.5, a.size - 0.5)
    ax.set_ylim(min(0.4, float(np.min(a - 2 * e))), 1.02)
    ax.set_ylabel("C2ST AUC (held out)")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return _finish(fig, path)


PARAMETER_LABELS: dict[str, str] = {
    "omega_m": r"$\Omega_{\rm m}$",
    "omega_b": r"$\Omega_{\rm b}$",
    "sigma_8": r"$\sigma_8$",
    "h": r"$h$",
    "n_s": r"$n_{\rm s}$",
    "w0": r"$w_0$",
    "wa": r"$w_a$",
    "s_8": r"$S_8$",
}
"""Axis symbols of the cosmological parameters by their names in a ParameterEstimate (others are written as named)."""


def parameter_label(name: str) -> str:
    """The symbol of a parameter for axis labels and legends: :data:`PARAMETER_LABELS` (case-insensitive), else the
    name itself."""
    return PARAMETER_LABELS.get(name.lower(), name)


def plot_predicted_vs_true(
    estimate: ParameterEstimate,
    parameter: str | int,
    *,
    max_points: int | None = 400,
    use_samples: bool = True,
    label: str = "",
    title: str = "",
    reference: ParameterEstimate | None = None,
    reference_label: str = "reference",
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """The inferred posterior mean with its 1σ error bar against the truth, for one parameter of an estimate with
    ``truth``, and the 1:1 line; ``reference`` (optional): another estimate of the same objects (e.g. from another
    catalog of the same boxes), drawn in grey behind with its ε in its label (``reference_label``); the legend's
    title gives the metrics of all B estimates (RMSE, ε, R², reduced χ²,
    68% coverage; :func:`~cosmoseg.measure.inference.inference_metrics`, its coverage from the samples where the
    estimate has them and ``use_samples``). ``parameter``: a name of ``estimate.names`` or its index. Axes: "true X"
    and "predicted X", X the parameter's symbol (:func:`parameter_label`), in the parameter's units. ``max_points``:
    at most this many estimates are drawn, evenly spaced in their order, so that error bars stay readable (None: all);
    the metrics always use all. ``label``: the name of the points (default "estimates")."""
    from cosmoseg.measure.inference import inference_metrics

    names = list(estimate.names)
    if isinstance(parameter, str):
        if parameter not in names:
            raise ValueError(f"parameter {parameter!r} is not one of the estimate's {names}")
        j = names.index(parameter)
    else:
        j = int(parameter)
        if not 0 <= j < len(names):
            raise ValueError(f"parameter index {j} is out of range for the estimate's {len(names)} parameters")
    metrics = inference_metrics(estimate, use_samples=use_samples)[names[j]]  # refuses a missing truth or std = 0
    assert estimate.truth is not None
    truth, mean, std = (_np(t).reshape(-1, len(names))[:, j] for t in (estimate.truth, estimate.mean, estimate.std))
    n = truth.size
    shown = np.arange(n)
    if max_points is not None and 0 < max_points < n:
        shown = np.unique(np.linspace(0, n - 1, max_points).round().astype(int))
    symbol = parameter_label(names[j])
    fig, ax, _ = _new_figure(figsize=(4.6, 4.6))
    name = label or "estimates"
    count = f"{shown.size} of {n} shown" if shown.size < n else f"N = {n}"

    def points(center: np.ndarray, error: np.ndarray, marker: str, color: str, alpha: float, text: str) -> None:
        ax.errorbar(
            truth[shown], center[shown], yerr=error[shown], fmt=marker, ms=2.5, elinewidth=0.6, capsize=0,
            color=color, alpha=alpha, label=text,
        )  # fmt: skip

    if reference is not None:
        if tuple(reference.names) != tuple(names) or tuple(reference.mean.shape) != tuple(estimate.mean.shape):
            raise ValueError("the reference must estimate the same parameters of the same objects as the estimate")
        ref_mean, ref_std = (_np(t).reshape(-1, len(names))[:, j] for t in (reference.mean, reference.std))
        ref_error = float(np.mean(np.abs(ref_mean - truth) / np.abs(truth)))
        points(ref_mean, ref_std, "s", "0.6", 0.7, rf"{reference_label} ($\epsilon$ = {ref_error:.2%})")
    points(mean, std, "o", "C0", 0.8, rf"{name} (mean $\pm 1\sigma$; {count})")
    lo = float(min(truth.min(), (mean - std)[shown].min()))
    hi = float(max(truth.max(), (mean + std)[shown].max()))
    if reference is not None:
        lo, hi = min(lo, float((ref_mean - ref_std)[shown].min())), max(hi, float((ref_mean + ref_std)[shown].max()))
    pad = 0.05 * (hi - lo) if hi > lo else 0.05 * max(abs(hi), 1.0)
    lims = (lo - pad, hi + pad)
    ax.plot(lims, lims, "k--", lw=1.0, label="predicted = true")
    ax.set_xlim(lims)
    ax.set_ylim(lims)
    ax.set_xlabel(f"true {symbol}")
    ax.set_ylabel(f"predicted {symbol}")

    def fmt(key: str, text: str, spec: str) -> str:
        value = metrics[key]
        return f"{text} = {value:{spec}}" if math.isfinite(value) else f"{text} undefined"

    summary = "\n".join(
        [
            fmt("rmse", "RMSE", ".3g"),
            fmt("relative_error", r"$\epsilon$", ".2%"),
            fmt("r2", r"$R^2$", ".3f"),
            fmt("chi2", r"$\chi^2$", ".2f"),
            fmt("coverage_68", r"$1\sigma$ coverage", ".2f"),
        ]
    )
    ax.legend(fontsize=8, loc="upper left", title=summary, title_fontsize=8, alignment="left")
    if title:
        ax.set_title(title, fontsize=10)
    return _finish(fig, path)


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(x)))


def plot_tarp(
    alpha: ArrayLike,
    ecp: ArrayLike | Mapping[str, ArrayLike],
    *,
    low: ArrayLike | Mapping[str, ArrayLike] | None = None,
    high: ArrayLike | Mapping[str, ArrayLike] | None = None,
    label: str = "TARP",
    band_label: str = "bootstrap 95%",
    field: str = "",
    title: str = "",
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """The TARP expected coverage ECP(α) (A,) against the credibility level α (A,) in [0, 1], with the diagonal of a
    calibrated posterior (:mod:`cosmoseg.measure.tarp`). ``ecp`` may map labels to curves on the same α (e.g. two
    estimators); ``low`` / ``high``: (A,) the bootstrap band of the first curve, or mappings label -> (A,), drawn
    shaded in the curve's colour (``band_label`` names it in the legend's title). Each curve's legend entry gives its
    area ∫|ECP − α| dα. ``field``: the legend's title (e.g. the parameters tested)."""
    a = _np(alpha).reshape(-1)
    curves = _curves(ecp, label)
    names = [name for name, _ in curves]
    lows = _errors(low, names, a.size, "low")
    highs = _errors(high, names, a.size, "high")
    fig, ax, _ = _new_figure(figsize=(4.6, 4.6))
    handles: list[Any] = [ax.plot([0, 1], [0, 1], "k--", lw=1.0)[0]]
    texts = ["calibrated"]
    banded = False
    for i, ((name, y), lo, hi) in enumerate(zip(curves, lows, highs, strict=True)):
        if y.shape != a.shape:
            raise ValueError(f"ecp of curve {name!r} has shape {y.shape}, alpha {a.shape}")
        colour = f"C{i}"
        line = ax.plot(a, y, "-", lw=1.6, color=colour)[0]
        handle: Any = line
        if lo is not None and hi is not None:
            handle = (ax.fill_between(a, lo, hi, color=colour, alpha=0.25, lw=0), line)
            banded = True
        area = _trapezoid(np.abs(y - a), a)
        handles.append(handle)
        texts.append(rf"{name} ($\int|{{\rm ECP}}-\alpha|\,d\alpha$ = {area:.3f})")
    legend_title = "\n".join(t for t in (field, f"bands: {band_label}" if banded else "") if t)
    ax.legend(
        handles, texts, fontsize=8, loc="upper left", title=legend_title or None, title_fontsize=8, alignment="left"
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel(r"credibility level $\alpha$")
    ax.set_ylabel("expected coverage (TARP)")
    if title:
        ax.set_title(title, fontsize=10)
    return _finish(fig, path)


INFERENCE_METRIC_LABELS: dict[str, tuple[str, str]] = {
    "rmse": ("RMSE", "0"),
    "relative_error": (r"mean relative error $\epsilon$", "0"),
    "r2": (r"$R^2$", "1"),
    "chi2": (r"reduced $\chi^2$ (uncut)", "1"),
    "outlier_fraction": (r"fraction with $z^2 > 10$", "0.0016"),
    "coverage_68": (r"coverage 68% ($1\sigma$)", "0.683"),
    "coverage_95": (r"coverage 95% ($1.96\sigma$)", "0.950"),
    "bias": (r"bias $\langle\mu-\theta\rangle$", "0"),
}
"""Row label and calibrated-Gaussian / perfect value of each metric of :func:`plot_inference_metrics`."""


def plot_inference_metrics(
    names: Sequence[str],
    metrics: Mapping[str, ArrayLike],
    *,
    resolved: Mapping[str, ArrayLike] | None = None,
    outlier_threshold: float = 10.0,
    n_estimates: int | None = None,
    title: str = "",
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """The metrics of parameter inference (:mod:`cosmoseg.measure.inference`) drawn as a table: one row per metric
    (the keys of ``metrics``, each (P,) over the parameters ``names``), one column per parameter and a column with the
    value a perfect, calibrated estimator has. ``resolved``: key -> (P,) bool, False where a metric is undefined
    (shown as "—"). ``n_estimates``: the number B of estimates, written in the title."""
    cols = list(names)
    keys = list(metrics)
    fig, ax, _ = _new_figure(figsize=(2.4 + 1.1 * (len(cols) + 1), 0.45 + 0.3 * (len(keys) + 1)))
    ax.axis("off")
    text = []
    for key in keys:
        values = _np(metrics[key]).reshape(-1)
        ok = np.ones(values.size, dtype=bool) if resolved is None or key not in resolved else _np(resolved[key]) > 0
        row_label, ideal = INFERENCE_METRIC_LABELS.get(key, (key, ""))
        if key == "outlier_fraction":
            row_label = rf"fraction with $z^2 > {outlier_threshold:g}$"
            ideal = f"{math.erfc(math.sqrt(outlier_threshold / 2)):.2g}"
        cells = [f"{v:.4g}" if keep and np.isfinite(v) else "—" for v, keep in zip(values, ok, strict=True)]
        text.append([row_label, *cells, ideal])
    first = 2.4 / (2.4 + 1.1 * (len(cols) + 1))
    table = ax.table(
        cellText=text,
        colLabels=["metric", *(parameter_label(c) for c in cols), "ideal"],
        colWidths=[first] + [(1 - first) / (len(cols) + 1)] * (len(cols) + 1),
        cellLoc="center",
        bbox=(0.0, 0.0, 1.0, 1.0),
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    for (row, col), cell in table.get_celld().items():
        if col == 0:
            cell.set_text_props(ha="left")
            cell.PAD = 0.03
        if row == 0:
            cell.set_text_props(weight="bold")
    heading = title or "parameter inference"
    if n_estimates is not None:
        heading += f" (N = {n_estimates})"
    ax.set_title(heading, fontsize=10)
    return _finish(fig, path)


# ---- tables ---------------------------------------------------------------------------------------------


def _first(table: Table, names: Sequence[str]) -> str | None:
    return next((n for n in names if n in table.columns), None)


_BISPECTRUM_Y = ("Q", "q", "bispectrum", "B", "reduced_bispectrum")
_PDF_X = ("bin_mid", "centers", "centres", "center", "centre", "x", "bin_centers", "bin_centres")
_PDF_EDGES = (("bin_low", "bin_high"), ("low", "high"))
_VIOLIN_X = ("log_m_true", "log_mass_true", "log_m", "m_true")


def guess_kind(table: Table) -> str:
    """The kind of a measurement table guessed from its column names (see the module docstring)."""
    cols = table.columns
    if "k" in cols and "power" in cols:
        return "power_spectrum"
    if "theta" in cols and _first(table, _BISPECTRUM_Y):
        return "bispectrum"
    if "pdf" in cols and (_first(table, _PDF_X) or any(lo in cols and hi in cols for lo, hi in _PDF_EDGES)):
        return "pdf"
    if ("m_mid" in cols and "dndlnm" in cols) or ("log_mstar_mid" in cols and "dndlogm" in cols):
        return "mass_function"
    if ("quantiles" in cols and _first(table, _VIOLIN_X)) or ("m_mid" in cols and len(_quantile_columns(table)) > 1):
        return "violin"
    if "level" in cols and "coverage" in cols:
        return "coverage"
    if {"pit_low", "pit_high", "count"} <= set(cols):
        return "pit"
    if "ks_statistic" in cols and "wasserstein" in cols:
        return "two_sample"
    if "auc" in cols and "auc_err" in cols:
        return "c2st"
    if "alpha" in cols and "ecp" in cols:
        return "tarp"
    if {"rmse", "r2", "chi2"} <= set(cols):
        return "inference_metrics"
    return "generic"


def table_kind(table: Table) -> str:
    """The kind of a measurement table: its meta ``kind`` where that names a kind of :data:`FIGURES`, else
    :func:`guess_kind` from its column names."""
    kind = str(table.meta.get("kind", ""))
    return kind if kind in FIGURES else guess_kind(table)


def _quantile_columns(table: Table) -> dict[str, float]:
    """Columns named q05, q50, q95, ...: the quantile at level 0.05, 0.5, 0.95, ... (sorted by level)."""
    found = {n: int(n[1:]) / 10 ** (len(n) - 1) for n in table.columns if re.fullmatch(r"q\d{2,3}", n)}
    return dict(sorted(found.items(), key=lambda item: item[1]))


def _names(table: Table, index_column: str, prefix: str, n: int) -> list[str]:
    if index_column in table.columns:
        idx = [int(i) for i in table[index_column].tolist()]
        return [str(table.meta.get(f"{prefix}_{i}", f"{prefix} {i}")) for i in idx]
    return [f"{prefix} {i}" for i in range(n)]


def _ref_curve(reference: Table | None, x: str, y: str) -> tuple[np.ndarray, np.ndarray] | None:
    if reference is None or x not in reference.columns or y not in reference.columns:
        return None
    return _np(reference[x]), _np(reference[y])


def _groups(table: Table, index_column: str) -> list[tuple[int, np.ndarray]]:
    """(value, row mask) of each distinct value of an index column (one group of all rows without it)."""
    if index_column not in table.columns:
        return [(0, np.ones(len(table), dtype=bool))]
    idx = _np(table[index_column])
    return [(int(v), idx == v) for v in np.unique(idx)]


FIELD_META_KEYS = ("quantity", "field", "channel", "column")
"""Meta keys of a measurement table that name the field or quantity measured, in this order of preference: the
legend's title."""


def table_field(table: Table) -> str:
    """What a measurement table measures, from its meta (``quantity``, ``field``, ``channel`` or ``column``), or ""."""
    return next((str(table.meta[k]) for k in FIELD_META_KEYS if str(table.meta.get(k, ""))), "")


def _error_column(table: Table | None, name: str) -> np.ndarray | None:
    """The ``<name>_err`` column of a table as (N,), or None."""
    if table is None or f"{name}_err" not in table.columns or table.columns[f"{name}_err"].ndim != 1:
        return None
    return _np(table[f"{name}_err"])


@dataclasses.dataclass(frozen=True)
class _Legend:
    """What a drawing function of :data:`FIGURES` is told besides the tables (see :func:`figure_for_table`)."""

    title: str
    label: str  # the table's curve
    reference_label: str  # as given ("" = none given)
    reference_name: str  # the reference's curve: as given, else the reference's meta label, else "reference"
    field: str  # as given ("" = from the table's meta)

    def field_of(self, table: Table) -> str:
        return self.field or table_field(table)


def _draw_power_spectrum(table: Table, reference: Table | None, legend: _Legend) -> Figure:
    cols = table.columns
    label, ref_name = legend.label, legend.reference_name
    ref = _ref_curve(reference, "k", "power")
    ref_error = _error_column(reference, "power") if ref is not None else None
    if ref is None and "power_linear" in cols:
        ref, ref_name = _np(cols["power_linear"]), legend.reference_label or "linear theory"
    power: Any = cols["power"]
    errors: dict[str, np.ndarray] = {}
    if "power_a" in cols and "power_b" in cols:  # a cross spectrum: draw both autos beside it
        names = {"cross": "power", "auto a": "power_a", "auto b": "power_b"}
        power = {curve: cols[column] for curve, column in names.items()}
        errors = {c: e for c, column in names.items() if (e := _error_column(table, column)) is not None}
    elif (e := _error_column(table, "power")) is not None:
        errors = {label: e}
    if reference is not None and len(reference) != len(table):
        ref_error = None  # a reference on other k is interpolated: its error bars are not
    return plot_power_spectrum(
        cols["k"],
        power,
        reference=ref,
        reference_label=ref_name,
        error=errors or None,
        reference_error=ref_error,
        label=label,
        field=legend.field_of(table),
        title=legend.title,
    )


def _draw_bispectrum(table: Table, reference: Table | None, legend: _Legend) -> Figure:
    cols = table.columns
    field, title, ref_name = legend.field_of(table), legend.title, legend.reference_name
    y = _first(table, _BISPECTRUM_Y) or "Q"
    reduced = y in ("Q", "q", "reduced_bispectrum")
    theta = _np(cols["theta"])
    y_err = _error_column(table, y)
    values: dict[str, np.ndarray] = {}
    masks = []
    if "k1" in cols and "k2" in cols:
        pairs = np.stack([_np(cols["k1"]), _np(cols["k2"])], axis=1)
        for pair in np.unique(pairs, axis=0):
            mask = (pairs == pair).all(axis=1)
            masks.append(mask)
            values[f"k1={pair[0]:.3g}, k2={pair[1]:.3g}"] = _np(cols[y])[mask]
    if len(masks) > 1:  # several configurations: one line each, against θ of each
        fig, ax, _ = _new_figure()
        for (name, v), mask in zip(values.items(), masks, strict=True):
            if y_err is not None:
                ax.errorbar(theta[mask] / np.pi, v, yerr=y_err[mask], fmt="o-", ms=3, capsize=2, label=name)
            else:
                ax.plot(theta[mask] / np.pi, v, "o-", ms=3, label=name)
        ax.set_xlabel(r"$\theta/\pi$")
        ax.set_ylabel(r"$Q(\theta)$" if reduced else r"$B(\theta)$ [(Mpc/$h$)$^6$]")
        ax.legend(fontsize=7, title=field or None, title_fontsize=7)
        if title:
            ax.set_title(title, fontsize=10)
        return fig
    ref = _ref_curve(reference, "theta", y)
    ref = (ref[0] / np.pi, ref[1]) if ref is not None else None
    ref_error = _error_column(reference, y) if ref is not None and reference is not None else None
    if ref_error is not None and reference is not None and len(reference) != len(table):
        ref_error = None
    theory = _first(table, (f"{y}_theory", f"{y}_reference", f"{y}_tree"))
    if ref is None and theory:
        ref, ref_name = _np(cols[theory]), legend.reference_label or theory.removeprefix(f"{y}_")
    return plot_bispectrum(
        theta,
        cols[y],
        reference=ref,
        reference_label=ref_name,
        error=y_err,
        reference_error=ref_error,
        reduced=reduced,
        label=legend.label,
        field=field,
        title=title,
    )


def _draw_pdf(table: Table, reference: Table | None, legend: _Legend) -> Figure:
    cols = table.columns
    ref_name = legend.reference_name
    xname = _first(table, _PDF_X)
    if xname:
        x = _np(cols[xname])
    else:
        lo, hi = next((lo, hi) for lo, hi in _PDF_EDGES if lo in cols and hi in cols)
        x = 0.5 * (_np(cols[lo]) + _np(cols[hi]))
    ref = _ref_curve(reference, xname, "pdf") if xname else None
    ref_error = _error_column(reference, "pdf") if ref is not None else None
    if ref_error is not None and reference is not None and len(reference) != len(table):
        ref_error = None
    if ref is None and "pdf_theory" in cols:
        ref, ref_name = _np(cols["pdf_theory"]), legend.reference_label or "theory"
    xlabel = r"$\log_{10}$ value" if table.meta.get("log") else "value"
    return plot_pdf(
        x,
        cols["pdf"],
        reference=ref,
        reference_label=ref_name,
        error=_error_column(table, "pdf"),
        reference_error=ref_error,
        xlabel=xlabel,
        label=legend.label,
        field=legend.field_of(table),
        title=legend.title,
    )


def _mass_function_field(table: Table) -> str:
    """What a mass function counts, for a table whose meta names no quantity or field ("" otherwise)."""
    if str(table.meta.get("quantity", table.meta.get("field", ""))):
        return ""
    column = str(table.meta.get("column", "mass"))  # the catalog column counted (measure.mass_function)
    if "dndlnm" not in table.columns:
        return "stellar mass"
    return "halo mass" + ("" if column == "mass" else f" ({column})")


def _draw_mass_function(table: Table, reference: Table | None, legend: _Legend) -> Figure:
    cols = table.columns
    label, ref_name = legend.label, legend.reference_name
    stellar = "m_mid" not in cols or "dndlnm" not in cols
    xname, y = ("log_mstar_mid", "dndlogm") if stellar else ("m_mid", "dndlnm")
    # measured curves: y and every y_<name> with its y_<name>_err; theory curves: y_<name> without errors
    measured: dict[str, Any] = {label: cols[y]}
    errors = {label: e} if (e := _error_column(table, y)) is not None else {}
    refs: dict[str, Any] = {}
    ref_errors: dict[str, np.ndarray] = {}
    ref = _ref_curve(reference, xname, y)
    if ref is not None and reference is not None:
        refs[ref_name] = ref
        if (e := _error_column(reference, y)) is not None and len(reference) == len(table):
            ref_errors[ref_name] = e
    for name in cols:
        if not name.startswith(f"{y}_") or name.endswith("_err") or cols[name].ndim != 1:
            continue
        suffix = name[len(y) + 1 :]
        if (e := _error_column(table, name)) is not None:
            measured[suffix] = cols[name]
            errors[suffix] = e
        else:
            refs[suffix] = _np(cols[name])
    return plot_mass_function(
        cols[xname],
        measured if len(measured) > 1 else cols[y],
        error=errors or None,
        reference=refs or None,
        reference_error=ref_errors or None,
        counts=cols.get("counts"),
        log_x=not stellar,
        xlabel=r"$\log_{10} M_*$ [$M_\odot/h$]" if stellar else r"$M$ [$M_\odot/h$]",
        ylabel=r"$dn/d\log_{10} M_*$ [($h$/Mpc)$^3$]" if stellar else r"$dn/d\ln M$ [($h$/Mpc)$^3$]",
        label=label,
        field=legend.field or _mass_function_field(table) or table_field(table),
        title=legend.title,
    )


def _draw_violin(table: Table, reference: Table | None, legend: _Legend) -> Figure:
    cols = table.columns
    if "quantiles" not in cols:  # per-mass table: m_mid, q05 ... q95, n_violin
        qcols = _quantile_columns(table)
        q = np.stack([_np(cols[n]) for n in qcols], axis=1)
        if "n_violin" in cols:
            q[_np(cols["n_violin"]) == 0] = np.nan  # empty bins (their quantiles are stored as 0)
        return plot_violin(np.log10(_np(cols["m_mid"])), np.array(list(qcols.values())), q, title=legend.title)
    xname = _first(table, _VIOLIN_X) or "log_m_true"
    q = _np(cols["quantiles"])
    if "quantile_levels" in cols:
        levels = _np(cols["quantile_levels"])[0]
    elif "quantile_levels" in table.meta:
        levels = np.array([float(v) for v in str(table.meta["quantile_levels"]).split(",")])
    else:
        levels = np.linspace(0.0, 1.0, q.shape[1] + 2)[1:-1]
    return plot_violin(cols[xname], levels, q, title=legend.title)


def _draw_coverage(table: Table, reference: Table | None, legend: _Legend) -> Figure:
    cols = table.columns
    groups = _groups(table, "parameter")
    levels = _np(cols["level"])[groups[0][1]]
    cov = np.stack([_np(cols["coverage"])[mask] for _, mask in groups], axis=1)
    err = _np(cols["coverage_err"])[groups[0][1]] if "coverage_err" in cols else None
    labels = [str(table.meta.get(f"parameter_{g}", f"parameter {g}")) for g, _ in groups]
    return plot_coverage(levels, cov, err=err, labels=labels, title=legend.title)


def _draw_pit(table: Table, reference: Table | None, legend: _Legend) -> Figure:
    cols = table.columns
    groups = _groups(table, "parameter")
    first = groups[0][1]
    edges = np.r_[_np(cols["pit_low"])[first], _np(cols["pit_high"])[first][-1]]
    counts = np.stack([_np(cols["count"])[mask] for _, mask in groups], axis=1)
    labels = [str(table.meta.get(f"parameter_{g}", f"parameter {g}")) for g, _ in groups]
    return plot_pit(edges, counts, labels=labels, title=legend.title)


def _draw_two_sample(table: Table, reference: Table | None, legend: _Legend) -> Figure:
    cols = table.columns
    names = _names(table, "column", "column", len(table))
    return plot_two_sample(
        names, cols["ks_statistic"], cols["wasserstein"], ks_pvalue=cols.get("ks_pvalue"), title=legend.title
    )


def _draw_c2st(table: Table, reference: Table | None, legend: _Legend) -> Figure:
    labels = [str(table.meta.get(f"label_{i}", f"test {i}")) for i in range(len(table))]
    return plot_c2st(table.columns["auc"], table.columns["auc_err"], labels=labels, title=legend.title)


def _draw_tarp(table: Table, reference: Table | None, legend: _Legend) -> Figure:
    tables = [(legend.label, table)]
    if reference is not None and "alpha" in reference.columns and "ecp" in reference.columns:
        tables.append((legend.reference_name, reference))
    alpha = _np(table["alpha"])
    curves: dict[str, np.ndarray] = {}
    lows: dict[str, np.ndarray] = {}
    highs: dict[str, np.ndarray] = {}
    for name, t in tables:
        curves[name] = _np(t["ecp"]) if len(t) == alpha.size else np.interp(alpha, _np(t["alpha"]), _np(t["ecp"]))
        if "ecp_low" in t.columns and "ecp_high" in t.columns and len(t) == alpha.size:
            lows[name], highs[name] = _np(t["ecp_low"]), _np(t["ecp_high"])
    band = float(table.meta.get("band", 0.95))
    field = legend.field
    if not field:
        indices = sorted(int(m.group(1)) for key in table.meta if (m := re.fullmatch(r"parameter_(\d+)", key)))
        field = ", ".join(parameter_label(str(table.meta[f"parameter_{i}"])) for i in indices)
    return plot_tarp(
        alpha,
        curves,
        low=lows or None,
        high=highs or None,
        band_label=f"bootstrap {band:.0%}",
        field=field,
        title=legend.title,
    )


def _draw_inference_metrics(table: Table, reference: Table | None, legend: _Legend) -> Figure:
    cols = table.columns
    names = _names(table, "parameter", "parameter", len(table))
    keys = [k for k in cols if k != "parameter" and not k.endswith("_resolved") and cols[k].ndim == 1]
    keys = [k for k in keys if cols[k].dtype != torch.bool]
    resolved = {k: cols[f"{k}_resolved"] for k in keys if f"{k}_resolved" in cols}
    n = table.meta.get("n_estimates")
    return plot_inference_metrics(
        names,
        {k: cols[k] for k in keys},
        resolved=resolved,
        outlier_threshold=float(table.meta.get("outlier_threshold", 10.0)),
        n_estimates=int(n) if isinstance(n, int | float) and not isinstance(n, bool) else None,
        title=legend.title or str(table.meta.get("label", "")),
    )


def _draw_generic(table: Table, reference: Table | None, legend: _Legend) -> Figure:
    return _plot_generic(table, legend.title, legend.field_of(table))


FIGURES: dict[str, Callable[[Table, Table | None, _Legend], Figure]] = {
    "power_spectrum": _draw_power_spectrum,
    "bispectrum": _draw_bispectrum,
    "pdf": _draw_pdf,
    "mass_function": _draw_mass_function,
    "violin": _draw_violin,
    "coverage": _draw_coverage,
    "pit": _draw_pit,
    "two_sample": _draw_two_sample,
    "c2st": _draw_c2st,
    "tarp": _draw_tarp,
    "inference_metrics": _draw_inference_metrics,
    "generic": _draw_generic,
}
"""The figure of each kind of measurement table: kind -> drawing function (table, reference, legend)."""


def figure_for_table(
    table: Table,
    reference: Table | None = None,
    *,
    title: str = "",
    label: str = "",
    reference_label: str = "",
    field: str = "",
) -> tuple[str, Figure]:
    """The figure of a measurement table (drawn by :data:`FIGURES` for its kind, :func:`table_kind`) and the kind.

    ``reference``: a table of the same kind drawn as the reference curve (and ratio denominator), e.g.
    the truth's P(k) for a model's. Without one, the table's own theory column (``power_linear``,
    ``dndlnm_<model>``, ``<y>_theory``) serves where it has one. Every ``<y>_err`` column of either table is drawn
    as the error bars of its curve ``<y>``.

    The legend names the curves and, as its title, the field: ``label`` (default: the table's meta ``label``, else
    "measured"), ``reference_label`` (default: the reference's meta ``label``, else "reference"), ``field``
    (default: :func:`table_field` of the table). Bins whose count (``counts``) is 0 are left out of the curves.
    """
    kind = table_kind(table)
    reference_meta = str(reference.meta.get("label", "")) if reference is not None else ""
    legend = _Legend(
        title=title,
        label=label or str(table.meta.get("label", "")) or "measured",
        reference_label=reference_label,
        reference_name=reference_label or reference_meta or "reference",
        field=field,
    )
    return kind, FIGURES[kind](table, reference, legend)


def _plot_generic(table: Table, title: str, field: str = "") -> Figure:
    """Every 1-D numeric column against the first; a column ``<y>_err`` is drawn as the error bars of ``<y>``."""
    numeric = [n for n, t in table.columns.items() if t.ndim == 1 and t.dtype != torch.bool]
    fig, ax, _ = _new_figure()
    if numeric:
        x = _np(table[numeric[0]])
        drawn = [n for n in numeric[1:] if not (n.endswith("_err") and n.removesuffix("_err") in numeric[1:])]
        for name in drawn:
            error = _error_column(table, name)
            if error is not None:
                ax.errorbar(x, _np(table[name]), yerr=error, fmt="o-", ms=3, capsize=2, label=name)
            else:
                ax.plot(x, _np(table[name]), "o-", ms=3, label=name)
        ax.set_xlabel(numeric[0])
        if drawn:
            ax.legend(fontsize=8, title=field or None, title_fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return fig
