"""Calibration of posteriors: coverage of credible intervals and the PIT histogram.

A posterior is calibrated when the true values fall inside its α credible intervals a fraction α of the
time, for every α; equivalently, when the probability integral transform u = F_posterior(truth) of many
independent estimates is uniform on [0, 1] (Gneiting, Balabdaoui & Raftery 2007; for posterior samples,
the rank statistic of simulation-based calibration, Talts et al. 2018). Over-confident posteriors (too
narrow) under-cover and give a U-shaped PIT histogram; under-confident ones over-cover and give a hump.

Shapes: B estimates (boxes, objects) of P parameters. Posteriors come either as samples (B, S, P) or as
Gaussians, mean and std (B, P); truths are (B, P). The :class:`~cosmoseg.data.ParameterEstimate` of the
data model holds all of these (one estimate has shape (P,) and counts as B = 1).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch

from cosmoseg.data import ParameterEstimate, Table

__all__ = [
    "DEFAULT_LEVELS",
    "CalibrationResult",
    "CoverageResult",
    "calibration",
    "calibration_tables",
    "coverage",
    "pit_histogram",
    "pit_uniformity",
    "pit_values",
]

DEFAULT_LEVELS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.68, 0.7, 0.8, 0.9, 0.95, 0.99)
"""Credible levels α at which coverage is measured by default."""


def pit_values(
    truth: torch.Tensor,
    *,
    mean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
    samples: torch.Tensor | None = None,
) -> torch.Tensor:
    """The PIT u = F(truth) of each truth under its posterior, (B, P) float64 in (0, 1).

    truth: (B, P) or (P,). With ``samples`` (B, S, P) or (S, P): the mid-rank u = (r + ½ t + ½) / (S + 1),
    where r samples are below the truth and t equal to it — the rank statistic of Talts et al. (2018) mapped
    into (0, 1), discrete-uniform on S + 1 values for a calibrated posterior. Otherwise the Gaussian
    u = Φ((truth − mean) / std) with ``mean`` and ``std`` (same shape as truth, std > 0).
    """
    truth = torch.as_tensor(truth).double()
    if truth.ndim == 1:
        truth = truth[None]
    if samples is not None:
        samples = torch.as_tensor(samples).double()
        if samples.ndim == 2:
            samples = samples[None]
        if samples.ndim != 3 or samples.shape[0] != truth.shape[0] or samples.shape[2] != truth.shape[1]:
            raise ValueError(
                f"samples must have shape (B, S, P) = ({truth.shape[0]}, S, {truth.shape[1]}), "
                f"got {tuple(samples.shape)}"
            )
        below = (samples < truth[:, None, :]).sum(dim=1).double()
        equal = (samples == truth[:, None, :]).sum(dim=1).double()
        return (below + 0.5 * equal + 0.5) / (samples.shape[1] + 1)
    if mean is None or std is None:
        raise ValueError("pit_values needs samples, or mean and std")
    mean = torch.as_tensor(mean).double().reshape(truth.shape)
    std = torch.as_tensor(std).double().reshape(truth.shape)
    if bool((std <= 0).any()):
        raise ValueError("std must be > 0 for a Gaussian PIT")
    return 0.5 * torch.erfc(-(truth - mean) / (std * math.sqrt(2)))


@dataclasses.dataclass(frozen=True)
class CoverageResult:
    """levels: (L,) nominal credible levels α; coverage: (L, P) fraction of truths inside the central α
    interval; err: (L,) binomial standard deviation √(α(1−α)/B) that a calibrated posterior's coverage
    scatters by, so (coverage − α)/err is a z-score; n: the number B of estimates."""

    levels: torch.Tensor
    coverage: torch.Tensor
    err: torch.Tensor
    n: int


def coverage(pit: torch.Tensor, levels: Sequence[float] = DEFAULT_LEVELS) -> CoverageResult:
    """Coverage of central credible intervals from PIT values (B, P) (see :func:`pit_values`).

    The truth lies inside the central α interval [F⁻¹((1−α)/2), F⁻¹((1+α)/2)] exactly when
    |u − ½| ≤ α/2, so coverage(α) = mean over B of that indicator, per parameter. For sample posteriors
    this is the interval between the empirical quantiles, up to the 1/S granularity of the samples.
    """
    pit = torch.as_tensor(pit).double()
    if pit.ndim == 1:
        pit = pit[:, None]
    lv = torch.as_tensor(list(levels), dtype=torch.float64, device=pit.device)
    if lv.numel() == 0 or bool(((lv <= 0) | (lv >= 1)).any()):
        raise ValueError(f"levels must be in (0, 1), got {list(levels)}")
    inside = (pit[None] - 0.5).abs() <= lv[:, None, None] / 2  # (L, B, P)
    n = pit.shape[0]
    return CoverageResult(levels=lv, coverage=inside.double().mean(dim=1), err=torch.sqrt(lv * (1 - lv) / n), n=n)


def pit_histogram(pit: torch.Tensor, n_bins: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Histogram of PIT values (B, P) in ``n_bins`` equal bins of [0, 1]: edges (n_bins + 1,), counts
    (n_bins, P) float64. A calibrated posterior gives B/n_bins per bin, ± √(B p (1−p)) with p = 1/n_bins."""
    pit = torch.as_tensor(pit).double()
    if pit.ndim == 1:
        pit = pit[:, None]
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    idx = (pit * n_bins).floor().long().clamp(0, n_bins - 1)  # (B, P)
    counts = torch.zeros((n_bins, pit.shape[1]), dtype=torch.float64, device=pit.device)
    counts.scatter_add_(0, idx, torch.ones_like(pit))
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64, device=pit.device)
    return edges, counts


def pit_uniformity(pit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One-sample KS test of PIT values (B, P) against U(0, 1), per parameter: statistic (P,), p-value (P,).

    D = max_i max(i/B − u_(i), u_(i) − (i−1)/B) on the sorted values (on their device); the two-sided
    p-value is the exact P(D_B ≥ D) of ``scipy.stats.kstwo`` (SciPy for the distribution only, on P numbers).
    Sample-based PIT values are discrete (S + 1 values), which adds up to ~1/(2(S+1)) to D: use S ≫ √B.
    """
    from scipy.stats import kstwo

    pit = torch.as_tensor(pit).double()
    if pit.ndim == 1:
        pit = pit[:, None]
    u = torch.sort(pit, dim=0).values
    n = u.shape[0]
    i = torch.arange(1, n + 1, dtype=torch.float64, device=u.device)[:, None]
    statistic = torch.maximum((i / n - u).amax(dim=0), (u - (i - 1) / n).amax(dim=0))
    pvalue = torch.as_tensor(kstwo.sf(statistic.cpu().numpy(), n), dtype=torch.float64).clamp(0.0, 1.0)
    return statistic, pvalue


@dataclasses.dataclass(frozen=True)
class CalibrationResult:
    """Everything :func:`calibration` measures, for P parameters of B estimates.

    names: P parameter names; pit: (B, P) PIT values; coverage: :class:`CoverageResult`;
    edges (n_bins+1,), counts (n_bins, P): the PIT histogram; ks_statistic, ks_pvalue: (P,) KS test of PIT
    uniformity; z_mean, z_std: (P,) mean and standard deviation of (truth − mean)/std (0 and 1 when
    calibrated; std > 1: over-confident, < 1: under-confident; NaN where a std is 0).
    """

    names: tuple[str, ...]
    pit: torch.Tensor
    coverage: CoverageResult
    edges: torch.Tensor
    counts: torch.Tensor
    ks_statistic: torch.Tensor
    ks_pvalue: torch.Tensor
    z_mean: torch.Tensor
    z_std: torch.Tensor


def calibration(
    estimate: ParameterEstimate,
    *,
    levels: Sequence[float] = DEFAULT_LEVELS,
    n_bins: int = 10,
    use_samples: bool = True,
) -> CalibrationResult:
    """Coverage, PIT histogram and PIT uniformity of an estimate with ``truth`` (validation runs).

    Uses ``estimate.samples`` when present and ``use_samples``, else the Gaussian mean ± std.
    """
    if estimate.truth is None:
        raise ValueError("calibration needs a ParameterEstimate with truth (the true values)")
    truth = estimate.truth.double()
    mean, std = estimate.mean.double(), estimate.std.double()
    if truth.ndim == 1:
        truth, mean, std = truth[None], mean[None], std[None]
    if use_samples and estimate.samples is not None:
        pit = pit_values(truth, samples=estimate.samples)
    else:
        pit = pit_values(truth, mean=mean, std=std)
    edges, counts = pit_histogram(pit, n_bins)
    ks_statistic, ks_pvalue = pit_uniformity(pit)
    z = torch.where(std > 0, (truth - mean) / std.clamp_min(torch.finfo(torch.float64).tiny), torch.nan)
    z_std = z.std(dim=0) if z.shape[0] > 1 else torch.full_like(z[0], torch.nan)
    return CalibrationResult(
        names=tuple(estimate.names),
        pit=pit,
        coverage=coverage(pit, levels),
        edges=edges,
        counts=counts,
        ks_statistic=ks_statistic,
        ks_pvalue=ks_pvalue,
        z_mean=z.mean(dim=0),
        z_std=z_std,
    )


def calibration_tables(
    estimate: ParameterEstimate,
    *,
    levels: Sequence[float] = DEFAULT_LEVELS,
    n_bins: int = 10,
    use_samples: bool = True,
) -> tuple[Table, Table, Table]:
    """:func:`calibration` as three tables: coverage (parameter, level, coverage, coverage_err), pit (parameter,
    pit_low, pit_high, count) and summary (parameter, ks_statistic, ks_pvalue, and z_mean, z_std where every one is
    finite); parameter names in meta ``parameter_<i>``, with n_estimates and the source ("samples" or "gaussian")."""
    result = calibration(estimate, levels=levels, n_bins=n_bins, use_samples=use_samples)
    n_par, n_lv = len(result.names), len(levels)
    names = {f"parameter_{i}": name for i, name in enumerate(result.names)}
    source = "samples" if use_samples and estimate.samples is not None else "gaussian"
    meta = names | {"n_estimates": result.coverage.n, "source": source}
    cov = result.coverage
    coverage_table = Table(
        columns={
            "parameter": torch.arange(n_par).repeat_interleave(n_lv),
            "level": cov.levels.cpu().repeat(n_par),
            "coverage": cov.coverage.T.reshape(-1).cpu(),
            "coverage_err": cov.err.cpu().repeat(n_par),
        },
        meta=meta | {"kind": "coverage"},
    )
    pit_table = Table(
        columns={
            "parameter": torch.arange(n_par).repeat_interleave(n_bins),
            "pit_low": result.edges[:-1].cpu().repeat(n_par),
            "pit_high": result.edges[1:].cpu().repeat(n_par),
            "count": result.counts.T.reshape(-1).cpu(),
        },
        meta=meta | {"kind": "pit"},
    )
    summary = {
        "parameter": torch.arange(n_par),
        "ks_statistic": result.ks_statistic.cpu(),
        "ks_pvalue": result.ks_pvalue.cpu(),
    }
    if bool(torch.isfinite(result.z_mean).all() and torch.isfinite(result.z_std).all()):
        summary |= {"z_mean": result.z_mean.cpu(), "z_std": result.z_std.cpu()}
    return coverage_table, pit_table, Table(columns=summary, meta=meta | {"kind": "generic"})
