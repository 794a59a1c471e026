"""Scores of protohalo segmentations: semantic confusion-matrix rates, per-mass rates, instance matching,
adjusted Rand index, variation of information and the predicted-vs-true halo mass distributions.

Inputs are tensors on any device: instance labels (n, n, n) int (0 = in no halo, other values = halo ids,
not necessarily contiguous), probabilities (n, n, n) float in [0, 1] or booleans. Every count is an int64
or float64 reduction on the device; only the final scalars come back to Python. Halo masses are in Msun/h:
the mass of a voxel's halo is the number of voxels with its label times the particle mass (López-Cano et
al. 2024, §3.2), for true and predicted instances alike.

Missing values: these functions return bare tensors, where a ratio 0/0 is ``zero_division`` (NaN by default) and a
quantile of an empty bin is NaN. In a table (``measure.segmentation_scores``) they follow the data model's one
convention (docs/data-model.md, "Missing values"): the fill value ``MISSING_FILL`` = 0, read with the count beside
it, which is 0 exactly where the value is missing: ``n_true`` for TPR and FNR, ``n_pred`` for FDR, ``n_violin`` for
the quantiles, ``n_true_haloes`` and ``n_pred_haloes`` for the per-mass instance recall and precision
(:data:`MISSING_COUNTS`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch

from cosmoseg.data import Segmentation, Table
from cosmoseg.measure.instance_metrics import (
    Contingency,
    InstanceMatch,
    _check_same_shape,
    adjusted_rand_index,
    compact_labels,
    contingency,
    match_instances,
    variation_of_information,
)

__all__ = [
    "MISSING_COUNTS",
    "QUANTILES",
    "Contingency",
    "InstanceMatch",
    "SegmentationScoreTables",
    "adjusted_rand_index",
    "binary_scores",
    "binned_quantiles",
    "compact_labels",
    "contingency",
    "default_mass_edges",
    "instance_sizes",
    "match_instances",
    "per_mass_rates",
    "score_curves",
    "segmentation_scores",
    "variation_of_information",
    "voxel_halo_masses",
]

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
"""The quantiles of log10 M_pred reported per true-mass bin: the violin plots of López-Cano et al. Fig. 8."""

RATE_NAMES = ("TPR", "TNR", "PPV", "NPV", "ACC", "F1", "FPR", "FNR", "FDR")

MISSING_COUNTS: dict[str, str] = {
    "TPR": "n_true",
    "FNR": "n_true",
    "FDR": "n_pred",
    "instance_recall": "n_true_haloes",
    "instance_precision": "n_pred_haloes",
    **{f"q{round(100 * q):02d}": "n_violin" for q in QUANTILES},
}
"""Per-mass columns of :func:`per_mass_rates` that can be missing (an empty bin), and the count column beside each
that is 0 exactly there: in a table the value is then the fill value 0."""


def _positive(pred: torch.Tensor, threshold: float) -> torch.Tensor:
    """A boolean map from booleans (as they are), probabilities (>= threshold) or labels (> 0)."""
    if pred.dtype == torch.bool:
        return pred
    if pred.is_floating_point():
        return pred >= threshold
    return pred > 0


def _ratio(num: torch.Tensor, den: torch.Tensor, zero_division: float) -> torch.Tensor:
    num, den = num.to(torch.float64), den.to(torch.float64)
    return torch.where(den > 0, num / den.clamp(min=1), torch.full_like(num, zero_division))


def _rates(
    tp: torch.Tensor, fp: torch.Tensor, tn: torch.Tensor, fn: torch.Tensor, zero_division: float
) -> dict[str, torch.Tensor]:
    return {
        "TPR": _ratio(tp, tp + fn, zero_division),
        "TNR": _ratio(tn, tn + fp, zero_division),
        "PPV": _ratio(tp, tp + fp, zero_division),
        "NPV": _ratio(tn, tn + fn, zero_division),
        "ACC": _ratio(tp + tn, tp + tn + fp + fn, zero_division),
        "F1": _ratio(2 * tp, 2 * tp + fp + fn, zero_division),
        "FPR": _ratio(fp, fp + tn, zero_division),
        "FNR": _ratio(fn, fn + tp, zero_division),
        "FDR": _ratio(fp, fp + tp, zero_division),
    }


def binary_scores(
    pred: torch.Tensor, truth: torch.Tensor, threshold: float = 0.5, *, zero_division: float = math.nan
) -> dict[str, float]:
    """Semantic scores of a halo / no-halo prediction.

    pred: probabilities (float, positive where >= ``threshold``), booleans, or labels (positive where > 0).
    truth: booleans or labels (positive where > 0), same shape. Returns TP, FP, TN, FN (voxel counts) and
    TPR = TP/(TP+FN), TNR = TN/(TN+FP), PPV = TP/(TP+FP), NPV = TN/(TN+FN), ACC, F1 = 2TP/(2TP+FP+FN),
    FPR, FNR, FDR, and the predicted and true positive fractions; a ratio 0/0 is ``zero_division``.
    """
    _check_same_shape(pred, truth)
    p, t = _positive(pred, threshold).flatten(), _positive(truth, 0.5).flatten()
    tp = (p & t).sum()
    fp = (p & ~t).sum()
    fn = (~p & t).sum()
    tn = p.numel() - tp - fp - fn
    out: dict[str, float] = {"TP": float(tp), "FP": float(fp), "TN": float(tn), "FN": float(fn)}
    out |= {name: float(value) for name, value in _rates(tp, fp, tn, fn, zero_division).items()}
    n = max(p.numel(), 1)
    out["predicted_fraction"] = float(tp + fp) / n
    out["true_fraction"] = float(tp + fn) / n
    return out


def score_curves(
    pred_prob: torch.Tensor,
    truth: torch.Tensor,
    thresholds: Sequence[float] | torch.Tensor,
    *,
    zero_division: float = math.nan,
) -> dict[str, torch.Tensor]:
    """The semantic scores at many thresholds in one pass (López-Cano et al. Fig. C1).

    pred_prob: (...) probabilities (or any float score), positive where >= threshold. truth: booleans or
    labels, same shape. thresholds: (T,) in any order. Returns (T,) float64 tensors: "threshold", TP, FP,
    TN, FN, the rates of ``binary_scores`` and "predicted_fraction". Cost: one sort-free bucketize of the
    voxels into the thresholds, O(N log T).
    """
    _check_same_shape(pred_prob, truth)
    if not pred_prob.is_floating_point():
        raise ValueError(f"pred_prob must be floating point, got {pred_prob.dtype}")
    thr = torch.as_tensor(thresholds, dtype=torch.float64).to(pred_prob.device).flatten()
    if thr.numel() == 0:
        raise ValueError("thresholds is empty")
    sorted_thr, order = torch.sort(thr)
    p = pred_prob.flatten().to(torch.float64)
    t = _positive(truth, 0.5).flatten()
    n_t = thr.numel()
    # above[v] = number of sorted thresholds <= p_v, so voxel v is positive at sorted threshold j iff j < above[v]
    above = torch.bucketize(p, sorted_thr, right=True)
    all_counts = torch.bincount(above, minlength=n_t + 1)
    true_counts = torch.bincount(above[t], minlength=n_t + 1)
    positives = all_counts.flip(0).cumsum(0).flip(0)[1:]  # sum over above > j
    tp_sorted = true_counts.flip(0).cumsum(0).flip(0)[1:]
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(n_t, device=order.device)
    tp, pos = tp_sorted[inverse], positives[inverse]
    n_true = t.sum()
    fp, fn = pos - tp, n_true - tp
    tn = p.numel() - tp - fp - fn
    out = {"threshold": thr, "TP": tp.double(), "FP": fp.double(), "TN": tn.double(), "FN": fn.double()}
    out |= _rates(tp, fp, tn, fn, zero_division)
    out["predicted_fraction"] = pos.double() / max(p.numel(), 1)
    return out


# ---- halo masses of voxels and per-mass rates ------------------------------------------------------------


def instance_sizes(labels: torch.Tensor) -> torch.Tensor:
    """For every voxel, the number of voxels carrying its label (0 for label 0): int64 of the labels' shape."""
    _, index, sizes = compact_labels(labels)
    flat = labels.flatten()
    return torch.where(flat > 0, sizes[index], 0).view(labels.shape)


def voxel_halo_masses(labels: torch.Tensor, particle_mass: float) -> torch.Tensor:
    """The mass (Msun/h) of the halo each voxel belongs to, size × particle mass; 0 outside haloes. float64."""
    if not (math.isfinite(particle_mass) and particle_mass > 0):
        raise ValueError(f"particle_mass must be a positive Msun/h, got {particle_mass}")
    return instance_sizes(labels).to(torch.float64) * particle_mass


def binned_quantiles(
    bin_index: torch.Tensor, values: torch.Tensor, n_bins: int, quantiles: Sequence[float] = QUANTILES
) -> torch.Tensor:
    """Quantiles of ``values`` (N,) within each bin (``bin_index`` (N,) in [0, n_bins)), all bins at once.

    Linear interpolation between order statistics (NumPy's default method). Returns (n_bins, Q) float64;
    NaN for empty bins.
    """
    q = torch.as_tensor(quantiles, dtype=torch.float64, device=values.device)
    v = values.to(torch.float64)
    if v.numel():  # one sort on bin + (v - min) / (span + 1): by bin, then by value
        shifted = (v - v.min()) / (float(v.max() - v.min()) + 1.0)
        v_sorted = v[torch.argsort(bin_index.to(torch.float64) + shifted)]
    else:
        v_sorted = v
    counts = torch.bincount(bin_index, minlength=n_bins)[:n_bins]
    starts = torch.cumsum(counts, 0) - counts
    pos = (counts - 1).clamp(min=0).to(torch.float64)[:, None] * q[None, :]
    lo = pos.floor().long()
    hi = pos.ceil().long()
    frac = pos - lo
    last = max(v_sorted.numel() - 1, 0)
    if v_sorted.numel() == 0:
        return torch.full((n_bins, q.numel()), math.nan, dtype=torch.float64, device=values.device)
    a = v_sorted[(starts[:, None] + lo).clamp(max=last)]
    c = v_sorted[(starts[:, None] + hi).clamp(max=last)]
    out = a + (c - a) * frac
    return torch.where(counts[:, None] > 0, out, torch.full_like(out, math.nan))


def default_mass_edges(masses: Sequence[torch.Tensor], n_bins: int) -> torch.Tensor:
    """``n_bins`` equal bins in log10 M spanning every positive mass of the given tensors (log10 Msun/h)."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    positive = [m[m > 0] for m in masses]
    found = [m for m in positive if m.numel()]
    if not found:
        return torch.linspace(10.0, 16.0, n_bins + 1, dtype=torch.float64)
    lo = min(float(m.min()) for m in found)
    hi = max(float(m.max()) for m in found)
    lo, hi = math.log10(lo), math.log10(hi)
    if hi - lo < 1e-6:
        lo, hi = lo - 0.05, hi + 0.05
    return torch.linspace(lo, hi + 1e-9 * max(abs(hi), 1.0), n_bins + 1, dtype=torch.float64)


def per_mass_rates(
    truth_labels: torch.Tensor,
    pred_labels: torch.Tensor,
    particle_mass: float,
    log_mass_edges: Sequence[float] | torch.Tensor,
    *,
    pred_positive: torch.Tensor | None = None,
    quantiles: Sequence[float] = QUANTILES,
    zero_division: float = math.nan,
    iou_threshold: float = 0.5,
) -> dict[str, torch.Tensor]:
    """Rates and predicted-mass distributions in bins of log10 halo mass (López-Cano et al. Figs. 6 and 8).

    truth_labels, pred_labels: (n, n, n) instance labels. particle_mass: Msun/h. log_mass_edges: (B+1,)
    log10 Msun/h. pred_positive: the semantic prediction (bool, same shape) behind ``TPR``; default
    ``pred_labels > 0``. Returns (B,) float64 tensors:

    - m_low, m_high, m_mid: bin edges and geometric centre, Msun/h;
    - n_true: voxels of true haloes whose true mass falls in the bin; n_true_haloes: such haloes;
    - TPR: of those voxels, the fraction predicted positive (``pred_positive``);
    - FNR: the fraction in no predicted instance (pred label 0);
    - n_pred: voxels of predicted instances whose predicted mass falls in the bin; n_pred_haloes;
      FDR: of those, the fraction outside every true halo (eq. 10);
    - n_violin: true-halo voxels in the bin that are in a predicted instance, and q05 ... q95: quantiles of
      their log10 M_pred (NaN where n_violin = 0);
    - n_true_matched: true haloes of the bin matched one-to-one at IoU >= ``iou_threshold``
      (:func:`match_instances`), ``instance_recall`` = n_true_matched / n_true_haloes; n_pred_matched: predicted
      haloes of the bin (by their predicted mass) matched, ``instance_precision`` = n_pred_matched / n_pred_haloes.

    A rate is ``zero_division`` exactly where its count (:data:`MISSING_COUNTS`) is 0; in a table, NaN becomes the
    fill value 0 and the count says the bin is empty (docs/data-model.md, "Missing values").
    """
    _check_same_shape(pred_labels, truth_labels)
    edges = torch.as_tensor(log_mass_edges, dtype=torch.float64).to(truth_labels.device).flatten()
    n_bins = edges.numel() - 1
    if n_bins < 1 or not bool((edges[1:] > edges[:-1]).all()):
        raise ValueError(f"log_mass_edges must be >= 2 increasing numbers, got {edges.tolist()}")
    truth, pred = truth_labels.flatten(), pred_labels.flatten()
    positive = (pred > 0) if pred_positive is None else pred_positive.flatten().bool()
    if not (math.isfinite(particle_mass) and particle_mass > 0):
        raise ValueError(f"particle_mass must be a positive Msun/h, got {particle_mass}")
    t_ids, t_index, t_sizes = compact_labels(truth)
    p_ids, p_index, p_sizes = compact_labels(pred)

    def halo_bins(ids: torch.Tensor, sizes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log10 mass and mass bin of each distinct label (bin n_bins = outside, or label 0)."""
        log_m = torch.log10(sizes.to(torch.float64) * particle_mass)
        index = torch.bucketize(log_m, edges, right=True) - 1
        index = torch.where(log_m == edges[-1], n_bins - 1, index)
        return log_m, torch.where((ids > 0) & (index >= 0) & (index < n_bins), index, n_bins)

    def count(index: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        w = None if weights is None else weights.to(torch.float64)
        return torch.bincount(index, weights=w, minlength=n_bins + 1)[:n_bins].to(torch.float64)

    _, t_bins = halo_bins(t_ids, t_sizes)
    p_log_m, p_bins = halo_bins(p_ids, p_sizes)
    true_bin, pred_bin = t_bins[t_index], p_bins[p_index]  # per voxel
    in_true, in_pred = truth > 0, pred > 0
    n_true, n_pred = count(true_bin), count(pred_bin)
    out = {
        "m_low": 10.0 ** edges[:-1],
        "m_high": 10.0 ** edges[1:],
        "m_mid": 10.0 ** (0.5 * (edges[1:] + edges[:-1])),
        "n_true": n_true,
        "n_true_haloes": count(t_bins),
        "TPR": _ratio(count(true_bin, positive), n_true, zero_division),
        "FNR": _ratio(count(true_bin, ~in_pred), n_true, zero_division),
        "n_pred": n_pred,
        "n_pred_haloes": count(p_bins),
        "FDR": _ratio(count(pred_bin, ~in_true), n_pred, zero_division),
    }
    both = in_true & in_pred & (true_bin < n_bins)
    violin_bins = true_bin[both]
    out["n_violin"] = count(violin_bins)
    q = binned_quantiles(violin_bins, p_log_m[p_index[both]], n_bins, quantiles)
    for j, quantile in enumerate(quantiles):
        out[f"q{round(100 * quantile):02d}"] = q[:, j]
    match = match_instances(contingency(truth, pred), iou_threshold=iou_threshold)
    matched_true = count(t_bins[torch.searchsorted(t_ids, match.true_label.to(t_ids.device))])
    matched_pred = count(p_bins[torch.searchsorted(p_ids, match.pred_label.to(p_ids.device))])
    out |= {
        "n_true_matched": matched_true,
        "instance_recall": _ratio(matched_true, out["n_true_haloes"], zero_division),
        "n_pred_matched": matched_pred,
        "instance_precision": _ratio(matched_pred, out["n_pred_haloes"], zero_division),
    }
    return out


def _finite_columns(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Columns for a table, which holds finite numbers: float64, an undefined ratio (0/0, NaN) becomes the fill value
    0; the count beside it tells (:data:`MISSING_COUNTS`)."""
    return {k: torch.nan_to_num(v.to(torch.float64), nan=0.0) for k, v in values.items()}


@dataclasses.dataclass(frozen=True)
class SegmentationScoreTables:
    """What :func:`segmentation_scores` measures. scores: one row of semantic and instance scores. per_mass: the
    rates of :func:`per_mass_rates`, one row per mass bin. curves: :func:`score_curves` over the thresholds. summary:
    one line of the main scores, for a log."""

    scores: Table
    per_mass: Table
    curves: Table
    summary: str


def segmentation_scores(
    truth: Segmentation,
    prediction: Segmentation,
    *,
    threshold: float = -1.0,
    n_thresholds: int = 19,
    mass_edges: Sequence[float] = (),
    n_mass_bins: int = 10,
    particle_mass: float = 0.0,
    iou_threshold: float = 0.5,
    device: torch.device | str | None = None,
) -> SegmentationScoreTables:
    """Semantic, per-mass and instance scores of a predicted segmentation against the truth, as tables.

    threshold: on the prediction's probabilities (-1 = the prediction's own, its meta "threshold", else 0.5); a
    prediction without probabilities is positive where labelled. n_thresholds: points of the score curves over
    (0, 1). mass_edges: log10 Msun/h bin edges of the per-mass rates (empty = ``n_mass_bins`` equal bins spanning
    the true and predicted halo masses). particle_mass: Msun/h (0 = from the truth's box cosmology and grid).
    iou_threshold: instance matching criterion (>= 0.5). device: where to compute (default: the truth's).
    Undefined ratios are the fill value 0 in the tables (:func:`finite_columns`).
    """
    if truth.labels.shape != prediction.labels.shape:
        raise ValueError(
            f"truth and prediction grids differ: {tuple(truth.labels.shape)} vs {tuple(prediction.labels.shape)}"
        )
    device = truth.labels.device if device is None else torch.device(device)
    t_labels, p_labels = truth.labels.to(device), prediction.labels.to(device)
    semantic = prediction.probabilities.to(device) if prediction.probabilities is not None else p_labels > 0
    particle_mass = particle_mass or truth.box.cosmology.particle_mass(truth.n, truth.box.length)
    threshold = float(prediction.meta.get("threshold", 0.5)) if threshold == -1.0 else threshold

    scores = binary_scores(semantic, t_labels, threshold)
    table = contingency(t_labels, p_labels)
    match = match_instances(table, iou_threshold=iou_threshold)
    scores |= {
        "threshold": threshold,
        "n_true_haloes": float(match.n_true),
        "n_pred_haloes": float(match.n_pred),
        "n_matched": float(match.iou.numel()),
        "instance_precision": match.precision,
        "instance_recall": match.recall,
        "instance_f1": match.f1,
        "mean_matched_iou": match.mean_iou,
        "panoptic_quality": match.panoptic_quality,
        "ARI": adjusted_rand_index(table),
        "VI": variation_of_information(table),
    }
    summary = (
        f"semantic F1 {scores['F1']:.3f} (precision {scores['PPV']:.3f}, recall {scores['TPR']:.3f}); "
        f"instances at IoU >= {iou_threshold:g}: precision "
        f"{match.precision:.3f}, recall {match.recall:.3f} ({match.n_pred} predicted, {match.n_true} true haloes)"
    )
    scores_table = Table(
        columns=_finite_columns({k: torch.tensor([v], dtype=torch.float64) for k, v in scores.items()}),
        units={"VI": "nats"},
        meta={"kind": "generic", "particle_mass": particle_mass, "iou_threshold": iou_threshold},
    )

    positive = semantic >= threshold if semantic.is_floating_point() else semantic
    masses = [voxel_halo_masses(t_labels, particle_mass), voxel_halo_masses(p_labels, particle_mass)]
    edges = torch.tensor(mass_edges, dtype=torch.float64) if mass_edges else None
    edges = default_mass_edges(masses, n_mass_bins) if edges is None else edges
    rates = per_mass_rates(
        t_labels, p_labels, particle_mass, edges, pred_positive=positive, iou_threshold=iou_threshold
    )
    mass_units = {"m_low": "Msun/h", "m_high": "Msun/h", "m_mid": "Msun/h"}
    mass_units |= {name: "log10 Msun/h" for name in rates if name.startswith("q")}
    per_mass = Table(
        columns=_finite_columns(rates), units=mass_units, meta={"kind": "violin", "particle_mass": particle_mass}
    )

    thresholds = torch.linspace(0.0, 1.0, n_thresholds + 2, dtype=torch.float64)[1:-1]
    curve_input = semantic if semantic.is_floating_point() else semantic.to(torch.float64)
    curves = Table(
        columns=_finite_columns(score_curves(curve_input, t_labels, thresholds.to(device))), meta={"kind": "generic"}
    )
    return SegmentationScoreTables(scores=scores_table, per_mass=per_mass, curves=curves, summary=summary)
