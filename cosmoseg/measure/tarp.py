"""TARP: the expected coverage of posterior samples about random reference points (Lemos et al. 2023).

"Tests of Accuracy with Random Points" (Lemos, Coogan, Hezaveh & Perreault-Levasseur 2023, "Sampling-Based
Accuracy Testing of Posterior Estimators for General Inference", ICML) checks a posterior estimator in all P
dimensions at once, from samples alone (no density, no credible regions). For each of B estimates with S posterior
samples θ_s and the truth θ*:

1. parameters are normalised to the unit box by the prior range [low, high] (default: the truths' min and max over
   the B estimates), x → (x − low) / (high − low);
2. a reference point θ_r is drawn uniformly in [0, 1]^P, independently for each estimate;
3. f = the fraction of samples closer (Euclidean) to θ_r than the truth is — the credibility level of the ball about
   θ_r whose edge passes through the truth. Here f is the mid-rank f = (k + ½ t + ½) / (S + 1), with k samples
   strictly closer and t at the same distance, so that for a calibrated posterior (truth exchangeable with the
   samples) f is discrete-uniform on (0, 1) with no 1/S bias at the ends (the same convention as
   :func:`~cosmoseg.measure.calibration.pit_values`);
4. the expected coverage probability ECP(α) = mean over estimates of [f < α], on a grid of α in [0, 1].

ECP(α) is the CDF of f: a calibrated posterior gives ECP(α) ≈ α (the diagonal); an over-confident one (too narrow)
crosses the diagonal from above at small α to below it at large α, an under-confident one the other way; a biased
one departs from it too. The random reference points make the test sensitive to the whole joint posterior, not to
one marginal. Its scatter is estimated by bootstrapping the estimates.

Shapes: samples (B, S, P), truth (B, P); a :class:`~cosmoseg.data.ParameterEstimate` of one estimate ((P,), (S, P))
counts as B = 1. **Gaussian fallback:** an estimate without samples is given S samples drawn from the independent
normals N(mean, std²) of each parameter (:func:`gaussian_samples`); this tests the Gaussian posterior with diagonal
covariance that its mean and std describe, and ignores any correlation between parameters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from cosmoseg.data import ParameterEstimate, Table
from cosmoseg.measure.calibration import pit_uniformity

__all__ = [
    "DEFAULT_N_ALPHA",
    "TarpResult",
    "gaussian_samples",
    "tarp",
    "tarp_coverage",
    "tarp_table",
]

DEFAULT_N_ALPHA = 101
"""Points of the α grid (0, 0.01, ..., 1) on which the expected coverage is given by default."""


@dataclasses.dataclass(frozen=True)
class TarpResult:
    """The TARP expected-coverage curve of B estimates with S samples of P parameters each.

    alpha: (A,) float64 credibility levels, from 0 to 1; ecp: (A,) the expected coverage ECP(α) = fraction of
    estimates with f < α; f: (B,) the per-estimate credibility level of the truth (see the module docstring).
    With a bootstrap (n_bootstrap > 0): ecp_std (A,) the bootstrap standard deviation of ECP, and ecp_low,
    ecp_high (A,) the central ``band`` bootstrap interval; otherwise None.
    area: ∫₀¹ |ECP(α) − α| dα (trapezoid on the grid; 0 when calibrated, at most ½); signed_area: ∫₀¹ (ECP − α) dα
    = ½ − mean(f) up to the grid (> 0: the truths lie nearer the references than the samples do; < 0: farther;
    an over- or under-confident posterior can give either sign, its curve crosses the diagonal); max_deviation:
    max over the grid of |ECP(α) − α| (the Kolmogorov–Smirnov distance of f from U(0, 1) on the grid);
    ks_pvalue: the KS p-value of f against U(0, 1) (:func:`~cosmoseg.measure.calibration.pit_uniformity`; the
    discreteness of f adds up to ~1/(2(S+1)) to the statistic). n: B; n_samples: S; n_bootstrap: resamplings drawn.
    """

    alpha: torch.Tensor
    ecp: torch.Tensor
    f: torch.Tensor
    ecp_std: torch.Tensor | None
    ecp_low: torch.Tensor | None
    ecp_high: torch.Tensor | None
    area: float
    signed_area: float
    max_deviation: float
    ks_pvalue: float
    n: int
    n_samples: int
    n_bootstrap: int
    band: float


def _generator_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def gaussian_samples(
    mean: torch.Tensor, std: torch.Tensor, n_samples: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """S = ``n_samples`` draws from N(mean, std²) of each parameter independently: mean, std (B, P) or (P,) ->
    (B, S, P) or (S, P) float64, on mean's device (drawn on the generator's device, then moved)."""
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    mean, std = torch.as_tensor(mean).double(), torch.as_tensor(std).double()
    shape = (*mean.shape[:-1], n_samples, mean.shape[-1])
    noise = torch.randn(shape, generator=generator, dtype=torch.float64, device=_generator_device(generator))
    return mean.unsqueeze(-2) + std.unsqueeze(-2) * noise.to(mean.device)


def _ecp(sorted_f: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Fraction of the (…, B) sorted values below each α: (…, A)."""
    below = torch.searchsorted(sorted_f, alpha.expand(*sorted_f.shape[:-1], -1).contiguous(), side="left")
    return below.double() / sorted_f.shape[-1]


def _bounds(
    truth: torch.Tensor, low: Sequence[float] | torch.Tensor | None, high: Sequence[float] | torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    p = truth.shape[1]

    def given(value: Sequence[float] | torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(value, dtype=torch.float64, device=truth.device)
        return t.reshape(1).expand(p) if t.numel() == 1 else t

    lo = truth.amin(dim=0) if low is None else given(low)
    hi = truth.amax(dim=0) if high is None else given(high)
    if lo.shape != (p,) or hi.shape != (p,):
        raise ValueError(f"low and high must be numbers or have shape (P,) = ({p},), got {lo.shape}, {hi.shape}")
    if not bool((hi > lo).all()):
        bad = torch.nonzero(~(hi > lo)).reshape(-1).tolist()
        where = "the truths" if low is None and high is None else "low and high"
        raise ValueError(
            f"TARP normalises each parameter by its range, but {where} give an empty range for parameter(s) {bad} "
            f"(low {lo[bad].tolist()}, high {hi[bad].tolist()}); pass low and high (the prior range)"
        )
    return lo, hi


def tarp_coverage(
    samples: torch.Tensor,
    truth: torch.Tensor,
    *,
    low: Sequence[float] | torch.Tensor | None = None,
    high: Sequence[float] | torch.Tensor | None = None,
    n_alpha: int = DEFAULT_N_ALPHA,
    n_bootstrap: int = 0,
    band: float = 0.95,
    generator: torch.Generator | None = None,
) -> TarpResult:
    """The TARP expected coverage ECP(α) of posterior samples (B, S, P) against the truths (B, P).

    low, high: the prior range of each parameter, numbers or (P,) in the parameters' units, that normalises them to
    the unit box where the reference points are drawn (default: the truths' min and max over the B estimates).
    n_alpha: points of the α grid from 0 to 1. n_bootstrap: resamplings of the B estimates (with replacement) for the
    scatter of ECP; band: the probability of the central bootstrap interval (ecp_low, ecp_high). ``generator`` draws
    the reference points, then the bootstrap indices (torch's default generator when None). Work is vectorised:
    O(B S P) memory for the distances and O(n_bootstrap B) for the bootstrap. See the module docstring.
    """
    samples = torch.as_tensor(samples).double()
    truth = torch.as_tensor(truth).double().to(samples.device)
    if truth.ndim == 1:
        truth = truth[None]
    if samples.ndim == 2:
        samples = samples[None]
    if samples.ndim != 3 or truth.ndim != 2 or samples.shape[0] != truth.shape[0] or samples.shape[2] != truth.shape[1]:
        raise ValueError(
            f"samples must have shape (B, S, P) and truth (B, P) with the same B and P, got {tuple(samples.shape)} "
            f"and {tuple(truth.shape)}"
        )
    n, s, p = samples.shape
    if n < 1 or s < 1 or p < 1:
        raise ValueError(f"TARP needs at least one estimate, sample and parameter, got (B, S, P) = {(n, s, p)}")
    if not (bool(torch.isfinite(samples).all()) and bool(torch.isfinite(truth).all())):
        raise ValueError("TARP needs finite samples and truths")
    if n_alpha < 2:
        raise ValueError(f"n_alpha must be >= 2, got {n_alpha}")
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be >= 0, got {n_bootstrap}")
    if not 0 < band < 1:
        raise ValueError(f"band must be in (0, 1), got {band}")
    lo, hi = _bounds(truth, low, high)
    scale = hi - lo
    samples, truth = (samples - lo) / scale, (truth - lo) / scale
    device = samples.device
    gen_device = _generator_device(generator)
    reference = torch.rand((n, p), generator=generator, dtype=torch.float64, device=gen_device).to(device)
    d_samples = (samples - reference[:, None, :]).square().sum(dim=2)  # (B, S) squared distances
    d_truth = (truth - reference).square().sum(dim=1, keepdim=True)  # (B, 1)
    closer = (d_samples < d_truth).sum(dim=1).double()
    tied = (d_samples == d_truth).sum(dim=1).double()
    f = (closer + 0.5 * tied + 0.5) / (s + 1)
    alpha = torch.linspace(0.0, 1.0, n_alpha, dtype=torch.float64, device=device)
    ecp = _ecp(torch.sort(f).values, alpha)
    deviation = ecp - alpha
    ecp_std = ecp_low = ecp_high = None
    if n_bootstrap:
        idx = torch.randint(0, n, (n_bootstrap, n), generator=generator, device=gen_device).to(device)
        boot = _ecp(torch.sort(f[idx], dim=1).values, alpha)  # (n_bootstrap, A)
        ecp_std = boot.std(dim=0) if n_bootstrap > 1 else torch.zeros_like(ecp)
        q = torch.tensor([(1 - band) / 2, (1 + band) / 2], dtype=torch.float64, device=device)
        ecp_low, ecp_high = torch.quantile(boot, q, dim=0)
    _, ks_pvalue = pit_uniformity(f[:, None])
    return TarpResult(
        alpha=alpha,
        ecp=ecp,
        f=f,
        ecp_std=ecp_std,
        ecp_low=ecp_low,
        ecp_high=ecp_high,
        area=float(torch.trapezoid(deviation.abs(), alpha)),
        signed_area=float(torch.trapezoid(deviation, alpha)),
        max_deviation=float(deviation.abs().max()),
        ks_pvalue=float(ks_pvalue[0]),
        n=n,
        n_samples=s,
        n_bootstrap=n_bootstrap,
        band=band,
    )


def _estimate_samples(
    estimate: ParameterEstimate, use_samples: bool, n_samples: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor, str]:
    if estimate.truth is None:
        raise ValueError("TARP needs a ParameterEstimate with truth (the true values); this one has truth=None")
    truth = estimate.truth.double()
    if use_samples and estimate.samples is not None:
        return estimate.samples.double(), truth, "samples"
    return gaussian_samples(estimate.mean, estimate.std, n_samples, generator=generator), truth, "gaussian"


def tarp(
    estimate: ParameterEstimate,
    *,
    low: Sequence[float] | torch.Tensor | None = None,
    high: Sequence[float] | torch.Tensor | None = None,
    n_alpha: int = DEFAULT_N_ALPHA,
    n_bootstrap: int = 100,
    band: float = 0.95,
    use_samples: bool = True,
    n_samples: int = 1000,
    generator: torch.Generator | None = None,
) -> TarpResult:
    """:func:`tarp_coverage` of an estimate with ``truth`` (validation runs), over all its parameters jointly.

    Uses ``estimate.samples`` when present and ``use_samples``; otherwise (the Gaussian fallback) ``n_samples``
    draws from N(mean, std²) of each parameter (:func:`gaussian_samples`, drawn with ``generator`` before the
    reference points). low, high: the prior range (numbers or (P,), in the parameters' units); default the truths'.
    """
    samples, truth, _ = _estimate_samples(estimate, use_samples, n_samples, generator)
    return tarp_coverage(
        samples, truth, low=low, high=high, n_alpha=n_alpha, n_bootstrap=n_bootstrap, band=band, generator=generator
    )


def tarp_table(
    estimate: ParameterEstimate,
    *,
    low: Sequence[float] | torch.Tensor | None = None,
    high: Sequence[float] | torch.Tensor | None = None,
    n_alpha: int = DEFAULT_N_ALPHA,
    n_bootstrap: int = 100,
    band: float = 0.95,
    use_samples: bool = True,
    n_samples: int = 1000,
    generator: torch.Generator | None = None,
    label: str = "",
) -> Table:
    """:func:`tarp` as a table of kind "tarp": columns alpha, ecp (A,), and with a bootstrap ecp_err (its standard
    deviation), ecp_low, ecp_high (the central ``band`` interval). Meta: kind, parameter_<i> names, n_estimates,
    n_samples, n_bootstrap, band, source ("samples" or "gaussian"), area, signed_area, max_deviation, ks_pvalue,
    and ``label`` (the curve's name in figures) when given."""
    samples, truth, source = _estimate_samples(estimate, use_samples, n_samples, generator)
    result = tarp_coverage(
        samples, truth, low=low, high=high, n_alpha=n_alpha, n_bootstrap=n_bootstrap, band=band, generator=generator
    )
    columns = {"alpha": result.alpha.cpu(), "ecp": result.ecp.cpu()}
    if result.ecp_std is not None and result.ecp_low is not None and result.ecp_high is not None:
        columns |= {"ecp_err": result.ecp_std.cpu(), "ecp_low": result.ecp_low.cpu(), "ecp_high": result.ecp_high.cpu()}
    meta: dict[str, str | int | float | bool] = {f"parameter_{i}": name for i, name in enumerate(estimate.names)}
    meta |= {
        "kind": "tarp",
        "n_estimates": result.n,
        "n_samples": result.n_samples,
        "n_bootstrap": result.n_bootstrap,
        "band": result.band,
        "source": source,
        "area": result.area,
        "signed_area": result.signed_area,
        "max_deviation": result.max_deviation,
        "ks_pvalue": result.ks_pvalue,
    }
    if label:
        meta["label"] = label
    return Table(columns=columns, meta=meta)
