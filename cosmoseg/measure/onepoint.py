"""One-point statistics of periodic fields: smoothing, histograms and the PDF (counts in cells).

Conventions: fields are real (n, n, n) tensors on a periodic box of side ``length`` Mpc/h; smoothing radii
are in Mpc/h; every histogram is accumulated in float64 with ``torch.bucketize`` + ``torch.bincount`` on
the field's device (no host round trip).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import torch

from cosmoseg.data import Field, Table
from cosmoseg.mesh.fourier import rfft_k_magnitude, rfft_mode_weights

KERNELS = ("tophat", "gaussian")
"""Smoothing kernels: a top-hat sphere of radius R, or a Gaussian of standard deviation R."""


def window(k: torch.Tensor, radius: float, kernel: str = "tophat") -> torch.Tensor:
    """Fourier transform of a unit-normalised smoothing kernel, W(kR), at wavenumbers ``k`` (h/Mpc).

    tophat: W = 3 (sin x - x cos x) / x^3 with x = kR (a Taylor series below x = 1e-2);
    gaussian: W = exp(-x^2 / 2). ``radius`` in Mpc/h; returns a tensor of k's shape and dtype.
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    x = k * radius
    if kernel == "gaussian":
        return torch.exp(-0.5 * x * x)
    small = x < 1e-2
    xs = torch.where(small, torch.ones_like(x), x)
    direct = 3.0 * (torch.sin(xs) - xs * torch.cos(xs)) / xs**3
    x2 = x * x
    return torch.where(small, 1.0 - x2 / 10.0 + x2 * x2 / 280.0, direct)


def _check_cube(values: torch.Tensor, name: str = "values") -> int:
    if values.ndim != 3 or not (values.shape[0] == values.shape[1] == values.shape[2]) or values.shape[0] < 1:
        raise ValueError(f"{name} must be a cubic (n, n, n) grid, got shape {tuple(values.shape)}")
    if not values.is_floating_point():
        raise ValueError(f"{name} must be floating point, got dtype {values.dtype}")
    return int(values.shape[0])


def smooth_field(values: torch.Tensor, length: float, radius: float, kernel: str = "tophat") -> torch.Tensor:
    """A periodic (n, n, n) field convolved with a top-hat sphere or a Gaussian of ``radius`` Mpc/h.

    Done in Fourier space (real FFT, float64): δ_R(k) = W(kR) δ(k). The mean of the field is kept (W(0) = 1).
    ``radius`` = 0 returns the input unchanged. Returns the dtype of ``values``, on its device.
    """
    n = _check_cube(values)
    if not (math.isfinite(length) and length > 0):
        raise ValueError(f"length must be a positive number of Mpc/h, got {length}")
    if not (math.isfinite(radius) and radius >= 0):
        raise ValueError(f"smoothing radius must be >= 0 Mpc/h, got {radius}")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if radius == 0:
        return values
    modes = torch.fft.rfftn(values.to(torch.float64))
    k = rfft_k_magnitude(n, length, device=values.device, dtype=torch.float64)
    smoothed = torch.fft.irfftn(modes * window(k, radius, kernel), s=(n, n, n))
    return smoothed.to(values.dtype)


def smoothed_variance_on_grid(
    power: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    length: float,
    radius: float,
    kernel: str = "tophat",
    *,
    device: torch.device | str = "cpu",
) -> float:
    """σ²(R) = ∫ P(k) W²(kR) d³k/(2π)³ evaluated as the sum over the modes of an n^3 grid, k = 0 excluded.

    This is the expected variance of a field with power spectrum ``power`` (maps |k| in h/Mpc, float64
    tensor, to P in (Mpc/h)^3, e.g. ``cosmology.linear_power``) generated on that grid with the
    V/N² convention of ``cosmoseg.measure.power_spectrum`` and then smoothed by ``smooth_field``:
    σ² = (1/V) Σ_{k ≠ 0} P(|k|) W²(|k| R).
    """
    k = rfft_k_magnitude(n, length, device=device, dtype=torch.float64)
    weights = rfft_mode_weights(n, device=device, dtype=torch.float64)
    p = torch.as_tensor(power(k), dtype=torch.float64, device=k.device)
    w2 = window(k, radius, kernel) ** 2 if radius > 0 else torch.ones_like(k)
    terms = (weights * p * w2).flatten()
    terms[0] = 0.0  # k = 0
    return float(terms.sum()) / length**3


def histogram(values: torch.Tensor, edges: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """Counts of ``values`` (any shape) in the bins [e_i, e_{i+1}); the last bin also takes e_B (NumPy's rule).

    Returns counts (B,) float64 on the device of ``values``, and the numbers of values below e_0 and above e_B.
    """
    flat = values.flatten().to(torch.float64)
    edges = edges.to(device=flat.device, dtype=torch.float64)
    n_bins = edges.numel() - 1
    closed = edges.clone()
    closed[-1] = torch.nextafter(edges[-1], edges.new_tensor(math.inf))  # e_B itself goes into the last bin
    # right=True: v < e_0 -> 0, e_{i-1} <= v < e_i -> i, v > e_B -> B + 1; one pass, one bincount
    index = torch.bucketize(flat, closed, right=True, out_int32=flat.numel() < 2**31 - 1)
    counts = torch.bincount(index, minlength=n_bins + 2).to(torch.float64)
    return counts[1 : n_bins + 1], int(counts[0]), int(counts[n_bins + 1])


def make_edges(
    values: torch.Tensor,
    bins: int | Sequence[float] | torch.Tensor,
    value_range: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Bin edges (B+1,) float64: given explicitly (strictly increasing), or ``bins`` equal bins over
    ``value_range`` (default: the minimum and maximum of ``values``; a constant v gets [v - 0.5, v + 0.5])."""
    device = values.device
    if isinstance(bins, int) and not isinstance(bins, bool):
        if bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        if value_range is None:
            if values.numel() == 0:
                raise ValueError("no values to histogram (cannot choose a range)")
            lo, hi = float(values.min()), float(values.max())
        else:
            lo, hi = (float(v) for v in value_range)
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"range must be two finite numbers lo < hi, got {value_range}")
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        return torch.linspace(lo, hi, bins + 1, dtype=torch.float64, device=device)
    edges = torch.as_tensor(bins, dtype=torch.float64).to(device).flatten()
    if edges.numel() < 2 or not bool(torch.isfinite(edges).all()) or not bool((edges[1:] > edges[:-1]).all()):
        raise ValueError(f"bin edges must be >= 2 finite, strictly increasing numbers, got {edges.tolist()}")
    return edges


@dataclasses.dataclass(frozen=True)
class OnePointPDF:
    """A binned one-point PDF.

    edges: (B+1,) bin edges, in the units of the values (of log10 of the values when ``log``).
    pdf: (B,) probability density: counts / (n_in_range × width), so Σ pdf × width = 1.
    pdf_err: (B,) Poisson error of pdf, sqrt(counts) / (n_in_range × width).
    counts: (B,) voxels per bin (float64).
    n_in_range: voxels inside the edges; n_below / n_above: voxels histogrammed but outside the edges.
    n_nonpositive: voxels with value <= 0 (left out when ``log`` or ``positive_only``; counted always).
    n_voxels: all voxels of the (smoothed) field.
    mean, variance: of every voxel of the (smoothed) field (not only the histogrammed ones), float64.
    log: whether the histogram is of log10 of the positive values.
    """

    edges: torch.Tensor
    pdf: torch.Tensor
    pdf_err: torch.Tensor
    counts: torch.Tensor
    n_in_range: int
    n_below: int
    n_above: int
    n_nonpositive: int
    n_voxels: int
    mean: float
    variance: float
    log: bool

    @property
    def centers(self) -> torch.Tensor:
        """(B,) bin centres."""
        return 0.5 * (self.edges[1:] + self.edges[:-1])


def field_pdf(
    values: torch.Tensor,
    length: float,
    *,
    smoothing_radius: float = 0.0,
    kernel: str = "tophat",
    bins: int | Sequence[float] | torch.Tensor = 50,
    value_range: tuple[float, float] | None = None,
    log: bool = False,
    positive_only: bool = False,
) -> OnePointPDF:
    """The one-point PDF (counts in cells) of a periodic (n, n, n) field at a smoothing scale.

    values: (n, n, n) float, any units, on a box of side ``length`` Mpc/h.
    smoothing_radius: Mpc/h, 0 = no smoothing; ``kernel`` "tophat" (sphere of that radius) or "gaussian"
        (that standard deviation), applied periodically by FFT before histogramming.
    bins: number of equal bins over ``value_range`` (default: min to max of the histogrammed values), or
        explicit edges. With ``log`` the edges and range are in log10 of the values.
    log: histogram log10 of the positive voxels (dm2gal's PDF of log M*); voxels <= 0 are left out and
        reported in ``n_nonpositive``. positive_only: histogram only the positive voxels, not in log.
    """
    n = _check_cube(values)
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"values hold {int((~torch.isfinite(values)).sum())} non-finite voxel(s)")
    smoothed = smooth_field(values, length, smoothing_radius, kernel).to(torch.float64)
    positive = smoothed > 0
    n_nonpositive = int((~positive).sum())
    selected = smoothed[positive] if (log or positive_only) else smoothed.flatten()
    if log:
        if selected.numel() == 0:
            raise ValueError("log=True but the field has no positive voxel")
        selected = torch.log10(selected)
    elif positive_only and selected.numel() == 0:
        raise ValueError("positive_only=True but the field has no positive voxel")
    edges = make_edges(selected, bins, value_range)
    counts, below, above = histogram(selected, edges)
    n_in = int(selected.numel()) - below - above
    widths = edges[1:] - edges[:-1]
    norm = max(n_in, 1) * widths
    return OnePointPDF(
        edges=edges,
        pdf=counts / norm,
        pdf_err=counts.sqrt() / norm,
        counts=counts,
        n_in_range=n_in,
        n_below=below,
        n_above=above,
        n_nonpositive=n_nonpositive,
        n_voxels=n**3,
        mean=float(smoothed.mean()),
        variance=float(smoothed.var(unbiased=False)),
        log=log,
    )


def pdf_table(
    field: Field,
    *,
    channel: str = "",
    smoothing_radius: float = 0.0,
    kernel: str = "tophat",
    n_bins: int = 50,
    value_range: Sequence[float] = (),
    log: bool = False,
    positive_only: bool = False,
) -> Table:
    """The one-point PDF (:func:`field_pdf`) of one channel of a field ("" = the first) as a table: columns
    ``bin_low``, ``bin_high``, ``bin_mid``, ``counts``, ``pdf``, ``pdf_err`` in the channel's units (log10 of them
    with ``log``); ``value_range``: [lo, hi] of the binned values, empty = their minimum to maximum. ``meta``:
    channel, smoothing_radius, kernel, log, the voxel counts, mean and variance."""
    channel = channel or field.channels[0]
    result = field_pdf(
        field.channel(channel),
        field.box.length,
        smoothing_radius=smoothing_radius,
        kernel=kernel,
        bins=n_bins,
        value_range=(value_range[0], value_range[1]) if value_range else None,
        log=log,
        positive_only=positive_only,
    )
    unit = field.units[field.channels.index(channel)] if field.units else ""
    bin_unit = f"log10 {unit}".strip() if log else unit
    density_unit = f"1/({bin_unit})" if bin_unit else ""
    columns = {
        "bin_low": result.edges[:-1],
        "bin_high": result.edges[1:],
        "bin_mid": result.centers,
        "counts": result.counts,
        "pdf": result.pdf,
        "pdf_err": result.pdf_err,
    }
    units = {"bin_low": bin_unit, "bin_high": bin_unit, "bin_mid": bin_unit, "pdf": density_unit}
    units["pdf_err"] = density_unit
    meta = {
        "kind": "pdf",
        "channel": channel,
        "smoothing_radius": smoothing_radius,
        "kernel": kernel,
        "log": log,
        "n_voxels": result.n_voxels,
        "n_in_range": result.n_in_range,
        "n_below": result.n_below,
        "n_above": result.n_above,
        "n_nonpositive": result.n_nonpositive,
        "mean": result.mean,
        "variance": result.variance,
    }
    return Table(columns=columns, units=units, meta=meta)
