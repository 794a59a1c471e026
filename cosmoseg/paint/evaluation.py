"""Judging a painted stellar-mass field against the truth: P(k), B(k1, k2, θ), the PDF of log M*, the total
stellar mass and, for methods that place galaxies, the precision and recall of the occupied voxels.

All statistics are of the full periodic box (no sub-cubes): the stellar-mass fields are (n, n, n) tensors of M* per
voxel in Msun/h on a box of side ``length`` Mpc/h; spectra are those of the density contrast δ = M / <M> − 1
(``cosmoseg.measure.power`` / ``cosmoseg.measure.bispectrum``), so a uniform rescaling of the masses leaves them
unchanged and the total mass is reported on its own.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import torch

from cosmoseg.data import Table
from cosmoseg.errors import ValidationError
from cosmoseg.measure.bispectrum import bispectrum
from cosmoseg.measure.onepoint import field_pdf
from cosmoseg.measure.power import power_spectrum
from cosmoseg.mesh.fourier import fundamental_frequency, nyquist_frequency

__all__ = [
    "PaintScores",
    "bispectrum_deviations",
    "bispectrum_table",
    "density_contrast",
    "occupancy_scores",
    "pdf_distance",
    "pdf_table",
    "power_ratio_score",
    "power_table",
    "score_painting",
    "stellar_power_table",
]

# B(k1, k2, θ) triangles, as fractions of the Nyquist frequency: the paper's (3, 4) h/Mpc at its 37 kpc/h voxels is
# (0.035, 0.047) k_Ny; on the coarse grids of a CPU-trained model those hold few modes, so two configurations at
# larger fractions (documented in docs/paint.md) are the defaults.
DEFAULT_TRIANGLES: tuple[tuple[float, float], ...] = ((0.15, 0.20), (0.25, 0.375))
DEFAULT_THETAS = tuple(math.pi * i / 9 for i in range(10))


def _check_pair(pred: torch.Tensor, truth: torch.Tensor, where: str) -> None:
    if pred.shape != truth.shape or pred.ndim != 3:
        raise ValidationError(
            f"the predicted field {tuple(pred.shape)} and the truth {tuple(truth.shape)} must share one (n, n, n) grid",
            context=where,
        )
    for name, values in (("predicted", pred), ("true", truth)):
        if not bool(torch.isfinite(values).all()):
            raise ValidationError(f"the {name} stellar-mass field has non-finite voxels", context=where)
    if float(truth.sum()) <= 0:
        raise ValidationError("the true stellar-mass field is empty (no positive voxel)", context=where)


def density_contrast(mstar: torch.Tensor) -> torch.Tensor:
    """δ = M / <M> − 1 of an (n, n, n) stellar-mass field (float64); all zeros for an empty field (P = 0, so a
    method that paints nothing scores an infinite log-ratio rather than failing)."""
    mass = mstar.to(torch.float64)
    mean = mass.mean()
    return mass / mean - 1.0 if float(mean) > 0 else torch.zeros_like(mass)


def power_ratio_score(
    pred: torch.Tensor, truth: torch.Tensor, length: float, *, k_max: float | None = None
) -> tuple[float, torch.Tensor, torch.Tensor]:
    """The checkpoint-selection number: mean |ln(P_pred / P_truth)| over the bins with k ≤ ``k_max``.

    ``k_max`` defaults to a quarter of the Nyquist frequency (the issue's range). Returns (score, k (B,), ratio (B,)).
    """
    _check_pair(pred, truth, "power_ratio_score")
    n = truth.shape[0]
    k_max = nyquist_frequency(n, length) / 4 if k_max is None else float(k_max)
    p_pred = power_spectrum(density_contrast(pred), length, k_max=k_max)
    p_true = power_spectrum(density_contrast(truth), length, k_max=k_max)
    keep = p_pred.k <= k_max
    ratio = p_pred.power[keep] / p_true.power[keep]
    return float(ratio.log().abs().mean()), p_pred.k[keep], ratio


def stellar_power_table(mstar: torch.Tensor | None, length: float) -> Table:
    """P(k) of the density contrast of one (n, n, n) stellar-mass field (Msun/h): ``k`` (h/Mpc), ``n_modes``,
    ``power`` ((Mpc/h)³); a table without rows for ``None`` (no field)."""
    if mstar is None:
        empty = torch.zeros(0, dtype=torch.float64)
        return Table(columns={"k": empty, "n_modes": empty, "power": empty})
    spectrum = power_spectrum(density_contrast(mstar), length)
    columns = {"k": spectrum.k, "n_modes": spectrum.n_modes.to(torch.float64), "power": spectrum.power}
    return Table(columns=columns, meta={"quantity": "stellar-mass density contrast"})


def power_table(truth: torch.Tensor, methods: Mapping[str, torch.Tensor], length: float) -> Table:
    """P(k) of the truth and of each method up to the Nyquist frequency, and each method's ratio to the truth.

    Columns: ``k`` (h/Mpc), ``n_modes``, ``power_truth`` and ``power_<method>`` ((Mpc/h)^3), ``ratio_<method>``.
    """
    ref = power_spectrum(density_contrast(truth), length)
    columns: dict[str, torch.Tensor] = {"k": ref.k, "n_modes": ref.n_modes.to(torch.float64), "power_truth": ref.power}
    for name, field in methods.items():
        _check_pair(field, truth, f"power_table ({name})")
        spectrum = power_spectrum(density_contrast(field), length)
        columns[f"power_{name}"] = spectrum.power
        columns[f"ratio_{name}"] = spectrum.power / ref.power
    meta = {"k_nyquist": nyquist_frequency(truth.shape[0], length), "methods": ",".join(methods)}
    units = {"k": "h/Mpc", "n_modes": "", **{name: "(Mpc/h)^3" for name in columns if name.startswith("power_")}}
    units |= {name: "" for name in columns if name.startswith("ratio_")}
    return Table(columns=columns, units=units, meta=meta)


def bispectrum_table(
    truth: torch.Tensor,
    methods: Mapping[str, torch.Tensor],
    length: float,
    *,
    triangles: Sequence[tuple[float, float]] = DEFAULT_TRIANGLES,
    thetas: Sequence[float] = DEFAULT_THETAS,
) -> Table:
    """B(k1, k2, θ) of the truth and each method for ``triangles`` (k1, k2 as fractions of the Nyquist frequency).

    Columns: ``k1``, ``k2`` (h/Mpc), ``theta`` (rad), ``bispectrum_truth`` and ``bispectrum_<method>``
    ((Mpc/h)^6), ``ratio_<method>``. The shells are 2 k_f wide.
    """
    n = truth.shape[0]
    k_ny, kf = nyquist_frequency(n, length), fundamental_frequency(length)
    k1 = [a * k_ny for a, _ in triangles]
    k2 = [b * k_ny for _, b in triangles]
    spec = {"k1": k1, "k2": k2, "thetas": list(thetas), "dk": 2 * kf}
    ref = bispectrum(density_contrast(truth), length, **spec)
    columns: dict[str, torch.Tensor] = {
        "k1": ref.k1,
        "k2": ref.k2,
        "theta": ref.theta,
        "bispectrum_truth": ref.bispectrum,
    }
    for name, field in methods.items():
        _check_pair(field, truth, f"bispectrum_table ({name})")
        values = bispectrum(density_contrast(field), length, **spec).bispectrum
        columns[f"bispectrum_{name}"] = values
        columns[f"ratio_{name}"] = values / ref.bispectrum
    units = {"k1": "h/Mpc", "k2": "h/Mpc", "theta": "rad"}
    units |= {name: "(Mpc/h)^6" for name in columns if name.startswith("bispectrum_")}
    units |= {name: "" for name in columns if name.startswith("ratio_")}
    return Table(columns=columns, units=units, meta={"methods": ",".join(methods), "dk": 2 * kf, "dk_unit": "h/Mpc"})


def pdf_table(
    truth: torch.Tensor,
    methods: Mapping[str, torch.Tensor],
    length: float,
    *,
    log_min: float = 8.0,
    log_max: float = 12.0,
    bins: int = 32,
) -> Table:
    """Counts of voxels per bin of log10 M* in [log_min, log_max] (the paper's PDF above 10^8 Msun/h).

    Columns: ``log_mstar`` (bin centres), ``count_truth``, ``count_<method>``.
    """
    edges = torch.linspace(log_min, log_max, bins + 1, dtype=torch.float64)
    columns: dict[str, torch.Tensor] = {"log_mstar": 0.5 * (edges[1:] + edges[:-1])}
    for name, field in {"truth": truth, **methods}.items():
        above = torch.where(field >= 10.0**log_min, field, torch.zeros_like(field))
        if not bool((above > 0).any()):  # a method that painted nothing above log_min: no voxel in any bin
            columns[f"count_{name}"] = torch.zeros(bins, dtype=torch.float64)
            continue
        pdf = field_pdf(above.to(torch.float64), length, bins=edges, log=True)
        columns[f"count_{name}"] = pdf.counts.to(torch.float64)
    units = {"log_mstar": "log10 Msun/h", **{name: "voxels" for name in columns if name.startswith("count_")}}
    meta = {"methods": ",".join(methods), "log_min": log_min, "log_max": log_max}
    return Table(columns=columns, units=units, meta=meta)


def bispectrum_deviations(table: Table, method: str) -> list[float]:
    """Per triangle (k1, k2) of a :func:`bispectrum_table`, in table order: mean over θ of |B/B_truth − 1|."""
    k1, k2, ratio = table["k1"], table["k2"], table[f"ratio_{method}"]
    out = []
    for a, b in dict.fromkeys(zip(k1.tolist(), k2.tolist(), strict=True)):
        rows = (k1 == a) & (k2 == b)
        out.append(float((ratio[rows] - 1).abs().mean()))
    return out


def pdf_distance(table: Table, method: str) -> float:
    """Kolmogorov–Smirnov distance of a method's binned PDF of log M* (:func:`pdf_table`) from the truth's: the
    largest difference of the two normalised cumulative counts (1 when the method has no voxel in range)."""
    cdfs = []
    for name in ("truth", method):
        counts = table[f"count_{name}"].to(torch.float64)
        if float(counts.sum()) <= 0:
            return 1.0
        cdfs.append(counts.cumsum(0) / counts.sum())
    return float((cdfs[0] - cdfs[1]).abs().max())


def occupancy_scores(pred_occupied: torch.Tensor, true_occupied: torch.Tensor) -> tuple[float, float]:
    """(precision, recall) of the predicted occupied voxels against the true ones (bool (n, n, n) each)."""
    if pred_occupied.shape != true_occupied.shape:
        raise ValidationError(
            f"occupancy grids differ: {tuple(pred_occupied.shape)} vs {tuple(true_occupied.shape)}",
            context="occupancy_scores",
        )
    hits = float((pred_occupied & true_occupied).sum())
    n_pred, n_true = float(pred_occupied.sum()), float(true_occupied.sum())
    return (hits / n_pred if n_pred else 0.0), (hits / n_true if n_true else 0.0)


@dataclasses.dataclass(frozen=True)
class PaintScores:
    """Summary numbers of one method on one box.

    power_score: mean |ln(P/P_truth)| for k ≤ k_Ny/4; max_power_deviation: max |P/P_truth − 1| there.
    small_scale_score: mean |ln(P/P_truth)| for k_Ny/4 < k ≤ k_Ny. total_mass_ratio: ΣM* / ΣM*_truth.
    precision, recall: of the occupied voxels (NaN for methods that do not place galaxies).
    """

    power_score: float
    max_power_deviation: float
    small_scale_score: float
    total_mass_ratio: float
    precision: float
    recall: float


def score_painting(
    pred: torch.Tensor, truth: torch.Tensor, length: float, *, threshold: float = 1e8, places_galaxies: bool = True
) -> PaintScores:
    """The summary numbers of a predicted stellar-mass field (n, n, n) Msun/h against the truth."""
    _check_pair(pred, truth, "score_painting")
    n = truth.shape[0]
    k_ny = nyquist_frequency(n, length)
    p_pred = power_spectrum(density_contrast(pred), length)
    p_true = power_spectrum(density_contrast(truth), length)
    ratio = p_pred.power / p_true.power
    large, small = p_pred.k <= k_ny / 4, (p_pred.k > k_ny / 4) & (p_pred.k <= k_ny)
    precision, recall = occupancy_scores(pred >= threshold, truth >= threshold) if places_galaxies else (math.nan,) * 2
    return PaintScores(
        power_score=float(ratio[large].log().abs().mean()),
        max_power_deviation=float((ratio[large] - 1).abs().max()),
        small_scale_score=float(ratio[small].log().abs().mean()),
        total_mass_ratio=float(pred.to(torch.float64).sum() / truth.to(torch.float64).sum()),
        precision=precision,
        recall=recall,
    )
