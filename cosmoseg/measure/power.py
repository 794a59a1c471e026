"""Binned power spectra of periodic fields and of catalogs: auto, cross, multipoles, r(k).

Convention (that of ``cosmoseg.sim.gaussian_random_field``): with V = L^3, N = n^3 and the unnormalised DFT
δ_k = Σ_x δ(x) e^{-ik·x}, P(k) = V / N^2 Re(δ_k δ'_k*), averaged over the modes of a shell in |k|.
Catalogs are painted onto a mesh (``cosmoseg.mesh.assign.paint_fourier``: NGP/CIC/TSC/PCS, window
compensation, interlacing) and turned into δ = ρ/ρ̄ - 1 first.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy.polynomial.legendre
import torch

from cosmoseg.data import Box, Catalog, Field, Table
from cosmoseg.mesh.assign import Scheme, paint_fourier, scheme_order
from cosmoseg.mesh.fourier import (
    fundamental_frequency,
    nyquist_frequency,
    rfft_k_magnitude,
    rfft_mode_weights,
)

__all__ = [
    "POWER_UNITS",
    "BinnedSpectrum",
    "CatalogModes",
    "CrossSpectrum",
    "bin_modes",
    "catalog_cross_spectrum",
    "catalog_density_modes",
    "catalog_power_spectrum",
    "catalog_power_table",
    "correlation_coefficient",
    "cross_spectrum",
    "field_cross_table",
    "field_power_table",
    "model_power_in_bins",
    "power_spectrum",
    "redshift_space_positions",
    "spectrum_table",
]

POWER_UNITS = "(Mpc/h)^3"
"""The unit of every ``power*`` column of a spectrum table."""


def spectrum_table(columns: Mapping[str, torch.Tensor], meta: Mapping[str, Any] | None = None) -> Table:
    """A table of spectrum columns in their units: every ``power*`` column in (Mpc/h)^3, ``k``, ``k_low`` and
    ``k_high`` in h/Mpc."""
    units = {name: POWER_UNITS for name in columns if name.startswith("power")}
    units |= {name: "h/Mpc" for name in ("k_low", "k_high") if name in columns}
    return Table(columns=dict(columns), units=units, meta=dict(meta or {}))


@dataclasses.dataclass(frozen=True)
class BinnedSpectrum:
    """A spectrum averaged in shells of |k|.

    k: (B,) mode-weighted mean |k| of each bin, h/Mpc.
    power: (B,) mean P(k) of the bin (the monopole), (Mpc/h)^3.
    n_modes: (B,) number of Fourier modes in the bin (both halves of the complex grid counted).
    k_low, k_high: (B,) edges of each bin, h/Mpc.
    multipoles: ℓ -> (B,) P_ℓ(k) = (2ℓ+1) <P(k, μ) L_ℓ(μ)> over the bin's modes, (Mpc/h)^3, for the
        ℓ asked for (empty otherwise); μ is the cosine of k with the line of sight.
    shot_noise: the Poisson shot noise of a catalog's auto spectrum, (Mpc/h)^3 (0 for fields and cross
        spectra); ``power`` has it subtracted when the catalog function was asked to.
    """

    k: torch.Tensor
    power: torch.Tensor
    n_modes: torch.Tensor
    k_low: torch.Tensor
    k_high: torch.Tensor
    multipoles: Mapping[int, torch.Tensor] = dataclasses.field(default_factory=dict)
    shot_noise: float = 0.0

    def to_table(
        self,
        *,
        multipoles: bool = False,
        edges: bool = True,
        extra: Mapping[str, torch.Tensor] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Table:
        """The spectrum as a table (:func:`spectrum_table`): columns ``k``, ``power`` (with ``multipoles``:
        ``power_<ℓ>`` for each multipole instead), ``n_modes``, ``k_low`` and ``k_high`` (with ``edges``), then the
        ``extra`` columns."""
        powers = {f"power_{ell}": p for ell, p in self.multipoles.items()} if multipoles else {"power": self.power}
        columns = {"k": self.k, **powers, "n_modes": self.n_modes}
        if edges:
            columns |= {"k_low": self.k_low, "k_high": self.k_high}
        kind = {"kind": "generic" if multipoles else "power_spectrum"}
        return spectrum_table(columns | dict(extra or {}), kind | dict(meta or {}))


def _check_ells(ells: Sequence[int], los_axis: int) -> tuple[int, ...]:
    ells = tuple(int(ell) for ell in ells)
    bad = [ell for ell in ells if ell < 0]
    if bad:
        raise ValueError(f"multipole orders must be >= 0, got {bad}")
    if los_axis not in (0, 1, 2):
        raise ValueError(f"los_axis must be 0, 1 or 2 (x, y, z), got {los_axis}")
    return ells


def bin_modes(
    power_cells: torch.Tensor,
    length: float,
    *,
    dk: float | None = None,
    k_min: float | None = None,
    k_max: float | None = None,
    ells: Sequence[int] = (),
    los_axis: int = 2,
    shot_noise: float = 0.0,
) -> BinnedSpectrum:
    """Average a per-mode power over shells of |k|, with optional Legendre multipoles.

    power_cells: (n, n, n//2+1) real, P of each mode of the rfftn grid of an n^3 mesh, (Mpc/h)^3.
    length: box side, Mpc/h. Bins: width ``dk`` (default k_f = 2π/L) from ``k_min`` (default k_f/2) up to
    and including ``k_max`` (default the Nyquist frequency πn/L; the last bin may end past it); a mode is in
    the bin with k_low <= |k| < k_high; k = 0 is in none; empty bins are dropped.
    ells: multipole orders ℓ to return in ``multipoles``: P_ℓ = (2ℓ+1) Σ P L_ℓ(μ) / Σ 1 over the modes of the
        full complex grid in the bin, μ = k_los/|k| along axis ``los_axis`` (0, 1, 2 = x, y, z). A stored
        half-grid cell stands for itself and its conjugate (opposite μ), so odd ℓ are exactly 0.
    shot_noise: only recorded in the result (subtract it from ``power_cells`` first if wanted).

    Method: the bins depend on |k| only, i.e. on the integer m² = |k|²/k_f², so P (and P μ^{2j} for the
    multipoles, from μ² = k_los²/|k|² exactly) is summed per m² with one ``bincount`` over the grid and the few
    thousand m² values are then gathered into bins. Sums in float64; no per-mode float k or μ arrays.
    """
    ells = _check_ells(ells, los_axis)
    n = power_cells.shape[0]
    if power_cells.shape != (n, n, n // 2 + 1):
        raise ValueError(f"power_cells must have the rfftn shape (n, n, n//2+1), got {tuple(power_cells.shape)}")
    device = power_cells.device
    kf = fundamental_frequency(length)
    dk = dk or kf
    k_min = kf / 2 if k_min is None else k_min
    k_max = nyquist_frequency(n, length) if k_max is None else k_max
    n_bins = max(math.ceil((k_max - k_min) / dk - 1e-9), 1)
    edges = k_min + dk * torch.arange(n_bins + 1, dtype=torch.float64, device=device)

    # Everything but the power depends on |k| only, i.e. on the integer m² = |k|²/k_f²: sum the power per m²
    # (one bincount over the grid), then gather the few thousand m² values into the bins.
    m2 = _integer_k2(n, device)
    n_m2 = 3 * (n // 2) ** 2 + 1
    k_of_m2 = kf * torch.arange(n_m2, dtype=torch.float64, device=device).sqrt()
    bin_of_m2 = torch.bucketize(k_of_m2, edges, right=True) - 1
    bin_of_m2 = torch.where((bin_of_m2 >= 0) & (bin_of_m2 < n_bins), bin_of_m2, n_bins)  # overflow bin, dropped

    def per_m2(values: torch.Tensor | None) -> torch.Tensor:
        """Σ over modes of the full complex grid, per m²: stored cells count twice except in the planes
        k_z = 0 and (n even) k_z = k_Ny, which hold their own conjugates."""
        out = 2.0 * torch.bincount(m2.flatten(), weights=None if values is None else values.flatten(), minlength=n_m2)
        planes = [0, n // 2] if n % 2 == 0 else [0]
        for plane in planes:
            out -= torch.bincount(
                m2[:, :, plane].flatten(),
                weights=None if values is None else values[:, :, plane].flatten(),
                minlength=n_m2,
            )
        return out.to(torch.float64)

    def to_bins(values_m2: torch.Tensor) -> torch.Tensor:
        return torch.bincount(bin_of_m2, weights=values_m2, minlength=n_bins + 1)[:n_bins]

    counts_m2 = per_m2(None)
    counts = to_bins(counts_m2)
    k_sum = to_bins(counts_m2 * k_of_m2)
    power64 = power_cells.to(torch.float64)
    p_sum = to_bins(per_m2(power64))
    keep = counts > 0
    multipoles: dict[int, torch.Tensor] = {}
    if ells:
        # Σ P L_ℓ(μ) per m² from the moments Σ P μ^{2j} = Σ P k_los^{2j} / (m²)^j (μ² = k_los²/|k|²: exact);
        # odd powers of μ cancel between each mode and its conjugate, so odd ℓ vanish.
        los_shape = [1, 1, 1]
        los_shape[los_axis] = -1
        k_los2 = _integer_axis(n, los_axis, device).to(torch.float64).square().view(los_shape)
        m2_values = torch.arange(n_m2, dtype=torch.float64, device=device).clamp_min(1.0)
        moments = [per_m2(power64)]
        weighted = power64
        for j in range(1, max(ells) // 2 + 1):
            weighted = weighted * k_los2
            moments.append(per_m2(weighted) / m2_values**j)
        for ell in ells:
            if ell == 0:
                sums = p_sum
            elif ell % 2:
                sums = torch.zeros_like(p_sum)
            else:
                coefficients = numpy.polynomial.legendre.leg2poly([0] * ell + [1])  # in powers of μ
                sums = to_bins(sum(float(coefficients[2 * j]) * moments[j] for j in range(ell // 2 + 1)))
            multipoles[ell] = (2 * ell + 1) * sums[keep] / counts[keep]
    return BinnedSpectrum(
        k=k_sum[keep] / counts[keep],
        power=p_sum[keep] / counts[keep],
        n_modes=counts[keep],
        k_low=edges[:-1][keep],
        k_high=edges[1:][keep],
        multipoles=multipoles,
        shot_noise=float(shot_noise),
    )


def _integer_axis(n: int, axis: int, device: torch.device) -> torch.Tensor:
    """The integer wavenumbers k_axis/k_f of the rfftn layout: fftfreq for axes 0, 1, 0..n//2 for axis 2."""
    if axis == 2:
        return torch.arange(n // 2 + 1, device=device)
    return torch.fft.fftfreq(n, d=1.0 / n, device=device).round().long()


def _integer_k2(n: int, device: torch.device) -> torch.Tensor:
    """|k|²/k_f² = i² + j² + l² as int32 on the (n, n, n//2+1) rfftn grid."""
    full = torch.fft.fftfreq(n, d=1.0 / n, device=device).round().to(torch.int32).square()
    half = torch.arange(n // 2 + 1, device=device, dtype=torch.int32).square()
    return full.view(n, 1, 1) + full.view(1, n, 1) + half.view(1, 1, -1)


def _check_field(field: torch.Tensor, other: torch.Tensor | None) -> int:
    n = field.shape[-1]
    if field.ndim != 3 or field.shape[0] != n or field.shape[1] != n:
        raise ValueError(f"field must be a cubic (n, n, n) grid, got {tuple(field.shape)}")
    if other is not None and other.shape != field.shape:
        raise ValueError(f"other has shape {tuple(other.shape)}, field has {tuple(field.shape)}")
    return n


def _cross_cells(a: torch.Tensor, b: torch.Tensor, n: int, length: float) -> torch.Tensor:
    """V/N² Re(a b*) per mode of the rfftn grid, float64."""
    if a is b:
        return (a.real.square() + a.imag.square()).mul_(length**3 / n**6)
    return (a.real * b.real + a.imag * b.imag).mul_(length**3 / n**6)


def power_spectrum(
    field: torch.Tensor,
    length: float,
    *,
    other: torch.Tensor | None = None,
    dk: float | None = None,
    k_min: float | None = None,
    k_max: float | None = None,
    ells: Sequence[int] = (),
    los_axis: int = 2,
) -> BinnedSpectrum:
    """Auto (or cross, with ``other``) power spectrum of real (n, n, n) fields in a box of side ``length``.

    P(k) = V / N^2 Re(δ_k δ'_k*) averaged over the modes in each shell (same convention as
    ``cosmoseg.sim.gaussian_random_field``). Bins: width ``dk`` (default k_f), from ``k_min`` (default k_f/2)
    up to and including ``k_max`` (default the Nyquist frequency; the last bin may end past it). Empty bins
    are dropped. ``ells``/``los_axis``: Legendre multipoles along a line of sight (see ``bin_modes``).
    Sums are done in float64.
    """
    n = _check_field(field, other)
    delta = torch.fft.rfftn(field.to(torch.float64))
    delta_other = delta if other is None else torch.fft.rfftn(other.to(torch.float64))
    return bin_modes(
        _cross_cells(delta, delta_other, n, length),
        length,
        dk=dk,
        k_min=k_min,
        k_max=k_max,
        ells=ells,
        los_axis=los_axis,
    )


def model_power_in_bins(
    power: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    length: float,
    k_low: torch.Tensor,
    k_high: torch.Tensor,
) -> torch.Tensor:
    """A model P(k) averaged over exactly the grid modes that ``power_spectrum`` puts in each bin.

    power: maps |k| (h/Mpc, float64 tensor) to P, (Mpc/h)^3, e.g. ``cosmology.linear_power``.
    k_low, k_high: (B,) bin edges as returned in a BinnedSpectrum (contiguous bins of one width).
    Comparing a measurement with this, rather than with P at the bin's mean k, removes the binning bias.
    """
    k = rfft_k_magnitude(n, length, device=k_low.device, dtype=torch.float64).flatten()
    weights = rfft_mode_weights(n, device=k_low.device, dtype=torch.float64).expand(n, n, -1).flatten()
    edges = torch.cat([k_low, k_high[-1:]]).to(torch.float64)
    index = torch.bucketize(k, edges, right=True) - 1
    n_bins = len(k_low)
    index = torch.where((index >= 0) & (index < n_bins), index, n_bins)
    counts = torch.bincount(index, weights=weights, minlength=n_bins + 1)[:n_bins]
    sums = torch.bincount(index, weights=weights * torch.as_tensor(power(k)), minlength=n_bins + 1)[:n_bins]
    return sums / counts


# ------------------------------------------------------------------------------------------------------
# cross-correlation coefficient


@dataclasses.dataclass(frozen=True)
class CrossSpectrum:
    """Cross and auto spectra of two fields in the same bins, and their correlation coefficient.

    k, n_modes, k_low, k_high: as in ``BinnedSpectrum``.
    power: (B,) cross spectrum P_ab, (Mpc/h)^3. power_a, power_b: (B,) auto spectra, (Mpc/h)^3 (for
        catalogs, shot noise subtracted if asked). shot_noise_a, shot_noise_b: the catalogs' shot noise.
    r: (B,) P_ab / sqrt(P_aa P_bb) with the autos *before* any shot-noise subtraction, so |r| <= 1 in
        every bin (Cauchy–Schwarz); 0 where an auto spectrum is 0.
    multipoles: ℓ -> (B,) multipoles of the cross spectrum P_ab, for the ℓ asked for (see ``bin_modes``).
    """

    k: torch.Tensor
    power: torch.Tensor
    power_a: torch.Tensor
    power_b: torch.Tensor
    r: torch.Tensor
    n_modes: torch.Tensor
    k_low: torch.Tensor
    k_high: torch.Tensor
    shot_noise_a: float = 0.0
    shot_noise_b: float = 0.0
    multipoles: Mapping[int, torch.Tensor] = dataclasses.field(default_factory=dict)

    def to_table(self, *, multipoles: bool = False, meta: Mapping[str, Any] | None = None) -> Table:
        """The spectra as a table (:func:`spectrum_table`): columns ``k``, ``power`` (the cross spectrum; with
        ``multipoles``: ``power_<ℓ>`` for each of its multipoles instead), ``power_a``, ``power_b``, ``r``,
        ``n_modes``, ``k_low``, ``k_high``."""
        powers = {f"power_{ell}": p for ell, p in self.multipoles.items()} if multipoles else {"power": self.power}
        columns = {"k": self.k, **powers, "power_a": self.power_a, "power_b": self.power_b, "r": self.r}
        columns |= {"n_modes": self.n_modes, "k_low": self.k_low, "k_high": self.k_high}
        return spectrum_table(columns, {"kind": "generic" if multipoles else "power_spectrum"} | dict(meta or {}))


def correlation_coefficient(power_ab: torch.Tensor, power_aa: torch.Tensor, power_bb: torch.Tensor) -> torch.Tensor:
    """r = P_ab / sqrt(P_aa P_bb) elementwise; 0 where P_aa P_bb <= 0."""
    denominator = power_aa * power_bb
    positive = denominator > 0
    return torch.where(positive, power_ab / denominator.clamp_min(1e-300).sqrt(), torch.zeros_like(power_ab))


def _cross_from_modes(
    a: torch.Tensor,
    b: torch.Tensor,
    length: float,
    *,
    shot_noise_a: float,
    shot_noise_b: float,
    subtract_shot_noise: bool,
    dk: float | None,
    k_min: float | None,
    k_max: float | None,
    ells: Sequence[int] = (),
    los_axis: int = 2,
) -> CrossSpectrum:
    n = a.shape[0]
    binning = {"dk": dk, "k_min": k_min, "k_max": k_max}
    p_ab = bin_modes(_cross_cells(a, b, n, length), length, ells=ells, los_axis=los_axis, **binning)
    p_aa = bin_modes(_cross_cells(a, a, n, length), length, **binning)
    p_bb = bin_modes(_cross_cells(b, b, n, length), length, **binning)
    r = correlation_coefficient(p_ab.power, p_aa.power, p_bb.power)
    sub_a = shot_noise_a if subtract_shot_noise else 0.0
    sub_b = shot_noise_b if subtract_shot_noise else 0.0
    return CrossSpectrum(
        k=p_ab.k,
        power=p_ab.power,
        power_a=p_aa.power - sub_a,
        power_b=p_bb.power - sub_b,
        r=r,
        n_modes=p_ab.n_modes,
        k_low=p_ab.k_low,
        k_high=p_ab.k_high,
        shot_noise_a=shot_noise_a,
        shot_noise_b=shot_noise_b,
        multipoles=p_ab.multipoles,
    )


def cross_spectrum(
    field: torch.Tensor,
    other: torch.Tensor,
    length: float,
    *,
    dk: float | None = None,
    k_min: float | None = None,
    k_max: float | None = None,
) -> CrossSpectrum:
    """P_ab, P_aa, P_bb and r(k) = P_ab / sqrt(P_aa P_bb) of two real (n, n, n) fields of one box.

    Binning as in ``power_spectrum``; two FFTs, float64. r = 1 for a field with itself, -1 with its negative.
    """
    _check_field(field, other)
    a = torch.fft.rfftn(field.to(torch.float64))
    b = torch.fft.rfftn(other.to(torch.float64))
    return _cross_from_modes(
        a, b, length, shot_noise_a=0.0, shot_noise_b=0.0, subtract_shot_noise=False, dk=dk, k_min=k_min, k_max=k_max
    )


# ------------------------------------------------------------------------------------------------------
# catalogs


@dataclasses.dataclass(frozen=True)
class CatalogModes:
    """The density contrast of a painted catalog in Fourier space.

    delta_k: (n, n, n//2+1) complex128, δ_k = Σ_x δ(x) e^{-ik·x} of δ = ρ/ρ̄ - 1 on the mesh (rfftn layout and
        FFT convention of ``torch.fft.rfftn``), window-compensated and interlaced as asked; δ_0 = 0.
    shot_noise: V Σw² / (Σw)², (Mpc/h)^3 (= 1/n̄ = V/N for unit weights).
    n_objects: N. total_weight: Σw.
    """

    delta_k: torch.Tensor
    shot_noise: float
    n_objects: int
    total_weight: float


def catalog_density_modes(
    pos: torch.Tensor,
    length: float,
    *,
    n_mesh: int,
    scheme: Scheme = "tsc",
    interlace: bool = True,
    compensate: bool = True,
    weights: torch.Tensor | None = None,
) -> CatalogModes:
    """Paint a catalog (``paint_fourier``) and normalise it to the density contrast's Fourier modes.

    pos: (N, 3) positions, Mpc/h, any device (wrapped periodically). weights: (N,) non-negative weights
    (e.g. masses), default 1 each. n_mesh: mesh cells per side. scheme/interlace/compensate: see
    ``cosmoseg.mesh.assign.paint_fourier``.
    """
    scheme_order(scheme)
    if n_mesh < 2:
        raise ValueError(f"n_mesh must be >= 2, got {n_mesh}")
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"pos must have shape (N, 3), got {tuple(pos.shape)}")
    if pos.shape[0] == 0:
        raise ValueError("the catalog is empty: a power spectrum needs at least one object")
    if weights is not None:
        if weights.shape != pos.shape[:1]:
            raise ValueError(f"weights must have shape ({pos.shape[0]},), got {tuple(weights.shape)}")
        w64 = weights.to(torch.float64)
        if not bool(torch.isfinite(w64).all()) or bool((w64 < 0).any()):
            raise ValueError("weights must be finite and >= 0")
        total, total_sq = float(w64.sum()), float(w64.square().sum())
    else:
        total = total_sq = float(pos.shape[0])
    if not total > 0:
        raise ValueError("the weights sum to 0: there is no density to measure")
    modes = paint_fourier(
        pos, n_mesh, length, scheme=scheme, weights=weights, interlace=interlace, compensate=compensate
    )
    modes.mul_(n_mesh**3 / total)  # ρ / ρ̄ with ρ̄ = Σw / N per cell
    modes[0, 0, 0] = 0.0
    return CatalogModes(
        delta_k=modes, shot_noise=length**3 * total_sq / total**2, n_objects=int(pos.shape[0]), total_weight=total
    )


def catalog_power_spectrum(
    pos: torch.Tensor,
    length: float,
    *,
    n_mesh: int,
    scheme: Scheme = "tsc",
    interlace: bool = True,
    compensate: bool = True,
    weights: torch.Tensor | None = None,
    other: torch.Tensor | None = None,
    other_weights: torch.Tensor | None = None,
    subtract_shot_noise: bool = True,
    dk: float | None = None,
    k_min: float | None = None,
    k_max: float | None = None,
    ells: Sequence[int] = (),
    los_axis: int = 2,
) -> BinnedSpectrum:
    """The power spectrum of a catalog (or the cross spectrum of two) painted on an n_mesh^3 mesh.

    pos: (N, 3) positions, Mpc/h. weights: (N,) non-negative weights (default 1). other, other_weights:
    a second catalog (M, 3) and its weights for the cross spectrum. n_mesh, scheme, interlace, compensate:
    see ``catalog_density_modes`` (defaults: TSC, interlaced, compensated: flat to 1% up to 0.9 k_Ny).
    subtract_shot_noise: subtract V Σw²/(Σw)² from the auto spectrum, mode by mode (so from P_0 and, for
    ℓ > 0, the grid's tiny (2ℓ+1)<L_ℓ> residual). Cross spectra of two catalogs get no subtraction (their
    objects are taken to be distinct). dk, k_min, k_max, ells, los_axis: see ``bin_modes``.

    Returns a BinnedSpectrum (``shot_noise`` = the catalog's; 0 for a cross spectrum).
    """
    mesh = {"n_mesh": n_mesh, "scheme": scheme, "interlace": interlace, "compensate": compensate}
    a = catalog_density_modes(pos, length, weights=weights, **mesh)
    if other is None:
        cells = _cross_cells(a.delta_k, a.delta_k, n_mesh, length)
        noise = a.shot_noise
        if subtract_shot_noise:
            cells.sub_(noise)
    else:
        b = catalog_density_modes(other, length, weights=other_weights, **mesh)
        cells = _cross_cells(a.delta_k, b.delta_k, n_mesh, length)
        noise = 0.0
    return bin_modes(cells, length, dk=dk, k_min=k_min, k_max=k_max, ells=ells, los_axis=los_axis, shot_noise=noise)


def catalog_cross_spectrum(
    pos: torch.Tensor,
    other: torch.Tensor,
    length: float,
    *,
    n_mesh: int,
    scheme: Scheme = "tsc",
    interlace: bool = True,
    compensate: bool = True,
    weights: torch.Tensor | None = None,
    other_weights: torch.Tensor | None = None,
    subtract_shot_noise: bool = True,
    dk: float | None = None,
    k_min: float | None = None,
    k_max: float | None = None,
    ells: Sequence[int] = (),
    los_axis: int = 2,
) -> CrossSpectrum:
    """Cross spectrum, both auto spectra and r(k) of two catalogs painted on one mesh (two paintings).

    power_a, power_b have their shot noise subtracted when ``subtract_shot_noise``; r uses the autos
    before subtraction (|r| <= 1); ``ells`` gives multipoles of the cross spectrum. Other arguments as in
    ``catalog_power_spectrum``.
    """
    mesh = {"n_mesh": n_mesh, "scheme": scheme, "interlace": interlace, "compensate": compensate}
    a = catalog_density_modes(pos, length, weights=weights, **mesh)
    b = catalog_density_modes(other, length, weights=other_weights, **mesh)
    return _cross_from_modes(
        a.delta_k,
        b.delta_k,
        length,
        shot_noise_a=a.shot_noise,
        shot_noise_b=b.shot_noise,
        subtract_shot_noise=subtract_shot_noise,
        dk=dk,
        k_min=k_min,
        k_max=k_max,
        ells=ells,
        los_axis=los_axis,
    )


def redshift_space_positions(pos: torch.Tensor, vel: torch.Tensor, box: Box, axis: int) -> torch.Tensor:
    """Positions in redshift space in the distant-observer approximation, line of sight along ``axis``.

    pos: (N, 3) comoving positions, Mpc/h. vel: (N, 3) peculiar velocities, km/s. box: gives L, z and the
    cosmology. x_s = x + v_axis (1+z) / H(z) along ``axis`` with H(z) = 100 E(z) h km/s/Mpc, so the shift is
    in Mpc/h; wrapped into [0, L). Returns a new (N, 3) tensor of ``pos``' dtype on its device.
    """
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2 (x, y, z), got {axis}")
    if pos.ndim != 2 or pos.shape[1] != 3 or vel.shape != pos.shape:
        raise ValueError(f"pos and vel must both have shape (N, 3), got {tuple(pos.shape)} and {tuple(vel.shape)}")
    a = box.scale_factor
    factor = 1.0 / (a * 100.0 * float(box.cosmology.efunc(a)))  # Mpc/h per km/s
    out = pos.clone()
    out[:, axis] = torch.remainder(pos[:, axis] + vel[:, axis].to(pos.dtype) * factor, box.length)
    # float rounding can land exactly on L
    out[:, axis] = torch.where(out[:, axis] >= box.length, out[:, axis] - box.length, out[:, axis])
    return out


# ---- spectra of data-model objects, as tables ----------------------------------------------------------------
# Binning arguments as the measure.* stages take them: dk, k_max = 0 (or None) for the fundamental / Nyquist frequency.


def field_power_table(
    field: Field, *, channel: str = "", dk: float | None = None, k_max: float | None = None, with_linear: bool = True
) -> Table:
    """The binned P(k) of one channel of a field ("" = the first) as a table: :meth:`BinnedSpectrum.to_table`, and
    with ``with_linear`` the column ``power_linear``, D(z)^2 P_lin at each bin's mean k from the field's cosmology.
    ``meta``: channel, box, n, redshift."""
    channel = channel or field.channels[0]
    spectrum = power_spectrum(field.channel(channel), field.box.length, dk=dk or None, k_max=k_max or None)
    extra = {"power_linear": field.box.cosmology.linear_power(spectrum.k, z=field.box.redshift)} if with_linear else {}
    meta = {"channel": channel, "box": field.box.length, "n": field.n, "redshift": field.box.redshift}
    return spectrum.to_table(extra=extra, meta=meta)


def field_cross_table(
    field: Field,
    other: Field,
    *,
    channel: str = "",
    other_channel: str = "",
    dk: float | None = None,
    k_max: float | None = None,
    device: torch.device | str | None = None,
) -> Table:
    """The cross spectrum, both auto spectra and r(k) of a channel of each of two fields on one grid, as a table
    (:meth:`CrossSpectrum.to_table`); channels "" = the first. ``meta``: channel, other_channel, box, n, redshift.
    ValueError for fields on different grids."""
    if field.n != other.n or abs(field.box.length - other.box.length) > 1e-9 * field.box.length:
        raise ValueError(
            f"the fields must share one grid: {field.n}^3 in {field.box.length} Mpc/h and "
            f"{other.n}^3 in {other.box.length} Mpc/h"
        )
    channel = channel or field.channels[0]
    other_channel = other_channel or other.channels[0]
    a, b = field.channel(channel), other.channel(other_channel)
    if device is not None:
        a, b = a.to(device), b.to(device)
    spectrum = cross_spectrum(a, b, field.box.length, dk=dk or None, k_max=k_max or None)
    meta = {
        "channel": channel,
        "other_channel": other_channel,
        "box": field.box.length,
        "n": field.n,
        "redshift": field.box.redshift,
    }
    return spectrum.to_table(meta=meta)


def _catalog_weights(catalog: Catalog, column: str, what: str) -> torch.Tensor | None:
    """The (N,) weights of a catalog from a column name ("" = None; ``log_x`` -> 10**log_x)."""
    if not column:
        return None
    if column not in catalog:
        raise KeyError(f"{what} has no column {column!r} to weight by; it has {sorted(catalog.columns)}")
    values = catalog[column]
    if values.ndim != 1:
        raise ValueError(f"weight column {column!r} of {what} must be one number per object, got {tuple(values.shape)}")
    values = values.to(torch.float64)
    return torch.pow(10.0, values) if column.startswith("log_") else values


def _catalog_positions(catalog: Catalog, rsd_axis: int, device: torch.device, what: str) -> torch.Tensor:
    pos = catalog["pos"].to(device)
    if rsd_axis < 0:
        return pos
    if "vel" not in catalog:
        raise KeyError(f"rsd_axis = {rsd_axis} needs peculiar velocities, but {what} has no column 'vel'")
    return redshift_space_positions(pos, catalog["vel"].to(device), catalog.box, rsd_axis)


def catalog_power_table(
    catalog: Catalog,
    other: Catalog | None = None,
    *,
    n_mesh: int = 256,
    scheme: Scheme = "tsc",
    interlace: bool = True,
    weight_column: str = "",
    other_weight_column: str = "",
    rsd_axis: int = -1,
    multipoles: bool = False,
    subtract_shot_noise: bool = True,
    dk: float | None = None,
    k_max: float | None = None,
    device: torch.device | str | None = None,
) -> Table:
    """The power spectrum of a catalog (:func:`catalog_power_spectrum`), or with ``other`` the cross spectrum,
    both autos and r(k) of two (:func:`catalog_cross_spectrum`), as a table.

    weight_column, other_weight_column: the column weighting each object ("" = unit weights; a ``log_`` column
    is used as 10**value). rsd_axis: line of sight of redshift space (0, 1, 2; -1 = real space; needs ``vel``).
    multipoles: columns power_0, power_2, power_4 instead of power (line of sight rsd_axis, or z in real space).
    ``meta``: the settings, the number of objects and the shot noise of each catalog.
    """
    length = catalog.box.length
    if other is not None and abs(other.box.length - length) > 1e-9 * length:
        raise ValueError(f"the catalogs are in boxes of different sizes: {length} and {other.box.length} Mpc/h")
    device = catalog["pos"].device if device is None else torch.device(device)
    pos = _catalog_positions(catalog, rsd_axis, device, "catalog")
    weights = _catalog_weights(catalog, weight_column, "catalog")
    los = rsd_axis if rsd_axis >= 0 else 2
    options: dict[str, Any] = {
        "weights": None if weights is None else weights.to(device),
        "subtract_shot_noise": subtract_shot_noise,
        "ells": (0, 2, 4) if multipoles else (),
        "los_axis": los,
        "n_mesh": n_mesh,
        "scheme": scheme,
        "interlace": interlace,
        "dk": dk or None,
        "k_max": k_max or None,
    }
    meta: dict[str, Any] = {
        "box": length,
        "redshift": catalog.box.redshift,
        "n_mesh": n_mesh,
        "scheme": scheme,
        "interlace": interlace,
        "rsd_axis": rsd_axis,
        "los_axis": los,
        "subtract_shot_noise": subtract_shot_noise,
        "weight_column": weight_column,
        "n_objects": len(catalog),
    }
    if other is None:
        spectrum = catalog_power_spectrum(pos, length, **options)
        return spectrum.to_table(multipoles=multipoles, meta=meta | {"shot_noise": spectrum.shot_noise})
    other_weights = _catalog_weights(other, other_weight_column, "other")
    cross = catalog_cross_spectrum(
        pos,
        _catalog_positions(other, rsd_axis, device, "other"),
        length,
        other_weights=None if other_weights is None else other_weights.to(device),
        **options,
    )
    meta |= {
        "shot_noise": cross.shot_noise_a,
        "shot_noise_other": cross.shot_noise_b,
        "other_weight_column": other_weight_column,
        "n_objects_other": len(other),
    }
    return cross.to_table(multipoles=multipoles, meta=meta)
