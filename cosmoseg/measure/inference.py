"""Metrics of cosmological parameter inference: how close and how honest the estimates of Ω_m, σ_8, ... are.

For B estimates (e.g. one per simulated box) of P parameters with posterior means μ (B, P), standard deviations σ
(B, P) and the truths θ (B, P) of a validation set (a :class:`~cosmoseg.data.ParameterEstimate` with ``truth``), per
parameter, the metrics of the GNN-inference papers (Villaescusa-Navarro et al. 2022; Abramo et al.):

| key | definition | perfect |
|---|---|---|
| ``rmse`` | √(mean (μ − θ)²), in the parameter's units | 0 |
| ``relative_error`` | ε = mean |μ − θ| / |θ| (NaN when a truth is 0) | 0 |
| ``r2`` | R² = 1 − Σ(μ − θ)² / Σ(θ − mean θ)² (NaN when all truths are equal) | 1 |
| ``chi2`` | the reduced χ² = mean ((μ − θ)/σ)², *uncut*: no estimate is left out as an outlier | 1 |
| ``outlier_fraction`` | fraction of estimates with ((μ − θ)/σ)² > ``outlier_threshold`` (default 10) | ~0.0016 |
| ``coverage_68`` | fraction of truths inside the central 68.27% (1σ) credible interval | 0.6827 |
| ``coverage_95`` | fraction of truths inside the central 95% (1.96σ) credible interval | 0.95 |
| ``bias`` | mean (μ − θ), in the parameter's units | 0 |

The "perfect" values of χ², the outlier fraction (P(χ²₁ > 10)) and the coverages are those of a calibrated Gaussian
posterior. Coverage is |μ − θ| < σ (< 1.959964 σ) for the Gaussian mean ± std, or, where the estimate has posterior
samples (and ``use_samples``), whether the truth lies inside the samples' central interval of that probability
(the mid-rank PIT u of :func:`~cosmoseg.measure.calibration.pit_values` with |u − ½| <= α/2). A σ of 0 makes χ²
meaningless and is refused. A single estimate (P,) counts as B = 1.

:func:`inference_table` gives the metrics as a table (kind "inference_metrics"), :func:`tarp_table` (from
:mod:`cosmoseg.measure.tarp`) the TARP expected coverage (kind "tarp"). :func:`paired_shift` compares two estimates of
the same objects (e.g. from two catalogs of one box) object by object, in units of the reference's σ.
"""

from __future__ import annotations

import math

import torch

from cosmoseg.data import ParameterEstimate, Table
from cosmoseg.data.table import MISSING_FILL, resolved_column
from cosmoseg.measure.calibration import pit_values
from cosmoseg.measure.tarp import tarp_table

__all__ = [
    "COVERAGE_LEVELS",
    "METRIC_KEYS",
    "inference_metrics",
    "inference_table",
    "paired_shift",
    "tarp_table",
]

COVERAGE_LEVELS: dict[str, tuple[float, float]] = {
    "coverage_68": (math.erf(1 / math.sqrt(2)), 1.0),
    "coverage_95": (0.95, 1.959963984540054),
}
"""Coverage keys -> (credible probability α of the central interval, its half-width in σ for a Gaussian)."""

METRIC_KEYS: tuple[str, ...] = (
    "rmse",
    "relative_error",
    "r2",
    "chi2",
    "outlier_fraction",
    "coverage_68",
    "coverage_95",
    "bias",
)
"""The metrics of :func:`inference_metrics`, in the order of the columns of :func:`inference_table`."""


def _arrays(estimate: ParameterEstimate) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if estimate.truth is None:
        raise ValueError(
            "inference metrics need a ParameterEstimate with truth (the true parameter values of a validation set); "
            "this one has truth=None"
        )
    mean, std, truth = estimate.mean.double(), estimate.std.double(), estimate.truth.double()
    if mean.ndim == 1:
        mean, std, truth = mean[None], std[None], truth[None]
    zero = std == 0
    if bool(zero.any()):
        counts = zero.sum(dim=0).tolist()
        listing = ", ".join(f"{name!r}: {c}" for name, c in zip(estimate.names, counts, strict=True) if c)
        first = torch.nonzero(zero)[0].tolist()
        raise ValueError(
            f"inference metrics need std > 0 (the reduced chi2 divides by it); std is 0 for {listing} of "
            f"{mean.shape[0]} estimate(s), the first at estimate {first[0]} of {estimate.names[first[1]]!r}"
        )
    return mean, std, truth


def _metrics(
    estimate: ParameterEstimate, *, outlier_threshold: float, use_samples: bool
) -> tuple[dict[str, torch.Tensor], str]:
    """The metrics as (P,) float64 tensors (NaN where undefined) and the source of the coverage."""
    mean, std, truth = _arrays(estimate)
    err = mean - truth
    z2 = (err / std).square()
    spread = (truth - truth.mean(dim=0)).square().sum(dim=0)
    r2 = torch.where(
        spread > 0, 1 - err.square().sum(dim=0) / spread.clamp_min(torch.finfo(torch.float64).tiny), torch.nan
    )
    relative = torch.where((truth != 0).all(dim=0), (err.abs() / truth.abs()).mean(dim=0), torch.nan)
    out = {
        "rmse": err.square().mean(dim=0).sqrt(),
        "relative_error": relative,
        "r2": r2,
        "chi2": z2.mean(dim=0),
        "outlier_fraction": (z2 > outlier_threshold).double().mean(dim=0),
        "bias": err.mean(dim=0),
    }
    if use_samples and estimate.samples is not None:
        half = (pit_values(truth, samples=estimate.samples) - 0.5).abs()  # (B, P)
        for key, (level, _) in COVERAGE_LEVELS.items():
            out[key] = (half <= level / 2).double().mean(dim=0)
        source = "samples"
    else:
        z = err.abs() / std
        for key, (_, width) in COVERAGE_LEVELS.items():
            out[key] = (z < width).double().mean(dim=0)
        source = "gaussian"
    return {key: out[key] for key in METRIC_KEYS}, source


def inference_metrics(
    estimate: ParameterEstimate, *, outlier_threshold: float = 10.0, use_samples: bool = True
) -> dict[str, dict[str, float]]:
    """The metrics of an estimate with ``truth``, per parameter: {name: {key: value}} with the keys of
    :data:`METRIC_KEYS` (see the module docstring; ``relative_error`` or ``r2`` is NaN where it is undefined).

    Raises ValueError when the estimate has no truth, or when a std is 0 (naming the parameters and the count).
    ``outlier_threshold``: the z² above which an estimate counts as an outlier. ``use_samples``: coverage from the
    posterior samples where the estimate has them (else from mean ± std).
    """
    if not outlier_threshold > 0:
        raise ValueError(f"outlier_threshold must be > 0, got {outlier_threshold}")
    values, _ = _metrics(estimate, outlier_threshold=outlier_threshold, use_samples=use_samples)
    return {name: {key: float(values[key][j]) for key in METRIC_KEYS} for j, name in enumerate(estimate.names)}


def inference_table(
    estimate: ParameterEstimate, *, outlier_threshold: float = 10.0, use_samples: bool = True, label: str = ""
) -> Table:
    """:func:`inference_metrics` as a table of kind "inference_metrics", one row per parameter: columns
    ``parameter`` (index; names in meta ``parameter_<i>``) and the keys of :data:`METRIC_KEYS`. Where a metric is
    undefined (``relative_error`` with a zero truth, ``r2`` with equal truths) it holds 0 and a bool column
    ``<key>_resolved`` beside it is False (docs/data-model.md, "Missing values"). Meta: kind, parameter names,
    n_estimates, source of the coverage ("samples" or "gaussian"), outlier_threshold, and ``label`` when given."""
    if not outlier_threshold > 0:
        raise ValueError(f"outlier_threshold must be > 0, got {outlier_threshold}")
    values, source = _metrics(estimate, outlier_threshold=outlier_threshold, use_samples=use_samples)
    columns: dict[str, torch.Tensor] = {"parameter": torch.arange(len(estimate.names))}
    for key in METRIC_KEYS:
        value = values[key].cpu()
        defined = torch.isfinite(value)
        columns[key] = torch.where(defined, value, MISSING_FILL)
        if not bool(defined.all()):
            columns[resolved_column(key)] = defined
    n = 1 if estimate.mean.ndim == 1 else int(estimate.mean.shape[0])
    meta: dict[str, str | int | float | bool] = {f"parameter_{i}": name for i, name in enumerate(estimate.names)}
    meta |= {"kind": "inference_metrics", "n_estimates": n, "source": source, "outlier_threshold": outlier_threshold}
    if label:
        meta["label"] = label
    return Table(columns=columns, meta=meta)


PAIRED_KEYS: tuple[str, ...] = ("mean_shift", "rms_shift", "rms_shift_in_sigma", "within_1sigma", "sigma_ratio")
"""The keys of :func:`paired_shift`."""


def paired_shift(estimate: ParameterEstimate, reference: ParameterEstimate) -> dict[str, dict[str, float]]:
    """How far ``estimate`` moves from ``reference``, object by object, per parameter: {name: {key: value}}.

    Both estimate the same B objects in the same order (e.g. Ω_m of the same boxes from two catalogs built from one
    set of initial conditions). With Δ = μ − μ_ref: ``mean_shift`` = mean Δ, ``rms_shift`` = √(mean Δ²) (the
    parameter's units), ``rms_shift_in_sigma`` = √(mean (Δ/σ_ref)²), ``within_1sigma`` = the fraction with
    |Δ| < σ_ref, ``sigma_ratio`` = mean σ / mean σ_ref. A Δ well inside σ_ref means the two catalogs carry the same
    information for the estimator. ValueError when the names or shapes differ or a reference σ is 0.
    """
    if tuple(estimate.names) != tuple(reference.names):
        raise ValueError(f"the estimates name different parameters: {estimate.names} and {reference.names}")
    if tuple(estimate.mean.shape) != tuple(reference.mean.shape):
        raise ValueError(
            f"the estimates are of different objects: means of shape {tuple(estimate.mean.shape)} and "
            f"{tuple(reference.mean.shape)}"
        )
    mean, std = estimate.mean.double().reshape(-1, len(estimate.names)), estimate.std.double()
    ref_mean, ref_std = reference.mean.double().reshape(mean.shape), reference.std.double().reshape(mean.shape)
    if bool((ref_std == 0).any()):
        raise ValueError("the reference has a std of 0: shifts in units of its sigma are undefined")
    delta = mean - ref_mean
    values = {
        "mean_shift": delta.mean(dim=0),
        "rms_shift": delta.square().mean(dim=0).sqrt(),
        "rms_shift_in_sigma": (delta / ref_std).square().mean(dim=0).sqrt(),
        "within_1sigma": (delta.abs() < ref_std).double().mean(dim=0),
        "sigma_ratio": std.reshape(mean.shape).mean(dim=0) / ref_std.mean(dim=0),
    }
    return {name: {key: float(values[key][j]) for key in PAIRED_KEYS} for j, name in enumerate(estimate.names)}
