"""Losses of López-Cano et al. §2.2–2.3: balanced cross-entropy (eq. 3) and the Weinberger loss (eqs. 4–7)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "background_push_loss",
    "balanced_cross_entropy",
    "centre_offset_loss",
    "discriminative_loss",
    "small_halo_weights",
]


def balanced_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, beta: float, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Balanced cross-entropy, eq. (3) (Xie & Tu 2015), from logits.

    Per voxel ``ℓ = −β y log σ(z) − (1 − β)(1 − y) log(1 − σ(z))`` with ``β`` the fraction of negative voxels
    (measured on the training suite; the paper's 0.5815). Normalisation: the **mean over all voxels** (and
    batch), i.e. eq. (3) summed over voxels and divided by their number; eq. (3) itself leaves the reduction
    open, so this matches it up to that constant factor. ``log σ`` is computed with ``logsigmoid`` for
    stability (``log(1 − σ(z)) = logsigmoid(−z)``). ``target`` holds 0/1 (or soft labels in [0, 1]).
    ``weight`` (the shape of ``logits``, e.g. :func:`small_halo_weights`) multiplies each voxel's ``ℓ`` before
    the mean; None is a weight of 1 everywhere (the paper's loss).
    """
    if logits.shape != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} must have the same shape")
    if not 0.0 <= float(beta) <= 1.0:
        raise ValueError(f"beta (fraction of negatives) must lie in [0, 1], got {beta}")
    y = target.to(logits.dtype)
    loss = -beta * y * F.logsigmoid(logits) - (1.0 - beta) * (1.0 - y) * F.logsigmoid(-logits)
    if weight is not None:
        if weight.shape != logits.shape:
            raise ValueError(f"weight {tuple(weight.shape)} must have the shape of logits {tuple(logits.shape)}")
        loss = loss * weight.to(loss.dtype)
    return loss.mean()


def _crop_haloes(lab: torch.Tensor, inside: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The haloes of a batch of crops, a halo cut by two crops counting as two: for every voxel of ``lab[inside]``
    its halo's index 0..H-1, and each halo's voxel count (H,). ``lab``: (B, V) int64 labels; ``inside``: lab > 0."""
    crop = torch.arange(lab.shape[0], device=lab.device)[:, None].expand_as(lab)[inside]
    _, halo, size = torch.unique(crop * (int(lab.max()) + 1) + lab[inside], return_inverse=True, return_counts=True)
    return halo, size


def small_halo_weights(labels: torch.Tensor, *, boost: float, reference: float) -> torch.Tensor:
    """Per-voxel weights that lift the voxels of small haloes in a loss: ``1 + boost min(1, reference / n)``.

    ``labels``: (B, *spatial) integer instance ids, 0 = no halo. ``n`` is the number of voxels of the voxel's halo
    *in its crop* (a halo cut by the crop's edge counts as smaller; the ``min`` caps its weight at ``1 + boost``),
    ``reference`` a size in voxels (e.g. the smallest labelled halo): a halo of ``reference`` voxels or fewer gets
    ``1 + boost``, one of ``10 reference`` voxels ``1 + boost / 10``. Voxels of no halo get 1. Returns (B,
    *spatial) float32.
    """
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor, got {labels.dtype}")
    if not (boost >= 0 and reference > 0):
        raise ValueError(f"need boost >= 0 and reference > 0 (voxels), got boost={boost}, reference={reference}")
    b = labels.shape[0]
    lab = labels.reshape(b, -1).to(torch.int64)
    weight = torch.ones(lab.shape, dtype=torch.float32, device=labels.device)
    inside = lab > 0
    if boost == 0 or not bool(inside.any()):
        return weight.reshape(labels.shape)
    halo, size = _crop_haloes(lab, inside)
    weight[inside] = 1.0 + boost * torch.clamp(reference / size[halo].to(torch.float32), max=1.0)
    return weight.reshape(labels.shape)


def _single(
    x: torch.Tensor, labels: torch.Tensor, delta_pull: float, delta_push: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pull, push and reg terms for one crop: ``x`` (N, D) embeddings, ``labels`` (N,) ids > 0."""
    zero = x.sum() * 0.0  # keeps the graph (and dtype/device) when there is nothing to sum
    if labels.numel() == 0:
        return zero, zero, zero
    _, idx = torch.unique(labels, return_inverse=True)
    n_inst = int(idx.max()) + 1
    counts = torch.bincount(idx, minlength=n_inst).to(x.dtype)
    mu = torch.zeros(n_inst, x.shape[1], dtype=x.dtype, device=x.device).index_add_(0, idx, x) / counts[:, None]
    # eq. (4): mean over instances of the mean over members of the hinged squared distance to the centre
    dist = torch.linalg.vector_norm(x - mu[idx], dim=1)
    hinge = torch.clamp(dist - delta_pull, min=0.0) ** 2
    pull = (torch.zeros(n_inst, dtype=x.dtype, device=x.device).index_add_(0, idx, hinge) / counts).mean()
    # eq. (5): mean over ordered pairs c_A != c_B, margin 2·δ_push
    if n_inst > 1:
        off = ~torch.eye(n_inst, dtype=torch.bool, device=x.device)
        pair = torch.linalg.vector_norm(mu[:, None, :] - mu[None, :, :], dim=-1)[off]
        push = (torch.clamp(2.0 * delta_push - pair, min=0.0) ** 2).mean()
    else:
        push = zero
    # eq. (6)
    reg = torch.linalg.vector_norm(mu, dim=1).mean()
    return pull, push, reg


def discriminative_loss(
    embedding: torch.Tensor,
    labels: torch.Tensor,
    *,
    delta_pull: float = 0.5,
    delta_push: float = 1.5,
    c_pull: float = 1.0,
    c_push: float = 1.0,
    c_reg: float = 0.001,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weinberger (discriminative) loss, eqs. (4)–(7) of López-Cano et al. (De Brabandere et al. 2017).

    ``embedding`` is (B, D, *spatial) pseudo-space positions, ``labels`` (B, *spatial) integer instance ids with
    0 = background (excluded). For each crop, with instances c = 1…C, centres ``μ_c`` (member mean) and
    members ``x_i``:

    - pull (4): ``1/C Σ_c 1/N_c Σ_i max(0, ‖μ_c − x_i‖ − δ_pull)²``
    - push (5): ``1/(C(C−1)) Σ_{c_A≠c_B} max(0, 2δ_push − ‖μ_A − μ_B‖)²`` (the paper's margin is 2·δ_push,
      i.e. 3.0 for δ_push = 1.5, as in De Brabandere et al.)
    - reg (6): ``1/C Σ_c ‖μ_c‖``
    - total (7): ``c_pull·pull + c_push·push + c_reg·reg``

    The paper prints the hinge as ``max((‖·‖ − δ)², 0)``, which would never clip; the intended (and De
    Brabandere's) form squares the hinge, ``max(0, ‖·‖ − δ)²``, which is what is implemented. Ids need not be
    contiguous; the loss is invariant to relabelling. A crop with 0 or 1 instance has push = 0; a crop with no
    instance contributes 0 to every term. Each term is averaged over the B crops. Returns
    ``(total, pull, push, reg)``. Vectorised per crop (index_add over instances; the only loop is over B).
    """
    if embedding.ndim < 2 or labels.shape != embedding.shape[:1] + embedding.shape[2:]:
        raise ValueError(
            f"embedding (B, D, *spatial) {tuple(embedding.shape)} and labels (B, *spatial) "
            f"{tuple(labels.shape)} do not match"
        )
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor, got {labels.dtype}")
    b, d = embedding.shape[:2]
    x = embedding.reshape(b, d, -1).transpose(1, 2)  # (B, N, D)
    lab = labels.reshape(b, -1)
    terms = [_single(x[k][lab[k] > 0], lab[k][lab[k] > 0], delta_pull, delta_push) for k in range(b)]
    pull, push, reg = (torch.stack(t).mean() for t in zip(*terms, strict=True))
    total = c_pull * pull + c_push * push + c_reg * reg
    return total, pull, push, reg


def background_push_loss(embedding: torch.Tensor, labels: torch.Tensor, *, margin: float = 1.5) -> torch.Tensor:
    """Keeps the voxels of no instance away from every instance centre (an addition to :func:`discriminative_loss`).

    ``embedding`` (B, D, *spatial), ``labels`` (B, *spatial) ids with 0 = background. Per crop, with centres ``μ_c``
    (member means) and background voxels ``x_b``: ``1/N_b Σ_b 1/C Σ_c max(0, margin − ‖x_b − μ_c‖)²``; 0 for a
    crop without instances or without background; averaged over the B crops. The discriminative loss never sees
    background voxels, so their embeddings are arbitrary; a semantic mask that lets some through (its false
    positives) then hands the clustering points that bridge neighbouring haloes. With this term they sit at least
    ``margin`` from every halo's centre.
    """
    if embedding.ndim < 2 or labels.shape != embedding.shape[:1] + embedding.shape[2:]:
        raise ValueError(
            f"embedding (B, D, *spatial) {tuple(embedding.shape)} and labels (B, *spatial) "
            f"{tuple(labels.shape)} do not match"
        )
    b, d = embedding.shape[:2]
    x = embedding.reshape(b, d, -1).transpose(1, 2)
    lab = labels.reshape(b, -1)
    terms = []
    for k in range(b):
        inside, outside = lab[k] > 0, lab[k] == 0
        if not bool(inside.any()) or not bool(outside.any()):
            terms.append(x[k].sum() * 0.0)
            continue
        _, idx = torch.unique(lab[k][inside], return_inverse=True)
        counts = torch.bincount(idx).to(x.dtype)
        members = x[k][inside]
        mu = torch.zeros(len(counts), d, dtype=x.dtype, device=x.device).index_add_(0, idx, members) / counts[:, None]
        dist = torch.cdist(x[k][outside], mu)
        terms.append((torch.clamp(margin - dist, min=0.0) ** 2).mean())
    return torch.stack(terms).mean()


def centre_offset_loss(
    offsets: torch.Tensor,
    target: torch.Tensor,
    labels: torch.Tensor,
    *,
    weighting: str = "halo",
    huber_delta: float = 1.0,
) -> torch.Tensor:
    """Regression of every halo voxel's offset to its halo's centre (the Hough-voting instance formulation).

    ``offsets`` and ``target`` are (B, 3, *spatial) (any length unit, e.g. cells), ``labels`` (B, *spatial) integer
    instance ids with 0 = background (excluded). Per voxel the error is the Huber loss of each component,
    ``h(e) = e²/2`` for ``|e| <= δ`` and ``δ(|e| − δ/2)`` beyond (``δ = huber_delta``), summed over the 3 components.
    ``weighting = "voxel"``: the mean over the halo voxels of a crop; ``"halo"``: the mean over the crop's haloes of
    the mean over each halo's voxels, so a small halo weighs as much as a large one. A crop without halo voxels
    contributes 0; the result is the mean over the B crops.
    """
    if offsets.shape != target.shape or offsets.ndim < 3:
        raise ValueError(
            f"offsets {tuple(offsets.shape)} and target {tuple(target.shape)} must both be (B, D, *spatial)"
        )
    if labels.shape != offsets.shape[:1] + offsets.shape[2:]:
        raise ValueError(f"labels {tuple(labels.shape)} do not match offsets {tuple(offsets.shape)} (B, D, *spatial)")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor, got {labels.dtype}")
    if weighting not in ("voxel", "halo"):
        raise ValueError(f"weighting must be 'voxel' or 'halo', got {weighting!r}")
    if not huber_delta > 0:
        raise ValueError(f"huber_delta must be positive, got {huber_delta}")
    b = offsets.shape[0]
    error = F.huber_loss(offsets, target, reduction="none", delta=huber_delta).sum(1).reshape(b, -1)
    lab = labels.reshape(b, -1).to(torch.int64)
    inside = lab > 0
    crop = torch.arange(b, device=lab.device)[:, None].expand_as(lab)[inside]
    err = error[inside]
    per_crop = torch.zeros(b, dtype=error.dtype, device=error.device)
    if weighting == "voxel":
        count = torch.bincount(crop, minlength=b).to(error.dtype)
        per_crop = per_crop.index_add(0, crop, err) / count.clamp_min(1.0)
    else:
        halo, counts = _crop_haloes(lab, inside)
        n_halo, size = counts.numel(), counts.to(error.dtype)
        halo_mean = torch.zeros(n_halo, dtype=error.dtype, device=error.device).index_add(0, halo, err) / size
        halo_crop = torch.zeros(n_halo, dtype=torch.int64, device=lab.device).scatter(0, halo, crop)
        n_per_crop = torch.bincount(halo_crop, minlength=b).to(error.dtype)
        per_crop = per_crop.index_add(0, halo_crop, halo_mean) / n_per_crop.clamp_min(1.0)
    return per_crop.mean() + offsets.sum() * 0.0
