"""Protohalo mass bins (Alokda & Porciani): every voxel of the initial conditions classed by the mass of its z = 0 halo.

Class 0 is "in no protohalo" (or in a halo below the lowest edge); classes 1..K are the K bins in log10 M of the
halo a voxel ends up in (default K = 6, equal in log M from the suite's labelling limit to its largest halo). Here:

* :func:`mass_bin_edges` and :func:`mass_bin_classes`: the targets, from a Lagrangian segmentation;
* :func:`excursion_set_classes`: the classic answer without learning, the excursion set: a voxel's halo is the
  largest mass whose top-hat-smoothed linear δ (Lagrangian radius of that mass) exceeds δ_c;
* :func:`calibrate_class_bias`: per-class log biases that make a classifier's argmax predict each class's true
  voxel count on its training boxes;
* :func:`mass_bin_scores`: the confusion matrix, the total mass per class against the truth, the per-object mass of
  each true halo (the mean log mass of the classes of its voxels) against its FoF mass and, given class
  probabilities, the one-vs-rest ROC AUC per class.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from cosmoseg.data import Table
from cosmoseg.measure.segmentation import voxel_halo_masses
from cosmoseg.measure.twosample import auc_score
from cosmoseg.mesh.fourier import rfft_k_magnitude

__all__ = [
    "DELTA_COLLAPSE",
    "calibrate_class_bias",
    "excursion_set_classes",
    "mass_bin_classes",
    "mass_bin_edges",
    "mass_bin_scores",
    "top_hat_window",
]

DELTA_COLLAPSE = 1.686
"""The linear overdensity of spherical collapse today, δ_c (Einstein–de Sitter value; its Ω_m dependence is < 1%)."""


def mass_bin_edges(min_mass: float, max_mass: float, n_bins: int = 6) -> torch.Tensor:
    """``n_bins`` bins equal in log10 M from ``min_mass`` to ``max_mass`` (Msun/h): (n_bins + 1,) float64, log10."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if not (0 < min_mass < max_mass and math.isfinite(max_mass)):
        raise ValueError(f"need 0 < min_mass < max_mass (Msun/h), got {min_mass:g} and {max_mass:g}")
    return torch.linspace(math.log10(min_mass), math.log10(max_mass), n_bins + 1, dtype=torch.float64)


def _check_edges(log_mass_edges: Sequence[float] | torch.Tensor) -> torch.Tensor:
    edges = torch.as_tensor(log_mass_edges, dtype=torch.float64).reshape(-1)
    if edges.numel() < 2 or not bool(torch.all(edges[1:] > edges[:-1])):
        raise ValueError(f"log_mass_edges must be at least 2 increasing log10 masses, got {edges.tolist()}")
    return edges


def mass_bin_classes(
    labels: torch.Tensor, particle_mass: float, log_mass_edges: Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """The class of every voxel of a Lagrangian segmentation: 0 = in no halo, k = 1..K its halo's bin.

    ``labels``: (n, n, n) integer halo ids (0 = none); ``particle_mass``: Msun/h per voxel; ``log_mass_edges``:
    (K + 1,) increasing log10 M (Msun/h). A halo's mass is its voxel count times the particle mass; a halo below
    the lowest edge is class 0 (not resolved), one at or above the highest edge joins the top bin. Returns int64
    of the shape of ``labels``.
    """
    edges = _check_edges(log_mass_edges)
    masses = voxel_halo_masses(labels, particle_mass)
    log_mass = torch.log10(masses.clamp_min(1e-300))
    classes = torch.bucketize(log_mass, edges.to(log_mass.device), right=True).clamp_max(edges.numel() - 1)
    return torch.where(masses > 0, classes, torch.zeros_like(classes)).to(torch.int64)


def top_hat_window(kr: torch.Tensor) -> torch.Tensor:
    """The Fourier transform of a spherical top hat, W(x) = 3 (sin x − x cos x) / x³, W(0) = 1."""
    x = kr.to(torch.float64)
    small = x.abs() < 1e-3
    safe = torch.where(small, torch.ones_like(x), x)
    window = 3.0 * (torch.sin(safe) - safe * torch.cos(safe)) / safe**3
    return torch.where(small, 1.0 - x**2 / 10.0, window)


def excursion_set_classes(
    delta: torch.Tensor,
    length: float,
    particle_mass: float,
    log_mass_edges: Sequence[float] | torch.Tensor,
    *,
    delta_c: float = DELTA_COLLAPSE,
) -> torch.Tensor:
    """The excursion-set mass bin of every voxel: the largest bin k whose lower-edge mass M_k, smoothed over its
    Lagrangian radius R_k = (3 M_k / (4π ρ̄))^(1/3), has δ_R > δ_c; 0 when even the lowest edge's does not.

    ``delta``: (n, n, n) linear density contrast at z = 0; ``length``: box side, Mpc/h; ``particle_mass``: Msun/h
    per voxel, so ρ̄ = particle_mass / (length / n)³. The largest crossing mass is the first crossing of the random
    walk coming from large scales (Bond et al. 1991), here at the K bin edges only. Returns (n, n, n) int64 in 0..K.
    """
    edges = _check_edges(log_mass_edges)
    if delta.ndim != 3 or len(set(delta.shape)) != 1:
        raise ValueError(f"delta must be a cubic (n, n, n) grid, got shape {tuple(delta.shape)}")
    if not (length > 0 and particle_mass > 0):
        raise ValueError(f"need length > 0 (Mpc/h) and particle_mass > 0 (Msun/h), got {length}, {particle_mass}")
    n = delta.shape[0]
    mean_density = particle_mass / (length / n) ** 3
    delta_k = torch.fft.rfftn(delta.to(torch.float64))
    k = rfft_k_magnitude(n, length, device=delta.device, dtype=torch.float64)
    classes = torch.zeros(delta.shape, dtype=torch.int64, device=delta.device)
    for bin_index in range(edges.numel() - 1):  # from small to large masses: the largest crossing wins
        radius = (3.0 * 10.0 ** float(edges[bin_index]) / (4.0 * math.pi * mean_density)) ** (1.0 / 3.0)
        smoothed = torch.fft.irfftn(delta_k * top_hat_window(k * radius), s=delta.shape)
        classes[smoothed > delta_c] = bin_index + 1
    return classes


def mass_bin_scores(
    predicted: torch.Tensor,
    truth: torch.Tensor,
    truth_labels: torch.Tensor,
    particle_mass: float,
    log_mass_edges: Sequence[float] | torch.Tensor,
    *,
    probabilities: torch.Tensor | None = None,
) -> dict[str, Table]:
    """Scores of a mass-bin classification against the truth of the same box.

    ``predicted``, ``truth``: (n, n, n) int classes in 0..K (:func:`mass_bin_classes`); ``truth_labels``: the true
    halo ids (for the per-object masses); ``probabilities``: optional (K + 1, n, n, n) class probabilities (the
    network's softmax) for the AUC. Returns tables (one row per class 0..K unless said):

    * ``classes``: ``log_mass_lo``, ``log_mass_hi`` (class 0: 0, 0), ``n_true``, ``n_pred`` (voxels), ``mass_true``,
      ``mass_pred`` (Msun/h: voxels × particle mass), ``mass_ratio`` (pred / true; 0 with ``n_true`` = 0),
      ``precision``, ``recall`` and, with probabilities, ``auc`` and ``auc_err`` (DeLong) one-vs-rest;
    * ``confusion``: K + 1 rows (true class) with columns ``pred_0`` .. ``pred_K`` (voxel counts);
    * ``objects``: one row per true halo in the bins: ``log_mass_true``, ``log_mass_pred`` (the mean over its voxels
      predicted in a halo of their class's log mass at the bin centre; 0 where none is), ``n_voxels``,
      ``n_predicted`` (its voxels predicted in any halo).
    """
    edges = _check_edges(log_mass_edges)
    n_classes = edges.numel()
    if predicted.shape != truth.shape or truth_labels.shape != truth.shape:
        raise ValueError(
            f"predicted {tuple(predicted.shape)}, truth {tuple(truth.shape)} and truth_labels "
            f"{tuple(truth_labels.shape)} must have one shape"
        )
    for name, classes in (("predicted", predicted), ("truth", truth)):
        if classes.dtype.is_floating_point or int(classes.min()) < 0 or int(classes.max()) >= n_classes:
            raise ValueError(f"{name} must hold integer classes 0..{n_classes - 1}")
    pred, true = predicted.reshape(-1).long().cpu(), truth.reshape(-1).long().cpu()
    confusion = torch.bincount(true * n_classes + pred, minlength=n_classes**2).reshape(n_classes, n_classes)
    n_true, n_pred = confusion.sum(1), confusion.sum(0)
    diagonal = confusion.diagonal()
    lo = torch.cat([torch.zeros(1, dtype=torch.float64), edges[:-1]])
    hi = torch.cat([torch.zeros(1, dtype=torch.float64), edges[1:]])
    columns: dict[str, torch.Tensor] = {
        "log_mass_lo": lo,
        "log_mass_hi": hi,
        "n_true": n_true,
        "n_pred": n_pred,
        "mass_true": n_true.double() * particle_mass,
        "mass_pred": n_pred.double() * particle_mass,
        "mass_ratio": torch.where(n_true > 0, n_pred.double() / n_true.clamp_min(1).double(), 0.0),
        "precision": torch.where(n_pred > 0, diagonal.double() / n_pred.clamp_min(1).double(), 0.0),
        "recall": torch.where(n_true > 0, diagonal.double() / n_true.clamp_min(1).double(), 0.0),
    }
    if probabilities is not None:
        if probabilities.shape != (n_classes, *truth.shape):
            raise ValueError(
                f"probabilities must be ({n_classes}, {', '.join(map(str, truth.shape))}) (one map per class), "
                f"got {tuple(probabilities.shape)}"
            )
        auc, err = torch.zeros(n_classes, dtype=torch.float64), torch.zeros(n_classes, dtype=torch.float64)
        for c in range(n_classes):
            positive = true == c
            if 0 < int(positive.sum()) < positive.numel():
                result = auc_score(probabilities[c].reshape(-1).cpu(), positive)
                auc[c], err[c] = result.auc, result.auc_err
        columns |= {"auc": auc, "auc_err": err}
    centres = torch.cat([torch.zeros(1, dtype=torch.float64), 0.5 * (edges[:-1] + edges[1:])])
    objects = _object_masses(truth_labels.reshape(-1).long().cpu(), true, pred, centres, particle_mass)
    return {
        "classes": Table(columns=columns, meta={"particle_mass": float(particle_mass)}),
        "confusion": Table(columns={f"pred_{c}": confusion[:, c] for c in range(n_classes)}),
        "objects": Table(columns=objects),
    }


def _object_masses(
    labels: torch.Tensor, true: torch.Tensor, pred: torch.Tensor, centres: torch.Tensor, particle_mass: float
) -> dict[str, torch.Tensor]:
    """Per true halo in a bin (class > 0): its log mass, the mean log mass of its voxels' predicted classes."""
    in_bins = (labels > 0) & (true > 0)
    ids, halo = torch.unique(labels[in_bins], return_inverse=True)
    size = torch.bincount(halo, minlength=ids.numel())
    predicted_halo = pred[in_bins] > 0
    n_predicted = torch.bincount(halo, weights=predicted_halo.double(), minlength=ids.numel())
    log_sum = torch.bincount(halo, weights=centres[pred[in_bins]] * predicted_halo, minlength=ids.numel())
    return {
        "log_mass_true": torch.log10(size.double() * particle_mass),
        "log_mass_pred": torch.where(n_predicted > 0, log_sum / n_predicted.clamp_min(1), 0.0),
        "n_voxels": size,
        "n_predicted": n_predicted.long(),
    }


def calibrate_class_bias(
    probabilities: Sequence[torch.Tensor], truth: Sequence[torch.Tensor], *, iterations: int = 200
) -> torch.Tensor:
    """Per-class log biases b (K + 1,) float64, b_0 = 0, such that argmax_k(log p_k + b_k) over the given boxes
    predicts each class's true voxel count (to the integer steps a finite box allows).

    ``probabilities``: per box (K + 1, n, n, n) softmax outputs; ``truth``: per box (n, n, n) true classes.
    Two steps. First the soft counts: b_k += ln(N_true,k / Σ softmax(log p + b)_k), which converges (the prior-shift
    EM of Saerens et al. 2002) and lands near the answer. Then the hard counts of the argmax, which jump with b: the
    damped fixed point b_k += η (ln N_true,k − ln N_pred,k), η = ½ / (1 + t/20) at step t (counts + 1, so an empty
    class stays finite), keeping the b with the smallest largest relative count error; stopped once every count is
    within 10⁻⁴ of the voxels of its target or after ``iterations`` steps of each kind."""
    if len(probabilities) != len(truth) or not probabilities:
        raise ValueError("give one truth per probability map, at least one")
    logp = torch.cat([p.reshape(p.shape[0], -1).double().clamp_min(1e-30).log() for p in probabilities], dim=1)
    true = torch.cat([t.reshape(-1).long() for t in truth])
    n_classes = logp.shape[0]
    if int(true.min()) < 0 or int(true.max()) >= n_classes:
        raise ValueError(f"truth must hold classes 0..{n_classes - 1}")
    target = torch.bincount(true, minlength=n_classes).double() + 1
    tolerance = 1e-4 * true.numel()
    bias = torch.zeros(n_classes, dtype=torch.float64)
    for _ in range(iterations):
        soft = torch.softmax(logp + bias[:, None], dim=0).sum(1) + 1
        if bool(((soft - target).abs() <= tolerance).all()):
            break
        bias += (target / soft).log()
        bias -= bias[0].clone()
    best, best_error = bias.clone(), math.inf
    for step in range(iterations):
        counts = torch.bincount((logp + bias[:, None]).argmax(0), minlength=n_classes).double() + 1
        error = float(((counts - target).abs() / target).max())
        if error < best_error:
            best, best_error = bias.clone(), error
        if bool(((counts - target).abs() <= tolerance).all()):
            break  # every count within 0.01% of the voxels: done
        bias += 0.5 / (1 + step / 20) * (target.log() - counts.log())
        bias -= bias[0].clone()
    return best
